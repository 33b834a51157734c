"""``aedfw validate``: hardware-in-the-loop validation (:func:`host_tools.validate.validate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aedfw.commands import Commands
from aedfw.options import add_dataset_options, dataset_spec

EXAMPLES = (
    "aedfw validate --port /dev/ttyACM0 --model models/s5k.tflite --data data/small --split test",
    "aedfw validate --port socket://127.0.0.1:4321 --model models/s5k.tflite --data clips.csv "
    "--limit 20 --cache cache/features",
    "aedfw validate --port /dev/ttyACM0 --model runs/anomaly/fan.tflite --data data/machines",
)


def register(commands: Commands) -> None:
    p = commands.add(
        "validate",
        "hardware-in-the-loop validation over a serial port: exit 0 only if all matched",
        run,
        examples=EXAMPLES,
    )
    p.add_argument("--port", required=True, help="pyserial URL or device path")
    p.add_argument("--model", type=Path, required=True, help="the device's .tflite")
    add_dataset_options(
        p,
        cache=None,
        cache_help="take the host reference's features from this feature cache (computed and "
        "cached for the whole dataset on first use; without it they are computed per clip)",
    )
    p.add_argument("--split", help="only this split (default: all clips)")
    p.add_argument("--limit", type=int, help="only the first N clips")
    p.add_argument("--out", type=Path, default=Path("runs/validate"), help="report folder")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per attempt")
    p.add_argument("--retries", type=int, default=10, help="retransmissions per request")
    p.add_argument("--max-payload", type=int, help="smaller frames (noisy links)")
    p.add_argument("--on-reset", default="resume", choices=("resume", "stop"))
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run recorded in OUT/progress.json (stopped, interrupted or killed)",
    )


def run(args: argparse.Namespace) -> int:
    from host_tools.validate import validate

    r = validate(
        args.port,
        args.model,
        dataset_spec(args),
        split=args.split,
        limit=args.limit,
        out=args.out,
        timeout=args.timeout,
        retries=args.retries,
        max_payload=args.max_payload,
        on_reset=args.on_reset,
        resume=args.resume,
    )
    print(f"{'PASS' if r['passed'] else 'FAIL'}: {r['n_matched']}/{r['n_requested']} clips match")
    for m in r["mismatches"][:5]:
        print(f"  mismatch in {m['clip']}: {m['message']}")
    if r["stopped"]:
        print(f"  stopped: {r['stopped']}")
    if r["metrics"]:
        m, h, d = r["metrics"]["name"], r["metrics"]["host"], r["metrics"]["device"]
        keys = ("auc", "pauc") if r["task"] == "anomaly" else ("micro",)
        for k in keys:
            name = k.upper() if r["task"] == "anomaly" else f"{m} {k}"
            print(f"  {name} host {h[k]:.4f} device {d[k]:.4f}")
    print(f"report: {r['files']['markdown']}")
    return 0 if r["passed"] else 1
