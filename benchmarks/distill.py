"""Distillation sweep on the default corpus: teacher AUPRC, then none/kd/sp/iusp students.

Runs :func:`model_dev.sweep.sweep` against the benchmark teacher and writes its section of
``docs/benchmarks.md`` (between the ``distill`` markers; the rest of the file is left alone).

Settings: by default CPU-reduced (2 cores, no GPU): s5k only, 6 epochs, 3 seeds; ``--full``
uses the full settings (30 epochs, 3 seeds, every size; meant for a GPU). The settings used are
printed and recorded.

Usage::

    python benchmarks/distill.py [--full] [--jobs 2]     # waits for the teacher, runs, documents
    python benchmarks/distill.py --report-only            # tables + docs from a finished sweep
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from model_dev.arch import ArchSpec, spec_stats
from model_dev.checkpoint import load_checkpoint
from model_dev.datasets import load_dataset
from model_dev.features import features
from model_dev.frontend import FrontendConfig
from model_dev.sweep import SweepConfig, sweep, write_report

BEGIN, END = "<!-- distill-benchmark:begin -->", "<!-- distill-benchmark:end -->"

#: CPU-reduced settings: what fits the 2 shared CPU cores of a development session (measured
#: there: a distilled s5k epoch costs 60-120 s with 1 thread per job under load, most of it the
#: teacher's forward pass; an undistilled one 17 s): the smallest student only, where the goal
#: is stated, 6 epochs, 3 seeds. Larger sizes need ``--full`` (a GPU).
CPU_SETTINGS = {
    "students": ["s5k"],
    "methods": ["none", "kd", "sp", "iusp"],
    "seeds": [0, 1, 2],
    "train": {"epochs": 6, "device": "cpu"},
}
#: Full settings: TrainConfig defaults (30 epochs, patience 8), 3 seeds of every size.
FULL_SETTINGS = {
    "students": ["s5k", "s20k", "s70k", "s250k"],
    "methods": ["none", "kd", "sp", "iusp"],
    "seeds": [0, 1, 2],
}


def wait_for_teacher(teacher: Path, poll_s: float = 60.0) -> None:
    """Block until the teacher run next to ``teacher`` has finished (stopped or last epoch)."""
    last = teacher.parent / "last.pt"
    while True:
        if last.is_file():
            _, meta = load_checkpoint(last, expect_kind="teacher")
            epochs = meta["train_config"]["epochs"]
            if meta["stopped"] or meta["epoch"] >= epochs:
                print(f"teacher finished: {meta['epoch']} epochs, best {meta['best']}", flush=True)
                return
            print(f"waiting for the teacher: epoch {meta['epoch']}/{epochs}", flush=True)
        else:
            print(f"waiting for the teacher: no {last} yet", flush=True)
        time.sleep(poll_s)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def docs_section(out: Path, report: dict, meta: dict) -> str:
    """The Markdown of the benchmark section (between the markers)."""
    teacher, cfg = report["teacher"], meta["config"]
    jobs = report["jobs"]
    summary = {(r["student"], r["method"]): r for r in report["summary"]}
    smallest = cfg["students"][0]
    m = {k: summary[(smallest, k)]["micro_mean"] for k in ("none", "sp", "iusp")}
    ri = report["ri"][smallest]
    ordered = m["iusp"] > m["sp"] > m["none"]
    met = ordered and not math.isnan(ri) and ri >= 0.27
    ri_txt = "n/a (sp − none ≤ 0)" if math.isnan(ri) else f"{100 * ri:.1f}%"
    verdict = (
        f"**{'Met' if met else 'Not met'}** at {smallest}: none {m['none']:.4f}, "
        f"sp {m['sp']:.4f}, iusp {m['iusp']:.4f} (micro-AUPRC, mean over seeds); "
        f"iusp > sp > none is {'true' if ordered else 'false'}, RI {ri_txt} (goal ≥ 27%)."
    )
    sec = {
        (s, dist): _mean(
            [
                float(r["seconds_per_epoch"])
                for r in jobs
                if r["student"] == s and (r["method"] != "none") == dist
            ]
        )
        for s in cfg["students"]
        for dist in (False, True)
    }
    table = (out / "sweep.md").read_text().strip()
    t_params = spec_stats(ArchSpec.from_dict(teacher["arch"]))["params"]
    settings = json.dumps(cfg, sort_keys=True)
    missing = report["missing"]
    lines = [
        "## Distillation sweep (teacher, students, KD / SP / IUSP)",
        "",
        f"- Command: `{meta['command']}`; regenerate this section from the finished sweep with "
        "`.venv/bin/python benchmarks/distill.py --report-only`",
        f"- Date: {meta['date']}; machine: {meta['machine']}",
        f"- Settings ({meta['settings']}): `{settings}`",
        f"- Data: `{meta['data']}` (features cached under `{meta['cache']}`), "
        f"{teacher['split']} split for all AUPRCs; teacher `{teacher['checkpoint']}`",
        "- Methods: BCE on the clip logits (max over windows) plus one term: kd weight "
        f"{cfg['kd_weight']:g} (T = 2), sp weight {cfg['sp_weight']:g} (Tung & Mori's gamma), "
        f"iusp weight {cfg['iusp_weight']:g} (same initial size as the SP term); layer pairs: "
        "the default (last block of each student stage with the teacher stage of nearest "
        "resolution); Gram rows L2-normalised, student IUSP Gram resized bilinearly.",
        f"- Teacher ({teacher['arch']['name']}, {t_params:,} parameters): "
        f"{teacher['split']} micro-AUPRC "
        f"**{teacher['micro']:.4f}**, macro {teacher['macro']:.4f} (best epoch "
        f"{teacher['best_epoch']} of {teacher['epochs_run']})",
        "",
        table,
        "",
        f"Goal (iusp > sp > none at the smallest size with RI ≥ 27%): {verdict}",
        "",
        "Training wall time per epoch (2 CPU cores shared with other jobs; train split 44 "
        f"batches of 32 clips, 7 windows each, plus validation): teacher "
        f"{teacher['seconds_per_epoch']:.1f} s (mean over its own training run); "
        + ", ".join(
            f"{s} {sec[(s, False)]:.1f} s without / {sec[(s, True)]:.1f} s with the teacher"
            for s in cfg["students"]
            if not math.isnan(sec[(s, False)])
        )
        + f" (sweep jobs: {meta['jobs']} in parallel, {meta['threads']} thread(s) each).",
    ]
    if missing:
        lines += ["", f"Incomplete: {len(missing)} job(s) had no results yet: {missing}."]
    if meta["settings"].startswith("CPU"):
        lines += [
            "",
            "These are CPU-reduced settings (s5k only, 6 epochs, 3 seeds; no GPU was lent), so "
            "the absolute AUPRCs are below what full training reaches and the other sizes are "
            "not measured; rerun with `--full` on a GPU for every size at 30 epochs.",
        ]
    return "\n".join(lines) + "\n"


def update_docs(docs: Path, section: str) -> None:
    """Replace the marked section of ``docs`` (or append it)."""
    text = docs.read_text()
    block = f"{BEGIN}\n{section}{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    docs.write_text(text)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("runs/synth-default"))
    ap.add_argument("--cache", type=Path, default=Path("cache"))
    ap.add_argument("--teacher", type=Path, default=Path("runs/bench/teacher/best.pt"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench/sweep-cpu"))
    ap.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"))
    ap.add_argument("--jobs", type=int, default=2, help="parallel jobs (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    ap.add_argument("--full", action="store_true", help="full (GPU) settings, not CPU-reduced")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for the teacher run")
    ap.add_argument("--report-only", action="store_true", help="tables and docs only")
    args = ap.parse_args(argv)

    meta_path = args.out / "benchmark.json"
    if not args.report_only:
        fields = FULL_SETTINGS if args.full else CPU_SETTINGS
        cfg = SweepConfig.from_dict(fields, "benchmarks/distill.py settings")
        meta = {
            "command": "python benchmarks/distill.py " + " ".join(argv or sys.argv[1:]),
            "settings": "full" if args.full else "CPU-reduced",
            "config": cfg.to_dict(),
            "data": str(args.data),
            "cache": str(args.cache),
            "jobs": args.jobs,
            "threads": args.threads,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.processor() or platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, "
            + ("CUDA " + torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"),
        }
        print(f"settings ({meta['settings']}): {json.dumps(meta['config'], sort_keys=True)}")
        print(f"jobs {args.jobs} x {args.threads} thread(s); output {args.out}", flush=True)
        if not args.no_wait:
            wait_for_teacher(args.teacher)
        _, tmeta = load_checkpoint(args.teacher, expect_kind="teacher")
        frontend = FrontendConfig.from_dict(tmeta["frontend"], f"{args.teacher}: frontend")
        fs = features(load_dataset("synth", args.data), args.cache, frontend)
        args.out.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        t0 = time.perf_counter()
        report = sweep(cfg, fs, args.teacher, args.out, jobs=args.jobs, threads=args.threads)
        print(f"sweep wall time {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    else:
        report = write_report(args.out)
    meta = json.loads(meta_path.read_text())
    section = docs_section(args.out, report, meta)
    update_docs(args.docs, section)
    print(section)
    print(f"updated {args.docs}")
    return report


if __name__ == "__main__":
    main()
