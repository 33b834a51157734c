"""The C extension (model_dev._aed_frontend, the device's aed_frontend.c built at install time)
equals the numpy specification and the device C build byte for byte, and is what Frontend runs
for the default config."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from firmware_gen.frontend_c import write_frontend
from firmware_gen.host_build import build_frontend_cli, run_frontend_cli
from model_dev import frontend_native
from model_dev.frontend import Frontend, FrontendConfig
from model_dev.synth import synthesize_clip
from tests.signals import edge_signals


def test_extension_is_built_from_the_tree_s_sources():
    assert frontend_native.status() == "ok", "the C front end extension is missing: make setup"
    assert Frontend(FrontendConfig()).native
    other = FrontendConfig(n_mels=32)
    assert not Frontend(other).native  # built for the default config only: numpy runs
    assert not Frontend(FrontendConfig(), tables=Frontend().tables).native  # tables given


def test_generated_default_tables_are_current(tmp_path):
    """firmware_gen/pyext/default holds write_frontend's output for FrontendConfig() (regenerate
    with write_frontend when the generator or the default config changes)."""
    for path in write_frontend(FrontendConfig(), tmp_path):
        committed = frontend_native.FIRMWARE_GEN / "pyext" / "default" / path.name
        if path.name in ("aed_frontend_config.h", "aed_frontend_tables.c"):
            assert committed.read_bytes() == path.read_bytes(), path.name


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_numpy_extension_and_device_c_agree_byte_for_byte(tmp_path: Path):
    cfg = FrontendConfig()
    signals = edge_signals(seed=3)
    for i in range(6):
        signals[f"corpus_{i}"] = synthesize_clip(i, seed=11, duration_s=3.0)[0]
    names = list(signals)
    fe = Frontend(cfg)
    assert fe.native
    device = run_frontend_cli(
        build_frontend_cli(cfg, tmp_path, sanitize=False), [signals[n] for n in names], cfg
    )
    for name, c_features in zip(names, device, strict=True):
        audio = signals[name]
        spec, ext = fe.reference(audio), fe(audio)
        assert ext.dtype == np.int8 and ext.shape == spec.shape == c_features.shape, name
        assert np.array_equal(spec, ext), f"{name}: extension differs from numpy"
        assert np.array_equal(ext, c_features), f"{name}: extension differs from the device C"
    with pytest.raises(ValueError, match="1-D int16"):
        fe(signals[names[0]].astype(np.float32))  # not int16: numpy's check speaks
