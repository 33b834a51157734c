"""Sizing sweep: students x distillation methods x seeds against one teacher.

Jobs
----
Every (student, method, seed) is one :func:`~model_dev.train.train` run in
``OUT/jobs/<student>-<method>-s<seed>/``, followed by :func:`~model_dev.evaluate.evaluate` of its
``best.pt`` on the test split (operating thresholds saved in the checkpoint) and a
``result.json`` (metrics, per-class AP and operating points) that marks the job done.
Re-running the sweep skips done jobs, resumes interrupted ones (``train(resume=True)`` from
``last.pt``) and refuses a done job whose training config differs from the sweep's (use another
``OUT``). Jobs run in ``jobs`` spawned processes with ``threads`` torch threads each, or with
``backend="ray"`` as Ray tasks on a local Ray or a cluster (:mod:`model_dev.sweep_ray`).

Methods (arms)
--------------
Every arm trains on the hard-label BCE; the distilled ones add terms (:mod:`model_dev.distill`):
``none`` (BCE only, no teacher), ``kd``, ``sp``, ``iusp`` (as in the IUSP paper, SP and IUSP
alone on top of BCE) and the combined ``kd+sp`` and ``kd+iusp``. Each term's value comes from
:class:`SweepConfig` (``kd``, ``sp``, ``iusp``): with the default gradient weighting it is the
target ratio of the term's gradient norm to the BCE's, calibrated per job at the start of
training (:mod:`model_dev.calibrate`). Jobs of one sweep share a teacher-output cache
(``OUT/teacher-cache``). Seeds are the same across arms, so arms are compared pairwise.

Report
------
:func:`write_report` reads the finished jobs (so it also works on a partial sweep) and writes
``sweep.csv`` (one row per job), ``summary.csv`` and ``sweep.md`` (per student x arm: micro and
macro AUPRC mean ± standard error over seeds, the paired difference to ``none`` (mean ± standard
error over seeds run in both arms), parameters, MACs, int8 weight and activation bytes from
:func:`~model_dev.arch.spec_stats`; per student ``RI = (iusp - sp) / (sp - none)`` of the paired
mean differences with a bootstrap 90% interval over seeds, undefined when ``sp - none`` is not
above its noise), ``pareto.png`` (micro-AUPRC against int8 weight bytes) and ``report.html``
(the tables and the plot on one self-contained page).
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model_dev.checkpoint import load_checkpoint, read_checkpoint
from model_dev.evaluate import evaluate
from model_dev.features import FeatureSet
from model_dev.fileio import write_json
from model_dev.stage_inputs import DatasetSpec, checkpoint_inputs
from model_dev.sweep_config import RESULT, TERMS, SweepConfig
from model_dev.sweep_report import read_json, write_report
from model_dev.train import train
from model_dev.train_config import TrainConfig

# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
_WORKER_FS: FeatureSet | None = None
#: Where jobs run: local processes, or Ray tasks (model_dev.sweep_ray).
BACKENDS = ("local", "ray")


def _init_worker(feature_set: FeatureSet, threads: int) -> None:
    global _WORKER_FS  # one copy of the features per worker process, not one per job
    _WORKER_FS = feature_set
    torch.set_num_threads(threads)


def _seconds_per_epoch(job_dir: Path) -> float:
    with open(job_dir / "metrics.csv", newline="") as f:
        secs = [float(r["seconds"]) for r in csv.DictReader(f)]
    return float(np.mean(secs)) if secs else float("nan")


def method_of(cfg: TrainConfig) -> str:
    """The sweep arm of a job's config: its distillation terms joined by ``+``, or ``"none"``."""
    return "+".join(t for t in TERMS if getattr(cfg, t) > 0) or "none"


def run_job(
    name: str, cfg: TrainConfig, job_dir: Path, split: str, fs: FeatureSet | None = None
) -> dict:
    """Train (or resume) one job, evaluate its best checkpoint, write ``result.json``."""
    fs = fs if fs is not None else _WORKER_FS
    cache = job_dir.parent.parent / "teacher-cache"
    best = train(cfg, fs, job_dir, resume=True, progress=False, teacher_cache=cache)
    ev = evaluate(best, fs, split)  # no PR-curve PNG per job: the sweep plots its own
    meta = read_checkpoint(best)
    last = read_checkpoint(job_dir / "last.pt")  # best.pt's epoch is the best one
    result = {
        "job": name,
        "student": cfg.arch,
        "method": method_of(cfg),
        "seed": cfg.seed,
        "train_config": cfg.to_dict(),
        "arch": meta["arch"],
        "epochs_run": last["epoch"],
        "best_epoch": meta["best"]["epoch"],
        "val_micro": meta["best"]["val_micro"],
        "distill": meta.get("distill"),
        "split": split,
        "micro": ev["metrics"]["micro"],
        "macro": ev["metrics"]["macro"],
        "metrics": ev["metrics"],
        "at_thresholds": ev["at_thresholds"],
        "seconds_per_epoch": _seconds_per_epoch(job_dir),
        "checkpoint": str(best),
    }
    write_json(job_dir / RESULT, result)
    return result


