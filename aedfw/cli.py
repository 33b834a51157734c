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
    parser = argparse.ArgumentParser(
        prog="aedfw",
        description="From a labelled audio set to a microcontroller, validated bit for bit. "
        "Run 'aedfw <command> --help' for a command's options and examples.",
        epilog="start with: aedfw demo (the whole chain on the built-in corpus)",
    )
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
        except KeyboardInterrupt:  # one line, no traceback: what stopped and how to go on
            name = " ".join(filter(None, (args.command, getattr(args, "subcommand", None))))
            code, error = INTERRUPTED, f"{name} interrupted; {RESUME.get(name, RERUN)}"
        finally:  # a failure shows the libraries' log lines too: they may say why
            if code and code != INTERRUPTED:
                sys.stderr.write(captured.text())
        if error is not None:
            print(f"aedfw: {'error: ' * (code != INTERRUPTED)}{error}", file=sys.stderr)
    return code


#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: How to go on after an interrupted command; others: :data:`RERUN`.
TRAIN_RESUME = "the epochs done are in OUT/last.pt: run the same command with --resume"
RESUME = {
    "train teacher": TRAIN_RESUME,
    "train student": TRAIN_RESUME,
    "validate": "the clips done are in OUT/progress.json: run the same command with --resume",
    "sweep": "run the same command again: finished jobs are kept and skipped",
}
RERUN = "nothing half-written was kept: run the same command again"


if __name__ == "__main__":
    sys.exit(main())
