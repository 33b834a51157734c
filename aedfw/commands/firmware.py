"""``aedfw firmware``: the C package for one model (:func:`firmware_gen.package.firmware`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands


def register(commands: Commands) -> None:
    p = commands.add(
        "firmware",
        "generate the C firmware package (front end, engine, app, Makefile) for a model",
        run,
    )
    p.add_argument("model", type=Path, help="int8 .tflite with aedfw metadata")
    p.add_argument("--out", type=Path, required=True, help="package folder")
    p.add_argument("--build", choices=("host", "cortex-m4"), help="also compile it (make TARGET)")


def run(args: argparse.Namespace) -> None:
    from firmware_gen.package import firmware

    out = firmware(args.model, args.out, build=args.build)
    built = f", built for {args.build}" if args.build else ""
    print(f"firmware package written to {out}{built}")
