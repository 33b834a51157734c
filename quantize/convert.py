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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from model_dev.frontend import FrontendConfig
from quantize.runtime import quiet_fds
from quantize.tflite_model import (
    SUPPORTED_OPS,
    GraphError,
    check_supported,
    read_tflite,
)

if TYPE_CHECKING:
    from model_dev.torch_net import TorchNet

#: DESIGN contract 3: the ops TFLM and the C engine both implement.
ALLOWED_OPS = SUPPORTED_OPS
#: Windows of the representative set also used for the drift check (it runs window by window).
DRIFT_WINDOWS = 16


def schema():
    """The TFLite flatbuffer schema module (object API: ``ModelT``, ``BuiltinOperator``...)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


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
        Unreadable flatbuffer, anything :func:`~quantize.tflite_model.check_supported` refuses
        (ops outside contract 3 named with their index, non-int8 activations, options), a float
        tensor (named), or convolution weights that are not per-channel.
    """
    model = read_tflite(tflite, source)
    for t in model.tensors:
        if t.dtype.startswith(("float", "bfloat")):
            raise GraphError(f"{source}: tensor {t.name!r} is {t.dtype}; must be int8/int32")
    check_supported(model)
    for op in model.ops:
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = model.tensors[op.inputs[1]]
            cout = w.shape[3] if op.opcode == "DEPTHWISE_CONV_2D" else w.shape[0]
            if len(w.quant.scale) != cout:
                raise GraphError(
                    f"{source}: op {op.index} ({op.opcode}) weights {w.name!r} have "
                    f"{len(w.quant.scale)} scale(s); expected per-channel ({cout})"
                )
    x, y = model.input, model.output
    types = Counter(t.dtype.upper() for t in model.tensors)
    return GraphInfo(
        tuple(op.opcode for op in model.ops),
        x.shape,
        y.shape,
        x.scale,
        x.zero_point,
        y.scale,
        y.zero_point,
        dict(sorted(types.items())),
    )


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
    with quiet_fds(1, 2), contextlib.redirect_stdout(io.StringIO()):
        return bytes(conv.convert())


def convert(model: TorchNet, calibration_q: np.ndarray, frontend: FrontendConfig) -> bytes:
    """Convert a torch student to a checked full-int8 .tflite flatbuffer.

    Parameters
    ----------
    model : TorchNet
        A :func:`~model_dev.torch_net.build_torch` model (weights as trained; eval mode is set).
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
    # torch and Keras only here: checking a model's graph (validation) needs neither
    from quantize.keras_mirror import build_keras, check_drift

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
