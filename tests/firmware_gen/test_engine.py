"""The generated int8 engine equals the TFLM runtime byte for byte (DESIGN contract 4).

Models: small Keras graphs converted here (covering every contract-3 op and awkward shapes),
and every student size of ``model_dev.arch.STUDENTS`` (random weights) converted by
``quantize.convert.convert``. Each is compiled with ``-Wall -Wextra -Werror -pedantic`` and run
on >= 200 inputs (extremes, alternating, real front-end features of the tiny synthetic corpus,
random int8) in one harness invocation; the toy models and the smallest student also run under
ASan/UBSan (all students in the slow run).
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from firmware_gen.engine import ENGINE_FILES, build_engine, write_engine
from firmware_gen.fixed_point import logistic_table
from firmware_gen.host_build import HARNESS_DIR, compile_host, package_includes
from model_dev.arch import STUDENTS, clip_windows
from model_dev.frontend import Frontend, FrontendConfig
from model_dev.synth import PRESETS, synthesize_clip
from quantize.tflite_model import SUPPORTED_OPS, UnsupportedModelError, load_supported

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

N_RANDOM = 150  # plus extremes and real windows: >= 200 inputs per model


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def real_windows() -> np.ndarray:
    """Front-end windows of tiny-corpus clips, int8 [N, 100, 40]."""
    cfg = FrontendConfig()
    fe = Frontend(cfg)
    clips = [
        synthesize_clip(i, seed=0, duration_s=PRESETS["tiny"].duration_s)[0] for i in range(12)
    ]
    return np.concatenate([clip_windows(fe(c), 100, 50) for c in clips])


def _inputs(shape: tuple[int, int], real: np.ndarray, seed: int = 0) -> np.ndarray:
    """>= 200 int8 windows of ``shape``: extremes, alternations, real features, random."""
    rng = np.random.default_rng(seed)
    t, f = shape
    rows, cols = np.indices(shape)
    fixed = [
        np.full(shape, -128),
        np.full(shape, 127),
        np.where((rows + cols) % 2 == 0, -128, 127),
        np.where(rows % 2 == 0, 127, -128),
        np.where(cols % 2 == 0, -128, 127),
        np.full(shape, 0),
    ]
    crops = []
    for w in real:  # real features, cropped to the model's window
        y, x = rng.integers(0, w.shape[0] - t + 1), rng.integers(0, w.shape[1] - f + 1)
        crops.append(w[y : y + t, x : x + f])
    random = rng.integers(-128, 128, size=(N_RANDOM, *shape))
    narrow = rng.integers(-8, 8, size=(20, *shape)) + rng.integers(-100, 100, size=(20, 1, 1))
    out = np.concatenate([np.stack(fixed), np.stack(crops), random, narrow])
    return np.clip(out, -128, 127).astype(np.int8)


# --------------------------------------------------------------------------------------------
# Running both sides
# --------------------------------------------------------------------------------------------
def _tflm(tflite: bytes, windows: np.ndarray) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(tflite, arena_size=10 * len(tflite) + 262144)
    shape = it.get_input_details(0)["shape"]
    out = []
    for w in windows:
        it.set_input(w.reshape(shape), 0)
        it.invoke()
        out.append(np.asarray(it.get_output(0)).reshape(-1).copy())
    return np.array(out, dtype=np.int8)


def _build(model: Path, out_dir: Path, sanitize: bool) -> Path:
    write_engine(model, out_dir)
    name = "model_cli_san" if sanitize else "model_cli"
    sources = [out_dir / "aed/src/aed_model.c", HARNESS_DIR / "model_cli.c"]
    # sanitizer builds at -O1: the same checks, a third of the compile time of -O2
    return compile_host(
        sources,
        out_dir / name,
        sanitize=sanitize,
        include=package_includes(out_dir),
        opt="-O1" if sanitize else "-O2",
    )


def _run(exe: Path, windows: np.ndarray, n_out: int) -> np.ndarray:
    result = subprocess.run([str(exe)], input=windows.tobytes(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    return np.frombuffer(result.stdout, dtype=np.int8).reshape(len(windows), n_out)


def _assert_parity(model: Path, out_dir: Path, windows: np.ndarray, sanitize: bool) -> None:
    """Build (in a thread, while TFLM runs) and compare all outputs."""
    with ThreadPoolExecutor(1) as pool:
        exe = pool.submit(_build, model, out_dir, sanitize)
        expected = _tflm(model.read_bytes(), windows)
        got = _run(exe.result(), windows, expected.shape[1])
    bad = np.argwhere(got != expected)
    if len(bad):
        i, c = bad[0]
        pytest.fail(
            f"{model.name}: {len(bad)} differing scores; first at input {i}, output {c}: "
            f"engine {got[i, c]} vs TFLM {expected[i, c]}"
        )


# --------------------------------------------------------------------------------------------
# Toy models: every contract-3 op and awkward shapes
# --------------------------------------------------------------------------------------------
def _toy_keras(name: str):
    import tensorflow as tf

    L = tf.keras.layers
    if name == "strided":  # stride 2 SAME on odd sizes, RELU/RELU6/NONE, depthwise x1, MEAN
        inp = tf.keras.Input((21, 13, 1), batch_size=1)
        x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
        x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(x)
        x = L.Conv2D(12, 1)(x)
        x = L.DepthwiseConv2D((5, 3), strides=(1, 2), padding="same")(x)
        x = L.GlobalAveragePooling2D()(x)
        out = L.Activation("sigmoid")(L.Dense(5, bias_initializer="glorot_uniform")(x))
    elif name == "residual":  # ADD of differently scaled branches, pools, multiplier 2, FC
        inp = tf.keras.Input((16, 12, 1), batch_size=1)
        x = L.Conv2D(6, (5, 3), padding="same", activation="relu")(inp)
        x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(x)
        a = L.Conv2D(12, 1, activation="relu")(x)
        b = L.Conv2D(12, 3, padding="same")(x)
        x = L.Add()([a, b])
        x = L.MaxPooling2D(3, strides=2, padding="same")(x)
        x = L.AveragePooling2D(3, strides=2, padding="same")(x)
        x = L.Flatten()(x)
        out = L.Activation("sigmoid")(L.Dense(4, activation="relu6")(x))
    elif name == "padded":  # explicit PAD, VALID conv with uneven stride, VALID pools
        inp = tf.keras.Input((15, 10, 1), batch_size=1)
        x = L.ZeroPadding2D(((1, 2), (0, 1)))(inp)
        x = L.Conv2D(5, 3, strides=(1, 2), padding="valid", activation="relu")(x)
        x = L.AveragePooling2D(2, padding="valid")(x)
        x = L.MaxPooling2D((2, 1), padding="valid")(x)
        x = L.Reshape((-1,))(x)
        x = L.Dense(6, activation="relu")(x)
        out = L.Activation("sigmoid")(L.Dense(3)(x))
    elif name == "sigmoid":  # LOGISTIC alone: every int8 input value
        inp = tf.keras.Input((16, 16, 1), batch_size=1)
        out = L.Activation("sigmoid")(inp)
    else:
        raise KeyError(name)
    return tf.keras.Model(inp, out)


TOYS = ("strided", "residual", "padded", "sigmoid")


def _convert_toy(name: str) -> bytes:
    import tensorflow as tf

    from quantize.convert import keras_to_tflite

    tf.keras.utils.set_random_seed(len(name))
    model = _toy_keras(name)
    shape = model.input_shape[1:3]
    rng = np.random.default_rng(1)
    scale = 4.0 if name == "sigmoid" else 1.0  # sigmoid: inputs well into saturation
    rep = (scale * rng.standard_normal((24, *shape))).astype(np.float32)
    return keras_to_tflite(model, rep)


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("toys")
    out = {}
    for name in TOYS:
        out[name] = d / f"{name}.tflite"
        out[name].write_bytes(_convert_toy(name))
    return out


def test_toys_cover_every_contract_op(toy_models):
    used = set()
    for path in toy_models.values():
        used.update(load_supported(path).op_names())
    assert used == set(SUPPORTED_OPS)


@pytest.mark.parametrize("name", TOYS)
def test_toy_model_matches_tflm(toy_models, real_windows, tmp_path, name):
    model = load_supported(toy_models[name])
    windows = _inputs(model.input.shape[1:3], real_windows, seed=len(name))
    if name == "sigmoid":  # every int8 value at least once
        windows[0] = np.arange(-128, 128).reshape(16, 16)
    assert len(windows) >= 200
    _assert_parity(toy_models[name], tmp_path, windows, sanitize=True)


def _patched(src: Path, dst: Path, edit) -> Path:
    """Copy a .tflite with ``edit(model_t)`` applied to its object tree."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    edit(m, fb)
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst


