"""Serial-link benchmark: HIL validation throughput against the native and the QEMU device.

For each emulated device (native build on a pty; Cortex-M4 image under QEMU mps2-an386 with its
link over semihosting on a pty; the same image's UART0 driver on QEMU's UART model over a loopback
TCP port, on fewer clips: the slow path it replaces) ``aedfw validate`` runs on the same test
clips and records:

* clips per second of the whole validation (host reference included) and per clip latency;
* link efficiency = payload bytes / wire bytes (frame header, CRC, COBS and delimiters are the
  overhead), and what that means at the configured UART rate: a real 115200-baud 8N1 link moves
  11 520 bytes/s, so the link alone caps validation at ``11520 / wire bytes per clip`` clips/s;
* the device's cycle counter per stage.

By default it uses the model, firmware and corpus of an ``aedfw demo`` run (``--demo``). The
figures go to ``benchmarks/results/serial.json`` (``cortex_m4_clips_per_s``, ``host_clips_per_s``,
``cortex_m4_uart_clips_per_s``, one row per device); ``--docs`` rewrites the section of
``docs/benchmarks.md`` between the ``serial`` markers from them.

Usage::

    python benchmarks/serial.py [--demo runs/demo] [--clips 40] [--uart-clips 3] [--docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and would shadow pyserial's
# `serial` package with this very module
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from firmware_gen.package import firmware  # noqa: E402
from host_tools.emulate import EmulatedDevice  # noqa: E402
from host_tools.validate import validate  # noqa: E402
from model_dev.fileio import write_json, write_marked_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results" / "serial.json"
#: Devices measured: (row name, emulate target, Cortex-M4 link).
DEVICES = {
    "host": ("host", "semihosting"),
    "cortex-m4": ("cortex-m4", "semihosting"),
    "cortex-m4-uart": ("cortex-m4", "uart"),
}
BEGIN, END = "<!-- serial:begin -->", "<!-- serial:end -->"


def measure(model: Path, fw: Path, data: Path, device: str, clips: int, baud: int, out: Path):
    """Validate ``clips`` test clips on an emulated ``device`` (a key of DEVICES)."""
    target, link_kind = DEVICES[device]
    t0 = time.perf_counter()
    with EmulatedDevice(fw, target, link=link_kind) as emu:
        boot = time.perf_counter() - t0
        r = validate(emu.url, model, data, split="test", limit=clips, out=out / device,
                     progress=False)  # fmt: skip
    link = r["link"]
    wire_per_clip = link["wire_bytes"] / r["n_validated"]
    return {
        "target": device,
        "passed": r["passed"],
        "clips": r["n_validated"],
        "boot_s": boot,
        "clips_per_s": r["clips_per_s"],
        "latency_ms": r["latency_s"]["median"] * 1e3,
        "payload_bytes": link["payload_bytes"],
        "wire_bytes": link["wire_bytes"],
        "efficiency": link["efficiency"],
        "wire_bytes_per_clip": wire_per_clip,
        "uart_clips_per_s": baud / 10 / wire_per_clip,
        "cycles": {k: v["median"] for k, v in r["cycles"].items() if v},
        "stack_used": (r["device_stats"] or {}).get("stack_used"),
    }


def markdown(rows: list[dict], meta: dict) -> str:
    """The docs section."""
    lines = [
        "## Serial link and HIL validation",
        "",
        f"`python benchmarks/serial.py` ({meta['clips']} test clips of the `{meta['demo']}` "
        f"demo, model `{meta['model']}`; {meta['machine']}; {meta['date']}). Link efficiency ="
        " payload bytes / wire bytes (8-byte header, CRC-32, COBS, two delimiters per frame); "
        f"the UART bound assumes {meta['baud']} baud 8N1 (10 bits per byte).",
        "",
        "| device | validated | clips/s | latency/clip (ms) | wire B/clip | efficiency "
        f"| clips/s at {meta['baud']} baud | front end / model cycles per clip (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r["cycles"]
        lines.append(
            f"| {r['target']} | {r['clips']} {'PASS' if r['passed'] else 'FAIL'} | "
            f"{r['clips_per_s']:.2f} | {r['latency_ms']:.1f} | {r['wire_bytes_per_clip']:.0f} "
            f"| {r['efficiency']:.3f} | {r['uart_clips_per_s']:.2f} | "
            f"{c.get('frontend', 0):.0f} / {c.get('model', 0):.0f} |"
        )
    lines += [
        "",
        "Cycle counters: host = nanoseconds (CLOCK_MONOTONIC); Cortex-M4 under QEMU = SysTick "
        "ticks of the 25 MHz clock in virtual time (`-icount shift=0`: 40 instructions per "
        "tick). `cortex-m4` talks over Arm semihosting (QEMU's stdin/stdout on a pty, blocks "
        "of up to 1 KiB per call); `cortex-m4-uart` is the same image's UART0 driver on QEMU's "
        "CMSDK UART model, which takes one received byte per emulator main-loop turn: that, "
        f"not the CPU, bounds its clips/s ({meta['uart_clips']} clips only). The 'clips/s at "
        "baud' column is what a real UART at that rate would allow.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, default=Path("runs/demo"), help="an aedfw demo run")
    ap.add_argument("--model", type=Path, help="model (default: the demo's .tflite)")
    ap.add_argument("--clips", type=int, default=40, help="test clips per device")
    ap.add_argument("--uart-clips", type=int, default=3, help="test clips over QEMU's UART")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--devices", default=",".join(DEVICES), help="keys of DEVICES")
    ap.add_argument("--docs", action="store_true", help="write the docs/benchmarks.md section")
    args = ap.parse_args()
    model = args.model or next(args.demo.glob("*.tflite"), None)
    if model is None:
        raise SystemExit(f"no .tflite in {args.demo}: run `aedfw demo --out {args.demo}` first")
    fw = firmware(model, args.demo / "fw")
    out = args.demo / "serial-bench"
    devices = args.devices.split(",")
    unknown = set(devices) - set(DEVICES)
    if unknown:
        raise SystemExit(f"unknown devices {sorted(unknown)}: expected some of {list(DEVICES)}")
    rows = [
        measure(model, fw, args.demo / "corpus", d, args.uart_clips if "uart" in d else args.clips,
                args.baud, out)
        for d in devices
    ]  # fmt: skip
    meta = {
        "clips": args.clips,
        "uart_clips": args.uart_clips,
        "demo": str(args.demo),
        "model": model.name,
        "baud": args.baud,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(rows, indent=1))
    by_device = {r["target"]: r for r in rows}
    write_json(
        RESULTS,
        {
            **meta,
            **{
                f"{d.replace('-', '_')}_clips_per_s": by_device[d]["clips_per_s"] if d in by_device
                else None
                for d in DEVICES
            },
            "rows": rows,
        },
    )  # fmt: skip
    print(f"written {RESULTS}")
    section = markdown(rows, meta)
    print(section)
    if args.docs:
        write_marked_section(DOCS, BEGIN, END, section)
        print(f"written to {DOCS}")


if __name__ == "__main__":
    main()
