"""Drift guard of the deployable anomaly networks' Keras mirrors (float outputs within 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_dev.anomaly import nets, specs


def _random_bn(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics: folding identity BatchNorms would prove nothing."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return model.eval()


@pytest.mark.parametrize("spec", [specs.DENSE_AE_SMALL, specs.DENSE_AE_DCASE, specs.PREDICTOR])
def test_keras_mirror_equals_torch(spec) -> None:
    from quantize.keras_mirror import DriftError, build_keras_anomaly, check_anomaly_drift

    torch.manual_seed(0)
    build = nets.DenseAE if isinstance(spec, specs.DenseAESpec) else nets.CausalConvPredictor
    model = _random_bn(build(spec), 1)
    frames = spec.frames if isinstance(spec, specs.DenseAESpec) else spec.window_frames
    x = np.random.default_rng(0).normal(-3, 3, (4, frames, spec.n_mels)).astype(np.float32)
    mirror = build_keras_anomaly(spec, model)
    check_anomaly_drift(mirror, model, x)  # raises DriftError beyond 1e-4 (relative)
    ops = {type(layer).__name__ for layer in mirror.layers}
    assert ops <= {"InputLayer", "Reshape", "Dense", "Conv2D"}
    with pytest.raises(DriftError):  # a mirror without the weights is caught
        check_anomaly_drift(build_keras_anomaly(spec), model, x)


def test_id_classifier_keras_mirror_equals_torch() -> None:
    """The ID classifier's mel-position block (depthwise kernel and stride (1, 16)) goes
    through the tagging Keras mirror unchanged: logits within the drift tolerance."""
    from quantize.keras_mirror import build_keras, check_drift, random_student

    spec = specs.id_classifier_spec(16)
    model = random_student(spec, seed=1)
    x = np.random.default_rng(0).normal(-3, 3, (3, spec.window_frames, spec.n_mels))
    check_drift(build_keras(spec, model, logits=True), model, x.astype(np.float32))
