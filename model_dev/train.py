"""Training of teachers and students: one loop; distillation adds optional terms.

Data path
---------
Every clip of a :class:`~model_dev.features.FeatureSet` is cut once into model windows
(:func:`~model_dev.arch.clip_windows` on the int8 features, hop ``window_hop_frames``; short clips
are padded with the front end's silence code) and kept as int8 ``[n_clips, max_windows, T, F]``
with a bool mask of the real windows (:class:`~model_dev.windows.ClipWindows`). A batch is
dequantised on the compute device, ``(q - zero_point) * scale``. The model runs on the real
windows only (padding windows never reach BatchNorm); the clip logits are the maximum over
windows (:func:`~model_dev.torch_net.aggregate`), exactly what the device computes, and the BCE is
applied to them (multiple-instance learning: a clip label says "somewhere in the clip").

Loss
----
``BCE(clip logits, labels, pos_weight) + sum(weight[t] * term[t])``. ``pos_weight[c]`` is
``n_negative / n_positive`` of class ``c`` in the training split, clipped to
``[1, pos_weight_max]`` (rare classes weigh more; 0 turns it off). With a teacher checkpoint,
:func:`~model_dev.distill.distillation_loss` compares the student's window logits (``kd``) and
block features (``sp``, ``iusp`` per clip or per window) with the frozen teacher's, served by
:mod:`model_dev.teacher_cache` (computed once on the clean windows, or live on the augmented
ones). The weights are calibrated on gradient norms before the first epoch
(:mod:`model_dev.calibrate`) or taken as configured; they are stored in the checkpoint
(``distill``: weights, targets, measured norms, layer pairs). See docs/distillation.md.

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

Files in ``out_dir``: ``config.json`` (the :class:`TrainConfig`), ``dataset.json`` (only when
the validate split was carved from train: the fraction, grouping and counts), ``metrics.csv``
(one row per epoch), ``best.pt`` (best validation micro-AUPRC) and ``last.pt`` (every epoch,
with optimizer, scheduler and early-stopping state for resuming), all written atomically
(temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from model_dev.arch import STUDENTS, TEACHER, ArchSpec, block_shapes
from model_dev.augment import mixup, spec_augment
from model_dev.calibrate import balanced_weights, mean_gradient_norms
from model_dev.checkpoint import (
    CHECKPOINT_FORMAT,
    check_compatible,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    state_dict_sha256,
)
from model_dev.device import autocast, reproducible, resolve_device
from model_dev.distill import Pairs, clip_groups, distillation_loss
from model_dev.features import FeatureSet
from model_dev.fileio import atomic_write_text, remove_stale_temporaries, write_csv, write_json
from model_dev.tagging_metrics import auprc
from model_dev.teacher_cache import LiveTeacher, TeacherCache
from model_dev.torch_net import build_torch
from model_dev.train_config import TrainConfig
from model_dev.windows import ClipWindows, forward_windows, predict, split_windows


def _pos_weight(labels: torch.Tensor, cap: float) -> torch.Tensor | None:
    """``clip(n_neg / n_pos, 1, cap)`` per class (None when ``cap`` is 0)."""
    if not cap:
        return None
    pos = labels.sum(0)
    return ((len(labels) - pos) / pos.clamp(min=1)).clamp(1.0, cap)


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
    data: ClipWindows
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    pos_weight: torch.Tensor | None
    device: torch.device
    amp: bool
    teacher: LiveTeacher | TeacherCache | None = None
    pairs: Pairs = ()
    weights: dict[str, float] = field(default_factory=dict)

    def losses(self, idx: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Unweighted loss terms of the (augmented) batch of clips ``idx``."""
        cfg, data = self.cfg, self.data
        x, mask, y = data.batch(idx, self.device)
        n_frames = data.n_frames[idx]
        if cfg.mixup_alpha:
            x, mask, y, partner = mixup(x, mask, y, cfg, rng)
            n_frames = np.maximum(n_frames, n_frames[partner])
        windows = spec_augment(x[mask], cfg, rng)
        with autocast(self.device, self.amp):
            clip_logits, logits, feats = forward_windows(self.model, windows, mask)
        bce = F.binary_cross_entropy_with_logits(clip_logits.float(), y, pos_weight=self.pos_weight)
        terms = {"bce": bce}
        if self.teacher is not None:
            window_frames, groups = int(x.shape[2]), None
            if cfg.iusp and cfg.iusp_scope == "clip":
                counts = mask.sum(1).tolist()
                groups = clip_groups(n_frames.tolist(), counts, window_frames, data.hop_frames)
            with autocast(self.device, self.amp):
                target = self.teacher(idx, windows, mask, groups)
            terms |= distillation_loss(
                cfg.distill, self.pairs, logits, feats, target, groups, window_frames
            )
        return terms

    def step(self, idx: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        """One optimisation step on the clips ``idx``; returns the loss and its parts."""
        terms = self.losses(idx, rng)
        loss = sum(self.weights.get(k, 1.0) * v for k, v in terms.items())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {k: float(v.detach()) for k, v in {"loss": loss, **terms}.items()}


def _run_epoch(run: _Run, epoch: int, progress: bool) -> dict[str, float]:
    """Train one epoch; returns clip-weighted means of the loss parts."""
    cfg = run.cfg
    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(int(rng.integers(2**62)))  # dropout
    run.model.train()
    order = rng.permutation(len(run.data))
    sums: dict[str, float] = {}
    starts = range(0, len(order), cfg.batch_size)
    desc = f"{cfg.arch} epoch {epoch}/{cfg.epochs}"
    with tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False) as bar:
        for start in bar:
            idx = order[start : start + cfg.batch_size]
            parts = run.step(idx, rng)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
    return {k: v / len(run.data) for k, v in sums.items()}


