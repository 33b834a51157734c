"""The firmware package: everything a firmware engineer takes home, from one .tflite.

:func:`firmware` reads the model's aedfw metadata and writes, from the Jinja2 templates:

* the front end (:func:`firmware_gen.frontend_c.write_frontend`) and the interpreter-free engine
  (:func:`firmware_gen.engine.write_engine`);
* post-processing (``aed_post.h/.c``: window assembly, max aggregation, int8 thresholds) and
  ``aed_labels.h``;
* golden vectors and the self-test (``aed_golden.h/.c``: audio, Python front-end features and
  ``tflite_micro`` outputs of a few short clips);
* the reference app, platform hooks (host and QEMU mps2-an386), Cortex-M4 startup, linker
  script and ``Makefile`` (targets ``host`` and ``cortex-m4``);
* for TFLM users: ``model_data.cc/.h``, ``gen_micro_mutable_op_resolver.h``;
* ``README.md``; after a Cortex-M4 build, ``memory.json`` (flash and RAM per part from the map).

Everything is deterministic: regenerating from the same model gives identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from firmware_gen.frontend_c import write_frontend
from firmware_gen.render import render, write_if_changed
from model_dev.frontend import Frontend

TARGETS = ("host", "cortex-m4")
#: Reserved stack of the Cortex-M4 image (the engine and front end keep their state static).
STACK_BYTES = 8192
#: Golden clips: (name, frames as a function of window W and hop H, corpus clip index).
GOLDEN = (
    ("short", lambda w, h: max(w // 2, 1), 0),  # shorter than a window: padded
    ("exact", lambda w, h: w, 1),  # exactly one window
    ("ragged", lambda w, h: w + h // 2 + 1, 2),  # a hop does not fit: extra final window
)
#: Extra samples after the last frame (a partial hop the front end keeps for later).
GOLDEN_TAIL_SAMPLES = 37
#: Sources of the library proper (what a firmware engineer links), of the app, of the protocol.
LIB_SOURCES = ("aed_frontend.c", "aed_frontend_tables.c", "aed_model.c", "aed_post.c")
APP_SOURCES = ("aed_app.c", "aed_golden.c")
#: Files rendered from same-named templates: (output name, header comment style).
RENDERED = (
    ("aed_labels.h", "c"),
    ("aed_post.h", "c"),
    ("aed_post.c", "c"),
    ("aed_golden.h", "c"),
    ("aed_golden.c", "c"),
    ("aed_app.c", "c"),
    ("aed_platform.h", "c"),
    ("aed_platform_host.c", "c"),
    ("aed_platform_mps2.c", "c"),
    ("aed_startup_m4.c", "c"),
    ("mps2_an386.ld", "c"),
    ("model_data.h", "c"),
    ("model_data.cc", "c"),
    ("gen_micro_mutable_op_resolver.h", "c"),
    ("Makefile", "hash"),
)
SELFTEST_RE = re.compile(r"aedfw selftest (PASS|FAIL) (\d+)/(\d+)(.*)")


def _write_proto(meta, out: Path) -> list[str]:
    """The device side of the serial protocol, if its writer is available.

    The protocol's C templates (``aed_proto*.j2``) need protocol context (HELLO bytes, payload
    limit...); :mod:`firmware_gen.proto_c` renders them. Without it the package is self-test
    only (``AED_NO_PROTO``).
    """
    try:
        from firmware_gen.proto_c import ProtoModel, write_proto
    except ImportError:
        return []
    written = write_proto(out, meta.frontend, ProtoModel.from_metadata(meta))
    return sorted(Path(p).name for p in written)


def _tflm_op_name(op: str) -> str:
    """``DEPTHWISE_CONV_2D`` -> ``DepthwiseConv2D`` (MicroMutableOpResolver's Add method)."""
    return op.title().replace("_", "")


def golden_clips(tflite: bytes, meta) -> list[dict]:
    """The golden clips: audio, reference features, TFLM window scores, clip scores, decisions.

    Parameters
    ----------
    tflite : bytes
        The model.
    meta : quantize.metadata.ModelMetadata
        Its metadata (front end, window, hop, thresholds).

    Returns
    -------
    list of dict
        One dict per clip with ``name``, ``audio`` (int16), ``features`` (int8 [frames, mels]),
        ``window_scores`` (int8 [windows, classes]), ``clip_scores``, ``decisions`` and sizes.
    """
    from model_dev.synth import synthesize_clip
    from quantize.runtime import clip_outputs

    cfg = meta.frontend
    fe = Frontend(cfg)
    w, h = meta.window_frames, meta.window_hop_frames
    clips = []
    for name, frames_of, index in GOLDEN:
        frames = frames_of(w, h)
        n = cfg.window_length + (frames - 1) * cfg.hop_length + GOLDEN_TAIL_SAMPLES
        seconds = -(-n // cfg.sample_rate) + 1
        audio = synthesize_clip(index, seed=0, duration_s=float(seconds))[0][:n]
        features = fe(audio)
        ((scores, clip_scores, decisions),) = clip_outputs(
            tflite, meta, [features], meta.arena_bytes
        )
        clips.append(
            {
                "name": name,
                "audio": audio,
                "n_samples": len(audio),
                "features": features.ravel(),
                "n_frames": len(features),
                "window_scores": scores.ravel(),
                "n_windows": len(scores),
                "clip_scores": clip_scores,
                "decisions": decisions.astype(np.uint8),
            }
        )
    return clips


def firmware(model_path: str | Path, out_dir: str | Path, build: str | None = None) -> Path:
    """Generate the C firmware package for one .tflite (with aedfw metadata).

    Parameters
    ----------
    model_path : str or Path
        Full-int8 .tflite written by ``aedfw quantize`` (metadata embedded).
    out_dir : str or Path
        Output folder (created; files that already hold the right bytes are left untouched).
    build : {"host", "cortex-m4"}, optional
        Also compile it with ``make``; ``cortex-m4`` then writes ``memory.json``.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    quantize.metadata.MetadataError
        No or invalid aedfw metadata (the message names the file).
    quantize.tflite_model.UnsupportedModelError
        An op the engine does not implement (named with its index).
    RuntimeError
        The build failed (with the compiler's messages).
    """
    from firmware_gen.engine import write_engine
    from quantize.convert import check_graph
    from quantize.metadata import read_metadata

    if build is not None and build not in TARGETS:
        raise ValueError(f"build target {build!r}: expected one of {', '.join(TARGETS)}")
    model_path, out = Path(model_path), Path(out_dir)
    meta = read_metadata(model_path)
    tflite = model_path.read_bytes()
    info = check_graph(tflite, str(model_path))
    out.mkdir(parents=True, exist_ok=True)
    write_frontend(meta.frontend, out)
    write_engine(model_path, out)

    proto = _write_proto(meta, out)
    inputs = {"model": meta.model_hash, "frontend_config": meta.frontend_hash}
    context = {
        "labels": meta.labels,
        "thresholds": meta.thresholds,
        "thresholds_q": meta.thresholds_q,
        "model_hash": meta.model_hash,
        "frontend_hash": meta.frontend_hash,
        "output_scale": repr(meta.output_scale),
        "output_zero_point": meta.output_zero_point,
        "window_frames": meta.window_frames,
        "hop_frames": meta.window_hop_frames,
        "clips": golden_clips(tflite, meta),
        "stack_bytes": STACK_BYTES,
        "arena_bytes": meta.arena_bytes,
        "data": np.frombuffer(tflite, dtype=np.uint8),
        "size": len(tflite),
        "ops": list(dict.fromkeys(_tflm_op_name(op) for op in info.ops)),
        "proto": bool(proto),
        "lib_sources": LIB_SOURCES,
        "app_sources": APP_SOURCES,
        "proto_sources": [p for p in proto if p.endswith(".c")],
    }
    for name, comment in RENDERED:
        write_if_changed(out / name, render(f"{name}.j2", inputs, comment, **context))
    if build is not None:
        build_firmware(out, build)
    _write_readme(out, meta, inputs, context)
    return out


def _sources_hash(out: Path) -> str:
    """sha256 over the package's sources (what memory.json was measured from)."""
    digest = hashlib.sha256()
    for path in sorted(out.iterdir()):
        if path.is_file() and path.suffix in (".c", ".h", ".ld") or path.name == "Makefile":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _write_readme(out: Path, meta, inputs: dict, context: dict) -> None:
    memory = None
    path = out / "memory.json"
    if path.exists():
        memory = json.loads(path.read_text())
        if memory.get("sources_sha256") != _sources_hash(out):
            memory = None  # measured from other sources: stale
    text = render("README.md.j2", inputs, "html", meta=meta, memory=memory, **context)
    write_if_changed(out / "README.md", text)


def build_firmware(
    out_dir: str | Path,
    target: str,
    *,
    selftest_only: bool | None = None,
    sanitize: bool = False,
) -> Path:
    """Compile a generated package with ``make`` and return the executable.

    Parameters
    ----------
    out_dir : str or Path
        Package folder written by :func:`firmware`.
    target : {"host", "cortex-m4"}
        ``cortex-m4`` also writes ``memory.json`` from the map file.
    selftest_only : bool, optional
        Build without the serial protocol (``-DAED_NO_PROTO``): the app prints the self-test
        line and stops. Default: only when the package has no protocol sources.
    sanitize : bool
        Host only: build with ASan and UBSan.

    Returns
    -------
    Path
        ``build/<target>[-selftest][-sanitize]/aed_app`` (``aed_app.elf`` for Cortex-M4).

    Raises
    ------
    RuntimeError
        A tool is missing or the build failed; the message carries make's output.
    """
    out = Path(out_dir)
    if target not in TARGETS:
        raise ValueError(f"build target {target!r}: expected one of {', '.join(TARGETS)}")
    tools = ["make", "gcc"] if target == "host" else ["make", "arm-none-eabi-gcc"]
    for tool in tools:
        if shutil.which(tool) is None:
            raise RuntimeError(f"building {target} needs {tool}; install it (make setup does)")
    if selftest_only is None:
        selftest_only = not list(out.glob("aed_proto*.c"))
    sanitize = sanitize and target == "host"
    args = ["make", "-C", str(out), target, f"SELFTEST_ONLY={int(selftest_only)}"]
    args.append(f"SANITIZE={int(sanitize)}")
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"make {target} failed in {out}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    suffix = "-selftest" * selftest_only + "-sanitize" * sanitize
    exe = out / "build" / f"{target}{suffix}" / ("aed_app" if target == "host" else "aed_app.elf")
    if target == "cortex-m4":
        report = memory_report(exe.with_suffix(".map"))
        report["elf"] = exe.relative_to(out).as_posix()
        report["sources_sha256"] = _sources_hash(out)
        write_if_changed(out / "memory.json", json.dumps(report, indent=2) + "\n")
    return exe


#: Map-file parts: object file stem -> (part of its code and read-only data, part of its RAM).
_PARTS = {
    "aed_model": ("model", "activations"),
    "aed_frontend": ("frontend", "frontend"),
    "aed_frontend_tables": ("tables", "frontend"),
    "aed_post": ("post", "post"),
    "aed_golden": ("selftest", "selftest"),
    "aed_proto": ("protocol", "protocol"),
    "aed_proto_frame": ("protocol", "protocol"),
}
_RAM_BASE = 0x20000000
_INPUT_RE = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)(?:\s+(\S.*?))?\s*$")
_CONT_RE = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_OUTPUT_RE = re.compile(r"^(\.\S+)(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+))?")


def _map_sections(map_text: str) -> list[tuple[str, str, int, int, str]]:
    """Input sections of a GNU ld map: (output section, input section, address, size, file)."""
    body = map_text.split("Linker script and memory map", 1)[-1]
    rows, output, pending = [], "", None
    for line in body.splitlines():
        if line.startswith("OUTPUT("):
            break
        m = _OUTPUT_RE.match(line)
        if m:
            output, pending = m.group(1), None
            continue
        if pending is not None:
            m = _CONT_RE.match(line)
            if m:
                rows.append((output, pending, int(m.group(1), 16), int(m.group(2), 16), m[3]))
            pending = None
            continue
        m = _INPUT_RE.match(line)
        if m:
            rows.append((output, m[1], int(m[2], 16), int(m[3], 16), (m[4] or "").strip()))
        elif re.match(r"^ \.\S+$", line):
            pending = line.strip()  # long name: address, size and file on the next line
    return rows


def _part(section: str, file: str) -> tuple[str, str]:
    """(flash part, RAM part) of one input section."""
    if section == "*fill*":
        return "padding", "padding"
    if ".a(" in file:
        return "libc", "libc"
    stem = Path(file).stem
    code, ram = _PARTS.get(stem, ("app", "app"))
    if stem == "aed_model" and section.startswith(".rodata"):
        code = "weights"
    elif section.startswith(".text") and code in ("model", "frontend", "post"):
        code = f"code_{code}"
    elif code == "frontend":
        code = "tables"
    elif code == "post":
        code = "tables"  # labels and thresholds
    return code, ram


def memory_report(map_path: str | Path) -> dict:
    """Flash and RAM per part of a Cortex-M4 build, from its GNU ld map file.

    Parameters
    ----------
    map_path : str or Path
        ``aed_app.map`` written by ``make cortex-m4``.

    Returns
    -------
    dict
        ``flash`` (``weights``, ``tables``, ``code_frontend``, ``code_model``, ``code_post``,
        ``selftest`` (golden vectors and self-test code), ``app``, ``protocol``, ``libc``,
        ``padding``, ``total``), ``ram`` (``activations``, ``frontend``, ``selftest``, ``app``,
        ``protocol``, ``stack``, ..., ``total``) and ``library`` (the front end, engine and
        post-processing alone: ``weights_tables_code`` flash bytes and ``activations``), in
        bytes. ``.data`` counts in both (initial values in flash, variables in RAM).
    """
    map_path = Path(map_path)
    flash: dict[str, int] = defaultdict(int)
    ram: dict[str, int] = defaultdict(int)
    for output, section, address, size, file in _map_sections(map_path.read_text()):
        if size == 0:
            continue
        code_part, ram_part = _part(section, file)
        if output == ".stack":
            ram["stack"] += size
        elif output == ".data":
            flash[code_part] += size
            ram[ram_part] += size
        elif address >= _RAM_BASE:
            ram[ram_part] += size
        else:
            flash[code_part] += size
    flash = dict(sorted(flash.items())) | {"total": sum(flash.values())}
    ram = dict(sorted(ram.items())) | {"total": sum(ram.values())}
    lib = sum(flash.get(k, 0) for k in ("weights", "tables", "code_frontend", "code_model"))
    lib += flash.get("code_post", 0)
    return {
        "target": "cortex-m4",
        "map": map_path.name,
        "flash": flash,
        "ram": ram,
        "library": {"weights_tables_code": lib, "activations": ram.get("activations", 0)},
    }


def deployable_bytes(out_dir: str | Path) -> int:
    """Weights + tables + code bytes (front end, engine, post-processing) of the Cortex-M4 build,
    from ``memory.json`` (for benchmarks; build with ``--build cortex-m4`` first)."""
    path = Path(out_dir) / "memory.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no memory report; build with --build cortex-m4 first")
    return int(json.loads(path.read_text())["library"]["weights_tables_code"])


