"""Read a .tflite flatbuffer into a small typed graph, and check it against DESIGN contract 3.

The flatbuffer is parsed with the schema module that ``ai_edge_litert`` ships
(``schema_py_generated``, object API), so no TensorFlow import is needed. :func:`read_tflite`
accepts any model; :func:`load_supported` additionally refuses, with
:class:`UnsupportedModelError` naming the op and its index, anything the C engine and TFLM do
not both implement: ops outside CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MEAN,
AVERAGE_POOL_2D, MAX_POOL_2D, PAD, RESHAPE, ADD, LOGISTIC; non-int8 activations; options such
as dilation != 1 or fused activations other than NONE/RELU/RELU6.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as fb

SUPPORTED_OPS = (
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
ACTIVATIONS = {0: "NONE", 1: "RELU", 3: "RELU6"}
PADDINGS = {fb.Padding.SAME: "SAME", fb.Padding.VALID: "VALID"}

_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
_DTYPES = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
_NUMPY = {"int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8", "float32": "<f4"}


TFLITE_IDENTIFIER = b"TFL3"


class GraphError(ValueError):
    """A .tflite graph is unreadable or breaks DESIGN contract 2 or 3."""


class TFLiteFormatError(GraphError):
    """The file is not a readable .tflite flatbuffer."""


class UnsupportedModelError(GraphError):
    """The model uses an op, type or option outside DESIGN contract 3."""


@dataclass(frozen=True)
class Quant:
    """Affine quantisation of a tensor.

    Attributes
    ----------
    scale : tuple of float
        float32 scales (as Python floats, exact); one per channel when per-axis.
    zero_point : tuple of int
        Zero points, same length as ``scale``.
    axis : int
        Quantised dimension for per-axis quantisation.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        """True when there is more than one scale."""
        return len(self.scale) > 1


