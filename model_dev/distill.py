"""Distillation losses: soft targets (``kd``), similarity preserving (``sp``) and intra-utterance
similarity preserving (``iusp``), selectable and combinable with weights.

* ``kd``: multi-label soft targets. The teacher's tempered probabilities ``sigmoid(t / T)`` are
  the targets of a BCE on the student's tempered logits, scaled by ``T**2`` so gradient sizes do
  not depend on T. It equals the Bernoulli KL divergence plus the teacher's entropy (constant for
  the student): its minimum and zero gradient are at ``s == t``, where its value is not 0.
* ``sp`` (Tung & Mori 2019): per layer pair, ``Q`` = activations reshaped to ``b x (c h w)``,
  ``G = Q Q^T`` row-L2-normalised; loss ``||G_T - G_S||_F^2 / b^2``.
* ``iusp``: per utterance (window), the layer output reshaped to ``T x (C F)`` (time kept),
  ``G = Q Q^T`` (``T x T``) row-L2-normalised; the student's G is resized to the teacher's
  ``T_T x T_T`` by bilinear interpolation (``align_corners=False``); loss = mean over the batch
  of ``||G_T - G_S||_F^2``.

Teacher tensors are always detached: gradients reach the student only. Feature losses are summed
over the configured layer pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model_dev.arch import stage_ends

Pairs = tuple[tuple[int, int], ...]


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Multi-label soft-target loss: ``T**2 * mean BCE(sigmoid(s / T), sigmoid(t / T))``.

    Parameters
    ----------
    student_logits, teacher_logits : torch.Tensor
        ``[B, C]`` logits.
    T : float
        Temperature (> 0).

    Returns
    -------
    torch.Tensor
        Scalar; mean over batch and classes.
    """
    target = torch.sigmoid(teacher_logits.detach() / T)
    return F.binary_cross_entropy_with_logits(student_logits / T, target) * T**2


def _row_normalised_gram(q: torch.Tensor) -> torch.Tensor:
    """``F.normalize(q @ q^T, dim=-1)`` over the last two dims."""
    return F.normalize(q @ q.transpose(-1, -2), dim=-1)