def parse_selftest(text: str) -> dict:
    """The fields of the app's ``aedfw selftest ...`` line (``status``, ``passed``, ``clips``,
    ``model``, ``fe``, ``frames``, ``fe_cycles``, ``windows``, ``model_cycles``, ``stack``,
    ``bad``); raises RuntimeError when ``text`` holds no such line."""
    m = SELFTEST_RE.search(text)
    if m is None:
        raise RuntimeError(f"no self-test line in the output: {text[-500:]!r}")
    result: dict = {"status": m[1], "passed": int(m[2]), "clips": int(m[3]), "bad": []}
    for key, value in re.findall(r"(\w+)=(\S+)", m[4]):
        if key == "bad":
            result["bad"].append(value)
        else:
            result[key] = int(value) if value.isdigit() else value
    return result


def qemu_command(elf: str | Path, serial: str = "stdio", icount: int | None = 0) -> list[str]:
    """``qemu-system-arm`` arguments booting ``elf`` on mps2-an386 with UART0 on ``serial``.

    ``icount=0`` makes one instruction one virtual nanosecond, so a SysTick tick (25 MHz) is 40
    instructions; ``None`` runs in real time.
    """
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none"]
    cmd += ["-serial", serial, "-kernel", str(elf)]
    return cmd + (["-icount", f"shift={icount}"] if icount is not None else [])


