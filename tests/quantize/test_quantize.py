"""quantize: drift guard, full-int8 graph contract, input format, metadata, arena, parity, and the
whole `quantize` step on a briefly trained tiny student. TensorFlow is slow to import and convert,
so the converted models are module-scoped fixtures."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from aedfw.cli import build_parser
from model_dev.arch import ds_cnn
from model_dev.frontend import FrontendConfig
from model_dev.train import train
from model_dev.train_config import TrainConfig
from quantize import quantize
from quantize.convert import (
    ALLOWED_OPS,
    GraphError,
    check_graph,
    check_io,
    convert,
    dequantize,
    keras_to_tflite,
)
from quantize.keras_mirror import DriftError, build_keras, check_drift, random_student
from quantize.metadata import (
    MetadataError,
    ModelMetadata,
    embed_metadata,
    model_hash,
    read_metadata,
    thresholds_to_q,
    write_metadata,
)
from quantize.runtime import arena_size, run_litert, run_tflm, runs_with_arena
from tests.model_dev.test_train import TINY_TEACHER, toy_features

torch.set_num_threads(1)

#: A small DS-CNN exercising every layer kind: strided regular conv, strided and unit-stride
#: depthwise + pointwise, odd sizes (TF-same padding with before != after).
TINY = ds_cnn("tiny", [6, 8, 10], [(2, 2), (1, 1)], first_kernel=(5, 3), n_classes=3, n_mels=40)
FRONTEND = FrontendConfig()
FAST = dict(batch_size=8, lr=1e-2, warmup_epochs=0.5, device="cpu", patience=0)


def _windows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 110, (n, TINY.window_frames, TINY.n_mels)).astype(np.int8)


@pytest.fixture(scope="module")
def student() -> torch.nn.Module:
    return random_student(TINY, seed=1)


@pytest.fixture(scope="module")
def tflite(student) -> bytes:
    return convert(student, _windows(24), FRONTEND)


@pytest.fixture(scope="module")
def fs():
    return toy_features()


@pytest.fixture(scope="module")
def student_ckpt(fs, tmp_path_factory):
    cfg = TrainConfig(arch="s5k", epochs=1, **FAST)
    return train(cfg, fs, tmp_path_factory.mktemp("student"), spec=TINY, progress=False)


@pytest.fixture(scope="module")
def quantized(student_ckpt, fs, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "tiny.tflite"
    return out, quantize(student_ckpt, out, fs, calibration_windows=32)


# ------------------------------------------------------------------------------ drift guard
def test_keras_mirror_equals_torch(student):
    x = dequantize(_windows(6), FRONTEND)
    assert check_drift(build_keras(TINY, student), student, x) <= 1e-5
    assert check_drift(build_keras(TINY, student, logits=True), student, x) <= 1e-4


def test_drift_guard_catches_a_mismatch(student):
    x = dequantize(_windows(4), FRONTEND)
    km = build_keras(TINY, student)
    conv = km.get_layer("conv2")  # the first pointwise conv
    w, b = conv.get_weights()
    conv.set_weights([w, b + 0.05])
    with pytest.raises(DriftError, match="drifts from torch"):
        check_drift(km, student, x)
    with pytest.raises(ValueError, match="torch model is"):
        build_keras(dataclasses.replace(TINY, name="other"), student)


# --------------------------------------------------------------------------- graph contract
def test_full_int8_graph_and_front_end_input_format(tflite):
    info = check_graph(tflite)
    assert set(info.ops) <= set(ALLOWED_OPS)
    assert info.ops == ("CONV_2D",) + ("DEPTHWISE_CONV_2D", "CONV_2D") * 2 + (
        "MEAN",
        "FULLY_CONNECTED",
        "LOGISTIC",
    )
    assert set(info.tensor_types) == {"INT8", "INT32"}
    assert info.input_shape == (1, 100, 40, 1) and info.output_shape == (1, 3)
    # contract 2: the front end's int8 format, exactly (scale as float32, the field's type)
    assert info.input_scale == float(np.float32(FRONTEND.input_scale)) == float(np.float32(1 / 6))
    assert info.input_zero_point == FRONTEND.input_zero_point == 32
    assert (info.output_scale, info.output_zero_point) == (1 / 256, -128)


def test_input_format_mismatch_is_named(tflite):
    other = FrontendConfig(log2_steps=8, log_offset=200)
    with pytest.raises(GraphError, match=r"0\.1666.*/32 differ from the front end's 0\.125/40"):
        check_io(check_graph(tflite), other, "m.tflite")


def test_other_front_end_gets_its_own_input_format(student):
    other = FrontendConfig(log2_steps=8, log_offset=200)
    info = check_graph(convert(student, _windows(8), other))
    assert (info.input_scale, info.input_zero_point) == (0.125, 40)


def test_forbidden_op_and_float_tensors_are_rejected():
    import keras

    inp = keras.Input((100, 40, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.Activation("tanh")(x)
    x = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    km = keras.Model(inp, x)
    int8 = keras_to_tflite(km, dequantize(_windows(4), FRONTEND))
    with pytest.raises(GraphError, match=r"bad\.tflite: op 1 \(TANH\): op TANH is outside DESIGN"):
        check_graph(int8, "bad.tflite")
    import tensorflow as tf

    float_model = tf.lite.TFLiteConverter.from_keras_model(build_keras(TINY)).convert()
    with pytest.raises(GraphError, match="float32"):
        check_graph(float_model)
    with pytest.raises(GraphError, match="not a TFLite flatbuffer"):
        check_graph(b"\x00" * 40)


# ------------------------------------------------------------------------- runtimes, arena
def test_tflm_equals_litert_reference_on_tiny_model(tflite):
    w = _windows(40, seed=5)
    tflm, litert = run_tflm(tflite, w), run_litert(tflite, w)
    assert tflm.dtype == np.int8 and tflm.shape == (40, 3)
    np.testing.assert_array_equal(tflm, litert)
    assert len(np.unique(tflm)) > 3  # not a degenerate constant output


def test_arena_search_is_exact(tflite):
    size = arena_size(tflite)
    assert size % 16 == 0
    assert runs_with_arena(tflite, size)
    assert not runs_with_arena(tflite, size - 16)
    w = _windows(3, seed=9)
    np.testing.assert_array_equal(run_tflm(tflite, w, arena_size=size), run_tflm(tflite, w))


# -------------------------------------------------------------------------------- metadata
def _meta(**kw) -> ModelMetadata:
    fields = dict(
        frontend=FRONTEND,
        frontend_hash=FRONTEND.hash,
        labels=("a", "b", "c"),
        thresholds=(0.25, 0.5, float("inf")),
        thresholds_q=thresholds_to_q((0.25, 0.5, float("inf")), 1 / 256, -128),
        window_frames=100,
        window_hop_frames=50,
        aggregation="max",
        input_scale=float(np.float32(1 / 6)),
        input_zero_point=32,
        output_scale=1 / 256,
        output_zero_point=-128,
        arena_bytes=1234,
        model_hash="",
        arch="tiny",
        checkpoint_sha256="0" * 64,
    )
    return ModelMetadata(**{**fields, **kw})


def test_metadata_round_trip_and_stable_model_hash(tflite, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite)
    plain_hash = model_hash(path)
    write_metadata(path, _meta())
    meta = read_metadata(path)
    assert meta == _meta(model_hash=plain_hash)
    assert meta.thresholds_q == (-64, 0, 128)
    assert model_hash(path) == plain_hash
    # re-writing replaces the entry (one aedfw entry, same hash), the graph still runs the same
    write_metadata(path, _meta(arena_bytes=99))
    data = path.read_bytes()
    assert data.count(b"aedfw") == 1 and read_metadata(data).arena_bytes == 99
    w = _windows(4, seed=3)
    np.testing.assert_array_equal(run_tflm(data, w), run_tflm(tflite, w))
    np.testing.assert_array_equal(run_litert(data, w), run_litert(tflite, w))


def test_model_without_or_with_bad_metadata_is_rejected_by_name(tflite, tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(tflite)
    with pytest.raises(MetadataError, match=r"bare\.tflite: no aedfw metadata"):
        read_metadata(bare)
    with pytest.raises(MetadataError, match=r"missing\.tflite: cannot read"):
        read_metadata(tmp_path / "missing.tflite")
    with pytest.raises(MetadataError, match="not a TFLite"):
        read_metadata(b"garbage")
    # a graph changed after quantisation no longer matches the stored hash
    other = convert(random_student(TINY, seed=2), _windows(8), FRONTEND)
    with pytest.raises(MetadataError, match="does not match the graph"):
        read_metadata(_swap_graph(embed_metadata(tflite, _meta()), other))


def _swap_graph(with_meta: bytes, other_graph: bytes) -> bytes:
    """``other_graph`` carrying ``with_meta``'s aedfw metadata verbatim (a stale model hash)."""
    from quantize.metadata import METADATA_NAME, pack, unpack

    donor = unpack(with_meta)
    entry = next(m for m in donor.metadata if m.name == METADATA_NAME)
    target = unpack(other_graph)
    target.buffers.append(donor.buffers[entry.buffer])
    entry.buffer = len(target.buffers) - 1
    target.metadata = [*(target.metadata or []), entry]
    return pack(target)


