"""Sizing sweep: students x distillation methods x seeds against one teacher.

Jobs
----
Every (student, method, seed) is one :func:`~model_dev.train.train` run in
``OUT/jobs/<student>-<method>-s<seed>/``, followed by :func:`~model_dev.evaluate.evaluate` of its
``best.pt`` on the test split (operating thresholds saved in the checkpoint) and a
``result.json`` (metrics, per-class AP and operating points) that marks the job done.
Re-running the sweep skips done jobs, resumes interrupted ones (``train(resume=True)`` from
``last.pt``) and refuses a done job whose training config differs from the sweep's (use another
``OUT``). Jobs run in ``jobs`` spawned processes with ``threads`` torch threads each.

Methods
-------
Every method trains on the hard-label BCE; the distilled ones add one term
(:mod:`model_dev.distill`) with the weight of :class:`SweepConfig`:

* ``none``: BCE only, no teacher;
* ``kd``: ``+ kd_weight * kd`` (soft targets, temperature ``train.temperature``, default 2);
* ``sp``: ``+ sp_weight * sp``; default 3000, the gamma of Tung & Mori (2019), whose loss also
  divides by ``b**2``;
* ``iusp``: ``+ iusp_weight * iusp``; default 1, which gives the IUSP term the same initial
  size as the SP term (measured on the default corpus with the default layer pairs, an untrained
  s5k against the trained teacher: SP 0.0022 x 3000 = 6.6, IUSP 7.0 x 1; BCE about 1).

As in the IUSP paper, SP and IUSP are each added to the hard-label loss alone (no ``kd``).

Report
------
:func:`write_report` reads the finished jobs (so it also works on a partial sweep) and writes
``sweep.csv`` (one row per job), ``summary.csv`` and ``sweep.md`` (per student x method:
micro/macro AUPRC mean and sample standard deviation (ddof 1) over seeds, parameters, MACs, int8
weight and activation bytes from :func:`~model_dev.arch.spec_stats`, and per student
``RI = (iusp - sp) / (sp - none)`` of the mean micro-AUPRCs, n/a when ``sp - none <= 0``), and
``pareto.png`` (micro-AUPRC against int8 weight bytes).
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model_dev.arch import STUDENTS, ArchSpec, spec_stats
from model_dev.checkpoint import load_checkpoint
from model_dev.config_io import JsonConfig
from model_dev.evaluate import evaluate
from model_dev.features import FeatureSet
from model_dev.fileio import atomic_write, atomic_write_text
from model_dev.train import train
from model_dev.train_config import TrainConfig

METHODS = ("none", "kd", "sp", "iusp")
#: TrainConfig fields the sweep sets itself (not allowed in ``train``/``student_train``).
_SWEEP_FIELDS = ("arch", "seed", "teacher", "kd", "sp", "iusp")
RESULT = "result.json"


@dataclass(frozen=True)
class SweepConfig(JsonConfig):
    """What a sweep runs.

    Parameters
    ----------
    students : tuple of str
        Keys of :data:`model_dev.arch.STUDENTS`, in table order.
    methods : tuple of str
        Subset of ``none``, ``kd``, ``sp``, ``iusp``.
    seeds : tuple of int
        Seeds of every student (unless overridden in ``student_seeds``).
    student_seeds : dict of str to tuple of int
        Per-student seeds (e.g. fewer for the large students on a CPU).
    train : dict
        :class:`~model_dev.train_config.TrainConfig` fields shared by all jobs (not ``arch``,
        ``seed``, ``teacher``, ``kd``, ``sp``, ``iusp``: the sweep sets those).
    student_train : dict of str to dict
        Per-student TrainConfig fields on top of ``train`` (e.g. fewer epochs).
    kd_weight, sp_weight, iusp_weight : float
        Weight of the distillation term of methods ``kd``, ``sp`` and ``iusp``.
    split : str
        Split the checkpoints are evaluated on.
    """

    students: tuple[str, ...] = tuple(STUDENTS)
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    student_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    student_train: dict[str, dict] = field(default_factory=dict)
    kd_weight: float = 1.0
    sp_weight: float = 3000.0
    iusp_weight: float = 1.0
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
            ok = ok and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
            if not ok or len(set(value)) != len(value):
                raise fail(name, value, "expected a non-empty list of distinct integers")
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
        for name in ("kd_weight", "sp_weight", "iusp_weight"):
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
            fields |= {"teacher": str(teacher), method: getattr(self, f"{method}_weight")}
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


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
_WORKER_FS: FeatureSet | None = None


def _init_worker(feature_set: FeatureSet, threads: int) -> None:
    global _WORKER_FS  # one copy of the features per worker process, not one per job
    _WORKER_FS = feature_set
    torch.set_num_threads(threads)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    atomic_write_text(path, text)


def _seconds_per_epoch(job_dir: Path) -> float:
    with open(job_dir / "metrics.csv", newline="") as f:
        secs = [float(r["seconds"]) for r in csv.DictReader(f)]
    return float(np.mean(secs)) if secs else float("nan")


def method_of(cfg: TrainConfig) -> str:
    """The sweep method of a job's config: the distillation term in use, or ``"none"``."""
    return next((t for t in METHODS[1:] if getattr(cfg, t) > 0), "none")