@dataclass(frozen=True)
class Tensor:
    """One tensor of the graph; ``data`` holds the constant buffer (None for activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None
    data: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def scale(self) -> float:
        """Per-tensor scale (the first one)."""
        assert self.quant is not None
        return self.quant.scale[0]

    @property
    def zero_point(self) -> int:
        """Per-tensor zero point (the first one)."""
        assert self.quant is not None
        return self.quant.zero_point[0]


@dataclass(frozen=True)
class Op:
    """One operator: builtin name, tensor indices (-1 = absent optional input), options."""

    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict


@dataclass(frozen=True)
class TFLiteModel:
    """The single subgraph of a .tflite model."""

    path: Path
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def input(self) -> Tensor:
        """The (single) graph input."""
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> Tensor:
        """The (single) graph output."""
        return self.tensors[self.outputs[0]]

    def op_names(self) -> list[str]:
        """Distinct op names, in order of first use."""
        return list(dict.fromkeys(op.opcode for op in self.ops))


def _options(op: fb.OperatorT) -> dict:
    opts = op.builtinOptions
    if opts is None:
        return {}
    return {k: v for k, v in vars(opts).items() if isinstance(v, (bool, int, float))}


def _buffer(buf: fb.BufferT, raw: bytes) -> bytes | None:
    if buf.data is not None and len(buf.data):
        return np.asarray(buf.data, dtype=np.uint8).tobytes()
    if buf.offset and buf.size:  # large-model layout: data outside the flatbuffer
        return raw[buf.offset : buf.offset + buf.size]
    return None


def read_tflite(path: str | Path | bytes, name: str = "model") -> TFLiteModel:
    """Parse a .tflite file into a :class:`TFLiteModel` (any ops; no support check).

    Parameters
    ----------
    path : str, Path or bytes
        The .tflite file, or the flatbuffer itself.
    name : str
        Name for error messages when ``path`` is bytes.

    Returns
    -------
    TFLiteModel
        Tensors (with constant data), ops (with options) and graph inputs/outputs.

    Raises
    ------
    TFLiteFormatError
        When the file is not a TFLite flatbuffer or has more than one subgraph.
    """
    if isinstance(path, (bytes, bytearray)):
        raw, path = bytes(path), Path(name)
    else:
        path = Path(path)
        raw = path.read_bytes()
    if len(raw) < 8 or raw[4:8] != TFLITE_IDENTIFIER:
        raise TFLiteFormatError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        model = fb.ModelT.InitFromPackedBuf(raw, 0)
    except Exception as exc:  # the generated parser raises assorted errors on corrupt input
        raise TFLiteFormatError(f"{path}: corrupt TFLite flatbuffer ({exc!r})") from None
    if not model.subgraphs or len(model.subgraphs) != 1:
        n = len(model.subgraphs or [])
        raise TFLiteFormatError(f"{path}: expected exactly one subgraph, found {n}")
    graph = model.subgraphs[0]
    tensors = []
    for i, t in enumerate(graph.tensors or []):
        dtype = _DTYPES.get(t.type, f"type{t.type}")
        q = t.quantization
        quant = None
        if q is not None and q.scale is not None and len(q.scale):
            zps = q.zeroPoint if q.zeroPoint is not None else [0] * len(q.scale)
            quant = Quant(
                tuple(float(np.float32(s)) for s in q.scale),
                tuple(int(z) for z in zps),
                int(q.quantizedDimension),
            )
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        data = None
        raw_buf = _buffer(model.buffers[t.buffer], raw) if model.buffers else None
        if raw_buf is not None and dtype in _NUMPY:
            data = np.frombuffer(raw_buf, dtype=_NUMPY[dtype]).reshape(shape)
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
        tensors.append(Tensor(i, name, shape, dtype, quant, data))
    ops = []
    for i, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.customCode
            name = f"CUSTOM({custom.decode() if isinstance(custom, bytes) else custom})"
        ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else ()))
        outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else ()))
        ops.append(Op(i, name, ins, outs, _options(op)))
    return TFLiteModel(
        path,
        tuple(tensors),
        tuple(ops),
        tuple(int(x) for x in graph.inputs),
        tuple(int(x) for x in graph.outputs),
    )


# --------------------------------------------------------------------------------------------
# Contract-3 check
# --------------------------------------------------------------------------------------------
def _refuse(model: TFLiteModel, op: Op | None, why: str) -> UnsupportedModelError:
    where = f"op {op.index} ({op.opcode})" if op is not None else "model"
    return UnsupportedModelError(f"{model.path}: {where}: {why}")


def _check_act_tensor(model: TFLiteModel, op: Op | None, t: Tensor, role: str) -> None:
    if t.dtype != "int8":
        raise _refuse(model, op, f"{role} tensor {t.name!r} is {t.dtype}, only int8 is supported")
    if t.quant is None or t.quant.per_channel:
        raise _refuse(model, op, f"{role} tensor {t.name!r} needs per-tensor int8 quantisation")
    if t.data is not None:
        raise _refuse(model, op, f"{role} tensor {t.name!r} is a constant")


def _check_op(model: TFLiteModel, op: Op) -> None:
    t = model.tensors
    name = op.opcode
    if name not in SUPPORTED_OPS:
        supported = ", ".join(SUPPORTED_OPS)
        raise _refuse(model, op, f"op {name} is outside DESIGN contract 3 (supported: {supported})")
    if len(op.outputs) != 1:
        raise _refuse(model, op, f"expected one output, got {len(op.outputs)}")
    out = t[op.outputs[0]]
    _check_act_tensor(model, op, out, "output")
    x = t[op.inputs[0]]
    _check_act_tensor(model, op, x, "input")
    if name == "RESHAPE":
        if x.size != out.size:
            raise _refuse(model, op, f"reshape changes the size ({x.shape} -> {out.shape})")
    elif len(x.shape) not in (2, 4) or x.shape[0] != 1 or len(out.shape) not in (2, 4):
        raise _refuse(model, op, f"needs batch-1 2-D or 4-D tensors, got {x.shape}->{out.shape}")
    opts = op.options
    act = opts.get("fusedActivationFunction", 0)
    if act not in ACTIVATIONS:
        raise _refuse(model, op, f"fused activation {act} unsupported (NONE, RELU, RELU6 only)")
    if opts.get("dilationHFactor", 1) != 1 or opts.get("dilationWFactor", 1) != 1:
        raise _refuse(model, op, "dilation != 1 is not supported")
    if "padding" in opts and opts["padding"] not in PADDINGS:
        raise _refuse(model, op, f"padding {opts['padding']} unsupported")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        w = t[op.inputs[1]]
        if w.dtype != "int8" or w.data is None or w.quant is None:
            raise _refuse(model, op, f"weights {w.name!r} must be constant int8 (got {w.dtype})")
        if any(z != 0 for z in w.quant.zero_point):
            raise _refuse(model, op, "weights need zero point 0 (symmetric)")
        n_out = w.shape[3] if name == "DEPTHWISE_CONV_2D" else w.shape[0]
        if len(w.quant.scale) not in (1, n_out):
            raise _refuse(model, op, f"{len(w.quant.scale)} weight scales for {n_out} channels")
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = t[op.inputs[2]]
            if b.dtype != "int32" or b.data is None or b.size != n_out:
                raise _refuse(model, op, f"bias {b.name!r} must be constant int32[{n_out}]")
        if len(x.shape) != 4 and name != "FULLY_CONNECTED":
            raise _refuse(model, op, f"needs a 4-D NHWC input, got {x.shape}")
        if name == "FULLY_CONNECTED":
            if x.size != w.shape[1] or out.size != w.shape[0]:
                raise _refuse(model, op, f"only batch 1 is supported ({x.shape} x {w.shape})")
            if opts.get("weightsFormat", 0) != 0:
                raise _refuse(model, op, "shuffled weights format is not supported")
        if name == "DEPTHWISE_CONV_2D" and w.shape[3] != x.shape[3] * opts["depthMultiplier"]:
            raise _refuse(model, op, "depthwise channels != input channels x multiplier")
        if name == "CONV_2D" and w.shape[3] != x.shape[3]:
            raise _refuse(model, op, "grouped convolution is not supported")
    elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "RESHAPE"):
        if (x.scale, x.zero_point) != (out.scale, out.zero_point):
            raise _refuse(model, op, "input and output quantisation differ")
        if name == "PAD":
            p = t[op.inputs[1]]
            if p.data is None or p.shape != (len(x.shape), 2) or len(x.shape) != 4:
                raise _refuse(model, op, "paddings must be a constant [4, 2] tensor")
            if p.data[0].any() or (p.data < 0).any():
                raise _refuse(model, op, "padding the batch axis or negative padding")
    elif name == "ADD":
        y = t[op.inputs[1]]
        _check_act_tensor(model, op, y, "second input")
        if x.shape != y.shape or x.shape != out.shape:
            raise _refuse(model, op, f"broadcasting ADD ({x.shape} + {y.shape}) is not supported")
    elif name == "MEAN":
        axis = t[op.inputs[1]]
        dims = sorted(int(a) % 4 for a in np.ravel(axis.data)) if axis.data is not None else []
        if len(x.shape) != 4 or dims != [1, 2]:
            raise _refuse(model, op, "only MEAN over axes (1, 2) of a 4-D tensor is supported")
    elif name == "LOGISTIC":
        if out.zero_point != -128 or out.scale != 1.0 / 256:
            raise _refuse(model, op, "int8 LOGISTIC needs output scale 1/256, zero point -128")
    if x.size == 0 or out.size == 0:
        raise _refuse(model, op, "empty tensor")


def check_supported(model: TFLiteModel) -> None:
    """Raise :class:`UnsupportedModelError` unless ``model`` fits DESIGN contract 3.

    Parameters
    ----------
    model : TFLiteModel
        A parsed model.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise _refuse(model, None, "needs exactly one input and one output tensor")
    for op in model.ops:
        _check_op(model, op)
    _check_act_tensor(model, None, model.input, "model input")
    _check_act_tensor(model, None, model.output, "model output")
    if len(model.input.shape) != 4 or model.input.shape[0] != 1 or model.input.shape[3] != 1:
        raise _refuse(model, None, f"input must be [1, frames, mels, 1], got {model.input.shape}")
    ready = {model.input.index} | {t.index for t in model.tensors if t.data is not None}
    consumed = set()
    for op in model.ops:
        missing = [i for i in op.inputs if i >= 0 and i not in ready]
        if missing or op.outputs[0] in ready:
            raise _refuse(model, op, "ops are not in execution order (tensor used before set)")
        consumed.update(op.inputs)
        ready.add(op.outputs[0])
    if model.output.index not in ready or model.input.index not in consumed:
        raise _refuse(model, None, "graph input and output are not connected by ops")


def load_supported(path: str | Path | bytes, name: str = "model") -> TFLiteModel:
    """Read ``path`` and check it against contract 3 (see :func:`check_supported`).

    Parameters
    ----------
    path : str, Path or bytes
        The .tflite file or flatbuffer.
    name : str
        Name for error messages when ``path`` is bytes.

    Returns
    -------
    TFLiteModel
        The checked model.
    """
    model = read_tflite(path, name)
    check_supported(model)
    return model
