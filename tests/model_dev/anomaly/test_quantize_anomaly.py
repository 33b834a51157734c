"""Dense autoencoder -> full-int8 .tflite: metadata, integer scores equal to the Python integer
reference (written out a second time here with Python ints), and the int8 model still separates
a blatant anomaly (a loud tone, the fixture of test_methods)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_gen.fixed_point import mbqm, quantize_multiplier
from model_dev.anomaly.data import ANOMALY_FRONTEND
from model_dev.anomaly.pipeline import train_detector
from model_dev.anomaly.training import FitConfig
from quantize.anomaly import integer_window_scores, quantize_detector, scales_of, threshold_q
from tests.model_dev.anomaly.test_methods import blatant  # noqa: F401 (fixture)


def _requantize_py(y: int, s_in: float, zp_in: int, s_out: float, zp_out: int) -> int:
    """The scalar twin of the C engine's MultiplyByQuantizedMultiplier, with Python ints."""
    m, shift = quantize_multiplier(float(np.float64(s_out) / np.float64(s_in)))
    return min(max(mbqm(y - zp_out, m, shift) + zp_in, -128), 127)


def _score_py(window: np.ndarray, output: np.ndarray, scales) -> int:
    return sum(
        (int(x) - _requantize_py(int(y), *scales)) ** 2
        for x, y in zip(window.reshape(-1), output.reshape(-1), strict=True)
    )


def test_quantize_multiplier_and_saturated_scores() -> None:
    for real in (1.0, 0.75, 1.3, 0.02, 3.0):
        m, shift = quantize_multiplier(real)
        assert 2**30 <= m < 2**31 and abs(m * 2.0 ** (shift - 31) - real) <= real * 2**-31
    # the largest window score: every input at 127, every output at -128 (same scale)
    scales = (0.25, 0, 0.25, 0)
    x = np.full((1, 5, 128), 127, np.int8)
    y = np.full((1, 640), -128, np.int8)
    assert integer_window_scores(x, y, scales).tolist() == [640 * 255**2]
    assert 640 * 255**2 < 2**31  # fits the device's int32 accumulator


@pytest.fixture(scope="module")
def quantized(blatant, tmp_path_factory):  # noqa: F811
    cfg = FitConfig(epochs=5, batch_size=64, seed=0, device="cpu")
    record = train_detector("dense_ae_small", blatant, cfg, progress=False)
    out = tmp_path_factory.mktemp("q") / "fan.tflite"
    return record, quantize_detector(record, blatant, ANOMALY_FRONTEND, out), out


def test_dense_ae_int8_metadata_and_integer_scores(quantized, blatant) -> None:  # noqa: F811
    from quantize.metadata import read_metadata
    from quantize.runtime import run_litert, run_tflm

    record, r, out = quantized
    meta = read_metadata(out)
    assert (meta.task, meta.method, meta.machine_type) == ("anomaly", "dense_ae_small", "fan")
    assert (meta.score, meta.aggregation) == ("reconstruction_sse", "mean")
    assert (meta.window_frames, meta.window_hop_frames) == (5, 1)
    assert meta.thresholds == (record["threshold"]["value"],)
    assert meta.thresholds_q == (threshold_q(meta.thresholds[0], 640, meta.input_scale),)
    assert set(r["model"]["ops"]) == {"RESHAPE", "FULLY_CONNECTED"}

    int8 = r["scores"]["int8"]
    windows, scales = int8["windows"], scales_of(meta)
    tflite = out.read_bytes()
    outputs = run_tflm(tflite, windows)  # the written file, run again: the reported scores
    want = integer_window_scores(windows, outputs, scales)
    np.testing.assert_array_equal(want, int8["window_scores"])
    # the reference written out a second time, on 200 windows and a saturating one, with the
    # outputs of both runtimes (they may differ by rare LSBs: DESIGN contract 4)
    pick = np.linspace(0, len(windows) - 1, 200).astype(int)
    extreme = windows[:1].copy()
    extreme[0, ::2] = 127
    extreme[0, 1::2] = -128
    probe = np.concatenate([windows[pick], extreme])
    for run in (run_tflm, run_litert):
        probe_out = run(tflite, probe)
        want = [_score_py(w, o, scales) for w, o in zip(probe, probe_out, strict=True)]
        assert integer_window_scores(probe, probe_out, scales).tolist() == want
    assert r["parity_tflm_litert"]["values"] == outputs.size
    # clip score = mean of its windows' integer scores
    owner = int8["owner"]
    assert int8["clip"][0] == pytest.approx(int8["window_scores"][owner == 0].mean(), abs=0)


def test_dense_ae_int8_separates_a_loud_tone(quantized) -> None:
    _, r, _ = quantized
    assert r["float"]["auc"] >= 0.9
    assert r["int8"]["auc"] >= 0.9
    assert math.isfinite(r["int8"]["pauc"]) and r["n_clips"] == len(r["scores"]["float"])


def test_aedfw_quantize_on_an_anomaly_checkpoint(quantized, tiny_corpus, tmp_path) -> None:
    """`aedfw quantize` dispatches on an anomaly checkpoint: one .tflite per machine type and
    a float vs int8 AUC/pAUC report on the corpus' real test split."""
    import json

    from aedfw.cli import build_parser, main
    from aedfw.commands.quantize import run_anomaly
    from model_dev.anomaly.pipeline import save_checkpoint
    from quantize.metadata import read_metadata

    record, _, _ = quantized
    ckpt = tmp_path / "ae.pt"
    meta = {"frontend": ANOMALY_FRONTEND.to_dict(), "frontend_hash": ANOMALY_FRONTEND.hash}
    save_checkpoint(ckpt, {"fan": record}, meta | {"dataset": {"kind": "dcase", "root": "x"}})
    out = tmp_path / "models"
    argv = ["quantize", str(ckpt), "--data", str(tiny_corpus), "--out", str(out)]
    assert main([*argv, "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "quantize.json").read_text())
    assert list(report["per_type"]) == ["fan"] and report["method"] == "dense_ae_small"
    fan = report["per_type"]["fan"]
    assert {"auc", "pauc"} <= set(fan["float"]) and {"auc", "pauc"} <= set(fan["int8"])
    assert read_metadata(out / "fan.tflite").machine_type == "fan"
    assert (out / "quantize.md").read_text().count("| fan |") == 1
    with pytest.raises(ValueError, match="--split and --limit"):
        run_anomaly(build_parser().parse_args([*argv, "--limit", "3"]))
