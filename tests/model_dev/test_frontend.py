"""FrontendConfig identity and the Python reference's numerics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_dev.frontend import (
    Frontend,
    FrontendConfig,
    frame_signal,
    make_tables,
    mel_filters_float,
    power_spectrum,
)
from tests.signals import edge_signals

# Pinned on purpose: if this changes, every cache, checkpoint and firmware keyed on the config
# silently stops matching. Change it only together with ALGORITHM_VERSION or the defaults.
DEFAULT_HASH = "e2046ab3e354df50955d9e081f2d385dd8f42b0776db8b084168a4b8266d63eb"


def test_hash_is_stable_and_pinned():
    cfg = FrontendConfig()
    assert cfg.hash == FrontendConfig().hash == FrontendConfig.from_json(cfg.to_json()).hash
    assert cfg.hash == DEFAULT_HASH


def test_hash_changes_with_every_field():
    cfg = FrontendConfig()
    changed = dict(
        window_length=480,
        hop_length=128,
        fft_size=2048,
        n_mels=32,
        fmin_hz=100.0,
        fmax_hz=8000.0,
        log2_steps=7,
        log_offset=200,
    )
    hashes = {cfg.hash}
    for field, value in changed.items():
        hashes.add(FrontendConfig(**{**cfg.to_dict(), field: value}).hash)
    assert len(hashes) == len(changed) + 1


def test_json_round_trip(tmp_path):
    cfg = FrontendConfig(n_mels=32, fmin_hz=60.0)
    path = tmp_path / "fe.json"
    path.write_text(cfg.to_json())
    assert FrontendConfig.load(path) == cfg
    assert json.loads(cfg.to_json())["n_mels"] == 32


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"n_mel": 40}, "n_mel"),
        ({"fft_size": 256}, "fft_size"),
        ({"hop_length": 0}, "hop_length"),
        ({"fmax_hz": 9000.0}, "fmax_hz"),
        ({"n_mels": "40"}, "n_mels"),
        ({"window_length": 400.5}, "window_length"),
        ({"n_mels": 200}, "mel band"),
        ({"log_offset": 0}, "zero point"),
        ({"sample_rate": 44100}, "sample_rate=44100: must be 16000"),
    ],
)
def test_bad_config_names_the_field(data, needle):
    with pytest.raises(ValueError, match=needle):
        make_tables(FrontendConfig.from_dict(data, "fe.json"))


def test_bad_json_names_the_source():
    with pytest.raises(ValueError, match="my.json"):
        FrontendConfig.from_json("{not json", "my.json")


def test_input_format():
    cfg = FrontendConfig()
    assert (cfg.input_scale, cfg.input_zero_point) == (1 / 6, 32)
    assert [cfg.n_frames(n) for n in (0, 399, 400, 559, 560, 16000)] == [0, 0, 1, 1, 2, 98]


def test_power_spectrum_matches_float_fft():
    cfg = FrontendConfig()
    fe = Frontend(cfg)
    x = np.random.default_rng(0).integers(-32768, 32768, (8, cfg.window_length)).astype(np.int16)
    power, shift = power_spectrum(x, cfg, fe.tables)
    v = ((x.astype(np.int64) << shift[:, None]) * fe.tables.window + (1 << 14)) >> 15
    expected = np.abs(2 * np.fft.rfft(v, n=cfg.fft_size)) ** 2 / 2**16
    assert np.abs(power - expected).max() <= 2e-5 * expected.max()


def test_features_track_librosa_log_mel():
    """Dequantised features = log2(2 S), S = librosa mel power of x / 32768 (module docstring)."""
    import librosa

    cfg = FrontendConfig()
    fe = Frontend(cfg)
    rng = np.random.default_rng(1)
    x = np.clip(rng.standard_normal(16000) * 2000, -32768, 32767).astype(np.int16)
    pad = (cfg.fft_size - cfg.window_length) // 2  # librosa centres the window in the FFT frame
    y = np.pad(x / 32768.0, pad)
    spec = librosa.stft(
        y,
        n_fft=cfg.fft_size,
        hop_length=cfg.hop_length,
        win_length=cfg.window_length,
        window="hann",
        center=False,
    )
    mel = mel_filters_float(cfg) @ np.abs(spec) ** 2
    expected = np.log2(2 * mel.T)
    got = fe.dequantize(fe(x))
    assert got.shape == expected.shape
    # rounding to 1/6 plus Q15 filter weights: within 0.09 of a doubling (0.27 dB)
    assert np.abs(got - expected).max() < 0.09


def test_range_and_silence():
    fe = Frontend()
    sig = edge_signals()
    assert (fe(sig["silence_16000"]) == -128).all()
    loud = fe(sig["square_full_1000"])
    assert 115 <= loud.max() <= 127
    quiet = fe(sig["noise_1_0"])  # 1 LSB noise (-90 dBFS) still sits above the floor
    assert -128 < quiet.min() and np.median(quiet) < -60


def test_frame_signal_rejects_wrong_dtype():
    with pytest.raises(ValueError, match="int16"):
        frame_signal(np.zeros(1000, np.float32), FrontendConfig())


def test_chunking_does_not_change_output():
    cfg = FrontendConfig()
    x = edge_signals()["mix_3"]
    assert np.array_equal(Frontend(cfg, chunk_frames=7)(x), Frontend(cfg)(x))
