"""Shared fixtures of the host_tools tests: one tiny model and its firmware package per session.

The model is a random-init two-class DS-CNN on a small front end (8 mel bands, 64-sample hop),
converted with quantize's API, so that a short clip needs only a few small frames on the link.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from model_dev.frontend import FrontendConfig

HAS_BUILD = shutil.which("gcc") is not None and shutil.which("make") is not None
HAS_M4 = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm")
TINY_FE = FrontendConfig(window_length=128, hop_length=64, fft_size=128, n_mels=8)
TINY_LABELS = ("engine", "human-voice")  # the most frequent synth classes
TINY_WINDOW, TINY_HOP = 16, 8


class EventAtWrite:
    """A serial port that runs ``event()`` just before its ``at``-th write: the device dying
    (``emu.stop``) or power-cycling (``emu.restart``) in the middle of a run."""

    def __init__(self, port, event, at: int) -> None:
        self.port, self.event, self.at, self.writes = port, event, at, 0

    def __getattr__(self, name):
        return getattr(self.port, name)

    @property
    def timeout(self):
        return self.port.timeout

    @timeout.setter
    def timeout(self, value):
        self.port.timeout = value

    @property
    def in_waiting(self):
        return self.port.in_waiting

    def write(self, data):
        self.writes += 1
        if self.writes == self.at:
            self.event()
        return self.port.write(data)


@dataclass(frozen=True)
class TinyPackage:
    """The session's model, its firmware package and a small manifest dataset."""

    model: Path
    fw: Path
    data: Path  # manifest.csv of 200 clips of 1200 samples
    short: Path  # manifest.csv of 200 clips of 320 samples (fault injection)


def make_tiny_model(path: Path, seed: int = 0) -> Path:
    """Random-init tiny student -> full-int8 .tflite with aedfw metadata at ``path``."""
    import torch

    from model_dev.arch import clip_windows, ds_cnn
    from model_dev.frontend import Frontend
    from model_dev.synth import synthesize_clip
    from model_dev.torch_net import build_torch
    from quantize.convert import convert_checked
    from quantize.metadata import ModelMetadata, write_metadata
    from quantize.runtime import arena_size

    torch.manual_seed(seed)
    spec = ds_cnn(
        "tiny", [4, 8], [(2, 2)], n_classes=2, window_frames=TINY_WINDOW, n_mels=TINY_FE.n_mels
    )
    fe = Frontend(TINY_FE)
    calib = np.concatenate(
        [clip_windows(fe(synthesize_clip(i, 3, 1.0)[0]), TINY_WINDOW, 4) for i in range(3)]
    )
    tflite, info, _ = convert_checked(build_torch(spec), calib, TINY_FE)
    path.write_bytes(tflite)
    thresholds = (0.5, 0.3)
    meta = ModelMetadata.for_graph(
        info, TINY_FE, TINY_LABELS, thresholds, TINY_WINDOW, TINY_HOP, arena_size(tflite), spec.name
    )
    write_metadata(path, meta)
    return path


def write_short_clips(folder: Path, n: int, samples: int, seed: int = 5) -> Path:
    """``n`` clips of ``samples`` samples cut from synthetic clips, as a manifest dataset.

    Labels are the tiny model's classes whose events overlap the cut.
    """
    from model_dev.audio import write_wav
    from model_dev.synth import synthesize_clip

    folder.mkdir(parents=True, exist_ok=True)
    rows, per_source, i = [], 4 * 16000 // samples, 0
    while len(rows) < n:
        audio, events = synthesize_clip(i, seed, 4.0)
        for k in range(min(per_source, n - len(rows))):
            start = k * samples
            t0, t1 = start / 16000, (start + samples) / 16000
            labels = sorted(
                {e.label for e in events if e.onset_s < t1 and e.offset_s > t0} & set(TINY_LABELS)
            )
            name = f"clip{len(rows):04d}.wav"
            write_wav(folder / name, audio[start : start + samples])
            rows.append({"path": name, "labels": ";".join(labels), "split": "test"})
        i += 1
    table = folder / "manifest.csv"
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "labels", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return table


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyPackage:
    """Tiny model + firmware package (host build) + short clips, built once per session."""
    if not HAS_BUILD:
        pytest.skip("needs gcc and make")
    from firmware_gen.build import build_firmware
    from firmware_gen.package import firmware

    root = tmp_path_factory.mktemp("tiny")
    model = make_tiny_model(root / "tiny.tflite")
    fw = firmware(model, root / "fw")
    build_firmware(fw, "host")
    data = write_short_clips(root / "clips", 200, 1200)
    short = write_short_clips(root / "short", 200, 320)
    return TinyPackage(model, fw, data, short)
