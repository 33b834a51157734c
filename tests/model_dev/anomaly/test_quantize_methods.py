"""Causal predictor and ID classifier -> full-int8 .tflite: metadata, the integer scores of
``quantize.anomaly_scores`` (the ID classifier's table arithmetic within its proven error bound
of the exact -log softmax), and the int8 models still separate a blatant anomaly (the loud tone
of test_methods)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_dev.anomaly.data import ANOMALY_FRONTEND
from model_dev.anomaly.pipeline import train_detector
from model_dev.anomaly.training import FitConfig
from quantize.anomaly import quantize_detector
from quantize.anomaly_scores import (
    EXP_Q,
    ID_NLL_ERROR_Q16,
    LN2_Q16,
    LN_TABLE,
    check_outputs,
    id_window_scores,
    ln_q16,
    made_log_scales,
    made_window_scores,
    predictor_window_scores,
    requantize,
    scales_of,
    thresholds_q_of,
    window_scores,
)
from tests.model_dev.anomaly.test_methods import EPOCHS, blatant  # noqa: F401 (fixture)


def _exact_nll(q: np.ndarray, own: np.ndarray, scale: float) -> np.ndarray:
    """-log softmax(own) of the dequantised logits in float64 (the zero point cancels)."""
    logits = float(scale) * q.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return lse - logits[np.arange(len(q)), own]


@pytest.mark.parametrize("n_classes", [2, 12, 28, 255])
def test_id_nll_is_within_its_error_bound(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    worst = 0.0
    for scale in (0.004, 0.03, 0.1, 0.25, 1.0, 4.0):
        q = rng.integers(-128, 128, (400, n_classes))
        q[0], q[1] = 127, -128  # all equal: -log(1/n)
        q[2], q[2, 0] = -128, 127  # saturated: own far below, or the only one
        q[3], q[3, 1] = -128, 127
        q[4:40] = rng.integers(-3, 4, (36, n_classes)) + rng.integers(-100, 100, (36, 1))
        own = rng.integers(0, n_classes, len(q))
        own[2], own[3] = 1, 1
        got = id_window_scores(q.astype(np.int8), own, scale)
        err = np.abs(got - _exact_nll(q, own, scale) * 2**16)
        worst = max(worst, float(err.max()))
    assert worst <= ID_NLL_ERROR_Q16
    assert got.dtype == np.int64 and (got >= 0).all() and got.max() < 2**32


def test_ln_q16_at_the_edges() -> None:
    s = np.array([2**24, 2**24 + 1, 2**25 - 1, 2**25, 3 * 2**24, 2**31, 2**32 - 1])
    got = ln_q16(s)
    exact = np.log(s / 2.0**EXP_Q) * 2**16
    assert np.abs(got - exact).max() <= 2
    assert got[0] == 0 and got[3] == LN2_Q16 and LN_TABLE[-1] == LN2_Q16
    with pytest.raises(ValueError, match="2\\^24"):
        ln_q16(np.array([2**24 - 1]))


def test_predictor_score_compares_each_prediction_with_its_frame() -> None:
    """Row j predicts frame j + k; the last row (frame T) is not scored (written out here)."""
    rng = np.random.default_rng(0)
    t, f, k = 9, 4, 3
    windows = rng.integers(-128, 128, (5, t, f)).astype(np.int8)
    outputs = rng.integers(-128, 128, (5, t - k + 1, f)).astype(np.int8)
    windows[0], outputs[0] = 127, -128  # saturating
    scales = (0.3, -20, 0.45, 7)
    y = requantize(outputs, scales)
    want = [
        sum(
            (int(windows[n, j + k, b]) - int(y[n, j, b])) ** 2
            for j in range(t - k)
            for b in range(f)
        )
        for n in range(5)
    ]
    assert predictor_window_scores(windows, outputs.reshape(5, -1), scales).tolist() == want
    assert 27 * 128 * 255**2 < 2**31  # the deployed predictor's worst case fits int32


def _check_made_against_float(meta, windows, outputs, scores) -> None:
    """The integer Group MADE score against the same NLL in float64 from the same int8 outputs
    (requantised means): per value the tables' rounding is at most 1 unit of 2^-8 nats."""
    n = windows[0].size
    x = windows.reshape(len(windows), -1).astype(np.float64)
    out = outputs.reshape(len(x), 2 * n)
    mu = requantize(out[:, :n], scales_of(meta)).astype(np.float64)
    ls = made_log_scales(meta.output_scale, meta.output_zero_point, meta.log_scale_gain)
    log_s = ls[out[:, n:].astype(np.int64) + 128]
    nll = 0.5 * (meta.input_scale * (x - mu) * np.exp(-log_s)) ** 2 + log_s - ls[0]
    exact = nll.sum(axis=1) * 2**8
    assert np.abs(scores - exact).max() <= n


