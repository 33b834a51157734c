"""The firmware package: everything a firmware engineer takes home, generated from one .tflite.

:func:`firmware` reads the model's aedfw metadata and writes a folder laid out by job::

    aed/include/, aed/src/   the portable library: front end, engine, post-processing, protocol
    port/host/               platform hooks on stdin/stdout (a software device on a pty)
    port/mps2_an386/         platform hooks, startup and linker script for Cortex-M4 (QEMU)
    app/                     reference firmware: self-test at boot, then the serial protocol
    golden/                  golden vectors: audio, features and scores the device must produce
    tflm/                    model array and op resolver for TensorFlow Lite Micro users
    aed.mk, CMakeLists.txt   the library for an existing Make or CMake project
    Makefile, README.md      reference build (host, cortex-m4, qemu) and what to copy for what

Hand-written C is copied verbatim from ``firmware_gen/csrc/``; templates generate only what
depends on the model or the front end (tables, engine, configuration headers, golden vectors,
TFLM files, README). Everything is deterministic: regenerating gives identical bytes.
Building and memory reports are :mod:`firmware_gen.build`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from firmware_gen.engine import write_engine
from firmware_gen.frontend_c import write_frontend
from firmware_gen.golden import golden_clips
from firmware_gen.proto_c import ProtoModel, write_proto
from firmware_gen.render import INCLUDE_DIR, SOURCE_DIR, c_string, copy_source, write_rendered
from model_dev.fileio import atomic_dir

#: Hand-written files every package gets (besides the front end's and the protocol's).
COMMON_SOURCES = (
    f"{INCLUDE_DIR}/aed_platform.h",
    "port/host/aed_platform_host.c",
    "port/mps2_an386/aed_platform_mps2.c",
    "port/mps2_an386/aed_startup_m4.c",
    "port/mps2_an386/mps2_an386.ld",
    "app/aed_app.c",
    "app/aed_selftest.h",
    "app/aed_selftest.c",
    "golden/aed_golden.h",
    "aed.mk",
    "CMakeLists.txt",
    "Makefile",
)
#: The device-side post-processing of each task (``quantize.tasks``), hand-written: window
#: assembly (``aed_post``) for every task, the anomaly scores (``aed_anomaly``; the causal
#: predictor's and the ID classifier's in ``aed_anomaly_methods``) for anomaly models.
TASK_SOURCES = {
    "tagging": (f"{INCLUDE_DIR}/aed_post.h", f"{SOURCE_DIR}/aed_post.c"),
    "anomaly": (
        f"{INCLUDE_DIR}/aed_post.h",
        f"{SOURCE_DIR}/aed_post.c",
        f"{INCLUDE_DIR}/aed_anomaly.h",
        f"{SOURCE_DIR}/aed_anomaly.c",
        f"{SOURCE_DIR}/aed_anomaly_methods.c",
    ),
}


def _anomaly_defines(meta, output_shape: tuple[int, ...]) -> dict:
    """What ``aed_anomaly.c`` needs of an anomaly model: its method, the requantisation of the
    output to the input scale (as :func:`quantize.anomaly.requantize`), the zero points and the
    threshold in integer score units; and what the causal predictor's and the ID classifier's
    scores need (:func:`quantize.anomaly_scores.device_defines`: rows, tables)."""
    from firmware_gen.fixed_point import quantize_multiplier
    from quantize.anomaly_scores import device_defines

    thr = meta.thresholds_q[0]
    if not 0 <= thr < 2**32:
        raise ValueError(f"thresholds_q {list(meta.thresholds_q)}: the device compares uint32")
    method = {"dense_ae_small": "dense_ae"}.get(meta.method, meta.method)
    m, shift = quantize_multiplier(
        float(np.float64(meta.output_scale) / np.float64(meta.input_scale))
    )
    return {
        "AED_ANOMALY_METHOD": meta.method,
        f"AED_ANOMALY_METHOD_{method.upper()}": 1,
        "AED_ANOMALY_MACHINE_TYPE": meta.machine_type,
        "AED_ANOMALY_REQUANT_MULT": m,
        "AED_ANOMALY_REQUANT_SHIFT": shift,
        "AED_ANOMALY_INPUT_ZERO_POINT": meta.input_zero_point,
        "AED_ANOMALY_OUTPUT_ZERO_POINT": meta.output_zero_point,
        "AED_ANOMALY_THRESHOLD_Q": thr,
    } | device_defines(meta, output_shape)


#: ``#define``s of each task's device-side post-processing in ``aed_config.h``, from the
#: model's metadata and output shape: name -> int, string or list of ints (a C initialiser).
TASK_DEFINES = {"tagging": lambda meta, output_shape: {}, "anomaly": _anomaly_defines}


def _c_value(value) -> str:
    """A ``#define`` body: a C string literal, an initialiser ``{ a, b }`` or an integer."""
    if isinstance(value, str):
        return c_string(value)
    if isinstance(value, list | tuple | np.ndarray):
        return "{ " + ", ".join(str(int(v)) for v in value) + " }"
    return str(int(value)) if int(value) >= 0 else f"({int(value)})"


