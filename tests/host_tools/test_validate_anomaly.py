"""Validation of an anomaly model over the serial link (issue 16): the generated package of a
dense autoencoder on the native device (pty) and the Cortex-M4 (QEMU) matches the host reference
byte for byte on the tiny machine corpus's fan test clips (features, u32 window scores, the clip
mean as (sum, windows), the decision), with the device's AUC/pAUC next to the host's; an altered
requantisation constant is caught and named by window and byte; a device of another machine type
is refused; an ID classifier is scored per clip against its own machine ID (MACHINE_ID)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from aedfw.cli import main
from firmware_gen.build import build_firmware
from firmware_gen.package import firmware
from host_tools.device import Device, DeviceError
from host_tools.emulate import EmulatedDevice
from host_tools.protocol import Command
from host_tools.validate import HashMismatch, validate
from model_dev.anomaly.data import load_dcase
from model_dev.arch import clip_windows
from model_dev.audio import read_audio
from model_dev.frontend import Frontend
from quantize.anomaly import integer_window_scores, scales_of
from quantize.metadata import read_metadata
from quantize.runtime import run_tflm
from tests.firmware_gen.test_anomaly_methods import converted, machine_windows  # noqa: F401
from tests.model_dev.anomaly.conftest import tiny_corpus, tiny_prepared  # noqa: F401 (fixtures)
from tests.model_dev.anomaly.test_methods import blatant  # noqa: F401 (fixture)
from tests.model_dev.anomaly.test_quantize_anomaly import quantized  # noqa: F401 (fixture)

from .conftest import HAS_BUILD, HAS_M4

pytestmark = pytest.mark.skipif(not HAS_BUILD, reason="needs gcc and make")


@pytest.fixture(scope="module")
def package(quantized, tmp_path_factory):  # noqa: F811
    """(model path, metadata, package folder) of the fan dense autoencoder."""
    _, _, model = quantized
    return model, read_metadata(model), firmware(model, tmp_path_factory.mktemp("fw") / "fw")


@pytest.fixture(scope="module")
def host_device(package):
    """The package's native build with ASan/UBSan on a pty."""
    with EmulatedDevice(
        package[2], "host", exe=build_firmware(package[2], "host", sanitize=True)
    ) as emu:
        yield emu


def test_anomaly_device_validates_over_a_pty(
    package,
    host_device,
    tiny_corpus,  # noqa: F811
    tmp_path,
    capsys,
):
    model, meta, _ = package
    h = host_device.hello
    assert (h.task, h.method, h.machine_type) == ("anomaly", meta.method, "fan")
    assert h.score == meta.score
    assert h.labels == ("anomalous",) and h.thresholds_q == meta.thresholds_q
    assert "anomaly" in h.capabilities and h.n_classes == 1
    out = tmp_path / "report"
    args = ["validate", "--port", host_device.url, "--model", str(model)]
    assert main([*args, "--data", str(tiny_corpus), "--out", str(out)]) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    ms = load_dcase(tiny_corpus)
    n_test = sum(
        t == "fan" and s == "test" for t, s in zip(ms.machine_types, ms.splits, strict=True)
    )
    assert f"PASS: {n_test}/{n_test} clips match" in printed and "AUC host" in printed
    r = json.loads((out / "report.json").read_text())
    assert r["passed"] and r["task"] == "anomaly" and r["dataset"]["split"] == "test"
    assert r["device"]["machine_type"] == "fan" and r["device"]["task"] == "anomaly"
    host, dev = r["metrics"]["host"], r["metrics"]["device"]
    assert r["metrics"]["name"] == "AUC" and host == dev and 0 <= dev["auc"] <= 1
    assert "| AUC |" in (out / "report.md").read_text()
    assert 'id="auc-table"' in (out / "report.html").read_text()

    # the device's numbers, checked against the integer score written out independently
    progress = json.loads((out / "progress.json").read_text())["clips"]
    first = progress[0]
    audio = read_audio(tiny_corpus / first["clip"])
    windows = clip_windows(Frontend(meta.frontend)(audio), meta.window_frames, 1)
    scores = integer_window_scores(windows, run_tflm(model.read_bytes(), windows), scales_of(meta))
    assert first["device_scores"] == [int(scores.sum()), len(scores)] == first["host_scores"]
    with Device(host_device.url, timeout=5.0) as dev:
        with pytest.raises(DeviceError, match="MACHINE_ID .*UNSUPPORTED"):
            dev.request(Command.MACHINE_ID, b"\x00")  # the autoencoder's score uses none
        got = dev.classify(audio)
        lean = dev.classify(audio, features=False, windows=False)
        infer = dev.infer(windows[-1])
        assert dev.bench(3, 1).n == 3
    assert got.window_scores[:, 0].tolist() == scores.tolist()
    assert got.decisions.tolist() == [int(scores.sum()) >= meta.thresholds_q[0] * len(scores)]
    assert lean.clip_scores.tolist() == got.clip_scores.tolist() and len(lean.window_scores) == 0
    assert infer.scores.tolist() == [scores[-1]] and infer.cycles > 0


def test_other_machine_type_is_refused(package, host_device, tiny_corpus, tmp_path):  # noqa: F811
    from quantize.metadata import write_metadata

    model, meta, _ = package
    other = tmp_path / "pump.tflite"
    shutil.copy(model, other)
    write_metadata(other, dataclasses.replace(meta, machine_type="pump"))
    with pytest.raises(HashMismatch, match="machine_type: device fan, model pump"):
        validate(host_device.url, other, tiny_corpus, out=tmp_path, progress=False)