def _run_job(
    name: str, cfg: TrainConfig, job_dir: Path, split: str, fs: FeatureSet | None = None
) -> dict:
    """Train (or resume) one job, evaluate its best checkpoint, write ``result.json``."""
    fs = fs if fs is not None else _WORKER_FS
    best = train(cfg, fs, job_dir, resume=True, progress=False)
    ev = evaluate(best, fs, split)  # no PR-curve PNG per job: the sweep plots its own
    _, meta = load_checkpoint(best)
    result = {
        "job": name,
        "student": cfg.arch,
        "method": method_of(cfg),
        "seed": cfg.seed,
        "train_config": cfg.to_dict(),
        "arch": meta["arch"],
        "epochs_run": meta["epoch"],
        "best_epoch": meta["best"]["epoch"],
        "val_micro": meta["best"]["val_micro"],
        "split": split,
        "micro": ev["metrics"]["micro"],
        "macro": ev["metrics"]["macro"],
        "metrics": ev["metrics"],
        "at_thresholds": ev["at_thresholds"],
        "seconds_per_epoch": _seconds_per_epoch(job_dir),
        "checkpoint": str(best),
    }
    _write_json(job_dir / RESULT, result)
    return result


def _is_done(name: str, cfg: TrainConfig, job_dir: Path) -> bool:
    path = job_dir / RESULT
    if not path.is_file():
        return False
    old = _read_json(path).get("train_config", {})
    new = cfg.to_dict()
    differs = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if differs:
        raise ValueError(
            f"{path}: job {name} was run with a different config ({differs}); "
            "use another output folder or delete the job folder"
        )
    return True


def _teacher_result(teacher: Path, fs: FeatureSet, out: Path, split: str) -> dict:
    """Evaluate a copy of the teacher (evaluate() writes thresholds into the checkpoint, and
    the original is shared with the jobs)."""
    path = out / "teacher.json"
    _, meta = load_checkpoint(teacher, expect_kind="teacher")
    if path.is_file():
        old = _read_json(path)
        if old.get("state_dict_sha256") == meta["state_dict_sha256"] and old["split"] == split:
            return old
    tdir = out / "teacher"
    tdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(teacher, tdir / "best.pt")
    ev = evaluate(tdir / "best.pt", fs, split, tdir)
    result = {
        "checkpoint": str(teacher),
        "state_dict_sha256": meta["state_dict_sha256"],
        "arch": meta["arch"],
        "split": split,
        "micro": ev["metrics"]["micro"],
        "macro": ev["metrics"]["macro"],
        "best_epoch": meta["best"]["epoch"],
        "epochs_run": meta["epoch"],
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in meta["metrics"]])),
    }
    _write_json(path, result)
    return result


