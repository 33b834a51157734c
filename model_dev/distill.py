"""Distillation losses: soft targets (``kd``), similarity preserving (``sp``) and intra-utterance
similarity preserving (``iusp``), selectable and combinable with weights.

* ``kd``: multi-label soft targets. The teacher's tempered probabilities ``sigmoid(t / T)`` are
  the targets of a BCE on the student's tempered logits, scaled by ``T**2`` so gradient sizes do
  not depend on T. It equals the Bernoulli KL divergence plus the teacher's entropy (constant for
  the student): its minimum and zero gradient are at ``s == t``, where its value is not 0.
* ``sp`` (Tung & Mori 2019): per layer pair, ``Q`` = activations of the batch's windows reshaped
  to ``b x (c h w)``, ``G = Q Q^T`` row-L2-normalised; loss ``||G_T - G_S||_F^2 / b^2``.
* ``iusp`` (Interspeech 2020): per utterance, the layer output reshaped to ``T x (C F)`` (time
  kept), ``G = Q Q^T`` (``T x T``) row-L2-normalised; the student's G is resized to the teacher's
  size by bilinear interpolation (``align_corners=False``); the loss is the mean over the matrix
  entries, then over utterances. The utterance is the **clip** (``scope="clip"``, the paper's):
  the layer outputs of the windows that tile the clip (:func:`clip_tiles`) concatenated along
  time, so repetitions longer than one model window are inside one Gram. ``scope="window"``
  treats each model window as an utterance (the earlier, per-window form).

The teacher side arrives as :class:`TeacherBatch` (live outputs, or gathered from
:mod:`model_dev.teacher_cache`); it is never differentiated. Feature terms are averaged over the
configured layer pairs, so adding a pair does not scale the term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from model_dev.arch import stage_ends, window_starts

Pairs = tuple[tuple[int, int], ...]
TERMS = ("kd", "sp", "iusp")
SCOPES = ("clip", "window")


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


def sp_gram(f: torch.Tensor) -> torch.Tensor:
    """Row-normalised batch Gram ``[b, b]`` of activations ``[b, ...]`` (Tung & Mori)."""
    return _row_normalised_gram(f.reshape(f.shape[0], -1))


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
    return (sp_gram(ft.detach()) - sp_gram(fs)).pow(2).sum() / fs.shape[0] ** 2


def utterance_gram(f: torch.Tensor) -> torch.Tensor:
    """Row-normalised time x time Gram matrices ``[B, T, T]`` of features ``[B, C, T, F]``."""
    q = f.transpose(1, 2).flatten(2)  # [B, T, C * F]
    return _row_normalised_gram(q)


def resize_gram(g: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``) of ``[B, n, n]`` to ``[B, size, size]``."""
    if g.shape[-1] == size:
        return g
    return F.interpolate(g[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def gram_distance(gs: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean squared difference ``[B]`` after resizing ``gs`` to ``gt``'s size."""
    return (gt.detach() - resize_gram(gs, gt.shape[-1])).pow(2).mean(dim=(1, 2))


def iusp_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Per-window intra-utterance similarity-preserving loss of one layer pair.

    Parameters
    ----------
    fs, ft : torch.Tensor
        Student ``[B, Cs, Ts, Fs]`` and teacher ``[B, Ct, Tt, Ft]`` activations.

    Returns
    -------
    torch.Tensor
        Scalar: mean over windows and matrix entries of ``(G_T - resize(G_S))**2``.
    """
    return gram_distance(utterance_gram(fs), utterance_gram(ft.detach())).mean()


# --------------------------------------------------------------------------------------------
# Clip-level utterances
# --------------------------------------------------------------------------------------------
def clip_tiles(n_frames: int, window_frames: int, hop_frames: int) -> tuple[tuple[int, int], ...]:
    """The windows that tile a clip, for its clip-level Gram.

    Windows start every ``hop_frames`` (:func:`~model_dev.arch.window_starts`); those starting
    at multiples of ``window_frames`` tile the clip without overlap, and the clip's last window
    (aligned to its end) contributes the frames after the last whole tile.

    Parameters
    ----------
    n_frames, window_frames, hop_frames : int
        Clip length, window length and hop (the hop must divide the window).

    Returns
    -------
    tuple of (window_index, frames)
        Index into the clip's windows and how many of its last frames belong to the tiling
        (``window_frames`` for a whole window). A clip no longer than a window is its one window.
    """
    if window_frames % hop_frames:
        raise ValueError(
            f"clip-level IUSP needs the window hop ({hop_frames}) to divide the window "
            f"({window_frames}) so that windows tile the clip"
        )
    starts = window_starts(n_frames, window_frames, hop_frames)
    whole = max(n_frames // window_frames, 1)
    step = window_frames // hop_frames
    tiles = [(k * step, window_frames) for k in range(whole)]
    tail = n_frames - whole * window_frames
    if tail > 0:
        tiles.append((len(starts) - 1, tail))
    return tuple(tiles)


def tile_steps(frames: int, window_frames: int, steps: int) -> int:
    """Time steps of a layer with ``steps`` per window that ``frames`` of the window cover."""
    return min(max(round(frames * steps / window_frames), 1), steps)


@dataclass(frozen=True)
class ClipGroup:
    """Clips of a batch that share one tiling (hence one Gram size).

    Attributes
    ----------
    clips : torch.Tensor
        int64 ``[G]``: positions of the clips in the batch.
    windows : torch.Tensor
        int64 ``[G, n_tiles]``: flat indices (into the batch's real windows) of each clip's tiles.
    frames : tuple of int
        Frames each tile contributes (:func:`clip_tiles`).
    """

    clips: torch.Tensor
    windows: torch.Tensor
    frames: tuple[int, ...]


def clip_groups(
    n_frames: Sequence[int], n_windows: Sequence[int], window_frames: int, hop_frames: int
) -> list[ClipGroup]:
    """Group a batch's clips by tiling; window indices are flat over the real windows.

    Parameters
    ----------
    n_frames, n_windows : sequence of int
        Length in frames and number of real windows of each clip of the batch, in batch order
        (the real windows are clip-major, as ``x[mask]`` gives them).
    window_frames, hop_frames : int
        The window layout.
    """
    first = [0, *torch.cumsum(torch.as_tensor(n_windows), 0).tolist()]
    by_tiling: dict[tuple[tuple[int, int], ...], list[int]] = {}
    for b, n in enumerate(n_frames):
        by_tiling.setdefault(clip_tiles(int(n), window_frames, hop_frames), []).append(b)
    groups = []
    for tiles, clips in by_tiling.items():
        windows = [[first[b] + w for w, _ in tiles] for b in clips]
        groups.append(
            ClipGroup(torch.tensor(clips), torch.tensor(windows), tuple(f for _, f in tiles))
        )
    return groups


def clip_gram(f: torch.Tensor, group: ClipGroup, window_frames: int) -> torch.Tensor:
    """Row-normalised clip-level Grams ``[G, T, T]`` of a group, from window features.

    Parameters
    ----------
    f : torch.Tensor
        Layer outputs ``[N, C, T', F']`` of the batch's real windows.
    group : ClipGroup
        The clips and their tiles.
    window_frames : int
        Frames per window (to map a tile's frames to the layer's time steps).
    """
    steps = f.shape[2]
    parts = [
        f[group.windows[:, k]][:, :, steps - tile_steps(n, window_frames, steps) :]
        for k, n in enumerate(group.frames)
    ]
    return utterance_gram(torch.cat(parts, dim=2))


# --------------------------------------------------------------------------------------------
# Layer pairs and the combined loss
# --------------------------------------------------------------------------------------------
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


def last_stage_pair(
    student_shapes: Sequence[Sequence[int]], teacher_shapes: Sequence[Sequence[int]]
) -> Pairs:
    """One pair: the student's last block with the teacher's last block (the most abstract
    layers; their time resolutions usually differ, so IUSP's resize is used)."""
    return ((len(student_shapes) - 1, len(teacher_shapes) - 1),)


#: Named layer-pair choices; ``DistillConfig.layer_pairs`` may also list pairs as ``"s:t,s:t"``.
PAIR_CHOICES = {"stages": default_layer_pairs, "last": last_stage_pair}


def parse_pairs(text: str) -> Pairs | None:
    """Explicit pairs ``"s:t,s:t"`` as a tuple, None for a name of :data:`PAIR_CHOICES`;
    ValueError for anything else."""
    if text in PAIR_CHOICES:
        return None
    try:
        pairs = tuple(tuple(int(v) for v in p.split(":")) for p in text.split(","))
    except ValueError:
        pairs = ()
    if not pairs or any(len(p) != 2 or min(p) < 0 for p in pairs):
        raise ValueError(
            f"layer_pairs {text!r}: expected one of {sorted(PAIR_CHOICES)} or "
            "student:teacher block pairs such as '2:3,4:7'"
        )
    return pairs


@dataclass(frozen=True)
class DistillConfig:
    """Which distillation terms to use and how.

    Parameters
    ----------
    kd, sp, iusp : float
        Weights of the terms (0 disables one).
    temperature : float
        Temperature of ``kd``.
    layer_pairs : str
        Block pairs (indices into the models' ``feats``) for ``sp`` and ``iusp``: ``"stages"``
        (:func:`default_layer_pairs`), ``"last"`` (:func:`last_stage_pair`) or explicit
        ``"s:t,s:t"``.
    iusp_scope : {"clip", "window"}
        The utterance of ``iusp``.
    """

    kd: float = 1.0
    sp: float = 0.0
    iusp: float = 0.0
    temperature: float = 2.0
    layer_pairs: str = "stages"
    iusp_scope: str = "clip"

    def __post_init__(self) -> None:
        for name in TERMS:
            if getattr(self, name) < 0:
                raise ValueError(f"DistillConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"DistillConfig.temperature must be > 0, got {self.temperature}")
        if self.iusp_scope not in SCOPES:
            raise ValueError(f"DistillConfig.iusp_scope must be one of {SCOPES}")
        parse_pairs(self.layer_pairs)

    @property
    def terms(self) -> tuple[str, ...]:
        """The terms with a non-zero weight."""
        return tuple(t for t in TERMS if getattr(self, t) > 0)

    def pairs_for(
        self, student_shapes: Sequence[Sequence[int]], teacher_shapes: Sequence[Sequence[int]]
    ) -> Pairs:
        """The layer pairs for models with these block output shapes; ValueError if an explicit
        pair names a block the models do not have."""
        pairs = parse_pairs(self.layer_pairs)
        if pairs is None:
            return PAIR_CHOICES[self.layer_pairs](student_shapes, teacher_shapes)
        for s, t in pairs:
            if s >= len(student_shapes) or t >= len(teacher_shapes):
                raise ValueError(
                    f"layer_pairs {self.layer_pairs!r}: the student has {len(student_shapes)} "
                    f"blocks and the teacher {len(teacher_shapes)}"
                )
        return pairs


@dataclass
class TeacherBatch:
    """The teacher's side of a batch, as the losses need it.

    Attributes
    ----------
    logits : torch.Tensor
        ``[N, K]`` per-window logits (``kd``).
    feats : dict of int to torch.Tensor
        Teacher block -> activations ``[N, ...]`` of the windows (``sp``).
    grams : dict of int to list of torch.Tensor
        Teacher block -> one Gram tensor per :class:`ClipGroup` (``iusp`` scope ``clip``,
        ``[G, T, T]``) or a single ``[N, T, T]`` (scope ``window``).
    """

    logits: torch.Tensor | None = None
    feats: dict[int, torch.Tensor] = field(default_factory=dict)
    grams: dict[int, list[torch.Tensor]] = field(default_factory=dict)


def teacher_batch(
    cfg: DistillConfig,
    pairs: Pairs,
    logits: torch.Tensor,
    feats: Sequence[torch.Tensor],
    groups: Sequence[ClipGroup] | None,
    window_frames: int,
) -> TeacherBatch:
    """What the losses need from the teacher's outputs on a batch's windows.

    Parameters
    ----------
    cfg : DistillConfig
        Terms and IUSP scope.
    pairs : tuple of (student_block, teacher_block)
        Layer pairs.
    logits, feats : torch.Tensor, sequence of torch.Tensor
        Teacher window logits ``[N, K]`` and block features ``[N, C, T, F]``.
    groups : sequence of ClipGroup, optional
        The batch's clip groups (needed for clip-scope IUSP).
    window_frames : int
        Frames per window.
    """
    out = TeacherBatch(logits=logits.detach().float() if cfg.kd else None)
    blocks = sorted({j for _, j in pairs})
    if cfg.sp:
        out.feats = {j: feats[j].detach().float() for j in blocks}
    if cfg.iusp:
        for j in blocks:
            f = feats[j].detach().float()
            if cfg.iusp_scope == "window":
                out.grams[j] = [utterance_gram(f)]
            else:
                out.grams[j] = [clip_gram(f, g, window_frames) for g in groups]
    return out


def distillation_loss(
    cfg: DistillConfig,
    pairs: Pairs,
    s_logits: torch.Tensor,
    s_feats: Sequence[torch.Tensor],
    teacher: TeacherBatch,
    groups: Sequence[ClipGroup] | None = None,
    window_frames: int | None = None,
) -> dict[str, torch.Tensor]:
    """The enabled distillation terms, unweighted (the caller applies the weights).

    Parameters
    ----------
    cfg : DistillConfig
        Terms, temperature and IUSP scope.
    pairs : tuple of (student_block, teacher_block)
        Layer pairs for ``sp`` and ``iusp``.
    s_logits : torch.Tensor
        ``[N, K]`` student window logits.
    s_feats : sequence of torch.Tensor
        Student block features ``[N, C, T, F]``.
    teacher : TeacherBatch
        The teacher's side of the same windows.
    groups : sequence of ClipGroup, optional
        Clip groups of the batch (clip-scope IUSP).
    window_frames : int, optional
        Frames per window (clip-scope IUSP).

    Returns
    -------
    dict of str to torch.Tensor
        ``kd``, ``sp``, ``iusp`` (those enabled): scalars with gradients to the student; feature
        terms are means over the layer pairs (and, for IUSP, over utterances).
    """
    terms: dict[str, torch.Tensor] = {}
    if cfg.kd:
        terms["kd"] = kd_loss(s_logits.float(), teacher.logits, cfg.temperature)
    if cfg.sp:
        terms["sp"] = sum(sp_loss(s_feats[i].float(), teacher.feats[j]) for i, j in pairs)
        terms["sp"] = terms["sp"] / len(pairs)
    if cfg.iusp:
        per_pair = []
        for i, j in pairs:
            fs = s_feats[i].float()
            if cfg.iusp_scope == "window":
                per_pair.append(gram_distance(utterance_gram(fs), teacher.grams[j][0]).mean())
                continue
            dist = [
                gram_distance(clip_gram(fs, g, window_frames), gt)
                for g, gt in zip(groups, teacher.grams[j], strict=True)
            ]
            per_pair.append(torch.cat(dist).mean())
        terms["iusp"] = sum(per_pair) / len(pairs)
    return terms
