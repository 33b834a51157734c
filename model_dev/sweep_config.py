"""What a sizing sweep runs: :class:`SweepConfig` (students x arms x seeds, shared training
settings, the distillation terms' values)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from model_dev.arch import STUDENTS
from model_dev.config_io import JsonConfig
from model_dev.train_config import TrainConfig

METHODS = ("none", "kd", "sp", "iusp", "kd+sp", "kd+iusp")
TERMS = ("kd", "sp", "iusp")
#: TrainConfig fields the sweep sets itself (not allowed in ``train``/``student_train``).
_SWEEP_FIELDS = ("arch", "seed", "teacher", *TERMS)
RESULT = "result.json"


@dataclass(frozen=True)
class SweepConfig(JsonConfig):
    """What a sweep runs.

    Parameters
    ----------
    students : tuple of str
        Keys of :data:`model_dev.arch.STUDENTS`, in table order.
    methods : tuple of str
        Arms, a subset of :data:`METHODS`.
    seeds : tuple of int
        Seeds of every student (unless overridden in ``student_seeds``).
    student_seeds : dict of str to tuple of int
        Per-student seeds (e.g. fewer for the large students on a CPU).
    train : dict
        :class:`~model_dev.train_config.TrainConfig` fields shared by all jobs (not ``arch``,
        ``seed``, ``teacher``, ``kd``, ``sp``, ``iusp``: the sweep sets those).
    student_train : dict of str to dict
        Per-student TrainConfig fields on top of ``train`` (e.g. fewer epochs).
    kd, sp, iusp : float
        Value of each distillation term in the arms that use it (a target gradient ratio under
        the default ``weighting="gradient"``, else a loss weight): selected on the validation
        split (``benchmarks/distill.py --select``).
    split : str
        Split the checkpoints are evaluated on.
    """

    students: tuple[str, ...] = tuple(STUDENTS)
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    student_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    student_train: dict[str, dict] = field(default_factory=dict)
    kd: float = 1.0
    sp: float = 1.0
    iusp: float = 1.0
    split: str = "test"

    def __post_init__(self) -> None:
        def fail(name: str, value: object, why: str) -> ValueError:
            return ValueError(f"SweepConfig.{name}={value!r}: {why}")

        def names(name: str, value: object, allowed: Sequence[str]) -> tuple[str, ...]:
            if isinstance(value, str) or not isinstance(value, Sequence) or not value:
                raise fail(name, value, f"expected a non-empty list from {list(allowed)}")
            for v in value:
                if v not in allowed:
                    raise fail(name, value, f"{v!r} is not one of {list(allowed)}")
            if len(set(value)) != len(value):
                raise fail(name, value, "has duplicates")
            return tuple(value)

        def seeds(name: str, value: object) -> tuple[int, ...]:
            ok = not isinstance(value, str) and isinstance(value, Sequence) and value
            ok = ok and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
            )
            if not ok or len(set(value)) != len(value):
                raise fail(name, value, "expected a non-empty list of distinct integers >= 0")
            return tuple(value)

        def mapping(name: str, value: object) -> dict:
            if not isinstance(value, dict):
                raise fail(name, value, "expected a mapping")
            return value

        set_ = object.__setattr__
        set_(self, "students", names("students", self.students, list(STUDENTS)))
        set_(self, "methods", names("methods", self.methods, METHODS))
        set_(self, "seeds", seeds("seeds", self.seeds))
        per_seed = mapping("student_seeds", self.student_seeds)
        set_(
            self, "student_seeds", {k: seeds(f"student_seeds.{k}", v) for k, v in per_seed.items()}
        )
        for name in TERMS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise fail(name, value, "must be a number > 0")
            set_(self, name, float(value))
        if not isinstance(self.split, str) or not self.split:
            raise fail("split", self.split, "must name a split")
        mapping("train", self.train)
        per_train = mapping("student_train", self.student_train)
        for key in (*per_seed, *per_train):
            if key not in self.students:
                where = "student_seeds" if key in per_seed else "student_train"
                raise fail(f"{where}.{key}", key, f"not in students {list(self.students)}")
        for key, fields in [("train", self.train)] + [
            (f"student_train.{k}", mapping(f"student_train.{k}", v)) for k, v in per_train.items()
        ]:
            for name in fields:
                if name in _SWEEP_FIELDS:
                    raise fail(f"{key}.{name}", fields[name], "is set by the sweep")
        for student in self.students:  # every job's TrainConfig must be valid
            self.train_config(student, self.methods[-1], self.seeds_of(student)[0], "teacher.pt")

    def seeds_of(self, student: str) -> tuple[int, ...]:
        """Seeds run for ``student``."""
        return self.student_seeds.get(student, self.seeds)

    def train_config(self, student: str, method: str, seed: int, teacher: str) -> TrainConfig:
        """The :class:`~model_dev.train_config.TrainConfig` of one job."""
        fields = {**self.train, **self.student_train.get(student, {})}
        fields |= {"arch": student, "seed": seed, "kd": 0.0, "sp": 0.0, "iusp": 0.0}
        if method != "none":
            fields |= {"teacher": str(teacher)}
            fields |= {term: getattr(self, term) for term in method.split("+")}
        where = "SweepConfig.train" + (
            f"+student_train.{student}" if student in self.student_train else ""
        )
        return TrainConfig.from_dict(fields, where)

    def jobs(self, teacher: str) -> list[tuple[str, TrainConfig]]:
        """``(name, config)`` of every job, students first, then seeds, then methods."""
        return [
            (f"{s}-{m}-s{seed}", self.train_config(s, m, seed, teacher))
            for s in self.students
            for seed in self.seeds_of(s)
            for m in self.methods
        ]