def _attach_teacher(
    run: _Run, teacher: nn.Module, identity: dict, cache_dir: Path | None, progress: bool
) -> None:
    """Give ``run`` its teacher side: layer pairs, and the live teacher or its cache."""
    cfg, dcfg = run.cfg, run.cfg.distill
    run.pairs = dcfg.pairs_for(block_shapes(run.model.spec), block_shapes(teacher.spec))
    window_frames = run.model.spec.window_frames
    if cfg.teacher_targets == "live":
        run.teacher = LiveTeacher(teacher, dcfg, run.pairs, window_frames)
        return
    key = {
        "teacher_sha256": identity["teacher"]["state_dict_sha256"],
        "fingerprint": identity["dataset"]["fingerprint"],
        "frontend_hash": identity["frontend_hash"],
        "window": [window_frames, run.data.hop_frames],
        "clips": hashlib.sha256(np.asarray(run.data.clip_index).tobytes()).hexdigest(),
    }
    run.teacher = TeacherCache.load_or_build(
        cache_dir, key, teacher, run.data, dcfg, run.pairs, run.device, progress=progress
    )


def _distill_weights(run: _Run) -> dict:
    """The terms' loss weights: as configured, or calibrated on gradient norms."""
    cfg = run.cfg
    targets = {t: getattr(cfg, t) for t in cfg.distill.terms}
    if cfg.weighting == "fixed":
        return {"weights": targets, "targets": None, "grad_norms": None}
    norms = mean_gradient_norms(
        run.model, run.losses, len(run.data), cfg.batch_size, cfg.calibration_batches, cfg.seed
    )
    return {
        "weights": balanced_weights(norms, targets),
        "targets": targets,
        "grad_norms": norms,
    }


def _better(value: float, best: float | None) -> bool:
    return best is None or (not math.isnan(value) and (math.isnan(best) or value > best))


def _fit_spec(spec: ArchSpec, fs: FeatureSet) -> ArchSpec:
    """``spec`` with the data's class count and mel bands."""
    return dataclasses.replace(spec, n_classes=len(fs.classes), n_mels=int(fs.features.shape[1]))


def _resume(path: Path, identity: dict, run: _Run) -> dict:
    """Restore model, optimizer, scheduler and scaler from ``last.pt``; return the loop state."""
    ckpt = read_checkpoint(path)
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
    keys = ("epoch", "best", "bad_epochs", "stopped", "metrics", "distill")
    return {k: ckpt.get(k) for k in keys}


