"""Every method trains on the tiny corpus and separates a blatant anomaly (a loud added tone)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model_dev.anomaly import detectors as det
from model_dev.anomaly import nets, specs
from model_dev.anomaly.methods import METHODS
from model_dev.anomaly.metrics import auc, fit_threshold
from model_dev.anomaly.pipeline import TypeData, score_record, train_detector, type_data
from model_dev.anomaly.training import FitConfig
from model_dev.audio import read_audio
from model_dev.frontend import Frontend

#: Patch-window methods see two windows per tiny clip: small batches, more epochs.
EPOCHS = {
    "id_classifier": 25,
    "supervised": 15,
    "causal_conv": 20,
    "transformer": 10,
    "conv_vae": 15,
}


@pytest.fixture(scope="module")
def blatant(tiny_prepared) -> TypeData:
    """Fan data: the test split is the normal test clips and the same clips plus a loud tone."""
    ms, fs = tiny_prepared
    data = type_data(ms, fs, "fan")
    fe = Frontend(fs.config)
    normal = data.test_labels == 0
    toned = []
    for cid in np.array(data.test_clip_ids)[normal]:
        audio = read_audio(ms.dataset.root / cid).astype(np.float64)
        # a loud harmonic tone (440 Hz sawtooth): it lifts most mel bands, so even a method
        # that splits on one band at a time (Isolation Forest) meets it
        tone = 8000 * (2 * ((440.0 * np.arange(len(audio)) / 16000) % 1.0) - 1)
        toned.append(fe.dequantize(fe(np.clip(audio + tone, -32768, 32767).astype(np.int16))))
    clips = [c for c, n in zip(data.test, normal, strict=True) if n]
    ids = data.test_ids[normal]
    return dataclasses.replace(
        data,
        test=clips + toned,
        test_ids=np.r_[ids, ids],
        test_labels=np.r_[np.zeros(len(ids)), np.ones(len(ids))].astype(np.int64),
        test_faults=[""] * len(ids) + ["tone"] * len(ids),
        test_severities=np.r_[np.zeros(len(ids)), np.full(len(ids), 3)].astype(np.int64),
        test_clip_ids=[f"n{i}" for i in range(len(ids))] + [f"t{i}" for i in range(len(ids))],
    )


@pytest.mark.parametrize("method", list(METHODS))
def test_method_separates_a_loud_tone(method: str, blatant: TypeData) -> None:
    batch = 16 if METHODS[method].layout.kind == "patch" else 64
    cfg = FitConfig(epochs=EPOCHS.get(method, 5), batch_size=batch, seed=0, device="cpu")
    record = train_detector(method, blatant, cfg, progress=False)
    own = blatant.test_ids
    scores = score_record(record, blatant.test, own, blatant.silence, "cpu")
    keep = np.ones(len(scores), bool)
    if method == "supervised":  # judged on the half it did not train on
        from model_dev.anomaly.pipeline import supervised_half

        keep = ~supervised_half(blatant)
    assert auc(blatant.test_labels[keep], scores[keep]) >= 0.9
    # the threshold comes from the held-out normal clips alone
    val = score_record(record, blatant.val, blatant.val_ids, blatant.silence, "cpu")
    assert record["threshold"]["value"] == pytest.approx(fit_threshold(val)["value"])
    assert record["threshold"]["n_clips"] == len(blatant.val)
    assert record["method"] == method and record["ids"] == list(blatant.ids)


@pytest.mark.parametrize(
    "spec", [specs.DENSE_AE_SMALL, specs.DENSE_AE_DCASE, specs.PREDICTOR, specs.MADE]
)
def test_spec_stats_count_the_torch_parameters(spec) -> None:
    model = {
        specs.DenseAESpec: nets.DenseAE,
        specs.PredictorSpec: nets.CausalConvPredictor,
        specs.MADESpec: nets.GroupMADE,
    }[type(spec)](spec)
    s = specs.stats(spec)
    assert s["params"] == sum(p.numel() for p in model.parameters())
    assert specs.spec_from_dict(spec.to_dict()) == spec


def test_dcase_baseline_shape_and_causal_predictor_is_causal() -> None:
    assert specs.DENSE_AE_DCASE.sizes()[0] == (640, 128) and specs.DENSE_AE_DCASE.units[4] == 8
    torch.manual_seed(0)
    model = nets.CausalConvPredictor(specs.PREDICTOR).eval()
    x = torch.randn(1, 32, 128)
    y = x.clone()
    y[:, 20:] += 5.0  # changing frames >= 20 must not change predictions of frames <= 20
    with torch.no_grad():
        a, b = model(x), model(y)
    k = specs.PREDICTOR.context
    assert a.shape == (1, 32 - k + 1, 128)
    torch.testing.assert_close(a[:, : 20 - k + 1], b[:, : 20 - k + 1])
    assert not torch.allclose(a[:, 20 - k + 1 :], b[:, 20 - k + 1 :])


def test_group_made_is_autoregressive_over_groups() -> None:
    torch.manual_seed(0)
    made = nets.GroupMADE(specs.MADESpec("m", hidden=(64,), group=4, frames=1, n_mels=12))
    x = torch.randn(1, 12, requires_grad=True)
    mu, _ = made.head(made.body(x)).chunk(2, dim=1)
    for g in range(3):  # outputs of group g depend only on inputs of groups < g
        grad = torch.autograd.grad(mu[0, 4 * g : 4 * g + 4].sum(), x, retain_graph=True)[0]
        assert torch.all(grad[0, 4 * g :] == 0)
        if g:
            assert torch.any(grad[0, : 4 * g] != 0)


def test_pseudo_instances_add_classes() -> None:
    clips = [np.random.default_rng(i).normal(size=(10, 16)).astype(np.float32) for i in range(6)]
    clips[0] = np.repeat(np.arange(10, dtype=np.float32)[:, None], 16, axis=1)  # frame t = t
    ids = np.array([0, 0, 1, 1, 2, 2])
    out, out_ids = det.pseudo_instances(clips, ids, 3)
    groups = 1 + len(det.PSEUDO)
    assert len(out) == 6 * groups and sorted(set(out_ids.tolist())) == list(range(3 * groups))
    for g, (axis, factor) in enumerate(det.PSEUDO):
        first = out[6 * (g + 1)]  # clip 0 (ID 0) transformed by group g: class (g + 1) K
        assert out_ids[6 * (g + 1)] == 3 * (g + 1)
        if axis == "time":  # played `factor` times faster: frame t of the copy is t * factor
            np.testing.assert_allclose(first[:, 3], np.arange(0, 9, factor), rtol=1e-6)
        else:  # frames unchanged along time, bands moved
            assert first.shape == clips[0].shape
            np.testing.assert_array_equal(first[:, 0], clips[0][:, 0])
    up = out[6 * (1 + det.PSEUDO.index(("mel", 1.08))) + 2]  # clip 2 warped up 8 %
    w = 8 / 1.08 - 7  # band 8 of the copy reads band 8 / 1.08 of the original
    np.testing.assert_allclose(up[:, 8], clips[2][:, 7] * (1 - w) + clips[2][:, 8] * w, atol=1e-5)


@pytest.mark.parametrize("mel_position", [True, False])
def test_id_classifier_weighs_every_mel_position(mel_position: bool) -> None:
    """With the mel-position block (the last depthwise kernel spans the whole remaining mel
    axis) the head sees where in frequency a pattern is; the plain DS-CNN, which pools
    globally, gives the same logits for a pattern moved by a multiple of its mel stride."""
    from model_dev.arch import layers

    spec = specs.id_classifier_spec(16, mel_position=mel_position)
    last = layers(spec)[-2]  # the depthwise conv of the last DSConv block
    assert (last.op == "depthwise" and last.kernel[1] == last.in_tf[1] == 16) == mel_position
    x = torch.zeros(1, 32, 128)
    shifted = x.clone()
    x[:, :, 40:44], shifted[:, :, 80:84] = 3.0, 3.0  # the same band pattern, 40 bands higher
    torch.manual_seed(0)
    net = nets.IDClassifier(spec).eval()
    with torch.no_grad():
        same = torch.allclose(net(x)[0], net(shifted)[0], atol=1e-5)
    assert same != mel_position
