"""Front-end benchmark: our integer log-mel vs librosa vs TensorFlow's audio_microfrontend.

One run, the same synthetic corpus clips for every measurement:

(a) throughput (seconds of audio per second, best of R, single-threaded) of our front end as the
    numpy reference and as the C extension (``model_dev._aed_frontend``, the device's C built at
    install time), of librosa's log-mel and of TF's integer ``audio_microfrontend`` op;
(b) fidelity against librosa's float64 log-mel: Pearson r and mean absolute error in dB, with our
    features mapped to dB analytically and, like the microfrontend's, by a least-squares affine fit;
(c) the C front end's cost: instructions per 10 ms frame (callgrind, host gcc -O2), static table
    bytes, the RAM of ``aed_frontend_t``, and the native host build's throughput.

The figures go to ``benchmarks/results/frontend.json`` (``extension_vs_librosa``,
``numpy_vs_librosa``, ...); ``--docs`` rewrites the table of ``docs/benchmarks.md`` ("Front end")
from them.

Usage::

    python benchmarks/frontend.py [--clips 40] [--seconds 10] [--repeats 5] [--seed 0] [--profile]
                                  [--docs]
"""

from __future__ import annotations

import os

# Single-threaded for a fair comparison: must be set before numpy (and its BLAS) is imported.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
for _var in THREAD_VARS:
    os.environ[_var] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from model_dev.fileio import write_json, write_marked_section  # noqa: E402
from model_dev.frontend import Frontend, FrontendConfig, make_tables  # noqa: E402
from model_dev.synth import VERSION as SYNTH_VERSION  # noqa: E402
from model_dev.synth import synthesize_clip  # noqa: E402

FeatureFn = Callable[[np.ndarray], np.ndarray]
ToDb = Callable[[np.ndarray], np.ndarray]

DB_PER_DOUBLING = 10.0 * np.log10(2.0)
FLOOR_DB = 60.0  # evaluated bins: librosa within this many dB of the clip's maximum
AMIN = 1e-10  # power floor of the librosa reference (-100 dB), as librosa.power_to_db
MICRO_MAX = 32767  # the microfrontend saturates its log output here (kint16max)
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "frontend.json"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- frontend-benchmark:begin -->", "<!-- frontend-benchmark:end -->"


# ----------------------------------------------------------------------------------------------
# The three front ends, configured alike
# ----------------------------------------------------------------------------------------------


def librosa_kwargs(cfg: FrontendConfig) -> dict:
    """``librosa.feature.melspectrogram`` arguments equivalent to ``cfg``."""
    return {
        "sr": cfg.sample_rate,
        "n_fft": cfg.fft_size,
        "hop_length": cfg.hop_length,
        "win_length": cfg.window_length,
        "window": "hann",
        "center": False,
        "power": 2.0,
        "n_mels": cfg.n_mels,
        "fmin": cfg.fmin_hz,
        "fmax": cfg.fmax_hz,
        "htk": False,
        "norm": None,
    }


def librosa_pad(cfg: FrontendConfig) -> int:
    """Zeros on each side that put librosa's centred window on our frames (same frame count)."""
    return (cfg.fft_size - cfg.window_length) // 2


def librosa_user_fn(cfg: FrontendConfig) -> FeatureFn:
    """What a user runs for log-mel: float32 audio, melspectrogram, ``power_to_db`` (defaults)."""
    import librosa

    kwargs, pad = librosa_kwargs(cfg), librosa_pad(cfg)

    def run(audio: np.ndarray) -> np.ndarray:
        y = np.pad(audio.astype(np.float32) / 32768.0, pad)
        return librosa.power_to_db(librosa.feature.melspectrogram(y=y, **kwargs))

    return run