def sweep(
    config: SweepConfig,
    feature_set: FeatureSet,
    teacher: str | Path,
    out_dir: str | Path,
    *,
    jobs: int = 1,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Run (or continue) a sizing sweep and write its report.

    Parameters
    ----------
    config : SweepConfig
        Students, methods, seeds and training settings.
    feature_set : FeatureSet
        Features of all splits, from the teacher's front end.
    teacher : str or Path
        Teacher checkpoint (``best.pt`` of ``train teacher``); recorded as given in every
        distilled job's config.
    out_dir : str or Path
        Sweep folder: ``jobs/<student>-<method>-s<seed>/``, ``teacher/``, ``sweep_config.json``
        and the report files (see :func:`write_report`).
    jobs : int
        Parallel worker processes (spawned); 1 runs the jobs in this process.
    threads : int, optional
        Torch threads per worker; default ``max(1, cores // jobs)``.
    progress : bool
        Show a progress bar over the jobs.

    Returns
    -------
    dict
        :func:`write_report`'s result, plus ``ran`` and ``skipped`` (job names).

    Raises
    ------
    ValueError
        Bad teacher, a done job with a different config, ``jobs < 1``.
    RuntimeError
        One or more jobs failed (the others still ran and are in the report); names them.
    """
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: must be >= 1")
    out, teacher = Path(out_dir), Path(teacher)
    out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = threads or max(1, (cores or 1) // jobs)
    todo, skipped = [], []
    for name, cfg in config.jobs(str(teacher)):
        job_dir = out / "jobs" / name
        (skipped if _is_done(name, cfg, job_dir) else todo).append((name, cfg, job_dir))
    _write_json(out / "sweep_config.json", {"config": config.to_dict(), "teacher": str(teacher)})
    _teacher_result(teacher, feature_set, out, config.split)
    failed: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="sweep", unit="job", disable=not progress)
    if jobs == 1 or len(todo) <= 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for name, cfg, job_dir in todo:
                try:
                    _run_job(name, cfg, job_dir, config.split, feature_set)
                except Exception as exc:  # noqa: BLE001 - reported with the job's name below
                    failed[name] = f"{type(exc).__name__}: {exc}"
                bar.update()
        finally:
            torch.set_num_threads(before)
    else:
        ctx = multiprocessing.get_context("spawn")
        init = (feature_set, threads)
        with ProcessPoolExecutor(jobs, ctx, initializer=_init_worker, initargs=init) as pool:
            futures = {
                pool.submit(_run_job, name, cfg, job_dir, config.split): name
                for name, cfg, job_dir in todo
            }
            for fut in as_completed(futures):
                if fut.exception() is not None:
                    exc = fut.exception()
                    failed[futures[fut]] = f"{type(exc).__name__}: {exc}"
                bar.update()
                bar.set_postfix_str(futures[fut])
    bar.close()
    report = write_report(out)
    report |= {
        "ran": [t[0] for t in todo if t[0] not in failed],
        "skipped": [s[0] for s in skipped],
    }
    if failed:
        lines = "\n".join(f"  {k}: {v}" for k, v in sorted(failed.items()))
        raise RuntimeError(f"{len(failed)} sweep job(s) failed (see {out / 'jobs'}):\n{lines}")
    return report


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; NaN for fewer than two values)."""
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def relative_improvement(none: float, sp: float, iusp: float) -> float:
    """``(iusp - sp) / (sp - none)``; NaN when ``sp - none <= 0`` or an input is NaN."""
    if any(math.isnan(v) for v in (none, sp, iusp)) or sp - none <= 0:
        return math.nan
    return (iusp - sp) / (sp - none)


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.4f} ± {_fmt(std)}" if not math.isnan(std) else f"{mean:.4f} (1 seed)"


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (fewer or equal bytes and higher AUPRC)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _plot(rows: list[dict], teacher: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"none": "o", "kd": "s", "sp": "^", "iusp": "D"}
    pts = [r for r in rows if not math.isnan(r["micro_mean"])]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in markers:
        sel = [r for r in pts if r["method"] == m]
        if sel:
            ax.errorbar(
                [r["weight_bytes_int8"] for r in sel],
                [r["micro_mean"] for r in sel],
                yerr=[0 if math.isnan(r["micro_std"]) else r["micro_std"] for r in sel],
                fmt=markers[m],
                capsize=3,
                label=m,
            )
    front = [pts[i] for i in _pareto([(r["weight_bytes_int8"], r["micro_mean"]) for r in pts])]
    if front:
        ax.plot(
            [r["weight_bytes_int8"] for r in front],
            [r["micro_mean"] for r in front],
            "k--",
            lw=1,
            drawstyle="steps-post",
            label="Pareto front",
        )
    ax.axhline(teacher["micro"], color="grey", ls=":", label=f"teacher ({teacher['micro']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("int8 weight bytes")
    ax.set_ylabel(f"micro-AUPRC ({teacher['split']}, mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _write_csv(path: Path, rows: list[dict]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)

    if rows:
        atomic_write(path, write)


def write_report(out_dir: str | Path) -> dict:
    """(Re)write a sweep's tables and plot from its finished jobs.

    Parameters
    ----------
    out_dir : str or Path
        A :func:`sweep` folder (needs ``sweep_config.json`` and ``teacher.json``; jobs without
        ``result.json`` are left out and counted as missing).

    Returns
    -------
    dict
        ``jobs`` (rows of ``sweep.csv``), ``summary`` (rows of ``summary.csv``), ``ri``
        (student -> RI, NaN for n/a), ``teacher`` (its evaluation), ``missing`` (job names
        without results) and ``files``.
    """
    out = Path(out_dir)
    saved = _read_json(out / "sweep_config.json")
    config = SweepConfig.from_dict(saved["config"], str(out / "sweep_config.json"))
    teacher = _read_json(out / "teacher.json")
    job_rows, missing = [], []
    stats: dict[str, dict] = {}
    for name, _ in config.jobs(saved["teacher"]):
        path = out / "jobs" / name / RESULT
        if not path.is_file():
            missing.append(name)
            continue
        r = _read_json(path)
        key = json.dumps(r["arch"], sort_keys=True)
        if key not in stats:
            stats[key] = spec_stats(ArchSpec.from_dict(r["arch"], str(path)))
        st = stats[key]
        job_rows.append(
            {
                "job": name,
                "student": r["student"],
                "method": r["method"],
                "seed": r["seed"],
                "micro": r["micro"],
                "macro": r["macro"],
                "val_micro": r["val_micro"],
                "best_epoch": r["best_epoch"],
                "epochs_run": r["epochs_run"],
                "seconds_per_epoch": r["seconds_per_epoch"],
                "params": st["params"],
                "macs": st["macs"],
                "weight_bytes_int8": st["weight_bytes_int8"],
                "activation_bytes_int8": st["activation_bytes_int8"],
            }
        )
    summary, ri = [], {}
    for s in config.students:
        micro_means = {}
        for m in config.methods:
            sel = [r for r in job_rows if r["student"] == s and r["method"] == m]
            micro, micro_sd = _mean_std([r["micro"] for r in sel])
            macro, macro_sd = _mean_std([r["macro"] for r in sel])
            micro_means[m] = micro
            size = {k: sel[0][k] if sel else "" for k in ("params", "macs")}
            size |= {
                k: sel[0][k] if sel else "" for k in ("weight_bytes_int8", "activation_bytes_int8")
            }
            summary.append(
                {"student": s, "method": m, "n_seeds": len(sel), "micro_mean": micro}
                | {"micro_std": micro_sd, "macro_mean": macro, "macro_std": macro_sd}
                | size
            )
        ri[s] = relative_improvement(
            *(micro_means.get(m, math.nan) for m in ("none", "sp", "iusp"))
        )
        for row in summary[-len(config.methods) :]:
            row["ri"] = ri[s]
    files = {
        "jobs": out / "sweep.csv",
        "summary": out / "summary.csv",
        "markdown": out / "sweep.md",
    }
    _write_csv(files["jobs"], job_rows)
    _write_csv(files["summary"], summary)
    md = markdown_tables(summary, ri, teacher, config)
    atomic_write_text(files["markdown"], md)
    if job_rows:
        files["pareto"] = out / "pareto.png"
        _plot([r for r in summary if r["n_seeds"]], teacher, files["pareto"])
    return {
        "jobs": job_rows,
        "summary": summary,
        "ri": ri,
        "teacher": teacher,
        "missing": missing,
        "files": {k: str(v) for k, v in files.items()},
    }


def markdown_tables(summary: list[dict], ri: dict, teacher: dict, config: SweepConfig) -> str:
    """The Markdown tables of :func:`write_report` (full table, then micro-AUPRC and RI)."""
    lines = [
        f"Teacher ({teacher['arch']['name']}): micro-AUPRC {teacher['micro']:.4f}, macro "
        f"{teacher['macro']:.4f} on `{teacher['split']}`.",
        "",
        "| student | method | seeds | micro-AUPRC | macro-AUPRC | params | MACs "
        "| int8 weight bytes | activation bytes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        lines.append(
            f"| {r['student']} | {r['method']} | {r['n_seeds']} "
            f"| {_pm(r['micro_mean'], r['micro_std'])} | {_pm(r['macro_mean'], r['macro_std'])} "
            f"| {r['params']} | {r['macs']} | {r['weight_bytes_int8']} "
            f"| {r['activation_bytes_int8']} |"
        )
    methods = config.methods
    lines += [
        "",
        "| student | " + " | ".join(methods) + " | RI = (iusp − sp) / (sp − none) |",
        "|---|" + "---|" * (len(methods) + 1),
    ]
    for s in config.students:
        rows = {r["method"]: r for r in summary if r["student"] == s}
        cells = [_pm(rows[m]["micro_mean"], rows[m]["micro_std"]) for m in methods]
        if not math.isnan(ri[s]):
            ri_cell = f"{100 * ri[s]:.1f}%"
        elif {"none", "sp", "iusp"} <= set(methods) and all(
            not math.isnan(rows[m]["micro_mean"]) for m in ("none", "sp", "iusp")
        ):
            ri_cell = "n/a (sp − none ≤ 0: SP did not improve on none)"
        else:
            ri_cell = "n/a (results missing)"
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {ri_cell} |")
    lines.append("")
    lines.append(
        "micro/macro: mean ± sample standard deviation (ddof 1) over seeds of the "
        f"`{teacher['split']}`-split AUPRC of each job's best-validation checkpoint."
    )
    return "\n".join(lines) + "\n"
