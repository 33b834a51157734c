"""Distillation benchmark on the default corpus: select the terms' gradient ratios on the
validation split, then sweep every student size x {none, kd, sp, iusp, kd+sp, kd+iusp} x paired
seeds against one teacher.

Phases (each resumable; run them in this order):

1. ``--select``: s5k, seed 0, short training (``SELECT_EPOCHS``), one job per candidate value
   of each term's target gradient ratio (``CANDIDATES``), plus IUSP's layer-pair and scope
   variants; the jobs are judged on their best **validation** micro-AUPRC only (the selection
   sweep evaluates on ``validate``; the test split is never read). Writes
   ``benchmarks/results/distill_selection.json``.
2. (default) the sweep with the selected values: sizes in the order s5k, s250k (the paper's two
   ends), s20k, s70k; 5 seeds for s5k and 3 for the others; ``EPOCHS`` epochs with patience.
   ``benchmarks/results/distill.json`` is rewritten as each job finishes, one entry per trained
   student; on start, entries of that file whose teacher and config match are restored as
   finished jobs, so a sweep interrupted in one session resumes in the next. The teacher is
   committed as ``benchmarks/results/distill_teacher.pt``: training is not bit-reproducible
   across CPUs, and a different teacher hash restores nothing (the sweep then refuses to
   replace the earlier runs unless ``--fresh``).
3. ``--scores``: the test-split clip scores of every finished student (its best checkpoint in
   the sweep folder) into ``distill_scores.npy``, for paired differences with a bootstrap over
   seeds *and* test clips, and each student's agreement with the teacher on the test clips
   (the kd, sp and iusp terms, unweighted) into ``distill.json``; also run at the end of the
   sweep.
4. ``--report-only``: tables and the docs section from ``benchmarks/results/distill.json`` (and
   the scores, where exported).

Usage::

    python benchmarks/distill.py --teacher-only     # the teacher (20 epochs, resumable)
    python benchmarks/distill.py --select [--jobs 2]
    python benchmarks/distill.py [--jobs 2]
    python benchmarks/distill.py --scores
    python benchmarks/distill.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model_dev.arch import block_shapes
from model_dev.checkpoint import load_checkpoint, open_checkpoint
from model_dev.distill import DistillConfig, clip_groups, distillation_loss, kd_loss
from model_dev.evaluate import clip_probs
from model_dev.fileio import atomic_write, write_json, write_marked_section
from model_dev.frontend import FrontendConfig
from model_dev.stage_inputs import DatasetSpec
from model_dev.sweep import RESULT, SweepConfig, sweep, write_report
from model_dev.sweep_report import mean_se, micro_ap, paired_bootstrap, plus_minus
from model_dev.teacher_cache import LiveTeacher
from model_dev.train import train
from model_dev.train_config import TrainConfig
from model_dev.windows import forward_windows, split_windows

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: The sweep's teacher checkpoint, committed with the results (about 5 MB).
TEACHER = RESULTS / "distill_teacher.pt"
#: Test-split clip scores of every student, float32 ``[jobs, clips, classes]`` in the order of
#: ``distill.json``'s ``scores.jobs`` (labels in ``scores.truth``): the clip bootstrap's input.
SCORES = RESULTS / "distill_scores.npy"
#: The sweep's Pareto plot in the docs.
PARETO = ROOT / "docs" / "img" / "distill_pareto.png"
#: Clips per batch when measuring the agreement with the teacher (sp depends on the batch).
AGREEMENT_CLIPS = 32
BEGIN, END = "<!-- distill-benchmark:begin -->", "<!-- distill-benchmark:end -->"

TEACHER_EPOCHS = 20
EPOCHS = 20
SELECT_EPOCHS = 6
#: Candidate target gradient ratios (term gradient norm / BCE gradient norm at initialisation);
#: 10 was added after kd and sp peaked at 3, the edge of the first grid (validation only).
CANDIDATES = (0.3, 1.0, 3.0, 10.0)
SIZES = ("s5k", "s250k", "s20k", "s70k")
#: The issue's RI goal per size, the paper's range: 122 % at its smallest student, 27 % at its
#: largest (required of every size).
RI_GOALS = {s: 1.22 if s == "s5k" else 0.27 for s in SIZES}
SEEDS = {"s5k": (0, 1, 2, 3, 4), "s250k": (0, 1, 2), "s20k": (0, 1, 2), "s70k": (0, 1, 2)}
ARMS = ("none", "kd", "sp", "iusp", "kd+sp", "kd+iusp")
TERM_ARMS = ("kd", "sp", "iusp")
#: IUSP variants compared in the selection at ratio 1: layer pairs and utterance scope.
VARIANTS = {
    "stages-clip": {"layer_pairs": "stages", "iusp_scope": "clip"},
    "last-clip": {"layer_pairs": "last", "iusp_scope": "clip"},
    "stages-window": {"layer_pairs": "stages", "iusp_scope": "window"},
}


def machine() -> str:
    gpu = "CUDA " + torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, {gpu}"
    )


def train_teacher(data: DatasetSpec, out: Path, device: str) -> Path:
    """The benchmark teacher: the committed :data:`TEACHER` when there is one, else trained
    (or resumed) in ``out`` and copied there.

    Its students are only comparable under one teacher, and training is not bit-reproducible
    across CPUs (a retrain on another machine gave another teacher), so a sweep that resumes in
    a later session must find the very same checkpoint.
    """
    if TEACHER.is_file():
        return TEACHER
    last = out / "last.pt"
    done = False
    if last.is_file():
        _, meta = load_checkpoint(last, expect_kind="teacher")
        done = meta["stopped"] or meta["epoch"] >= meta["train_config"]["epochs"]
    if not done:
        cfg = TrainConfig(arch="teacher", epochs=TEACHER_EPOCHS, device=device)
        train(cfg, data.features(FrontendConfig()), out, resume=True)
    atomic_write(TEACHER, lambda tmp: shutil.copyfile(out / "best.pt", tmp))
    return TEACHER


def select(data: DatasetSpec, teacher: Path, out: Path, jobs: int, threads: int) -> dict:
    """Phase 1: each term's ratio and IUSP's variant, on validation micro-AUPRC."""
    fs = data.features(FrontendConfig())
    runs = []
    base = {"epochs": SELECT_EPOCHS, "patience": 0, "device": "cpu"}
    plans = [
        (f"ratio-{v:g}", {"kd": v, "sp": v, "iusp": v}, ("none",) * (i == 0) + TERM_ARMS, {})
        for i, v in enumerate(CANDIDATES)
    ]
    plans += [
        (f"iusp-{k}", {"iusp": 1.0}, ("iusp",), fields)
        for k, fields in VARIANTS.items()
        if k != "stages-clip"
    ]
    # not a choice: does the cache cost AUPRC against the live teacher (which sees SpecAugment)?
    plans.append(("iusp-live-teacher", {"iusp": 1.0}, ("iusp",), {"teacher_targets": "live"}))
    for name, values, arms, fields in plans:
        cfg = SweepConfig(
            students=("s5k",),
            methods=arms,
            seeds=(0,),
            split="validate",
            train={**base, **fields},
            **values,
        )
        report = sweep(cfg, fs, teacher, out / name, jobs=jobs, threads=threads)
        for r in report["jobs"]:
            ratio = None if r["method"] == "none" else values[r["method"]]
            runs.append(
                {
                    "plan": name,
                    "arm": r["method"],
                    "ratio": ratio,
                    **fields,
                    "val_micro": r["micro"],
                    "best_epoch": r["best_epoch"],
                }
            )
    none = max(r["val_micro"] for r in runs if r["arm"] == "none")
    chosen = {}
    for term in ("kd", "sp", "iusp"):
        cands = [r for r in runs if r["arm"] == term and r["plan"].startswith("ratio-")]
        best = max(cands, key=lambda r: r["val_micro"])
        chosen[term] = best["ratio"]
    variant_plans = {"ratio-1": "stages-clip"} | {f"iusp-{k}": k for k in VARIANTS}
    variants = [r for r in runs if r["arm"] == "iusp" and r["plan"] in variant_plans]
    layout = VARIANTS[variant_plans[max(variants, key=lambda r: r["val_micro"])["plan"]]]
    result = {
        "split": "validate",
        "settings": {
            "student": "s5k",
            "seed": 0,
            "epochs": SELECT_EPOCHS,
            "candidates": list(CANDIDATES),
            "variants": VARIANTS,
        },
        "runs": runs,
        "none_val_micro": none,
        "chosen": {"ratios": chosen, **layout},
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
    }
    write_json(RESULTS / "distill_selection.json", result)
    return result


def _restore(out: Path, cfg: SweepConfig, teacher: Path, known: list[dict], sha: str) -> int:
    """Write ``result.json`` of every job that ``known`` (distill.json runs) already holds."""
    restored = 0
    by_job = {r["job"]: r for r in known if r.get("teacher_sha256") == sha}
    for name, tcfg in cfg.jobs(str(teacher)):
        path = out / "jobs" / name / RESULT
        old = by_job.get(name)
        if path.is_file() or old is None or old["train_config"] != tcfg.to_dict():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, old["result"])
        restored += 1
    return restored


def run_sweep(
    data: DatasetSpec, teacher: Path, out: Path, jobs: int, threads: int, fresh: bool = False
) -> dict:
    """Phase 2: the full sweep, exporting ``distill.json`` as jobs finish."""
    selection = json.loads((RESULTS / "distill_selection.json").read_text())
    chosen = selection["chosen"]
    fs = data.features(FrontendConfig())
    _, tmeta = load_checkpoint(teacher, expect_kind="teacher")
    sha = tmeta["state_dict_sha256"]
    cfg = SweepConfig(
        students=SIZES,
        methods=ARMS,
        seeds=SEEDS["s5k"],
        student_seeds={s: SEEDS[s] for s in SIZES if SEEDS[s] != SEEDS["s5k"]},
        train={
            "epochs": EPOCHS,
            "device": "cpu",
            "layer_pairs": chosen["layer_pairs"],
            "iusp_scope": chosen["iusp_scope"],
        },
        **chosen["ratios"],
    )
    path = RESULTS / "distill.json"
    doc = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    other = {r.get("teacher_sha256") for r in doc["runs"]} - {sha}
    if other and not fresh:
        sys.exit(
            f"{path} holds {len(doc['runs'])} run(s) of another teacher "
            f"(sha256 {', '.join(sorted(str(o)[:16] for o in other))}; this one {sha[:16]}): "
            "they would be replaced; pass --fresh to start over, or restore that teacher"
        )
    out.mkdir(parents=True, exist_ok=True)
    print(f"restored {_restore(out, cfg, teacher, doc['runs'], sha)} finished job(s)", flush=True)
    meta = {
        "command": "python benchmarks/distill.py " + " ".join(sys.argv[1:]),
        "config": cfg.to_dict(),
        "selection": chosen,
        "machine": machine(),
        "jobs": jobs,
        "threads": threads,
    }
    t0 = time.perf_counter()

    def export(_: dict | None = None) -> None:
        """Rewrite distill.json from every finished job of the sweep folder (and earlier runs)."""
        runs = {r["job"]: r for r in doc["runs"] if r.get("teacher_sha256") == sha}
        for done in sorted(out.glob(f"jobs/*/{RESULT}")):
            result = json.loads(done.read_text())
            runs[result["job"]] = run_entry(result, sha)
        doc["runs"] = [runs[k] for k in sorted(runs)]
        teacher_json = out / "teacher.json"
        doc["teacher"] = json.loads(teacher_json.read_text()) if teacher_json.is_file() else {}
        doc["meta"] = meta | {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_s_this_session": round(time.perf_counter() - t0),
        }
        write_json(path, doc)

    report = sweep(cfg, fs, teacher, out, jobs=jobs, threads=threads, on_result=export)
    export()
    export_scores(out, fs)
    export_agreement(out, fs, teacher)
    return report


def _new_students(out: Path, doc: dict, known):
    """``(run, best checkpoint path, model, TrainConfig)`` of each finished student of ``doc``
    whose job is not in ``known``."""
    for run in doc["runs"]:
        best = out / "jobs" / run["job"] / "best.pt"
        if run["job"] in known or not best.is_file():
            continue
        model, ckpt = open_checkpoint(best, "student")
        yield run, best, model, TrainConfig.from_dict(ckpt["train_config"], f"{best}: train_config")


def export_scores(out: Path, fs) -> int:
    """Add the test-split clip scores of finished students missing from :data:`SCORES`
    (recomputed from each job's best checkpoint in ``out/jobs``; checked against the micro-AUPRC
    its result recorded). Returns how many students have scores."""
    path = RESULTS / "distill.json"
    doc = json.loads(path.read_text())
    known = doc.get("scores", {}).get("jobs", [])
    old = np.load(SCORES) if known and SCORES.is_file() else np.zeros((0,))
    if len(old) != len(known):
        sys.exit(f"{SCORES}: {len(old)} score arrays for {len(known)} jobs in {path}")
    arrays = dict(zip(known, old, strict=True))
    truth = doc.get("scores", {}).get("truth")
    for run, best, model, cfg in _new_students(out, doc, arrays):
        labels, probs = clip_probs(model, fs, ["test"], cfg.window_hop_frames, torch.device("cpu"))
        if truth is not None and not np.array_equal(labels, _multi_hot(truth)):
            sys.exit(f"{best}: the test split's labels differ from those of the stored scores")
        if abs(micro_ap(labels, probs) - run["test_micro_auprc"]) > 1e-9:
            sys.exit(f"{best}: recomputed test micro-AUPRC differs from its result.json")
        rows = ["".join(str(int(v > 0)) for v in row) for row in labels]  # one line per clip
        truth, arrays[run["job"]] = rows, probs.astype(np.float32)
    jobs = [r["job"] for r in doc["runs"] if r["job"] in arrays]
    if jobs:
        stacked = np.stack([arrays[j] for j in jobs])

        def save(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a name
                np.save(f, stacked)

        atomic_write(SCORES, save)
        doc["scores"] = {
            "file": SCORES.name,
            "split": "test",
            "jobs": jobs,
            "truth": truth,
            "classes": list(fs.classes),
        }
        write_json(path, doc)
    return len(jobs)


@torch.no_grad()
def export_agreement(out: Path, fs, teacher: Path) -> int:
    """Add to ``distill.json``'s ``agreement`` the unweighted kd, sp and iusp terms of every
    finished student missing there, measured against the teacher on the test split (clean
    windows, batches of 32 clips in split order, the student's layer pairs, clip-level IUSP;
    kd less the teacher's entropy).

    Does each arm make the student agree with the teacher on what its term measures, on clips
    neither saw in training? That separates "the term was not learned" from "agreeing with the
    teacher on it does not buy AUPRC". Returns how many students have the terms.
    """
    path = RESULTS / "distill.json"
    doc = json.loads(path.read_text())
    known = doc.setdefault(
        "agreement", {"split": "test", "batch_clips": AGREEMENT_CLIPS, "jobs": {}}
    )["jobs"]
    t_model, _ = load_checkpoint(teacher, expect_kind="teacher")
    teacher_out: dict[tuple, list] = {}  # (layer pairs, hop) -> the teacher's side per batch
    for run, _, model, cfg in _new_students(out, doc, known):
        dcfg = DistillConfig(
            kd=1.0,
            sp=1.0,
            iusp=1.0,
            temperature=cfg.temperature,
            layer_pairs=cfg.layer_pairs,
            iusp_scope="clip",
        )
        pairs = dcfg.pairs_for(block_shapes(model.spec), block_shapes(t_model.spec))
        data = split_windows(fs, ["test"], model.spec, cfg.window_hop_frames)
        live = LiveTeacher(t_model, dcfg, pairs, data.window_frames)
        batches = teacher_out.setdefault((pairs, cfg.window_hop_frames), [])
        sums = dict.fromkeys(("kd", "sp", "iusp"), 0.0)
        for b, start in enumerate(range(0, len(data), AGREEMENT_CLIPS)):
            idx = np.arange(start, min(start + AGREEMENT_CLIPS, len(data)))
            x, mask, _ = data.batch(idx, torch.device("cpu"))
            windows = x[mask]
            groups = clip_groups(
                data.n_frames[idx].tolist(),
                mask.sum(1).tolist(),
                data.window_frames,
                data.hop_frames,
            )
            if b == len(batches):
                batches.append(live(idx, windows, mask, groups))
            _, logits, feats = forward_windows(model, windows, mask)
            terms = distillation_loss(
                dcfg, pairs, logits, feats, batches[b], groups, data.window_frames
            )
            # less the teacher's own entropy: a sum of binary KL divergences, 0 at agreement
            terms["kd"] -= kd_loss(batches[b].logits, batches[b].logits, cfg.temperature)
            for k, v in terms.items():
                sums[k] += float(v) * len(idx) / len(data)
        known[run["job"]] = sums
    write_json(path, doc)
    return len(known)


def _multi_hot(rows: list[str]) -> np.ndarray:
    """``scores.truth`` (one string of 0/1 per clip) as a multi-hot array."""
    return np.array([[c == "1" for c in row] for row in rows], dtype=np.float32)


def _scores_by_arm(doc: dict) -> tuple[np.ndarray, dict[tuple[str, str], dict[int, np.ndarray]]]:
    """The exported test labels and (size, arm) -> seed -> clip scores (empty without them)."""
    info = doc.get("scores")
    if not info or not SCORES.is_file():
        return np.zeros((0, 0)), {}
    scores = dict(zip(info["jobs"], np.load(SCORES), strict=True))
    by: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for r in doc["runs"]:
        if r["job"] in scores:
            by.setdefault((r["size"], r["arm"]), {})[int(r["seed"])] = scores[r["job"]]
    return _multi_hot(info["truth"]), by


def clip_bootstrap(doc: dict) -> dict[tuple[str, str], dict]:
    """(size, arm) -> :func:`~model_dev.sweep_report.paired_bootstrap` of the arm against
    ``none`` on the exported clip scores (empty when none are exported)."""
    truth, by = _scores_by_arm(doc)
    return {
        (size, arm): paired_bootstrap(truth, by[(size, arm)], by[(size, "none")])
        for size in SIZES
        for arm in ARMS[1:]
        if (size, arm) in by and (size, "none") in by
    }


def run_entry(result: dict, teacher_sha: str) -> dict:
    """One trained student of ``distill.json``: the flat fields, and the job's full result."""
    return {
        "job": result["job"],
        "size": result["student"],
        "arm": result["method"],
        "seed": result["seed"],
        "test_micro_auprc": result["micro"],
        "test_macro_auprc": result["macro"],
        "val_micro_auprc": result["val_micro"],
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        "weights": (result.get("distill") or {}).get("weights", {}),
        "target_ratios": (result.get("distill") or {}).get("targets"),
        "seconds_per_epoch": result["seconds_per_epoch"],
        "teacher_sha256": teacher_sha,
        "train_config": result["train_config"],
        "result": result,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("runs/synth-default"))
    ap.add_argument("--cache", type=Path, default=Path("cache/features"))
    ap.add_argument("--runs", type=Path, default=Path("runs/bench"))
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--jobs", type=int, default=2, help="parallel jobs (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--fresh", action="store_true", help="drop distill.json runs of a different teacher"
    )
    phase = ap.add_mutually_exclusive_group()
    phase.add_argument("--teacher-only", action="store_true")
    phase.add_argument("--select", action="store_true")
    phase.add_argument("--scores", action="store_true")
    phase.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (args.report_only or args.scores):
        from model_dev.synth import ensure_corpus

        ensure_corpus(args.data, "default", seed=0, jobs=args.jobs)
    data = DatasetSpec(args.data, "synth", args.cache, jobs=args.jobs)
    if not (args.report_only or args.scores):
        train_teacher(data, args.runs / "teacher", args.device)
    # relative (like --data and --runs): the path is part of each job's recorded config, which
    # must match when a later session, in another checkout, restores the finished jobs
    teacher = Path(os.path.relpath(TEACHER))
    if args.select:
        chosen = select(data, teacher, args.runs / "select", args.jobs, args.threads)["chosen"]
        print(json.dumps(chosen, indent=1))
    elif args.scores:
        fs = data.features(FrontendConfig())
        print(f"{export_scores(args.runs / 'sweep', fs)} students with scores")
        print(f"{export_agreement(args.runs / 'sweep', fs, teacher)} students with agreement")
    elif not (args.report_only or args.teacher_only):
        run_sweep(data, teacher, args.runs / "sweep", args.jobs, args.threads, args.fresh)
    if (RESULTS / "distill.json").is_file():
        section = docs_section(args.runs / "sweep")
        write_marked_section(args.docs, BEGIN, END, section)
        print(section)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def rebuild_sweep(out: Path) -> dict:
    """The sweep folder's report, rebuilt from ``distill.json`` alone (any session)."""
    doc = json.loads((RESULTS / "distill.json").read_text())
    cfg = SweepConfig.from_dict(doc["meta"]["config"], "distill.json meta.config")
    teacher = doc["teacher"]["checkpoint"]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sweep_config.json", {"config": cfg.to_dict(), "teacher": teacher})
    write_json(out / "teacher.json", doc["teacher"])
    _restore(out, cfg, Path(teacher), doc["runs"], doc["teacher"]["state_dict_sha256"])
    return write_report(out) | {"doc": doc}


def _goal_lines(report: dict) -> list[str]:
    """The issue's goals as a table, checked on the seeds that every arm of a size has
    (paired)."""

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "missed"

    rows, undefined = [], []
    for s, ri in report["ri"].items():
        micro: dict[str, dict[int, float]] = {m: {} for m in ARMS}
        for r in report["jobs"]:
            if r["student"] == s:
                micro[r["method"]][r["seed"]] = r["micro"]
        seeds = sorted(set.intersection(*(set(v) for v in micro.values())))
        if not seeds:
            rows.append(f"| {s} | 0 |" + " — |" * 10)
            continue
        get = {m: float(np.mean([micro[m][k] for k in seeds])) for m in ARMS}
        # RI hides how IUSP compares with SP when SP does not beat none: say it directly
        above_sp = [micro["iusp"][k] - micro["sp"][k] for k in seeds]
        wins = sum(d > 0 for d in above_sp)
        goal = RI_GOALS[s]
        ri_met = ri["status"] == "ok" and ri["ri"] >= goal
        if ri["status"] == "ok":
            ri_text = f"{100 * ri['ri']:.0f} % [{100 * ri['lo']:.0f}, {100 * ri['hi']:.0f}]"
        else:
            ri_text = "undefined"
            undefined.append(f"{s}: {ri['status']}")
        rows.append(
            f"| {s} | {len(seeds)} | {get['none']:.4f} | {get['sp']:.4f} | {get['iusp']:.4f} "
            f"| {verdict(get['iusp'] > get['sp'] > get['none'])} "
            f"| {plus_minus(*mean_se(above_sp), signed=True)} ({wins} of {len(seeds)}) "
            f"| {ri_text} | ≥ {100 * goal:.0f} %: {verdict(ri_met)} "
            f"| {get['kd']:.4f} | {get['kd+iusp']:.4f} | {verdict(get['kd+iusp'] >= get['kd'])} |"
        )
    return [
        "Goals, on the seeds where every arm of a size is trained (test micro-AUPRC, mean over "
        "those seeds; RI with its 90 % bootstrap interval over seeds; the RI goals are the "
        "paper's range, its largest student's 27 % everywhere and its smallest's 122 % at s5k):",
        "",
        "| student | paired seeds | none | sp | iusp | iusp > sp > none | iusp − sp (seeds above) "
        "| RI | RI goal | kd | kd+iusp | kd+iusp ≥ kd |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        *(["", f"RI undefined at {'; '.join(undefined)}."] if undefined else []),
    ]


def _bootstrap_lines(doc: dict) -> list[str]:
    """The table of paired differences with the seed x clip bootstrap (empty without scores)."""
    boot = clip_bootstrap(doc)
    if not boot:
        return []
    rows = [
        f"| {size} | {arm} | {b['diff']:+.4f} | [{b['lo']:+.4f}, {b['hi']:+.4f}] | "
        f"{b['p_above']:.2f} | {b['n_seeds']} |"
        for (size, arm), b in boot.items()
    ]
    return [
        "Paired differences to `none` in test micro-AUPRC with a 90% interval from a bootstrap "
        "that resamples both the seeds and the test clips (1000 resamples; the same clips for "
        "both arms; `distill_scores.npy`): the seed standard error above treats the test set as "
        "fixed, which it is not.",
        "",
        "| student | arm | Δ vs none | 90% interval | share of resamples > 0 | paired seeds |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _class_lines(doc: dict) -> list[str]:
    """Per-class test AP of ``none`` and the paired per-class differences of the feature terms
    (empty without exported scores): where SP's and IUSP's gains come from."""
    truth, by = _scores_by_arm(doc)
    classes = doc.get("scores", {}).get("classes")
    if not by or not classes:
        return []

    def class_ap(scores: np.ndarray) -> np.ndarray:
        return np.array([micro_ap(truth[:, c], scores[:, c]) for c in range(len(classes))])

    # each student's per-class AP once: none and sp enter two rows each
    ap = {
        key: {seed: class_ap(s) for seed, s in runs.items()}
        for key, runs in by.items()
        if key[1] in ("none", "sp", "iusp")
    }
    rows = []
    for size in SIZES:
        if (size, "none") not in ap:
            continue
        none = np.mean(list(ap[(size, "none")].values()), axis=0)
        rows.append(f"| {size} | none (AP) | " + " | ".join(f"{v:.3f}" for v in none))
        for arm, base in (("sp", "none"), ("iusp", "none"), ("iusp", "sp")):
            a, b = ap.get((size, arm), {}), ap.get((size, base), {})
            seeds = sorted(a.keys() & b.keys())
            if len(seeds) < 2:
                continue
            d = np.array([a[k] - b[k] for k in seeds])
            cells = " | ".join("{:+.3f} ± {:.3f}".format(*mean_se(column)) for column in d.T)
            rows.append(f"| {size} | {arm} − {base} | {cells}")
    positives = ", ".join(f"{c} {int(n)}" for c, n in zip(classes, truth.sum(0), strict=True))
    return [
        "Per-class test AP: `none`'s mean over seeds, and the paired per-class differences of "
        f"the feature terms (mean ± SE over seeds). Test clips per class: {positives}.",
        "",
        "| student | row | " + " | ".join(classes) + " |",
        "|---|---|" + "---|" * len(classes),
        *(r + " |" for r in rows),
        "",
    ]


def _agreement_lines(doc: dict) -> list[str]:
    """The table of each arm's agreement with the teacher (empty before it is measured)."""
    jobs = doc.get("agreement", {}).get("jobs", {})
    by: dict[tuple[str, str], list[dict]] = {}
    for r in doc["runs"]:
        if r["job"] in jobs:
            by.setdefault((r["size"], r["arm"]), []).append(jobs[r["job"]])
    if not by:
        return []

    def cell(size: str, arm: str, term: str, scale: float) -> str:
        v = np.array([t[term] for t in by[(size, arm)]]) * scale
        text = f"{v.mean():.3f}" + (f" ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}" * (len(v) > 1))
        if arm != "none" and (size, "none") in by:
            base = np.mean([t[term] for t in by[(size, "none")]]) * scale
            text += f" ({100 * (v.mean() / base - 1):+.0f} %)"
        return text

    rows = [
        f"| {size} | {arm} | {cell(size, arm, 'kd', 1)} | {cell(size, arm, 'sp', 1e4)} "
        f"| {cell(size, arm, 'iusp', 1e4)} | {len(by[(size, arm)])} |"
        for size in SIZES
        for arm in ARMS
        if (size, arm) in by
    ]
    return [
        "Agreement with the teacher on the test clips (`--scores`; lower is closer): each "
        "student's unweighted terms against the teacher on clean windows, whatever its arm "
        "trained. kd: soft-target BCE less the teacher's entropy (a sum of binary KL "
        "divergences at T = 2); sp: batch Gram distance (batches of 32 clips in split order); "
        "iusp: clip-level Gram distance. Mean ± SE over seeds, in brackets the change against "
        "`none`. It tells a term that was not learned from one that was learned but does not "
        "buy AUPRC.",
        "",
        "| student | arm | kd | sp × 10⁴ | iusp × 10⁴ | seeds |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def docs_section(out: Path) -> str:
    """The Markdown of the benchmark section (between the markers)."""
    report = rebuild_sweep(out)
    if (out / "pareto.png").is_file():
        atomic_write(PARETO, lambda tmp: shutil.copyfile(out / "pareto.png", tmp))
    doc, teacher = report["doc"], report["doc"]["teacher"]
    meta = doc["meta"]
    sel = json.loads((RESULTS / "distill_selection.json").read_text())
    sel_rows = [
        f"| {r['plan']} | {r['arm']} | {'—' if r['ratio'] is None else r['ratio']} "
        f"| {r.get('layer_pairs') or 'stages'} | {r.get('iusp_scope') or 'clip'} "
        f"| {r.get('teacher_targets') or 'cached'} | {r['val_micro']:.4f} |"
        for r in sel["runs"]
    ]
    secs = {}
    job_hours = sum(r["seconds_per_epoch"] * r["epochs_run"] for r in doc["runs"]) / 3600
    for r in doc["runs"]:
        secs.setdefault((r["size"], r["arm"] != "none"), []).append(r["seconds_per_epoch"])
    speed = ", ".join(
        f"{s} {np.median(secs[(s, False)]):.0f} s undistilled / "
        f"{np.median(secs[(s, True)]):.0f} s distilled"
        for s in SIZES
        if (s, False) in secs and (s, True) in secs
    )
    lines = [
        "## Distillation sweep (teacher, students, KD / SP / IUSP and combinations)",
        "",
        f"- Command: `{meta['command']}` (phases `--teacher-only`, `--select`, the sweep; "
        "`--report-only` rewrites this section from `benchmarks/results/distill.json`)",
        f"- Last update: {meta['date']}; machine: {meta['machine']}; {meta['jobs']} parallel "
        f"job(s) × {meta['threads']} torch thread(s)",
        f"- Teacher ({teacher['arch']['name']}): test micro-AUPRC **{teacher['micro']:.4f}**, "
        f"macro {teacher['macro']:.4f} (best epoch {teacher['best_epoch']} of "
        f"{teacher['epochs_configured']}; sha256 `{teacher['state_dict_sha256'][:16]}`)",
        "- Method: BCE on clip logits plus the arm's terms, each weighted so that its gradient "
        "norm on the student is a target ratio of the BCE's (calibrated on 8 batches at the "
        "start of each job); teacher outputs cached on clean windows; IUSP over the whole clip "
        "(windows tiling the clip, concatenated in time), student Gram resized bilinearly to "
        "the teacher's. See docs/distillation.md.",
        "",
        f"Selection ({sel['settings']['student']}, seed {sel['settings']['seed']}, "
        f"{sel['settings']['epochs']} epochs, **validation** micro-AUPRC; `none` "
        f"{sel['none_val_micro']:.4f}). Chosen: ratios {sel['chosen']['ratios']}, layer pairs "
        f"`{sel['chosen']['layer_pairs']}`, IUSP scope `{sel['chosen']['iusp_scope']}`.",
        "",
        "| plan | arm | target ratio | layer pairs | IUSP scope | teacher | val micro-AUPRC |",
        "|---|---|---|---|---|---|---|",
        *sel_rows,
        "",
        f"Sweep ({len(doc['runs'])} students trained; settings `"
        f"{json.dumps(meta['config']['train'], sort_keys=True)}`):",
        "",
        (out / "sweep.md").read_text().strip(),
        "",
        "![Distillation sweep: test micro-AUPRC against int8 weight bytes, every arm, mean ± SE "
        "over seeds](img/distill_pareto.png)",
        "",
        *_bootstrap_lines(doc),
        *_class_lines(doc),
        *_agreement_lines(doc),
        *_goal_lines(report),
        "",
        f"Training time per epoch (median over jobs; the CPU was shared with other work, which "
        f"slowed some jobs several-fold): {speed or 'n/a'}. Job time, the sum over "
        f"students of their epochs' seconds: {job_hours:.1f} h, about {job_hours / 2:.1f} h of "
        "wall time with 2 jobs at once.",
    ]
    if report["missing"]:
        lines += [
            "",
            f"Not yet run ({len(report['missing'])} jobs): resume with the command "
            "above; it restores the finished ones from distill.json.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
