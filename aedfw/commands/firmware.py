"""``aedfw firmware``: the C package for one model (:func:`firmware_gen.package.firmware`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands

EXAMPLES = (
    "aedfw firmware models/s5k.tflite --out fw/s5k --build cortex-m4",
    "aedfw firmware models/s5k.tflite --out fw/s5k --golden-audio clip.wav",
)


def register(commands: Commands) -> None:
    p = commands.add(
        "firmware",
        "generate the C firmware package (library, ports, app, aed.mk, CMake) for a model",
        run,
        examples=EXAMPLES,
    )
    p.add_argument("model", type=Path, help="int8 .tflite with aedfw metadata")
    p.add_argument("--out", type=Path, required=True, help="package folder")
    p.add_argument("--build", choices=("host", "cortex-m4"), help="also compile it (make TARGET)")
    p.add_argument(
        "--golden-audio",
        type=Path,
        help="audio file the golden clips are cut from (default: a built-in test signal)",
    )


def run(args: argparse.Namespace) -> None:
    from firmware_gen.package import firmware

    audio = None
    if args.golden_audio is not None:
        from model_dev.audio import read_audio

        audio = read_audio(args.golden_audio)
    out = firmware(args.model, args.out, golden_audio=audio)
    built = ""
    if args.build:
        from firmware_gen.build import build_firmware

        build_firmware(out, args.build)
        built = f", built for {args.build}"
    print(f"firmware package written to {out}{built}")
