"""The built-in corpus: deterministic bytes, valid files, labels that agree, every class."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import soundfile as sf

from model_dev.synth import CLASSES, PRESETS, synth, synthesize_clip


def _digest(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return synth(out, preset="tiny", seed=5, jobs=2, progress=False)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_same_seed_same_bytes_for_any_jobs(tiny, tmp_path):
    again = synth(tmp_path / "again", preset="tiny", seed=5, jobs=1, progress=False)
    assert _digest(again) == _digest(tiny)


def test_different_seed_different_audio():
    a, _ = synthesize_clip(0, seed=1, duration_s=2.0)
    b, _ = synthesize_clip(0, seed=2, duration_s=2.0)
    assert not np.array_equal(a, b)


def test_files_and_labels(tiny):
    preset = PRESETS["tiny"]
    clips = _rows(tiny / "clips.csv")
    events = _rows(tiny / "events.csv")
    assert len(clips) == preset.n_clips
    assert {r["split"] for r in clips} == {"train", "validate", "test"}
    seen = set()
    for row in clips:
        path = tiny / "audio" / row["filename"]
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == round(preset.duration_s * 16000)
        x = sf.read(str(path), dtype="int16")[0].astype(np.int32)
        assert np.abs(x).max() > 0
        labels = {lab for lab in row["labels"].split(";") if lab}
        from_events = {e["label"] for e in events if e["filename"] == row["filename"]}
        assert labels == from_events and labels <= set(CLASSES)
        seen |= labels
    assert seen == set(CLASSES)
    for e in events:
        assert 0 <= float(e["onset_s"]) < float(e["offset_s"]) <= preset.duration_s + 1e-6


def test_unknown_preset_is_named(tmp_path):
    with pytest.raises(ValueError, match="huge"):
        synth(tmp_path, preset="huge", progress=False)
