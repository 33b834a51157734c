"""Issue 12, rows 1, 7, 9, 10, 12-14: bad configs and datasets are refused or reported before any
work, naming the file and field; interrupted or killed runs leave nothing behind and say how to
resume."""

from __future__ import annotations

import json

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
