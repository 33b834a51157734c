"""``aedfw emulate``: an emulated device on a serial URL (:func:`host_tools.emulate.emulate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands

EXAMPLES = (
    "aedfw emulate fw/s5k",
    "aedfw emulate fw/s5k --target cortex-m4",
)


def register(commands: Commands) -> None:
    p = commands.add(
        "emulate",
        "run an emulated device (native on a pty, or Cortex-M4 under QEMU); prints its URL",
        run,
        examples=EXAMPLES,
    )
    p.add_argument("fw_dir", type=Path, help="firmware package folder (aedfw firmware)")
    p.add_argument("--target", default="host", choices=("host", "cortex-m4"))


def run(args: argparse.Namespace) -> int:
    from host_tools.emulate import emulate

    return emulate(args.fw_dir, args.target)
