"""`aedfw demo` runs end to end on the tiny corpus and writes its report."""

from __future__ import annotations

import json

from host_tools.demo import demo


def test_demo_tiny(tmp_path):
    report = demo(tmp_path / "run", preset="tiny", seed=3, jobs=1)
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report.read_text().startswith("# aedfw demo report")
    assert data["c_frontend_parity"]["identical"] and data["c_frontend_parity"]["frames"] > 0
    assert data["baseline_auprc"]["chance"] < data["baseline_auprc"]["micro"] < 1.0
