"""Keras mirror of a torch student, built from the same block spec, with the torch weights.

:func:`build_keras` loops over :func:`model_dev.arch.layers` (the list every builder uses), so the
two models cannot disagree on structure; :func:`check_drift` proves they agree numerically before
anything is converted. Per layer, torch's ``F.pad`` + conv + BatchNorm + ReLU becomes one Keras
conv with ``padding="same"`` (the spec's padding *is* TF-same), ReLU fused, and the eval-mode
BatchNorm folded into the weights and a bias::

    k = gamma / sqrt(running_var + eps)
    W' = W * k (per output channel),  b' = beta - running_mean * k

Weights: conv OIHW -> HWIO, depthwise ``[C, 1, kh, kw]`` -> ``[kh, kw, C, 1]``, dense
``[K, C]`` -> ``[C, K]``. The head is global average pooling (TFLite MEAN), dense
(FULLY_CONNECTED) and a sigmoid (LOGISTIC), so the converted int8 output is a probability with
scale 1/256 and zero point -128.

Input: ``[1, window_frames, n_mels, 1]`` NHWC float, the *dequantised* front-end features
``(q - input_zero_point) * input_scale``, exactly what the torch model sees.
"""

from __future__ import annotations

import numpy as np
import torch

from model_dev.arch import ArchSpec, layers
from model_dev.torch_net import TorchNet, build_torch

#: Largest allowed |Keras - torch| of the float outputs (probabilities) and, relative to the
#: logits' magnitude, of the logits.
DRIFT_TOLERANCE = 1e-4


class DriftError(ValueError):
    """The Keras mirror does not compute what the torch model computes."""


