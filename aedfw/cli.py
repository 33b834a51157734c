"""``aedfw``: one command line for every stage. Each subcommand is a thin wrapper over a public
function of the same name; run ``aedfw <command> --help`` for its options."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aedfw.config import load_frontend_config

if TYPE_CHECKING:
    from model_dev.train import TrainConfig


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


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from defaults < ``--config`` file < command-line flags."""
    from aedfw.config import read_config_file
    from model_dev.train import DISTILL_TERMS, TrainConfig

    fields = read_config_file(args.config) if args.config else {}
    flags = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "patience": args.patience,
        "window_hop_frames": args.hop,
        "mixup_alpha": args.mixup,
        "device": args.device,
        "amp": False if args.no_amp else None,
    }
    fields |= {k: v for k, v in flags.items() if v is not None}
    if args.kind == "teacher":
        fields["arch"] = "teacher"
    else:
        fields["arch"] = args.arch or fields.get("arch", "s5k")
        if fields["arch"] == "teacher":
            raise ValueError("train student: arch 'teacher' is not a student; use train teacher")
    if args.kind == "student" and args.teacher is None and (args.distill or args.weights):
        raise ValueError("--distill and --weights need --teacher")
    if args.kind == "student" and args.teacher is not None:
        terms = (args.distill or "kd").split(",")
        weights = args.weights.split(",") if args.weights else ["1"] * len(terms)
        unknown = sorted(set(terms) - set(DISTILL_TERMS))
        numbers = all(re.fullmatch(r"\d+(\.\d*)?|\.\d+", w.strip()) for w in weights)
        if unknown or len(weights) != len(terms) or not numbers:
            raise ValueError(
                f"--distill {args.distill!r} --weights {args.weights!r}: expected terms from "
                f"{','.join(DISTILL_TERMS)} and one weight per term"
            )
        fields |= {t: 0.0 for t in DISTILL_TERMS}
        fields |= {t: float(w) for t, w in zip(terms, weights, strict=True)}
        fields["teacher"] = str(args.teacher)
        if args.temperature is not None:
            fields["temperature"] = args.temperature
    return TrainConfig.from_dict(fields, str(args.config or "command line"))


def _train(args: argparse.Namespace) -> None:
    from model_dev.datasets import load_dataset
    from model_dev.features import features
    from model_dev.train import train

    cfg = _train_config(args)
    dataset = load_dataset(args.dataset, args.data, skip_bad=args.skip_bad)
    frontend = load_frontend_config(args.frontend)
    fs = features(dataset, args.cache, frontend, jobs=args.jobs, skip_bad=args.skip_bad)
    best = train(cfg, fs, args.out, resume=args.resume)
    print(f"best checkpoint: {best}")


def _evaluate(args: argparse.Namespace) -> None:
    from model_dev.datasets import load_dataset
    from model_dev.features import features
    from model_dev.frontend import FrontendConfig
    from model_dev.train import evaluate, load_checkpoint

    _, meta = load_checkpoint(args.checkpoint)
    frontend = FrontendConfig.from_dict(meta["frontend"], f"{args.checkpoint}: frontend")
    dataset = load_dataset(args.dataset, args.data, skip_bad=args.skip_bad)
    fs = features(dataset, args.cache, frontend, jobs=args.jobs, skip_bad=args.skip_bad)
    out = args.out or args.checkpoint.parent / f"eval-{args.split}"
    r = evaluate(args.checkpoint, fs, args.split, out, args.target_precision, device=args.device)
    m = r["metrics"]
    print(
        f"{r['arch']} on {r['split']} ({r['n_clips']} clips): micro-AUPRC {m['micro']:.4f}, "
        f"macro {m['macro']:.4f} (chance {m['chance']:.4f})"
    )
    for c, t in r["at_thresholds"].items():
        print(
            f"  {c:22s} AP {m[f'ap/{c}']:.4f}  threshold {t['threshold']:.4f}  "
            f"P {t['precision']:.3f} R {t['recall']:.3f} F1 {t['f1']:.3f}"
        )
    print(f"thresholds ({r['thresholds']['method']}) saved in {args.checkpoint}; report in {out}")


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

    def data_args(p):
        _add_dataset_args(p)
        p.add_argument("--cache", type=Path, default=Path("cache/features"), help="cache root")
        p.add_argument("--jobs", type=int, default=2, help="feature worker processes")

    def features_args(p):
        data_args(p)
        _add_frontend_arg(p)

    def train_args(p, student: bool):
        data_args(p)
        _add_frontend_arg(p)
        p.add_argument("--out", type=Path, required=True, help="run folder")
        p.add_argument("--config", type=Path, help="TrainConfig fields, JSON or YAML")
        if student:
            p.add_argument("--arch", help="student size: s5k (default), s20k, s70k or s250k")
        p.set_defaults(kind="student" if student else "teacher")
        p.add_argument("--epochs", type=int)
        p.add_argument("--batch-size", type=int, help="clips per batch")
        p.add_argument("--lr", type=float, help="peak learning rate")
        p.add_argument("--seed", type=int)
        p.add_argument("--patience", type=int, help="early-stopping patience (0: off)")
        p.add_argument("--hop", type=int, help="window hop in frames")
        p.add_argument("--mixup", type=float, help="mixup alpha (0: off)")
        if student:
            p.add_argument("--teacher", type=Path, help="teacher checkpoint to distil from")
            p.add_argument("--distill", help="terms: kd,sp,iusp (default kd)")
            p.add_argument("--weights", help="one weight per --distill term (default 1 each)")
            p.add_argument("--temperature", type=float, help="kd temperature")
        p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
        p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
        p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")

    def evaluate_args(p):
        p.add_argument("checkpoint", type=Path, help="checkpoint (best.pt)")
        data_args(p)
        p.add_argument("--split", default="test", help="split to evaluate (default test)")
        p.add_argument("--out", type=Path, help="report folder (default CKPT_DIR/eval-SPLIT)")
        p.add_argument(
            "--target-precision",
            type=float,
            help="thresholds at this precision (default: at maximum F1)",
        )
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")

    def demo_args(p):
        p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
        p.add_argument("--preset", default="tiny", help="built-in corpus size")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--jobs", type=int, default=2, help="worker processes")

    return [
        ("data synth", "generate the built-in synthetic corpus", synth_args, _data_synth),
        ("features", "precompute and cache front-end features", features_args, _features),
        (
            "train teacher",
            "train the teacher",
            lambda p: train_args(p, student=False),
            _train,
        ),
        (
            "train student",
            "train a student, optionally distilled from a teacher checkpoint",
            lambda p: train_args(p, student=True),
            _train,
        ),
        (
            "evaluate",
            "AUPRC, PR curves and operating thresholds of a checkpoint",
            evaluate_args,
            _evaluate,
        ),
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
