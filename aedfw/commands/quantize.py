"""``aedfw quantize``: student checkpoint -> full-int8 .tflite (:func:`quantize.quantize`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands
from aedfw.options import add_dataset_options, dataset_spec

EXAMPLES = (
    "aedfw quantize runs/s5k/best.pt --data data/small --out models/s5k.tflite",
    "aedfw quantize runs/s5k/best.pt --data data/small --out models/s5k.tflite --limit 50 "
    "--verbose",
)


def register(commands: Commands) -> None:
    p = commands.add(
        "quantize",
        "student checkpoint -> full-int8 .tflite with metadata, AUPRC and parity report",
        run,
        examples=EXAMPLES,
    )
    p.add_argument("checkpoint", type=Path, help="student checkpoint (best.pt)")
    add_dataset_options(p)
    p.add_argument("--out", type=Path, required=True, help="output .tflite")
    p.add_argument("--split", default="test", help="evaluation split (default test)")
    p.add_argument("--limit", type=int, help="evaluate only the first N clips of the split")


def run(args: argparse.Namespace) -> None:
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
