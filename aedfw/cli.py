"""``aedfw``: one command line for every stage. Each command is a module of
:mod:`aedfw.commands`, a thin wrapper over one public stage function; run
``aedfw <command> --help`` for its options."""

from __future__ import annotations

import argparse
import importlib
import sys

from aedfw.commands import Commands
from aedfw.quiet import library_output

#: The command modules under :mod:`aedfw.commands`, in help order.
COMMAND_MODULES = (
    "data_synth",
    "data_synth_machines",
    "features",
    "train",
    "train_anomaly",
    "evaluate",
    "sweep",
    "quantize",
    "firmware",
    "emulate",
    "validate",
    "bench",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``aedfw`` argument parser (nested sub-commands such as ``data synth``)."""
    parser = argparse.ArgumentParser(prog="aedfw", description=__doc__)
    commands = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for name in COMMAND_MODULES:
        importlib.import_module(f"aedfw.commands.{name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aedfw`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    with library_output(args.verbose) as captured:
        code, error = 1, None
        try:
            code = args.run(args) or 0
        except (ValueError, OSError, RuntimeError) as exc:
            error = exc
        finally:  # a failure shows the libraries' log lines too: they may say why
            if code:
                sys.stderr.write(captured.text())
        if error is not None:
            print(f"aedfw: error: {error}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