def run_selftest(exe: str | Path, timeout: float = 60.0) -> dict:
    """Run a built app until it prints its self-test line and return :func:`parse_selftest`.

    A host executable runs with stdin closed (the protocol loop then ends); a Cortex-M4 ELF boots
    in QEMU (``-icount shift=0``), which is stopped once the line is out.

    Parameters
    ----------
    exe : str or Path
        ``build/host*/aed_app`` or ``build/cortex-m4*/aed_app.elf``.
    timeout : float
        Seconds to wait for the line.
    """
    exe = Path(exe)
    if exe.suffix == ".elf":
        if shutil.which("qemu-system-arm") is None:
            raise RuntimeError("running the Cortex-M4 image needs qemu-system-arm")
        cmd = qemu_command(exe)
    else:
        cmd = [str(exe)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    text, deadline = b"", time.monotonic() + timeout
    try:
        os.set_blocking(proc.stdout.fileno(), False)
        while b"\n" not in text.partition(b"aedfw selftest")[2]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{exe}: no self-test line within {timeout:.0f} s: {text!r}")
            chunk = proc.stdout.read()
            if chunk:
                text += chunk
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return parse_selftest(text.decode(errors="replace"))


#: Instructions per SysTick tick under ``qemu -icount shift=0`` (1 GHz virtual vs 25 MHz).
QEMU_INSTRUCTIONS_PER_TICK = 40


def cortex_m4_instructions(out_dir: str | Path, timeout: float = 120.0) -> dict:
    """Front-end and model instructions on the Cortex-M4 under QEMU ``-icount shift=0``.

    Builds the self-test-only image, boots it and converts the SysTick counts of its self-test
    (all golden clips) into instructions (:data:`QEMU_INSTRUCTIONS_PER_TICK` per tick; the tick
    resolution is that many instructions).

    Returns
    -------
    dict
        ``frontend_per_frame``, ``model_per_inference``, and ``per_second_one_window`` (front end
        for one second of audio plus one inference) and ``per_second_at_hop`` (plus one
        inference per window hop), in instructions.
    """
    out = Path(out_dir)
    result = run_selftest(build_firmware(out, "cortex-m4", selftest_only=True), timeout)
    fe = result["fe_cycles"] * QEMU_INSTRUCTIONS_PER_TICK / result["frames"]
    model = result["model_cycles"] * QEMU_INSTRUCTIONS_PER_TICK / result["windows"]
    hop = _define(out / "aed_post.h", "AED_POST_HOP_FRAMES")
    sr = _define(out / "aed_frontend.h", "AED_FE_SAMPLE_RATE")
    frames_per_second = sr / _define(out / "aed_frontend.h", "AED_FE_HOP_LENGTH")
    return {
        "frontend_per_frame": round(fe),
        "model_per_inference": round(model),
        "per_second_one_window": round(fe * frames_per_second + model),
        "per_second_at_hop": round(fe * frames_per_second + model * frames_per_second / hop),
    }


def _define(header: Path, name: str) -> int:
    m = re.search(rf"^#define {name} (\d+)", header.read_text(), re.M)
    if m is None:
        raise RuntimeError(f"{header}: no #define {name}")
    return int(m[1])
