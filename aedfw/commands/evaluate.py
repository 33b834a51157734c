"""``aedfw evaluate``: AUPRC, PR curves and thresholds (:func:`model_dev.evaluate.evaluate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands
from aedfw.options import add_dataset_options, add_device_option, dataset_spec


def register(commands: Commands) -> None:
    p = commands.add("evaluate", "AUPRC, PR curves and operating thresholds of a checkpoint", run)
    p.add_argument("checkpoint", type=Path, help="checkpoint (best.pt)")
    add_dataset_options(p)
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--out", type=Path, help="report folder (default CKPT_DIR/eval-SPLIT)")
    p.add_argument(
        "--target-precision",
        type=float,
        help="thresholds at this precision (default: at maximum F1)",
    )
    add_device_option(p, default="auto")


def run(args: argparse.Namespace) -> None:
    from model_dev.evaluate import evaluate
    from model_dev.stage_inputs import checkpoint_inputs

    fs = checkpoint_inputs(args.checkpoint, dataset_spec(args)).features
    out = args.out or args.checkpoint.parent / f"eval-{args.split}"
    r = evaluate(args.checkpoint, fs, args.split, out, args.target_precision, device=args.device)
    m = r["metrics"]
    print(
        f"{r['arch']} on {r['split']} ({r['n_clips']} clips): micro-AUPRC {m['micro']:.4f}, "
        f"macro {m['macro']:.4f} (chance {m['chance']:.4f})"
    )
    for c, t in r["at_thresholds"].items():
        print(
            f"  {c:22s} AP {m[f'ap/{c}']:.4f}  threshold {t['threshold']:.4f}  "
            f"P {t['precision']:.3f} R {t['recall']:.3f} F1 {t['f1']:.3f}"
        )
    print(f"thresholds ({r['thresholds']['method']}) saved in {args.checkpoint}; report in {out}")
