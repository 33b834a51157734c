"""Torch student -> full-int8 TFLite flatbuffer, and the checks every converted graph must pass.

Route (DESIGN "Conversion route"): :func:`~quantize.keras_mirror.build_keras` rebuilds the student
from its block spec with the torch weights (BatchNorm folded), :func:`~quantize.keras_mirror.
check_drift` proves float equivalence, and ``tf.lite.TFLiteConverter`` quantises with a
representative set of real front-end windows: int8 input and output, per-channel int8 weights,
int32 biases.

Input format by construction (contract 2)
-----------------------------------------
The converter derives the input tensor's scale and zero point from the range of the
representative data. The representative set therefore always contains one window (a copy of the
first calibration window) with the two int8 extremes -128 and 127 in one cell each, so the
observed float range is exactly the front end's ``[(-128 - zp) * s, (127 - zp) * s]`` and the
converter's ``(max - min) / 255`` and ``-128 - min / scale`` give back the front end's scale and
zero point. :func:`check_io` then verifies them bit for bit (the scale as float32) and fails
naming both values otherwise.

Flatbuffers are read with ``ai_edge_litert.schema_py_generated`` (the LiteRT schema; no
TensorFlow import needed).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from model_dev.arch import TorchNet
from model_dev.frontend import FrontendConfig
from quantize.keras_mirror import build_keras, check_drift

#: DESIGN contract 3: the ops TFLM and the C engine both implement.
ALLOWED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MEAN",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "PAD",
    "RESHAPE",
    "ADD",
    "LOGISTIC",
)
TFLITE_IDENTIFIER = b"TFL3"
#: Tensor types that must not remain in a full-int8 graph.
FLOAT_TYPES = ("FLOAT16", "FLOAT32", "FLOAT64", "BFLOAT16")
#: Windows of the representative set also used for the drift check (it runs window by window).
DRIFT_WINDOWS = 16


class GraphError(ValueError):
    """A converted graph breaks DESIGN contract 2 or 3 (op, tensor type or I/O format)."""


def schema():
    """The TFLite flatbuffer schema module (object API: ``ModelT``, ``BuiltinOperator``...)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_")}


