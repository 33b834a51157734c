"""``aedfw train teacher`` and ``aedfw train student`` (:func:`model_dev.train.train`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from aedfw.commands import Commands
from aedfw.options import add_dataset_options, add_device_option, add_frontend_option, dataset_spec

if TYPE_CHECKING:
    from model_dev.train_config import TrainConfig


TEACHER_EXAMPLES = (
    "aedfw train teacher --data data/small --out runs/teacher",
    "aedfw train teacher --dataset folders --data sounds/ --val-fraction 0.2 --out runs/t",
)
STUDENT_EXAMPLES = (
    "aedfw train student --data data/small --out runs/s5k",
    "aedfw train student --data data/small --out runs/s5k-iusp --teacher runs/teacher/best.pt "
    "--distill kd,iusp --weights 1,1",
    "aedfw train student --data clips.csv --arch s20k --out runs/s20k --epochs 50 --resume",
)


def register(commands: Commands) -> None:
    teacher = commands.add("train teacher", "train the teacher", run, examples=TEACHER_EXAMPLES)
    add_options(teacher, student=False)
    student = commands.add(
        "train student",
        "train a student, optionally distilled from a teacher checkpoint",
        run,
        examples=STUDENT_EXAMPLES,
    )
    add_options(student, student=True)


def add_options(p: argparse.ArgumentParser, student: bool) -> None:
    """The options of ``train teacher`` (``student=False``) and ``train student``."""
    add_dataset_options(p)
    add_frontend_option(p)
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
        p.add_argument(
            "--weights",
            help="one value per --distill term (default 1 each): the target ratio of the "
            "term's gradient norm to the BCE's, or the loss weight with --fixed-weights",
        )
        p.add_argument("--fixed-weights", action="store_true", help="--weights are loss weights")
        p.add_argument("--temperature", type=float, help="kd temperature")
        p.add_argument(
            "--layer-pairs", help="stages (default), last, or student:teacher block pairs"
        )
        p.add_argument(
            "--iusp-scope", choices=("clip", "window"), help="IUSP utterance (default clip)"
        )
        p.add_argument(
            "--live-teacher",
            action="store_true",
            help="run the teacher on every augmented batch instead of caching its outputs",
        )
    add_device_option(p)
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")


def _distill_fields(args: argparse.Namespace) -> dict:
    """TrainConfig fields of ``--teacher --distill --weights --temperature``."""
    from model_dev.train_config import DISTILL_TERMS

    if args.teacher is None:
        if args.distill or args.weights:
            raise ValueError("--distill and --weights need --teacher")
        return {}
    terms = (args.distill or "kd").split(",")
    weights = args.weights.split(",") if args.weights else ["1"] * len(terms)
    unknown = sorted(set(terms) - set(DISTILL_TERMS))
    numbers = all(re.fullmatch(r"\d+(\.\d*)?|\.\d+", w.strip()) for w in weights)
    if unknown or len(weights) != len(terms) or not numbers:
        raise ValueError(
            f"--distill {args.distill!r} --weights {args.weights!r}: expected terms from "
            f"{','.join(DISTILL_TERMS)} and one weight per term"
        )
    fields = {t: 0.0 for t in DISTILL_TERMS}
    fields |= {t: float(w) for t, w in zip(terms, weights, strict=True)}
    fields["teacher"] = str(args.teacher)
    optional = {
        "temperature": args.temperature,
        "layer_pairs": args.layer_pairs,
        "iusp_scope": args.iusp_scope,
        "weighting": "fixed" if args.fixed_weights else None,
        "teacher_targets": "live" if args.live_teacher else None,
    }
    return fields | {k: v for k, v in optional.items() if v is not None}


def train_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from defaults < ``--config`` file < command-line flags."""
    from aedfw.config import read_config_file
    from model_dev.train_config import TrainConfig

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
        fields |= _distill_fields(args)
    return TrainConfig.from_dict(fields, str(args.config or "command line"))


def run(args: argparse.Namespace) -> None:
    from aedfw.config import load_frontend_config
    from model_dev.train import train

    cfg = train_config(args)
    spec = dataset_spec(args)
    if cfg.teacher is not None:  # a student sees the validate split its teacher was trained on
        from model_dev.checkpoint import read_checkpoint
        from model_dev.stage_inputs import trained_split

        spec = trained_split(spec, read_checkpoint(Path(cfg.teacher)))
    fs = spec.features(load_frontend_config(args.frontend))
    best = train(cfg, fs, args.out, resume=args.resume, teacher_cache=spec.cache / "teacher")
    print(f"best checkpoint: {best}")