def _code(opcode) -> int:
    return max(opcode.builtinCode, opcode.deprecatedBuiltinCode)


def _op(m, fb, name: str):
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    g = m.subgraphs[0]
    return next(op for op in g.operators if names[_code(m.operatorCodes[op.opcodeIndex])] == name)


def test_mean_with_equal_quantisation_matches_tflm(toy_models, real_windows, tmp_path):
    """TFLM's other MEAN path (input and output quantisation equal: truncating raw mean)."""

    def same_quant(m, fb):
        g, op = m.subgraphs[0], _op(m, fb, "MEAN")
        g.tensors[op.outputs[0]].quantization = g.tensors[op.inputs[0]].quantization

    model = _patched(toy_models["strided"], tmp_path / "mean.tflite", same_quant)
    windows = _inputs((21, 13), real_windows, seed=3)
    _assert_parity(model, tmp_path, windows, sanitize=False)


def test_logistic_table_matches_tflm(toy_models):
    model = load_supported(toy_models["sigmoid"])
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16)
    expected = _tflm(toy_models["sigmoid"].read_bytes(), x)[0]
    assert np.array_equal(logistic_table(model.input.scale, model.input.zero_point), expected)


# --------------------------------------------------------------------------------------------
# Students
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def student_model(tmp_path_factory, real_windows):
    """Converted random-weight students, once per session."""
    from quantize.convert import convert
    from quantize.keras_mirror import random_student

    d = tmp_path_factory.mktemp("students")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            tflite = convert(
                random_student(STUDENTS[name], seed=1), real_windows[:8], FrontendConfig()
            )
            cache[name] = d / f"{name}.tflite"
            cache[name].write_bytes(tflite)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(STUDENTS))
