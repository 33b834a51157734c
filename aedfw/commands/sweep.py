"""``aedfw sweep``: students x methods x seeds, one teacher (:func:`model_dev.sweep.sweep`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from aedfw.commands import Commands
from aedfw.options import add_dataset_options, add_device_option, comma_list, dataset_spec

EXAMPLES = (
    "aedfw sweep --data data/small --teacher runs/teacher/best.pt --out runs/sweep --students "
    "s5k --seeds 0,1,2 --jobs 2",
    "aedfw sweep --data data/small --teacher runs/teacher/best.pt --out runs/sweep --backend ray "
    "--address auto",
    "aedfw sweep --out runs/sweep --report-only",
)


def register(commands: Commands) -> None:
    p = commands.add(
        "sweep",
        "students x {none, kd, sp, iusp, kd+sp, kd+iusp} x seeds against one teacher: "
        "paired AUPRC table, RI, Pareto plot",
        run,
        examples=EXAMPLES,
    )
    p.add_argument("--out", type=Path, required=True, help="sweep folder")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only rewrite the tables and plot of OUT from its finished jobs",
    )
    add_dataset_options(p, required=False, jobs=1, jobs_help="parallel job processes")
    p.add_argument("--teacher", type=Path, help="teacher checkpoint (required to run)")
    p.add_argument("--config", type=Path, help="SweepConfig fields, JSON or YAML")
    p.add_argument("--students", help="comma-separated, e.g. s5k,s20k (default: all)")
    p.add_argument(
        "--methods", help="comma-separated from none,kd,sp,iusp,kd+sp,kd+iusp (default: all)"
    )
    p.add_argument("--seeds", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, help="epochs of every job (train.epochs)")
    for term in ("kd", "sp", "iusp"):
        p.add_argument(
            f"--{term}",
            type=float,
            help=f"{term}'s target gradient ratio to the BCE in the arms using it (default 1)",
        )
    add_device_option(p)
    p.add_argument("--threads", type=int, help="torch threads per job (default cores/jobs)")
    p.add_argument(
        "--backend",
        default="local",
        choices=("local", "ray"),
        help="where jobs run: local processes (default) or Ray tasks, one per job, one GPU "
        "each when the cluster has GPUs (docs/sweep.md)",
    )
    p.add_argument(
        "--address",
        help="--backend ray: a running cluster (auto, HOST:6379 or ray://HOST:10001); "
        "default: start a local Ray on this machine's cores",
    )


def sweep_config(args: argparse.Namespace):
    """SweepConfig from defaults < ``--config`` file < command-line flags."""
    from aedfw.config import read_config_file
    from model_dev.sweep import SweepConfig

    fields = read_config_file(args.config) if args.config else {}
    for name in ("students", "methods", "seeds"):
        items = comma_list(getattr(args, name))
        if items is not None:
            if name == "seeds":
                if not all(re.fullmatch(r"\d+", v) for v in items):
                    raise ValueError(f"--seeds {args.seeds!r}: expected comma-separated integers")
                items = [int(v) for v in items]
            fields[name] = items
    for name in ("kd", "sp", "iusp"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    train = dict(fields.get("train") or {})
    for name in ("epochs", "device"):
        if getattr(args, name) is not None:
            train[name] = getattr(args, name)
    if train:
        fields["train"] = train
    return SweepConfig.from_dict(fields, str(args.config or "command line"))


def run(args: argparse.Namespace) -> None:
    from model_dev.sweep import sweep, write_report

    if args.report_only:
        report = write_report(args.out)
    else:
        from model_dev.stage_inputs import checkpoint_inputs

        if args.data is None or args.teacher is None:
            raise ValueError("sweep: --data and --teacher are required (unless --report-only)")
        cfg = sweep_config(args)
        fs = checkpoint_inputs(args.teacher, dataset_spec(args), expect_kind="teacher").features
        if args.address and args.backend != "ray":
            raise ValueError("sweep: --address needs --backend ray")
        report = sweep(
            cfg, fs, args.teacher, args.out, jobs=args.jobs, threads=args.threads,
            backend=args.backend, address=args.address,
        )  # fmt: skip
    print(Path(report["files"]["markdown"]).read_text(), end="")
    if report["missing"]:
        print(f"{len(report['missing'])} job(s) without results yet: {report['missing']}")
    print(f"report files: {', '.join(report['files'].values())}")
