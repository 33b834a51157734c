"""Architectures: one block spec, from which the torch model (:mod:`model_dev.torch_net`), its
statistics and (in ``quantize``) the Keras mirror are all built. This module needs no torch.

Network
-------
An :class:`ArchSpec` is a sequence of blocks followed by a fixed head:

* :class:`Conv` = conv (no bias) + BatchNorm + ReLU;
* :class:`DSConv` = depthwise conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU;
* head = global average pool over (time, mel) -> dense -> logits (the sigmoid is applied outside
  the model in training; the exported model appends LOGISTIC).

:func:`layers` expands a spec into primitive conv layers (:class:`Layer`, one per TFLite
CONV_2D / DEPTHWISE_CONV_2D op) with all shapes and padding amounts; every builder and
:func:`spec_stats` loops over that one list. Padding is TensorFlow ``"same"`` everywhere:
``total = max((ceil(n / s) - 1) * s + k - n, 0)``, ``before = total // 2``,
``after = total - before``, so the output length is ``ceil(n / s)``. Torch applies it as an
explicit ``F.pad`` followed by a ``padding=0`` conv; Keras uses ``padding="same"``, which TFLite
folds into the conv (no PAD op). After BN folding the converted graph contains only CONV_2D,
DEPTHWISE_CONV_2D (ReLU fused), MEAN, FULLY_CONNECTED and LOGISTIC.

Layout: torch is NCHW with H = time, W = mel (input ``[B, 1, T, F]``); Keras is NHWC
``[B, T, F, 1]``. Shapes reported here are ``(C, T, F)``, like the torch feature maps.

Windows and clip scores (the device does exactly the same)
---------------------------------------------------------
The model sees fixed windows of ``window_frames`` frames (default 100 = 1 s). A clip of ``n``
frames is cut into windows starting at ``0, hop, 2 hop, ...`` while the window fits; if the last
one does not reach the clip's end, one more window aligned to the end (start ``n - window``) is
added, so every frame is seen. A clip shorter than one window gives one window, padded at the end
with the front end's silence value, int8 -128 (windows are cut from the int8 features).
The clip score of each class is the **maximum over windows**
(:func:`~model_dev.torch_net.aggregate`): a tag means "the event occurs somewhere in the clip", and
a short event (one bark in 10 s) would be diluted by a mean. Because sigmoid is monotonic, max of
window probabilities = sigmoid(max of window logits), and on the device max of the int8 LOGISTIC
outputs equals the quantised max, so host and device agree exactly; training can apply BCE to the
aggregated clip logits (multiple-instance learning).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

#: Front-end int8 value of silence (log of zero energy) and its dequantised value (scale 1/8).
SILENCE_Q = -128  # the front end's output for silence, whatever its scale and zero point

Pair = tuple[int, int]


# --------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conv:
    """Regular conv + BatchNorm + ReLU.

    Parameters
    ----------
    out : int
        Output channels.
    kernel, stride : tuple of int
        ``(time, mel)`` kernel size and stride; TF ``"same"`` padding.
    """

    out: int
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)


@dataclass(frozen=True)
class DSConv:
    """Depthwise-separable block: depthwise conv + BN + ReLU, pointwise 1x1 conv + BN + ReLU.

    Parameters
    ----------
    out : int
        Output channels of the pointwise conv.
    kernel, stride : tuple of int
        ``(time, mel)`` kernel size and stride of the depthwise conv; TF ``"same"`` padding.
    """

    out: int
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)


Block = Conv | DSConv


@dataclass(frozen=True)
class ArchSpec:
    """A complete network: blocks, then global average pool -> dense -> logits.

    Parameters
    ----------
    name : str
        Identifier (also used in file names).
    blocks : tuple of Block
        Feature extractor, in order.
    n_classes : int
        Number of (multi-label) outputs.
    window_frames : int
        Frames per model input window (time axis).
    n_mels : int
        Mel bands (frequency axis).
    dropout : float
        Dropout before the dense layer, torch training only (identity at inference; the Keras
        mirror omits it).
    """

    name: str
    blocks: tuple[Block, ...]
    n_classes: int = 8
    window_frames: int = 100
    n_mels: int = 40
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            raise ValueError(f"ArchSpec {self.name!r}: needs at least one block")

    def to_dict(self) -> dict:
        """Plain JSON-able dict; :meth:`from_dict` rebuilds an equal spec."""
        blocks = [
            {
                "type": type(b).__name__,
                "out": b.out,
                "kernel": list(b.kernel),
                "stride": list(b.stride),
            }
            for b in self.blocks
        ]
        return {
            "name": self.name,
            "blocks": blocks,
            "n_classes": self.n_classes,
            "window_frames": self.window_frames,
            "n_mels": self.n_mels,
            "dropout": self.dropout,
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "ArchSpec") -> ArchSpec:
        """Rebuild a spec from :meth:`to_dict` output; malformed data raises ValueError."""
        kinds = {"Conv": Conv, "DSConv": DSConv}
        try:
            blocks = tuple(
                kinds[b["type"]](int(b["out"]), tuple(b["kernel"]), tuple(b["stride"]))
                for b in data["blocks"]
            )
            return cls(**{**data, "blocks": blocks})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: not a valid architecture spec ({exc!r})") from None


@dataclass(frozen=True)
class Layer:
    """One primitive conv layer (one TFLite op) of an expanded spec.

    Attributes
    ----------
    block : int
        Index of the spec block it belongs to.
    op : {"conv", "depthwise"}
        Regular (incl. pointwise 1x1) or depthwise convolution; always followed by BN + ReLU.
    cin, cout : int
        Input and output channels (equal for depthwise).
    kernel, stride : tuple of int
        ``(time, mel)``.
    in_tf, out_tf : tuple of int
        Input and output ``(time, mel)`` sizes.
    pad : tuple of int
        TF-same padding ``(t_before, t_after, f_before, f_after)``.
    """

    block: int
    op: Literal["conv", "depthwise"]
    cin: int
    cout: int
    kernel: Pair
    stride: Pair
    in_tf: Pair
    out_tf: Pair
    pad: tuple[int, int, int, int]

    @property
    def weights(self) -> int:
        """Number of conv weights (no bias)."""
        per_out = 1 if self.op == "depthwise" else self.cin
        return self.cout * per_out * self.kernel[0] * self.kernel[1]

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass."""
        return self.out_tf[0] * self.out_tf[1] * self.weights


