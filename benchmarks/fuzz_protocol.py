"""Fuzz both frame parsers of the serial protocol (docs/protocol.md) and print the counts.

1. Python: ``host_tools.protocol.FrameDecoder`` on ``--python-inputs`` generated inputs (random
   bytes, valid frame streams with flips / drops / inserted zeros / truncation, overlong runs),
   each fed in random chunks. Checked: no exception, the buffer stays bounded, every accepted
   frame re-encodes to bytes present in the input (nothing invented).
2. C: the device (aed_proto_frame.c + aed_proto.c + front end + post + the protocol tests'
   small engine) under libFuzzer with ASan/UBSan (``firmware_gen/csrc/harness/proto_fuzz.c``):
   raw wire bytes and well-framed arbitrary requests, ``--c-runs`` inputs. ``--task anomaly``
   builds the anomaly dispatcher instead (the engine reconstructs its window, ``aed_anomaly.c``
   scores it: u32 window scores, (sum, windows), MACHINE_ID refused).
   Needs clang (``apt-get install clang``); skipped with a message otherwise.

Usage: ``.venv/bin/python benchmarks/fuzz_protocol.py [--python-inputs 1000000] [--c-runs 1000000]
[--task tagging|anomaly]``
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_gen.frontend_c import write_frontend  # noqa: E402
from firmware_gen.host_build import HARNESS_DIR, SANITIZE, WARNINGS, package_includes  # noqa: E402
from firmware_gen.proto_c import write_proto  # noqa: E402
from firmware_gen.render import copy_source  # noqa: E402
from host_tools.protocol import Frame, FrameDecoder, encode_frame  # noqa: E402
from model_dev.frontend import FrontendConfig  # noqa: E402
from tests.host_tools.test_protocol import (  # noqa: E402
    ANOMALY_MODEL,
    TEST_MODEL,
    _write_anomaly_test_model,
    _write_test_model,
)

#: The device each ``--task`` fuzzes: (protocol model, writer of its engine and post-processing).
DEVICES = {
    "tagging": (TEST_MODEL, _write_test_model),
    "anomaly": (ANOMALY_MODEL, _write_anomaly_test_model),
}


def _mutated_wire(rng: np.random.Generator) -> bytes:
    frames = [
        Frame(int(rng.integers(0, 256)), int(rng.integers(0, 65536)),
              rng.bytes(int(rng.integers(0, 600))), int(rng.integers(0, 256)))
        for _ in range(int(rng.integers(1, 4)))
    ]  # fmt: skip
    arr = np.frombuffer(b"".join(encode_frame(f) for f in frames), np.uint8).copy()
    kind = rng.integers(0, 4)
    if kind == 0:  # flips
        hit = rng.random(len(arr)) < rng.choice([0.001, 0.01, 0.05])
        arr[hit] ^= rng.integers(1, 256, int(hit.sum()), dtype=np.uint8)
    elif kind == 1:  # drops and inserted delimiters
        arr = arr[rng.random(len(arr)) > 0.01]
        arr[rng.random(len(arr)) < 0.005] = 0
    elif kind == 2:  # truncation at both ends
        a, b = sorted(rng.integers(0, len(arr) + 1, 2))
        arr = arr[a:b]
    return arr.tobytes()


def fuzz_python(n_inputs: int, seed: int = 0) -> dict:
    """Run the Python decoder on ``n_inputs`` generated inputs; raises on a broken invariant."""
    rng = np.random.default_rng(seed)
    frames_ok = errors = total_bytes = 0
    t0 = time.perf_counter()
    for i in range(n_inputs):
        kind = i % 4
        if kind == 0:
            data = rng.bytes(int(rng.integers(0, 400)))
        elif kind == 1:
            data = bytes(rng.integers(0, 3, int(rng.integers(0, 400)), dtype=np.uint8))
        elif kind == 2:
            data = _mutated_wire(rng)
        else:  # an overlong frame, then a valid one
            data = rng.integers(1, 256, int(rng.integers(500, 2000)), dtype=np.uint8).tobytes()
            data += encode_frame(Frame(1, i & 0xFFFF, b"x"))
        decoder = FrameDecoder(max_payload=int(rng.choice([0, 64, 512, 65535])))
        cuts = np.sort(rng.integers(0, len(data) + 1, int(rng.integers(0, 4))))
        padded = b"\x00" + data + b"\x00"
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            for event in decoder.feed(data[a:b]):
                if isinstance(event, Frame):
                    frames_ok += 1
                    if encode_frame(event) not in padded:
                        raise AssertionError(f"input {i}: accepted a frame not in the input")
                else:
                    errors += 1
            if len(decoder._buf) > decoder._keep:
                raise AssertionError(f"input {i}: decoder buffer grew past its bound")
        total_bytes += len(data)
    return {
        "inputs": n_inputs,
        "bytes": total_bytes,
        "frames_accepted": frames_ok,
        "frames_rejected": errors,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def build_c_fuzzer(build: Path, task: str = "tagging") -> Path:
    """Generate the device sources and link the libFuzzer target with clang."""
    clang = shutil.which("clang")
    if clang is None:
        raise FileNotFoundError("clang not found: apt-get install clang")
    cfg = FrontendConfig()
    model, write_model = DEVICES[task]
    sources = write_frontend(cfg, build) + write_proto(build, cfg, model)
    sources += write_model(build, model)
    sources.append(copy_source("aed/include/aed_platform.h", build))
    c_files = [str(p) for p in sources if p.suffix == ".c"]
    c_files.append(str(HARNESS_DIR / "proto_fuzz.c"))
    exe = build / "proto_fuzz"
    cmd = [clang, *WARNINGS, "-O1", "-fsanitize=fuzzer", *SANITIZE]
    cmd += [*(f"-I{d}" for d in package_includes(build)), *c_files, "-o", str(exe)]
    subprocess.run(cmd, check=True)
    return exe


def _seed_corpus(corpus: Path) -> None:
    """A few well-formed sessions in the fuzzer's record format (mode byte 1)."""
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(400) * 3000).astype("<i2").tobytes()

    def rec(code: int, seq: int, payload: bytes) -> bytes:
        return bytes([code, seq]) + len(payload).to_bytes(2, "little") + payload

    sessions = {
        "hello_stats": rec(1, 1, b"") + rec(6, 2, b"\x01") + rec(7, 3, b""),
        "features": rec(2, 1, b"\x01\x00" + audio[:300]) + rec(2, 2, b"\x00\x00" + audio[300:]),
        "classify": rec(4, 1, b"\x01\x03" + audio[:200])
        + rec(4, 2, b"\x00\x00" + audio[200:500])
        + rec(4, 2, b"\x00\x00" + audio[200:500])
        + rec(4, 3, b"\x02\x00" + audio[500:]),
        "infer": rec(3, 1, bytes(8) + rng.bytes(150))
        + rec(3, 2, b"\x01\x00\x00\x00" + (150).to_bytes(4, "little") + rng.bytes(170))
        + rec(5, 3, bytes(12)),
        "machine_id": rec(8, 1, b"") + rec(8, 2, b"\x00") + rec(8, 3, b"\x00\x01"),
    }
    corpus.mkdir(parents=True, exist_ok=True)
    for name, body in sessions.items():
        (corpus / name).write_bytes(b"\x01" + body)
    wire = encode_frame(Frame(1, 5)) + encode_frame(Frame(2, 6, b"\x01\x00" + audio[:64]))
    (corpus / "raw").write_bytes(b"\x00" + wire)


