"""Anomaly detection on the device (issue 16): float vs int8 vs on-device AUC/pAUC, sizes and
Cortex-M4 instructions of every deployable method, on the benchmark's machine corpus.

For each method that ``aedfw quantize`` converts (:data:`quantize.anomaly.QUANTIZABLE`), the
benchmark's best deployable detector (:data:`STUDENTS`), and each machine type of the synthetic
machine corpus (default size, seed 0, the generator version of this code), one job:

1. trains the detector with exactly the settings ``benchmarks/anomaly.py`` uses for training
   seed 0 (its ``_data``, ``_cfg``, ``_summary``: same corpus split, epochs, batch, windows, one
   torch thread) and computes its float AUC/pAUC as that benchmark does;
2. ``aedfw quantize`` (:func:`quantize.anomaly.quantize_anomaly`): full-int8 .tflite, the int8
   AUC/pAUC of the integer score on the host (TFLM);
3. ``aedfw firmware`` (:func:`firmware_gen.package.firmware`), the native build on a
   pseudo-terminal (:func:`host_tools.emulate.emulated_device`) and ``aedfw validate``
   (:func:`host_tools.validate.validate`) of every test clip of the type over the serial link:
   features, window scores, clip (sum, windows) and decision byte for byte, and the AUC/pAUC of
   the device's clip scores;
4. for one machine type per method (:data:`COST_TYPE`): the Cortex-M4 build's flash and RAM
   (``memory.json``), front-end instructions per frame and engine instructions per inference
   under QEMU ``-icount shift=0`` (:func:`host_tools.qemu.cortex_m4_instructions`, from the
   self-test), the window score's instructions from the device's cycle counter while
   validating :data:`COST_CLIPS` clips on the emulated Cortex-M4, and their sum for one second
   of audio with one inference per window hop.

The float AUC is checked against the seed-0 entry of ``benchmarks/results/anomaly.json`` (or,
with ``--compare``, of a running ``benchmarks/anomaly.py`` work folder) when that is from the same
corpus generator version (training is deterministic on one machine; a difference is reported, not
hidden). Resumable: each finished job is appended to ``<work>/jobs.jsonl``. Writes
``benchmarks/results/anomaly_device.json`` and the "Anomaly detection on the device" section of
docs/benchmarks.md; ``--merge`` (also run at the end when ``anomaly.json`` is from the same
corpus generator version) adds ``int8_auc``, ``int8_pauc``, ``device_auc``, ``device_pauc`` to
the matching seed-0 runs of ``anomaly.json`` plus its ``device`` section.
``benchmarks/anomaly.py`` rewrites ``anomaly.json`` from scratch: run ``--merge`` again after it.

Usage::

    python benchmarks/anomaly_device.py [--jobs 1] [--work runs/anomaly-device]
    python benchmarks/anomaly_device.py --methods dense_ae,group_made --types fan
    python benchmarks/anomaly_device.py --partial    # JSON and docs from the finished jobs
    python benchmarks/anomaly_device.py --merge      # anomaly_device.json -> anomaly.json, docs
    python benchmarks/anomaly_device.py --quick      # tiny corpus, 2 epochs: a smoke run

Needs gcc, make, arm-none-eabi-gcc and qemu-system-arm.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# benchmarks/quantize.py would shadow the quantize package when run as a script
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from multiprocessing import get_context  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import anomaly as bench  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "anomaly_device.json"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- anomaly-device-benchmark:begin -->", "<!-- anomaly-device-benchmark:end -->"
SEED = 0
#: Machine type whose package is built for the Cortex-M4 and measured under QEMU.
COST_TYPE = "fan"
#: Test clips validated on the emulated Cortex-M4 for the window score's cycle count.
COST_CLIPS = 4
#: Methods in the order they run for each machine type (cheapest first).
ORDER = ("dense_ae_small", "group_made", "dense_ae", "causal_conv", "id_classifier")
#: The benchmark's distilled ID-classifier students (teacher, then student, as
#: ``benchmarks/anomaly.py`` trains them): the same network as ``id_classifier``, so the same
#: Cortex-M4 cost, not measured twice.
STUDENTS = ("id_student_kd",)
#: Quoted in issue 16 (not measured here).
ANCHORS = [
    ("MLPerf Tiny anomaly (ToyCar dense AE, 640 inputs)", "int8 .tflite 277 KB",
     "int8 AUC .842 vs float .864; log-mel features on the host, float MSE from the device, "
     "best of 100 thresholds after the fact"),
    ("Silicon Labs MLTK (same autoencoder, ToyADMOS case 1)", "280 KB",
     "AUC .923; 6.9 ms per inference at 78 MHz with an accelerator; nothing validated bit for bit"),
    ("Arm ML evaluation kit (MicroNet machine-ID classifier)", "–",
     "on-device log-mel, fixed build-time threshold, machine ID known; nothing validated bit for "
     "bit"),
]  # fmt: skip


def _corpus(work: Path, size: str) -> Path:
    """The benchmark's corpus in ``work/corpus`` (generated when missing), version-checked."""
    from model_dev.anomaly.corpus import GENERATOR_VERSION, generate

    corpus = work / "corpus"
    if not (corpus / "corpus.json").is_file():
        generate(corpus, size, seed=0, progress=False)
    made = json.loads((corpus / "corpus.json").read_text())
    made_size = made["size"]["name"]
    if made["generator_version"] != GENERATOR_VERSION or made_size != size or made["seed"]:
        raise SystemExit(
            f"{corpus}: generator version {made['generator_version']}, size {made_size}, "
            f"seed {made['seed']}; this run needs version {GENERATOR_VERSION}, size {size}, "
            f"seed 0: move {work} aside and rerun"
        )
    return corpus


