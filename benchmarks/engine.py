"""Engine benchmark: the generated C engine vs the TFLM runtime, per student size.

For every student of ``model_dev.arch.STUDENTS`` (random weights, ``quantize.keras_mirror.
random_student``, converted by ``quantize.convert.convert`` with real front-end windows of the
tiny synthetic corpus as calibration), in one run:

* instructions per inference (valgrind/callgrind, host): the C engine built with gcc -O2, counting
  only ``aed_model_run`` (``--toggle-collect``); the ``tflite_micro`` Python runtime, counting only
  ``tflite::micro::MicroInterpreter::Invoke()`` (its reference kernels). Both run the same
  real window ``--runs`` times; the figure is the total divided by the runs. Goal: ratio <= 0.7;
* activation RAM: the engine's static arena (``AED_MODEL_ACTIVATION_BYTES``; the model input is
  read in place from the caller's feature buffer and the scores written to the caller's output)
  vs the exact TFLM arena (``quantize.runtime.arena_size``: the smallest arena, in 16-byte steps,
  with which the runtime allocates and invokes). Goal: ratio <= 0.75. Also shown: the engine
  arena plus its input and output buffers, for a view that charges them to the engine;
* Cortex-M4 (the model with metadata, window hop ``HOP_FRAMES``, packaged by
  ``firmware_gen.package.firmware`` and built by its Makefile, -O3): weights + tables + code
  bytes of the front end, engine and post-processing (``deployable_bytes``, from the map file) vs
  the .tflite size; front-end instructions per frame and engine instructions per inference under
  QEMU mps2-an386 ``-icount shift=0`` (``cortex_m4_instructions``, from the self-test's SysTick
  counts), and their sum for one second of audio with one inference per window hop. Goal: <= 8 M.

Prints a table, writes ``benchmarks/results/engine.json`` (``m4_frontend_instructions_per_frame``,
``m4_engine_instructions_per_inference`` and ``m4_instructions_per_second_default_hop`` per
student, every row) and rewrites the "Engine" section of ``docs/benchmarks.md`` from it.

Usage::

    python benchmarks/engine.py [--students s5k,s20k,...] [--runs 2] [--no-docs | --docs-only]

Needs gcc, valgrind, arm-none-eabi-gcc and qemu-system-arm.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# benchmarks/quantize.py would shadow the quantize package when run as a script
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from firmware_gen.build import deployable_bytes  # noqa: E402
from firmware_gen.engine import build_engine, write_engine  # noqa: E402
from firmware_gen.host_build import HARNESS_DIR  # noqa: E402
from firmware_gen.package import firmware  # noqa: E402
from host_tools.qemu import cortex_m4_instructions  # noqa: E402
from model_dev.arch import STUDENTS, clip_windows  # noqa: E402
from model_dev.fileio import write_json, write_marked_section  # noqa: E402
from model_dev.frontend import Frontend, FrontendConfig  # noqa: E402
from model_dev.synth import PRESETS, synthesize_clip  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results" / "engine.json"
START, END = "<!-- engine-benchmark:start -->", "<!-- engine-benchmark:end -->"
TFLM_INVOKE = "tflite::micro::MicroInterpreter::Invoke()"
HOP_FRAMES = 50  # window hop of the deployed models (frames): 2 inferences per second of audio
M4_GOAL = 8_000_000  # front end + model instructions per second of audio on the Cortex-M4
M4_FRONTEND_GOAL = 25_000  # front-end instructions per 10 ms frame
M4_S5K_ENGINE_GOAL = 3_000_000  # s5k engine instructions per inference
TFLM_SCRIPT = """
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
model, window, runs = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3])
it = runtime.Interpreter.from_file(model, arena_size=1 << 22)
it.set_input(window.reshape(it.get_input_details(0)["shape"]), 0)
for _ in range(runs):
    it.invoke()
