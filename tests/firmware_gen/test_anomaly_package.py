"""Anomaly packages (issue 16): the C anomaly score (aed_anomaly.c) equals the Python integer
reference on the model's windows and on saturating ones, the clip mean, decision, stream running
mean and k-of-n vote equal their Python twins, and a dense-AE package builds on the host and for
the Cortex-M4 with its self-test passing (and failing on one altered golden window score)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_gen.build import build_firmware
from firmware_gen.host_build import compile_host
from firmware_gen.package import _anomaly_defines, _c_value, firmware
from host_tools.qemu import run_selftest
from model_dev.audio import read_audio
from quantize.anomaly import integer_window_scores, requantize, scales_of
from quantize.tasks import TASKS, anomaly_stream
from tests.model_dev.anomaly.conftest import tiny_corpus, tiny_prepared  # noqa: F401 (fixtures)
from tests.model_dev.anomaly.test_methods import blatant  # noqa: F401 (fixture)
from tests.model_dev.anomaly.test_quantize_anomaly import quantized  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc and make"
)
HAS_ARM_QEMU = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
HARNESS = Path(__file__).parent / "c" / "anomaly_cli.c"


@pytest.fixture(scope="module")
def model(quantized):  # noqa: F811
    from quantize.metadata import read_metadata

    _, report, path = quantized
    return path, read_metadata(path), report


@pytest.fixture(scope="module")
def package(model, tiny_prepared, tmp_path_factory):  # noqa: F811
    """The package, its golden clips cut from the most normal-sounding normal fan test clip and,
    for the last (``ragged``) clip, the same clip with a loud tone: the golden decisions then
    hold both outcomes (the ``short`` clip, padded with silence, is anomalous too)."""
    from model_dev.frontend import Frontend
    from quantize.runtime import clip_outputs

    path, meta, _ = model
    ms, _ = tiny_prepared
    normal = [
        ms.dataset.root / c.path
        for c, y, t in zip(ms.dataset.clips, ms.labels, ms.machine_types, strict=True)
        if y == 0 and t == "fan" and c.split == "test"
    ]
    fe = Frontend(meta.frontend)
    sums = clip_outputs(path.read_bytes(), meta, [fe(read_audio(p)) for p in normal])
    best = min(range(len(normal)), key=lambda i: sums[i][1][0] / sums[i][1][1])
    audio = read_audio(normal[best]).astype(np.float64)
    tone = 8000 * (2 * ((440.0 * np.arange(len(audio)) / 16000) % 1.0) - 1)
    toned = np.clip(audio + tone, -32768, 32767).astype(np.int16)
    golden = np.concatenate([audio[:4682].astype(np.int16), toned[4682:]])
    return firmware(path, tmp_path_factory.mktemp("fw"), golden_audio=golden), golden


def _harness(package: Path, build: Path, meta, **extra) -> Path:
    """anomaly_cli built against the package's aed_config.h with the AED_ANOMALY_* defines of
    ``meta`` (other scales or thresholds than the model's) and ``extra`` (span, vote)."""
    inc = build / "include"
    shutil.copytree(package / "aed/include", inc)
    config = (inc / "aed_config.h").read_text()
    defines = {
        k: _c_value(v)
        for k, v in _anomaly_defines(meta, (1, meta.window_frames * meta.frontend.n_mels)).items()
    }
    defines |= {k: str(v) for k, v in extra.items()}
    for name, value in defines.items():
        config, n = re.subn(rf"^#define {name} .*$", f"#define {name} {value}", config, flags=re.M)
        if n == 0:
            config = config.replace(
                "#endif /* AED_CONFIG_H */", f"#define {name} {value}\n#endif /* AED_CONFIG_H */"
            )
    (inc / "aed_config.h").write_text(config)
    return compile_host(
        [package / "aed/src/aed_anomaly.c", HARNESS],
        build / "anomaly_cli",
        sanitize=True,
        include=[inc],
    )


def _run(exe: Path, mode: int, n: int, payload: bytes, with_scores: bool) -> dict:
    out = subprocess.run(
        [exe], input=np.array([mode, n], "<u4").tobytes() + payload, capture_output=True, check=True
    ).stdout
    scores = np.frombuffer(out[: 4 * n], "<u4") if with_scores else None
    rest = out[4 * n :] if with_scores else out
    per_window = np.frombuffer(rest[13:], np.uint8).reshape(n, 2)
    return {
        "scores": scores,
        "clip": (int(np.frombuffer(rest[:8], "<u8")[0]), int(np.frombuffer(rest[8:12], "<u4")[0])),
        "decision": rest[12],
        "stream_decisions": per_window[:, 0].astype(bool),
        "alarms": per_window[:, 1].astype(bool),
    }


def _saturating(n_in: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Windows and outputs at the int8 extremes: all -128, all 127, alternating, and random."""
    lo, hi = np.full(n_in, -128, np.int8), np.full(n_in, 127, np.int8)
    alt = np.where(np.arange(n_in) % 2 == 0, 127, -128).astype(np.int8)
    rand = rng.integers(-128, 128, n_in, dtype=np.int8)
    pairs = [(lo, hi), (hi, lo), (lo, lo), (hi, hi), (alt, ~alt), (rand, hi), (rand, lo)]
    return np.stack([w for w, _ in pairs]), np.stack([o for _, o in pairs])


def test_c_window_score_equals_python_reference(model, package, tmp_path):
    package = package[0]
    """>= 200 real windows of the model (TFLM outputs) plus saturating ones, under the model's
    own scales and under scales where the requantised outputs clamp at both int8 ends."""
    from quantize.runtime import run_tflm

    path, meta, report = model
    tflite = path.read_bytes()
    rng = np.random.default_rng(0)
    n_mels = meta.frontend.n_mels
    n_in = meta.window_frames * n_mels
    int8 = report["scores"]["int8"]
    pick = np.linspace(0, len(int8["windows"]) - 1, 240).astype(int)
    sat_w, sat_o = _saturating(n_in, rng)
    windows = np.concatenate([int8["windows"][pick].reshape(-1, n_in), sat_w])
    outputs = np.concatenate([run_tflm(tflite, int8["windows"][pick]), sat_o])
    variants = {
        "model": meta,
        # output scale 3x the input's, zero points apart: outputs beyond +-43 clamp
        "clamp": dataclasses.replace(meta, output_scale=meta.input_scale * 3.0,
                                     output_zero_point=5, input_zero_point=-20),
        "shrink": dataclasses.replace(meta, output_scale=meta.input_scale * 0.02,
                                      output_zero_point=-128),
    }  # fmt: skip
    for name, m in variants.items():
        scales = scales_of(m)
        want = integer_window_scores(windows.reshape(len(windows), -1, n_mels), outputs, scales)
        exe = _harness(package, tmp_path / name, m)
        payload = np.concatenate([windows, outputs], axis=1).astype(np.int8).tobytes()
        got = _run(exe, 0, len(windows), payload, with_scores=True)
        np.testing.assert_array_equal(got["scores"], want, err_msg=name)
        assert len(want) >= 200 + len(sat_w)
        # the clip's exact mean and decision = the task's host post-processing
        w3 = windows.reshape(len(windows), meta.window_frames, n_mels)
        _, clip, decision = TASKS["anomaly"].clip_post(w3, outputs, m)
        assert got["clip"] == tuple(int(v) for v in clip) and got["decision"] == decision[0]
        if name == "clamp":  # requantised outputs clamp at both ends; the largest score
            y = requantize(outputs, scales)
            assert (y == 127).any() and (y == -128).any() and want.max() == n_in * 255**2


@pytest.mark.parametrize(
    ("span", "vote_n", "vote_k"), [(32, 1, 1), (1, 1, 1), (5, 4, 3), (7, 3, 3)]
)
def test_clip_and_stream_equal_python_twins(model, package, tmp_path, span, vote_n, vote_k):
    """Clip (sum, count) past 2^32, decisions at the threshold's edges, the stream's running
    mean over ``span`` scores and its k-of-n vote."""
    package = package[0]
    meta = model[1]
    thr = meta.thresholds_q[0]
    rng = np.random.default_rng(span * 100 + vote_n * 10 + vote_k)
    runs = [
        rng.integers(0, 2 * thr, 300),  # around the threshold
        np.full(200, 640 * 255**2),  # the largest window score: the sum exceeds 2^32
        np.r_[np.full(9, thr - 1), np.full(9, thr), np.full(9, thr + 1)],  # exact edges
        np.r_[np.full(span, thr - 1), [thr + span], np.full(3 * span, thr - 1)],
    ]
    vote = {"AED_ANOMALY_VOTE_N": vote_n, "AED_ANOMALY_VOTE_K": vote_k}
    exe = _harness(package, tmp_path / "stream", meta, AED_ANOMALY_SPAN=span, **vote)
    for scores in runs:
        scores = scores.astype(np.uint32)
        got = _run(exe, 1, len(scores), scores.astype("<u4").tobytes(), with_scores=False)
        total = int(scores.astype(np.uint64).sum())
        assert got["clip"] == (total, len(scores))
        assert got["decision"] == (total >= thr * len(scores))
        decisions, alarms = anomaly_stream(scores, thr, span, vote_n, vote_k)
        np.testing.assert_array_equal(got["stream_decisions"], decisions)
        np.testing.assert_array_equal(got["alarms"], alarms)
    assert int(runs[1].astype(np.uint64).sum()) > 2**32


def test_anomaly_package_layout_config_and_regeneration(model, package):
    path, meta, _ = model
    out, golden_audio = package
    config = (out / "aed/include/aed_config.h").read_text()
    assert "#define AED_TASK_ANOMALY 1\n" in config
    assert "#define AED_ANOMALY_METHOD_DENSE_AE 1\n" in config
    assert f"#define AED_ANOMALY_THRESHOLD_Q {meta.thresholds_q[0]}\n" in config
    readme = (out / "README.md").read_text()
    assert "aed_anomaly_window_score(window, out)" in readme and "aed_post_decide" not in readme
    assert f"the mean is at least {meta.thresholds_q[0]}:" in readme
    for name in ("aed/include/aed_anomaly.h", "aed/src/aed_anomaly.c", "aed/src/aed_post.c"):
        assert (out / name).is_file(), name
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and "build" not in p.parts}
    firmware(path, out, golden_audio=golden_audio)
    assert {p: p.read_bytes() for p in files} == files
    # golden: integer window scores, (sum, count) and decisions of the host reference: the
    # padded short clip and the toned ragged one are anomalous, the normal exact one is not
    golden = (out / "golden/aed_golden.c").read_text()
    assert "static const aed_golden_window_score_t window_scores_0[1]" in golden
    decisions = re.findall(r"decisions_\d\[AED_N_CLASSES\] = \{\n\s+(\d)", golden)
    assert decisions == ["1", "0", "1"]


def test_anomaly_package_selftest_on_host(package):
    package = package[0]
    exe = build_firmware(package, "host", selftest_only=True, sanitize=True)
    result = run_selftest(exe)
    assert result["status"] == "PASS" and result["passed"] == result["clips"] == 3
    assert result["windows"] == 4  # short: 1 padded, exact: 1, ragged: 2 (hop 1)


def test_anomaly_selftest_catches_a_wrong_window_score(package, tmp_path):
    package = package[0]
    bad = tmp_path / "bad"
    shutil.copytree(package, bad, ignore=shutil.ignore_patterns("build", "memory.*"))
    golden = (bad / "golden/aed_golden.c").read_text()
    head, rest = golden.split("window_scores_2[2] = {\n", 1)
    first, tail = rest.split(",", 1)
    (bad / "golden/aed_golden.c").write_text(
        f"{head}window_scores_2[2] = {{\n    {int(first) + 1},{tail}"
    )
    result = run_selftest(build_firmware(bad, "host", selftest_only=True))
    assert result["status"] == "FAIL" and result["passed"] == 2
    assert result["bad"] == ["ragged:2"]  # AED_SELFTEST_WINDOWS


@pytest.mark.skipif(not HAS_ARM_QEMU, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_anomaly_package_selftest_under_qemu(model, package):
    package = package[0]
    build_firmware(package, "cortex-m4", selftest_only=True)
    result = run_selftest(package / "build/cortex-m4-selftest/aed_app.elf")
    assert result["status"] == "PASS" and result["passed"] == result["clips"] == 3
    assert result["model"] == model[1].model_hash[:12]


def test_check_model_refuses_anomaly_metadata_that_does_not_fit(model, tmp_path):
    from quantize.metadata import MetadataError, write_metadata

    path, meta, _ = model
    for field, change, message in [
        ("labels", {"labels": ("a", "b"), "thresholds": (1.0, 1.0), "thresholds_q": (1, 1)},
         "an anomaly model has one"),
        ("thresholds_q", {"thresholds_q": (meta.thresholds_q[0] + 1,)}, "do not quantise"),
        ("window", {"window_frames": 4}, "give input"),
    ]:  # fmt: skip
        other = tmp_path / f"{field}.tflite"
        shutil.copyfile(path, other)
        write_metadata(other, dataclasses.replace(meta, **change))
        with pytest.raises(MetadataError, match=message):
            firmware(other, tmp_path / f"fw_{field}")
        assert not (tmp_path / f"fw_{field}").exists()


def test_anomaly_task_metrics_from_clip_sums():
    y = np.array([[0], [0], [1], [1]])
    clip = np.array([[10, 2], [30, 3], [50, 2], [8, 1]], np.uint64)  # means 5, 10, 25, 8
    m = TASKS["anomaly"].metrics(y, clip, ("anomalous",))
    assert m["auc"] == pytest.approx(0.75) and 0 <= m["pauc"] <= 1


def test_clip_outputs_takes_one_own_machine_id_per_clip(model):
    """``own`` reaches the method's score per clip (the dense AE has none to use) and must
    name one ID per clip."""
    from quantize.runtime import clip_outputs

    path, meta, _ = model
    n_mels = meta.frontend.n_mels
    feats = [np.zeros((7, n_mels), np.int8), np.full((3, n_mels), 50, np.int8)]
    tflite = path.read_bytes()
    plain, given = clip_outputs(tflite, meta, feats), clip_outputs(tflite, meta, feats, own=[0, 0])
    for a, b in zip(plain, given, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [len(w) for w, _, _ in plain] == [3, 1]  # hop 1: 7 - 5 + 1; a short clip: one
    with pytest.raises(ValueError, match="own: 1 machine IDs for 2 clips"):
        clip_outputs(tflite, meta, feats, own=[0])