def train(
    cfg: TrainConfig,
    feature_set: FeatureSet,
    out_dir: str | Path,
    *,
    resume: bool = False,
    spec: ArchSpec | None = None,
    progress: bool = True,
    teacher_cache: str | Path | None = None,
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
    teacher_cache : str or Path, optional
        Root of the teacher-output cache (``teacher_targets="cached"``); default
        ``out_dir/teacher-cache``. Share one root between runs to compute the teacher once.

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
    remove_stale_temporaries(out)  # of a run killed while it wrote a checkpoint
    last = out / "last.pt"
    if last.exists() and not resume:
        raise ValueError(f"{out}: already holds a run (last.pt); resume it or use another folder")
    device = resolve_device(cfg.device)
    spec = _fit_spec(
        spec or (TEACHER if cfg.kind == "teacher" else STUDENTS[cfg.arch]), feature_set
    )
    train_data = split_windows(feature_set, cfg.train_splits, spec, cfg.window_hop_frames)
    val_data = split_windows(feature_set, cfg.val_splits, spec, cfg.window_hop_frames)
    teacher = _load_teacher(cfg, feature_set, spec, device)
    identity = _identity(cfg, spec, feature_set, train_data, val_data, teacher)
    atomic_write_text(out / "config.json", cfg.to_json() + "\n")
    if feature_set.validation:  # the run's validate split was carved from train: say how
        write_json(out / "dataset.json", identity["dataset"])
    with reproducible(device):
        torch.manual_seed(cfg.seed)
        run = _new_run(cfg, spec, train_data, device)
        state = {"epoch": 0, "best": None, "bad_epochs": 0, "stopped": False, "metrics": []}
        state["distill"] = None
        if teacher is not None:
            cache = Path(teacher_cache) if teacher_cache is not None else out / "teacher-cache"
            _attach_teacher(run, teacher[0], identity, cache, progress)
        if resume and last.exists():
            state = _resume(last, identity, run)
        elif teacher is not None:
            state["distill"] = {**_distill_weights(run), "pairs": [list(p) for p in run.pairs]}
        if state["distill"] is not None:
            run.weights = state["distill"]["weights"]
        _fit(run, state, identity, val_data, feature_set.classes, out, progress)
    return out / "best.pt"


def _load_teacher(
    cfg: TrainConfig, fs: FeatureSet, spec: ArchSpec, device: torch.device
) -> tuple[nn.Module, dict] | None:
    """The frozen teacher and its metadata (None without one); checked against data and spec."""
    if cfg.teacher is None:
        return None
    teacher, meta = load_checkpoint(cfg.teacher, expect_kind="teacher")
    check_compatible(meta, fs, cfg.teacher)
    if teacher.spec.window_frames != spec.window_frames:
        raise ValueError(
            f"{cfg.teacher}: teacher windows of {teacher.spec.window_frames} frames, "
            f"the student's are {spec.window_frames}"
        )
    return teacher.to(device).requires_grad_(False), meta


def _new_run(cfg: TrainConfig, spec: ArchSpec, data: ClipWindows, device: torch.device) -> _Run:
    """A freshly initialised model (from the current torch seed) with its optimiser."""
    model = build_torch(spec).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(data) / cfg.batch_size)
    amp = cfg.amp and device.type == "cuda"
    pos_weight = _pos_weight(data.labels, cfg.pos_weight_max)
    return _Run(
        cfg,
        model,
        data,
        optimizer,
        torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(cfg, steps)),
        torch.amp.GradScaler(device.type, enabled=amp),
        None if pos_weight is None else pos_weight.to(device),
        device,
        amp,
    )


def _identity(
    cfg: TrainConfig,
    spec: ArchSpec,
    fs: FeatureSet,
    train_data: ClipWindows,
    val: ClipWindows,
    teacher: tuple[nn.Module, dict] | None,
) -> dict:
    """What a checkpoint records about its run (and what a resumed run must match)."""
    teacher_meta = teacher[1] if teacher is not None else None
    return {
        "format": CHECKPOINT_FORMAT,
        "kind": cfg.kind,
        "arch": spec.to_dict(),
        "train_config": cfg.to_dict(),
        "frontend": fs.config.to_dict(),
        "frontend_hash": fs.config.hash,
        "classes": list(fs.classes),
        "dataset": {
            "fingerprint": fs.fingerprint,
            "n_clips": len(fs),
            "train_clips": len(train_data),
            "val_clips": len(val),
            **({"validation": fs.validation} if fs.validation else {}),
            **fs.skip_record(),
        },
        "teacher": None
        if teacher_meta is None
        else {
            "path": str(cfg.teacher),
            "arch": teacher_meta["arch"]["name"],
            "state_dict_sha256": teacher_meta["state_dict_sha256"],
        },
    }


def _fit(
    run: _Run,
    state: dict,
    identity: dict,
    val_data: ClipWindows,
    classes: tuple[str, ...],
    out: Path,
    progress: bool,
) -> None:
    """The epoch loop: train, validate, keep the best, checkpoint every epoch, stop early."""
    cfg, model = run.cfg, run.model
    while state["epoch"] < cfg.epochs and not state["stopped"]:
        epoch, t0 = state["epoch"] + 1, time.perf_counter()
        losses = _run_epoch(run, epoch, progress)
        scores = predict(model, val_data, run.device, 4 * cfg.batch_size, run.amp)
        val = auprc(val_data.labels.numpy(), scores, classes)
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
            save_checkpoint(ckpt, out / "best.pt")
        resumable = {
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
        }
        save_checkpoint({**ckpt, **resumable}, out / "last.pt")
        write_csv(out / "metrics.csv", state["metrics"])
        if progress:
            tqdm.write(
                f"epoch {epoch}: loss {losses['loss']:.4f}, val micro-AUPRC "
                f"{val['micro']:.4f} (best {state['best']['val_micro']:.4f} "
                f"@ {state['best']['epoch']})"
            )
