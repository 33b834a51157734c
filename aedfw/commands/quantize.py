"""``aedfw quantize``: student checkpoint -> full-int8 .tflite (:func:`quantize.quantize`); an
anomaly checkpoint -> one .tflite per machine type (:func:`quantize.anomaly.quantize_anomaly`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands
from aedfw.options import add_dataset_options, dataset_spec

EXAMPLES = (
    "aedfw quantize runs/s5k/best.pt --data data/small --out models/s5k.tflite",
    "aedfw quantize runs/s5k/best.pt --data data/small --out models/s5k.tflite --limit 50 "
    "--verbose",
    "aedfw quantize runs/fan-ae.pt --data data/machines --out models/dense_ae",
)


def register(commands: Commands) -> None:
    p = commands.add(
        "quantize",
        "student checkpoint -> full-int8 .tflite with metadata, AUPRC and parity report; "
        "anomaly checkpoint -> one per machine type, float vs int8 AUC/pAUC",
        run,
        examples=EXAMPLES,
    )
    p.add_argument("checkpoint", type=Path, help="student checkpoint (best.pt), or an anomaly .pt")
    add_dataset_options(p)
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output .tflite (anomaly: output folder, one MACHINE_TYPE.tflite each)",
    )
    p.add_argument("--split", default="test", help="evaluation split (default test)")
    p.add_argument("--limit", type=int, help="evaluate only the first N clips of the split")


def run(args: argparse.Namespace) -> None:
    from model_dev.anomaly.pipeline import is_anomaly_checkpoint

    if is_anomaly_checkpoint(args.checkpoint):
        return run_anomaly(args)
    from quantize import quantize

    r = quantize(args.checkpoint, args.out, dataset_spec(args), split=args.split, limit=args.limit)
    e, p = r["evaluation"], r["parity"]
    print(
        f"{r['model']['path']}: {r['model']['bytes']} bytes, arena {r['arena_bytes']} bytes, "
        f"ops {','.join(r['model']['op_counts'])}"
    )
    print(
        f"{e['split']} ({e['n_clips']} clips): micro-AUPRC float {e['float']['micro']:.4f}, "
        f"int8 {e['int8_tflm']['micro']:.4f} ({e['delta_micro']:+.4f}); TFLM vs LiteRT "
        f"{p['exact_match_rate']:.2%} exact, max {p['max_lsb_diff']} LSB"
    )
    print(f"report: {r['files']['markdown']}")


def run_anomaly(args: argparse.Namespace) -> None:
    """An anomaly checkpoint: every machine type of the dataset at ``--data`` (its test split)."""
    from quantize.anomaly import quantize_anomaly

    if args.split != "test" or args.limit is not None:
        raise ValueError("--split and --limit are for tagging checkpoints; anomaly: test split")
    r = quantize_anomaly(args.checkpoint, args.out, args.data, cache_dir=args.cache)
    print(f"{r['method']} ({r['score']}); pAUC: {r['pauc_convention']}")
    for mtype, t in r["per_type"].items():
        print(
            f"  {mtype:12s} AUC float {t['float']['auc']:.4f} int8 {t['int8']['auc']:.4f}  "
            f"pAUC float {t['float']['pauc']:.4f} int8 {t['int8']['pauc']:.4f}  "
            f"{t['model']['path']} ({t['model']['bytes']} bytes)"
        )
    print(f"report: {args.out / 'quantize.md'}")
