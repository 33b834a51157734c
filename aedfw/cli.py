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
    from model_dev.train_config import TrainConfig


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
    from model_dev.train_config import DISTILL_TERMS, TrainConfig

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
    from model_dev.checkpoint import load_checkpoint
    from model_dev.datasets import load_dataset
    from model_dev.evaluate import evaluate
    from model_dev.features import features
    from model_dev.frontend import FrontendConfig

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


def _sweep_config(args: argparse.Namespace):
    """SweepConfig from defaults < ``--config`` file < command-line flags."""
    from aedfw.config import read_config_file
    from model_dev.sweep import SweepConfig

    fields = read_config_file(args.config) if args.config else {}
    for name in ("students", "methods", "seeds"):
        value = getattr(args, name)
        if value is not None:
            items = [v.strip() for v in value.split(",")]
            if name == "seeds":
                if not all(re.fullmatch(r"\d+", v) for v in items):
                    raise ValueError(f"--seeds {value!r}: expected comma-separated integers")
                items = [int(v) for v in items]
            fields[name] = items
    for name in ("kd_weight", "sp_weight", "iusp_weight"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    train = dict(fields.get("train") or {})
    for name in ("epochs", "device"):
        if getattr(args, name) is not None:
            train[name] = getattr(args, name)
    if train:
        fields["train"] = train
    return SweepConfig.from_dict(fields, str(args.config or "command line"))


def _sweep(args: argparse.Namespace) -> None:
    from model_dev.sweep import sweep, write_report

    if args.report_only:
        report = write_report(args.out)
    else:
        from model_dev.checkpoint import load_checkpoint
        from model_dev.datasets import load_dataset
        from model_dev.features import features
        from model_dev.frontend import FrontendConfig

        if args.data is None or args.teacher is None:
            raise ValueError("sweep: --data and --teacher are required (unless --report-only)")
        cfg = _sweep_config(args)
        _, meta = load_checkpoint(args.teacher, expect_kind="teacher")
        frontend = FrontendConfig.from_dict(meta["frontend"], f"{args.teacher}: frontend")
        dataset = load_dataset(args.dataset, args.data, skip_bad=args.skip_bad)
        fs = features(dataset, args.cache, frontend, jobs=args.jobs, skip_bad=args.skip_bad)
        report = sweep(cfg, fs, args.teacher, args.out, jobs=args.jobs, threads=args.threads)
    print(Path(report["files"]["markdown"]).read_text(), end="")
    if report["missing"]:
        print(f"{len(report['missing'])} job(s) without results yet: {report['missing']}")
    print(f"report files: {', '.join(report['files'].values())}")


def _quantize(args: argparse.Namespace) -> None:
    from model_dev.checkpoint import load_checkpoint
    from model_dev.datasets import load_dataset
    from model_dev.features import features
    from model_dev.frontend import FrontendConfig
    from quantize import quantize

    _, meta = load_checkpoint(args.checkpoint, expect_kind="student")
    frontend = FrontendConfig.from_dict(meta["frontend"], f"{args.checkpoint}: frontend")
    dataset = load_dataset(args.dataset, args.data, skip_bad=args.skip_bad)
    fs = features(dataset, args.cache, frontend, jobs=args.jobs, skip_bad=args.skip_bad)
    r = quantize(args.checkpoint, args.out, fs, split=args.split, limit=args.limit)
    e, p = r["evaluation"], r["parity"]
    print(
        f"{r['model']['path']}: {r['model']['bytes']} bytes, arena {r['arena_bytes']} bytes, "
        f"ops {','.join(r['model']['op_counts'])}"
    )
    print(
        f"{e['split']} ({e['n_clips']} clips): micro-AUPRC float {e['float']['micro']:.4f}, "
        f"int8 {e['int8_tflm']['micro']:.4f} ({e['delta_micro']:+.4f}); TFLM vs LiteRT "
        f"{p['exact_match_rate']:.2%} exact, max {p['max_lsb_diff']} LSB"
    )
    print(f"report: {r['files']['markdown']}")


def _firmware(args: argparse.Namespace) -> None:
    from firmware_gen.package import firmware

    out = firmware(args.model, args.out, build=args.build)
    built = f", built for {args.build}" if args.build else ""
    print(f"firmware package written to {out}{built}")


def _demo(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from host_tools.demo import DemoConfig, demo

    sizes = {
        "teacher_epochs": args.teacher_epochs,
        "student_epochs": args.student_epochs,
        "validate_clips": args.validate_clips,
        "torch_threads": args.torch_threads,
    }
    config = replace(DemoConfig(), **{k: v for k, v in sizes.items() if v is not None})
    report = demo(
        args.out, preset=args.preset, seed=args.seed, jobs=args.jobs, target=args.target,
        config=config,
    )  # fmt: skip
    print(f"report: {report}")


def _emulate(args: argparse.Namespace) -> int:
    from host_tools.emulate import emulate

    return emulate(args.fw_dir, args.target)


def _validate(args: argparse.Namespace) -> int:
    from host_tools.validate import validate

    r = validate(
        args.port,
        args.model,
        args.data,
        dataset=args.dataset,
        split=args.split,
        limit=args.limit,
        out=args.out,
        timeout=args.timeout,
        retries=args.retries,
        max_payload=args.max_payload,
        on_reset=args.on_reset,
    )
    print(f"{'PASS' if r['passed'] else 'FAIL'}: {r['n_matched']}/{r['n_requested']} clips match")
    for m in r["mismatches"][:5]:
        print(f"  mismatch in {m['clip']}: {m['message']}")
    if r["stopped"]:
        print(f"  stopped: {r['stopped']}")
    if r["auprc"]:
        h, d = r["auprc"]["host"], r["auprc"]["device"]
        print(f"  AUPRC micro host {h['micro']:.4f} device {d['micro']:.4f}")
    print(f"report: {r['files']['markdown']}")
    return 0 if r["passed"] else 1


def _bench(args: argparse.Namespace) -> None:
    from host_tools.bench import bench

    r = bench(args.port, n=args.n, warmup=args.warmup, repeats=args.repeats, target=args.target)
    print(
        f"{r['target']}: {r['n']} runs after {r['warmup']} warm-up, median of {r['repeats']}: "
        f"{r['cycles_median']:.0f} cycles/run (min {r['cycles_min']}, max {r['cycles_max']}); "
        f"{r['runs_per_s']:.1f} runs/s wall clock"
    )


Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable]


def _commands() -> list[Command]:
    def synth_args(p):
        p.add_argument("--preset", default="default", help="tiny | small | default | large")
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

    def sweep_args(p):
        p.add_argument("--out", type=Path, required=True, help="sweep folder")
        p.add_argument(
            "--report-only",
            action="store_true",
            help="only rewrite the tables and plot of OUT from its finished jobs",
        )
        from model_dev.datasets import DATASET_KINDS

        p.add_argument("--dataset", default="synth", choices=DATASET_KINDS, help="dataset layout")
        p.add_argument("--data", type=Path, help="dataset root folder (required to run)")
        p.add_argument("--skip-bad", action="store_true", help="skip unreadable audio files")
        p.add_argument("--cache", type=Path, default=Path("cache/features"), help="cache root")
        p.add_argument("--teacher", type=Path, help="teacher checkpoint (required to run)")
        p.add_argument("--config", type=Path, help="SweepConfig fields, JSON or YAML")
        p.add_argument("--students", help="comma-separated, e.g. s5k,s20k (default: all)")
        p.add_argument("--methods", help="comma-separated from none,kd,sp,iusp (default: all)")
        p.add_argument("--seeds", help="comma-separated seeds (default 0,1,2)")
        p.add_argument("--epochs", type=int, help="epochs of every job (train.epochs)")
        p.add_argument("--kd-weight", type=float, help="weight of kd in method kd (default 1)")
        p.add_argument("--sp-weight", type=float, help="weight of sp in method sp (default 3000)")
        p.add_argument("--iusp-weight", type=float, help="weight of iusp (default 1)")
        p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
        p.add_argument("--jobs", type=int, default=1, help="parallel job processes (default 1)")
        p.add_argument("--threads", type=int, help="torch threads per job (default cores/jobs)")

    def quantize_args(p):
        p.add_argument("checkpoint", type=Path, help="student checkpoint (best.pt)")
        data_args(p)
        p.add_argument("--out", type=Path, required=True, help="output .tflite")
        p.add_argument("--split", default="test", help="evaluation split (default test)")
        p.add_argument("--limit", type=int, help="evaluate only the first N clips of the split")

    def firmware_args(p):
        p.add_argument("model", type=Path, help="int8 .tflite with aedfw metadata")
        p.add_argument("--out", type=Path, required=True, help="package folder")
        p.add_argument(
            "--build", choices=("host", "cortex-m4"), help="also compile it (make TARGET)"
        )

    def demo_args(p):
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
        p.add_argument("--torch-threads", type=int, help="training threads (default 1)")
        p.add_argument("--validate-clips", type=int, help="default 8 (None: the whole test split)")

    def emulate_args(p):
        p.add_argument("fw_dir", type=Path, help="firmware package folder (aedfw firmware)")
        p.add_argument("--target", default="host", choices=("host", "cortex-m4"))

    def validate_args(p):
        p.add_argument("--port", required=True, help="pyserial URL or device path")
        p.add_argument("--model", type=Path, required=True, help="the device's .tflite")
        p.add_argument("--data", type=Path, required=True, help="dataset root or manifest CSV")
        p.add_argument("--dataset", default="auto", help="dataset kind (default: auto)")
        p.add_argument("--split", help="only this split (default: all clips)")
        p.add_argument("--limit", type=int, help="only the first N clips")
        p.add_argument("--out", type=Path, default=Path("runs/validate"), help="report folder")
        p.add_argument("--timeout", type=float, default=2.0, help="seconds per attempt")
        p.add_argument("--retries", type=int, default=10, help="retransmissions per request")
        p.add_argument("--max-payload", type=int, help="smaller frames (noisy links)")
        p.add_argument("--on-reset", default="resume", choices=("resume", "stop"))

    def bench_args(p):
        p.add_argument("--port", required=True, help="pyserial URL or device path")
        p.add_argument("-n", type=int, default=100, help="timed runs per repeat")
        p.add_argument("--warmup", type=int, default=10, help="untimed runs first")
        p.add_argument("--repeats", type=int, default=5, help="repeats (median reported)")
        p.add_argument("--target", default="model", choices=("model", "frontend"))

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
        (
            "sweep",
            "students x {none, kd, sp, iusp} x seeds against one teacher: AUPRC table, Pareto plot",
            sweep_args,
            _sweep,
        ),
        (
            "quantize",
            "student checkpoint -> full-int8 .tflite with metadata, AUPRC and parity report",
            quantize_args,
            _quantize,
        ),
        (
            "firmware",
            "generate the C firmware package (front end, engine, app, Makefile) for a model",
            firmware_args,
            _firmware,
        ),
        (
            "emulate",
            "run an emulated device (native on a pty, or Cortex-M4 under QEMU); prints its URL",
            emulate_args,
            _emulate,
        ),
        (
            "validate",
            "hardware-in-the-loop validation over a serial port: exit 0 only if all matched",
            validate_args,
            _validate,
        ),
        ("bench", "timed inferences on the device over a serial port", bench_args, _bench),
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
        code = args.run(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"aedfw: error: {exc}", file=sys.stderr)
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