def _checkpoint(path: Path, record: dict, corpus: Path, cfg) -> Path:
    """The trained record as an anomaly checkpoint, as ``aedfw train anomaly`` writes it."""
    from model_dev.anomaly.data import ANOMALY_FRONTEND
    from model_dev.anomaly.pipeline import save_checkpoint

    meta = {"frontend": ANOMALY_FRONTEND.to_dict(), "frontend_hash": ANOMALY_FRONTEND.hash}
    meta |= {"fit_config": cfg.to_dict(), "dataset": {"kind": "dcase", "root": str(corpus)}}
    meta |= {"init": None, "train_ids": None}
    save_checkpoint(path, {record["machine_type"]: record}, meta)
    return path


def _auc(m: dict | None) -> dict | None:
    return None if m is None else {"auc": float(m["auc"]), "pauc": float(m["pauc"])}


def cost(fw: Path, model: Path, data, out: Path, clips: int = COST_CLIPS) -> dict:
    """Cortex-M4 figures of one package: flash/RAM of its UART build, instructions per frame,
    inference and window score under QEMU ``-icount``, and per second of audio at its hop."""
    from firmware_gen.build import build_firmware
    from host_tools.emulate import emulated_device
    from host_tools.qemu import QEMU_INSTRUCTIONS_PER_TICK, cortex_m4_instructions, package_rates
    from host_tools.validate import validate

    build_firmware(fw, "cortex-m4")
    memory = json.loads((fw / "memory.json").read_text())
    ins = cortex_m4_instructions(fw)
    with emulated_device(fw, "cortex-m4") as url:
        val = validate(url, model, data, dataset="dcase", split="test", limit=clips, out=out,
                       progress=False)  # fmt: skip
    post, windows = val["cycles"]["post"], val["cycles"]["model_per_window"]["n"]
    score = post["mean"] * post["n"] / windows * QEMU_INSTRUCTIONS_PER_TICK
    frames_s, hop = package_rates(fw)
    per_s = ins["frontend_per_frame"] * frames_s
    per_s += (ins["model_per_inference"] + score) * frames_s / hop
    return {
        "flash_bytes": memory["flash"]["total"],
        "flash_bytes_without_selftest": memory["flash"]["total"] - memory["flash"]["selftest"],
        "ram_bytes": memory["ram"]["total"],
        "library_flash_bytes": memory["library"]["weights_tables_code"],
        "activation_bytes": memory["library"]["activations"],
        "memory": memory,
        "frontend_per_frame": ins["frontend_per_frame"],
        "model_per_inference": ins["model_per_inference"],
        "score_per_window": round(score),
        "score_clips": clips,
        "score_validation_passed": bool(val["passed"]),
        "hop_frames": hop,
        "inferences_per_second": frames_s / hop,
        "per_second_at_hop": round(per_s),
    }


