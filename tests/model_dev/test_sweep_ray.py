"""``aedfw sweep --backend ray`` on a local Ray (this machine's cores, 2 in CI): the same table
as the process backend for the same seeds, and the same resumability."""

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


@pytest.fixture(scope="module")
def small_sweep_inputs(tmp_path_factory) -> tuple[list[str], str]:
    """A 40-clip manifest (train and test only) cut from the tiny corpus, and a small teacher
    trained on it: the dataset options and the teacher path of an ``aedfw sweep``."""
    from model_dev.frontend import FrontendConfig
    from model_dev.stage_inputs import DatasetSpec
    from model_dev.synth import synth

    tmp = tmp_path_factory.mktemp("sweep_ray")
    corpus = synth(tmp / "synth", preset="tiny", jobs=1, progress=False)
    with open(corpus / "clips.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:40]
    manifest = tmp / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels", "split"])
        for k, r in enumerate(rows):
            w.writerow(
                [corpus / "audio" / r["filename"], r["labels"], "test" if k % 4 else "train"]
            )
    spec = DatasetSpec(manifest, "manifest", tmp / "cache", jobs=1)
    fs = spec.features(FrontendConfig(), progress=False)
    teacher = train(
        TrainConfig(arch="teacher", **TRAIN), fs, tmp / "t", spec=TINY_TEACHER, progress=False
    )
    options = ["--data", str(manifest), "--cache", str(tmp / "cache"), "--jobs", "1"]
    return options, str(teacher)


def sweep_args(inputs: tuple[list[str], str], seeds: str) -> list[str]:
    options, teacher = inputs
    args = ["sweep", *options, "--teacher", teacher, "--students", "s5k", "--methods", "none,kd"]
    return [*args, "--seeds", seeds, "--epochs", "1", "--threads", "1", "--device", "cpu"]


def test_cli_sweep_on_ray_gives_the_process_backend_table(small_sweep_inputs, tmp_path, capsys):
    args = sweep_args(small_sweep_inputs, "0")
    assert main([*args, "--out", str(tmp_path / "local")]) == 0, capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    assert [r["job"] for r in table(tmp_path / "ray")] == ["s5k-none-s0", "s5k-kd-s0"]
    for name in ("sweep.md", "summary.csv"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()
    assert main([*args, "--out", str(tmp_path / "x"), "--address", "auto"]) == 1
    assert "--address needs --backend ray" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_sweep_on_ray_resumes_like_the_process_backend(small_sweep_inputs, tmp_path):
    args = [*sweep_args(small_sweep_inputs, "0,1"), "--out", str(tmp_path / "ray")]
    assert main([*args, "--backend", "ray"]) == 0
    jobs = tmp_path / "ray" / "jobs"
    kept = {p.parent.name: p.stat().st_mtime_ns for p in jobs.glob("*/result.json")}
    shutil.rmtree(jobs / "s5k-kd-s1")  # one job lost: only it runs again
    del kept["s5k-kd-s1"]
    assert main([*args, "--backend", "ray"]) == 0
    after = {p.parent.name: p.stat().st_mtime_ns for p in jobs.glob("*/result.json")}
    assert after.items() >= kept.items() and len(after) == 4  # the others were not rerun
    first = table(tmp_path / "ray")
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    assert table(tmp_path / "local") == first


def test_unknown_backend_is_refused(tmp_path):
    fs = toy_features()
    with pytest.raises(ValueError, match="backend='dask'"):
        sweep(CONFIG, fs, tmp_path / "t.pt", tmp_path / "x", backend="dask")
