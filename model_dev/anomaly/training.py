"""Training and scoring of one detector on one machine type's clips.

Torch training: Adam, minibatches of windows shuffled by a generator seeded from
``(seed, epoch)``, tqdm progress, and (with ``state_path``) the model and optimiser state written
atomically after every epoch, so an interrupted run resumes where it stopped and ends with the
same weights. ID-classifier distillation adds :func:`model_dev.distill.kd_loss` and
:func:`model_dev.distill.iusp_loss` to the cross-entropy, each weighted so that its gradient on
the student has the size of the task loss' gradient at the first step (the design's rule:
balance by gradient, not by loss value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model_dev.anomaly.detectors import SKLEARN_MAX_WINDOWS, build_sklearn, sklearn_window_scores
from model_dev.anomaly.methods import METHODS, Layout
from model_dev.anomaly.nets import IDClassifier
from model_dev.config_io import JsonConfig
from model_dev.device import reproducible, resolve_device
from model_dev.distill import iusp_loss, kd_loss, last_stage_pair
from model_dev.fileio import atomic_write


@dataclass(frozen=True)
class FitConfig(JsonConfig):
    """Training settings of one detector.

    Parameters
    ----------
    epochs : int
        Passes over the training windows.
    batch_size : int
        Windows per step.
    lr : float
        Adam learning rate; 0: the method's default (``Method.lr``).
    seed : int
        Seed of the initial weights, the shuffling and the scikit-learn estimators.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``.
    max_windows : int
        At most this many training windows (a seeded random subset) per epoch; 0: all.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.0
    seed: int = 0
    device: str = "auto"
    max_windows: int = 0


