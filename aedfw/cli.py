"""``aedfw``: one command line for every stage. Each subcommand is a thin wrapper over a public
function of the same name; run ``aedfw <command> --help`` for its options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from aedfw.config import load_frontend_config


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    from model_dev.datasets import DATASET_KINDS

    p.add_argument(
        "--dataset",
        default="synth",
        choices=DATASET_KINDS,
        help="dataset layout (default: synth, the built-in corpus)",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset root folder")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable audio files and list them in the report instead of failing",
    )


def _add_frontend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--frontend",
        type=Path,
        default=None,
        help="front-end config, JSON or YAML (default: built-in defaults)",
    )


def _data_synth(args: argparse.Namespace) -> None:
    from model_dev.synth import synth

    out = synth(args.out, preset=args.preset, seed=args.seed, jobs=args.jobs)
    print(f"corpus written to {out}")


def _features(args: argparse.Namespace) -> None:
    from model_dev.datasets import load_dataset
    from model_dev.features import features

    dataset = load_dataset(args.dataset, args.data, skip_bad=args.skip_bad)
    cfg = load_frontend_config(args.frontend)
    fs = features(dataset, args.cache, cfg, jobs=args.jobs, skip_bad=args.skip_bad)
    frames = int(fs.offsets[-1])
    print(f"{len(fs)} clips, {frames} frames x {cfg.n_mels} mels (front end {cfg.short_hash})")
    for path, why in fs.skipped:
        print(f"skipped {path}: {why}")


def _demo(args: argparse.Namespace) -> None:
    from host_tools.demo import demo

    report = demo(args.out, preset=args.preset, seed=args.seed, jobs=args.jobs)
    print(f"report: {report}")


Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable]


def _commands() -> list[Command]:
    def synth_args(p):
        p.add_argument("--preset", default="default", help="tiny | default | large")
        p.add_argument("--out", type=Path, required=True, help="output folder")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--jobs", type=int, default=2, help="worker processes")

    def features_args(p):
        _add_dataset_args(p)
        _add_frontend_arg(p)
        p.add_argument("--cache", type=Path, default=Path("cache/features"), help="cache root")
        p.add_argument("--jobs", type=int, default=2, help="worker processes")

    def demo_args(p):
        p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
        p.add_argument("--preset", default="tiny", help="built-in corpus size")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--jobs", type=int, default=2, help="worker processes")

    return [
        ("data synth", "generate the built-in synthetic corpus", synth_args, _data_synth),
        ("features", "precompute and cache front-end features", features_args, _features),
        ("demo", "run the whole chain on the built-in corpus", demo_args, _demo),
    ]


def build_parser() -> argparse.ArgumentParser:
    """The ``aedfw`` argument parser (nested sub-commands such as ``data synth``)."""
    parser = argparse.ArgumentParser(prog="aedfw", description=__doc__)
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, help_text, add_args, run in _commands():
        words = name.split()
        sub = top
        if len(words) == 2:
            if words[0] not in groups:
                group = top.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group.add_subparsers(dest="subcommand", required=True)
            sub = groups[words[0]]
        p = sub.add_parser(words[-1], help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aedfw`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"aedfw: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