def test_altered_requantisation_constant_fails_naming_the_window(
    package,
    tiny_corpus,  # noqa: F811
    tmp_path,
    capsys,
):
    model, meta, fw = package
    altered = tmp_path / "fw"
    shutil.copytree(fw, altered, ignore=shutil.ignore_patterns("build"))
    config = altered / "aed/include/aed_config.h"
    text = config.read_text()
    match = re.search(r"^#define (AED_ANOMALY_\w*MULT\w*) (\d+)$", text, flags=re.M)
    assert match, "aed_config.h names no requantisation multiplier"
    m = int(match[2])
    config.write_text(text.replace(match[0], f"#define {match[1]} {m - m // 64}"))  # -1.6 %
    with EmulatedDevice(altered, "host") as emu:
        assert emu.selftest["status"] == "FAIL"  # the golden window scores notice it too
        out = tmp_path / "report"
        args = ["validate", "--port", emu.url, "--model", str(model), "--limit", "3"]
        assert main([*args, "--data", str(tiny_corpus), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    r = json.loads((out / "report.json").read_text())
    first = r["first_mismatch"]
    assert not r["passed"] and first["what"] == "window_scores" and first["window"] == 0
    assert first["host"] != first["device"] and 0 <= first["byte"] < 4  # window 0: bytes 0-3
    diff = (first["host"] ^ first["device"]).to_bytes(4, "little")
    assert first["byte"] == next(k for k in range(4) if diff[k])  # the first differing byte
    assert (
        f"mismatch in {first['clip']}: window_scores differ at window 0 (start frame 0) "
        f"(byte {first['byte']}): host {first['host']}, device {first['device']}" in printed
    )


@pytest.mark.skipif(not HAS_M4, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_anomaly_cortex_m4_under_qemu_validates(package, tiny_corpus, tmp_path):  # noqa: F811
    model, _, fw = package
    with EmulatedDevice(fw, "cortex-m4") as emu:
        r = validate(emu.url, model, tiny_corpus, limit=4, out=tmp_path, progress=False)
    assert r["passed"] and r["n_matched"] == 4, r["mismatches"]
    assert r["device_stats"]["stack_used"] > 0 and r["cycles"]["post"]["median"] > 0
    assert np.isfinite(r["elapsed_s"])


def test_id_classifier_scores_each_clip_against_its_own_machine_id(
    converted,  # noqa: F811
    tiny_corpus,  # noqa: F811
    tmp_path,
):
    """MACHINE_ID sets the own ID of each clip on the device, the host reference uses the same:
    byte-identical, and the ID matters (other IDs give other scores)."""
    from quantize.runtime import clip_outputs

    model, meta = converted("id_classifier")
    fw = firmware(model, tmp_path / "fw")
    with EmulatedDevice(fw, "host", exe=build_firmware(fw, "host", sanitize=True)) as emu:
        assert emu.hello.machine_ids == meta.machine_ids == ("id_00", "id_02", "id_04")
        with Device(emu.url, timeout=5.0) as dev:
            assert dev.machine_id() == 0 and dev.machine_id(2) == 2 and dev.machine_id() == 2
            with pytest.raises(DeviceError, match="MACHINE_ID .*BAD_ARGUMENT"):
                dev.machine_id(3)  # class 3 is a pseudo-instance, no machine
            assert dev.reset().machine_ids == meta.machine_ids and dev.machine_id() == 0
        r = validate(emu.url, model, tiny_corpus, out=tmp_path / "v", progress=False)
    assert r["passed"] and r["n_matched"] == 36, r["first_mismatch"]
    clips = json.loads((tmp_path / "v" / "progress.json").read_text())["clips"]
    ms = load_dcase(tiny_corpus)
    own_of = {
        c.clip_id: meta.machine_ids.index(m)
        for c, m in zip(ms.dataset.clips, ms.machine_ids, strict=True)
    }
    assert {own_of[c["clip"]] for c in clips} == {0, 1, 2}
    fe, tflite = Frontend(meta.frontend), model.read_bytes()
    feats = [fe(read_audio(tiny_corpus / c["clip"])) for c in clips[-3:]]
    own = [own_of[c["clip"]] for c in clips[-3:]]
    mine = [o[1].tolist() for o in clip_outputs(tflite, meta, feats, own=own)]
    other = [
        o[1].tolist() for o in clip_outputs(tflite, meta, feats, own=[(k + 1) % 3 for k in own])
    ]
    assert mine == [c["device_scores"] for c in clips[-3:]] and mine != other


def test_anomaly_records_survive_a_corrupting_link(package, host_device, tiny_corpus, tmp_path):  # noqa: F811
    """Damaged frames are retransmitted, replayed answers are not re-executed: every u32 window
    score and (sum, windows) still byte-identical (smaller frames: one feature row each)."""
    import serial

    from host_tools.link import FaultyLink

    model, _, _ = package
    link = FaultyLink(serial.serial_for_url(host_device.url, timeout=0.01), corrupt=0.002, seed=3)
    r = validate(
        link, model, tiny_corpus, limit=3, out=tmp_path, progress=False,
        max_payload=256, timeout=0.3, retries=60,
    )  # fmt: skip
    assert r["passed"] and r["n_matched"] == 3, (r["stopped"], r["mismatches"])
    assert link.injected["corrupt"] > 100 and r["link"]["retransmissions"] > 20