def sp_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving loss of one layer pair (Tung & Mori 2019).

    Parameters
    ----------
    fs, ft : torch.Tensor
        Student and teacher activations ``[b, ...]``; only the batch sizes must match.

    Returns
    -------
    torch.Tensor
        Scalar ``||G_T - G_S||_F^2 / b^2``.
    """
    b = fs.shape[0]
    gs = _row_normalised_gram(fs.reshape(b, -1))
    gt = _row_normalised_gram(ft.detach().reshape(b, -1))
    return (gt - gs).pow(2).sum() / b**2


def utterance_gram(f: torch.Tensor) -> torch.Tensor:
    """Row-normalised time x time Gram matrices ``[B, T, T]`` of features ``[B, C, T, F]``."""
    q = f.transpose(1, 2).flatten(2)  # [B, T, C * F]
    return _row_normalised_gram(q)


def resize_gram(g: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``) of ``[B, n, n]`` to ``[B, size, size]``."""
    if g.shape[-1] == size:
        return g
    return F.interpolate(g[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def iusp_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Intra-utterance similarity-preserving loss of one layer pair.

    Parameters
    ----------
    fs, ft : torch.Tensor
        Student ``[B, Cs, Ts, Fs]`` and teacher ``[B, Ct, Tt, Ft]`` activations.

    Returns
    -------
    torch.Tensor
        Scalar: mean over the batch of ``||G_T - resize(G_S)||_F^2``.
    """
    gt = utterance_gram(ft.detach())
    gs = resize_gram(utterance_gram(fs), gt.shape[-1])
    return (gt - gs).pow(2).sum(dim=(1, 2)).mean()


def default_layer_pairs(
    student_shapes: Sequence[Sequence[int]], teacher_shapes: Sequence[Sequence[int]]
) -> Pairs:
    """Pair the last block of every student stage with the teacher stage of nearest resolution.

    Stages are runs of blocks with equal ``(T, F)`` (:func:`model_dev.arch.stage_ends`); the
    teacher stage minimising ``|log(Tt / Ts)|``, then ``|log(Ft / Fs)|``, is chosen (ties: the
    deeper one).

    Parameters
    ----------
    student_shapes, teacher_shapes : sequence of shapes
        Block output shapes ending in ``(T, F)``: ``arch.block_shapes(spec)`` or feature
        tensor shapes.

    Returns
    -------
    tuple of (student_block, teacher_block)
    """

    def key(i: int, j: int) -> tuple[float, float, int]:
        (ts, fs), (tt, ft) = student_shapes[i][-2:], teacher_shapes[j][-2:]
        return abs(math.log(tt / ts)), abs(math.log(ft / fs)), -j

    t_ends = stage_ends(teacher_shapes)
    return tuple((i, min(t_ends, key=lambda j, i=i: key(i, j))) for i in stage_ends(student_shapes))


@dataclass(frozen=True)
class DistillConfig:
    """Which distillation terms to use and how.

    Parameters
    ----------
    kd, sp, iusp : float
        Weights of the terms (0 disables one).
    temperature : float
        Temperature of ``kd``.
    layer_pairs : sequence of (student_block, teacher_block), optional
        Block indices (into the models' ``feats``) for ``sp`` and ``iusp``; default
        :func:`default_layer_pairs` of the feature shapes.
    """

    kd: float = 1.0
    sp: float = 0.0
    iusp: float = 0.0
    temperature: float = 2.0
    layer_pairs: Pairs | None = None

    def __post_init__(self) -> None:
        for name in ("kd", "sp", "iusp"):
            if getattr(self, name) < 0:
                raise ValueError(f"DistillConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"DistillConfig.temperature must be > 0, got {self.temperature}")
        if self.layer_pairs is not None:
            pairs = tuple((int(s), int(t)) for s, t in self.layer_pairs)
            object.__setattr__(self, "layer_pairs", pairs)


def distillation_loss(
    cfg: DistillConfig,
    s_logits: torch.Tensor,
    t_logits: torch.Tensor,
    s_feats: Sequence[torch.Tensor],
    t_feats: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the enabled distillation terms.

    Parameters
    ----------
    cfg : DistillConfig
        Weights, temperature and layer pairs.
    s_logits, t_logits : torch.Tensor
        ``[B, C]`` student and teacher logits of the same windows.
    s_feats, t_feats : sequence of torch.Tensor
        Block features ``[B, C, T, F]`` as returned by the models.

    Returns
    -------
    total : torch.Tensor
        Scalar ``sum(weight * term)`` over the terms with non-zero weight.
    parts : dict of str to torch.Tensor
        Unweighted, detached value of each enabled term.
    """
    pairs = cfg.layer_pairs
    if pairs is None and (cfg.sp or cfg.iusp):
        pairs = default_layer_pairs([f.shape for f in s_feats], [f.shape for f in t_feats])
    if (cfg.sp or cfg.iusp) and not pairs:
        raise ValueError("DistillConfig: sp/iusp enabled but layer_pairs is empty")
    terms = {
        "kd": lambda: kd_loss(s_logits, t_logits, cfg.temperature),
        "sp": lambda: sum(sp_loss(s_feats[i], t_feats[j]) for i, j in pairs),
        "iusp": lambda: sum(iusp_loss(s_feats[i], t_feats[j]) for i, j in pairs),
    }
    total = s_logits.new_zeros(())
    parts: dict[str, torch.Tensor] = {}
    for name, fn in terms.items():
        weight = getattr(cfg, name)
        if weight:
            value = fn()
            total = total + weight * value
            parts[name] = value.detach()
    return total, parts
