"""Issue 12, rows 1, 7, 9, 10, 12-14: bad configs and datasets are refused or reported before any
work, naming the file and field; interrupted or killed runs leave nothing behind and say how to
resume."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aedfw.cli import main


def test_front_end_sample_rate_other_than_16k_is_refused(tmp_path, capsys):
    """Row 1: 44100 was accepted; audio was read at 16 kHz with a 44.1 kHz filterbank."""
    fe = tmp_path / "fe.yaml"
    fe.write_text("sample_rate: 44100\nfmax_hz: 7500\n")
    cache = tmp_path / "cache"
    args = ["--data", str(tmp_path / "none"), "--cache", str(cache), "--frontend", str(fe)]
    assert main(["features", *args]) == 1
    err = capsys.readouterr().err
    assert f"{fe}: FrontendConfig.sample_rate=44100: must be 16000" in err
    assert not cache.exists()


@pytest.mark.parametrize("where", ["flag", "file"])
def test_negative_seed_is_refused_before_any_work(tmp_path, capsys, where):
    """Row 10: 'expected non-negative integer' without field or file, after the features."""
    cache, config = tmp_path / "cache", tmp_path / "train.json"
    config.write_text(json.dumps({"seed": -3}))
    args = ["train", "teacher", "--data", str(tmp_path / "none"), "--cache", str(cache)]
    args += ["--out", str(tmp_path / "run")]
    args += ["--seed", "-3"] if where == "flag" else ["--config", str(config)]
    assert main(args) == 1
    err = capsys.readouterr().err
    source = "command line" if where == "flag" else str(config)
    assert f"{source}: TrainConfig.seed=-3: must be >= 0" in err
    assert not cache.exists() and not (tmp_path / "run").exists()


def test_negative_sweep_seed_is_refused():
    from model_dev.sweep_config import SweepConfig

    with pytest.raises(ValueError, match=r"SweepConfig.seeds=\(0, -3\).*>= 0"):
        SweepConfig(seeds=(0, -3))


@pytest.fixture
def manifest(tmp_path):
    """Six clips: one of 0.01 s, one whose label is a typo ('dgo')."""
    from model_dev.audio import write_wav

    rng = np.random.default_rng(0)
    rows = ["path,labels,split"]
    for i in range(6):
        n = 160 if i == 5 else 4000 + 700 * i
        write_wav(tmp_path / f"a{i}.wav", (rng.standard_normal(n) * 300).astype(np.int16))
        label = ("music;dog", "dog", "music;dog", "dog", "dgo", "music")[i]
        rows.append(f"a{i}.wav,{label},{'train' if i < 4 else 'test'}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "manifest.csv"


def test_skip_set_is_part_of_the_cache_key(manifest, tmp_path):
    """Row 7: features --skip-bad, then a run without it trained silently without the file."""
    from model_dev.audio import AudioError
    from model_dev.datasets import load_dataset
    from model_dev.features import _cache_key, features

    ds = load_dataset("manifest", manifest)
    cache = tmp_path / "cache"
    complete = features(ds, cache, jobs=1, progress=False)
    assert [p.name for p in cache.iterdir()] == [_cache_key(ds, complete.config)]  # key kept
    (manifest.parent / "a3.wav").unlink()  # unreadable after listing
    with pytest.warns(UserWarning, match=r"1 file\(s\) left out as unreadable.*a3.wav"):
        fs = features(ds, cache / "2", jobs=1, skip_bad=True, progress=False)
    assert "a3.wav" not in fs.clip_ids
    (entry,) = [p.name for p in (cache / "2").iterdir()]
    assert entry.startswith(_cache_key(ds, fs.config) + "-skip-")
    with pytest.raises(AudioError, match="a3.wav"):
        features(ds, cache / "2", jobs=1, progress=False)
    with pytest.warns(UserWarning, match="a3.wav"):  # listed again on every use
        assert features(ds, cache / "2", jobs=1, skip_bad=True, progress=False).skipped


def test_short_clips_and_rare_labels_are_warned_about(manifest, tmp_path):
    """Rows 9 and 14: a 0.01 s clip trained as silence, a typo became a class, unnoticed."""
    from model_dev.datasets import load_dataset
    from model_dev.features import features

    with pytest.warns(UserWarning) as record:
        fs = features(load_dataset("manifest", manifest), tmp_path, jobs=1, progress=False)
    messages = "\n".join(str(w.message) for w in record)
    assert "1 clip(s) shorter than one front-end frame (400 samples)" in messages
    assert "silence: a5.wav" in messages
    assert "label 'dgo' has only 1 clip(s) (a4.wav)" in messages
    assert "'dog'" not in messages and "'music'" not in messages
    assert fs.label_counts() == {
        "train": {"dgo": 0, "dog": 4, "music": 2},
        "test": {"dgo": 1, "dog": 0, "music": 1},
    }


def test_checkpoint_records_skipped_files_and_stale_temporaries_go(tmp_path):
    """Rows 7 and 13: the checkpoint did not say what was skipped; a killed checkpoint write
    left a .last.pt.*.tmp forever."""
    import dataclasses

    from model_dev.checkpoint import load_checkpoint
    from model_dev.train import train
    from model_dev.train_config import TrainConfig
    from tests.model_dev.test_train import FAST, toy_features

    fs = dataclasses.replace(toy_features(), skipped=[("gone.wav", "file not found")])
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1000)
    best = train(TrainConfig(arch="s5k", epochs=1, **FAST), fs, out, progress=False)
    assert not stale.exists() and not list(out.glob(".*"))
    _, meta = load_checkpoint(best)
    assert meta["dataset"]["skipped"] == [["gone.wav", "file not found"]]
    from model_dev.evaluate import evaluate

    report = evaluate(best, fs, out_dir=tmp_path / "eval", device="cpu")
    assert report["skipped"] == [["gone.wav", "file not found"]]
    saved = json.loads((tmp_path / "eval/evaluation.json").read_text())
    assert saved["skipped"] == report["skipped"]
    _, plain = load_checkpoint(train(TrainConfig(arch="s5k", epochs=1, **FAST), toy_features(),
                                     tmp_path / "plain", progress=False))  # fmt: skip
    assert "skipped" not in plain["dataset"]  # identities of runs without skips unchanged


@pytest.mark.slow
def test_quantize_and_sweep_reports_record_skipped_files(tmp_path):
    """Row 7: the quantize report and the sweep folder say which files the figures are without."""
    import dataclasses

    from model_dev.sweep import sweep
    from model_dev.sweep_config import SweepConfig
    from model_dev.train import train
    from model_dev.train_config import TrainConfig
    from quantize.pipeline import quantize
    from tests.model_dev.test_train import FAST, TINY_TEACHER, toy_features

    gone = [["gone.wav", "file not found"]]
    fs = dataclasses.replace(toy_features(), skipped=[tuple(gone[0])])
    best = train(TrainConfig(arch="s5k", epochs=1, **FAST), fs, tmp_path / "run", progress=False)
    assert quantize(best, tmp_path / "m.tflite", fs, limit=4)["skipped"] == gone
    teacher = train(TrainConfig(arch="teacher", epochs=1, **FAST), fs, tmp_path / "t",
                    spec=TINY_TEACHER, progress=False)  # fmt: skip
    cfg = SweepConfig(students=("s5k",), methods=("none",), seeds=(0,), train={"epochs": 1})
    sweep(cfg, fs, teacher, tmp_path / "sweep", jobs=1, progress=False)
    assert json.loads((tmp_path / "sweep/sweep_config.json").read_text())["skipped"] == gone


def test_features_command_prints_clips_per_split_and_label(manifest, tmp_path, capsys):
    args = ["features", "--dataset", "manifest", "--data", str(manifest), "--jobs", "1"]
    with pytest.warns(UserWarning, match="'dgo'"):
        assert main([*args, "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "train clips per label: dgo 0, dog " in out  # (validate is carved from train)
    assert "test clips per label: dgo 1, dog 0, music 1" in out


CTRL_C_CLIPS = 3000


def _default_sigint() -> None:
    """A shell's background job starts with SIGINT ignored (and Python keeps it so): undo it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_features(folder: Path) -> tuple[int, str, Path]:
    """Run ``aedfw features`` with two workers on many small clips and send SIGINT to its
    process group (as a terminal does) once the workers have done a clip; returns the exit
    status, the stderr and the cache root."""
    from model_dev.audio import write_wav

    rng = np.random.default_rng(1)
    rows = ["path,labels,split"]
    for i in range(CTRL_C_CLIPS):  # many small clips: seconds of work even for the C front end
        write_wav(folder / f"c{i}.wav", (rng.standard_normal(8000) * 300).astype(np.int16))
        rows.append(f"c{i}.wav,{('dog', 'music', 'engine')[i % 3]},train")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    cache = folder / "cache"
    cmd = [sys.executable, "-m", "aedfw.cli", "features", "--dataset", "manifest"]
    cmd += ["--data", str(folder / "manifest.csv"), "--cache", str(cache), "--jobs", "2"]
    done = re.compile(rb"features: [^\r]* [1-9]\d*/%d \[" % CTRL_C_CLIPS)
    for _ in range(3):  # on a loaded machine the run may finish before the signal lands: again
        shutil.rmtree(cache, ignore_errors=True)
        proc = subprocess.Popen(  # as a terminal's job: its own group, Ctrl-C not ignored
            cmd, stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_default_sigint
        )
        err = b""
        while not done.search(err):
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, f"aedfw features ended before it was interrupted: {err.decode()}"
            err += chunk
        os.killpg(proc.pid, signal.SIGINT)
        err += proc.communicate(timeout=60)[1]
        if proc.returncode != 0:
            break
    return proc.returncode, err.decode(), cache


