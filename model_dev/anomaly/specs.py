"""Block specs of the deployable anomaly networks and their size and cost from the spec alone.

Like :class:`model_dev.arch.ArchSpec`, each spec is the one definition from which the torch
model (:mod:`model_dev.anomaly.nets`) and, in the device issue, the Keras mirror are built:

* :class:`DenseAESpec`: input ``[1, frames, n_mels, 1]`` -> RESHAPE ``[1, frames * n_mels]`` ->
  FULLY_CONNECTED (+ folded BatchNorm, ReLU) per entry of ``units`` -> FULLY_CONNECTED to
  ``frames * n_mels`` (the reconstruction).
* :class:`PredictorSpec`: CONV_2D ``(context, n_mels)`` valid (+BN, ReLU) -> 1x1 CONV_2D per
  further channel count -> 1x1 CONV_2D to ``n_mels`` -> RESHAPE ``[T - context + 1, n_mels]``;
  output ``j`` predicts input frame ``j + context``. No PAD, no TRANSPOSE.
* :class:`MADESpec`: masked FULLY_CONNECTED layers (masks are zero weights, so int8-friendly);
  the Gaussian head's ``exp(-log_scale)`` needs a lookup table on the device.

The ID classifier reuses :func:`model_dev.arch.ds_cnn` (its spec is an ``ArchSpec``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from model_dev.anomaly.methods import ID_WINDOW
from model_dev.arch import ArchSpec, DSConv, ds_cnn, spec_stats


@dataclass(frozen=True)
class DenseAESpec:
    """Dense autoencoder on ``frames`` stacked frames of ``n_mels`` bands.

    Parameters
    ----------
    name : str
        Identifier.
    units : tuple of int
        Hidden layer sizes, encoder, bottleneck and decoder (e.g. ``(64, 64, 8, 64, 64)``).
    frames, n_mels : int
        Window layout: ``frames`` consecutive frames (hop 1 frame), flattened frame-major.
    """

    name: str
    units: tuple[int, ...]
    frames: int = 5
    n_mels: int = 128

    @property
    def n_in(self) -> int:
        """Input (and output) size."""
        return self.frames * self.n_mels

    def sizes(self) -> list[tuple[int, int]]:
        """``(n_in, n_out)`` of every FULLY_CONNECTED layer."""
        dims = [self.n_in, *self.units, self.n_in]
        return list(zip(dims, dims[1:], strict=False))

    def to_dict(self) -> dict:
        """JSON-able dict (``from_dict`` rebuilds it)."""
        return {"kind": "dense_ae", **asdict(self), "units": list(self.units)}


@dataclass(frozen=True)
class PredictorSpec:
    """Causal convolutional next-frame predictor (see the module docstring).

    Parameters
    ----------
    name : str
        Identifier.
    channels : tuple of int
        Output channels of the first conv and of each 1x1 conv after it.
    context : int
        Frames seen per prediction (the first conv's kernel height).
    window_frames, n_mels : int
        Model input window.
    """

    name: str
    channels: tuple[int, ...] = (64, 64)
    context: int = 5
    window_frames: int = 32
    n_mels: int = 128

    def to_dict(self) -> dict:  # noqa: D102
        return {"kind": "predictor", **asdict(self), "channels": list(self.channels)}


@dataclass(frozen=True)
class MADESpec:
    """Group MADE over ``frames x n_mels`` stacked frames in groups of ``group`` bands."""

    name: str
    hidden: tuple[int, ...] = (256, 256)
    group: int = 32
    frames: int = 5
    n_mels: int = 128

    @property
    def n_in(self) -> int:  # noqa: D102
        return self.frames * self.n_mels

    def to_dict(self) -> dict:  # noqa: D102
        return {"kind": "made", **asdict(self), "hidden": list(self.hidden)}


def spec_from_dict(data: dict) -> DenseAESpec | PredictorSpec | MADESpec | ArchSpec:
    """Rebuild any spec of this module (or an ``ArchSpec``) from its ``to_dict``."""
    kinds = {"dense_ae": DenseAESpec, "predictor": PredictorSpec, "made": MADESpec}
    data = dict(data)
    kind = data.pop("kind", None)
    if kind is None:
        return ArchSpec.from_dict(data)
    if kind not in kinds:
        raise ValueError(f"unknown anomaly spec kind {kind!r}")
    return kinds[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _fc_stats(layers: list[tuple[int, int]], bn_layers: int) -> dict:
    weights = sum(a * b for a, b in layers)
    biases = sum(b for _, b in layers)
    bn = sum(b for _, b in layers[:bn_layers])
    return {
        "params": weights + biases + 2 * bn,
        "deployed_params": weights + biases,
        "macs": weights,
        "weight_bytes_int8": weights + 4 * biases,
    }


def stats(spec: DenseAESpec | PredictorSpec | MADESpec | ArchSpec) -> dict:
    """Parameters (torch), deployed parameters (BatchNorm folded), MACs per window and int8
    weight bytes (weights int8, biases int32) of a spec."""
    if isinstance(spec, ArchSpec):
        s = spec_stats(spec)
        return {k: s[k] for k in ("params", "deployed_params", "macs", "weight_bytes_int8")}
    if isinstance(spec, DenseAESpec):
        return _fc_stats(spec.sizes(), len(spec.units))
    if isinstance(spec, MADESpec):
        dims = [spec.n_in, *spec.hidden, 2 * spec.n_in]
        out = _fc_stats(list(zip(dims, dims[1:], strict=False)), 0)
        return out  # masked weights are counted as stored (dense matrices with zeros)
    t_out = spec.window_frames - spec.context + 1
    convs = [(spec.context * spec.n_mels, spec.channels[0])]
    convs += list(zip(spec.channels, spec.channels[1:], strict=False))
    convs += [(spec.channels[-1], spec.n_mels)]
    out = _fc_stats(convs, len(spec.channels))
    out["params"] -= len(spec.channels) and sum(spec.channels)  # convs before BN: no bias
    out["macs"] *= t_out
    return out


#: The small dense AE (hidden 64-64-8-64-64) and the DCASE 2020 baseline (640-128x4-8-128x4).
DENSE_AE_SMALL = DenseAESpec("dense_ae_small", (64, 64, 8, 64, 64))
DENSE_AE_DCASE = DenseAESpec("dense_ae", (128, 128, 128, 128, 8, 128, 128, 128, 128))
PREDICTOR = PredictorSpec("causal_conv")
MADE = MADESpec("group_made")


def id_classifier_spec(
    n_classes: int, size: str = "student", mel_position: bool = True
) -> ArchSpec:
    """DS-CNN machine-ID classifier over ``[32 frames, 128 mels]`` windows.

    ``size``: ``"student"`` (about 6.8 k parameters with 28 classes, the deployable one),
    ``"medium"`` or ``"teacher"`` (about 71 k, the distillation teacher).

    ``mel_position``: end with a depthwise block whose kernel spans the whole remaining mel
    axis (16 bands, stride 16), so each channel weighs every frequency position separately
    before the head's global pool. Without it the network is frequency-shift invariant beyond
    its receptive field: machine instances differ mostly in *where* their tones and
    resonances sit (speed, geometry), and a loud foreign tone is then confidently taken for
    some instance. ``False``: the plain DS-CNN (the supervised classifier).
    """
    widths = {
        "student": [12, 24, 24, 32, 32],
        "medium": [24, 48, 48, 64, 64],
        "teacher": [48, 96, 96, 128, 128],
    }[size]
    strides = [(2, 2), (1, 1), (2, 2), (1, 1)]
    spec = ds_cnn(
        f"id_{size}", widths, strides, n_classes=n_classes, window_frames=ID_WINDOW, n_mels=128
    )
    if not mel_position:
        return spec
    mels_left = 128 // 8  # first conv and two DSConv blocks stride 2 in mel
    last = DSConv(widths[-1], (1, mels_left), (1, mels_left))
    return replace(spec, blocks=(*spec.blocks, last))
