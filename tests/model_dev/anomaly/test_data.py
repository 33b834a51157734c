"""Loaders of the DCASE 2020 Task 2 layout and MIMII's original layout, on fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_dev.anomaly.data import load_dcase, load_machines, load_mimii
from model_dev.audio import AudioError, write_wav


def _wav(path: Path, seed: int = 0) -> Path:
    write_wav(path, (np.random.default_rng(seed).normal(0, 1000, 4000)).astype(np.int16))
    return path


def _dcase(root: Path) -> Path:
    for kind in ("fan", "ToyCar"):
        for mid in ("id_00", "id_02"):
            _wav(root / kind / "train" / f"normal_{mid}_00000000.wav")
            _wav(root / kind / "train" / f"normal_{mid}_00000001.wav")
            _wav(root / kind / "test" / f"normal_{mid}_00000000.wav")
            _wav(root / kind / "test" / f"anomaly_{mid}_00000000.wav")
    return root


def _mimii(root: Path, snr: str = "6_dB") -> Path:
    for mid in ("id_00", "id_04"):
        base = root / f"{snr}_pump" / "pump" / mid
        for k in range(5):
            _wav(base / "normal" / f"{k:08d}.wav")
        for k in range(2):
            _wav(base / "abnormal" / f"{k:08d}.wav")
    return root


def test_dcase_layout(tmp_path: Path) -> None:
    ms = load_dcase(_dcase(tmp_path))
    assert ms.types == ["ToyCar", "fan"] and len(ms.dataset) == 16
    assert sorted(set(ms.machine_ids)) == ["id_00", "id_02"]
    train = [k for k, s in enumerate(ms.splits) if s == "train"]
    assert len(train) == 8 and not ms.labels[train].any()
    test = np.array([s == "test" for s in ms.splits])
    assert ms.labels[test].sum() == 4
    k = ms.dataset.clips.index(
        next(c for c in ms.dataset.clips if c.clip_id == "fan/test/anomaly_id_02_00000000.wav")
    )
    assert (ms.machine_types[k], ms.machine_ids[k], ms.labels[k]) == ("fan", "id_02", 1)
    assert load_machines("dcase", tmp_path).machine_ids == ms.machine_ids


def test_dcase_bad_file_is_named_or_skipped(tmp_path: Path) -> None:
    root = _dcase(tmp_path)
    bad = root / "fan" / "test" / "normal_id_00_00000009.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioError, match="normal_id_00_00000009.wav"):
        load_dcase(root)
    ms = load_dcase(root, skip_bad=True)
    assert len(ms.dataset) == 16 and [p.name for p, _ in ms.dataset.skipped] == [bad.name]


def test_dcase_bad_names_are_named(tmp_path: Path) -> None:
    root = _dcase(tmp_path)
    _wav(root / "fan" / "train" / "anomaly_id_00_00000005.wav")
    with pytest.raises(ValueError, match="anomaly_id_00_00000005.wav: anomalous clip in a train"):
        load_dcase(root)
    (root / "fan" / "train" / "anomaly_id_00_00000005.wav").unlink()
    _wav(root / "fan" / "test" / "broken_name.wav")
    with pytest.raises(ValueError, match="broken_name.wav: not a DCASE clip name"):
        load_dcase(root)
    with pytest.raises(ValueError, match="no dcase clips"):
        load_dcase(tmp_path / "fan" / "train")
    with pytest.raises(ValueError, match="unknown machine dataset layout"):
        load_machines("toyadmos2", root)


def test_mimii_layout_and_challenge_split(tmp_path: Path) -> None:
    ms = load_mimii(_mimii(tmp_path))
    assert ms.types == ["pump"] and sorted(set(ms.machine_ids)) == ["id_00", "id_04"]
    for mid in ("id_00", "id_04"):
        mine = [k for k, m in enumerate(ms.machine_ids) if m == mid]
        test = [k for k in mine if ms.splits[k] == "test"]
        assert len(mine) == 7 and len(test) == 4 and ms.labels[test].sum() == 2
        # the last normal clips in name order go to the test split
        names = sorted(ms.dataset.clips[k].clip_id for k in test if not ms.labels[k])
        assert names == [f"6_dB_pump/pump/{mid}/normal/{k:08d}.wav" for k in (3, 4)]


def test_mimii_snr_choice_and_bad_file(tmp_path: Path) -> None:
    root = _mimii(_mimii(tmp_path), "-6_dB")
    with pytest.raises(ValueError, match="several SNR folders"):
        load_mimii(root)
    assert len(load_mimii(root, snr="-6_dB").dataset) == 14
    bad = root / "-6_dB_pump" / "pump" / "id_04" / "abnormal" / "00000001.wav"
    bad.write_bytes(b"")
    with pytest.raises(AudioError, match="00000001.wav: empty file"):
        load_mimii(root, snr="-6_dB")
    ms = load_mimii(root, snr="-6_dB", skip_bad=True)
    assert [p for p, _ in ms.dataset.skipped] == [bad]
