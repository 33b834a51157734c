"""Feature cache: computed once per (dataset, config), reused, invalidated, nothing dropped."""

from __future__ import annotations

import numpy as np
import pytest

from model_dev.audio import AudioError, write_wav
from model_dev.datasets import load_dataset
from model_dev.features import features
from model_dev.frontend import Frontend, FrontendConfig


@pytest.fixture
def manifest(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["path,labels,split"]
    for i in range(6):
        audio = (rng.standard_normal(4000 + 700 * i) * 10 ** (1 + i / 2)).astype(np.int16)
        write_wav(tmp_path / f"a{i}.wav", audio)
        rows.append(f"a{i}.wav,{'dog' if i % 2 else 'music;dog'},{'train' if i < 4 else 'test'}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def _entries(cache):
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))


def test_features_equal_frontend_and_are_cached(manifest, tmp_path):
    ds = load_dataset("manifest", manifest)
    cache = tmp_path / "cache"
    fs = features(ds, cache, jobs=1, progress=False)
    fe = Frontend()
    for i in range(len(ds)):
        assert np.array_equal(fs.clip(i), fe(ds.load(i)))
    assert np.array_equal(fs.labels, ds.label_matrix())
    assert list(fs.indices("test")) == [4, 5]
    stamp = (cache / _entries(cache)[0] / "features.npy").stat().st_mtime_ns
    again = features(ds, cache, jobs=1, progress=False)  # reused, not recomputed
    assert _entries(cache) == _entries(cache)[:1]
    assert (cache / _entries(cache)[0] / "features.npy").stat().st_mtime_ns == stamp
    assert np.array_equal(again.features, fs.features)


def test_parallel_equals_serial(manifest, tmp_path):
    ds = load_dataset("manifest", manifest)
    serial = features(ds, tmp_path / "c1", jobs=1, progress=False)
    parallel = features(ds, tmp_path / "c2", jobs=2, progress=False)
    assert np.array_equal(serial.features, parallel.features)
    assert np.array_equal(serial.offsets, parallel.offsets)


def test_invalidated_by_config_and_by_audio(manifest, tmp_path):
    cache = tmp_path / "cache"
    features(load_dataset("manifest", manifest), cache, jobs=1, progress=False)
    features(
        load_dataset("manifest", manifest), cache, FrontendConfig(n_mels=32), jobs=1, progress=False
    )
    assert len(_entries(cache)) == 2
    write_wav(manifest / "a0.wav", np.ones(5000, np.int16))
    fs = features(load_dataset("manifest", manifest), cache, jobs=1, progress=False)
    assert len(_entries(cache)) == 3
    assert np.array_equal(fs.clip(0), Frontend()(np.ones(5000, np.int16)))


def test_unreadable_clip_is_named_or_skipped(manifest, tmp_path):
    ds = load_dataset("manifest", manifest)
    (manifest / "a3.wav").unlink()  # vanishes after the dataset was listed
    with pytest.raises(AudioError, match="a3.wav"):
        features(ds, tmp_path / "cache", jobs=1, progress=False)
    assert _entries(tmp_path / "cache") == []  # no half-written entry
    fs = features(ds, tmp_path / "cache", jobs=1, skip_bad=True, progress=False)
    assert len(fs) == 5 and "a3.wav" not in fs.clip_ids
    assert any("a3.wav" in path for path, _ in fs.skipped)
