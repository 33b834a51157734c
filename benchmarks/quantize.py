"""What int8 costs, per student size: AUPRC drop, TFLM vs LiteRT parity, arena, size, time.

For each student checkpoint (e.g. ``runs/bench/sweep/jobs/*/best.pt``) the script runs
:func:`quantize.quantize` (drift guard, conversion, float vs int8 evaluation on the test split,
parity, exact arena) and prints, per checkpoint: int8 - float micro-AUPRC (goal: |delta| <=
0.005), TFLM vs LiteRT ``BUILTIN_REF`` exact-match rate, TFLM arena bytes, .tflite bytes and
conversion time. Without checkpoints it first trains each ``--sizes`` student for ``--epochs``
epochs itself (no distillation; brief, so the AUPRC figures are those of under-trained models)
and says so. ``--docs`` writes the table as the "Quantisation" section of docs/benchmarks.md.

Usage::

    python benchmarks/quantize.py [CKPT ...] [--data runs/synth-default] [--cache cache]
        [--sizes s5k,s20k] [--epochs 5] [--limit N] [--out runs/bench/quantize] [--docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

from model_dev.arch import STUDENTS, ArchSpec, spec_stats
from model_dev.frontend import FrontendConfig
from model_dev.stage_inputs import DatasetSpec, checkpoint_inputs
from model_dev.train import train
from model_dev.train_config import TrainConfig


def _quantize_fn():
    """The ``quantize`` package's function. Run as a script, this file's folder comes first on
    ``sys.path`` and the file's name would shadow the package, so that folder is dropped."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.modules.pop("quantize", None)
    from quantize import quantize

    return quantize


GOAL = 0.005
SECTION = "## Quantisation"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _row(r: dict, params: int) -> dict:
    e, p = r["evaluation"], r["parity"]
    return {
        "arch": r["checkpoint"]["arch"],
        "params": params,
        "float_micro": e["float"]["micro"],
        "int8_micro": e["int8_tflm"]["micro"],
        "delta_micro": e["delta_micro"],
        "delta_micro_litert": e["delta_micro_litert"],
        "delta_macro": e["delta_macro"],
        "exact_match_rate": p["exact_match_rate"],
        "max_lsb_diff": p["max_lsb_diff"],
        "windows": p["windows"],
        "arena_bytes": r["arena_bytes"],
        "tflite_bytes": r["model"]["bytes"],
        "conversion_s": r["conversion_seconds"],
        "checkpoint": r["checkpoint"]["path"],
    }


def table(rows: list[dict]) -> str:
    """Markdown table of the benchmark rows."""
    head = (
        "| student | params | float µAUPRC | int8 µAUPRC | Δ int8−float (TFLM / LiteRT) "
        "| goal \\|Δ\\| ≤ 0.005 | TFLM = LiteRT values | max LSB | arena B | .tflite B "
        "| convert s |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        ok = "met" if abs(r["delta_micro"]) <= GOAL else "**missed**"
        lines.append(
            f"| {r['arch']} | {r['params']:,} | {r['float_micro']:.4f} | {r['int8_micro']:.4f} "
            f"| {r['delta_micro']:+.4f} / {r['delta_micro_litert']:+.4f} | {ok} "
            f"| {r['exact_match_rate']:.3%} ({r['windows']} windows) | {r['max_lsb_diff']} "
            f"| {r['arena_bytes']:,} | {r['tflite_bytes']:,} | {r['conversion_s']:.1f} |"
        )
    return "\n".join(lines)


def write_docs(rows: list[dict], command: str, trained_here: bool, data: Path, n_test: int):
    """Replace (or append) the Quantisation section of docs/benchmarks.md."""
    how = (
        "checkpoints trained by the script itself for a few epochs (no distillation): the "
        "AUPRC values are those of under-trained models; the deltas, parity, arena and sizes "
        "are what this benchmark is for"
        if trained_here
        else "checkpoints given on the command line"
    )
    body = "\n".join(
        [
            SECTION,
            "",
            "Full-int8 conversion of each student (`quantize.quantize`): micro-AUPRC of the "
            "float torch model vs the int8 model (clip score = max over windows of the int8 "
            "output, exactly as on the device), TFLM vs LiteRT `BUILTIN_REF` agreement on every "
            "window's output values, the exact TFLM arena (host runtime, smallest that runs, "
            "16-byte steps), the .tflite size with metadata, and the conversion time (Keras "
            "mirror, drift guard, TFLiteConverter with 200 calibration windows + the "
            "extremes window).",
            "",
            f"- Command: `{command}`",
            f"- Date: {time.strftime('%Y-%m-%d, %H:%M UTC', time.gmtime())}",
            f"- Machine: {platform.machine()}, {os.cpu_count()} logical cores shared with other "
            f"jobs; Python {platform.python_version()}",
            f"- Inputs: {how}; data `{data}`, test split ({n_test} clips)",
            "",
            table(rows),
            "",
        ]
    )
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(body + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + body
    DOCS.write_text(text.rstrip() + "\n")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", type=Path, help="student checkpoints")
    ap.add_argument("--data", type=Path, default=Path("runs/synth-default"))
    ap.add_argument("--dataset", default="synth")
    ap.add_argument("--cache", type=Path, default=Path("cache"))
    ap.add_argument("--sizes", default=",".join(STUDENTS), help="sizes to train without CKPTs")
    ap.add_argument("--epochs", type=int, default=5, help="epochs when training here")
    ap.add_argument("--limit", type=int, help="evaluate only the first N test clips")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/quantize"))
    ap.add_argument("--docs", action="store_true", help="write docs/benchmarks.md section")
    args = ap.parse_args(argv)

    quantize = _quantize_fn()
    data = DatasetSpec(args.data, args.dataset, args.cache)
    ckpts, trained_here = list(args.checkpoints), not args.checkpoints
    if trained_here:
        fs = data.features(FrontendConfig())
        print(f"no checkpoints given: training {args.sizes} for {args.epochs} epochs each")
        for size in args.sizes.split(","):
            cfg = TrainConfig(arch=size, epochs=args.epochs, patience=0)
            run = args.out / f"train-{size}"
            ckpts.append(train(cfg, fs, run, resume=(run / "last.pt").exists()))
    rows = []
    for ckpt in ckpts:
        inputs = checkpoint_inputs(ckpt, data, expect_kind="student")
        fs, meta = inputs.features, inputs.meta
        arch = meta["arch"]["name"]
        r = quantize(ckpt, args.out / f"{arch}.tflite", fs, limit=args.limit)
        params = spec_stats(ArchSpec.from_dict(meta["arch"], str(ckpt)))["params"]
        rows.append(_row(r, params))
        print(json.dumps(rows[-1]))
    print(table(rows))
    if args.docs:
        n_test = len(fs.indices("test")[: args.limit])
        argv = sys.argv[1:] if argv is None else argv
        command = "python benchmarks/quantize.py " + " ".join(argv)
        write_docs(rows, command.strip(), trained_here, args.data, n_test)
        print(f"wrote the {SECTION[3:]} section of {DOCS}")
    return rows


if __name__ == "__main__":
    main()
