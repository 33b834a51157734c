"""``aedfw data synth-machines``: the synthetic machine-sound corpus in the DCASE 2020 Task 2
layout (:func:`model_dev.anomaly.corpus.generate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands

EXAMPLES = ("aedfw data synth-machines --size tiny --out data/machines",)


def register(commands: Commands) -> None:
    p = commands.add(
        "data synth-machines",
        "generate the synthetic machine corpus (anomaly detection)",
        run,
        examples=EXAMPLES,
    )
    p.add_argument("--size", default="default", help="tiny | default")
    p.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> None:
    from model_dev.anomaly.corpus import generate

    print(f"machine corpus written to {generate(args.out, args.size, args.seed)}")
