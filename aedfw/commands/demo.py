"""``aedfw demo``: the whole chain on the built-in corpus (:func:`host_tools.demo.demo`;
``--task anomaly``: :func:`host_tools.demo_anomaly.demo_anomaly` on the machine corpus)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands

EXAMPLES = (
    "aedfw demo",
    "aedfw demo --out runs/demo-host --target host --validate-clips 4",
    "aedfw demo --task anomaly",
    "aedfw demo --task anomaly --preset tiny --types fan,valve --epochs 5 --target host",
)
#: Options of one task only: (flag, attribute, the task it belongs to).
TASK_OPTIONS = (
    ("--teacher-epochs", "teacher_epochs", "tagging"),
    ("--student-epochs", "student_epochs", "tagging"),
    ("--epochs", "epochs", "anomaly"),
    ("--types", "types", "anomaly"),
    ("--method", "method", "anomaly"),
)


def register(commands: Commands) -> None:
    p = commands.add("demo", "run the whole chain on the built-in corpus", run, examples=EXAMPLES)
    p.add_argument(
        "--task",
        default="tagging",
        choices=("tagging", "anomaly"),
        help="tagging (default: sound events, distilled student) or anomaly (machine sounds, "
        "dense autoencoder per machine type)",
    )
    p.add_argument("--out", type=Path, help="run folder (default runs/demo, runs/demo-anomaly)")
    p.add_argument(
        "--preset",
        help="built-in corpus size (default small; anomaly: machine corpus tiny | default, "
        "default default)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="worker processes (tagging)")
    p.add_argument(
        "--target",
        default="cortex-m4",
        choices=("host", "cortex-m4"),
        help="emulated device to validate (default cortex-m4 under QEMU)",
    )
    p.add_argument("--teacher-epochs", type=int, help="tagging: default 30")
    p.add_argument("--student-epochs", type=int, help="tagging: default 30")
    p.add_argument("--epochs", type=int, help="anomaly: detector epochs (default 20)")
    p.add_argument("--types", help="anomaly: machine types, comma-separated (default fan)")
    p.add_argument(
        "--method",
        help="anomaly: dense_ae (default), dense_ae_small, causal_conv or id_classifier",
    )
    p.add_argument(
        "--threads",
        "--torch-threads",
        type=int,
        help="torch threads for training (default 1; --torch-threads is the old name)",
    )
    p.add_argument(
        "--validate-clips", type=int, help="first N test clips (default: all; anomaly: per type)"
    )


def run(args: argparse.Namespace) -> int:
    wrong = [f"{flag} is an option of --task {task}" for flag, key, task in TASK_OPTIONS
             if task != args.task and getattr(args, key) is not None]  # fmt: skip
    if wrong:
        raise ValueError(f"demo --task {args.task}: {'; '.join(wrong)}")
    return _anomaly(args) if args.task == "anomaly" else _tagging(args)


def _tagging(args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace

    from host_tools.demo import SEED_CAVEAT, DemoConfig, demo

    sizes = {
        "teacher_epochs": args.teacher_epochs,
        "student_epochs": args.student_epochs,
        "validate_clips": args.validate_clips,
        "torch_threads": args.threads,
    }
    config = replace(DemoConfig(), **{k: v for k, v in sizes.items() if v is not None})
    report = demo(
        args.out or Path("runs/demo"), preset=args.preset or "small", seed=args.seed,
        jobs=args.jobs, target=args.target, config=config,
    )  # fmt: skip
    auprc = json.loads(report.with_suffix(".json").read_text())["auprc"]
    none, iusp = auprc["student_none_float"]["micro"], auprc["student_float"]["micro"]
    print(
        f"student {config.student}, test micro-AUPRC (float, seed {args.seed}): "
        f"no distillation {none:.3f}, IUSP {iusp:.3f} ({iusp - none:+.3f}). {SEED_CAVEAT}"
    )
    print(f"report: {report} (and {report.with_suffix('.html')}, one page with every figure)")
    return 0


def _anomaly(args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace

    from aedfw.options import comma_list
    from host_tools.demo_anomaly import AnomalyDemoConfig, demo_anomaly

    types = comma_list(args.types)
    sizes = {
        "epochs": args.epochs,
        "types": tuple(types) if types else None,
        "method": args.method,
        "validate_clips": args.validate_clips,
        "torch_threads": args.threads,
    }
    config = replace(AnomalyDemoConfig(), **{k: v for k, v in sizes.items() if v is not None})
    report = demo_anomaly(
        args.out or Path("runs/demo-anomaly"), size=args.preset or "default", seed=args.seed,
        target=args.target, config=config,
    )  # fmt: skip
    r = json.loads(report.with_suffix(".json").read_text())
    for mtype, t in r["per_type"].items():
        v = t["validation"]
        dev = (v["metrics"] or {}).get("device") or {}
        auc = f"{dev['auc']:.3f}" if "auc" in dev else "n/a"
        print(
            f"{mtype}: {'PASS' if v['passed'] else 'FAIL'} {v['n_matched']}/{v['n_requested']} "
            f"clips byte-identical; AUC float {t['float']['auc']:.3f}, int8 "
            f"{t['int8']['auc']:.3f}, device {auc}"
        )
    print(f"report: {report} (and {report.with_suffix('.html')})")
    return 0 if r["passed"] else 1