def same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    """TF ``"same"`` padding ``(before, after)`` of an axis of length ``n`` (kernel k, stride s)."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def layers(spec: ArchSpec) -> list[Layer]:
    """Expand a spec into its primitive conv layers with shapes and padding.

    Parameters
    ----------
    spec : ArchSpec
        The architecture.

    Returns
    -------
    list of Layer
        In execution order; a :class:`DSConv` gives a depthwise then a 1x1 conv layer.
    """
    out: list[Layer] = []
    c, tf = 1, (spec.window_frames, spec.n_mels)
    for i, blk in enumerate(spec.blocks):
        prims = [("conv", blk.out, blk.kernel, blk.stride)]
        if isinstance(blk, DSConv):
            prims = [("depthwise", c, blk.kernel, blk.stride), ("conv", blk.out, (1, 1), (1, 1))]
        for op, cout, k, s in prims:
            (tb, ta), (fb, fa) = (same_pad(n, kk, ss) for n, kk, ss in zip(tf, k, s, strict=True))
            new_tf = (math.ceil(tf[0] / s[0]), math.ceil(tf[1] / s[1]))
            out.append(Layer(i, op, c, cout, tuple(k), tuple(s), tf, new_tf, (tb, ta, fb, fa)))
            c, tf = cout, new_tf
    return out


def block_shapes(spec: ArchSpec) -> list[tuple[int, int, int]]:
    """Output shape ``(C, T, F)`` of every block of ``spec``."""
    shapes: dict[int, tuple[int, int, int]] = {}
    for ly in layers(spec):
        shapes[ly.block] = (ly.cout, *ly.out_tf)
    return [shapes[i] for i in range(len(spec.blocks))]


def stage_ends(shapes: Sequence[Sequence[int]]) -> list[int]:
    """Indices of the last block of each stage (a run of blocks with equal time x mel size).

    Parameters
    ----------
    shapes : sequence of shapes
        Block output shapes whose last two entries are ``(T, F)``: ``(C, T, F)`` from
        :func:`block_shapes`, or ``[B, C, T, F]`` feature tensor shapes.
    """
    n = len(shapes)
    return [i for i in range(n) if i == n - 1 or tuple(shapes[i][-2:]) != tuple(shapes[i + 1][-2:])]


def spec_stats(spec: ArchSpec) -> dict:
    """Size and cost of a spec, from the spec alone.

    Parameters
    ----------
    spec : ArchSpec
        The architecture.

    Returns
    -------
    dict
        ``name``; ``params`` (trainable, as torch counts them: conv weights, BN gamma and beta,
        dense weight and bias); ``deployed_params`` (after BN folding: conv weights + one bias per
        output channel + dense); ``macs`` (conv and dense multiply-accumulates of one window;
        the pooling's additions are not counted); ``weight_bytes_int8`` (deployed weights as
        int8, biases as int32; per-channel quantisation scales not counted);
        ``activation_bytes_int8`` (peak over ops of input + output tensor bytes at int8, ops
        run one after another: convs, MEAN, FULLY_CONNECTED, LOGISTIC); ``block_shapes``
        (``(C, T, F)`` per block); ``layers`` (per-op dicts: op, block, in/out shape, params,
        macs).
    """
    lys = layers(spec)
    c_last, k = lys[-1].cout, spec.n_classes
    dense = c_last * k + k
    n_w = sum(ly.weights for ly in lys) + c_last * k
    n_b = sum(ly.cout for ly in lys) + k
    rows = [
        {
            "op": ly.op,
            "block": ly.block,
            "in_shape": (ly.cin, *ly.in_tf),
            "out_shape": (ly.cout, *ly.out_tf),
            "params": ly.weights + 2 * ly.cout,
            "macs": ly.macs,
        }
        for ly in lys
    ]
    head = [("mean", (c_last, *lys[-1].out_tf), (c_last, 1, 1), 0, 0)]
    head += [("fully_connected", (c_last, 1, 1), (k, 1, 1), dense, c_last * k)]
    head += [("logistic", (k, 1, 1), (k, 1, 1), 0, 0)]
    rows += [
        {"op": op, "block": -1, "in_shape": i, "out_shape": o, "params": p, "macs": m}
        for op, i, o, p, m in head
    ]
    return {
        "name": spec.name,
        "params": sum(r["params"] for r in rows),
        "deployed_params": n_w + n_b,
        "macs": sum(r["macs"] for r in rows),
        "weight_bytes_int8": n_w + 4 * n_b,
        "activation_bytes_int8": max(
            math.prod(r["in_shape"]) + math.prod(r["out_shape"]) for r in rows
        ),
        "block_shapes": block_shapes(spec),
        "layers": rows,
    }


# --------------------------------------------------------------------------------------------
# Spec families
# --------------------------------------------------------------------------------------------
def ds_cnn(
    name: str,
    widths: Sequence[int],
    strides: Sequence[Pair],
    *,
    first_kernel: Pair = (5, 5),
    first_stride: Pair = (2, 2),
    kernel: Pair = (3, 3),
    **spec_kw,
) -> ArchSpec:
    """A DS-CNN (Zhang et al. 2017, "Hello Edge"): one regular conv, then DSConv blocks.

    Parameters
    ----------
    name : str
        Spec name.
    widths : sequence of int
        Channels of the first conv, then of each DSConv block (width knob; its length is the
        depth knob).
    strides : sequence of (int, int)
        Depthwise stride of each DSConv block (``len(widths) - 1`` entries).
    first_kernel, first_stride : (int, int)
        Kernel and stride of the first (regular) conv.
    kernel : (int, int)
        Depthwise kernel of the DSConv blocks.
    **spec_kw
        Further :class:`ArchSpec` fields (``n_classes``, ``window_frames``, ...).
    """
    if len(strides) != len(widths) - 1:
        raise ValueError(f"ds_cnn {name!r}: need {len(widths) - 1} strides, got {len(strides)}")
    blocks = [Conv(widths[0], first_kernel, first_stride)]
    blocks += [DSConv(w, kernel, tuple(s)) for w, s in zip(widths[1:], strides, strict=True)]
    return ArchSpec(name, tuple(blocks), **spec_kw)


def vgg(name: str, stages: Sequence[tuple[int, int]], **spec_kw) -> ArchSpec:
    """A VGG-style CNN of 3x3 :class:`Conv` blocks.

    Parameters
    ----------
    name : str
        Spec name.
    stages : sequence of (channels, n_blocks)
        Each stage starts with a stride-(2, 2) conv, then ``n_blocks - 1`` stride-1 convs.
    **spec_kw
        Further :class:`ArchSpec` fields.
    """
    blocks = [Conv(c, (3, 3), (2, 2) if j == 0 else (1, 1)) for c, n in stages for j in range(n)]
    return ArchSpec(name, tuple(blocks), **spec_kw)


_S1, _S2, _T2 = (1, 1), (2, 2), (2, 1)

#: The teacher: a VGG-style CNN, about 1.2 M parameters and 56 M MACs per window (a 2.6 M
#: parameter version trained 4x slower on 2 CPU cores for no measured gain in distillation).
TEACHER = vgg("teacher", [(32, 2), (64, 2), (128, 2), (256, 2)], dropout=0.3)

#: DS-CNN students, named by their approximate parameter count.
STUDENTS: dict[str, ArchSpec] = {
    s.name: s
    for s in [
        ds_cnn("s5k", [12, 24, 24, 40, 40], [_S2, _S1, _S2, _S1]),
        ds_cnn("s20k", [24, 48, 48, 96, 96], [_S2, _S1, _S2, _S1]),
        ds_cnn("s70k", [36, 72, 72, 144, 144, 144], [_S2, _S1, _S2, _S1, _S1]),
        ds_cnn("s250k", [64, 96, 96, 192, 192, 320, 320], [_S2, _S1, _S2, _S1, _T2, _S1]),
    ]
}


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------
def window_starts(n_frames: int, window_frames: int, hop_frames: int) -> list[int]:
    """Start frames of a clip's windows (see the module docstring).

    Parameters
    ----------
    n_frames : int
        Clip length in frames.
    window_frames, hop_frames : int
        Window length and hop.

    Returns
    -------
    list of int
        ``0, hop, ...`` while a window fits, plus ``n_frames - window_frames`` if the last one
        falls short of the end; ``[0]`` for a clip no longer than one window.
    """
    if window_frames < 1 or hop_frames < 1:
        raise ValueError(f"window ({window_frames}) and hop ({hop_frames}) must be >= 1")
    last = n_frames - window_frames
    if last <= 0:
        return [0]
    starts = list(range(0, last + 1, hop_frames))
    return starts if starts[-1] == last else [*starts, last]


def clip_windows(
    features: np.ndarray, window_frames: int, hop_frames: int, pad_value: float | None = None
) -> np.ndarray:
    """Cut one clip's features into model windows.

    Parameters
    ----------
    features : np.ndarray
        ``[T, F]``, int8 front-end output or dequantised float.
    window_frames, hop_frames : int
        Window length and hop.
    pad_value : float, optional
        Fill for clips shorter than a window; default for int8 input: silence (-128). Float
        input must pass it (silence dequantised with the front end's scale and zero point).

    Returns
    -------
    np.ndarray
        ``[n_windows, window_frames, F]``, same dtype as ``features``.
    """
    features = np.asarray(features)
    n, n_mels = features.shape
    if pad_value is None:
        if not np.issubdtype(features.dtype, np.integer):
            raise ValueError("clip_windows: float features need an explicit pad_value (silence)")
        pad_value = SILENCE_Q
    if n < window_frames:
        fill = np.full((window_frames - n, n_mels), pad_value, dtype=features.dtype)
        features = np.concatenate([features, fill])
    starts = window_starts(n, window_frames, hop_frames)
    return np.stack([features[s : s + window_frames] for s in starts])