def test_ctrl_c_during_features_is_one_line(tmp_path):
    """Row 12: Ctrl-C printed full tracebacks, multiprocessing internals included."""
    code, err, cache = interrupt_features(tmp_path)
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("aedfw:")]
    assert lines == ["aedfw: features interrupted; nothing half-written was kept: run the "
                     "same command again"], err  # fmt: skip
    assert list(cache.iterdir()) == []


def test_training_windows_are_bounded_by_the_batch_and_bit_identical():
    """Row 8: every clip was padded to the longest (one 10-minute clip: 2.1 GB instead of
    0.61 GB). Windows are now stored clip after clip; a batch is padded to its own longest clip
    and holds exactly the bytes the padded layout gave."""
    import dataclasses

    import torch

    from model_dev.arch import SILENCE_Q, clip_windows
    from model_dev.windows import ClipWindows
    from tests.model_dev.test_train import toy_features

    fs = toy_features()
    long = np.random.default_rng(0).integers(-128, 127, (6000, 40)).astype(np.int8)  # 60 s
    fs = dataclasses.replace(
        fs,
        features=np.concatenate([fs.features, long]),
        offsets=np.append(fs.offsets, fs.offsets[-1] + len(long)),
        labels=np.concatenate([fs.labels, fs.labels[:1]]),
        clip_ids=[*fs.clip_ids, "long"],
        splits=[*fs.splits, "train"],
    )
    idx = fs.indices("train")
    data = ClipWindows.from_features(fs, idx, 100, 50)
    per_clip = [clip_windows(fs.clip(i), 100, 50) for i in idx]
    padded = np.full((len(idx), max(map(len, per_clip)), 100, 40), SILENCE_Q, np.int8)
    for k, w in enumerate(per_clip):
        padded[k, : len(w)] = w
    assert data.windows.numel() == sum(w.size for w in per_clip) < padded.size / 5
    for batch in (np.arange(4), np.array([3, 16, 0]), np.arange(len(idx))):
        x, mask, y = data.batch(batch, torch.device("cpu"))
        n_win = int(mask.sum(1).max())
        want = (torch.from_numpy(padded[batch, :n_win]).float() - data.zero_point) * data.scale
        assert torch.equal(x, want) and x.dtype == want.dtype
        counts = np.array([len(per_clip[k]) for k in batch])
        assert n_win == counts.max()
        assert torch.equal(mask, torch.from_numpy(np.arange(n_win)[None] < counts[:, None]))