def librosa_reference_db(audio: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """The fidelity reference: librosa's float64 mel power of x / 32768 in dB, [frames, n_mels]."""
    import librosa

    y = np.pad(audio / 32768.0, librosa_pad(cfg))
    power = librosa.feature.melspectrogram(y=y, **librosa_kwargs(cfg))
    return librosa.power_to_db(power, ref=1.0, amin=AMIN, top_db=None).T


def ours_fn(cfg: FrontendConfig) -> Frontend:
    """Our front end (tables built here, outside any timing): calling it runs the C extension
    when it is built (``.native``), ``.reference`` the numpy specification."""
    return Frontend(cfg)


def microfrontend_kwargs(cfg: FrontendConfig) -> dict:
    """``audio_microfrontend`` arguments as close to ``cfg`` as the op allows.

    Noise reduction has no on/off switch: zero smoothing keeps its noise estimate at 0 and
    ``min_signal_remaining=1`` keeps every value, so it passes the filterbank through unchanged
    (``smoothing_bits=0`` avoids its ``<< smoothing_bits`` overflowing 32 bits). PCAN is off.
    """
    import tensorflow as tf

    return {
        "sample_rate": cfg.sample_rate,
        "window_size": cfg.window_length * 1000 // cfg.sample_rate,
        "window_step": cfg.hop_length * 1000 // cfg.sample_rate,
        "num_channels": cfg.n_mels,
        "upper_band_limit": cfg.fmax_hz,
        "lower_band_limit": cfg.fmin_hz,
        "smoothing_bits": 0,
        "even_smoothing": 0.0,
        "odd_smoothing": 0.0,
        "min_signal_remaining": 1.0,
        "enable_pcan": False,
        "enable_log": True,
        "out_scale": 1,
        "out_type": tf.uint16,
    }


def microfrontend_fns(cfg: FrontendConfig) -> dict[str, FeatureFn]:
    """TF's integer front end, eager and as a ``tf.function``, both single-threaded."""
    import tensorflow as tf
    from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    kwargs = microfrontend_kwargs(cfg)

    def op(audio: tf.Tensor) -> tf.Tensor:
        return audio_microfrontend_op.audio_microfrontend(audio, **kwargs)

    graph = tf.function(op, input_signature=[tf.TensorSpec([None], tf.int16)], autograph=False)
    return {
        "eager": lambda audio: op(tf.constant(audio)).numpy(),
        "tf.function": lambda audio: graph(tf.constant(audio)).numpy(),
    }


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def load_clips(n_clips: int, seconds: float, seed: int) -> list[np.ndarray]:
    """Clips 0..n_clips-1 of the built-in synthetic corpus (int16, 16 kHz)."""
    return [synthesize_clip(i, seed, seconds)[0] for i in range(n_clips)]


def clips_fingerprint(clips: Sequence[np.ndarray]) -> str:
    """First 16 hex digits of the sha256 of all clips' samples (identifies the exact audio)."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(np.ascontiguousarray(clip, dtype="<i2").tobytes())
    return digest.hexdigest()[:16]


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (the C harness)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Best CPU time of ``repeats`` calls of ``run`` (:func:`cpu_seconds`: everything runs on one
    thread, and on a shared machine wall time also counts the waits for a core), after one
    warm-up call (librosa compiles and caches on first use, TF builds its kernels)."""
    run()
    best = np.inf
    for _ in range(repeats):
        t0 = cpu_seconds()
        run()
        best = min(best, cpu_seconds() - t0)
    return best


def audio_seconds(clips: Sequence[np.ndarray], rate: int) -> float:
    """Total duration of ``clips`` in seconds."""
    return sum(len(c) for c in clips) / rate


def throughput(fn: FeatureFn, clips: Sequence[np.ndarray], repeats: int, rate: int) -> float:
    """Seconds of audio processed per second: best of ``repeats`` passes over all clips."""
    return audio_seconds(clips, rate) / best_time(lambda: [fn(c) for c in clips], repeats)


def evaluation_mask(
    ref_db: np.ndarray, ours: np.ndarray, micro: np.ndarray, floor_db: float = FLOOR_DB
) -> np.ndarray:
    """Bins every front end is scored on (one clip): librosa within ``floor_db`` of the clip's
    maximum, ours not clamped at -128/127 and the microfrontend not at 0 or saturated."""
    return (
        (ref_db >= ref_db.max() - floor_db)
        & (ours > -128)
        & (ours < 127)
        & (micro > 0)
        & (micro < MICRO_MAX)
    )


def analytic_db(cfg: FrontendConfig) -> ToDb:
    """Our int8 feature to dB: dequantised v = log2(2 S), so 10 log10 S = (v - 1) 10 log10 2."""
    fe_scale, zero_point = cfg.input_scale, cfg.input_zero_point

    def to_db(q: np.ndarray) -> np.ndarray:
        return ((q.astype(np.float64) - zero_point) * fe_scale - 1.0) * DB_PER_DOUBLING

    return to_db


def affine_db(
    features: Sequence[np.ndarray], ref_db: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> tuple[ToDb, float, float]:
    """Least-squares ``dB_librosa ~ a * feature + b``, one fit over the evaluated bins of all clips.

    Returns
    -------
    to_db : callable
        The fitted map.
    a, b : float
        Its slope and intercept.
    """
    x = np.concatenate([f[m] for f, m in zip(features, masks, strict=True)]).astype(np.float64)
    y = np.concatenate([r[m] for r, m in zip(ref_db, masks, strict=True)])
    a, b = np.polyfit(x, y, 1)
    return (lambda f: a * f.astype(np.float64) + b), float(a), float(b)


@dataclass(frozen=True)
class Fidelity:
    """Agreement of one front end's dB-mapped features with librosa's float log-mel."""

    r_all: float  # Pearson r over all bins of all clips
    r_eval: float  # Pearson r over the evaluated bins
    mae_db: float  # mean |error| in dB over the evaluated bins
    bias_db: float  # mean signed error (front end - librosa) in dB over the evaluated bins


def fidelity(
    features: Sequence[np.ndarray],
    to_db: ToDb,
    ref_db: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
) -> Fidelity:
    """Score ``to_db(features)`` against ``ref_db``, per-clip arrays [frames, n_mels]."""
    got = np.concatenate([to_db(f).ravel() for f in features])
    want = np.concatenate([r.ravel() for r in ref_db])
    mask = np.concatenate([m.ravel() for m in masks])
    err = got[mask] - want[mask]
    return Fidelity(
        r_all=float(np.corrcoef(got, want)[0, 1]),
        r_eval=float(np.corrcoef(got[mask], want[mask])[0, 1]),
        mae_db=float(np.abs(err).mean()),
        bias_db=float(err.mean()),
    )


def clamp_fractions(features: Sequence[np.ndarray], low: int, high: int) -> tuple[float, float]:
    """Fractions of all bins at the output's lower and upper limit."""
    flat = np.concatenate([f.ravel() for f in features])
    return float((flat <= low).mean()), float((flat >= high).mean())


def range_use(features: Sequence[np.ndarray], low: int) -> tuple[int, float]:
    """Largest output value over all clips, and the worst clip's fraction of bins at ``low``."""
    return (
        int(max(f.max() for f in features)),
        float(max((f <= low).mean() for f in features)),
    )


def check_frames(name: str, features: Sequence[np.ndarray], ref_db: Sequence[np.ndarray]) -> None:
    """Fail loudly if a front end's frame grid differs from the reference's."""
    for i, (f, r) in enumerate(zip(features, ref_db, strict=True)):
        if f.shape != r.shape:
            raise RuntimeError(f"{name}: clip {i} gives {f.shape}, librosa {r.shape}")


@dataclass(frozen=True)
class CCost:
    """The C front end's cost on the host build."""

    instructions_per_frame: float
    frames: int
    native_speed: float  # s of audio / s, whole batch through frontend_cli (process + pipes)
    bit_exact: bool  # C output == Python reference on every clip
    table_bytes: dict[str, int]
    state_bytes: dict[str, int]  # sizeof(aed_frontend_t) per ABI


def table_bytes(cfg: FrontendConfig) -> dict[str, int]:
    """Bytes of every static table the C front end compiles in (from the Python tables)."""
    t = make_tables(cfg)
    return {
        "window": t.window.nbytes,
        "cos": t.cos.nbytes,
        "digit_reverse": t.digit_reverse.nbytes,
        "mel_start": t.mel.start.nbytes,
        "mel_length": t.mel.length.nbytes,
        "mel_offset": t.mel.offset.nbytes,
        "mel_weights": t.mel.weights.nbytes,
        "log2_lut": t.log2.nbytes,
    }


def state_bytes(build_dir: Path) -> dict[str, int]:
    """``sizeof(aed_frontend_t)`` as gcc lays it out for the host (LP64) and ILP32 (-m32).

    Compiled to assembly only (nothing is linked or run), so -m32 needs no 32-bit libraries;
    For this struct (no 64-bit members) ILP32 is also the arm-none-eabi (Cortex-M4) layout.
    """
    src = build_dir / "state_size.c"
    src.write_text(
        '#include "aed_frontend.h"\nconst unsigned long aed_state_bytes = sizeof(aed_frontend_t);\n'
    )
    sizes = {}
    for abi, flags in (("host LP64", []), ("ILP32 = Cortex-M4 layout", ["-m32"])):
        asm = subprocess.run(
            ["gcc", *flags, "-ffreestanding", "-std=c99", f"-I{build_dir / 'aed' / 'include'}"]
            + ["-S", "-o", "-", src],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found = re.search(r"aed_state_bytes:\s*\.(?:quad|long)\s+(\d+)", asm)
        if found is None:
            raise RuntimeError(f"could not read sizeof(aed_frontend_t) from gcc {flags} output")
        sizes[abi] = int(found.group(1))
    return sizes


def c_cost(
    cfg: FrontendConfig, clips: Sequence[np.ndarray], ours: Sequence[np.ndarray], repeats: int
) -> CCost:
    """Callgrind instruction count of ``aed_frontend_clip`` (and callees) per frame, -O2 host.

    Also times the native harness on all clips at once (best of ``repeats``; includes process
    start and the stdin/stdout pipes), for a throughput figure of the C path.
    """
    from firmware_gen.host_build import build_frontend_cli, run_frontend_cli

    with tempfile.TemporaryDirectory(prefix="aedfw-fe-bench-") as tmp:
        build_dir = Path(tmp)
        exe = build_frontend_cli(cfg, build_dir, sanitize=False)
        out_file = build_dir / "callgrind.out"
        wrapper = [
            "valgrind",
            "--tool=callgrind",
            "--toggle-collect=aed_frontend_clip",
            f"--callgrind-out-file={out_file}",
        ]
        c_features = run_frontend_cli(exe, list(clips), cfg, "clip", wrapper=wrapper)
        found = re.search(r"^totals:\s+(\d+)", out_file.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no totals line in {out_file}")
        frames = sum(cfg.n_frames(len(c)) for c in clips)
        native_s = best_time(lambda: run_frontend_cli(exe, list(clips), cfg, "clip"), repeats)
        return CCost(
            instructions_per_frame=int(found.group(1)) / frames,
            frames=frames,
            native_speed=audio_seconds(clips, cfg.sample_rate) / native_s,
            bit_exact=all(np.array_equal(a, b) for a, b in zip(c_features, ours, strict=True)),
            table_bytes=table_bytes(cfg),
            state_bytes=state_bytes(build_dir),
        )


def profile_ours(fn: FeatureFn, clips: Sequence[np.ndarray], top: int = 12) -> str:
    """cProfile of our front end over ``clips``, the ``top`` functions by own time."""
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [fn(c) for c in clips])
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    """CPU model, core count and library versions."""
    import librosa
    import scipy
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout
    return {
        "cpu": f"{cpu} ({os.cpu_count()} logical cores visible)",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "librosa": librosa.__version__,
        "tensorflow": tf.__version__,
        "gcc": gcc.strip(),
        "valgrind": valgrind.strip(),
    }


def fmt_fid(f: Fidelity) -> tuple[str, str, str]:
    """r (all), r (evaluated), MAE / bias as table cells."""
    return f"{f.r_all:.5f}", f"{f.r_eval:.5f}", f"{f.mae_db:.2f} / {f.bias_db:+.2f}"


def markdown_table(res: dict) -> str:
    """The summary table: one row per measurement, one column per front end."""
    speed, lib = res["speed"], res["speed"]["librosa"]
    micro_mode = res["micro_mode"]
    # Pearson r is the same under any increasing affine map (the analytic one included).
    ours_an, ours_af, micro_af = (fmt_fid(res[k]) for k in ("fid_ours", "fid_ours_af", "fid_micro"))
    cost = res["c"]
    (a_o, b_o), (a_m, b_m) = res["fit_ours"], res["fit_micro"]
    low_o, high_o = res["clamp_ours"]
    low_m, high_m = res["clamp_micro"]
    state = " / ".join(f"{v} ({k})" for k, v in cost.state_bytes.items()) if cost else "n/a"
    rows = [
        ("output", "int8 [frames, 40]", "float32 dB", "uint16 [frames, 40]"),
        (
            "throughput, s of audio / s (numpy / C extension)",
            f"{speed['ours']:.0f} / {_fmt(speed['extension'], '.0f')}",
            f"{lib:.0f}",
            f"{speed['micro']:.0f} ({micro_mode})",
        ),
        (
            "throughput ÷ librosa (numpy / C extension; goal ≥ 1.5)",
            f"**{speed['ours'] / lib:.2f}** / **{_fmt(ratio(speed['extension'], lib), '.2f')}**",
            "1.00",
            f"{speed['micro'] / lib:.2f}",
        ),
        (
            "C host build, s of audio / s (÷ librosa)",
            f"{cost.native_speed:.0f} ({cost.native_speed / lib:.2f})" if cost else "n/a",
            "—",
            "—",
        ),
        ("Pearson r, all bins", ours_an[0], "reference", micro_af[0]),
        ("Pearson r, evaluated bins", ours_an[1], "reference", micro_af[1]),
        ("MAE / bias dB, evaluated, analytic map", ours_an[2], "reference", "— (no analytic map)"),
        (
            "affine fit dB ≈ a·out + b",
            f"a={a_o:.4f}, b={b_o:.2f}",
            "—",
            f"a={a_m:.4f}, b={b_m:.2f}",
        ),
        ("MAE / bias dB, evaluated, affine fit", ours_af[2], "reference", micro_af[2]),
        (
            "bins at lower / upper limit",
            f"{low_o:.2%} / {high_o:.2%} (-128 / 127)",
            "—",
            f"{low_m:.2%} / {high_m:.2%} (0 / {MICRO_MAX})",
        ),
    ]
    if cost:
        rows += [
            (
                "C: instructions / 10 ms frame (callgrind, -O2)",
                f"{cost.instructions_per_frame:,.0f}",
                "—",
                "—",
            ),
            ("C: static tables, bytes", f"{sum(cost.table_bytes.values()):,}", "—", "—"),
            ("C: state `aed_frontend_t`, bytes", state, "—", "—"),
        ]
    lines = [
        "| measurement | ours (int8; numpy ref / C) | librosa (float) | TF audio_microfrontend |",
        "|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def ratio(value: float | None, base: float) -> float | None:
    """value / base, None when there is no value (extension not built)."""
    return None if value is None else value / base


def print_report(res: dict, args: argparse.Namespace) -> None:
    """Print the machine, the settings, the table and the details behind it."""
    info, cost = res["machine"], res["c"]
    n_samples = res["n_samples"]
    print("\n## Front-end benchmark\n")
    print(
        f"clips: synthetic corpus seed {args.seed}, clips 0..{args.clips - 1}, {args.seconds:g} s"
        f" each ({n_samples / 16000:.0f} s of audio, {res['n_frames']} frames); "
        f"best of {args.repeats} repeats"
    )
    print(f"clips sha256: {res['clips_sha256']} (model_dev.synth VERSION {SYNTH_VERSION})")
    print(f"threads: {', '.join(f'{v}=1' for v in THREAD_VARS)}; TF intra/inter-op threads = 1")
    for key, value in info.items():
        print(f"{key}: {value}")
    print()
    print(markdown_table(res))
    print()
    print("notes:")
    print(
        "- librosa timed as a user runs it: int16 -> float32 / 32768, zero-pad "
        f"{res['pad']} samples each side (so its frames are ours), melspectrogram "
        "(n_fft 512, hop 160, win 400, hann, center=False, power 2, 40 Slaney mels 125-7500 Hz, "
        "norm=None), then librosa.power_to_db (defaults: ref 1, amin 1e-10, top_db 80)."
    )
    print(
        "- fidelity reference: the same librosa pipeline in float64, power_to_db(ref=1, "
        "amin=1e-10, top_db=None). Evaluated bins: librosa within "
        f"{FLOOR_DB:g} dB of the clip's max AND ours not at -128/127 AND microfrontend not at "
        f"0/{MICRO_MAX}: {res['eval_fraction']:.1%} of all bins. r (all bins) uses every bin."
    )
    cfg = res["cfg"]
    print(
        f"- ours (analytic): dB = ((q - {cfg.input_zero_point}) * {cfg.input_scale:.6g} - 1) * "
        "10 log10 2, since (q - input_zero_point) * input_scale = log2(2 S) (both read from the "
        "config). Affine rows: one least-squares fit of dB_librosa ~ a*out + b over the evaluated "
        "bins of all clips pooled, for both front ends."
    )
    (max_o, worst_o), (max_m, worst_m) = res["range_ours"], res["range_micro"]
    print(
        f"- output range used: ours max {max_o} of 127, worst clip {worst_o:.1%} of bins at "
        f"-128; microfrontend max {max_m} of {MICRO_MAX}, worst clip {worst_m:.1%} at 0."
    )
    print(
        "- microfrontend throughput: "
        + ", ".join(f"{k} {v:.0f} s/s" for k, v in res["micro_modes"].items())
        + f"; the table shows the faster ({res['micro_mode']})."
    )
    print(
        "- microfrontend settings: PCAN off; noise reduction neutralised (smoothing 0, "
        "min_signal_remaining 1, smoothing_bits 0); out_scale 1. Different by design: HTK mel "
        "scale and its own band edges, 16-bit fixed-point FFT, filterbank sums of |X|^2 then a "
        "square root, Hann window "
        "0.5-0.5cos(2pi(n+0.5)/N), window at the start of the 512-point frame, output "
        "~ 2**scale_shift * ln(amplitude) = 32 ln(energy) + c (uint16), clamped at 0 for "
        "values <= 1."
    )
    print(
        "- frames: microfrontend (no padding, partial frames dropped) and ours give "
        "1 + (n - 400) // 160 frames with the same start samples; librosa gets the same after "
        "the padding above. Shapes checked equal on every clip; no trimming was needed."
    )
    if cost:
        parts = ", ".join(f"{k} {v}" for k, v in cost.table_bytes.items())
        print(
            f"- C: {cost.instructions_per_frame:,.0f} instructions per frame = callgrind Ir inside "
            f"aed_frontend_clip (--toggle-collect) over {cost.frames} frames; host gcc -O2, "
            f"no sanitizer. C output == Python reference on all clips: {cost.bit_exact}."
        )
        print(
            "- C host build throughput: the frontend_cli harness on all clips in one process "
            "(includes process start and the stdin/stdout pipes), best of the same repeats."
        )
        print(f"- C tables (bytes): {parts}")
    else:
        print("- C: valgrind or gcc not found; C rows skipped.")
    if res.get("profile"):
        print("\ncProfile of our Python front end (all clips, by own time):\n")
        print(res["profile"])


def run(args: argparse.Namespace) -> dict:
    """Every measurement on the same clips; returns the numbers :func:`print_report` shows."""
    cfg = FrontendConfig()
    t0 = time.perf_counter()
    clips = load_clips(args.clips, args.seconds, args.seed)
    print(f"synthesised {len(clips)} clips in {time.perf_counter() - t0:.1f} s", flush=True)

    fe = ours_fn(cfg)
    if not fe.native:
        print("the C extension is not built (make setup): its figures are n/a", flush=True)
    micro_modes = microfrontend_fns(cfg)
    speed = {
        "ours": throughput(fe.reference, clips, args.repeats, cfg.sample_rate),
        "extension": throughput(fe, clips, args.repeats, cfg.sample_rate) if fe.native else None,
        "librosa": throughput(librosa_user_fn(cfg), clips, args.repeats, cfg.sample_rate),
    }
    micro_speed = {
        k: throughput(fn, clips, args.repeats, cfg.sample_rate) for k, fn in micro_modes.items()
    }
    micro_mode = max(micro_speed, key=micro_speed.get)
    speed["micro"] = micro_speed[micro_mode]
    print(f"throughput done ({time.perf_counter() - t0:.1f} s)", flush=True)

    ref = [librosa_reference_db(c, cfg) for c in clips]
    ours = [fe.reference(c) for c in clips]
    extension_exact = all(np.array_equal(fe(c), o) for c, o in zip(clips, ours, strict=True))
    micro = [micro_modes["eager"](c) for c in clips]
    check_frames("ours", ours, ref)
    check_frames("microfrontend", micro, ref)
    masks = [evaluation_mask(r, o, m) for r, o, m in zip(ref, ours, micro, strict=True)]
    ours_af, a_o, b_o = affine_db(ours, ref, masks)
    micro_af, a_m, b_m = affine_db(micro, ref, masks)
    res = {
        "cfg": cfg,
        "speed": speed,
        "micro_modes": micro_speed,
        "micro_mode": micro_mode,
        "fid_ours": fidelity(ours, analytic_db(cfg), ref, masks),
        "fid_ours_af": fidelity(ours, ours_af, ref, masks),
        "fid_micro": fidelity(micro, micro_af, ref, masks),
        "fit_ours": (a_o, b_o),
        "fit_micro": (a_m, b_m),
        "clamp_ours": clamp_fractions(ours, -128, 127),
        "clamp_micro": clamp_fractions(micro, 0, MICRO_MAX),
        "range_ours": range_use(ours, -128),
        "range_micro": range_use(micro, 0),
        "eval_fraction": float(np.mean(np.concatenate([m.ravel() for m in masks]))),
        "n_samples": sum(len(c) for c in clips),
        "clips_sha256": clips_fingerprint(clips),
        "n_frames": sum(len(o) for o in ours),
        "pad": librosa_pad(cfg),
        "extension_exact": extension_exact if fe.native else None,
    }
    print(f"fidelity done ({time.perf_counter() - t0:.1f} s)", flush=True)

    have_tools = shutil.which("valgrind") and shutil.which("gcc")
    res["c"] = c_cost(cfg, clips, ours, args.repeats) if have_tools else None
    print(f"C cost done ({time.perf_counter() - t0:.1f} s)", flush=True)
    res["machine"] = machine_info()
    if args.profile:
        res["profile"] = profile_ours(fe.reference, clips)
    return res


def results_json(res: dict, args: argparse.Namespace) -> dict:
    """benchmarks/results/frontend.json: every figure of the table, machine-readable."""
    speed, lib, cost = res["speed"], res["speed"]["librosa"], res["c"]

    def fid(f: Fidelity) -> dict:
        return {"r_all": f.r_all, "r_evaluated": f.r_eval, "mae_db": f.mae_db, "bias_db": f.bias_db}

    return {
        "command": "benchmarks/frontend.py",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": res["machine"],
        "settings": {k: getattr(args, k) for k in ("clips", "seconds", "repeats", "seed")},
        "clips_sha256": res["clips_sha256"],
        "synth_version": SYNTH_VERSION,
        "n_frames": res["n_frames"],
        "extension_vs_librosa": ratio(speed["extension"], lib),
        "numpy_vs_librosa": speed["ours"] / lib,
        "microfrontend_vs_librosa": speed["micro"] / lib,
        "c_harness_vs_librosa": cost.native_speed / lib if cost else None,
        "audio_seconds_per_second": {
            "numpy": speed["ours"],
            "extension": speed["extension"],
            "librosa": lib,
            "microfrontend": speed["micro"],
            "microfrontend_mode": res["micro_mode"],
            "c_harness": cost.native_speed if cost else None,
        },
        "extension_equals_numpy": res["extension_exact"],
        "fidelity_vs_librosa": {
            "ours_analytic": fid(res["fid_ours"]),
            "ours_affine": fid(res["fid_ours_af"]),
            "microfrontend_affine": fid(res["fid_micro"]),
            "affine_fit_ours": list(res["fit_ours"]),
            "affine_fit_micro": list(res["fit_micro"]),
        },
        "clamped_fraction": {"ours": list(res["clamp_ours"]), "micro": list(res["clamp_micro"])},
        "c": None
        if cost is None
        else {
            "instructions_per_frame_x86_O2": cost.instructions_per_frame,
            "equals_numpy": cost.bit_exact,
            "table_bytes": cost.table_bytes,
            "state_bytes": cost.state_bytes,
        },
    }


def docs_section(res: dict, args: argparse.Namespace) -> str:
    """The generated part of docs/benchmarks.md's "Front end": how it was run and the table."""
    info, r = res["machine"], results_json(res, args)
    return f"""- Command: `.venv/bin/python benchmarks/frontend.py --docs` (`--clips {args.clips}
  --seconds {args.seconds:g} --repeats {args.repeats} --seed {args.seed}`); figures in
  `benchmarks/results/frontend.json`
- Date: {r["date"]}
- Machine: {info["cpu"]}, shared with other jobs; Python {info["python"]},
  numpy {info["numpy"]}, librosa {info["librosa"]}, TensorFlow {info["tensorflow"]} (CPU),
  gcc {info["gcc"]}, {info["valgrind"]}
- Inputs: synthetic corpus clips 0..{args.clips - 1} of seed {args.seed}, {args.seconds:g} s each
  ({res["n_frames"]:,} frames), `model_dev.synth` VERSION {SYNTH_VERSION}, clips sha256
  `{res["clips_sha256"]}`
- Timing: best of {args.repeats} passes over all clips after one warm-up pass, single threaded,
  in CPU seconds (`time.process_time` plus waited-for children: on this shared machine wall
  time also counts the waits for a core).
  Ours twice: the numpy specification (`Frontend.reference`) and the C extension
  (`Frontend.__call__`, `model_dev._aed_frontend`: the device's `aed_frontend.c` built at
  install time, -O3 -funroll-loops); identical output on every clip: {r["extension_equals_numpy"]}

{markdown_table(res)}
"""


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run every measurement, print the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40, help="corpus clips (default 40)")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats, best kept (5)")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    ap.add_argument("--profile", action="store_true", help="also cProfile our front end")
    ap.add_argument("--docs", action="store_true", help="rewrite the docs/benchmarks.md table")
    args = ap.parse_args(argv)
    if args.clips < 1 or args.seconds * 16000 < 400 or args.repeats < 1:
        ap.error("need --clips >= 1, --repeats >= 1 and clips of at least one 25 ms window")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa: empty mel bands never happen here
        res = run(args)
    print_report(res, args)
    write_json(RESULTS, results_json(res, args))
    print(f"written {RESULTS}")
    if args.docs:
        write_marked_section(DOCS, BEGIN, END, docs_section(res, args))
        print(f"written to {DOCS}")
    return res


if __name__ == "__main__":
    main()
