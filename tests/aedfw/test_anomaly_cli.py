"""``aedfw data synth-machines``, ``aedfw train anomaly`` (with ``--init``) and ``aedfw evaluate``
on an anomaly checkpoint, end to end on the tiny machine corpus."""

from __future__ import annotations

import json

import pytest

from aedfw.cli import main


def test_synth_machines_train_anomaly_evaluate(tmp_path, capsys) -> None:
    corpus = tmp_path / "machines"
    assert main(["data", "synth-machines", "--size", "tiny", "--out", str(corpus)]) == 0
    assert (corpus / "fan" / "train" / "normal_id_00_00000000.wav").is_file()
    common = ["--data", str(corpus), "--cache", str(tmp_path / "cache"), "--types", "fan"]
    common += ["--epochs", "1", "--batch-size", "64", "--device", "cpu"]
    src = tmp_path / "src.pt"
    argv = ["train", "anomaly", "--method", "dense_ae_small", "--out", str(src), *common]
    assert main([*argv, "--ids", "id_00"]) == 0
    ft = tmp_path / "ft.pt"
    assert main([*argv[:-2], "--out", str(ft), *common, "--init", str(src)]) == 0
    out = tmp_path / "eval"
    code = main(["evaluate", str(ft), "--data", str(corpus), "--cache", str(tmp_path / "cache"),
                 "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert code == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["method"] == "dense_ae_small" and set(report["per_type"]) == {"fan"}
    assert "fan" in capsys.readouterr().out


def test_unknown_method_and_size_are_clear_errors(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "anomaly", "--method", "nope", "--data", "x", "--out", "y"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["data", "synth-machines", "--size", "huge", "--out", str(tmp_path / "m")]) == 1
    assert "unknown corpus size 'huge'" in capsys.readouterr().err
