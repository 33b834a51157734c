"""Interpreter-free int8 engine: one .tflite -> ``aed_model.h`` / ``aed_model.c``.

Every op of the model becomes one C function specialised for its shapes (constants, not
parameters), with weights, biases and requantisation multipliers as ``static const`` arrays.
The arithmetic follows the TFLite/TFLM integer reference kernels bit for bit:

* per-channel requantisation: ``QuantizeMultiplier`` of the double-precision effective scale,
  then ``MultiplyByQuantizedMultiplier`` (saturating rounding doubling high multiply and
  rounding divide by a power of two, TFLM's default double rounding);
* the input zero point enters convolutions as a per-channel constant folded into the bias for
  interior pixels; border pixels add it per valid tap, which equals TFLM skipping padded taps;
* MEAN, AVERAGE_POOL_2D, ADD and LOGISTIC reproduce the rounding of TFLM's reference kernels
  (LOGISTIC through a 256-entry table computed with a port of gemmlowp's fixed-point logistic).

Activations live in one static arena. Buffers are placed by a greedy planner over their live
ranges; an op that streams through its input in raster order (convolutions, pools, elementwise
ops) may write its output over the part of its input it has finished reading, when the input
dies at that op. The minimum distance between the two buffers is computed here per op from its
shapes, which TFLM's planner cannot do. The model input is read from the caller's buffer and the
last op writes into the caller's output buffer, so neither takes arena space.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_gen.fixed_point import (
    INT32_MIN,
    activation_range,
    logistic_table,
    quantize_multiplier,
)
from firmware_gen.memory_plan import MemoryPlan, plan_memory
from firmware_gen.render import INCLUDE_DIR, SOURCE_DIR, write_rendered
from quantize.tflite_model import Tensor, TFLiteModel, load_supported

#: Package paths of the engine (both generated).
ENGINE_FILES = (f"{INCLUDE_DIR}/aed_model.h", f"{SOURCE_DIR}/aed_model.c")


# --------------------------------------------------------------------------------------------
# Kernels: one C function per op
# --------------------------------------------------------------------------------------------
def _c_int(v: int) -> str:
    return "INT32_MIN" if v == INT32_MIN else str(int(v))


def _c_ints(values, per_line: int = 12) -> str:
    flat = [_c_int(v) for v in np.asarray(values).ravel()]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join("    " + line for line in lines)


@dataclass
class Kernel:
    """One generated C function: template macro, constants, its buffers and stream geometry."""

    op: int
    kind: str
    comment: str
    ctx: dict
    inputs: list[int]  # activation tensor indices read
    output: int
    arrays: list[tuple[str, str, str, int]] = field(default_factory=list)  # type, name, body, n
    # streaming overlap: input tensor -> minimum (input offset - output offset) with which the
    # output may be placed over that input when it dies here; absent = no overlap allowed
    lag: dict[int, int] = field(default_factory=dict)


def _array(k: Kernel, ctype: str, name: str, values) -> str:
    full = f"aed_op{k.op}_{name}"
    values = np.asarray(values).ravel()
    k.arrays.append((ctype, full, _c_ints(values), len(values)))
    return full


def _requant_ctx(k: Kernel, mults: list[int], shifts: list[int], acc_bound: int) -> dict:
    """Requantisation constants; per-tensor ones become literals.

    ``acc_bound`` bounds ``|acc|``. Right shifts of at least 1 with ``acc_bound < 2^30`` take the
    short forms ``aed_srdhm_pos`` and ``aed_rdpot1`` (same integers: the multipliers are
    non-negative, so srdhm never saturates, ``2 acc`` fits in int32, and ``|srdhm(acc, m)| <=
    |acc|``); their shift is stored as ``e - 1``.
    """
    short = (
        all(s <= -1 for s in shifts) and all(0 <= m < 2**31 for m in mults) and acc_bound < 2**30
    )
    if len(set(zip(mults, shifts, strict=True))) == 1:
        shift = -shifts[0] - 1 if short else shifts[0]
        return {"per_channel": False, "short": short, "mult": mults[0], "shift": shift}
    right_only = all(s <= 0 for s in shifts)
    ctx = {"per_channel": True, "right_only": right_only, "short": short}
    ctx["mult"] = _array(k, "int32_t", "mult", mults)
    stored = [-s - 1 if short else -s if right_only else s for s in shifts]
    ctx["shift"] = _array(k, "int8_t", "shift", stored)
    return ctx


def _stream_lag(
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    window: tuple[int, int, int, int, int, int],
    write_before_read: bool,
) -> int:
    """Minimum ``input_offset - output_offset`` for a windowed op that walks its output pixels in
    raster order.

    Output pixel ``u`` is written at ``[u c_out, (u+1) c_out)`` relative to the output buffer; it
    must not reach input bytes still to be read, by pixel ``u`` itself when
    ``write_before_read`` (channels are written while the pixel's window is still being read),
    else by later pixels. ``window`` = (kh, kw, sh, sw, pt, pl).
    """
    _, ih, iw, cin = in_shape
    _, oh, ow, cout = out_shape
    kh, kw, sh, sw, pt, pl = window
    oy, ox = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    iy0 = np.maximum(oy * sh - pt, 0)
    ix0 = np.maximum(ox * sw - pl, 0)
    first = ((iy0 * iw + ix0) * cin).ravel().astype(np.int64)
    need = np.minimum.accumulate(first[::-1])[::-1]  # min byte read by unit u or later
    if not write_before_read:
        need = np.append(need[1:], np.iinfo(np.int64).max // 4)
    written = (np.arange(1, oh * ow + 1, dtype=np.int64)) * cout
    return int((written - need).max())


def _border_interior(win: dict) -> dict:
    """Whether some output pixel has its whole window inside the input, and whether some has not."""

    def inside(n_out: int, s: int, p: int, k: int, n_in: int) -> list[bool]:
        return [0 <= o * s - p and o * s - p + k <= n_in for o in range(n_out)]

    rows = inside(win["oh"], win["sh"], win["pt"], win["kh"], win["ih"])
    cols = inside(win["ow"], win["sw"], win["pl"], win["kw"], win["iw"])
    return {"interior": any(rows) and any(cols), "border": not (all(rows) and all(cols))}


class _Builder:
    """Turns the ops of a checked model into :class:`Kernel` objects."""

    def __init__(self, model: TFLiteModel) -> None:
        self.model = model
        self.t = model.tensors

    def build(self) -> list[Kernel]:
        out = []
        for op in self.model.ops:
            k = getattr(self, "_" + op.opcode.lower())(op)
            out.append(k)
        return out

    # ---- helpers
    def _window(self, op, x: Tensor, out: Tensor, kh: int, kw: int) -> dict:
        sh, sw = op.options["strideH"], op.options["strideW"]
        _, ih, iw, _ = x.shape
        _, oh, ow, _ = out.shape
        if op.options["padding"] == 0:  # SAME
            exp_h, exp_w = -(-ih // sh), -(-iw // sw)
        else:
            exp_h, exp_w = (ih - kh + sh) // sh, (iw - kw + sw) // sw
        if (exp_h, exp_w) != (oh, ow):
            raise ValueError(f"op {op.index}: output {out.shape} inconsistent with padding")
        pt = max(((oh - 1) * sh + kh - ih) // 2, 0)
        pl = max(((ow - 1) * sw + kw - iw) // 2, 0)
        return {
            "ih": ih,
            "iw": iw,
            "oh": oh,
            "ow": ow,
            "kh": kh,
            "kw": kw,
            "sh": sh,
            "sw": sw,
            "pt": pt,
            "pl": pl,
        }

    def _bias(self, op, n: int) -> np.ndarray:
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            return self.t[op.inputs[2]].data.astype(np.int64).ravel()
        return np.zeros(n, dtype=np.int64)

    def _conv_like(self, op, depthwise: bool) -> Kernel:
        x, w, out = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        wd = w.data.astype(np.int64)
        if depthwise:
            _, kh, kw, cm = wd.shape
            per_out = wd.reshape(kh * kw, cm).T  # [cm, taps]
        else:
            cm, kh, kw, _ = wd.shape
            per_out = wd.reshape(cm, -1)
        win = self._window(op, x, out, kh, kw)
        name = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
        k = Kernel(
            op.index,
            "depthwise" if depthwise else "conv",
            f"{name} {x.shape[1:]} -> {out.shape[1:]}, kernel {kh}x{kw}, "
            f"stride {win['sh']}x{win['sw']}",
            {},
            [x.index],
            out.index,
        )
        bias = self._bias(op, cm)
        in_off = -x.zero_point
        bias_eff = bias + in_off * per_out.sum(axis=1)
        if np.abs(bias_eff).max(initial=0) >= 2**31:
            raise ValueError(f"op {op.index}: folded bias overflows int32")
        scales = w.quant.scale if w.quant.per_channel else w.quant.scale * cm
        mults, shifts = zip(
            *(quantize_multiplier(float(x.scale) * float(s) / float(out.scale)) for s in scales),
            strict=True,
        )
        lo, hi = activation_range(op.options.get("fusedActivationFunction", 0), out)
        k.ctx = {
            **win,
            "cin": x.shape[3],
            "cout": cm,
            "mult_dw": cm // x.shape[3] if depthwise else 1,
            "in_off": in_off,
            "out_zp": out.zero_point,
            "act_min": lo,
            "act_max": hi,
            "w": _array(k, "int8_t", "w", wd),
            "pointwise": (kh, kw, win["sh"], win["sw"], win["pt"], win["pl"]) == (1, 1, 1, 1, 0, 0),
            "block": 4 if cm % 4 == 0 else 2 if cm % 2 == 0 else 1,
            "chunk": max(d for d in range(1, 17) if cm % d == 0),  # depthwise border channels
            **_border_interior(win),
        }
        if k.ctx["interior"]:
            k.ctx["bias_eff"] = _array(k, "int32_t", "bias_eff", bias_eff)
        if k.ctx["border"]:
            k.ctx["bias"] = _array(k, "int32_t", "bias", bias)
        # |acc| <= |bias| + sum |w| |x + in_off|, |x + in_off| <= 255 (interior: bias_eff, x)
        acc_bound = int(np.abs(np.stack([bias, bias_eff])).max(initial=0))
        acc_bound += 255 * int(np.abs(per_out).sum(axis=1).max(initial=0))
        k.ctx["rq"] = _requant_ctx(k, list(mults), list(shifts), acc_bound)
        window = (kh, kw, win["sh"], win["sw"], win["pt"], win["pl"])
        k.lag[x.index] = _stream_lag(x.shape, out.shape, window, write_before_read=True)
        return k

    # ---- ops
    def _conv_2d(self, op) -> Kernel:
        return self._conv_like(op, depthwise=False)

    def _depthwise_conv_2d(self, op) -> Kernel:
        return self._conv_like(op, depthwise=True)

    def _fully_connected(self, op) -> Kernel:
        x, w, out = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        n, d = w.shape
        k = Kernel(op.index, "fc", f"FULLY_CONNECTED {d} -> {n}", {}, [x.index], out.index)
        wd = w.data.astype(np.int64)
        bias = self._bias(op, n)
        bias_eff = bias - x.zero_point * wd.sum(axis=1)
        if w.quant.per_channel:  # TFLM: double(in_scale) * double(w_scale) / double(out_scale)
            reals = [float(x.scale) * float(s) / float(out.scale) for s in w.quant.scale]
        else:  # GetQuantizedConvolutionMultipler: float32 product, then double division
            prod = float(np.float32(x.scale) * np.float32(w.scale))
            reals = [prod / float(out.scale)] * n
        mults, shifts = zip(*(quantize_multiplier(r) for r in reals), strict=True)
        lo, hi = activation_range(op.options.get("fusedActivationFunction", 0), out)
        k.ctx = {
            "n": n,
            "d": d,
            "out_zp": out.zero_point,
            "act_min": lo,
            "act_max": hi,
            "w": _array(k, "int8_t", "w", wd),
            "bias_eff": _array(k, "int32_t", "bias_eff", bias_eff),
            "rq": _requant_ctx(
                k,
                list(mults),
                list(shifts),
                int(np.abs(bias_eff).max(initial=0)) + 128 * int(np.abs(wd).sum(axis=1).max()),
            ),
        }
        return k

    def _pool(self, op, kind: str) -> Kernel:
        x, out = self.t[op.inputs[0]], self.t[op.outputs[0]]
        kh, kw = op.options["filterHeight"], op.options["filterWidth"]
        win = self._window(op, x, out, kh, kw)
        lo, hi = activation_range(op.options.get("fusedActivationFunction", 0), out)
        k = Kernel(
            op.index,
            kind,
            f"{op.opcode} {x.shape[1:]} -> {out.shape[1:]}, window {kh}x{kw}",
            {**win, "c": x.shape[3], "act_min": lo, "act_max": hi},
            [x.index],
            out.index,
        )
        window = (kh, kw, win["sh"], win["sw"], win["pt"], win["pl"])
        k.lag[x.index] = _stream_lag(x.shape, out.shape, window, write_before_read=True)
        return k

    def _average_pool_2d(self, op) -> Kernel:
        return self._pool(op, "avgpool")

    def _max_pool_2d(self, op) -> Kernel:
        return self._pool(op, "maxpool")

    def _mean(self, op) -> Kernel:
        x, out = self.t[op.inputs[0]], self.t[op.outputs[0]]
        _, h, w, c = x.shape
        n = h * w
        k = Kernel(op.index, "mean", f"MEAN over {h}x{w}, {c} channels", {}, [x.index], out.index)
        # TFLM's reduce_common.cc (this version) always takes QuantizedMeanOrSum: the 1/n factor
        # is folded into the multiplier, even when input and output quantisation are equal
        mult, shift = quantize_multiplier(float(x.scale) / float(out.scale))
        s = min(n.bit_length() - 1, 32, 31 + shift)
        k.ctx = {
            "p": n,
            "c": c,
            "mult": (mult << s) // n,
            "shift": shift - s,
            "sub": x.zero_point * n,
            "out_zp": out.zero_point,
        }
        k.lag[x.index] = 0  # out[ch] is written after channel ch's last read, before ch + 1
        return k

    def _add(self, op) -> Kernel:
        a, b, out = (self.t[i] for i in (*op.inputs[:2], op.outputs[0]))
        twice_max = 2 * float(max(np.float32(a.scale), np.float32(b.scale)))
        m1, s1 = quantize_multiplier(float(a.scale) / twice_max)
        m2, s2 = quantize_multiplier(float(b.scale) / twice_max)
        mo, so = quantize_multiplier(twice_max / ((1 << 20) * float(out.scale)))
        lo, hi = activation_range(op.options.get("fusedActivationFunction", 0), out)
        k = Kernel(op.index, "add", f"ADD {out.shape[1:]}", {}, [a.index, b.index], out.index)
        k.ctx = {
            "n": out.size,
            "off1": -a.zero_point,
            "off2": -b.zero_point,
            "m1": m1,
            "s1": s1,
            "m2": m2,
            "s2": s2,
            "mo": mo,
            "so": so,
            "out_zp": out.zero_point,
            "act_min": lo,
            "act_max": hi,
        }
        if a.index != b.index:
            k.lag = {a.index: 0, b.index: 0}
        return k

    def _logistic(self, op) -> Kernel:
        x, out = self.t[op.inputs[0]], self.t[op.outputs[0]]
        k = Kernel(op.index, "logistic", f"LOGISTIC {out.size}", {}, [x.index], out.index)
        k.ctx = {"n": out.size}
        k.ctx["lut"] = _array(k, "int8_t", "lut", logistic_table(x.scale, x.zero_point))
        k.lag[x.index] = 0
        return k

    def _pad(self, op) -> Kernel:
        x, p, out = self.t[op.inputs[0]], self.t[op.inputs[1]], self.t[op.outputs[0]]
        pads = p.data.astype(int)
        k = Kernel(
            op.index, "pad", f"PAD {x.shape[1:]} -> {out.shape[1:]}", {}, [x.index], out.index
        )
        k.ctx = {
            "ih": x.shape[1],
            "iw": x.shape[2],
            "c": x.shape[3],
            "oh": out.shape[1],
            "ow": out.shape[2],
            "oc": out.shape[3],
            "pt": pads[1, 0],
            "pl": pads[2, 0],
            "pc": pads[3, 0],
            "value": out.zero_point,
        }
        return k

    def _reshape(self, op) -> Kernel:
        x, out = self.t[op.inputs[0]], self.t[op.outputs[0]]
        return Kernel(
            op.index,
            "reshape",
            f"RESHAPE {x.shape} -> {out.shape}",
            {"n": out.size},
            [x.index],
            out.index,
        )


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
@dataclass
class Engine:
    """Everything needed to render the C engine of one model."""

    model: TFLiteModel
    kernels: list[Kernel]
    plan: MemoryPlan
    sha256: str

    @property
    def activation_bytes(self) -> int:
        """Arena size (model input and output live in the caller's buffers)."""
        return self.plan.arena_bytes


def build_engine(tflite_path: str | Path) -> Engine:
    """Check and plan the engine for a .tflite model (no files written).

    Parameters
    ----------
    tflite_path : str or Path
        Full-int8 model within DESIGN contract 3.

    Returns
    -------
    Engine
        Kernels and memory plan.

    Raises
    ------
    quantize.tflite_model.UnsupportedModelError
        Naming the op and its index when the model is outside contract 3.
    """
    model = load_supported(tflite_path)
    kernels = _Builder(model).build()
    plan = plan_memory(model, kernels)
    sha = hashlib.sha256(Path(tflite_path).read_bytes()).hexdigest()
    return Engine(model, kernels, plan, sha)


def _pointer(plan: MemoryPlan, tensor: int, const: bool) -> str:
    where, offset = plan.location[tensor]
    if where == "in":
        return "in"
    if where == "out":
        return "(const int8_t *)out" if const else "out"
    return f"aed_arena + {offset}"


def write_engine(tflite_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``aed/include/aed_model.h`` and ``aed/src/aed_model.c`` for ``tflite_path``.

    Parameters
    ----------
    tflite_path : str or Path
        Full-int8 .tflite model within DESIGN contract 3.
    out_dir : str or Path
        Package folder (created if needed); files are only rewritten when they change.

    Returns
    -------
    list of Path
        The written files, in ``ENGINE_FILES`` order.
    """
    eng = build_engine(tflite_path)
    model = eng.model
    calls = []
    for k in eng.kernels:
        if k.kind == "reshape" and k.op not in eng.plan.copies:
            calls.append({"op": k.op, "alias": True, "comment": k.comment})
            continue
        args = [_pointer(eng.plan, i, const=True) for i in k.inputs]
        args.append(_pointer(eng.plan, k.output, const=False))
        calls.append({"op": k.op, "alias": False, "args": args, "comment": k.comment})
    context = {
        "model_name": Path(tflite_path).name,
        "kernels": eng.kernels,
        "calls": calls,
        "copies": eng.plan.copies,
        "arena_bytes": eng.plan.arena_bytes,
        "in_frames": model.input.shape[1],
        "in_mels": model.input.shape[2],
        "n_classes": model.output.size,
        "input": model.input,
        "output": model.output,
        "ops": model.op_names(),
    }
    inputs = {"model_sha256": eng.sha256}
    return [write_rendered(out_dir, name, inputs, **context) for name in ENGINE_FILES]
