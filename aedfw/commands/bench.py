"""``aedfw bench``: timed runs on the device over serial (:func:`host_tools.bench.bench`)."""

from __future__ import annotations

import argparse

from aedfw.commands import Commands

EXAMPLES = ("aedfw bench --port /dev/ttyACM0 -n 100 --warmup 10",)


def register(commands: Commands) -> None:
    p = commands.add(
        "bench", "timed inferences on the device over a serial port", run, examples=EXAMPLES
    )
    p.add_argument("--port", required=True, help="pyserial URL or device path")
    p.add_argument("-n", type=int, default=100, help="timed runs per repeat")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first")
    p.add_argument("--repeats", type=int, default=5, help="repeats (median reported)")
    p.add_argument("--target", default="model", choices=("model", "frontend"))


def run(args: argparse.Namespace) -> None:
    from host_tools.bench import bench

    r = bench(args.port, n=args.n, warmup=args.warmup, repeats=args.repeats, target=args.target)
    print(
        f"{r['target']}: {r['n']} runs after {r['warmup']} warm-up, median of {r['repeats']}: "
        f"{r['cycles_median']:.0f} cycles/run (min {r['cycles_min']}, max {r['cycles_max']}); "
        f"{r['runs_per_s']:.1f} runs/s wall clock"
    )
