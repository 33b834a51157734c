"""The training run's configuration (:class:`TrainConfig`): stored in every checkpoint."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from model_dev.arch import STUDENTS
from model_dev.config_io import JsonConfig
from model_dev.distill import DistillConfig

ARCHS = ("teacher", *STUDENTS)
SCHEDULES = ("cosine", "constant")
MIXUP_LABELS = ("convex", "max")
DISTILL_TERMS = ("kd", "sp", "iusp")
WEIGHTINGS = ("gradient", "fixed")
TARGETS = ("cached", "live")


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
    kd, sp, iusp : float
        Distillation terms (a value > 0 needs ``teacher``): with ``weighting="gradient"`` the
        target ratio of the term's gradient norm to the BCE's on the student's parameters
        (calibrated at the start of training, :mod:`model_dev.calibrate`); with ``"fixed"`` the
        loss weight itself.
    weighting : {"gradient", "fixed"}
        How ``kd``, ``sp`` and ``iusp`` are read.
    calibration_batches : int
        Batches over which gradient norms are measured for ``weighting="gradient"``.
    temperature, layer_pairs, iusp_scope
        :class:`~model_dev.distill.DistillConfig` fields.
    teacher_targets : {"cached", "live"}
        Teacher outputs computed once on the clean training windows
        (:class:`~model_dev.teacher_cache.TeacherCache`), or by running the teacher on every
        augmented batch; mixup needs ``"live"``.
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
    weighting: str = "gradient"
    calibration_batches: int = 8
    temperature: float = 2.0
    layer_pairs: str = "stages"
    iusp_scope: str = "clip"
    teacher_targets: str = "cached"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            self._coerce(f.name, f.type, getattr(self, f.name))
        positive = ("epochs", "batch_size", "lr", "window_hop_frames", "temperature")
        non_negative = ("seed", "weight_decay", "warmup_epochs", "patience", "time_masks")
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
            (self.weighting in WEIGHTINGS, "weighting", f"must be one of {list(WEIGHTINGS)}"),
            (self.calibration_batches > 0, "calibration_batches", "must be > 0"),
            (self.teacher_targets in TARGETS, "teacher_targets", f"must be in {list(TARGETS)}"),
            (
                not (self.teacher_targets == "cached" and self.mixup_alpha and weights),
                "teacher_targets",
                "cached teacher outputs cannot follow mixup; use 'live' or mixup 0",
            ),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")
        try:
            DistillConfig(1.0, 0.0, 0.0, self.temperature, self.layer_pairs, self.iusp_scope)
        except ValueError as exc:
            raise ValueError(f"TrainConfig: {exc}") from None

    def _coerce(self, name: str, annotation: str, value: object) -> None:
        """Type-check field ``name`` against its annotation; normalise floats and tuples."""
        if annotation.endswith("| None") and value is None:
            return
        base = annotation.split(" |")[0]

        def fail() -> ValueError:
            return ValueError(f"TrainConfig.{name}: expected {annotation}, got {value!r}")

        if base.startswith("tuple"):
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise fail()
            if not all(isinstance(v, str) for v in value):
                raise fail()
            object.__setattr__(self, name, tuple(value))
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
        return DistillConfig(
            self.kd, self.sp, self.iusp, self.temperature, self.layer_pairs, self.iusp_scope
        )
