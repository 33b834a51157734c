"""Hardware-in-the-loop validation against emulated devices: a good device passes, an altered
front-end table is caught and named, hashes are checked, a noisy link and a device reset are
survived (or reported)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest
import serial

from aedfw.cli import main
from firmware_gen.build import build_firmware
from host_tools.emulate import EmulatedDevice
from host_tools.link import FaultyLink
from host_tools.validate import HashMismatch, validate
from model_dev.datasets import load_dataset
from model_dev.frontend import Frontend

from .conftest import HAS_M4, TINY_FE, EventAtWrite


@pytest.fixture(scope="module")
def host_device(tiny):
    with EmulatedDevice(tiny.fw, "host") as emu:
        yield emu


def test_native_device_validates_through_the_cli(tiny, host_device, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["validate", "--port", host_device.url, "--model", str(tiny.model)]
    code = main([*args, "--data", str(tiny.data), "--limit", "40", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    assert "PASS: 40/40 clips match" in capsys.readouterr().out
    r = json.loads((out / "report.json").read_text())
    assert r["passed"] and r["n_matched"] == 40 and r["first_mismatch"] is None
    assert r["metrics"]["name"] == "AUPRC" and r["task"] == "tagging"
    assert r["metrics"]["host"] == r["metrics"]["device"]
    assert r["cycles"]["model"]["median"] > 0 and r["cycles"]["frontend"]["median"] > 0
    assert 0.5 < r["link"]["efficiency"] < 1 and r["link"]["retransmissions"] == 0
    assert (out / "latency.png").stat().st_size > 0 and not (out / "mismatch.png").exists()
    assert (out / "report.md").read_text().startswith("# aedfw validation: PASS")
    page = (out / "report.html").read_text()  # one page, every figure inlined
    for anchor in ("validation-table", "scores-plot", "host-vs-device", "latency"):
        assert f'id="{anchor}"' in page


def test_validation_loads_no_deep_learning_library(tiny, host_device, tmp_path):
    """A test engineer's CI validates every build: torch or TensorFlow would add seconds and
    hundreds of MB to each run."""
    args = ["validate", "--port", host_device.url, "--model", str(tiny.model), "--data"]
    args += [str(tiny.data), "--limit", "3", "--out", str(tmp_path / "report")]
    probe = f"import sys; from aedfw.cli import main; code = main({args!r}); " + (
        "print(code, sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1:] == ["0 []"], result.stdout + result.stderr


def test_cli_takes_host_features_from_the_feature_cache(tiny, host_device, tmp_path, capsys):
    import numpy as np

    cache, out = tmp_path / "cache", tmp_path / "report"
    args = ["validate", "--port", host_device.url, "--model", str(tiny.model), "--limit", "3"]
    args += ["--data", str(tiny.data), "--cache", str(cache), "--out", str(out)]
    assert main(args) == 0, capsys.readouterr()
    (entry,) = cache.iterdir()  # the dataset's features under the model's front end
    assert entry.name.endswith(TINY_FE.short_hash)
    feats = np.load(entry / "features.npy")
    feats[0, 0] += 1  # a cache that disagrees with the device shows the cache was used
    np.save(entry / "features.npy", feats)
    assert main(args) == 1
    assert "mismatch in" in capsys.readouterr().out


def test_altered_front_end_table_fails_naming_the_first_mismatch(tiny, tmp_path, capsys):
    fw = tmp_path / "fw"
    shutil.copytree(tiny.fw, fw, ignore=shutil.ignore_patterns("build"))
    tables = fw / "aed/src/aed_frontend_tables.c"
    text = tables.read_text()
    start = text.index("aed_fe_window_q15[")  # one window entry changes (q15 0.5 -> 0.8)
    end = text.index("};", start)
    window = text[start:end].replace(" 16384,", " 26384,", 1)
    assert window != text[start:end]
    tables.write_text(text[:start] + window + text[end:])
    with EmulatedDevice(fw, "host") as emu:
        assert emu.selftest["status"] == "FAIL"  # the golden vectors notice it too
        out = tmp_path / "report"
        args = ["validate", "--port", emu.url, "--model", str(tiny.model), "--limit", "10"]
        assert main([*args, "--data", str(tiny.data), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    r = json.loads((out / "report.json").read_text())
    first = r["first_mismatch"]
    assert not r["passed"] and first["what"] == "features" and first["clip"] == "clip0000.wav"
    page = (out / "report.html").read_text()
    assert 'id="mismatch-table"' in page and 'id="mismatch"' in page and "FAIL" in page
    assert f"mismatch in clip0000.wav: features differ at frame {first['frame']}, band" in printed
    audio = load_dataset("manifest", tiny.data).load(0)
    expected = Frontend(TINY_FE)(audio)
    assert first["host"] == expected[first["frame"], first["band"]] != first["device"]
    assert first["byte"] == first["frame"] * TINY_FE.n_mels + first["band"]
    assert (out / "mismatch.png").stat().st_size > 0


@pytest.mark.skipif(not HAS_M4, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_cortex_m4_under_qemu_validates_end_to_end(tiny, tmp_path):
    with EmulatedDevice(tiny.fw, "cortex-m4") as emu:
        r = validate(emu.url, tiny.model, tiny.data, limit=4, out=tmp_path, progress=False)
    assert r["passed"] and r["n_matched"] == 4, r["mismatches"]
    assert r["device_stats"]["stack_used"] > 0  # measured on the M4 image


def test_mismatched_hashes_are_refused(tiny, host_device, tmp_path):
    from quantize.metadata import embed_metadata, pack, read_metadata, unpack

    meta = read_metadata(tiny.model)
    other = unpack(tiny.model.read_bytes())
    other.description = b"another model"
    path = tmp_path / "other.tflite"
    path.write_bytes(embed_metadata(pack(other), meta))
    other_hash = read_metadata(path).model_hash
    with pytest.raises(HashMismatch) as err:
        validate(host_device.url, path, tiny.data, limit=1, out=tmp_path, progress=False)
    assert f"model hash: device {meta.model_hash}, other.tflite {other_hash}" in str(err.value)

    fe = dataclasses.replace(TINY_FE, fmin_hz=TINY_FE.fmin_hz + 1)  # same int8 format
    path.write_bytes(
        embed_metadata(
            tiny.model.read_bytes(), dataclasses.replace(meta, frontend=fe, frontend_hash=fe.hash)
        )
    )
    with pytest.raises(
        HashMismatch, match=f"front-end hash: device {TINY_FE.hash}, other.tflite {fe.hash}"
    ):
        validate(host_device.url, path, tiny.data, limit=1, out=tmp_path, progress=False)


def test_one_percent_corrupted_bytes_every_result_correct(tiny, host_device, tmp_path):
    link = FaultyLink(serial.serial_for_url(host_device.url, timeout=0.01), corrupt=0.01, seed=7)
    r = validate(
        link, tiny.model, tiny.short, out=tmp_path, progress=False,
        max_payload=64, timeout=0.3, retries=60,
    )  # fmt: skip
    assert r["passed"] and r["n_matched"] == 200, (r["stopped"], r["mismatches"])
    assert link.injected["corrupt"] > 500 and r["link"]["retransmissions"] > 100


@pytest.mark.parametrize("on_reset", ["resume", "stop"])
def test_device_reset_mid_run_is_detected(tiny, tmp_path, on_reset):
    with EmulatedDevice(tiny.fw, "host", exe=build_firmware(tiny.fw, "host")) as emu:
        port = EventAtWrite(serial.serial_for_url(emu.url, timeout=0.01), emu.restart, at=12)
        r = validate(
            port, tiny.model, tiny.data, limit=6, out=tmp_path, progress=False, on_reset=on_reset
        )
    assert len(r["resets"]) == 1 and "the device was reset" in r["resets"][0]["message"]
    clip = r["resets"][0]["clip"]
    if on_reset == "resume":
        assert r["passed"] and r["n_matched"] == 6
    else:
        assert not r["passed"] and r["n_validated"] < 6
        assert r["stopped"].startswith(f"device reset while validating {clip}")
        assert "**Stopped:** device reset" in (tmp_path / "report.md").read_text()


def test_bench_over_serial(host_device, capsys):
    from host_tools.bench import bench

    r = bench(host_device.url, n=20, warmup=2, repeats=3)
    assert r["repeats"] == 3 and len(r["per_repeat"]) == 3
    assert 0 < r["cycles_min"] <= r["cycles_median"] <= r["cycles_max"] and r["runs_per_s"] > 0
    assert main(["bench", "--port", host_device.url, "-n", "10", "--repeats", "2"]) == 0
    assert "model: 10 runs after 10 warm-up, median of 2:" in capsys.readouterr().out
