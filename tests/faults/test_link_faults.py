"""Issue 12, row 6 and the link faults: a device that dies mid-run is named (port and clip) with
the partial report written, and the run resumes; a link that drops, duplicates or corrupts bytes
never gets a wrong result accepted; a killed host resumes where it stopped."""

from __future__ import annotations

import json

import pytest
import serial

from aedfw.cli import main
from host_tools.emulate import EmulatedDevice
from host_tools.validate import validate
from tests.host_tools.conftest import HAS_M4, EventAtWrite


def test_dead_device_names_port_and_clip_writes_the_report_and_resumes(tiny, tmp_path, capsys):
    """Row 6: raw serial-library text naming neither port nor clip; no report; no resume."""
    out = tmp_path / "report"
    with EmulatedDevice(tiny.fw, "host") as emu:
        port = EventAtWrite(serial.serial_for_url(emu.url, timeout=0.01), emu.stop, at=40)
        r = validate(port, tiny.model, tiny.data, limit=50, out=out, progress=False, timeout=0.3)
        url = emu.url
    assert not r["passed"] and 0 < r["n_validated"] < 50
    clip = f"clip{r['n_validated']:04d}.wav"
    assert r["stopped"].startswith(f"link failure on {url} while validating clip {clip}")
    saved = json.loads((out / "report.json").read_text())
    assert saved["n_validated"] == r["n_validated"] and saved["stopped"] == r["stopped"]
    progress = json.loads((out / "progress.json").read_text())
    assert [c["index"] for c in progress["clips"]] == list(range(r["n_validated"]))
    with EmulatedDevice(tiny.fw, "host") as emu:
        args = ["validate", "--port", emu.url, "--model", str(tiny.model), "--data", str(tiny.data)]
        assert main([*args, "--limit", "50", "--out", str(out), "--resume"]) == 0
    assert "PASS: 50/50 clips match" in capsys.readouterr().out
    r = json.loads((out / "report.json").read_text())
    assert r["passed"] and r["n_resumed"] == saved["n_validated"] and r["n_matched"] == 50


def test_resume_refuses_another_runs_progress(tiny, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "progress.json").write_text(json.dumps({"model": {"model_hash": "x"}, "clips": []}))
    with pytest.raises(ValueError, match="progress.json: cannot resume, it records model_hash x"):
        validate("loop://", tiny.model, tiny.data, out=out, progress=False, resume=True)


#: Per-byte fault rates of the full sweep (each kind alone, both directions, 200 clips each).
RATES = (0.001, 0.005, 0.01)


@pytest.fixture(scope="module")
def clips(tiny):
    from .link_probe import references

    return references(tiny.model, tiny.short, 200)


@pytest.fixture(scope="module")
def device(tiny):
    with EmulatedDevice(tiny.fw, "host") as emu:
        yield emu


def _check(r: dict, n: int) -> None:
    assert r["wrong"] == 0, r  # never a wrong result accepted
    assert r["correct"] + r["reported"] == r["clips"] == n, r


def test_mixed_faults_never_give_a_wrong_result(device, clips):
    """Fast representative of the sweep below: all three faults at once, 60 clips."""
    from .link_probe import classify_through_faults

    audios, refs, labels = clips
    r = classify_through_faults(
        device.url, audios[:60], refs[:60], labels, seed=11, drop=0.003, duplicate=0.003,
        corrupt=0.003,
    )  # fmt: skip
    _check(r, 60)
    assert min(r["injected"][k] for k in ("drop", "duplicate", "corrupt")) > 50, r
    assert r["retransmissions"] > 50 and r["correct"] == 60, r


@pytest.mark.slow
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("kind", ["drop", "duplicate", "corrupt"])
def test_link_faults_over_200_clips(device, clips, kind, rate):
    from .link_probe import classify_through_faults

    audios, refs, labels = clips
    r = classify_through_faults(device.url, audios, refs, labels, seed=3, **{kind: rate})
    _check(r, 200)
    assert r["injected"][kind] > 0


def test_host_killed_mid_run_resumes(tiny, device, tmp_path):
    """SIGKILL the validating host once progress.json holds a batch; --resume finishes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "aedfw.cli", "validate", "--port", device.url]
    cmd += ["--model", str(tiny.model), "--data", str(tiny.data), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = out / "progress.json"
    deadline = time.monotonic() + 120
    while not progress.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(json.loads(progress.read_text())["clips"])
    assert 0 < done < 200 and not (out / "report.json").exists()
    r = validate(device.url, tiny.model, tiny.data, out=out, progress=False, resume=True)
    assert r["passed"] and r["n_matched"] == 200 and r["n_resumed"] == done
    assert not list(out.glob(".*"))  # no temporary left behind


@pytest.mark.slow
@pytest.mark.skipif(not HAS_M4, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_dead_qemu_device_names_port_and_clip(tiny, tmp_path):
    """Row 6 on the emulated Cortex-M4: QEMU killed mid-run."""
    with EmulatedDevice(tiny.fw, "cortex-m4") as emu:
        port = EventAtWrite(serial.serial_for_url(emu.url, timeout=0.01), emu.stop, at=20)
        r = validate(port, tiny.model, tiny.data, limit=10, out=tmp_path, progress=False,
                     timeout=0.5)  # fmt: skip
        url = emu.url
    assert not r["passed"] and r["n_validated"] < 10
    clip = f"clip{r['n_validated']:04d}.wav"
    assert r["stopped"].startswith(f"link failure on {url} while validating clip {clip}")
    assert json.loads((tmp_path / "report.json").read_text())["stopped"] == r["stopped"]