def test_student_matches_tflm(student_model, real_windows, tmp_path, name):
    windows = _inputs((100, 40), real_windows, seed=7)
    assert len(windows) >= 200
    _assert_parity(student_model(name), tmp_path, windows, sanitize=False)


def test_smallest_student_is_sanitizer_clean(student_model, real_windows, tmp_path):
    name = min(STUDENTS, key=lambda n: STUDENTS[n].blocks[0].out)
    _assert_parity(student_model(name), tmp_path, _inputs((100, 40), real_windows), sanitize=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STUDENTS))
def test_student_sanitizer_clean(student_model, real_windows, tmp_path, name):
    _assert_parity(student_model(name), tmp_path, _inputs((100, 40), real_windows), sanitize=True)


def test_activation_plan_beats_naive(student_model):
    """The arena holds less than the two largest tensors side by side (buffers overlap)."""
    eng = build_engine(student_model("s5k"))
    sizes = sorted(t.size for t in eng.model.tensors if t.data is None)
    assert eng.activation_bytes < sizes[-1] + sizes[-2]
    header = (write_engine(student_model("s5k"), eng.model.path.parent / "h")[0]).read_text()
    assert f"#define AED_MODEL_ACTIVATION_BYTES {eng.activation_bytes}\n" in header


# --------------------------------------------------------------------------------------------
# Determinism and refusals
# --------------------------------------------------------------------------------------------
def test_regenerating_gives_identical_files(toy_models, tmp_path):
    first = [p.read_bytes() for p in write_engine(toy_models["residual"], tmp_path / "a")]
    second = [p.read_bytes() for p in write_engine(toy_models["residual"], tmp_path / "b")]
    assert first == second and len(first) == len(ENGINE_FILES)
    assert build_engine(toy_models["residual"]).sha256.encode() in first[0]


def test_unsupported_op_is_refused_naming_it(toy_models, tmp_path):
    def to_softmax(m, fb):
        op = _op(m, fb, "LOGISTIC")
        m.operatorCodes[op.opcodeIndex].builtinCode = fb.BuiltinOperator.SOFTMAX
        m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode = fb.BuiltinOperator.SOFTMAX

    bad = _patched(toy_models["padded"], tmp_path / "softmax.tflite", to_softmax)
    n_ops = len(load_supported(toy_models["padded"]).ops)
    with pytest.raises(UnsupportedModelError, match=rf"op {n_ops - 1} \(SOFTMAX\)"):
        write_engine(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "what, edit, message",
    [
        ("dilation", lambda op, g: setattr(op.builtinOptions, "dilationHFactor", 2), "dilation"),
        ("tanh", lambda op, g: setattr(op.builtinOptions, "fusedActivationFunction", 4), "TANH|4"),
        ("float", lambda op, g: setattr(g.tensors[op.outputs[0]], "type", 0), "float32"),
    ],
)
def test_unsupported_options_are_refused(toy_models, tmp_path, what, edit, message):
    def patch(m, fb):
        edit(_op(m, fb, "CONV_2D"), m.subgraphs[0])

    bad = _patched(toy_models["strided"], tmp_path / f"{what}.tflite", patch)
    with pytest.raises(UnsupportedModelError, match=rf"op 0 \(CONV_2D\).*({message})"):
        write_engine(bad, tmp_path / "out")


def test_not_a_tflite_file_is_refused(tmp_path):
    from quantize.tflite_model import TFLiteFormatError

    path = tmp_path / "junk.tflite"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(TFLiteFormatError, match="junk.tflite"):
        write_engine(path, tmp_path / "out")