def fuzz_c(runs: int, build: Path, seed: int = 1, task: str = "tagging") -> dict:
    """Build and run the libFuzzer target for ``runs`` inputs; raises if it finds anything."""
    exe = build_c_fuzzer(build, task)
    corpus = build / "corpus"
    _seed_corpus(corpus)
    cmd = [str(exe), f"-runs={runs}", f"-seed={seed}", "-max_len=2048", "-timeout=10"]
    cmd += ["-rss_limit_mb=2048", "-print_final_stats=1", str(corpus)]
    t0 = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=build)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-5000:])
        raise RuntimeError(f"libFuzzer found a problem (exit {result.returncode}); see above")
    done = re.search(r"Done (\d+) runs in (\d+) second", result.stderr)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", result.stderr)
    return {
        "runs": int(done.group(1)) if done else None,
        "seconds": round(seconds, 1),
        "coverage_edges": int(cov[-1][0]) if cov else None,
        "features": int(cov[-1][1]) if cov else None,
        "corpus_files": len(list(corpus.iterdir())),
        "command": " ".join(cmd[:1] + [Path(c).name if "/" in c else c for c in cmd[1:]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-inputs", type=int, default=1_000_000)
    parser.add_argument("--c-runs", type=int, default=1_000_000)
    parser.add_argument("--build", type=Path, default=None, help="build dir (default: temp)")
    parser.add_argument("--task", choices=sorted(DEVICES), default="tagging", help="C device")
    args = parser.parse_args()
    if args.python_inputs:
        print("python FrameDecoder:", fuzz_python(args.python_inputs), flush=True)
    if args.c_runs:
        if shutil.which("clang") is None:
            print("C libFuzzer: skipped (clang not installed: apt-get install clang)")
            return
        with tempfile.TemporaryDirectory() as tmp:
            build = args.build or Path(tmp)
            build.mkdir(parents=True, exist_ok=True)
            result = fuzz_c(args.c_runs, build, task=args.task)
            print(f"C aed_proto ({args.task}) under libFuzzer+ASan+UBSan:", result)


if __name__ == "__main__":
    main()
