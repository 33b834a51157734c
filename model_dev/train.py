"""Training of teachers and students (one loop; distillation is an optional term), checkpoints
and evaluation.

Data path
---------
Every clip of a :class:`~model_dev.features.FeatureSet` is cut once into model windows
(:func:`~model_dev.arch.clip_windows` on the int8 features, hop ``window_hop_frames``; short clips
are padded with the front end's silence code) and kept as int8 ``[n_clips, max_windows, T, F]``
with a bool mask of the real windows (:class:`ClipWindows`). A batch is dequantised on the compute
device, ``(q - zero_point) * scale``. The model runs on the real windows only (padding windows
never reach BatchNorm); the clip logits are the maximum over windows
(:func:`~model_dev.arch.aggregate`), exactly what the device computes, and the BCE is applied to
them (multiple-instance learning: a clip label says "somewhere in the clip").

Loss
----
``BCE(clip logits, labels, pos_weight) + distillation_loss(...)``. ``pos_weight[c]`` is
``n_negative / n_positive`` of class ``c`` in the training split, clipped to
``[1, pos_weight_max]`` (rare classes weigh more; 0 turns it off). With a teacher checkpoint, the
frozen teacher (eval mode) sees the same augmented windows, and
:func:`~model_dev.distill.distillation_loss` compares the student's and the teacher's per-window
logits (``kd``) and block features (``sp``, ``iusp``).

Augmentation (training only)
----------------------------
* mixup (``mixup_alpha > 0``): each clip is mixed with another clip of the batch,
  ``lam * x_i + (1 - lam) * x_j`` on the dequantised log-mel windows, ``lam ~ Beta(a, a)`` per
  clip; labels are mixed the same way (``mixup_labels="convex"``, the default: a faint admixture
  gives a weak target) or as the union ``max(y_i, y_j)`` (``"max"``: any audible event counts).
  A clip mixed with a longer one gets that clip's extra windows, mixed with silence.
* SpecAugment-style masking per window: ``time_masks`` spans of up to ``time_mask_frames``
  frames and ``freq_masks`` spans of up to ``freq_mask_bins`` mel bands, filled with the
  window's mean (0 counts or 0 widths turn them off).

Reproducibility
---------------
The initial weights come from ``seed``; all randomness of epoch ``e`` (shuffling, augmentation,
dropout) comes from generators seeded with ``(seed, e)``; on CPU deterministic algorithms are on
during training. So a run resumed from ``last.pt`` ends with exactly the weights of an
uninterrupted run on CPU. The caller's global torch RNG state is left untouched.

Files in ``out_dir``: ``config.json`` (the :class:`TrainConfig`), ``metrics.csv`` (one row per
epoch), ``best.pt`` (best validation micro-AUPRC) and ``last.pt`` (every epoch, with optimizer,
scheduler and early-stopping state for resuming), all written atomically (temporary file in the
same folder, then ``os.replace``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from model_dev.arch import (
    SILENCE_Q,
    STUDENTS,
    TEACHER,
    ArchSpec,
    aggregate,
    build_torch,
    clip_windows,
)
from model_dev.config_io import JsonConfig, json_finite
from model_dev.distill import DistillConfig, distillation_loss
from model_dev.evaluate import auprc, operating_thresholds, plot_pr_curves
from model_dev.features import FeatureSet

CHECKPOINT_FORMAT = 1
ARCHS = ("teacher", *STUDENTS)
SCHEDULES = ("cosine", "constant")
MIXUP_LABELS = ("convex", "max")
DISTILL_TERMS = ("kd", "sp", "iusp")
#: Checkpoint entries that hold state rather than metadata (left out of ``load_checkpoint``'s meta).
_STATE_KEYS = ("model", "optimizer", "scheduler", "scaler")
_REQUIRED_KEYS = ("kind", "arch", "train_config", "frontend", "frontend_hash", "classes")
_REQUIRED_KEYS += ("model", "state_dict_sha256")


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Everything that defines a training run; stored in every checkpoint.

    Parameters
    ----------
    arch : str
        ``"teacher"`` or a key of :data:`model_dev.arch.STUDENTS`; also decides the checkpoint
        kind (``"teacher"``/``"student"``).
    epochs : int
        Maximum number of epochs.
    batch_size : int
        Clips per batch (each contributes all its windows).
    lr, weight_decay : float
        AdamW learning rate (peak) and decoupled weight decay.
    schedule : {"cosine", "constant"}
        Learning-rate schedule after the linear warm-up, stepped per batch; cosine decays to 0
        at the last step.
    warmup_epochs : float
        Length of the linear warm-up from ``lr / warmup_steps`` to ``lr``.
    window_hop_frames : int
        Hop between model windows of a clip (the window length is the architecture's).
    patience : int
        Stop after this many epochs without a better validation micro-AUPRC (0: never).
    seed : int
        Seed of the initial weights and of every epoch's randomness.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    amp : bool
        Mixed precision (float16 autocast with gradient scaling); applies on CUDA only.
    time_masks, time_mask_frames, freq_masks, freq_mask_bins : int
        SpecAugment-style masks per window: count and maximum width (0 turns them off).
    mixup_alpha : float
        Beta parameter of mixup (0: off).
    mixup_labels : {"convex", "max"}
        How mixed clips' labels combine (see the module docstring).
    pos_weight_max : float
        Upper clip of the per-class BCE ``pos_weight`` (>= 1; 0: no class weighting).
    train_splits, val_splits : tuple of str
        Dataset splits to train on and to validate on (early stopping, operating thresholds).
    teacher : str, optional
        Teacher checkpoint for distilling a student.
    kd, sp, iusp, temperature, layer_pairs
        :class:`~model_dev.distill.DistillConfig` fields; a weight > 0 needs ``teacher``.
    """

    arch: str = "s5k"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    window_hop_frames: int = 50
    patience: int = 8
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    time_masks: int = 2
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bins: int = 4
    mixup_alpha: float = 0.0
    mixup_labels: str = "convex"
    pos_weight_max: float = 10.0
    train_splits: tuple[str, ...] = ("train",)
    val_splits: tuple[str, ...] = ("validate",)
    teacher: str | None = None
    kd: float = 0.0
    sp: float = 0.0
    iusp: float = 0.0
    temperature: float = 2.0
    layer_pairs: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            self._coerce(f.name, f.type, getattr(self, f.name))
        positive = ("epochs", "batch_size", "lr", "window_hop_frames", "temperature")
        non_negative = ("weight_decay", "warmup_epochs", "patience", "time_masks")
        non_negative += ("time_mask_frames", "freq_masks", "freq_mask_bins", "mixup_alpha")
        non_negative += DISTILL_TERMS
        weights = [t for t in DISTILL_TERMS if getattr(self, t) > 0]
        checks = [(getattr(self, n) > 0, n, "must be > 0") for n in positive]
        checks += [(getattr(self, n) >= 0, n, "must be >= 0") for n in non_negative]
        checks += [
            (self.arch in ARCHS, "arch", f"must be one of {list(ARCHS)}"),
            (self.schedule in SCHEDULES, "schedule", f"must be one of {list(SCHEDULES)}"),
            (self.mixup_labels in MIXUP_LABELS, "mixup_labels", f"must be in {MIXUP_LABELS}"),
            (
                re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
                "device",
                "must be auto, cpu, cuda or cuda:N",
            ),
            (
                self.pos_weight_max == 0 or self.pos_weight_max >= 1,
                "pos_weight_max",
                "must be 0 (off) or >= 1",
            ),
            (bool(self.train_splits), "train_splits", "must name at least one split"),
            (bool(self.val_splits), "val_splits", "must name at least one split"),
            (
                self.teacher is None or self.arch != "teacher",
                "teacher",
                "only students are distilled",
            ),
            (
                self.teacher is None or bool(weights),
                "teacher",
                "needs a distillation weight (kd, sp or iusp) > 0",
            ),
            (self.teacher is not None or not weights, "teacher", f"required by {weights}"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")

    def _coerce(self, name: str, annotation: str, value: object) -> None:
        """Type-check field ``name`` against its annotation; normalise floats and tuples."""
        if annotation.endswith("| None") and value is None:
            return
        base = annotation.split(" |")[0]

        def fail() -> ValueError:
            return ValueError(f"TrainConfig.{name}: expected {annotation}, got {value!r}")

        if base.startswith("tuple"):
            is_pairs = "tuple[int" in base
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise fail()
            items = tuple(tuple(v) if is_pairs else v for v in value)
            ok = all(
                len(v) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
                if is_pairs
                else isinstance(v, str)
                for v in items
            )
            if not ok:
                raise fail()
            object.__setattr__(self, name, items)
        elif base == "bool":
            if not isinstance(value, bool):
                raise fail()
        elif base == "str":
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
            elif not isinstance(value, str):
                raise fail()
        elif isinstance(value, bool) or not isinstance(
            value, int if base == "int" else int | float
        ):
            raise fail()
        elif base == "float":
            object.__setattr__(self, name, float(value))

    @property
    def kind(self) -> str:
        """``"teacher"`` or ``"student"``."""
        return "teacher" if self.arch == "teacher" else "student"

    @property
    def distill(self) -> DistillConfig | None:
        """The distillation config, or None without a teacher."""
        if self.teacher is None:
            return None
        return DistillConfig(self.kd, self.sp, self.iusp, self.temperature, self.layer_pairs)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass
class ClipWindows:
    """Model windows of a set of clips, int8, padded to the clip with the most windows.

    Attributes
    ----------
    windows : torch.Tensor
        int8 ``[n_clips, max_windows, window_frames, n_mels]``; padding windows hold silence.
    mask : torch.Tensor
        bool ``[n_clips, max_windows]``, True for real windows (always a prefix of each row).
    labels : torch.Tensor
        float32 multi-hot ``[n_clips, n_classes]``.
    scale : float
    zero_point : int
        Dequantisation of the features: ``(q - zero_point) * scale``.
    """

    windows: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    scale: float
    zero_point: int

    @classmethod
    def from_features(
        cls, fs: FeatureSet, indices: np.ndarray, window_frames: int, hop_frames: int
    ) -> ClipWindows:
        """Cut clips ``indices`` of ``fs`` into windows (:func:`~model_dev.arch.clip_windows`)."""
        per_clip = [clip_windows(fs.clip(i), window_frames, hop_frames) for i in indices]
        n_win = max((len(w) for w in per_clip), default=1)
        shape = (len(per_clip), n_win, window_frames, fs.features.shape[1])
        windows = np.full(shape, SILENCE_Q, dtype=np.int8)
        mask = np.zeros((len(per_clip), n_win), dtype=bool)
        for k, w in enumerate(per_clip):
            windows[k, : len(w)], mask[k, : len(w)] = w, True
        return cls(
            torch.from_numpy(windows),
            torch.from_numpy(mask),
            torch.from_numpy(np.asarray(fs.labels)[indices].astype(np.float32)),
            fs.config.input_scale,
            fs.config.input_zero_point,
        )

    def __len__(self) -> int:
        return len(self.labels)

    def batch(
        self, idx: np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dequantised windows ``[B, W, T, F]``, mask ``[B, W]`` and labels ``[B, C]`` of clips
        ``idx`` on ``device``; W is the most windows of any clip in the batch."""
        idx = torch.as_tensor(idx)
        mask = self.mask[idx]
        n_win = int(mask.sum(1).max())
        x = self.windows[idx, :n_win].to(device, non_blocking=True).float()
        x = (x - self.zero_point) * self.scale
        return x, mask[:, :n_win].to(device), self.labels[idx].to(device)


def _forward(
    model: nn.Module, windows: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Model over the real windows ``[N, T, F]`` (= ``x[mask]``) of a batch.

    Returns clip logits ``[B, C]`` (max over each clip's windows), window logits ``[N, C]`` and
    block features of the N windows.
    """
    logits, feats = model(windows)
    padded = logits.new_full((*mask.shape, logits.shape[1]), float("-inf"))
    return aggregate(padded.index_put((mask,), logits), mask), logits, feats


def _mixup(
    x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix every clip of a batch with a random partner (see the module docstring)."""
    perm = torch.as_tensor(rng.permutation(len(x)), device=x.device)
    lam = torch.as_tensor(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, len(x)), device=x.device)
    lam = lam.to(x.dtype)
    x = torch.lerp(x[perm], x, lam[:, None, None, None])
    if cfg.mixup_labels == "max":
        y = torch.maximum(y, y[perm])
    else:
        y = torch.lerp(y[perm], y, lam[:, None])
    return x, mask | mask[perm], y


def _span_mask(rng: np.random.Generator, n: int, length: int, count: int, width: int) -> np.ndarray:
    """bool ``[n, length]``: ``count`` random spans of width ``0..width`` per row."""
    widths = rng.integers(0, min(width, length) + 1, size=(n, count))
    starts = rng.integers(0, length - widths + 1)
    pos = np.arange(length)
    return ((pos >= starts[..., None]) & (pos < (starts + widths)[..., None])).any(axis=1)


def _spec_augment(x: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """Time and frequency masks on windows ``[N, T, F]``, filled with each window's mean."""
    n, t, f = x.shape
    hit = np.zeros((n, t, f), dtype=bool)
    if cfg.time_masks and cfg.time_mask_frames:
        hit |= _span_mask(rng, n, t, cfg.time_masks, cfg.time_mask_frames)[:, :, None]
    if cfg.freq_masks and cfg.freq_mask_bins:
        hit |= _span_mask(rng, n, f, cfg.freq_masks, cfg.freq_mask_bins)[:, None, :]
    if not hit.any():
        return x
    hit_t = torch.from_numpy(hit).to(x.device)
    return torch.where(hit_t, x.mean(dim=(1, 2), keepdim=True), x)


def _pos_weight(labels: torch.Tensor, cap: float) -> torch.Tensor | None:
    """``clip(n_neg / n_pos, 1, cap)`` per class (None when ``cap`` is 0)."""
    if not cap:
        return None
    pos = labels.sum(0)
    return ((len(labels) - pos) / pos.clamp(min=1)).clamp(1.0, cap)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 hex of a state dict: names, dtypes, shapes and bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(obj: dict, path: Path) -> None:
    _atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _read_checkpoint(path: Path) -> dict:
    """The raw checkpoint dict; ValueError naming ``path`` if missing, unreadable or foreign."""
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {first})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an aedfw checkpoint (format {CHECKPOINT_FORMAT} expected)")
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}")
    if state_dict_sha256(ckpt["model"]) != ckpt["state_dict_sha256"]:
        raise ValueError(f"{path}: weights do not match their recorded sha256 (corrupt file)")
    return ckpt


def _open_checkpoint(path: Path, expect_kind: str | None) -> tuple[nn.Module, dict]:
    ckpt = _read_checkpoint(path)
    if expect_kind is not None and ckpt["kind"] != expect_kind:
        raise ValueError(f"{path}: a {ckpt['kind']} checkpoint, expected a {expect_kind}")
    model = build_torch(ArchSpec.from_dict(ckpt["arch"], f"{path}: arch"))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the recorded architecture ({exc})") from None
    return model.eval(), ckpt


def load_checkpoint(path: str | Path, expect_kind: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild a trained model from a checkpoint written by :func:`train`.

    Parameters
    ----------
    path : str or Path
        ``best.pt`` or ``last.pt``.
    expect_kind : {"teacher", "student"}, optional
        Required checkpoint kind.

    Returns
    -------
    model : nn.Module
        The :func:`~model_dev.arch.build_torch` model of the stored spec, on CPU, eval mode.
    meta : dict
        Every metadata entry: ``kind``, ``arch`` (:meth:`ArchSpec.to_dict`), ``train_config``,
        ``frontend`` and ``frontend_hash``, ``classes``, ``dataset``, ``teacher``, ``epoch``,
        ``best``, ``metrics`` (per-epoch rows), ``state_dict_sha256`` and, after
        :func:`evaluate`, ``thresholds``.

    Raises
    ------
    ValueError
        Missing, unreadable or corrupt file, or the wrong kind; the message names the file.
    """
    model, ckpt = _open_checkpoint(Path(path), expect_kind)
    return model, {k: v for k, v in ckpt.items() if k not in _STATE_KEYS}


def check_compatible(meta: dict, fs: FeatureSet, source: str) -> None:
    """Raise ValueError unless ``fs`` has the classes and front end a checkpoint was trained on."""
    if tuple(meta["classes"]) != tuple(fs.classes):
        raise ValueError(f"{source}: trained on classes {meta['classes']}, data has {fs.classes}")
    if meta["frontend_hash"] != fs.config.hash:
        raise ValueError(
            f"{source}: trained on front end {meta['frontend_hash'][:16]}, "
            f"the features come from {fs.config.short_hash}"
        )


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; CUDA requested but missing -> ValueError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


@contextmanager
def _reproducible(device: torch.device) -> Iterator[None]:
    """Fork the global RNGs (restored on exit); deterministic algorithms on CPU."""
    devices = [] if device.type == "cpu" else [device]
    with torch.random.fork_rng(devices=devices):
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(device.type == "cpu" or before)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before)


def _autocast(device: torch.device, amp: bool) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.float16, enabled=amp)


def _split_windows(fs: FeatureSet, splits: Sequence[str], spec: ArchSpec, hop: int) -> ClipWindows:
    idx = fs.indices(splits)
    if not len(idx):
        raise ValueError(
            f"no clips in split(s) {list(splits)}; the data has {sorted(set(fs.splits))}"
        )
    return ClipWindows.from_features(fs, idx, spec.window_frames, hop)


@torch.no_grad()
def _predict(
    model: nn.Module, data: ClipWindows, device: torch.device, batch_size: int, amp: bool = False
) -> np.ndarray:
    """Clip logits (max over windows), float64 ``[n_clips, n_classes]``."""
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        x, mask, _ = data.batch(np.arange(start, min(start + batch_size, len(data))), device)
        with _autocast(device, amp):
            clip_logits = _forward(model, x[mask], mask)[0]
        out.append(clip_logits.float().cpu())
    return torch.cat(out).double().numpy()


def _lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warm = cfg.warmup_epochs * steps_per_epoch
    total = cfg.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min((step - warm) / max(total - warm, 1), 1.0)))

    return factor


@dataclass
class _Run:
    """What one training step needs besides the batch."""

    cfg: TrainConfig
    model: nn.Module
    teacher: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    pos_weight: torch.Tensor | None
    device: torch.device
    amp: bool

    def step(self, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, rng) -> dict[str, float]:
        """One optimisation step on a batch; returns the loss and its parts."""
        cfg = self.cfg
        if cfg.mixup_alpha:
            x, mask, y = _mixup(x, mask, y, cfg, rng)
        windows = _spec_augment(x[mask], cfg, rng)
        with _autocast(self.device, self.amp):
            clip_logits, logits, feats = _forward(self.model, windows, mask)
            if self.teacher is not None:
                with torch.no_grad():
                    _, t_logits, t_feats = _forward(self.teacher, windows, mask)
        bce = F.binary_cross_entropy_with_logits(clip_logits.float(), y, pos_weight=self.pos_weight)
        loss, parts = bce, {"bce": bce.detach()}
        if self.teacher is not None:
            distill, terms = distillation_loss(
                cfg.distill,
                logits.float(),
                t_logits.float(),
                [f.float() for f in feats],
                [f.float() for f in t_feats],
            )
            loss, parts = loss + distill, {**parts, **terms}
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {k: float(v) for k, v in {"loss": loss.detach(), **parts}.items()}


def _run_epoch(run: _Run, data: ClipWindows, epoch: int, progress: bool) -> dict[str, float]:
    """Train one epoch; returns clip-weighted means of the loss parts."""
    cfg = run.cfg
    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(int(rng.integers(2**62)))  # dropout
    run.model.train()
    order = rng.permutation(len(data))
    sums: dict[str, float] = {}
    starts = range(0, len(order), cfg.batch_size)
    desc = f"{cfg.arch} epoch {epoch}/{cfg.epochs}"
    with tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False) as bar:
        for start in bar:
            idx = order[start : start + cfg.batch_size]
            parts = run.step(*data.batch(idx, run.device), rng)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
    return {k: v / len(data) for k, v in sums.items()}


def _better(value: float, best: float | None) -> bool:
    return best is None or (not math.isnan(value) and (math.isnan(best) or value > best))


def _write_metrics(path: Path, rows: list[dict]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

    _atomic_write(path, write)


def _fit_spec(spec: ArchSpec, fs: FeatureSet) -> ArchSpec:
    """``spec`` with the data's class count and mel bands."""
    return dataclasses.replace(spec, n_classes=len(fs.classes), n_mels=int(fs.features.shape[1]))


def _resume(path: Path, identity: dict, run: _Run) -> dict:
    """Restore model, optimizer, scheduler and scaler from ``last.pt``; return the loop state."""
    ckpt = _read_checkpoint(path)
    differs = []
    for key, value in identity.items():
        old = ckpt.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            differs += [
                f"{key}.{k}"
                for k in sorted(value.keys() | old.keys())
                if old.get(k) != value.get(k)
            ]
        elif old != value:
            differs.append(key)
    if differs:
        raise ValueError(f"{path}: cannot resume, the run differs in {differs}")
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    return {k: ckpt[k] for k in ("epoch", "best", "bad_epochs", "stopped", "metrics")}


def train(
    cfg: TrainConfig,
    feature_set: FeatureSet,
    out_dir: str | Path,
    *,
    resume: bool = False,
    spec: ArchSpec | None = None,
    progress: bool = True,
) -> Path:
    """Train a teacher or a (optionally distilled) student; see the module docstring.

    Parameters
    ----------
    cfg : TrainConfig
        The run.
    feature_set : FeatureSet
        Features of all splits (``cfg.train_splits`` and ``cfg.val_splits`` are used).
    out_dir : str or Path
        Run folder (created).
    resume : bool
        Continue from ``out_dir/last.pt`` if it exists (it must come from the same config,
        architecture, data and teacher). Without it, a folder that already holds a run is an
        error.
    spec : ArchSpec, optional
        Architecture overriding ``cfg.arch``'s (e.g. a smaller teacher); ``cfg.arch`` still
        decides the kind. Its ``n_classes`` and ``n_mels`` are set from the data.
    progress : bool
        Show a progress bar per epoch.

    Returns
    -------
    Path
        ``out_dir/best.pt``, the checkpoint of the best validation micro-AUPRC.

    Raises
    ------
    ValueError
        Empty split, incompatible or bad teacher checkpoint, unavailable device, a run in
        ``out_dir`` without ``resume`` or one that differs from ``cfg``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    if last.exists() and not resume:
        raise ValueError(f"{out}: already holds a run (last.pt); resume it or use another folder")
    device = resolve_device(cfg.device)
    spec = _fit_spec(
        spec or (TEACHER if cfg.kind == "teacher" else STUDENTS[cfg.arch]), feature_set
    )
    train_data = _split_windows(feature_set, cfg.train_splits, spec, cfg.window_hop_frames)
    val_data = _split_windows(feature_set, cfg.val_splits, spec, cfg.window_hop_frames)
    teacher, teacher_meta = None, None
    if cfg.teacher is not None:
        teacher, teacher_meta = load_checkpoint(cfg.teacher, expect_kind="teacher")
        check_compatible(teacher_meta, feature_set, cfg.teacher)
        if teacher.spec.window_frames != spec.window_frames:
            raise ValueError(
                f"{cfg.teacher}: teacher windows of {teacher.spec.window_frames} frames, "
                f"the student's are {spec.window_frames}"
            )
        teacher = teacher.to(device).requires_grad_(False)
    identity = {
        "format": CHECKPOINT_FORMAT,
        "kind": cfg.kind,
        "arch": spec.to_dict(),
        "train_config": cfg.to_dict(),
        "frontend": feature_set.config.to_dict(),
        "frontend_hash": feature_set.config.hash,
        "classes": list(feature_set.classes),
        "dataset": {
            "fingerprint": feature_set.fingerprint,
            "n_clips": len(feature_set),
            "train_clips": len(train_data),
            "val_clips": len(val_data),
        },
        "teacher": None,
    }
    if teacher_meta is not None:
        identity["teacher"] = {
            "path": str(cfg.teacher),
            "arch": teacher_meta["arch"]["name"],
            "state_dict_sha256": teacher_meta["state_dict_sha256"],
        }
    _atomic_write(out / "config.json", lambda tmp: Path(tmp).write_text(cfg.to_json() + "\n"))
    with _reproducible(device):
        torch.manual_seed(cfg.seed)
        model = build_torch(spec).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = math.ceil(len(train_data) / cfg.batch_size)
        amp = cfg.amp and device.type == "cuda"
        pos_weight = _pos_weight(train_data.labels, cfg.pos_weight_max)
        run = _Run(
            cfg,
            model,
            teacher,
            optimizer,
            torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(cfg, steps)),
            torch.amp.GradScaler(device.type, enabled=amp),
            None if pos_weight is None else pos_weight.to(device),
            device,
            amp,
        )
        state = {"epoch": 0, "best": None, "bad_epochs": 0, "stopped": False, "metrics": []}
        if resume and last.exists():
            state = _resume(last, identity, run)
        eval_batch = 4 * cfg.batch_size
        while state["epoch"] < cfg.epochs and not state["stopped"]:
            epoch, t0 = state["epoch"] + 1, time.perf_counter()
            losses = _run_epoch(run, train_data, epoch, progress)
            val = auprc(
                val_data.labels.numpy(),
                _predict(model, val_data, device, eval_batch, amp),
                feature_set.classes,
            )
            row = {"epoch": epoch, **losses, "val_micro": val["micro"], "val_macro": val["macro"]}
            row |= {"lr": run.scheduler.get_last_lr()[0], "seconds": time.perf_counter() - t0}
            improved = _better(val["micro"], state["best"] and state["best"]["val_micro"])
            if improved:
                state["best"] = {k: row[k] for k in ("epoch", "val_micro", "val_macro")}
            state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
            state["stopped"] = 0 < cfg.patience <= state["bad_epochs"]
            state["epoch"] = epoch
            state["metrics"] = [*state["metrics"], row]
            weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            ckpt = {**identity, **state, "model": weights}
            ckpt["state_dict_sha256"] = state_dict_sha256(weights)
            if improved:
                _save(ckpt, out / "best.pt")
            resumable = {
                "optimizer": optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "scaler": run.scaler.state_dict(),
            }
            _save({**ckpt, **resumable}, last)
            _write_metrics(out / "metrics.csv", state["metrics"])
            if progress:
                tqdm.write(
                    f"epoch {epoch}: loss {losses['loss']:.4f}, val micro-AUPRC "
                    f"{val['micro']:.4f} (best {state['best']['val_micro']:.4f} "
                    f"@ {state['best']['epoch']})"
                )
    return out / "best.pt"


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def evaluate(
    checkpoint: str | Path,
    feature_set: FeatureSet,
    split: str = "test",
    out_dir: str | Path | None = None,
    target_precision: float | None = None,
    *,
    device: str = "auto",
    batch_size: int = 64,
) -> dict:
    """AUPRC, per-class AP and operating thresholds of a checkpoint.

    Clip scores are ``sigmoid(max over windows of the logits)``, windows as in training. The
    per-class thresholds (:func:`~model_dev.evaluate.operating_thresholds`, on the checkpoint's
    validation splits) are applied to ``split`` and written back into the checkpoint (atomically)
    under ``"thresholds"`` for the device's post-processing.

    Parameters
    ----------
    checkpoint : str or Path
        A checkpoint written by :func:`train`.
    feature_set : FeatureSet
        Features with the checkpoint's classes and front end.
    split : str
        Split to evaluate.
    out_dir : str or Path, optional
        If given, ``evaluation.json`` and ``pr_<split>.png`` are written there.
    target_precision : float, optional
        Thresholds at this precision instead of at maximum F1.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    batch_size : int
        Clips per inference batch.

    Returns
    -------
    dict
        ``checkpoint``, ``kind``, ``arch``, ``state_dict_sha256``, ``frontend_hash``, ``split``,
        ``n_clips``, ``metrics`` (:func:`~model_dev.evaluate.auprc`: micro, macro, chance,
        ``ap/<class>``), ``thresholds`` (``classes``, ``values`` (``inf``: never fires),
        ``split``, ``method``, ``target_precision``, ``score``), ``at_thresholds`` (per class:
        threshold, precision, recall, f1 on ``split``) and ``files``.
    """
    path = Path(checkpoint)
    model, ckpt = _open_checkpoint(path, None)
    check_compatible(ckpt, feature_set, str(path))
    cfg = TrainConfig.from_dict(ckpt["train_config"], f"{path}: train_config")
    dev = resolve_device(device)
    model.to(dev)
    classes = feature_set.classes

    def scores(splits: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        data = _split_windows(feature_set, splits, model.spec, cfg.window_hop_frames)
        logits = torch.from_numpy(_predict(model, data, dev, batch_size))
        return data.labels.numpy(), torch.sigmoid(logits).numpy()

    val_labels, val_scores = scores(cfg.val_splits)
    values = operating_thresholds(val_labels, val_scores, target_precision)
    labels, probs = scores([split])
    decided, truth = probs >= values, labels > 0
    tp = (decided & truth).sum(0)
    precision = tp / np.maximum(decided.sum(0), 1)
    recall = tp / np.maximum(truth.sum(0), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    thresholds = {
        "classes": list(classes),
        "values": [float(v) for v in values],
        "split": ",".join(cfg.val_splits),
        "method": "max_f1" if target_precision is None else "target_precision",
        "target_precision": target_precision,
        "score": "sigmoid(max over windows of the logits); fires when score >= value",
    }
    result = {
        "checkpoint": str(path),
        "kind": ckpt["kind"],
        "arch": ckpt["arch"]["name"],
        "state_dict_sha256": ckpt["state_dict_sha256"],
        "frontend_hash": ckpt["frontend_hash"],
        "split": split,
        "n_clips": len(labels),
        "metrics": auprc(labels, probs, classes),
        "thresholds": thresholds,
        "at_thresholds": {
            c: {"threshold": float(values[i]), "precision": float(precision[i])}
            | {"recall": float(recall[i]), "f1": float(f1[i])}
            for i, c in enumerate(classes)
        },
        "files": {},
    }
    _save({**ckpt, "thresholds": thresholds}, path)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        png = plot_pr_curves(
            labels,
            probs,
            classes,
            out / f"pr_{split}.png",
            title=f"{ckpt['arch']['name']}: {split}",
        )
        result["files"] = {"pr_curves": str(png), "evaluation": str(out / "evaluation.json")}
        text = json.dumps(json_finite(result), indent=1, allow_nan=False) + "\n"
        _atomic_write(out / "evaluation.json", lambda tmp: Path(tmp).write_text(text))
    return result
