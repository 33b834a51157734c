"""The deployable anomaly networks on the device (issue 16): the generated engine runs every op of
the dense autoencoder, the causal predictor and the ID classifier byte-identically to the TFLM
runtime, and the C window scores of the predictor and the ID classifier
(``aed_anomaly_methods.c``) equal the Python integer reference (``quantize.anomaly_scores``) on
>= 200 windows each, saturating ones included.

Networks with random weights and non-trivial BatchNorm statistics, converted by the quantizer's
route (Keras mirror, full-int8 converter) with windows of the tiny machine corpus; no training.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from model_dev.anomaly import nets, specs
from model_dev.anomaly.data import ANOMALY_FRONTEND
from model_dev.arch import clip_windows
from tests.firmware_gen.test_engine import _assert_parity, _inputs
from tests.model_dev.anomaly.conftest import tiny_corpus, tiny_prepared  # noqa: F401 (fixtures)
from tests.model_dev.anomaly.test_keras_mirror import _random_bn

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

METHODS = ("dense_ae_small", "causal_conv", "id_classifier", "group_made")
DEVICE_METHODS = METHODS[1:]  # the scores of aed_anomaly_methods.c
N_IDS = 3  # machine IDs of the ID classifier: 4 * 3 classes with the pseudo-instances


@pytest.fixture(scope="module")
def machine_windows(tiny_prepared) -> np.ndarray:  # noqa: F811
    """Front-end windows of tiny-corpus clips, int8 ``[N, 36, 128]``."""
    _, fs = tiny_prepared
    return np.concatenate([clip_windows(fs.clip(j), 36, 36) for j in range(0, len(fs.clip_ids), 5)])


def _network(method: str, rep: np.ndarray):
    """(Keras mirror, extra metadata) of a network with random weights; ``rep``: dequantised
    calibration windows (Group MADE's input standardisation and log-scale gain)."""
    from quantize.keras_mirror import (
        build_keras,
        build_keras_anomaly,
        build_keras_made,
        made_gain,
        random_student,
    )

    torch.manual_seed(0)
    if method == "id_classifier":
        net = random_student(specs.id_classifier_spec(4 * N_IDS), seed=1)
        ids = ("id_00", "id_02", "id_04")
        return build_keras(net.spec, net, logits=True), {"machine_ids": ids}
    if method == "group_made":
        net = nets.GroupMADE(specs.MADE).eval()
        net.set_normaliser(torch.from_numpy(rep.reshape(len(rep), -1)))
        gain = made_gain(net, rep)
        return build_keras_made(net, gain), {"log_scale_gain": gain}
    model = {"dense_ae_small": nets.DenseAE, "causal_conv": nets.CausalConvPredictor}[method]
    spec = specs.DENSE_AE_SMALL if method == "dense_ae_small" else specs.PREDICTOR
    net = _random_bn(model(spec), 1)
    return build_keras_anomaly(spec, net), {}


@pytest.fixture(scope="module")
def converted(machine_windows, tmp_path_factory):
    """method -> (.tflite path, its metadata), converted once per module."""
    from quantize.anomaly_scores import SCORES, thresholds_q_of
    from quantize.convert import check_graph, dequantize, keras_to_tflite, representative_set
    from quantize.metadata import ModelMetadata, embed_metadata, read_metadata
    from quantize.runtime import arena_size

    d = tmp_path_factory.mktemp("anomaly_models")
    cache: dict[str, tuple[Path, object]] = {}

    def get(method: str):
        if method not in cache:
            frames = 5 if method in ("dense_ae_small", "group_made") else 32
            rep = dequantize(representative_set(machine_windows[:24, :frames]), ANOMALY_FRONTEND)
            keras_model, extra = _network(method, rep)
            tflite = keras_to_tflite(keras_model, rep)
            info = check_graph(tflite, method)
            meta = ModelMetadata.for_graph(
                info, ANOMALY_FRONTEND, ("anomalous",), (1.0,), frames, 1, arena_size(tflite),
                method, task="anomaly", score=SCORES[method], method=method, machine_type="fan",
                **extra,
            )  # fmt: skip
            meta = dataclasses.replace(
                meta, aggregation="mean", thresholds_q=thresholds_q_of(meta, info)
            )
            path = d / f"{method}.tflite"
            path.write_bytes(embed_metadata(tflite, meta))
            cache[method] = path, read_metadata(path)
        return cache[method]

    return get


@pytest.mark.parametrize(
    "method",
    # RESHAPE + FULLY_CONNECTED alone (dense AE, Group MADE) are also covered by the tagging
    # toys and by these packages' self-tests: slow run only
    [pytest.param(m, marks=pytest.mark.slow) if m in ("dense_ae_small", "group_made") else m
     for m in METHODS],
)  # fmt: skip
def test_engine_runs_the_anomaly_networks_like_tflm(converted, machine_windows, tmp_path, method):
    from quantize.tflite_model import load_supported

    path, _ = converted(method)
    model = load_supported(path)
    ops = set(model.op_names())
    assert (
        ops
        == {
            "dense_ae_small": {"RESHAPE", "FULLY_CONNECTED"},
            "causal_conv": {"CONV_2D", "RESHAPE"},
            "id_classifier": {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"},
            "group_made": {"RESHAPE", "FULLY_CONNECTED"},
        }[method]
    )
    windows = _inputs(tuple(model.input.shape[1:3]), machine_windows, seed=len(method))
    assert len(windows) >= 200
    _assert_parity(path, tmp_path, windows, sanitize=False)  # the packages run under ASan


# --------------------------------------------------------------------------------------------
# C window scores = Python integer reference
# --------------------------------------------------------------------------------------------
HARNESS = Path(__file__).parent / "c" / "anomaly_methods_cli.c"


def _saturating_outputs(method: str, n_out: int, n: int, seed: int) -> np.ndarray:
    """Model outputs at and near the int8 limits (no model produces them on purpose); for the
    ID classifier rows 3 .. 3 + n_out - 1 have class k at the top and every other at the bottom."""
    rng = np.random.default_rng(seed)
    out = [np.full(n_out, -128), np.full(n_out, 127), np.where(np.arange(n_out) % 2, 127, -128)]
    if method == "id_classifier":
        out += [np.where(np.arange(n_out) == k, 127, -128) for k in range(n_out)]
    out += list(rng.integers(-128, 128, (n - len(out), n_out)))
    return np.array(out[:n], dtype=np.int8)


def _harness(pkg: Path, build: Path, defines: dict) -> Path:
    """The harness built against the package's headers, ``defines`` replacing those of its
    aed_config.h (another output scale than the model's: clamping, other tables)."""
    import re

    from firmware_gen.host_build import compile_host
    from firmware_gen.package import _c_value

    inc = build / "include"
    shutil.copytree(pkg / "aed" / "include", inc)
    config = (inc / "aed_config.h").read_text()
    for name, value in defines.items():
        config, n = re.subn(rf"^#define {name} .*$", f"#define {name} {_c_value(value)}", config,
                            flags=re.M)  # fmt: skip
        assert n == 1, name
    (inc / "aed_config.h").write_text(config)
    src = pkg / "aed" / "src"
    return compile_host(
        [src / "aed_anomaly.c", src / "aed_anomaly_methods.c", HARNESS],
        build / "cli",
        sanitize=True,
        include=[inc],
    )


@pytest.mark.parametrize("method", DEVICE_METHODS)
def test_c_window_score_equals_the_python_reference(
    converted, machine_windows, tmp_path, method
) -> None:
    """>= 200 windows (extremes, real, random inputs; the model's outputs and saturated ones),
    with the model's output scale and with one 40 times larger (the requantisation clamps at
    both ends; the ID classifier's tables reach their largest steps)."""
    from firmware_gen.package import _anomaly_defines, firmware
    from quantize.anomaly_scores import requantize, scales_of, window_scores
    from quantize.runtime import run_tflm

    path, meta = converted(method)
    pkg = firmware(path, tmp_path / "fw")
    windows = _inputs((meta.window_frames, 128), machine_windows, seed=3)
    outputs = run_tflm(path.read_bytes(), windows).reshape(len(windows), -1)
    n_out = outputs.shape[1]
    extra = _saturating_outputs(method, n_out, 40, seed=4)
    windows = np.concatenate([windows, windows[: len(extra)]])
    outputs = np.concatenate([outputs, extra])
    windows[-1], outputs[-1] = 127, -128
    n = len(windows)
    assert n >= 200
    records = [windows.reshape(n, -1), outputs]
    own = None
    if method == "id_classifier":
        own = np.random.default_rng(5).integers(0, n_out, n)
        top = n - len(extra) + 3 + np.arange(n_out)  # class k at the top: own the next one
        own[top] = (np.arange(n_out) + 1) % n_out
        records.append(own[:, None])
    stdin = (
        np.uint32(n).tobytes()
        + np.concatenate(
            [np.asarray(r).astype(np.int8).view(np.uint8) for r in records], axis=1
        ).tobytes()
    )
    shape = (1, n_out)
    for k, factor in enumerate((1.0, 40.0)):
        m = dataclasses.replace(meta, output_scale=float(np.float32(meta.output_scale * factor)))
        if method == "group_made":  # log-scales from -6 (the uint32 table's reach) to +6
            gain = m.output_scale * 128 / 6.0
            m = dataclasses.replace(m, output_zero_point=0, log_scale_gain=gain)
        exe = _harness(pkg, tmp_path / str(k), _anomaly_defines(m, shape))
        result = subprocess.run([str(exe)], input=stdin, capture_output=True, check=False)
        assert result.returncode == 0, result.stderr.decode()
        got = result.stdout
        if method == "id_classifier":  # default own ID 0, an out-of-range ID is refused
            assert np.frombuffer(got[:4], np.uint32)[0] == 0 and got[4:5] == b"\xff"
            got = got[5:]
        want = window_scores(m, windows, outputs, own)
        np.testing.assert_array_equal(np.frombuffer(got, np.uint32), want)
        if method == "causal_conv" and factor > 1:  # the requantisation clamps at both ends
            clamped = requantize(outputs, scales_of(m))
            assert (clamped == -128).any() and (clamped == 127).any()
        if method == "group_made" and factor > 1:  # window scores saturate at 2^32 - 1
            assert (want == 2**32 - 1).any()


@pytest.mark.parametrize("method", DEVICE_METHODS)
def test_package_selftest_on_host(converted, tmp_path, method) -> None:
    """The whole package (engine, front end, window assembly, the method's score, golden clip
    means and decisions of the host reference) builds with -Werror and passes its self-test."""
    from firmware_gen.build import build_firmware
    from firmware_gen.package import firmware
    from host_tools.qemu import run_selftest

    path, meta = converted(method)
    pkg = firmware(path, tmp_path / "fw")
    config = (pkg / "aed/include/aed_config.h").read_text()
    assert f"#define AED_ANOMALY_METHOD_{method.upper()} 1\n" in config
    result = run_selftest(build_firmware(pkg, "host", selftest_only=True, sanitize=True))
    assert result["status"] == "PASS" and result["passed"] == result["clips"] == 3


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)
@pytest.mark.parametrize("method", DEVICE_METHODS)
def test_package_selftest_under_qemu(converted, tmp_path, method) -> None:
    from firmware_gen.build import build_firmware
    from firmware_gen.package import firmware
    from host_tools.qemu import run_selftest

    path, meta = converted(method)
    pkg = firmware(path, tmp_path / "fw")
    build_firmware(pkg, "cortex-m4", selftest_only=True)
    result = run_selftest(pkg / "build/cortex-m4-selftest/aed_app.elf")
    assert result["status"] == "PASS" and result["passed"] == result["clips"] == 3
    assert result["model"] == meta.model_hash[:12]