@pytest.fixture(scope="module", params=["causal_conv", "id_classifier", "group_made"])
def quantized(request, blatant, tmp_path_factory):  # noqa: F811
    method = request.param
    batch = 64 if method == "group_made" else 16  # stacked windows: 40 per tiny clip
    cfg = FitConfig(epochs=EPOCHS.get(method, 5), batch_size=batch, seed=0, device="cpu")
    record = train_detector(method, blatant, cfg, progress=False)
    out = tmp_path_factory.mktemp("q") / f"{method}.tflite"
    return method, record, quantize_detector(record, blatant, ANOMALY_FRONTEND, out), out


def test_int8_metadata_and_integer_scores(quantized, blatant) -> None:  # noqa: F811
    from quantize.convert import check_graph
    from quantize.metadata import read_metadata
    from quantize.runtime import run_tflm

    method, record, r, out = quantized
    meta = read_metadata(out)
    assert (meta.task, meta.method, meta.machine_type) == ("anomaly", method, "fan")
    frames, hop = (5, 1) if method == "group_made" else (32, 8)
    assert (meta.window_frames, meta.window_hop_frames, meta.aggregation) == (frames, hop, "mean")
    info = check_graph(out.read_bytes())
    assert check_outputs(meta, info.output_shape) is None
    assert meta.thresholds_q == thresholds_q_of(meta, info) == (r["threshold"]["q"],)
    int8 = r["scores"]["int8"]
    outputs = run_tflm(out.read_bytes(), int8["windows"])
    if method == "causal_conv":
        assert meta.score == "prediction_sse" and meta.machine_ids == ()
        assert set(r["model"]["ops"]) == {"CONV_2D", "RESHAPE"}
        assert info.output_shape == (1, 28, 128)
        t = meta.thresholds[0]
        assert meta.thresholds_q[0] == math.floor(t * 27 * 128 / meta.input_scale**2) + 1
        want = predictor_window_scores(int8["windows"], outputs, scales_of(meta))
    elif method == "group_made":
        assert meta.score == "gaussian_nll_q8" and meta.log_scale_gain > 0
        assert set(r["model"]["ops"]) == {"RESHAPE", "FULLY_CONNECTED"}
        assert info.output_shape == (1, 1280)
        want = made_window_scores(int8["windows"], outputs, scales_of(meta), meta.log_scale_gain)
        # in float: the Gaussian NLL summed over the window in input units (less n l(-128))
        _check_made_against_float(meta, int8["windows"], outputs, want)
    else:
        assert meta.score == "id_nll_q16" and meta.machine_ids == tuple(record["ids"])
        assert set(r["model"]["ops"]) == {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"}
        assert info.output_shape == (1, 4 * len(record["ids"]))
        assert meta.thresholds_q[0] == math.floor(meta.thresholds[0] * 2**16) + 1
        own = blatant.test_ids[int8["owner"]]  # each window scored against its clip's ID
        want = id_window_scores(outputs, own, meta.output_scale)
        nll = _exact_nll(outputs.astype(np.int64), own, meta.output_scale)
        assert np.abs(want - nll * 2**16).max() <= ID_NLL_ERROR_Q16
        default = window_scores(meta, int8["windows"], outputs)  # the device's default ID 0
        np.testing.assert_array_equal(default, id_window_scores(outputs, 0, meta.output_scale))
    np.testing.assert_array_equal(want, int8["window_scores"])
    owner = int8["owner"]
    assert int8["clip"][0] == pytest.approx(int8["window_scores"][owner == 0].mean(), abs=0)


def test_int8_separates_a_loud_tone(quantized) -> None:
    _, _, r, _ = quantized
    assert r["float"]["auc"] >= 0.9
    assert r["int8"]["auc"] >= 0.9
    assert abs(r["delta_auc"]) <= 0.05


def test_host_only_method_is_refused_naming_it(blatant, tmp_path) -> None:  # noqa: F811
    record = {"method": "vae", "layout": {}}
    with pytest.raises(ValueError, match="'vae' cannot be quantised"):
        quantize_detector(record, blatant, ANOMALY_FRONTEND, tmp_path / "m.tflite")
