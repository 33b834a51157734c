"""``aedfw demo``: the whole chain on the built-in corpus (:func:`host_tools.demo.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands

EXAMPLES = (
    "aedfw demo",
    "aedfw demo --out runs/demo-host --target host --validate-clips 4",
)


def register(commands: Commands) -> None:
    p = commands.add("demo", "run the whole chain on the built-in corpus", run, examples=EXAMPLES)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    p.add_argument("--preset", default="small", help="built-in corpus size (default small)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument(
        "--target",
        default="cortex-m4",
        choices=("host", "cortex-m4"),
        help="emulated device to validate (default cortex-m4 under QEMU)",
    )
    p.add_argument("--teacher-epochs", type=int, help="default 30")
    p.add_argument("--student-epochs", type=int, help="default 30")
    p.add_argument(
        "--threads",
        "--torch-threads",
        type=int,
        help="torch threads for training (default 1; --torch-threads is the old name)",
    )
    p.add_argument("--validate-clips", type=int, help="first N test clips (default: all)")


def run(args: argparse.Namespace) -> None:
    import json
    from dataclasses import replace

    from host_tools.demo import DemoConfig, demo

    sizes = {
        "teacher_epochs": args.teacher_epochs,
        "student_epochs": args.student_epochs,
        "validate_clips": args.validate_clips,
        "torch_threads": args.threads,
    }
    config = replace(DemoConfig(), **{k: v for k, v in sizes.items() if v is not None})
    report = demo(
        args.out, preset=args.preset, seed=args.seed, jobs=args.jobs, target=args.target,
        config=config,
    )  # fmt: skip
    auprc = json.loads(report.with_suffix(".json").read_text())["auprc"]
    none, iusp = auprc["student_none_float"]["micro"], auprc["student_float"]["micro"]
    print(
        f"student {config.student}, test micro-AUPRC (float, seed {args.seed}): "
        f"no distillation {none:.3f}, IUSP {iusp:.3f} ({iusp - none:+.3f})"
    )
    print(f"report: {report} (and {report.with_suffix('.html')}, one page with every figure)")
