"""``aedfw demo --task anomaly``: its options are checked before any work, and (slow) the whole
chain runs on the tiny machine corpus and writes its reports."""

from __future__ import annotations

import json
import shutil

import pytest

from aedfw.cli import main
from host_tools.demo_anomaly import AnomalyDemoConfig, demo_anomaly


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "anomaly", "--teacher-epochs", "3"], "--teacher-epochs is an option of"),
        (["--task", "tagging", "--types", "fan"], "--types is an option of --task anomaly"),
        (["--task", "anomaly", "--types", "fan,boiler"], "machine types must be some of"),
        (["--task", "anomaly", "--method", "isolation_forest"], "method must be one of dense_ae,"),
        (["--task", "anomaly", "--preset", "small"], "unknown machine corpus size 'small'"),
    ],
)
def test_demo_anomaly_options_are_checked_first(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo", *args, "--out", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()  # refused before any work


def test_demo_anomaly_help_names_the_task(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "--task {tagging,anomaly}" in text and "aedfw demo --task anomaly" in text


@pytest.mark.slow  # the whole chain on the tiny corpus: about a minute
@pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs gcc and arm-none-eabi-gcc",
)
def test_demo_anomaly_tiny_whole_chain(tmp_path):
    out = tmp_path / "run"
    config = AnomalyDemoConfig(method="dense_ae_small", epochs=2)  # every fan test clip
    report = demo_anomaly(out, "tiny", seed=1, target="host", config=config, progress=False)
    data = json.loads((out / "report.json").read_text())
    assert report.read_text().startswith("# aedfw anomaly demo report")
    assert data["passed"] and data["task"] == "anomaly"
    fan = data["per_type"]["fan"]
    v = fan["validation"]
    assert v["passed"] and v["n_matched"] == v["n_requested"] == 36  # 3 IDs x 6 x 2
    assert v["metrics"]["host"] == v["metrics"]["device"]
    assert 0 <= fan["int8"]["auc"] <= 1 and 0 <= fan["float"]["auc"] <= 1
    assert fan["memory"]["flash"]["total"] > fan["model"]["bytes"] > 0
    assert {"corpus_s", "train_s", "quantize_s", "firmware_fan_s", "validate_fan_s"} <= set(
        data["timings"]
    )
    page = (out / "report.html").read_text()
    for anchor in ("auc-table", "memory-fan-table", "validation-table-fan", "scores-plot-fan"):
        assert f'id="{anchor}"' in page, anchor
    assert "| fan |" in report.read_text() and "36/36 byte-identical" in report.read_text()
