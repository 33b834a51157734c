"""The generated firmware package (real engine, post-processing, host platform) over a pty:
CLASSIFY and INFER equal the host reference (Python front end, TFLM runtime) byte for byte."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from firmware_gen.build import build_firmware
from firmware_gen.package import firmware
from host_tools.device import Device
from model_dev.arch import clip_windows, window_starts
from model_dev.frontend import Frontend
from model_dev.synth import synthesize_clip
from quantize.metadata import read_metadata
from quantize.runtime import run_tflm
from tests.firmware_gen.test_package import make_model
from tests.host_tools.test_protocol import serve

pytestmark = [
    pytest.mark.slow,  # a TFLite conversion and a package build: about a minute
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make and gcc"),
]


def test_package_device_matches_host_reference(tmp_path):
    model = tmp_path / "m.tflite"
    make_model(model)
    meta = read_metadata(model)
    exe = build_firmware(firmware(model, tmp_path / "fw"), "host")
    fe, tflite = Frontend(meta.frontend), model.read_bytes()
    with serve(exe) as port, Device(port, timeout=5.0) as dev:
        assert dev.info.model_hash == meta.model_hash
        assert dev.info.frontend_hash == meta.frontend_hash
        assert dev.info.labels == meta.labels and dev.info.thresholds_q == meta.thresholds_q
        for i, seconds in enumerate((0.3, 1.0, 2.3)):
            audio = synthesize_clip(i, seed=1, duration_s=seconds)[0]
            got = dev.classify(audio)
            features = fe(audio)
            windows = clip_windows(features, meta.window_frames, meta.window_hop_frames)
            scores = run_tflm(tflite, windows).reshape(len(windows), -1)
            assert np.array_equal(got.features, features)
            starts = window_starts(len(features), meta.window_frames, meta.window_hop_frames)
            assert got.window_starts.tolist() == starts
            assert np.array_equal(got.window_scores, scores)
            assert np.array_equal(got.clip_scores, scores.max(axis=0))
            assert np.array_equal(got.decisions, scores.max(axis=0) >= meta.thresholds_q)
            assert np.array_equal(dev.infer(windows[-1]).scores, scores[-1])
        stats = dev.stats()
        assert stats.model_runs > 0 and stats.activation_bytes > 0
        assert dev.bench(5, 1).n == 5