def _job(args: tuple) -> dict:
    """One (method, machine type): train, float AUC, quantize, package, validate over a pty;
    the Cortex-M4 cost too for :data:`COST_TYPE`."""
    import torch

    torch.set_num_threads(1)
    from firmware_gen.build import build_firmware
    from firmware_gen.package import firmware
    from host_tools.emulate import emulated_device
    from host_tools.validate import validate
    from model_dev.anomaly.pipeline import train_detector
    from model_dev.stage_inputs import DatasetSpec
    from quantize.anomaly import quantize_anomaly

    method, mtype, work, quick, cost_type = args
    corpus, cache = work / "corpus", work / "features"
    here = work / method / mtype
    t0 = time.perf_counter()
    data = bench._data(work, mtype)
    cfg = bench._cfg("id_classifier" if method in STUDENTS else method, SEED, quick)
    if method in STUDENTS:
        teacher = bench.train_teacher(data, SEED, quick)
        record = bench.train_student(data, method.removeprefix("id_student_"), teacher, SEED, quick)
    else:
        record = train_detector(method, data, cfg, progress=False)
    summary = bench._summary(record, data)
    ckpt = _checkpoint(here / f"{method}.pt", record, corpus, cfg)
    t1 = time.perf_counter()
    q = quantize_anomaly(ckpt, here / "int8", corpus, cache_dir=cache, seed=SEED, device="cpu",
                         progress=False)["per_type"][mtype]  # fmt: skip
    model = Path(q["model"]["path"])
    t2 = time.perf_counter()
    fw = firmware(model, here / "fw")
    build_firmware(fw, "host")
    spec = DatasetSpec(corpus, kind="dcase", cache=cache)
    with emulated_device(fw, "host") as url:
        val = validate(url, model, spec, dataset="dcase", split="test", out=here / "validation",
                       progress=False)  # fmt: skip
    t3 = time.perf_counter()
    metrics = val["metrics"] or {}
    row = {
        "method": method,
        "machine_type": mtype,
        "seed": SEED,
        "float": {"auc": summary["auc"], "pauc": summary["pauc"]},
        "float_quantize_report": _auc(q["float"]),
        "int8": _auc(q["int8"]),
        "host_validate": _auc(metrics.get("host")),
        "device": _auc(metrics.get("device")),
        "validation": {
            "passed": bool(val["passed"]),
            "n_matched": val["n_matched"],
            "n_requested": val["n_requested"],
            "first_mismatch": val["first_mismatch"],
        },
        "model": {
            "tflite_bytes": q["model"]["bytes"],
            "tflm_arena_bytes": q["model"]["arena_bytes"],
            "ops": q["model"]["ops"],
        },  # fmt: skip
        "threshold_q": q["threshold"]["q"],
        "parity_tflm_litert": q["parity_tflm_litert"],
        "n_test_clips": q["n_clips"],
        "train_s": t1 - t0,
        "quantize_s": t2 - t1,
        "firmware_validate_s": t3 - t2,
    }
    if mtype == cost_type and method not in STUDENTS:
        row["cortex_m4"] = cost(fw, model, spec, here / "validation-m4")
        row["cost_s"] = time.perf_counter() - t3
    row["job_s"] = time.perf_counter() - t0
    return row


def _key(method: str, mtype: str) -> str:
    return f"{method}/{mtype}"


def _done(log: Path) -> dict[str, dict]:
    done = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            done[entry["key"]] = entry["result"]
    return done