np.save(sys.argv[4], np.asarray(it.get_output(0)))
"""


def callgrind(cmd: list[str], toggle: str, stdin: bytes | None = None) -> int:
    """Instructions executed inside ``toggle`` (callgrind's 'Collected' count)."""
    with tempfile.TemporaryDirectory() as tmp:
        vg = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/cg.out",
            f"--toggle-collect={toggle}",
        ]
        result = subprocess.run([*vg, *cmd], input=stdin, capture_output=True)
    found = re.search(rb"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"callgrind failed on {cmd[0]}:\n{result.stderr.decode()[-2000:]}")
    return int(found.group(1))


def real_windows(n_clips: int = 12) -> np.ndarray:
    """int8 front-end windows [N, 100, 40] of tiny-corpus clips (seed 0)."""
    fe = Frontend(FrontendConfig())
    dur = PRESETS["tiny"].duration_s
    clips = [synthesize_clip(i, seed=0, duration_s=dur)[0] for i in range(n_clips)]
    return np.concatenate([clip_windows(fe(c), 100, HOP_FRAMES) for c in clips])


def cortex_m4(name: str, model: Path, work: Path, arena: int) -> dict:
    """Cortex-M4 figures of one converted student: its package (metadata added to a copy of
    the model), bytes and instructions under QEMU."""
    from quantize.convert import check_graph
    from quantize.metadata import ModelMetadata, write_metadata

    spec, cfg = STUDENTS[name], FrontendConfig()
    info = check_graph(model.read_bytes(), str(model))
    n = spec.n_classes
    labels = tuple(f"class{c}" for c in range(n))
    meta = ModelMetadata.for_graph(
        info, cfg, labels, (0.5,) * n, spec.window_frames, HOP_FRAMES, arena, spec.name
    )
    with_meta = work / f"{name}-meta.tflite"
    shutil.copyfile(model, with_meta)
    write_metadata(with_meta, meta)
    out = firmware(with_meta, work / f"{name}-fw")
    m4 = cortex_m4_instructions(out)  # builds the self-test image, which writes memory.json
    frames_per_second = cfg.sample_rate / cfg.hop_length
    return {
        "m4_bytes": deployable_bytes(out),
        "m4_fe_frame": m4["frontend_per_frame"],
        "m4_model": m4["model_per_inference"],
        "m4_inferences_per_second": frames_per_second / HOP_FRAMES,
        "m4_per_second": m4["per_second_at_hop"],
    }


def measure(name: str, windows: np.ndarray, work: Path, runs: int) -> dict:
    """All figures for one student."""
    from quantize.convert import convert
    from quantize.keras_mirror import random_student
    from quantize.runtime import arena_size

    spec = STUDENTS[name]
    model = work / f"{name}.tflite"
    model.write_bytes(convert(random_student(spec, seed=1), windows[:8], FrontendConfig()))
    window = windows[0]
    out_dir = work / name
    write_engine(model, out_dir)
    exe = out_dir / "model_cli"
    subprocess.run(
        [
            "gcc",
            "-std=c99",
            "-O2",
            f"-I{out_dir / 'aed' / 'include'}",
            str(out_dir / "aed" / "src" / "aed_model.c"),
            str(HARNESS_DIR / "model_cli.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    engine_ir = callgrind([str(exe)], "aed_model_run", stdin=window.tobytes() * runs) / runs
    np.save(work / "window.npy", window)
    script = work / "tflm_invoke.py"
    script.write_text(TFLM_SCRIPT)
    tflm_cmd = [sys.executable, str(script), str(model), str(work / "window.npy"), str(runs)]
    tflm_ir = callgrind([*tflm_cmd, str(work / "tflm_out.npy")], TFLM_INVOKE) / runs
    # the two sides agree on this window (the tests check hundreds)
    got = subprocess.run([str(exe)], input=window.tobytes(), capture_output=True).stdout
    if np.frombuffer(got, np.int8).tolist() != np.load(work / "tflm_out.npy").ravel().tolist():
        raise RuntimeError(f"{name}: engine and TFLM disagree on the benchmark window")
    eng = build_engine(model)
    io_bytes = eng.model.input.size + eng.model.output.size
    tflm_arena = arena_size(model.read_bytes())
    return {
        "name": name,
        "macs": sum(_macs(eng)),
        "tflite_bytes": model.stat().st_size,
        "engine_ir": engine_ir,
        "tflm_ir": tflm_ir,
        "engine_arena": eng.activation_bytes,
        "engine_arena_io": eng.activation_bytes + io_bytes,
        "tflm_arena": tflm_arena,
        **cortex_m4(name, model, work, tflm_arena),
    }


def _macs(eng) -> list[int]:
    t = eng.model.tensors
    out = []
    for k in eng.kernels:
        if k.kind in ("conv", "depthwise", "fc"):
            w = t[eng.model.ops[k.op].inputs[1]]
            per_out = w.size // (w.shape[3] if k.kind == "depthwise" else w.shape[0])
            out.append(t[k.output].size * per_out)
    return out


def table(rows: list[dict]) -> str:
    """Markdown table of the measurements."""
    head = (
        "| student | MACs | .tflite bytes | engine instr./inference | TFLM invoke instr. | ratio "
        "(goal ≤ 0.7) | engine arena, bytes | TFLM arena, bytes | ratio (goal ≤ 0.75) | "
        "arena + in/out ÷ TFLM |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['name']} | {r['macs']:,} | {r['tflite_bytes']:,} | {r['engine_ir']:,.0f} | "
        f"{r['tflm_ir']:,.0f} | **{r['engine_ir'] / r['tflm_ir']:.2f}** | "
        f"{r['engine_arena']:,} | {r['tflm_arena']:,} | "
        f"**{r['engine_arena'] / r['tflm_arena']:.2f}** | "
        f"{r['engine_arena_io'] / r['tflm_arena']:.2f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def m4_table(rows: list[dict]) -> str:
    """Markdown table of the Cortex-M4 figures."""
    head = (
        "| student | weights+tables+code bytes (M4) | .tflite bytes | ratio "
        "| front end instr./frame "
        "| engine instr./inference | inferences per s | front end + model instr. per 1 s audio "
        f"| goal ≤ {M4_GOAL / 1e6:.0f} M |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['name']} | {r['m4_bytes']:,} | {r['tflite_bytes']:,} | "
        f"{r['m4_bytes'] / r['tflite_bytes']:.2f} | {r['m4_fe_frame']:,} | {r['m4_model']:,} | "
        f"{r['m4_inferences_per_second']:g} | {r['m4_per_second']:,} | "
        f"{'**met**' if r['m4_per_second'] <= M4_GOAL else 'missed'} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def _tool_version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def docs_section(results: dict) -> str:
    """The "Engine" section of docs/benchmarks.md, from :func:`results_json`'s dict."""
    rows, runs, now = results["rows"], results["runs"], results["date"]
    return f"""## Engine

The generated interpreter-free C engine (`firmware_gen/engine.py`) against the `tflite_micro`
runtime (TFLM reference kernels) on the same converted models; outputs are bit-exact (tests).

- Command: `.venv/bin/python benchmarks/engine.py` (defaults: all students, `--runs {runs}`)
- Date: {now}
- Machine: {platform.machine()}, {os.cpu_count()} logical cores (shared; instruction counts do
  not depend on load); {_tool_version(["gcc", "--version"])}, {
        _tool_version(["valgrind", "--version"])
    }, Python {platform.python_version()}
- Models: every `STUDENTS` size with random weights (`random_student(spec, seed=1)`),
  converted by `quantize.convert.convert` with 8 real windows (tiny corpus, seed 0) as the
  representative set; input = one real front-end window
- Instructions: callgrind, counting only `aed_model_run` (gcc -O2, host x86-64) and only
  `{TFLM_INVOKE}` (the pip runtime's build), {runs} inferences each, per-inference average
- RAM: the engine's static arena vs the smallest TFLM arena that allocates and invokes
  (`quantize.runtime.arena_size`, 16-byte steps, host 64-bit runtime: it includes TFLM's
  per-tensor bookkeeping). The engine reads the input window in place from the caller's
  feature buffer and writes the scores to the caller's buffer, where TFLM copies both into
  its arena; the last column charges those buffers to the engine anyway.

{table(rows)}
Cortex-M4 (`firmware_gen.package`: the same models with metadata, window hop {HOP_FRAMES} frames,
built with {_tool_version(["arm-none-eabi-gcc", "--version"])} for mps2-an386 with the package
Makefile's flags: `-O3 -fno-inline-functions-called-once`, plus `-fno-schedule-insns` for the
engine):

- Bytes: weights + tables + code of the front end, engine and post-processing
  (`deployable_bytes`, from the map file: `.text` and `.rodata` of those objects) vs the .tflite
- Instructions: {_tool_version(["qemu-system-arm", "--version"])}, `-icount shift=0` (one
  instruction per virtual ns), SysTick counts of the self-test (golden clips) × 40
  (`cortex_m4_instructions`; resolution 40 instructions); per second of audio = 100 front-end
  frames + one inference per window hop. Goals: ≤ {M4_GOAL / 1e6:.0f} M per second, front end
  ≤ {M4_FRONTEND_GOAL / 1e3:.0f} k per frame, s5k engine ≤ {M4_S5K_ENGINE_GOAL / 1e6:.1f} M per
  inference. Figures in `benchmarks/results/engine.json`.

{m4_table(rows)}
"""


def results_json(rows: list[dict], runs: int) -> dict:
    """benchmarks/results/engine.json: the goals' figures per student, and every row."""
    return {
        "command": "benchmarks/engine.py",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d, %H:%M UTC"),
        "runs": runs,
        "hop_frames": HOP_FRAMES,
        "goals": {
            "m4_frontend_instructions_per_frame": M4_FRONTEND_GOAL,
            "m4_engine_instructions_per_inference_s5k": M4_S5K_ENGINE_GOAL,
            "m4_instructions_per_second_default_hop": M4_GOAL,
        },
        # the same front end in every package: the largest of its per-student measurements
        "m4_frontend_instructions_per_frame": max(r["m4_fe_frame"] for r in rows),
        "m4_engine_instructions_per_inference": {r["name"]: r["m4_model"] for r in rows},
        "m4_instructions_per_second_default_hop": {r["name"]: r["m4_per_second"] for r in rows},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark; returns the measurements."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", default=",".join(STUDENTS))
    ap.add_argument("--runs", type=int, default=2, help="inferences per callgrind run")
    ap.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    ap.add_argument(
        "--docs-only", action="store_true", help="rewrite the docs section from engine.json"
    )
    args = ap.parse_args(argv)
    if args.docs_only:
        results = json.loads(RESULTS.read_text())
        write_marked_section(DOCS, START, END, docs_section(results))
        return results["rows"]
    for tool in ("gcc", "valgrind", "arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"benchmarks/engine.py needs {tool}")
    windows = real_windows()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.students.split(","):
            rows.append(measure(name, windows, Path(tmp), args.runs))
            print(f"measured {name}", file=sys.stderr)
    print(table(rows))
    print(m4_table(rows))
    results = results_json(rows, args.runs)
    write_json(RESULTS, results)
    print(f"written {RESULTS}", file=sys.stderr)
    if not args.no_docs:
        write_marked_section(DOCS, START, END, docs_section(results))
    return rows


if __name__ == "__main__":
    main()
