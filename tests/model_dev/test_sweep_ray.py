"""The sweep's Ray backend on a local Ray with 2 CPUs: the same table as the local backend for
the same seeds, the same resumability; the CLI runs it end to end (slow)."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch

from aedfw.cli import main
from model_dev.sweep import SweepConfig, sweep
from model_dev.train import train
from model_dev.train_config import TrainConfig
from tests.model_dev.test_train import FAST, TINY_TEACHER, toy_features

pytest.importorskip("ray")
torch.set_num_threads(1)

TRAIN = {"epochs": 1, "patience": 0, **FAST}
CONFIG = SweepConfig(students=("s5k",), methods=("none", "kd"), seeds=(0, 1), train=TRAIN)
#: Columns that differ between any two runs (wall time, where the files are).
VARYING = {"seconds_per_epoch", "checkpoint"}


def table(out) -> list[dict]:
    """sweep.csv without its wall-time and path columns."""
    with open(out / "sweep.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in VARYING} for r in csv.DictReader(f)]


def test_ray_backend_gives_the_local_table_and_resumes(tmp_path):
    fs = toy_features()
    teacher = train(
        TrainConfig(arch="teacher", **TRAIN), fs, tmp_path / "t", spec=TINY_TEACHER,
        progress=False,
    )  # fmt: skip
    local = sweep(CONFIG, fs, teacher, tmp_path / "local", threads=1, progress=False)
    ray = sweep(CONFIG, fs, teacher, tmp_path / "ray", threads=1, progress=False, backend="ray")
    assert sorted(ray["ran"]) == sorted(local["ran"]) and len(ray["ran"]) == 4
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    assert (tmp_path / "ray" / "summary.csv").read_text() == (
        tmp_path / "local" / "summary.csv"
    ).read_text()

    shutil.rmtree(tmp_path / "ray" / "jobs" / "s5k-kd-s1")  # one job lost: only it reruns
    again = sweep(CONFIG, fs, teacher, tmp_path / "ray", threads=1, progress=False, backend="ray")
    assert again["ran"] == ["s5k-kd-s1"] and len(again["skipped"]) == 3
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    with pytest.raises(ValueError, match="backend='dask'"):
        sweep(CONFIG, fs, teacher, tmp_path / "x", backend="dask")


@pytest.mark.slow
def test_cli_sweep_with_ray_matches_the_process_backend(tmp_path, capsys):
    from model_dev.synth import synth

    data, cache = tmp_path / "c", tmp_path / "f"
    synth(data, preset="tiny", jobs=1, progress=False)
    common = ["--data", str(data), "--cache", str(cache), "--jobs", "1"]
    teacher = ["train", "teacher", *common, "--out", str(tmp_path / "t"), "--epochs", "1"]
    assert main([*teacher, "--device", "cpu"]) == 0
    args = ["sweep", *common, "--teacher", str(tmp_path / "t" / "best.pt"), "--students", "s5k"]
    args += ["--methods", "none,kd", "--seeds", "0,1", "--epochs", "1", "--threads", "1"]
    args += ["--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "local"), "--jobs", "2"]) == 0
    assert main([*args, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    out = capsys.readouterr().out
    assert "micro-AUPRC" in out or "micro" in out
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    assert (tmp_path / "ray" / "sweep.md").read_text() == (
        tmp_path / "local" / "sweep.md"
    ).read_text()
    assert main([*args, "--out", str(tmp_path / "x"), "--address", "auto"]) == 1
    assert "--address needs --backend ray" in capsys.readouterr().err