def _run(jobs: list[tuple], done: dict, log: Path, workers: int) -> None:
    todo = [j for j in jobs if _key(j[0], j[1]) not in done]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} jobs done; running {len(todo)}", flush=True)
    if not todo:
        return
    with get_context("spawn").Pool(workers) as pool:
        for job, out in zip(todo, pool.imap(_job, todo), strict=True):
            done[_key(job[0], job[1])] = out
            with log.open("a") as f:
                f.write(json.dumps({"key": _key(job[0], job[1]), "result": out}) + "\n")
            v = out["validation"]
            print(
                f"{_key(job[0], job[1])}: AUC float {out['float']['auc']:.4f} int8 "
                f"{out['int8']['auc']:.4f} device {_f(out['device'], 'auc')}; validation "
                f"{v['n_matched']}/{v['n_requested']} {'PASS' if v['passed'] else 'FAIL'} "
                f"({out['job_s']:.0f} s)",
                flush=True,
            )


def _f(d: dict | None, key: str, digits: int = 4) -> str:
    return "–" if d is None or d.get(key) is None else f"{d[key]:.{digits}f}"


def float_check(rows: list[dict], benchmark: dict | None) -> dict:
    """Each row's float AUC/pAUC against the seed-0 run of ``anomaly.json`` (same corpus
    generator version only): ``status`` and the largest absolute differences."""
    from model_dev.anomaly.corpus import GENERATOR_VERSION

    if benchmark is None:
        return {"status": "no anomaly.json"}
    version = benchmark.get("corpus", {}).get("generator_version")
    if version != GENERATOR_VERSION:
        return {"status": f"anomaly.json is from corpus generator version {version}, "
                          f"this run {GENERATOR_VERSION}: not compared"}  # fmt: skip
    runs = {(r["method"], r["machine_type"]): r for r in benchmark["runs"] if r["seed"] == SEED}
    diffs, missing = {}, []
    for r in rows:
        b = runs.get((r["method"], r["machine_type"]))
        if b is None:
            missing.append(_key(r["method"], r["machine_type"]))
            continue
        diffs[_key(r["method"], r["machine_type"])] = {
            "auc": r["float"]["auc"] - b["auc"], "pauc": r["float"]["pauc"] - b["pauc"]
        }  # fmt: skip
    worst = max((max(abs(d["auc"]), abs(d["pauc"])) for d in diffs.values()), default=0.0)
    status = "equal" if worst == 0.0 else f"differs (largest |difference| {worst:.2e})"
    return {"status": status if diffs else "no matching seed-0 runs", "benchmark_date":
            benchmark.get("date"), "benchmark_source": benchmark.get("source", "anomaly.json"),
            "differences": diffs, "missing": missing}  # fmt: skip


def summarise(rows: list[dict], meta: dict, benchmark: dict | None) -> dict:
    """The results JSON: per-(method, type) rows, per-method Cortex-M4 cost, the float check."""
    from quantize.anomaly import QUANTIZABLE

    methods = [m for m in bench.METHOD_ORDER if m in QUANTIZABLE]
    methods += [m for m in QUANTIZABLE if m not in methods] + list(STUDENTS)
    cost_rows = {r["method"]: r for r in rows if "cortex_m4" in r}
    cost_rows = {m: cost_rows[m] for m in methods if m in cost_rows}
    return meta | {
        "methods": methods,
        "not_deployed": _not_deployed(),
        "runs": rows,
        "cortex_m4": {
            m: {
                "machine_type": r["machine_type"],
                "tflite_bytes": r["model"]["tflite_bytes"],
                "tflm_arena_bytes": r["model"]["tflm_arena_bytes"],
            }
            | {k: v for k, v in r["cortex_m4"].items() if k != "memory"}
            for m, r in cost_rows.items()
        },  # fmt: skip
        "all_validations_passed": all(r["validation"]["passed"] for r in rows),
        "device_equals_int8": all(
            r["device"] is not None and r["device"] == r["host_validate"] == r["int8"] for r in rows
        ),
        "float_vs_benchmark": float_check(rows, benchmark),
    }


