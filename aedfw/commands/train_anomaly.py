"""``aedfw train anomaly``: one anomaly detector per machine type, trained on normal clips
(:func:`model_dev.anomaly.pipeline.train_anomaly`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands
from aedfw.options import add_device_option, comma_list

EXAMPLES = (
    "aedfw train anomaly --method dense_ae --data data/machines --out runs/fan-ae.pt --types fan",
    "aedfw train anomaly --method id_classifier --dataset mimii --data mimii/ --out runs/id.pt",
    "aedfw train anomaly --method id_classifier --size teacher --data data/machines "
    "--out runs/id-teacher.pt",
    "aedfw train anomaly --method id_classifier --teacher runs/id-teacher.pt --distill kd "
    "--data data/machines --out runs/id-kd.pt",
)


def register(commands: Commands) -> None:
    from model_dev.anomaly.methods import DISTILL_ARMS, METHODS

    p = commands.add(
        "train anomaly", "train an anomaly detector per machine type", run, examples=EXAMPLES
    )
    p.add_argument("--method", required=True, choices=list(METHODS), help="detector")
    p.add_argument("--data", type=Path, required=True, help="machine dataset root")
    p.add_argument(
        "--dataset",
        "--layout",
        default="dcase",
        choices=("dcase", "mimii"),
        help="machine dataset layout (default dcase; --layout is the old name)",
    )
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    p.add_argument("--cache", type=Path, default=Path("cache/features"), help="feature cache root")
    p.add_argument("--types", help="machine types, comma-separated (default: all)")
    p.add_argument("--ids", help="train on these machine IDs only (zero-shot source)")
    p.add_argument("--init", type=Path, help="checkpoint of the same method to fine-tune from")
    p.add_argument(
        "--size",
        default="student",
        choices=("student", "medium", "teacher"),
        help="id_classifier network size (default student, the deployable one)",
    )
    p.add_argument("--teacher", type=Path, help="id_classifier checkpoint to distil from")
    p.add_argument(
        "--distill",
        default="kd",
        choices=list(DISTILL_ARMS),
        help="distillation terms with --teacher (default kd)",
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128, help="windows per step")
    p.add_argument("--lr", type=float, default=0.0, help="Adam learning rate (0: the method's)")
    p.add_argument("--max-windows", type=int, default=0, help="windows per epoch (0: all)")
    p.add_argument("--seed", type=int, default=0)
    add_device_option(p, default="auto")


def run(args: argparse.Namespace) -> None:
    from model_dev.anomaly.pipeline import train_anomaly
    from model_dev.anomaly.training import FitConfig

    cfg = FitConfig(args.epochs, args.batch_size, args.lr, args.seed, args.device, args.max_windows)
    out = train_anomaly(
        args.data, args.out, args.method, kind=args.dataset, types=comma_list(args.types),
        ids=comma_list(args.ids), cfg=cfg, init=args.init, size=args.size,
        teacher=args.teacher, distill=args.distill, cache_dir=args.cache,
    )  # fmt: skip
    print(f"anomaly checkpoint: {out}")
