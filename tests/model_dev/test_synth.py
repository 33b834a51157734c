"""Tests of the built-in synthetic corpus (tiny preset and a handful of clips only)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model_dev.audio import SAMPLE_RATE
from model_dev.synth import CLASSES, PRESETS, synth, synthesize_clip


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synth(tmp_path_factory.mktemp("tiny"), preset="tiny", seed=3, jobs=2, progress=False)


def test_same_seed_is_byte_identical_whatever_jobs(tiny, tmp_path):
    again = synth(tmp_path / "again", preset="tiny", seed=3, jobs=1, progress=False)
    assert _hashes(again) == _hashes(tiny)


def test_different_seed_gives_different_audio():
    a, _ = synthesize_clip(0, seed=0, duration_s=1.0)
    b, _ = synthesize_clip(0, seed=1, duration_s=1.0)
    c, _ = synthesize_clip(1, seed=0, duration_s=1.0)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_layout_and_metadata(tiny):
    p = PRESETS["tiny"]
    meta = json.loads((tiny / "corpus.json").read_text())
    assert meta["generator"] == "aedfw.synth"
    assert (meta["preset"], meta["seed"], meta["n_clips"]) == ("tiny", 3, p.n_clips)
    assert meta["classes"] == list(CLASSES)
    clips = _read_csv(tiny / "clips.csv")
    assert [r["filename"] for r in clips] == [f"clip_{i:05d}.wav" for i in range(p.n_clips)]
    assert sorted(p.name for p in (tiny / "audio").iterdir()) == [r["filename"] for r in clips]
    counts = {s: sum(r["split"] == s for r in clips) for s in ("train", "validate", "test")}
    assert sum(counts.values()) == p.n_clips
    for s, frac in zip(counts, p.splits, strict=True):
        assert abs(counts[s] - frac * p.n_clips) <= 2


def test_wav_format_and_content(tiny):
    n = int(PRESETS["tiny"].duration_s * SAMPLE_RATE)
    for path in sorted((tiny / "audio").iterdir()):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (
            SAMPLE_RATE,
            1,
            "PCM_16",
            n,
        )
        x, _ = sf.read(path, dtype="int16")
        assert np.any(x != 0), path.name
        # saturated, never wrapped: a wrap shows as a jump across nearly the whole int16 range
        assert np.abs(np.diff(x.astype(np.int32))).max() <= 60000, path.name


def test_labels_agree_with_events(tiny):
    clips = _read_csv(tiny / "clips.csv")
    events = _read_csv(tiny / "events.csv")
    duration = PRESETS["tiny"].duration_s
    by_file: dict[str, set[str]] = {r["filename"]: set() for r in clips}
    for e in events:
        by_file[e["filename"]].add(e["label"])
        assert 0.0 <= float(e["onset_s"]) < float(e["offset_s"]) <= duration
        assert -6.0 <= float(e["snr_db"]) <= 24.0
    for r in clips:
        labels = r["labels"].split(";") if r["labels"] else []
        assert labels == [c for c in CLASSES if c in by_file[r["filename"]]]
    assert any(not r["labels"] for r in clips), "some clips should hold no event"
    assert {e["label"] for e in events} == set(CLASSES)


def test_synthesize_clip_events_match_audio_length():
    audio, events = synthesize_clip(7, seed=0, duration_s=2.5)
    assert audio.dtype == np.int16 and audio.shape == (int(2.5 * SAMPLE_RATE),)
    assert all(e.label in CLASSES and e.offset_s <= 2.5 for e in events)
    assert [e.onset_s for e in events] == sorted(e.onset_s for e in events)


def test_unknown_preset_is_named(tmp_path):
    with pytest.raises(ValueError, match="huge"):
        synth(tmp_path, preset="huge", progress=False)


def test_event_sound_is_deterministic_and_checks_the_label():
    from model_dev.synth import event_sound

    a = event_sound("alert-signal", seed=1, duration_s=0.5)
    assert a.dtype == np.int16 and len(a) == 8000 and np.abs(a).max() > 1000
    assert np.array_equal(a, event_sound("alert-signal", seed=1, duration_s=0.5))
    assert not np.array_equal(a, event_sound("alert-signal", seed=2, duration_s=0.5))
    with pytest.raises(ValueError, match="unknown class 'siren'"):
        event_sound("siren", seed=1, duration_s=0.5)