def _not_deployed() -> dict[str, str]:
    """Methods of the benchmark with no device build, and why (from the method table)."""
    from model_dev.anomaly.methods import METHODS
    from quantize.anomaly import QUANTIZABLE

    out = {}
    for m in bench.METHOD_ORDER:
        if m in QUANTIZABLE:
            continue
        why = "host-only method" if not METHODS[m].deployable else "not converted"
        if METHODS[m].uses_anomalies:
            why = "trains on labelled anomalies"
        out[m] = why
    return out


def merge(device: dict, path: Path) -> dict:
    """``anomaly.json`` with the device figures: int8/device AUC/pAUC in the seed-0 runs of the
    same method and type, and a ``device`` section; refused for another corpus version.
    ``device["float_vs_benchmark"]`` is recomputed against this ``anomaly.json``."""
    result = json.loads(path.read_text())
    mine = device["corpus"]["generator_version"]
    theirs = result.get("corpus", {}).get("generator_version")
    if theirs != mine or result["corpus"].get("size") != device["corpus"]["size"]:
        raise SystemExit(
            f"{path}: corpus generator version {theirs} ({result['corpus'].get('size')}), the "
            f"device results' {mine} ({device['corpus']['size']}): not merged"
        )
    device["float_vs_benchmark"] = float_check(device["runs"], result)
    rows = {(r["method"], r["machine_type"]): r for r in device["runs"]}
    merged = 0
    for run in result["runs"]:
        r = rows.get((run["method"], run["machine_type"]))
        if r is None or run["seed"] != SEED:
            continue
        run |= {"int8_auc": r["int8"]["auc"], "int8_pauc": r["int8"]["pauc"]}
        run |= {"device_auc": _get(r["device"], "auc"), "device_pauc": _get(r["device"], "pauc")}
        merged += 1
    result["device"] = {k: device[k] for k in (
        "command", "date", "machine", "cortex_m4", "not_deployed", "all_validations_passed",
        "device_equals_int8", "float_vs_benchmark")} | {"runs_merged": merged}  # fmt: skip
    return result


def _get(d: dict | None, key: str):
    return None if d is None else d[key]


def _check_words(check: dict, n_runs: int) -> str:
    if "differences" not in check:
        return check["status"]
    return (
        f"{check['status']} on the {len(check['differences'])} of {n_runs} runs it has, "
        f"from {check['benchmark_date']}"
    )


