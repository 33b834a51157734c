"""Sizing sweep: jobs, resume, aggregates (checked by hand against sweep.csv), CLI, bad configs."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch

from aedfw.cli import main
from model_dev.arch import spec_stats
from model_dev.checkpoint import load_checkpoint
from model_dev.sweep import SweepConfig, sweep, write_report
from model_dev.sweep_report import (
    mean_se,
    micro_ap,
    paired,
    paired_bootstrap,
    relative_improvement,
    ri_interval,
)
from model_dev.train import train
from model_dev.train_config import TrainConfig
from tests.model_dev.test_train import FAST, TINY_TEACHER, toy_features

torch.set_num_threads(1)

TRAIN = {"epochs": 1, "patience": 0, **FAST}
CONFIG = SweepConfig(
    students=("s5k", "s20k"),
    methods=("none", "sp", "iusp", "kd+iusp"),
    seeds=(0, 1),
    train=TRAIN,
    sp=2.0,
    iusp=0.5,
)
ARMS = ("none", "sp", "iusp", "kd+iusp")


@pytest.fixture(scope="module")
def fs():
    return toy_features()


@pytest.fixture(scope="module")
def teacher(fs, tmp_path_factory):
    cfg = TrainConfig(arch="teacher", **TRAIN)
    return train(cfg, fs, tmp_path_factory.mktemp("teacher"), spec=TINY_TEACHER, progress=False)


@pytest.fixture(scope="module")
def swept(fs, teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    cfg = SweepConfig.from_dict(
        {**CONFIG.to_dict(), "student_seeds": {"s20k": [0]}}, "sweep test config"
    )
    return out, sweep(cfg, fs, teacher, out, threads=1, progress=False)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_writes_one_row_per_job_and_correct_aggregates(swept, teacher):
    out, report = swept
    jobs = _rows(out / "sweep.csv")
    names = [r["job"] for r in jobs]
    assert names == [
        f"{s}-{m}-s{seed}"
        for s, seeds in (("s5k", (0, 1)), ("s20k", (0,)))
        for seed in seeds
        for m in ARMS
    ]
    for r in jobs:  # each row is that job's own evaluation of its best checkpoint
        ev = json.loads((out / "jobs" / r["job"] / "result.json").read_text())
        assert float(r["micro"]) == ev["metrics"]["micro"]
        assert float(r["macro"]) == ev["metrics"]["macro"]
        _, meta = load_checkpoint(out / "jobs" / r["job"] / "best.pt")
        cfg = TrainConfig.from_dict(meta["train_config"])
        assert (cfg.arch, cfg.seed) == (r["student"], int(r["seed"]))
        weights = {t: getattr(cfg, t) for t in ("kd", "sp", "iusp")}
        expect = {"none": {}, "sp": {"sp": 2.0}, "iusp": {"iusp": 0.5}}
        expect["kd+iusp"] = {"kd": 1.0, "iusp": 0.5}
        assert weights == {t: expect[r["method"]].get(t, 0.0) for t in weights}
        if r["method"] != "none":  # the calibrated loss weights are recorded per job
            assert set(meta["distill"]["weights"]) == set(r["method"].split("+"))
        assert cfg.teacher == (None if r["method"] == "none" else str(teacher))
        assert "thresholds" in meta  # evaluate() saved the operating thresholds
        # epochs run: the last checkpoint's, not the best one's
        _, last = load_checkpoint(out / "jobs" / r["job"] / "last.pt")
        assert ev["epochs_run"] == last["epoch"] == cfg.epochs
        assert ev["best_epoch"] == meta["best"]["epoch"] == meta["epoch"]
    summary = _rows(out / "summary.csv")
    assert [(r["student"], r["method"]) for r in summary] == [
        (s, m) for s in ("s5k", "s20k") for m in ARMS
    ]
    for row in summary:  # hand computation from sweep.csv
        sel = [r for r in jobs if (r["student"], r["method"]) == (row["student"], row["method"])]
        epochs = [int(r["best_epoch"]) for r in sel]
        assert (int(row["best_epoch_min"]), int(row["best_epoch_max"])) == (
            min(epochs),
            max(epochs),
        )
        micro = [float(r["micro"]) for r in sel]
        assert int(row["n_seeds"]) == len(sel)
        assert float(row["micro_mean"]) == pytest.approx(sum(micro) / len(micro), abs=1e-12)
        if len(micro) == 2:  # standard error of two values: |a - b| / 2
            assert float(row["micro_se"]) == pytest.approx(abs(micro[0] - micro[1]) / 2)
        else:
            assert row["micro_se"] == "nan"
        base = {
            r["seed"]: float(r["micro"])
            for r in jobs
            if (r["student"], r["method"]) == (row["student"], "none")
        }
        diffs = [float(r["micro"]) - base[r["seed"]] for r in sel]
        assert float(row["diff_none_mean"]) == pytest.approx(sum(diffs) / len(diffs), abs=1e-12)
        spec = load_checkpoint(out / "jobs" / sel[0]["job"] / "best.pt")[0].spec
        st = spec_stats(spec)
        for k in ("params", "macs", "weight_bytes_int8", "activation_bytes_int8"):
            assert int(row[k]) == st[k]
    assert report["ri"]["s20k"]["status"] == "fewer than 2 paired seeds"
    md = (out / "sweep.md").read_text()
    assert "teacher" in md.lower() and "RI = (iusp − sp) / (sp − none)" in md
    assert md.count("| s5k |") == 5 and "(1 seed)" in md
    assert (out / "pareto.png").stat().st_size > 1000
    assert json.loads((out / "teacher.json").read_text())["checkpoint"] == str(teacher)


def test_relative_improvement_and_na():
    assert relative_improvement(0.5, 0.6, 0.65) == pytest.approx(0.5)
    assert math.isnan(relative_improvement(0.6, 0.6, 0.7))  # sp - none = 0
    assert math.isnan(relative_improvement(0.6, 0.55, 0.7))
    assert math.isnan(relative_improvement(math.nan, 0.6, 0.7))


def test_paired_statistics_and_ri_interval():
    rows = [
        {"student": "s", "method": m, "seed": seed, "micro": v}
        for m, values in {"none": [0.50, 0.52, 0.51], "sp": [0.54, 0.55, 0.56]}.items()
        for seed, v in enumerate(values)
    ] + [
        {"student": "s", "method": "iusp", "seed": s, "micro": v} for s, v in [(0, 0.57), (2, 0.6)]
    ]
    assert paired(rows, "s", "sp") == pytest.approx({0: 0.04, 1: 0.03, 2: 0.05})
    assert paired(rows, "s", "iusp") == pytest.approx({0: 0.07, 2: 0.09})  # seed 1 not run
    mean, se = mean_se([0.04, 0.03, 0.05])
    assert mean == pytest.approx(0.04) and se == pytest.approx(0.01 / math.sqrt(3))
    r = ri_interval({0: 0.04, 1: 0.03, 2: 0.05}, {0: 0.06, 1: 0.05, 2: 0.07})
    assert r["status"] == "ok" and r["ri"] == pytest.approx(0.5)  # (0.06 - 0.04) / 0.04
    assert r["lo"] <= r["ri"] <= r["hi"] and r["n_seeds"] == 3
    assert r == ri_interval({0: 0.04, 1: 0.03, 2: 0.05}, {0: 0.06, 1: 0.05, 2: 0.07})
    noisy = ri_interval({0: 0.05, 1: -0.04, 2: 0.01}, {0: 0.1, 1: 0.1, 2: 0.1})
    assert math.isnan(noisy["ri"]) and "not above noise" in noisy["status"]


def test_micro_ap_equals_sklearn_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(3)
    for digits in (1, 2, 6):  # coarse rounding: many tied scores
        truth = (rng.random((60, 5)) < 0.3).astype(int)
        scores = np.round(rng.random((60, 5)), digits).astype(np.float32)
        want = average_precision_score(truth.ravel(), scores.ravel())
        assert micro_ap(truth, scores) == pytest.approx(want, abs=1e-12)
    assert math.isnan(micro_ap(np.zeros((3, 2)), np.ones((3, 2))))


def test_paired_bootstrap_over_seeds_and_clips():
    rng = np.random.default_rng(4)
    truth = (rng.random((120, 4)) < 0.3).astype(np.float32)
    base = {s: rng.random((120, 4)) for s in range(3)}
    same = paired_bootstrap(truth, base, base, n_boot=50)
    assert (same["diff"], same["lo"], same["hi"], same["n_seeds"]) == (0.0, 0.0, 0.0, 3)
    better = {s: base[s] + 0.5 * truth for s in range(3)}  # every positive ranked higher
    up = paired_bootstrap(truth, better, base, n_boot=50)
    want = np.mean([micro_ap(truth, better[s]) - micro_ap(truth, base[s]) for s in range(3)])
    assert up["diff"] == pytest.approx(want) and 0 < up["lo"] <= up["diff"] <= up["hi"]
    assert up["p_above"] == 1.0
    noisy = {s: base[s] + 0.02 * rng.standard_normal((120, 4)) for s in range(3)}
    wide = paired_bootstrap(truth, noisy, base, n_boot=200)
    assert wide["lo"] < 0 < wide["hi"]  # a pure-noise arm's interval covers 0
    assert paired_bootstrap(truth, {0: base[0]}, {1: base[1]})["n_seeds"] == 0


def test_resume_skips_done_jobs_and_reruns_missing_ones(swept, fs, teacher):
    out, _ = swept
    cfg = SweepConfig.from_dict(json.loads((out / "sweep_config.json").read_text())["config"])
    jobs = out / "jobs"
    stamp = {p: p.stat().st_mtime_ns for p in jobs.glob("*/*.pt")}
    shutil.rmtree(jobs / "s5k-sp-s1")  # deleted: trained again
    (jobs / "s5k-none-s0" / "result.json").unlink()  # interrupted after training: resumed
    report = sweep(cfg, fs, teacher, out, jobs=2, threads=1, progress=False)  # spawned workers
    assert sorted(report["ran"]) == ["s5k-none-s0", "s5k-sp-s1"]
    assert len(report["skipped"]) == 10 and not report["missing"]
    for p, t in stamp.items():
        if "s5k-sp-s1" not in str(p) and not (p.name == "best.pt" and "s5k-none-s0" in str(p)):
            assert p.stat().st_mtime_ns == t, p  # nothing retrained
    # the resumed job found its training complete in last.pt: same weights, re-evaluated
    assert (jobs / "s5k-none-s0" / "last.pt").stat().st_mtime_ns == stamp[
        jobs / "s5k-none-s0" / "last.pt"
    ]
    assert (jobs / "s5k-sp-s1" / "result.json").is_file()
    # a done job is not silently reused under another config
    other = SweepConfig.from_dict({**cfg.to_dict(), "sp": 10.0})
    with pytest.raises(ValueError, match=r"s5k-sp-s0.*different config.*'sp'"):
        sweep(other, fs, teacher, out, threads=1, progress=False)


def test_partial_report_counts_missing(swept, tmp_path):
    out, _ = swept
    part = tmp_path / "part"
    shutil.copytree(out, part, ignore=shutil.ignore_patterns("*.pt", "*.png"))
    shutil.rmtree(part / "jobs" / "s20k-iusp-s0")
    report = write_report(part)
    assert report["missing"] == ["s20k-iusp-s0"] and math.isnan(report["ri"]["s20k"]["ri"])
    assert "undefined: fewer than 2 paired seeds" in (part / "sweep.md").read_text()


@pytest.mark.parametrize(
    "fields, name",
    [
        ({"students": ["s1k"]}, "students"),
        ({"methods": ["none", "fitnet"]}, "methods"),
        ({"seeds": [0, "1"]}, "seeds"),
        ({"sp": 0}, "sp"),
        ({"methods": ["kd+fitnet"]}, "methods"),
        ({"train": {"epochz": 2}}, "epochz"),
        ({"train": {"lr": -1}}, "lr"),
        ({"train": {"seed": 3}}, "train.seed"),
        ({"student_train": {"s70k": {"epochs": 1}}}, "student_train.s70k"),
        ({"student_seeds": {"s5k": []}}, "student_seeds.s5k"),
        ({"studnets": ["s5k"]}, "studnets"),
    ],
)
def test_bad_config_names_the_field(fields, name):
    with pytest.raises(ValueError, match=rf"sweep\.yaml.*{name}"):
        SweepConfig.from_dict({"students": ["s5k"], **fields}, "sweep.yaml")


def test_cli_runs_and_report_only(tmp_path, capsys):
    # the CLI reads a dataset from disk: the tiny built-in corpus, with a tiny teacher on it
    from model_dev.datasets import load_dataset
    from model_dev.features import features
    from model_dev.synth import synth

    data = tmp_path / "corpus"
    synth(data, preset="tiny", jobs=1, progress=False)
    real = features(load_dataset("synth", data), tmp_path / "cache", jobs=1, progress=False)
    t_cfg = TrainConfig(arch="teacher", **TRAIN)
    t_best = train(t_cfg, real, tmp_path / "t", spec=TINY_TEACHER, progress=False)
    conf = tmp_path / "sweep.yaml"
    conf.write_text("methods: [kd]\nseeds: [0]\ntrain: {batch_size: 16, device: cpu}\n")
    base = ["sweep", "--data", str(data), "--cache", str(tmp_path / "cache"), "--out"]
    base += [str(tmp_path / "sw"), "--teacher", str(t_best), "--config", str(conf)]
    assert main([*base, "--students", "s5k", "--epochs", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "| s5k | kd | 1 |" in out and "teacher (tiny-teacher)" in out.lower()
    assert len(_rows(tmp_path / "sw" / "sweep.csv")) == 1
    assert main(["sweep", "--out", str(tmp_path / "sw"), "--report-only"]) == 0
    assert "| s5k | kd | 1 |" in capsys.readouterr().out
    conf.write_text("methods: [none, kd]\ntrain: {epochz: 1}\n")
    assert main([*base, "--students", "s5k"]) == 1
    assert "epochz" in capsys.readouterr().err
    assert main([*base, "--seeds", "0,x"]) == 1
    assert "--seeds" in capsys.readouterr().err
    assert np.isfinite(float(_rows(tmp_path / "sw" / "sweep.csv")[0]["micro"]))


def test_report_html_gathers_tables_and_plot(swept):
    out, report = swept
    page = (out / "report.html").read_text()
    assert report["files"]["html"] == str(out / "report.html")
    for anchor in ('id="auprc-table"', 'id="ri"', 'id="pareto-plot"', "data:image/png;base64,"):
        assert anchor in page
    for row in report["summary"]:  # every student x arm row of summary.csv is on the page
        assert f"<td>{row['student']}</td><td>{row['method']}</td>" in page