@dataclass(frozen=True)
class GraphInfo:
    """Summary of a converted graph (see :func:`check_graph`).

    Attributes
    ----------
    ops : tuple of str
        Builtin op names in execution order.
    input_shape, output_shape : tuple of int
    input_scale, output_scale : float
        Quantisation scales (float32 values as Python floats).
    input_zero_point, output_zero_point : int
    tensor_types : dict
        Tensor type name -> count.
    """

    ops: tuple[str, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    tensor_types: dict[str, int]


def _quant(tensor) -> tuple[list[float], list[int]]:
    q = tensor.quantization
    if q is None or q.scale is None:
        return [], []
    return [float(s) for s in q.scale], [int(z) for z in q.zeroPoint]


def check_graph(tflite: bytes, source: str = "model") -> GraphInfo:
    """List the ops of a .tflite and enforce DESIGN contract 3 and full-int8 tensors.

    Parameters
    ----------
    tflite : bytes
        The flatbuffer.
    source : str
        Name for error messages (a file name).

    Returns
    -------
    GraphInfo
        Ops, I/O shapes and quantisation.

    Raises
    ------
    GraphError
        Not one subgraph with one int8 input and output, an op outside :data:`ALLOWED_OPS`
        (named with its index), a float tensor (named), or conv/dense weights that are not
        int8 (per-channel for convolutions) with an int32 bias.
    """
    fb = schema()
    if bytes(tflite[4:8]) != TFLITE_IDENTIFIER:
        raise GraphError(f"{source}: not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = fb.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    except Exception as exc:  # the flatbuffer reader raises anything on garbage
        raise GraphError(f"{source}: not a TFLite flatbuffer ({exc!r})") from None
    op_names, type_names = _names(fb.BuiltinOperator), _names(fb.TensorType)
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise GraphError(f"{source}: expected 1 subgraph, found {len(model.subgraphs or [])}")
    g = model.subgraphs[0]
    tensors = g.tensors or []
    ops = []
    for i, op in enumerate(g.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        if name not in ALLOWED_OPS:
            raise GraphError(
                f"{source}: op {i} is {name}, outside DESIGN contract 3 (allowed: "
                f"{', '.join(ALLOWED_OPS)})"
            )
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, b = tensors[op.inputs[1]], tensors[op.inputs[2]] if len(op.inputs) > 2 else None
            scales, _ = _quant(w)
            cout = int(w.shape[3] if name == "DEPTHWISE_CONV_2D" else w.shape[0])
            per_channel = name == "FULLY_CONNECTED" or len(scales) == cout
            if type_names[w.type] != "INT8" or not scales or not per_channel:
                raise GraphError(
                    f"{source}: op {i} ({name}) weights {w.name.decode()!r} are "
                    f"{type_names[w.type]} with {len(scales)} scale(s); expected int8, "
                    f"per-channel ({cout})"
                )
            if b is not None and type_names[b.type] != "INT32":
                raise GraphError(
                    f"{source}: op {i} ({name}) bias {b.name.decode()!r} is "
                    f"{type_names[b.type]}, expected INT32"
                )
        ops.append(name)
    types: dict[str, int] = {}
    for t in tensors:
        kind = type_names.get(t.type, str(t.type))
        if kind in FLOAT_TYPES:
            raise GraphError(f"{source}: tensor {t.name.decode()!r} is {kind}; must be int8/int32")
        types[kind] = types.get(kind, 0) + 1
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise GraphError(
            f"{source}: expected 1 input and 1 output, found {len(g.inputs)} and {len(g.outputs)}"
        )
    io = []
    for role, idx in (("input", g.inputs[0]), ("output", g.outputs[0])):
        t = tensors[idx]
        scales, zps = _quant(t)
        if type_names[t.type] != "INT8" or len(scales) != 1:
            raise GraphError(
                f"{source}: {role} {t.name.decode()!r} is {type_names[t.type]} with "
                f"{len(scales)} scale(s); expected int8, per-tensor"
            )
        io.append((tuple(int(d) for d in t.shape), scales[0], zps[0]))
    (in_shape, in_s, in_z), (out_shape, out_s, out_z) = io
    return GraphInfo(tuple(ops), in_shape, out_shape, in_s, in_z, out_s, out_z, types)


def check_io(info: GraphInfo, frontend: FrontendConfig, source: str = "model") -> None:
    """Contract 2: the model input's scale and zero point are the front end's, exactly.

    Raises
    ------
    GraphError
        Naming both scales and zero points when they differ (the scale compared as float32,
        the precision of the flatbuffer field).
    """
    want_s, want_z = float(np.float32(frontend.input_scale)), frontend.input_zero_point
    if info.input_scale != want_s or info.input_zero_point != want_z:
        raise GraphError(
            f"{source}: model input scale/zero point {info.input_scale!r}/"
            f"{info.input_zero_point} differ from the front end's {want_s!r}/{want_z} "
            f"(FrontendConfig {frontend.short_hash}); the front end's int8 output must be the "
            "model input unchanged (DESIGN contract 2)"
        )


def dequantize(q: np.ndarray, frontend: FrontendConfig) -> np.ndarray:
    """int8 front-end features -> float32 model input ``(q - zero_point) * scale``."""
    zp, scale = frontend.input_zero_point, np.float32(frontend.input_scale)
    return ((np.asarray(q, dtype=np.float32) - zp) * scale).astype(np.float32)


def representative_set(calibration_q: np.ndarray) -> np.ndarray:
    """Calibration windows plus the extremes window (see the module docstring), int8."""
    cal = np.asarray(calibration_q)
    if cal.ndim != 3 or cal.dtype != np.int8 or len(cal) == 0:
        raise ValueError(
            f"calibration windows must be int8 [N >= 1, frames, mels], got {cal.dtype} {cal.shape}"
        )
    extremes = cal[0].copy()
    extremes[0, 0], extremes[-1, -1] = -128, 127
    return np.concatenate([cal, extremes[None]])


@contextmanager
def _quiet_fd(*fds: int) -> Iterator[None]:
    """Silence C-level file descriptors (default stderr): the converter's and TFLM's chatter."""
    fds = fds or (2,)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "wb") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
        yield
    finally:
        for fd, old in zip(fds, saved, strict=True):
            os.dup2(old, fd)
            os.close(old)


def keras_to_tflite(keras_model, representative: np.ndarray) -> bytes:
    """Full-int8 conversion of a Keras model.

    Parameters
    ----------
    keras_model : keras.Model
        Float model, input ``[1, T, F, 1]``.
    representative : np.ndarray
        Float32 windows ``[N, T, F]`` for calibration.

    Returns
    -------
    bytes
        The flatbuffer (not yet checked).
    """
    import tensorflow as tf

    def data() -> Iterator[list[np.ndarray]]:
        for w in representative:
            yield [w[None, ..., None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = data
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with _quiet_fd(1, 2), contextlib.redirect_stdout(io.StringIO()):
        return bytes(conv.convert())


def convert(model: TorchNet, calibration_q: np.ndarray, frontend: FrontendConfig) -> bytes:
    """Convert a torch student to a checked full-int8 .tflite flatbuffer.

    Parameters
    ----------
    model : TorchNet
        A :func:`~model_dev.arch.build_torch` model (weights as trained; eval mode is set).
    calibration_q : np.ndarray
        int8 ``[N, window_frames, n_mels]`` front-end windows (the representative set; real
        training data).
    frontend : FrontendConfig
        The front end that produced them; fixes the input scale and zero point.

    Returns
    -------
    bytes
        The flatbuffer, without aedfw metadata (:func:`quantize.metadata.write_metadata` adds
        it). Input int8 ``[1, frames, mels, 1]`` with the front end's scale/zero point, output
        int8 ``[1, n_classes]`` probabilities (LOGISTIC: scale 1/256, zero point -128).

    Raises
    ------
    quantize.keras_mirror.DriftError
        The Keras mirror differs from torch by more than 1e-4.
    GraphError
        Forbidden op, float tensor, wrong I/O type or input format.
    """
    return convert_checked(model, calibration_q, frontend)[0]


def convert_checked(
    model: TorchNet, calibration_q: np.ndarray, frontend: FrontendConfig
) -> tuple[bytes, GraphInfo, float]:
    """:func:`convert`, also returning the graph summary and the drift (max |Keras - torch|
    of the probabilities)."""
    spec = model.spec
    rep_q = representative_set(calibration_q)
    if rep_q.shape[1:] != (spec.window_frames, spec.n_mels):
        raise ValueError(
            f"calibration windows {rep_q.shape[1:]} do not fit {spec.name!r} "
            f"({spec.window_frames} frames x {spec.n_mels} mels)"
        )
    model.eval()
    rep = dequantize(rep_q, frontend)
    keras_model = build_keras(spec, model)
    drift = check_drift(keras_model, model, rep[-DRIFT_WINDOWS:])
    check_drift(build_keras(spec, model, logits=True), model, rep[-DRIFT_WINDOWS:])
    tflite = keras_to_tflite(keras_model, rep)
    info = check_graph(tflite, f"converted {spec.name}")
    check_io(info, frontend, f"converted {spec.name}")
    want_in = (1, spec.window_frames, spec.n_mels, 1)
    if info.input_shape != want_in or info.output_shape != (1, spec.n_classes):
        raise GraphError(
            f"converted {spec.name}: I/O shapes {info.input_shape} -> {info.output_shape}, "
            f"expected {want_in} -> {(1, spec.n_classes)}"
        )
    return tflite, info, drift