def _is_done(name: str, cfg: TrainConfig, job_dir: Path) -> bool:
    path = job_dir / RESULT
    if not path.is_file():
        return False
    old = read_json(path).get("train_config", {})
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
        old = read_json(path)
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
        "epochs_configured": meta["train_config"]["epochs"],  # a best.pt cannot tell how many ran
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in meta["metrics"]])),
    }
    write_json(path, result)
    return result


def sweep(
    config: SweepConfig,
    data: DatasetSpec | FeatureSet,
    teacher: str | Path,
    out_dir: str | Path,
    *,
    jobs: int = 1,
    threads: int | None = None,
    progress: bool = True,
    on_result: Callable[[dict], None] | None = None,
    backend: str = "local",
    address: str | None = None,
) -> dict:
    """Run (or continue) a sizing sweep and write its report.

    Parameters
    ----------
    config : SweepConfig
        Students, methods, seeds and training settings.
    data : DatasetSpec or FeatureSet
        The dataset (features computed with the teacher's front end) or its features.
    teacher : str or Path
        Teacher checkpoint (``best.pt`` of ``train teacher``); recorded as given in every
        distilled job's config.
    out_dir : str or Path
        Sweep folder: ``jobs/<student>-<method>-s<seed>/``, ``teacher/``, ``teacher-cache/``,
        ``sweep_config.json`` and the report files (see :func:`write_report`).
    jobs : int
        Parallel worker processes (spawned); 1 runs the jobs in this process.
    threads : int, optional
        Torch threads per worker; default ``max(1, cores // jobs)``.
    progress : bool
        Show a progress bar over the jobs.
    on_result : callable, optional
        Called in this process with each finished job's ``result.json`` content, as jobs
        finish (e.g. to export results while a long sweep runs).
    backend : {"local", "ray"}
        ``local``: ``jobs`` processes on this machine; ``ray``: one Ray task per job
        (:mod:`model_dev.sweep_ray`), same jobs, same results, same resumability.
    address : str, optional
        With ``backend="ray"``: a running Ray cluster; None starts a local Ray.

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
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")
    out, teacher = Path(out_dir), Path(teacher)
    fs = data if isinstance(data, FeatureSet) else checkpoint_inputs(teacher, data).features
    out.mkdir(parents=True, exist_ok=True)
    threads = threads or max(1, local_cpus() // jobs)
    todo, skipped = [], []
    for name, cfg in config.jobs(str(teacher)):
        job_dir = out / "jobs" / name
        (skipped if _is_done(name, cfg, job_dir) else todo).append((name, cfg, job_dir))
    write_json(
        out / "sweep_config.json",
        {"config": config.to_dict(), "teacher": str(teacher), **fs.skip_record()},
    )
    _teacher_result(teacher, fs, out, config.split)
    on_result = on_result or (lambda r: None)
    if backend == "ray":
        from model_dev.sweep_ray import run_jobs_ray

        failed = run_jobs_ray(todo, config.split, fs, threads, progress, on_result, address)
    else:
        failed = _run_jobs(todo, config.split, fs, jobs, threads, progress, on_result)
    report = write_report(out)
    report |= {
        "ran": [t[0] for t in todo if t[0] not in failed],
        "skipped": [s[0] for s in skipped],
    }
    if failed:
        lines = "\n".join(f"  {k}: {v}" for k, v in sorted(failed.items()))
        raise RuntimeError(f"{len(failed)} sweep job(s) failed (see {out / 'jobs'}):\n{lines}")
    return report


def local_cpus() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _run_jobs(
    todo: list[tuple[str, TrainConfig, Path]],
    split: str,
    fs: FeatureSet,
    jobs: int,
    threads: int,
    progress: bool,
    on_result: Callable[[dict], None],
) -> dict[str, str]:
    """Run the jobs here or in spawned workers; returns the failed ones with their errors."""
    failed: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="sweep", unit="job", disable=not progress)
    if jobs == 1 or len(todo) <= 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for name, cfg, job_dir in todo:
                try:
                    on_result(run_job(name, cfg, job_dir, split, fs))
                except Exception as exc:  # noqa: BLE001 - reported with the job's name
                    failed[name] = f"{type(exc).__name__}: {exc}"
                bar.update()
        finally:
            torch.set_num_threads(before)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            jobs, ctx, initializer=_init_worker, initargs=(fs, threads)
        ) as pool:
            futures = {
                pool.submit(run_job, name, cfg, job_dir, split): name for name, cfg, job_dir in todo
            }
            for fut in as_completed(futures):
                if fut.exception() is not None:
                    exc = fut.exception()
                    failed[futures[fut]] = f"{type(exc).__name__}: {exc}"
                else:
                    on_result(fut.result())
                bar.update()
                bar.set_postfix_str(futures[fut])
    bar.close()
    return failed