#: Generated from the model's metadata: (package path, header comment style).
GENERATED = (
    (f"{INCLUDE_DIR}/aed_config.h", "c"),
    ("golden/aed_golden.c", "c"),
    ("tflm/model_data.h", "c"),
    ("tflm/model_data.cc", "c"),
    ("tflm/gen_micro_mutable_op_resolver.h", "c"),
    ("README.md", "html"),
)


def _tflm_op_name(op: str) -> str:
    """``DEPTHWISE_CONV_2D`` -> ``DepthwiseConv2D`` (MicroMutableOpResolver's Add method)."""
    return op.title().replace("_", "")


def firmware(
    model_path: str | Path, out_dir: str | Path, *, golden_audio: np.ndarray | None = None
) -> Path:
    """Generate the C firmware package for one .tflite (with aedfw metadata).

    Parameters
    ----------
    model_path : str or Path
        Full-int8 .tflite written by ``aedfw quantize`` (metadata embedded).
    out_dir : str or Path
        Output folder. The package is generated in a temporary folder and moved into place only
        when complete: a failure leaves ``out_dir`` as it was. In an existing package only the
        files whose bytes change are replaced.
    golden_audio : np.ndarray, optional
        int16 mono audio the golden clips are cut from (default:
        :func:`firmware_gen.golden.test_signal`).

    Returns
    -------
    Path
        ``out_dir``. Build it with :func:`firmware_gen.build.build_firmware` or ``make``.

    Raises
    ------
    quantize.metadata.MetadataError
        No or invalid aedfw metadata, or a field that does not fit the graph (labels, window,
        mel bands, quantisation, front-end zero point and scale, arena); the message names the
        file, the field and both values (:func:`quantize.metadata.check_model`).
    quantize.tflite_model.UnsupportedModelError
        An op the engine does not implement (named with its index).
    ValueError
        A task without device post-processing here.
    """
    from quantize.metadata import check_model

    model_path, out = Path(model_path), Path(out_dir)
    meta, tflite, info = check_model(model_path)
    if meta.task not in TASK_SOURCES:
        raise ValueError(f"{model_path}: no device post-processing for task {meta.task!r}")
    clips = golden_clips(tflite, meta, golden_audio)

    def fill(tmp: Path) -> None:
        _write_package(tmp, model_path, tflite, meta, info, clips)

    if out.is_dir() and any(out.iterdir()):
        _update(out, fill)
    else:
        atomic_dir(out, fill)
    return out


def _write_package(out: Path, model_path: Path, tflite: bytes, meta, info, clips) -> None:
    """Every file of the package into the (empty) folder ``out``."""
    write_frontend(meta.frontend, out)
    write_engine(model_path, out)
    write_proto(out, meta.frontend, ProtoModel.from_metadata(meta))
    for name in (*COMMON_SOURCES, *TASK_SOURCES[meta.task]):
        copy_source(name, out)
    context = {
        "meta": meta,
        "labels": meta.labels,
        "thresholds": meta.thresholds,
        "thresholds_q": meta.thresholds_q,
        "task": meta.task,
        "task_defines": {
            k: _c_value(v)
            for k, v in TASK_DEFINES[meta.task](meta, tuple(info.output_shape)).items()
        },
        "score": meta.score,
        "model_hash": meta.model_hash,
        "frontend_hash": meta.frontend_hash,
        "output_scale": repr(meta.output_scale),
        "output_zero_point": meta.output_zero_point,
        "window_frames": meta.window_frames,
        "hop_frames": meta.window_hop_frames,
        "clips": clips,
        "n_golden": len(clips),
        "arena_bytes": meta.arena_bytes,
        "data": np.frombuffer(tflite, dtype=np.uint8),
        "size": len(tflite),
        "ops": list(dict.fromkeys(_tflm_op_name(op) for op in info.ops)),
    }
    inputs = {"model": meta.model_hash, "frontend_config": meta.frontend_hash}
    for name, comment in GENERATED:
        write_rendered(out, name, inputs, comment, **context)


def _update(out: Path, fill) -> None:
    """Regenerate an existing package: the whole package is written to a temporary folder
    first; only then are the files whose bytes changed moved over the old ones (each rename is
    atomic), so a failure leaves the previous package, and unchanged files keep their mtimes
    (``make`` rebuilds only what changed; ``build/`` stays)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        for new in sorted(p for p in tmp.rglob("*") if p.is_file()):
            old = out / new.relative_to(tmp)
            if not old.is_file() or old.read_bytes() != new.read_bytes():
                old.parent.mkdir(parents=True, exist_ok=True)
                os.replace(new, old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