def test_int8_thresholds_match_probability_thresholds():
    rng = np.random.default_rng(0)
    qs = np.arange(-128, 128)
    for scale, zp in [(1 / 256, -128), (0.0123, 7)]:
        grid = (qs - zp) * scale
        ts = np.concatenate([rng.uniform(-1, 2, 200), grid[::17], [-np.inf, np.inf, 0.0]])
        for t, tq in zip(ts, thresholds_to_q(ts, scale, zp), strict=True):
            np.testing.assert_array_equal(qs >= tq, (qs - zp) * float(scale) >= t)


# ------------------------------------------------------------------- the whole quantize step
def test_quantize_checkpoint_end_to_end(quantized, student_ckpt, fs):
    out, r = quantized
    meta = read_metadata(out)
    assert meta.arch == "tiny" and meta.labels == fs.classes and meta.frontend == fs.config
    assert meta.arena_bytes == r["arena_bytes"] > 0 and meta.model_hash == model_hash(out)
    assert meta.window_frames == 100 and meta.window_hop_frames == 50
    assert meta.aggregation == "max" and len(meta.thresholds_q) == 3
    assert meta.thresholds_q == thresholds_to_q(meta.thresholds, 1 / 256, -128)
    assert runs_with_arena(out.read_bytes(), meta.arena_bytes)
    e = r["evaluation"]
    assert e["n_clips"] == 8 and e["split"] == "test"
    for k in ("float", "int8_litert", "int8_tflm"):
        assert 0 < e[k]["micro"] <= 1
    assert e["delta_micro"] == pytest.approx(e["int8_tflm"]["micro"] - e["float"]["micro"])
    assert r["parity"]["windows"] == e["n_windows"] and r["parity"]["max_lsb_diff"] <= 1
    assert r["drift"] <= 1e-4
    saved = json.loads((out.parent / "tiny.quant.json").read_text())
    assert saved["model"]["model_hash"] == meta.model_hash
    assert (out.parent / "tiny.quant.md").read_text().startswith("# Quantisation report: tiny")
    assert (out.parent / "tiny.scores.png").read_bytes()[:4] == b"\x89PNG"