def _folded(layer: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight with its BatchNorm folded in (torch layout) and the resulting bias."""
    bn = layer.bn
    k = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    w = layer.conv.weight.detach().double() * k[:, None, None, None]
    b = bn.bias.detach().double() - bn.running_mean.detach().double() * k
    return w.numpy().astype(np.float32), b.numpy().astype(np.float32)


def build_keras(spec: ArchSpec, torch_model: TorchNet | None = None, *, logits: bool = False):
    """Build the Keras model of ``spec``, optionally with a torch model's weights.

    Parameters
    ----------
    spec : ArchSpec
        The architecture (the torch model's ``spec``).
    torch_model : TorchNet, optional
        Weights to copy (eval-mode BatchNorm folded); default: Keras' random initialisation.
    logits : bool
        End at the dense layer (logits) instead of the sigmoid; for drift checks.

    Returns
    -------
    keras.Model
        Input ``[1, window_frames, n_mels, 1]`` float32 (dequantised features), output
        ``[1, n_classes]`` probabilities (or logits).
    """
    import keras

    if torch_model is not None and torch_model.spec != spec:
        raise ValueError(
            f"build_keras: torch model is {torch_model.spec.name!r}, spec {spec.name!r}"
        )
    lys = layers(spec)
    inp = keras.Input((spec.window_frames, spec.n_mels, 1), batch_size=1, name="features")
    x = inp
    convs = []
    for i, ly in enumerate(lys):
        if ly.op == "depthwise":
            conv = keras.layers.DepthwiseConv2D(
                ly.kernel, ly.stride, "same", activation="relu", name=f"dw{i}"
            )
        else:
            conv = keras.layers.Conv2D(
                ly.cout, ly.kernel, ly.stride, "same", activation="relu", name=f"conv{i}"
            )
        x = conv(x)
        convs.append(conv)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    dense = keras.layers.Dense(spec.n_classes, name="dense")
    x = dense(x)
    if not logits:
        x = keras.layers.Activation("sigmoid", name="scores")(x)
    model = keras.Model(inp, x, name=spec.name)
    if torch_model is not None:
        for ly, conv, tl in zip(lys, convs, torch_model.layers, strict=True):
            w, b = _folded(tl)
            perm = (2, 3, 0, 1) if ly.op == "depthwise" else (2, 3, 1, 0)
            conv.set_weights([w.transpose(perm), b])
        head = torch_model.head
        dense.set_weights(
            [head.weight.detach().numpy().T.copy(), head.bias.detach().numpy().copy()]
        )
    return model


def check_drift(keras_model, torch_model: TorchNet, x: np.ndarray) -> float:
    """Assert that the Keras mirror computes the torch model's outputs.

    Parameters
    ----------
    keras_model : keras.Model
        From :func:`build_keras` (probability or logit output).
    torch_model : TorchNet
        The source model (put in eval mode here).
    x : np.ndarray
        Dequantised windows ``[N, frames, mels]`` (float).

    Returns
    -------
    float
        Largest absolute difference of the outputs.

    Raises
    ------
    DriftError
        If the outputs differ by more than :data:`DRIFT_TOLERANCE` (probabilities: absolute;
        logits: relative to ``max(1, max |logit|)``).
    """
    x = np.asarray(x, dtype=np.float32)
    torch_model.eval()
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x))[0].double().numpy()
    is_probs = keras_model.layers[-1].name == "scores"
    if is_probs:
        ref = 1.0 / (1.0 + np.exp(-ref))
    got = np.concatenate([keras_model(x[i : i + 1, ..., None]).numpy() for i in range(len(x))])
    diff = float(np.max(np.abs(got.astype(np.float64) - ref))) if len(x) else 0.0
    scale = 1.0 if is_probs else max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    if not diff <= DRIFT_TOLERANCE * scale:
        raise DriftError(
            f"Keras mirror of {torch_model.spec.name!r} drifts from torch: max |diff| "
            f"{diff:.3g} > {DRIFT_TOLERANCE * scale:.3g} on {len(x)} windows "
            f"({'probabilities' if is_probs else 'logits'}); the spec builders disagree"
        )
    return diff


def random_student(spec: ArchSpec, seed: int = 0) -> TorchNet:
    """A torch model of ``spec`` with random weights and non-trivial BatchNorm statistics
    (for tests and benchmarks: folding identity BatchNorms would prove nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # deterministic init, caller's RNG untouched
        torch.manual_seed(seed)
        model = build_torch(spec).eval()
    with torch.no_grad():
        for tl in model.layers:
            n = tl.bn.num_features
            tl.bn.weight.copy_(0.5 + torch.rand(n, generator=gen))
            tl.bn.bias.copy_(0.2 * torch.randn(n, generator=gen))
            tl.bn.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
            tl.bn.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return model


# --------------------------------------------------------------------------------------------
# Anomaly networks (model_dev.anomaly.specs): dense autoencoder and causal conv predictor
# --------------------------------------------------------------------------------------------
def _folded_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: torch.nn.Module):
    """Fold an eval-mode BatchNorm after a linear map (any weight layout, out channels first)."""
    k = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    w = weight.detach().double() * k.reshape(-1, *([1] * (weight.dim() - 1)))
    b0 = bias.detach().double() if bias is not None else torch.zeros_like(k)
    b = bn.bias.detach().double() + (b0 - bn.running_mean.detach().double()) * k
    return w.numpy().astype(np.float32), b.numpy().astype(np.float32)


def build_keras_anomaly(spec, torch_model=None):
    """Keras mirror of a deployable anomaly network (``DenseAESpec`` or ``PredictorSpec``).

    Input ``[1, frames, n_mels, 1]`` (dequantised features). Dense AE: RESHAPE to the
    frame-major vector, FULLY_CONNECTED (BatchNorm folded, ReLU) per hidden layer, linear
    FULLY_CONNECTED output ``[1, frames * n_mels]``. Predictor: CONV_2D ``(context, n_mels)``
    valid and 1x1 CONV_2D (BatchNorm folded, ReLU), a linear 1x1 CONV_2D to ``n_mels`` and
    RESHAPE to ``[1, T - context + 1, n_mels]``. With ``torch_model`` its weights are copied.
    """
    import keras

    from model_dev.anomaly.specs import DenseAESpec

    dense = isinstance(spec, DenseAESpec)
    frames = spec.frames if dense else spec.window_frames
    inp = keras.Input((frames, spec.n_mels, 1), batch_size=1, name="features")
    if dense:
        x = keras.layers.Reshape((spec.n_in,))(inp)
        units = [*spec.units, spec.n_in]
        layers_ = [keras.layers.Dense(u, activation="relu" if i < len(spec.units) else None)
                   for i, u in enumerate(units)]  # fmt: skip
    else:
        kernels = [(spec.context, spec.n_mels)] + [(1, 1)] * len(spec.channels)
        outs = [*spec.channels, spec.n_mels]
        layers_ = [
            keras.layers.Conv2D(
                c, k, padding="valid", activation="relu" if i < len(outs) - 1 else None
            )
            for i, (c, k) in enumerate(zip(outs, kernels, strict=True))
        ]
        x = inp
    for layer in layers_:
        x = layer(x)
    if not dense:
        x = keras.layers.Reshape((spec.window_frames - spec.context + 1, spec.n_mels))(x)
    model = keras.Model(inp, x, name=spec.name)
    if torch_model is not None:
        for layer, (w, b) in zip(layers_, _anomaly_weights(torch_model, dense), strict=True):
            layer.set_weights([w, b])
    return model


def _anomaly_weights(model, dense: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Keras-layout (weight, bias) of every layer of a DenseAE / CausalConvPredictor."""
    out = []
    if dense:
        for block in model.body:
            w, b = _folded_bn(block[0].weight, block[0].bias, block[1])
            out.append((w.T.copy(), b))
        out.append((model.out.weight.detach().numpy().T.copy(), model.out.bias.detach().numpy()))
        return out
    for block in [model.first, *model.hidden]:
        w, b = _folded_bn(block[0].weight, None, block[1])
        out.append((w.transpose(2, 3, 1, 0).copy(), b))
    w = model.out.weight.detach().numpy()
    out.append((w.transpose(2, 3, 1, 0).copy(), model.out.bias.detach().numpy().copy()))
    return out


def check_anomaly_drift(keras_model, torch_model, x: np.ndarray) -> float:
    """Largest |Keras - torch| over windows ``x`` ``[N, frames, n_mels]``; raises
    :class:`DriftError` above :data:`DRIFT_TOLERANCE` relative to ``max(1, max |output|)``."""
    x = np.asarray(x, dtype=np.float32)
    torch_model.eval()
    with torch.no_grad():
        t = torch.from_numpy(x)
        ref = torch_model(t.flatten(1) if hasattr(torch_model, "body") else t).double().numpy()
    got = np.concatenate([keras_model(x[i : i + 1, ..., None]).numpy() for i in range(len(x))])
    diff = float(np.max(np.abs(got.reshape(ref.shape) - ref)))
    scale = max(1.0, float(np.max(np.abs(ref))))
    if not diff <= DRIFT_TOLERANCE * scale:
        raise DriftError(f"Keras mirror of {keras_model.name!r} drifts from torch: {diff:.3g}")
    return diff


# --------------------------------------------------------------------------------------------
# Group MADE for the device: standardisation folded in, outputs in input units
# --------------------------------------------------------------------------------------------
def made_device_outputs(model, x: np.ndarray, gain: float) -> np.ndarray:
    """What the device's Group MADE computes, from the torch model (float64): for windows
    ``x`` ``[N, frames, n_mels]`` (dequantised features) the means in input units
    ``mu_z * scale + shift`` and the log-scales in input units times ``gain``,
    ``gain * (log_s_z + log scale)``, side by side ``[N, 2 n_in]``. The host model's clamp of
    the log-scales to [-5, 5] is left out (per-dimension bounds in input units: no op expresses
    them; the int8 output's range takes its place)."""
    shift, scale = model.shift.double(), model.scale.double()
    model.eval()
    with torch.no_grad():
        z = (torch.from_numpy(np.asarray(x, np.float64)).flatten(1) - shift) / scale
        mu, log_s = model.head.double()(model.body.double()(z)).chunk(2, dim=1)
        model.float()
    out = torch.cat([mu * scale + shift, gain * (log_s + torch.log(scale))], dim=1)
    return out.numpy()


def made_gain(model, x: np.ndarray) -> float:
    """The log-scale gain that makes both halves of the head's output span the same range on
    windows ``x`` (they share one int8 scale): range of the means / range of the log-scales."""
    out = made_device_outputs(model, x, 1.0)
    n = model.spec.n_in
    return float(np.ptp(out[:, :n]) / max(float(np.ptp(out[:, n:])), 1e-6))


def _made_weights(model, gain: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Keras (weight, bias) of each masked layer of a GroupMADE: masks applied, the input
    standardisation folded into the first layer, the head's outputs moved to input units (and
    the log-scales multiplied by ``gain``), as :func:`made_device_outputs` defines them."""
    from model_dev.anomaly.nets import _MaskedLinear

    shift, scale, n = model.shift.double(), model.scale.double(), model.spec.n_in
    linears = [m for m in model.body if isinstance(m, _MaskedLinear)] + [model.head]
    out = []
    for i, lin in enumerate(linears):
        w = (lin.weight * lin.mask).detach().double()  # [out, in]
        b = lin.bias.detach().double()
        if i == 0:  # z = (x - shift) / scale
            b = b - w @ (shift / scale)
            w = w / scale[None, :]
        if lin is model.head:
            w = torch.cat([w[:n] * scale[:, None], gain * w[n:]])
            b = torch.cat([b[:n] * scale + shift, gain * (b[n:] + torch.log(scale))])
        out.append((w.T.numpy().astype(np.float32), b.numpy().astype(np.float32)))
    return out


def build_keras_made(model, gain: float):
    """Keras mirror of a trained ``GroupMADE`` for the device: input ``[1, frames, n_mels, 1]``,
    RESHAPE, FULLY_CONNECTED + ReLU per hidden layer (masked weights are zeros), a linear
    FULLY_CONNECTED head ``[1, 2 n_in]`` computing :func:`made_device_outputs`."""
    import keras

    spec = model.spec
    inp = keras.Input((spec.frames, spec.n_mels, 1), batch_size=1, name="features")
    x = keras.layers.Reshape((spec.n_in,))(inp)
    layers_ = [keras.layers.Dense(h, activation="relu") for h in spec.hidden]
    layers_.append(keras.layers.Dense(2 * spec.n_in))
    for layer in layers_:
        x = layer(x)
    keras_model = keras.Model(inp, x, name=spec.name)
    for layer, (w, b) in zip(layers_, _made_weights(model, gain), strict=True):
        layer.set_weights([w, b])
    return keras_model


def check_made_drift(keras_model, model, x: np.ndarray, gain: float) -> float:
    """Largest |Keras - :func:`made_device_outputs`| over windows ``x``; :class:`DriftError`
    above :data:`DRIFT_TOLERANCE` relative to ``max(1, max |output|)``."""
    x = np.asarray(x, dtype=np.float32)
    ref = made_device_outputs(model, x, gain)
    got = np.concatenate([keras_model(x[i : i + 1, ..., None]).numpy() for i in range(len(x))])
    diff = float(np.max(np.abs(got - ref)))
    scale = max(1.0, float(np.max(np.abs(ref))))
    if not diff <= DRIFT_TOLERANCE * scale:
        raise DriftError(f"Keras mirror of {keras_model.name!r} drifts from torch: {diff:.3g}")
    return diff