def report(r: dict) -> str:
    """The docs section (markdown) from ``anomaly_device.json``."""
    from model_dev.anomaly.corpus import MACHINE_TYPES

    rows = {(x["method"], x["machine_type"]): x for x in r["runs"]}
    check = r["float_vs_benchmark"]
    lines = [
        "## Anomaly detection on the device",
        "",
        "Every deployable anomaly method through the whole chain on the benchmark's machine "
        "corpus: trained with the settings of `benchmarks/anomaly.py` (training seed 0), "
        "`aedfw quantize` (full int8, integer window score), `aedfw firmware`, the native device "
        "on a pseudo-terminal and `aedfw validate` of every test clip over the serial link "
        "(features, every window score, the clip mean as (sum, windows) and the decision, byte "
        "for byte). `id_student_kd` is the KD-distilled ID-classifier student (teacher, then "
        "student, as that benchmark trains them): the `id_classifier` network, so its "
        "Cortex-M4 cost is that row's.",
        "",
        f"- Command: `{r['command']}` (resumable; `--merge` puts the figures into "
        "`benchmarks/results/anomaly.json` and rewrites this section)",
        f"- Date: {r['date']}; machine: {r['machine']}",
        f"- Corpus: `{r['corpus']['size']}` size, seed {r['corpus']['seed']}, generator version "
        f"{r['corpus']['generator_version']}; {r['corpus']['test_clips_per_type']} test clips "
        "per type. AUC/pAUC: mean over machine IDs; pAUC: FPR <= 0.1, the challenge's "
        "convention.",
        f"- float = torch, as `benchmarks/anomaly.py` computes it (against its seed-0 runs: "
        f"{_check_words(check, len(r['runs']))}); int8 = the integer score of the .tflite on "
        "the host (TFLM); device = the scores the device sent.",
        f"- Validation: {'every' if r['all_validations_passed'] else 'NOT every'} clip of every "
        "run byte-identical; device AUC/pAUC "
        f"{'equal to' if r['device_equals_int8'] else 'NOT equal to'} the host int8 figures in "
        "every run.",
        "",
        "| method | machine type | float AUC | int8 AUC | device AUC | float pAUC | int8 pAUC | "
        "device pAUC | int8 − float AUC | validated clips |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in r["methods"]:
        mine = [rows[(m, t)] for t in MACHINE_TYPES if (m, t) in rows]
        for x in mine:
            v = x["validation"]
            lines.append(
                f"| {m} | {x['machine_type']} | {_f(x['float'], 'auc', 3)} | "
                f"{_f(x['int8'], 'auc', 3)} | {_f(x['device'], 'auc', 3)} | "
                f"{_f(x['float'], 'pauc', 3)} | {_f(x['int8'], 'pauc', 3)} | "
                f"{_f(x['device'], 'pauc', 3)} | {x['int8']['auc'] - x['float']['auc']:+.4f} | "
                f"{v['n_matched']}/{v['n_requested']} {'PASS' if v['passed'] else 'FAIL'} |"
            )
        if len(mine) > 1:
            mean = {k: {s: float(np.mean([x[k][s] for x in mine])) for s in ("auc", "pauc")}
                    for k in ("float", "int8")}  # fmt: skip
            dev = [x["device"] for x in mine]
            mean["device"] = None if None in dev else {
                s: float(np.mean([d[s] for d in dev])) for s in ("auc", "pauc")}  # fmt: skip
            lines.append(
                f"| {m} | **mean** | {_f(mean['float'], 'auc', 3)} | {_f(mean['int8'], 'auc', 3)} "
                f"| {_f(mean['device'], 'auc', 3)} | {_f(mean['float'], 'pauc', 3)} | "
                f"{_f(mean['int8'], 'pauc', 3)} | {_f(mean['device'], 'pauc', 3)} | "
                f"{mean['int8']['auc'] - mean['float']['auc']:+.4f} | |"
            )
    worst = max((abs(x["int8"]["auc"] - x["float"]["auc"]), x["method"], x["machine_type"])
                for x in r["runs"]) if r["runs"] else None  # fmt: skip
    if worst:
        lines += ["", f"Largest |int8 − float AUC|: {worst[0]:.4f} ({worst[1]}, {worst[2]}; "
                  "goal <= 0.01)."]  # fmt: skip
    lines += [
        "",
        "Sizes and Cortex-M4 cost (one machine type per method; QEMU mps2-an386 `-icount "
        "shift=0`, the package's -O3 build; instructions of the front end per frame and of the "
        "engine per inference from the self-test, of the window score from the device's cycle "
        f"counter over {COST_CLIPS} validated clips; per second of audio: 31.25 front-end "
        "frames plus one inference and window score per window hop). Flash and RAM: the whole "
        "reference image (library, protocol, self-test with its golden clips, app); library = "
        "weights, tables and code of the front end, engine and score.",
        "",
        "| method | type | .tflite | TFLM arena | image flash | without self-test | image RAM "
        "| library flash | "
        "engine activations | instructions per inference | window score | hop (frames) | "
        "instructions per second of audio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, c in r["cortex_m4"].items():
        lines.append(
            f"| {m} | {c['machine_type']} | {c['tflite_bytes'] / 1000:.0f} kB | "
            f"{c['tflm_arena_bytes'] / 1000:.1f} kB | {c['flash_bytes'] / 1000:.0f} kB | "
            f"{c['flash_bytes_without_selftest'] / 1000:.0f} kB | "
            f"{c['ram_bytes'] / 1000:.1f} kB | {c['library_flash_bytes'] / 1000:.0f} kB | "
            f"{c['activation_bytes'] / 1000:.1f} kB | {c['model_per_inference']:,} | "
            f"{c['score_per_window']:,} | {c['hop_frames']} | "
            f"{c['per_second_at_hop'] / 1e6:.2f} M |"
        )
    if r["cortex_m4"]:
        fe = sorted(c["frontend_per_frame"] for c in r["cortex_m4"].values())
        c = next(iter(r["cortex_m4"].values()))
        frames_s = c["inferences_per_second"] * c["hop_frames"]
        lines += ["", f"Front end: {fe[0]:,}-{fe[-1]:,} instructions per frame (the packages' "
                  "golden clips differ; 1024-sample frames, hop 512, 2048-point FFT, 128 mel "
                  f"bands), {frames_s * fe[-1] / 1e6:.2f} M per second of audio."]  # fmt: skip
    lines += ["", "Not on the device: " + "; ".join(
        f"`{m}` ({why})" for m, why in r["not_deployed"].items()) + "."]  # fmt: skip
    lines += [
        "",
        "Embedded anchors (figures quoted in issue 16, not measured here):",
        "",
        "| anchor | size | figures |",
        "|---|---|---|",
        *(f"| {a} | {s} | {t} |" for a, s, t in ANCHORS),
    ]
    return "\n".join(lines) + "\n"


def _meta(a, corpus: Path, start: float, done: dict) -> dict:
    from model_dev.anomaly.corpus import GENERATOR_VERSION

    made = json.loads((corpus / "corpus.json").read_text())
    n_test = sum(1 for p in (corpus / COST_TYPE / "test").glob("*.wav"))
    cmd = "python benchmarks/anomaly_device.py" + " --quick" * a.quick
    cmd += f" --methods {a.methods}" * bool(a.methods) + f" --types {a.types}" * bool(a.types)
    return {
        "command": cmd,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": bench._machine(),
        "corpus": {"size": made["size"]["name"], "seed": made["seed"],
                   "generator_version": GENERATOR_VERSION, "test_clips_per_type": n_test},
        "settings": {"training_seed": SEED, "epochs": bench.EPOCHS, "batch": bench.BATCH,
                     "max_windows": bench.MAX_WINDOWS, "workers": a.jobs, "torch_threads": 1,
                     "cost_type": COST_TYPE, "cost_clips": COST_CLIPS},
        "wall_s_this_session": time.perf_counter() - start,
        "job_s_total": sum(r["job_s"] for r in done.values()),
    }  # fmt: skip


def _benchmark(path: Path) -> dict | None:
    """``anomaly.json``, or the finished runs of a ``benchmarks/anomaly.py`` work folder (its
    ``jobs.jsonl`` and ``corpus/corpus.json``) while that benchmark is still running."""
    if path.is_dir():
        made = json.loads((path / "corpus" / "corpus.json").read_text())
        runs = [json.loads(line)["result"] for line in (path / "jobs.jsonl").open()]
        return {
            "date": "the finished jobs of a running benchmarks/anomaly.py",
            "source": str(path / "jobs.jsonl"),
            "corpus": {
                "size": made["size"]["name"],
                "generator_version": made["generator_version"],
            },
            "runs": [r for r in runs if "method" in r],
        }
    return json.loads(path.read_text()) if path.is_file() else None


def _write(path: Path, result: dict) -> None:
    from model_dev.config_io import json_finite
    from model_dev.fileio import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(json_finite(result), indent=1, allow_nan=False) + "\n")


def _docs(device: dict) -> None:
    from model_dev.fileio import write_marked_section

    write_marked_section(DOCS, BEGIN, END, report(device))
    print(f"wrote the docs section in {DOCS}", flush=True)


def _merge_and_docs(device_json: Path, benchmark_json: Path) -> None:
    if not benchmark_json.is_file():
        raise SystemExit(f"{benchmark_json}: no such file; run benchmarks/anomaly.py first")
    device = json.loads(device_json.read_text())
    merged = merge(device, benchmark_json)  # refuses another corpus version before any write
    _write(device_json, device)
    _write(benchmark_json, merged)
    print(f"float vs {benchmark_json}: {device['float_vs_benchmark']['status']}; merged into it")
    _docs(device)


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the device benchmark, write its JSON, merge and write the docs."""
    from model_dev.anomaly.corpus import GENERATOR_VERSION, MACHINE_TYPES
    from quantize.anomaly import QUANTIZABLE

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "anomaly-device")
    p.add_argument("--jobs", type=int, default=1, help="parallel jobs (1 torch thread each)")
    p.add_argument(
        "--methods", help=f"comma-separated, default all: {','.join((*QUANTIZABLE, *STUDENTS))}"
    )
    p.add_argument("--types", help=f"comma-separated, default all: {','.join(MACHINE_TYPES)}")
    p.add_argument("--quick", action="store_true", help="tiny corpus, 2 epochs (smoke run)")
    p.add_argument("--out", type=Path, default=None, help=f"default results/{RESULT.name}")
    p.add_argument(
        "--benchmark", type=Path, default=bench.RESULT, help="anomaly.json to merge into"
    )
    p.add_argument(
        "--compare",
        type=Path,
        help="check the float AUCs against this anomaly.json or benchmarks/anomaly.py work folder "
        "(<work>/default, while it runs) instead of --benchmark",
    )
    p.add_argument("--merge", action="store_true", help="only merge --out into --benchmark, docs")
    p.add_argument("--docs", action="store_true", help="only rewrite the docs section from --out")
    p.add_argument("--partial", action="store_true", help="write --out from finished jobs only")
    p.add_argument("--no-merge", action="store_true", help="write --out and the docs, not merge")
    a = p.parse_args(argv)
    a.out = a.out or (a.work / "quick" / RESULT.name if a.quick else RESULT)
    if a.merge:
        _merge_and_docs(a.out, a.benchmark)
        return 0
    if a.docs:
        _docs(json.loads(a.out.read_text()))
        return 0
    every = [m for m in ORDER if m in QUANTIZABLE] + [m for m in QUANTIZABLE if m not in ORDER]
    every += STUDENTS
    methods = a.methods.split(",") if a.methods else every
    types = a.types.split(",") if a.types else list(MACHINE_TYPES)
    bad = sorted(set(methods) - set(every)) + sorted(set(types) - set(MACHINE_TYPES))
    if bad:
        raise SystemExit(
            f"unknown methods or machine types {bad}; methods: {', '.join(every)}; "
            f"types: {', '.join(MACHINE_TYPES)}"
        )
    start = time.perf_counter()
    work = a.work / ("quick" if a.quick else "default")
    work.mkdir(parents=True, exist_ok=True)
    corpus = _corpus(work, "tiny" if a.quick else "default")
    from model_dev.anomaly.pipeline import prepare

    prepare("dcase", corpus, work / "features", progress=False)
    log = work / "jobs.jsonl"
    done = _done(log)
    cost_type = COST_TYPE if COST_TYPE in types else types[0]
    # type by type, the cost type first: a partial run has every method's cost and device AUC
    types = sorted(types, key=lambda t: t != cost_type)
    jobs = [(m, t, work, a.quick, cost_type) for t in types for m in methods]
    if not a.partial:
        _run(jobs, done, log, a.jobs)
    rows = [done[_key(m, t)] for m in methods for t in types if _key(m, t) in done]
    result = summarise(rows, _meta(a, corpus, start, done), _benchmark(a.compare or a.benchmark))
    _write(a.out, result)
    print(f"wrote {a.out}; float vs benchmark: {result['float_vs_benchmark']['status']}")
    if a.quick:
        return 0
    bm = _benchmark(a.benchmark)
    if a.no_merge or bm is None or bm["corpus"]["generator_version"] != GENERATOR_VERSION:
        print(f"not merged into {a.benchmark} (--merge does it once it is from this corpus "
              "version)", flush=True)  # fmt: skip
        _docs(result)
        return 0
    _merge_and_docs(a.out, a.benchmark)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
