"""Anomaly-detection benchmark on the synthetic machine corpus (default size, seed 0).

Per machine type: AUC and challenge pAUC (FPR <= 0.1, not McClish-standardised; mean over the
type's machine IDs) of every method, 3 paired seeds for the neural ones and the scikit-learn
ones; AUC against fault severity and kind; parameters, MACs and int8 weight bytes of the
deployable networks; the ID-classifier student (none / kd / iusp) against one teacher; the
dense AE trained on one machine ID applied zero-shot to the others and fine-tuned on each
(``init``). Thresholds and model choices never see the test split (no selection is made here:
every setting is fixed in this file); the supervised classifier trains on half of the labelled
test clips and is measured on the other half, and is marked ``uses_anomalies``.

Resumable: every finished job is appended to ``<work>/jobs.jsonl`` and skipped on restart. Runs on
CPU with 1 torch thread per worker (``--jobs`` workers). Writes
``benchmarks/results/anomaly.json`` (the flat ``runs`` list: one entry per method, machine type
and seed) and, with ``--docs``, the "Anomaly detection" section of docs/benchmarks.md.

Usage::

    python benchmarks/anomaly.py [--jobs 2] [--work runs/anomaly-bench] [--docs]
    python benchmarks/anomaly.py --quick     # tiny corpus, 1 seed, 2 epochs: a smoke run
    python benchmarks/anomaly.py --jobs 1 --methods id_classifier   # re-measure one method
    python benchmarks/anomaly.py --jobs 1 --methods distillation    # teachers and students
    python benchmarks/anomaly.py --corpus-seed 1 --methods dense_ae,id_classifier

``--corpus-seed N`` (N > 0) is a *development* corpus, the one the generator is calibrated on:
its own work folder (``<work>/dev-seed<N>``), one training seed, results in that folder (never
in ``benchmarks/results``) and a per-type table on the terminal. The benchmark's corpus, seed 0,
is never used to choose generator settings.

``--methods`` reruns only those methods' jobs and keeps every other entry; the JSON's
``remeasured`` and the docs say which rows are new and mark the rows built on a re-measured
method's earlier code (:data:`DEPENDENT`) as stale.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULT = ROOT / "benchmarks" / "results" / "anomaly.json"
SEEDS = (0, 1, 2)
#: Epochs per method (fixed, not tuned on the test split).
EPOCHS = {"stack": 10, "patch": 12, "dense_ae": 20, "dense_ae_small": 20, "id_teacher": 10}
BATCH = {"stack": 256, "patch": 64}
#: Training windows per epoch (a seeded random subset; 0: all). The dense AEs (the baseline
#: the corpus is calibrated against) see all their windows; the costlier methods a subset. The
#: ID classifier (teacher and students too) gets 6000, chosen on development corpus seed 1
#: over {3000, 3000 x 24 epochs, 6000, 12000} (docs/anomaly.md).
MAX_WINDOWS = {
    "stack": 6000,
    "patch": 3000,
    "dense_ae": 0,
    "dense_ae_small": 0,
    "id_classifier": 6000,
}
METHOD_ORDER = (
    "dense_ae", "dense_ae_small", "id_classifier", "causal_conv", "group_made", "vae",
    "conv_vae", "transformer", "isolation_forest", "ocsvm", "sgd_ocsvm", "supervised",
)  # fmt: skip
#: Student arms: no distillation and two of ``model_dev.anomaly.methods.DISTILL_ARMS``.
STUDENT_ARMS = ("none", "kd", "iusp")
#: Rows built on a method's code: stale when only that method is re-measured (``--methods``).
DEPENDENT = {"id_classifier": ("id_teacher", *(f"id_student_{a}" for a in STUDENT_ARMS))}
#: ``--methods`` name of the distillation phase (teachers, then the student arms).
DISTILL = "distillation"
ZERO_SHOT_SOURCE = "id_00"


def _cfg(method: str, seed: int, quick: bool):
    from model_dev.anomaly.methods import METHODS
    from model_dev.anomaly.training import FitConfig

    kind = METHODS[method].layout.kind
    epochs = 2 if quick else EPOCHS.get(method, EPOCHS[kind])
    windows = MAX_WINDOWS.get(method, MAX_WINDOWS[kind])
    return FitConfig(epochs, BATCH[kind], seed=seed, device="cpu", max_windows=windows)


def _data(work: Path, mtype: str):
    from model_dev.anomaly.pipeline import prepare, type_data

    ms, fs = prepare("dcase", work / "corpus", work / "features", progress=False)
    return type_data(ms, fs, mtype)


def _summary(record: dict, data) -> dict:
    from model_dev.anomaly.evaluation import score_type
    from model_dev.anomaly.metrics import Scores, auc_by_group, evaluate_scores

    r = score_type(record, data, "cpu")
    ev = evaluate_scores(
        Scores(r["scores"], r["labels"], [data.machine_type] * len(r["ids"]), r["ids"])
    )
    sev = auc_by_group(r["labels"], r["scores"], r["severities"], r["ids"])
    fault = auc_by_group(r["labels"], r["scores"], r["faults"], r["ids"])
    return {
        "auc": ev["mean"]["auc"],
        "pauc": ev["mean"]["pauc"],
        "per_id": ev["per_id"][data.machine_type],
        "auc_by_severity": {str(k): v["auc"] for k, v in sev.items()},
        "auc_by_fault": {k: v["auc"] for k, v in fault.items()},
    }


def train_teacher(data, seed: int, quick: bool) -> dict:
    """The ID-classifier teacher of one machine type (seed 0 in this benchmark)."""
    from model_dev.anomaly.pipeline import train_detector

    cfg = replace(_cfg("id_classifier", seed, quick), epochs=2 if quick else EPOCHS["id_teacher"])
    return train_detector("id_classifier", data, cfg, size="teacher", progress=False)


def train_student(data, arm: str, teacher: dict, seed: int, quick: bool) -> dict:
    """An ID-classifier student (``arm``: one of :data:`STUDENT_ARMS`), with the settings of
    the undistilled ``id_classifier``."""
    from model_dev.anomaly.methods import DISTILL_ARMS
    from model_dev.anomaly.pipeline import train_detector

    return train_detector(
        "id_classifier",
        data,
        _cfg("id_classifier", seed, quick),
        teacher=None if arm == "none" else teacher,
        distill=DISTILL_ARMS.get(arm, (0.0, 0.0)),
        progress=False,
    )


def _job(args: tuple) -> dict:
    """One job: train and evaluate; returns the run entry (or entries, for zero-shot)."""
    import torch

    torch.set_num_threads(1)
    from model_dev.anomaly.methods import METHODS
    from model_dev.anomaly.pipeline import only_ids, train_detector

    kind, method, mtype, seed, work, quick = args
    data = _data(work, mtype)
    t0 = time.perf_counter()
    base = {"machine_type": mtype, "seed": seed}
    if kind == "method":
        record = train_detector(method, data, _cfg(method, seed, quick), progress=False)
        meta = METHODS[method]
        row = {
            "method": method,
            "deployable": meta.deployable,
            "uses_anomalies": meta.uses_anomalies,
        }
        row |= base | _summary(record, data) | {"train_s": time.perf_counter() - t0}
        return row
    if kind == "teacher":
        record = train_teacher(data, seed, quick)
        torch.save(record, work / f"teacher-{mtype}.pt")
        row = {"method": "id_teacher", "deployable": False} | base | _summary(record, data)
        return row | {"train_s": time.perf_counter() - t0}
    if kind == "student":
        teacher = torch.load(work / f"teacher-{mtype}.pt", weights_only=True)
        record = train_student(data, method, teacher, seed, quick)
        row = {"method": f"id_student_{method}", "deployable": True} | base
        return row | _summary(record, data) | {"train_s": time.perf_counter() - t0}
    # zero-shot: train on one ID, apply to the others, then fine-tune on each of them
    cfg = _cfg("dense_ae", seed, quick)
    source = train_detector("dense_ae", only_ids(data, [ZERO_SHOT_SOURCE]), cfg, progress=False)
    targets = [m for m in data.ids if m != ZERO_SHOT_SOURCE]
    zero = _summary(source, data)["per_id"]
    tuned = {}
    for m in targets:
        short = replace(cfg, epochs=max(2, cfg.epochs // 3))
        ft = train_detector("dense_ae", only_ids(data, [m]), short, init=source, progress=False)
        tuned[m] = _summary(ft, data)["per_id"][m]
    rows = []
    for name, per_id in (("dense_ae_zero_shot", zero), ("dense_ae_fine_tuned", tuned)):
        vals = [per_id[m] for m in targets]
        rows.append({"method": name, "deployable": True, "source_id": ZERO_SHOT_SOURCE} | base | {
            "auc": float(np.mean([v["auc"] for v in vals])),
            "pauc": float(np.mean([v["pauc"] for v in vals])),
            "per_id": {m: per_id[m] for m in targets},
        })  # fmt: skip
    return {"rows": rows, "train_s": time.perf_counter() - t0}


def _key(job: tuple) -> str:
    return "/".join(str(v) for v in job[:4])


def _run(jobs: list[tuple], done: dict, log: Path, workers: int) -> None:
    todo = [j for j in jobs if _key(j) not in done]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} jobs done; running {len(todo)}", flush=True)
    ctx = get_context("spawn")
    with ctx.Pool(workers) as pool:
        for job, out in zip(todo, pool.imap(_job, todo), strict=True):
            done[_key(job)] = out
            with log.open("a") as f:
                f.write(json.dumps({"key": _key(job), "result": out}) + "\n")
            auc = out["auc"] if "auc" in out else out["rows"][0]["auc"]
            print(f"{_key(job)}: AUC {auc:.3f} ({out['train_s']:.0f} s)", flush=True)


def _specs() -> dict:
    from model_dev.anomaly import specs
    from model_dev.anomaly.corpus import SIZES
    from model_dev.anomaly.detectors import PSEUDO

    nets = {
        "dense_ae": specs.DENSE_AE_DCASE,
        "dense_ae_small": specs.DENSE_AE_SMALL,
        "causal_conv": specs.PREDICTOR,
        "group_made": specs.MADE,
    }
    ids = SIZES["default"].n_ids
    classes = f"{ids} IDs + {ids * len(PSEUDO)} pseudo"
    for size, name in (("student", "id_classifier"), ("teacher", "id_teacher")):
        nets[f"{name} ({classes})"] = specs.id_classifier_spec(ids * (1 + len(PSEUDO)), size)
    return {k: specs.stats(v) for k, v in nets.items()}


def _machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
    )


BEGIN, END = "<!-- anomaly-benchmark:begin -->", "<!-- anomaly-benchmark:end -->"


def _stat(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return "–"
    if len(v) < 2:
        return f"{v.mean():.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}"


def _by(runs: list[dict], method: str) -> dict[str, dict[int, dict]]:
    """``{machine_type: {seed: run}}`` of one method."""
    out: dict[str, dict[int, dict]] = {}
    for r in runs:
        if r["method"] == method:
            out.setdefault(r["machine_type"], {})[r["seed"]] = r
    return out


def _mean_over_types(by: dict, key: str) -> dict[int, float]:
    """Per seed finished for every type, the mean over machine types (paired seeds)."""
    if not by:
        return {}
    seeds = sorted(set.intersection(*(set(v) for v in by.values())))
    return {s: float(np.mean([by[t][s][key] for t in by])) for s in seeds}


def _provenance(result: dict) -> list[str]:
    """Docs lines saying which rows were re-measured when (empty after a full run)."""
    re = result.get("remeasured")
    if not re:
        return []
    return [
        f"- **Partial re-measurement**: only {', '.join(f'`{m}`' for m in re['methods'])} "
        f"re-measured on {re['date']} with the current code; every other row is from the full "
        f"run of {re['others_from']} (same corpus generator version "
        f"{result['corpus'].get('generator_version', '?')}; settings as listed above). Rows "
        "marked *(stale)* were built on the earlier code of a re-measured method and are not "
        "current."
    ]


def _stale(result: dict) -> set[str]:
    """Methods whose rows depend on the code of a method re-measured alone."""
    re = result.get("remeasured", {})
    done = set(re.get("methods", []))
    fresh = set(DEPENDENT["id_classifier"]) if DISTILL in done else set()
    return {d for m in done for d in DEPENDENT.get(m, ())} - fresh


def report(result: dict) -> str:
    """The docs section (markdown) from the results JSON."""
    runs, types = result["runs"], sorted({r["machine_type"] for r in result["runs"]})
    methods = list(dict.fromkeys(r["method"] for r in runs))
    lines = [
        "## Anomaly detection",
        "",
        "Machine-sound anomaly detection (DCASE 2020 Task 2 style, trained on normal clips "
        "only) on the built-in synthetic machine corpus; see docs/anomaly.md for the methods.",
        "",
        f"- Command: `{result['command']}` (resumable; `--docs` rewrites this section)",
        f"- Date: {result['date']}; machine: {result['machine']}",
        f"- Corpus: `{result['corpus']['size']}` size, seed {result['corpus']['seed']}, "
        f"generator version {result['corpus']['generator_version']}: generated in "
        f"{result['corpus']['generation_s']:.0f} s on one core, "
        + (
            "features from the cache"
            if result["corpus"]["features_s"] < 2
            else f"front-end features in {result['corpus']['features_s']:.0f} s"
        ),
        f"- Cost: {result['job_s_total'] / 60:.0f} min of job time in total; wall time of the "
        f"last session {result['wall_s_this_session'] / 60:.0f} min on 2 cores shared with other "
        f"work ({result['settings']['workers']} workers, 1 torch thread each); seeds "
        f"{result['settings']['seeds']}, epochs {result['settings']['epochs']}, training windows "
        f"per epoch {result['settings']['max_windows']} (0: all)",
        *_provenance(result),
        f"- pAUC: {result['pauc_convention']}. Per type: mean over the type's machine IDs; "
        "cells: mean ± standard error over seeds.",
        "",
        "| method | deployable | " + " | ".join(types) + " | mean AUC | mean pAUC |",
        "|---|---|" + "---|" * (len(types) + 2),
    ]
    for m in methods:
        by = _by(runs, m)
        if set(by) != set(types):
            continue
        dep = by[types[0]][min(by[types[0]])]
        flag = "yes" if dep.get("deployable") else "no"
        if dep.get("uses_anomalies"):
            flag += " (trains on labelled anomalies)"
        cells = [_stat([r["auc"] for r in by[t].values()]) for t in types]
        name = f"{m} *(stale)*" if m in _stale(result) else m
        lines.append(
            f"| {name} | {flag} | "
            + " | ".join(cells)
            + f" | {_stat(list(_mean_over_types(by, 'auc').values()))}"
            + f" | {_stat(list(_mean_over_types(by, 'pauc').values()))} |"
        )
    lines += ["", "AUC against fault severity (mean over types, IDs and seeds):", ""]
    lines += ["| method | severity 1 | severity 2 | severity 3 |", "|---|---|---|---|"]
    for m in methods:
        sev = [r.get("auc_by_severity") for r in runs if r["method"] == m]
        if sev and all(sev):
            cells = [
                f"{np.mean([s[k] for s in sev if k in s]):.3f}" if any(k in s for s in sev) else "–"
                for k in ("1", "2", "3")
            ]
            name = f"{m} *(stale)*" if m in _stale(result) else m
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Deployable networks (from their block specs):", ""]
    lines += ["| network | parameters | MACs per window | int8 weight bytes |", "|---|---|---|---|"]
    for name, st in result["specs"].items():
        lines.append(
            f"| {name} | {st['params']:,} | {st['macs']:,} | {st['weight_bytes_int8']:,} |"
        )
    none = _by(runs, "id_student_none")
    if none:
        lines += ["", "ID-classifier distillation (student vs one teacher per type, paired "
                  "seeds; difference to `none` per seed, mean ± SE):", ""]  # fmt: skip
        lines += ["| student | mean AUC | paired difference to none |", "|---|---|---|"]
        base = _mean_over_types(none, "auc")
        for arm in ("none", "kd", "iusp"):
            by = _by(runs, f"id_student_{arm}")
            if set(by) != set(types):
                continue
            vals = _mean_over_types(by, "auc")
            diff = [v - base[s] for s, v in vals.items() if s in base]
            cell = _stat(diff) if arm != "none" and diff else ""
            stale = " *(stale)*" if f"id_student_{arm}" in _stale(result) else ""
            lines.append(f"| {arm}{stale} | {_stat(list(vals.values()))} | {cell} |")
    zero = [r for r in runs if r["method"] == "dense_ae_zero_shot"]
    if zero:
        full = {(r["machine_type"], r["seed"]): r for r in runs if r["method"] == "dense_ae"}
        tuned = {
            (r["machine_type"], r["seed"]): r for r in runs if r["method"] == "dense_ae_fine_tuned"
        }
        rows = {"zero-shot (trained on id_00 only)": [], "fine-tuned from it (per target ID)": [],
                "trained on every ID": []}  # fmt: skip
        for r in zero:
            key, targets = (r["machine_type"], r["seed"]), list(r["per_id"])
            if key not in full or key not in tuned:
                continue
            rows["zero-shot (trained on id_00 only)"].append(r["auc"])
            rows["fine-tuned from it (per target ID)"].append(tuned[key]["auc"])
            rows["trained on every ID"].append(
                float(np.mean([full[key]["per_id"][m]["auc"] for m in targets]))
            )
        lines += ["", "Dense AE across machine IDs (AUC on the IDs other than id_00, mean over "
                  "types and seeds ± SE over type x seed):", ""]  # fmt: skip
        lines += ["| training | AUC |", "|---|---|"]
        lines += [f"| {k} | {_stat(v)} |" for k, v in rows.items() if v]
    lines += [
        "",
        "Reference (real data, DCASE 2020 development set, dense-AE baseline AUC): ToyCar .801, "
        "ToyConveyor .727, fan .652, pump .726, slider .850, valve .665.",
    ]
    return "\n".join(lines) + "\n"


def write_docs(result: dict, path: Path) -> None:
    """Replace (or append) the marked "Anomaly detection" section of docs/benchmarks.md."""
    from model_dev.fileio import write_marked_section

    write_marked_section(path, BEGIN, END, report(result))


def _remeasured(previous: Path, methods: list[str], date: str) -> dict:
    """Provenance of a partial re-measurement: which methods are new, and the date of the
    run every other entry comes from (carried over from the previous results file)."""
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    before = old.get("remeasured", {})
    return {
        "methods": sorted(set(methods) | set(before.get("methods", [])) if before else methods),
        "date": date,
        "others_from": before.get("others_from", old.get("date", "unknown")),
    }


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the benchmark and write the results file."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "anomaly-bench")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny corpus, 1 seed, 2 epochs")
    p.add_argument("--docs", action="store_true", help="rewrite the docs section from the JSON")
    p.add_argument("--partial", action="store_true", help="write the JSON from finished jobs only")
    p.add_argument("--out", type=Path, default=None, help=f"default {RESULT.name} in results")
    p.add_argument(
        "--corpus-seed",
        type=int,
        default=0,
        help="N > 0: a development corpus for calibrating the generator (module docstring)",
    )
    p.add_argument(
        "--methods",
        help="comma-separated methods to re-measure (their earlier jobs are rerun); every "
        "other entry is kept from the earlier run and marked so in the docs",
    )
    a = p.parse_args(argv)
    remeasured = a.methods.split(",") if a.methods else []
    unknown = sorted(set(remeasured) - {*METHOD_ORDER, DISTILL})
    if unknown:
        names = ", ".join((*METHOD_ORDER, DISTILL))
        raise SystemExit(f"--methods: unknown {unknown}; choose from: {names}")
    if a.docs:
        write_docs(json.loads((a.out or RESULT).read_text()), ROOT / "docs" / "benchmarks.md")
        return 0
    from model_dev.anomaly.corpus import GENERATOR_VERSION, MACHINE_TYPES, generate
    from model_dev.anomaly.pipeline import prepare

    start = time.perf_counter()
    dev = a.corpus_seed != 0
    work = a.work / ("quick" if a.quick else "default" if not dev else f"dev-seed{a.corpus_seed}")
    a.out = a.out or (work / "anomaly.json" if dev else RESULT)
    work.mkdir(parents=True, exist_ok=True)
    gen_s = None
    if not (work / "corpus").exists():
        t0 = time.perf_counter()
        generate(work / "corpus", "tiny" if a.quick else "default", seed=a.corpus_seed)
        gen_s = time.perf_counter() - t0
        (work / "generation_s.txt").write_text(f"{gen_s:.1f}\n")
    made = json.loads((work / "corpus" / "corpus.json").read_text())["generator_version"]
    if made != GENERATOR_VERSION:
        raise SystemExit(
            f"{work / 'corpus'}: generator version {made}, this code writes {GENERATOR_VERSION}; "
            f"move {work} aside (its results belong to the old corpus) and rerun"
        )
    gen_s = float((work / "generation_s.txt").read_text())
    t0 = time.perf_counter()
    prepare("dcase", work / "corpus", work / "features")
    feat_s = time.perf_counter() - t0
    seeds = SEEDS[:1] if a.quick or dev else SEEDS
    types = MACHINE_TYPES
    log = work / "jobs.jsonl"
    done = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            done[entry["key"]] = entry["result"]
    teachers = [("teacher", "id_teacher", t, 0, work, a.quick) for t in types]
    jobs = []
    for s in seeds:  # seed by seed, so a partial run holds complete seeds
        jobs += [("method", m, t, s, work, a.quick) for m in METHOD_ORDER for t in types]
        jobs += [("student", arm, t, s, work, a.quick) for arm in STUDENT_ARMS for t in types]
        jobs += [("zero_shot", "dense_ae", t, s, work, a.quick) for t in types]
    if remeasured and not a.partial:
        chosen = [j for j in jobs if j[0] == "method" and j[1] in remeasured]
        if DISTILL in remeasured:
            chosen += [j for j in jobs if j[0] == "student"]
            for j in teachers:
                done.pop(_key(j), None)
            _run(teachers, done, log, a.jobs)  # first: the students read them
        for j in chosen:
            done.pop(_key(j), None)
        _run(chosen, done, log, a.jobs)
    elif not a.partial:
        _run(teachers, done, log, a.jobs)
        _run(jobs, done, log, a.jobs)
    finished = [j for j in teachers + jobs if _key(j) in done]
    runs = []
    for job in finished:
        out = done[_key(job)]
        runs += out["rows"] if "rows" in out else [out]
    result = {
        "command": "python benchmarks/anomaly.py"
        + (" --quick" if a.quick else "")
        + (f" --methods {a.methods}" if a.methods else ""),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "corpus": {
            "size": "tiny" if a.quick else "default",
            "seed": a.corpus_seed,
            "generator_version": GENERATOR_VERSION,
            "generation_s": gen_s,
            "features_s": feat_s,
        },  # fmt: skip
        "settings": {
            "seeds": list(seeds),
            "epochs": EPOCHS,
            "batch": BATCH,
            "max_windows": MAX_WINDOWS,
            "workers": a.jobs,
            "torch_threads": 1,
        },  # fmt: skip
        "wall_s_this_session": time.perf_counter() - start,
        "job_s_total": sum(done[_key(j)]["train_s"] for j in finished),
        "jobs_finished": f"{len(finished)} of {len(teachers + jobs)}",
        "pauc_convention": "challenge: ROC area over FPR<=0.1 divided by 0.1 (not McClish)",
        "specs": _specs(),
        "runs": runs,
    }
    if remeasured:
        result["remeasured"] = _remeasured(a.out, remeasured, result["date"])
    from model_dev.config_io import json_finite
    from model_dev.fileio import atomic_write_text

    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps(json_finite(result), indent=1, allow_nan=False) + "\n")
    print(f"wrote {a.out}", flush=True)
    if dev:
        print(_type_table(runs), flush=True)
    return 0


def _type_table(runs: list[dict]) -> str:
    """Mean AUC per method and machine type, and by severity (a development run's summary)."""
    from model_dev.anomaly.corpus import MACHINE_TYPES, SEVERITIES

    lines = ["method | " + " | ".join(MACHINE_TYPES) + " | mean | by severity"]
    for m in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == m]
        per = [np.mean([r["auc"] for r in mine if r["machine_type"] == t] or [np.nan])
               for t in MACHINE_TYPES]  # fmt: skip
        sev = [np.mean([r["auc_by_severity"].get(str(v), np.nan) for r in mine
                        if "auc_by_severity" in r] or [np.nan]) for v in SEVERITIES]  # fmt: skip
        cells = " | ".join(f"{v:.3f}" for v in per)
        lines.append(
            f"{m} | {cells} | {np.nanmean(per):.3f} | " + " / ".join(f"{v:.2f}" for v in sev)
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
