"""`aedfw demo` runs the whole chain on the tiny corpus (reduced epochs and clip counts) and
writes its report."""

from __future__ import annotations

import json
import shutil

import pytest

from host_tools.demo import DemoConfig, demo

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs gcc and arm-none-eabi-gcc",
)


def test_demo_tiny_whole_chain(tmp_path):
    config = DemoConfig(
        teacher_epochs=1, student_epochs=1, parity_clips=4, validate_clips=3, quantize_clips=8
    )
    report = demo(tmp_path / "run", preset="tiny", seed=3, jobs=1, target="host",
                  config=config, progress=False)  # fmt: skip
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report.read_text().startswith("# aedfw demo report")
    assert data["c_frontend_parity"]["identical"] and data["c_frontend_parity"]["frames"] > 0
    assert data["validation"]["passed"] and data["validation"]["n_matched"] == 3
    assert data["auprc"]["device"] == data["auprc"]["device_host_reference"]
    for key in ("teacher", "student_none_float", "student_float", "student_int8"):
        assert 0 < data["auprc"][key]["micro"] <= 1
    assert data["memory"]["flash"]["total"] > data["quantize"]["model_bytes"] > 0
    assert set(data["timings"]) >= {"teacher_s", "student_none_s", "student_s", "validate_s"}
    assert set(data["cpu_s"]) == set(data["timings"]) and data["total_cpu_s"] > 0
    text = report.read_text()
    assert "float, no distillation |" in text and "float, IUSP (same seed) |" in text
    assert "on the device, first 3 test clips" in text and "on the host, same 3 clips" in text
