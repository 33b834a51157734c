"""One module per ``aedfw`` command.

Each module has ``register(commands: Commands) -> None``, which adds its parser(s) with
:meth:`Commands.add` and points them at a thin function calling one public stage function.
:data:`aedfw.cli.COMMAND_MODULES` lists the modules in help order; a new command is a new module
and one line there.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

#: What a command runs: the parsed arguments in, an exit code (None: 0) out.
Run = Callable[[argparse.Namespace], "int | None"]


class Commands:
    """The ``aedfw`` sub-command tree that command modules register into.

    Parameters
    ----------
    top : argparse._SubParsersAction
        ``parser.add_subparsers(...)`` of the ``aedfw`` parser.
    """

    def __init__(self, top: argparse._SubParsersAction) -> None:
        self._top = top
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def add(
        self, name: str, help_text: str, run: Run, examples: tuple[str, ...] = ()
    ) -> argparse.ArgumentParser:
        """Add command ``name`` (one word, or two for a group: ``"data synth"``).

        ``examples`` are whole command lines shown under ``--help`` (a test parses each).
        Returns the command's parser, for its options; ``args.run`` is set to ``run``.
        """
        *group, word = name.split()
        sub = self._top
        if group:
            (head,) = group
            if head not in self._groups:
                parser = self._top.add_parser(head, help=f"{head} commands")
                self._groups[head] = parser.add_subparsers(dest="subcommand", required=True)
            sub = self._groups[head]
        p = sub.add_parser(
            word,
            help=help_text,
            description=help_text,
            epilog="examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(run=run)
        p.add_argument(
            "--verbose",
            action="store_true",
            help="show the libraries' log lines (TensorFlow, absl, CUDA probes); by default "
            "only aedfw's messages and progress bars, and the log lines when a command fails",
        )
        return p
