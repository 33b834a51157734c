"""`aedfw demo` runs the whole chain on the tiny corpus (reduced epochs and clip counts) and
writes its report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from host_tools.demo import SEED_CAVEAT, DemoConfig, _markdown, demo

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs gcc and arm-none-eabi-gcc",
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The report.md of a demo run on the tiny corpus (reduced epochs and clip counts)."""
    config = DemoConfig(
        teacher_epochs=1, student_epochs=1, parity_clips=4, validate_clips=3, quantize_clips=8
    )
    out = tmp_path_factory.mktemp("demo") / "run"
    return demo(out, preset="tiny", seed=3, jobs=1, target="host", config=config, progress=False)


def test_demo_tiny_whole_chain(tiny_run):
    report = tiny_run
    data = json.loads((report.parent / "report.json").read_text())
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
    assert "differ by" in text and SEED_CAVEAT in text  # one seed is not read as a result
    assert "on the device, first 3 test clips" in text and "on the host, same 3 clips" in text
    # the whole split validated (the default): one device row, no partial-split caveat
    n = data["quantize"]["evaluated_clips"]
    every = {**data, "validation": {**data["validation"], "n_requested": n}}
    whole = _markdown(every, report.parent)
    assert f"on the device, all {n} test clips" in whole and "same 3 clips" not in whole


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: The report's sections and figures a reader looks for (ids in report.html).
KEY_ELEMENTS = (
    "auprc-table", "pr-curves", "pareto-plot", "parity-table", "memory-table", "memory-plot",
    "validation-table", "scores-plot", "host-vs-device", "latency",
)  # fmt: skip


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
    return subprocess.run(
        [*cmd, "--virtual-time-budget=5000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (scripts/setup.sh installs it)"
)
def test_report_html_renders_in_headless_chromium(tiny_run, tmp_path):
    from PIL import Image

    page = tiny_run.parent / "report.html"
    html = page.read_text()
    assert 'src="http' not in html and 'href="http' not in html  # self-contained
    dom = _chromium(page, tmp_path / "profile", "--dump-dom").stdout
    for anchor in KEY_ELEMENTS:
        assert f'id="{anchor}"' in dom, anchor
    loaded, total = re.search(r'<body data-images="(\d+)/(\d+)"', dom).groups()
    assert loaded == total and int(total) >= 7  # every inlined PNG decoded in the browser
    assert "PASS: 3/3 clips" in dom and "micro-AUPRC" in dom
    shot = tmp_path / "report.png"
    size = "--window-size=1200,2400"
    _chromium(page, tmp_path / "profile", "--hide-scrollbars", size, f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 20 and (pixels < 100).mean() > 0.005  # text and plots, not blank