def test_quantize_refuses_teacher_and_mismatched_front_end(student_ckpt, fs, tmp_path):
    cfg = TrainConfig(arch="teacher", epochs=1, **FAST)
    teacher = train(cfg, fs, tmp_path / "teacher", spec=TINY_TEACHER, progress=False)
    with pytest.raises(ValueError, match="a teacher checkpoint, expected a student"):
        quantize(teacher, tmp_path / "t.tflite", fs)
    other = dataclasses.replace(fs, config=FrontendConfig(log_offset=150))
    with pytest.raises(ValueError, match="trained on front end"):
        quantize(student_ckpt, tmp_path / "s.tflite", other)
    assert not list(tmp_path.glob("*.tflite"))


def test_cli_has_quantize():
    args = build_parser().parse_args(["quantize", "best.pt", "--data", "d", "--out", "m.tflite"])
    assert args.checkpoint.name == "best.pt" and args.limit is None


@pytest.mark.slow
def test_cli_quantize_on_tiny_synth(tmp_path, capsys):
    from aedfw.cli import main
    from model_dev.synth import synth

    data, cache, run = tmp_path / "c", tmp_path / "f", tmp_path / "run"
    synth(data, preset="tiny", jobs=1, progress=False)
    common = ["--data", str(data), "--cache", str(cache), "--jobs", "1"]
    args = ["train", "student", *common, "--out", str(run), "--epochs", "1", "--device", "cpu"]
    assert main(args) == 0
    assert main(["evaluate", str(run / "best.pt"), *common]) == 0  # stores thresholds
    model = tmp_path / "m.tflite"
    assert main(["quantize", str(run / "best.pt"), *common, "--out", str(model)]) == 0
    out = capsys.readouterr().out
    assert "micro-AUPRC float" in out and "TFLM vs LiteRT" in out
    meta = read_metadata(model)
    assert meta.arch == "s5k" and meta.threshold_source.startswith("checkpoint")
    assert main(["quantize", str(tmp_path / "none.pt"), *common, "--out", str(model)]) == 1
    assert "none.pt" in capsys.readouterr().err
