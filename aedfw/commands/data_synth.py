"""``aedfw data synth``: the built-in synthetic corpus (:func:`model_dev.synth.synth`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands

EXAMPLES = (
    "aedfw data synth --preset tiny --out data/tiny",
    "aedfw data synth --preset small --out data/small --seed 1 --jobs 2",
)


def register(commands: Commands) -> None:
    p = commands.add("data synth", "generate the built-in synthetic corpus", run, examples=EXAMPLES)
    p.add_argument("--preset", default="default", help="tiny | small | default | large")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="worker processes")


def run(args: argparse.Namespace) -> None:
    from model_dev.synth import synth

    out = synth(args.out, preset=args.preset, seed=args.seed, jobs=args.jobs)
    print(f"corpus written to {out}")