def window_batch(
    layout: Layout, clips: list[np.ndarray], ys: np.ndarray, silence: float, train: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of all clips, their per-window target and the clip index of each window."""
    wins = [layout.windows(c, silence, train) for c in clips]
    owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(wins)])
    return np.concatenate(wins).astype(np.float32), np.asarray(ys)[owner], owner


class Distilled(nn.Module):
    """A student ID classifier trained with a frozen teacher (kd and/or iusp terms)."""

    def __init__(self, student: IDClassifier, teacher: IDClassifier, kd: float, iusp: float):
        super().__init__()
        self.student = student
        self._teacher = [teacher.eval()]  # a list: not a sub-module, not in the state dict
        self.terms = {"kd": kd, "iusp": iusp}
        self.weights: dict[str, float] | None = None
        self.temperature = 2.0

    def get_extra_state(self) -> dict:
        """The weights balanced at the first step, kept in the resume file: a resumed run
        reuses them instead of re-balancing on the half-trained student."""
        return {"weights": self.weights}

    def set_extra_state(self, state: dict) -> None:
        """Restore :meth:`get_extra_state`."""
        self.weights = state["weights"]

    def _parts(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, feats = self.student(x)
        with torch.no_grad():
            t_logits, t_feats = self._teacher[0](x)
        parts = {"task": nn.functional.cross_entropy(logits, y)}
        if self.terms["kd"]:
            parts["kd"] = kd_loss(logits, t_logits, self.temperature)
        if self.terms["iusp"]:
            pairs = last_stage_pair([f.shape for f in feats], [f.shape for f in t_feats])
            parts["iusp"] = sum(iusp_loss(feats[i], t_feats[j]) for i, j in pairs)
        return parts

    def _balance(self, parts: dict[str, torch.Tensor]) -> dict[str, float]:
        params = [p for p in self.student.parameters() if p.requires_grad]

        def norm(loss: torch.Tensor) -> float:
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            return float(torch.sqrt(sum((g**2).sum() for g in grads if g is not None)))

        task = norm(parts["task"])
        return {
            k: self.terms[k] * task / max(norm(v), 1e-12) for k, v in parts.items() if k != "task"
        }

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        if not self.training:
            return self.student.objective(x, y)
        parts = self._parts(x, y)
        if self.weights is None:
            self.weights = self._balance(parts)
        loss = parts["task"] + sum(w * parts[k] for k, w in self.weights.items())
        return loss, parts["task"].detach().expand(len(x))


def _resume(state_path, model: nn.Module, opt: torch.optim.Optimizer) -> tuple[int, list[float]]:
    if state_path is None or not state_path.is_file():
        return 0, []
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return int(state["epoch"]), list(state["losses"])


def fit_network(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    cfg: FitConfig,
    *,
    progress: bool = True,
    state_path=None,
    desc: str = "train",
) -> list[float]:
    """Minimise ``model.objective`` over windows ``x`` with targets ``y``.

    Parameters
    ----------
    model : nn.Module
        A :mod:`model_dev.anomaly.nets` network (or :class:`Distilled`).
    x, y : np.ndarray
        Training windows and their per-window targets (ID index or label; ignored by the
        autoencoders and predictors).
    cfg : FitConfig
        Settings.
    progress : bool
        Show a tqdm bar per epoch.
    state_path : Path, optional
        Resume file, written atomically after each epoch.
    desc : str
        Progress-bar label.

    Returns
    -------
    list of float
        Mean training loss of each epoch.
    """
    device = resolve_device(cfg.device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr or 1e-3)
    start, losses = _resume(state_path, model, opt)
    xt, yt = torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64))
    for epoch in range(start, cfg.epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        torch.manual_seed(cfg.seed * 100003 + epoch)  # sampling (VAEs): resume-exact
        order = torch.randperm(len(xt), generator=gen)
        if cfg.max_windows:
            order = order[: cfg.max_windows]
        model.train()
        total, steps = 0.0, range(0, len(order), cfg.batch_size)
        bar = tqdm(
            steps, desc=f"{desc} {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress
        )
        for i in bar:
            idx = order[i : i + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            loss, _ = model.objective(xt[idx].to(device), yt[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / max(len(order), 1))
        if state_path is not None:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
            state |= {"epoch": epoch + 1, "losses": losses}
            atomic_write(state_path, lambda tmp, s=state: torch.save(s, tmp))
    return losses


@torch.no_grad()
def network_clip_scores(
    model: nn.Module,
    layout: Layout,
    clips: list[np.ndarray],
    ys: np.ndarray,
    silence: float,
    device: str = "auto",
    batch_size: int = 512,
) -> np.ndarray:
    """Clip scores: the mean of the window scores of each clip (eval mode)."""
    dev = resolve_device(device)
    model.to(dev).eval()
    x, y, owner = window_batch(layout, clips, ys, silence, train=False)
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i : i + batch_size]).to(dev)
        yb = torch.from_numpy(np.asarray(y[i : i + batch_size], dtype=np.int64)).to(dev)
        out.append(model.objective(xb, yb)[1].float().cpu().numpy())
    window_scores = np.concatenate(out) if out else np.zeros(0)
    return np.bincount(owner, window_scores, len(clips)) / np.bincount(owner, minlength=len(clips))


def fit_sklearn(method: str, clips: list[np.ndarray], silence: float, seed: int):
    """Fit a scikit-learn method on (a seeded subset of) the training windows."""
    layout = METHODS[method].layout
    x, _, _ = window_batch(layout, clips, np.zeros(len(clips)), silence, train=True)
    limit = SKLEARN_MAX_WINDOWS[method]
    if len(x) > limit:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))]
    return build_sklearn(method, seed).fit(x)


def sklearn_clip_scores(pipe, method: str, clips: list[np.ndarray], silence: float) -> np.ndarray:
    """Clip scores of a fitted scikit-learn pipeline (mean of the window scores)."""
    x, _, owner = window_batch(METHODS[method].layout, clips, np.zeros(len(clips)), silence, False)
    s = sklearn_window_scores(pipe, x)
    return np.bincount(owner, s, len(clips)) / np.bincount(owner, minlength=len(clips))


def seeded_network(build, seed: int, device: str = "auto") -> nn.Module:
    """Build a network with seeded initial weights, leaving the caller's RNG untouched."""
    with reproducible(resolve_device(device)):
        torch.manual_seed(seed)
        return build()
