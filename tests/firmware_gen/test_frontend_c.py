"""The C front end equals the Python reference byte for byte (contract 1)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from firmware_gen.frontend_c import FRONTEND_FILES, check_split_symmetry, write_frontend
from firmware_gen.host_build import build_frontend_cli, run_frontend_cli
from model_dev.anomaly.data import ANOMALY_FRONTEND
from model_dev.frontend import Frontend, FrontendConfig, cos_q30
from model_dev.synth import synthesize_clip
from tests.signals import edge_signals

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

CONFIGS = {
    "default": FrontendConfig(),
    # a second shape: different FFT size, window, hop, bands, range and log scaling
    "small": FrontendConfig(
        window_length=128,
        hop_length=64,
        fft_size=128,
        n_mels=16,
        fmin_hz=200.0,
        fmax_hz=6000.0,
        log2_steps=5,
        log_offset=150,
    ),
    # the anomaly task's: a 1024-sample window, whose power values need 64 bits
    "anomaly": ANOMALY_FRONTEND,
}


def _signals() -> dict[str, np.ndarray]:
    sig = edge_signals()
    for i in range(12):  # real corpus clips
        sig[f"corpus_{i}"] = synthesize_clip(i, seed=7, duration_s=2.0)[0]
    return sig


@pytest.fixture(scope="module")
def signals():
    return _signals()


def test_enough_signals(signals):
    assert len(signals) >= 200


@pytest.mark.parametrize("mode", ["clip", "stream"])
@pytest.mark.parametrize("name", CONFIGS)
def test_c_equals_python(tmp_path, signals, name, mode):
    cfg = CONFIGS[name]
    exe = build_frontend_cli(cfg, tmp_path, sanitize=True)
    reference = Frontend(cfg)
    names = list(signals)
    got = run_frontend_cli(exe, [signals[n] for n in names], cfg, mode)
    for n, features in zip(names, got, strict=True):
        expected = reference.reference(signals[n])  # numpy, not the C extension
        if not np.array_equal(features, expected):
            frame, band = np.argwhere(features != expected)[0]
            pytest.fail(
                f"{name}/{mode}: signal {n!r} differs at frame {frame}, band {band}: "
                f"C {features[frame, band]} vs Python {expected[frame, band]}"
            )


@pytest.mark.parametrize("window_length, fft_size", [(401, 512), (300, 512), (500, 2048)])
def test_other_shapes_equal_python(tmp_path, signals, window_length, fft_size):
    """The C front end's odd-window branch (last FFT input pair half empty), a window that leaves
    the first FFT stage's last quarter of inputs empty and the third partly empty, and a larger
    FFT (five radix-4 stages)."""
    cfg = FrontendConfig(window_length=window_length, fft_size=fft_size)
    exe = build_frontend_cli(cfg, tmp_path, sanitize=True)
    names = list(signals)[:60]
    got = run_frontend_cli(exe, [signals[n] for n in names], cfg, "clip")
    reference = Frontend(cfg)
    for n, features in zip(names, got, strict=True):
        assert np.array_equal(features, reference(signals[n])), n


@pytest.mark.parametrize("fft_size", [8, 32, 128, 512, 2048, 8192, 32768])
def test_twiddle_table_is_mirror_symmetric_for_every_fft_size(fft_size):
    """The C split step's shortcut (bins k and N/2 - k from one pair of products) holds for every
    FFT size the C front end builds (N/2 = 4**k up to 16384)."""
    check_split_symmetry(cos_q30(FrontendConfig(fft_size=fft_size, window_length=8, hop_length=8)))
    broken = cos_q30(FrontendConfig()).copy()
    broken[200] += 1
    with pytest.raises(ValueError, match="not mirror-symmetric"):
        check_split_symmetry(broken)


def test_generated_files_are_byte_identical(tmp_path):
    cfg = FrontendConfig()
    first = [p.read_bytes() for p in write_frontend(cfg, tmp_path / "a")]
    second = [p.read_bytes() for p in write_frontend(cfg, tmp_path / "b")]
    assert first == second
    header = first[FRONTEND_FILES.index("aed/include/aed_frontend_config.h")].decode()
    assert cfg.hash in header and cfg.short_hash in header


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_builds_for_cortex_m4_without_warnings(tmp_path):
    import subprocess

    sources = [p for p in write_frontend(FrontendConfig(), tmp_path) if p.suffix == ".c"]
    for src in sources:
        cmd = [
            "arm-none-eabi-gcc",
            "-mcpu=cortex-m4",
            "-mthumb",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-Os",
            f"-I{tmp_path / 'aed' / 'include'}",
            "-c",
            str(src),
            "-o",
            str(src.with_suffix(".o")),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
