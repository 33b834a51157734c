"""Synthetic machine-sound corpus in the DCASE 2020 Task 2 layout, deterministic by seed.

Four machine types modelled on the challenge set. A type is one product model; its instances
(IDs) are units of it, their speed (or stroke or click period) spread over +-6 % and their other
properties within unit tolerances (:data:`TOLERANCE`). Fault kinds at three severities, each
adding a sound and changing the machine itself (:data:`FAULT_SHIFT`)::

    fan     blade-pass harmonics + aerodynamic noise   imbalance, blade_damage, bearing
    pump    motor hum + vane-pass tones + flow noise    cavitation, leak, bearing
    slider  stroke-periodic motor whine, friction, end knocks   rail_damage, dry_friction, bearing
    valve   solenoid click trains + flow hiss          timing_jitter, missing_clicks, chatter

Nuisance variation in every clip: slow speed drift, gain (+-6 dB), and factory background
(pink noise, distant hum, random impacts) at MIMII's three SNRs (6, 0, -6 dB). ``bearing`` is an
impulse train at the outer-race defect frequency with random slip, ringing through a resonance.
A fault's level is set relative to the machine's own level, graded by severity
(:data:`SEVERITY_DB`).

Layout (what :func:`model_dev.anomaly.data.load_dcase` reads)::

    ROOT/<type>/train/normal_id_XX_NNNNNNNN.wav
    ROOT/<type>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav
    ROOT/machines.csv   file,machine_type,machine_id,split,label,fault,severity,snr_db
    ROOT/corpus.json    seed, size, types, ids, faults, generator version

Every clip has its own RNG seeded from ``(seed, type, id, split, label, index)``, so a clip does
not depend on how many others are generated; all synthesis is vectorised numpy (FFT filtering).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve
from tqdm import tqdm

from model_dev.audio import SAMPLE_RATE, write_wav
from model_dev.fileio import atomic_dir

GENERATOR_VERSION = 3
SR = SAMPLE_RATE
MACHINE_TYPES = ("fan", "pump", "slider", "valve")
FAULTS: dict[str, tuple[str, ...]] = {
    "fan": ("imbalance", "blade_damage", "bearing"),
    "pump": ("cavitation", "leak", "bearing"),
    "slider": ("rail_damage", "dry_friction", "bearing"),
    "valve": ("timing_jitter", "missing_clicks", "chatter"),
}
SEVERITIES = (1, 2, 3)
#: Fault level relative to the machine's RMS level, dB, per severity (calibrated so the
#: DCASE 2020 dense-autoencoder baseline lands in its real-data AUC band, 0.65-0.9).
SEVERITY_DB = {1: -18.0, 2: -12.0, 3: -6.0}
#: Per-type offset added to SEVERITY_DB (impulsive faults of sliders and valves carry little
#: energy per frame).
TYPE_OFFSET_DB = {"fan": 0.0, "pump": -2.0, "slider": 0.0, "valve": 5.0}
#: Machine-to-background ratios of the MIMII recordings.
SNRS_DB = (6.0, 0.0, -6.0)


@dataclass(frozen=True)
class CorpusSize:
    """How much audio to generate.

    Parameters
    ----------
    name : str
        Preset name.
    n_ids : int
        Machine instances (IDs) per type.
    n_train : int
        Normal training clips per ID.
    n_test : int
        Test clips per ID and label (as many anomalous as normal, like the challenge).
    clip_seconds : float
        Clip length.
    """

    name: str
    n_ids: int
    n_train: int
    n_test: int
    clip_seconds: float


SIZES = {
    "tiny": CorpusSize("tiny", n_ids=3, n_train=10, n_test=6, clip_seconds=1.2),
    "default": CorpusSize("default", n_ids=4, n_train=60, n_test=27, clip_seconds=2.0),
}


# --------------------------------------------------------------------------- signal helpers
def _spectral(x: np.ndarray, gain) -> np.ndarray:
    """Filter ``x`` by a zero-phase frequency response ``gain(freqs_hz)`` (FFT, circular)."""
    spec = np.fft.rfft(x)
    return np.fft.irfft(spec * gain(np.fft.rfftfreq(len(x), 1 / SR)), len(x))


def _peaks(freqs, widths, gains, floor: float = 0.05):
    """Response: a floor plus resonance peaks (Lorentzians) at ``freqs`` (Hz)."""
    freqs, widths, gains = (np.asarray(v, dtype=float)[:, None] for v in (freqs, widths, gains))
    return lambda f: floor + (gains / (1 + ((f[None] - freqs) / widths) ** 2)).sum(axis=0)


def _noise(rng: np.random.Generator, n: int, tilt: float = 1.0, band=(20.0, 8000.0)):
    """Noise with power falling as f**-tilt, band-limited, unit RMS."""
    lo, hi = band
    y = _spectral(
        rng.standard_normal(n), lambda f: ((f >= lo) & (f <= hi)) / np.maximum(f, lo) ** (tilt / 2)
    )
    return y / (np.std(y) + 1e-12)


def _drift(rng: np.random.Generator, n: int, depth: float, knots: int = 6) -> np.ndarray:
    """Slow multiplicative speed drift ``1 + d(t)``, |d| about ``depth``."""
    pts = rng.uniform(-depth, depth, knots)
    return 1.0 + np.interp(np.arange(n), np.linspace(0, n - 1, knots), pts)


def _phase(freq_hz: np.ndarray) -> np.ndarray:
    """Running phase (radians) of an instantaneous frequency track."""
    return 2 * np.pi * np.cumsum(freq_hz) / SR


def _tones(phase: np.ndarray, orders, amps, phases) -> np.ndarray:
    """``sum_k amps[k] sin(orders[k] * phase + phases[k])``, vectorised over the orders."""
    orders = np.asarray(orders, dtype=float)
    return np.sin(phase[:, None] * orders[None] + np.asarray(phases)[None]) @ np.asarray(amps)


def _ring(freq: float, tau_s: float, length_s: float = 0.03) -> np.ndarray:
    """A decaying resonance (impulse response)."""
    t = np.arange(int(length_s * SR)) / SR
    return np.exp(-t / tau_s) * np.sin(2 * np.pi * freq * t)


def _impulses(n: int, times_s: np.ndarray, amps=1.0) -> np.ndarray:
    """Impulse train: unit (or ``amps``) impulses at ``times_s`` inside the clip."""
    x = np.zeros(n)
    idx = np.round(np.asarray(times_s) * SR).astype(int)
    keep = (idx >= 0) & (idx < n)
    np.add.at(x, idx[keep], np.broadcast_to(amps, idx.shape)[keep])
    return x


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


def _at_level(x: np.ndarray, ref: np.ndarray, db: float) -> np.ndarray:
    """``x`` scaled so that its RMS is ``db`` relative to ``ref``'s."""
    return x * (_rms(ref) * 10 ** (db / 20) / _rms(x))


def _bearing(rng, n: int, inst: dict, speed: np.ndarray, gate: np.ndarray | None = None):
    """Outer-race defect: impulses at ``bpfo * f_rot`` with 1-2 % random slip, through a
    2-5 kHz resonance."""
    rate = inst["bpfo"] * inst["f_rot"] * float(np.mean(speed))
    period = 1.0 / rate
    count = int(n / SR * rate) + 2
    times = rng.uniform(0, period) + np.cumsum(period * (1 + rng.normal(0, 0.015, count)))
    amps = rng.uniform(0.6, 1.0, count)
    x = fftconvolve(_impulses(n, times, amps), _ring(inst["bearing_hz"], 0.002), mode="full")[:n]
    return x if gate is None else x * gate


# --------------------------------------------------------------------------- instances
def _model(kind: str, rng: np.random.Generator) -> dict:
    """The product model of a type: the nominal geometry, speed and resonances its IDs share."""
    model = {
        "res_f": np.sort(rng.uniform(300, 5000, 4)),
        "res_w": rng.uniform(60, 400, 4),
        "res_g": rng.uniform(0.5, 3.0, 4),
        "tilt": rng.uniform(0.6, 1.6),
        "bpfo": rng.uniform(3.0, 4.6),
        "bearing_hz": rng.uniform(2500, 5000),
    }
    if kind == "fan":
        model |= {"f_rot": rng.uniform(14, 30), "blades": int(rng.integers(5, 10))}
        model |= {
            "amps": rng.uniform(0.3, 1.0, 6) / np.arange(1, 7),
            "tonal": rng.uniform(0.4, 1.2),
        }
    elif kind == "pump":
        model |= {"f_rot": rng.uniform(24, 48), "vanes": int(rng.integers(4, 8))}
        model |= {"mains": float(rng.choice([50.0, 60.0])), "amps": rng.uniform(0.2, 1.0, 8)}
    elif kind == "slider":
        model |= {"f_rot": rng.uniform(30, 60), "stroke_s": rng.uniform(0.5, 1.0)}
        model |= {"duty": rng.uniform(0.5, 0.8), "whine": rng.uniform(200, 900)}
        model |= {"knock_hz": rng.uniform(600, 2500), "tick_pos": rng.uniform(0.2, 0.8)}
    else:  # valve
        model |= {"f_rot": 1.0, "period_s": rng.uniform(0.2, 0.45), "open": rng.uniform(0.3, 0.6)}
        model |= {"click_hz": rng.uniform(800, 4000, 3), "click_tau": rng.uniform(0.002, 0.008)}
    return model


#: The parameter that sets each type's rhythm (rotation speed, stroke or click period): the IDs
#: of a type are spread over +-SPEED_SPREAD of the model's value, evenly, in a seeded order.
RHYTHM = {"fan": "f_rot", "pump": "f_rot", "slider": "stroke_s", "valve": "period_s"}
SPEED_SPREAD = 0.10
#: Unit-to-unit tolerance of the other continuous parameters (relative standard deviation):
#: housings and solenoids of one product line resonate within about 1 %; the balance of the
#: blade- or vane-pass harmonics (mounting, blade tolerances) varies by about 10 %.
TOLERANCE = {
    "res_f": 0.01, "res_w": 0.05, "res_g": 0.1, "tilt": 0.02, "bpfo": 0.005, "bearing_hz": 0.02,
    "amps": 0.1, "tonal": 0.1, "whine": 0.02, "knock_hz": 0.01, "duty": 0.02, "open": 0.02,
    "click_hz": 0.01, "click_tau": 0.05,
}  # fmt: skip


def _instances(kind: str, rng: np.random.Generator, n_ids: int) -> list[dict]:
    """The machine instances (IDs) of a type: one product model, units a few % apart, as
    the IDs of one machine type in the challenge data are units of one product line."""
    model = _model(kind, rng)
    offsets = rng.permutation(np.linspace(-SPEED_SPREAD, SPEED_SPREAD, n_ids))
    insts = []
    for offset in offsets:
        inst = dict(model)
        for key, sd in TOLERANCE.items():
            if key in inst:
                inst[key] = inst[key] * (1 + rng.normal(0, sd, np.shape(inst[key])))
        inst[RHYTHM[kind]] = model[RHYTHM[kind]] * (1 + offset + rng.normal(0, 0.003))
        inst["phases"] = rng.uniform(0, 2 * np.pi, 64)
        insts.append(inst)
    return insts


#: How a fault changes the machine itself (not only what it adds): relative change of an
#: instance parameter at severity 3, scaled by :data:`SHIFT_BY_SEVERITY`. Worn bearings and rail
#: friction load the drive (slower), a damaged blade or a leaking or cavitating pump unloads it
#: (faster); a sticking valve (jitter, missing strokes, chatter) changes its cycle; valve faults
#: also change the click train itself (:data:`_STRUCTURAL`). Version 3 doubled version 2's
#: shifts (chosen on development corpus seed 1, docs/anomaly.md): below the units' own spacing
#: a changed unit still passes for itself.
FAULT_SHIFT: dict[str, dict[str, float]] = {
    "imbalance": {"f_rot": -0.06},
    "blade_damage": {"f_rot": 0.08},
    "bearing": {"f_rot": -0.10, "whine": -0.08},
    "cavitation": {"f_rot": 0.08},
    "leak": {"f_rot": 0.06},
    "rail_damage": {"stroke_s": 0.08},
    "dry_friction": {"stroke_s": 0.12, "whine": -0.08},
    "timing_jitter": {"period_s": 0.08},
    "missing_clicks": {"period_s": -0.08},
    "chatter": {"open": -0.2, "period_s": 0.06},
}
#: Share of :data:`FAULT_SHIFT` per severity.
SHIFT_BY_SEVERITY = {1: 0.5, 2: 0.75, 3: 1.0}
#: Clip-to-clip variation of a unit's own cycle (slider stroke, valve period), relative: units
#: driven by a controller keep their timing within about 1 %.
CYCLE_JITTER = 0.01


def _faulty(inst: dict, fault: str, severity: int) -> dict:
    """``inst`` as the fault leaves it (:data:`FAULT_SHIFT`, :data:`SHIFT_BY_SEVERITY`)."""
    shift, share = FAULT_SHIFT.get(fault, {}), SHIFT_BY_SEVERITY[severity]
    return inst | {k: inst[k] * (1 + v * share) for k, v in shift.items() if k in inst}


# --------------------------------------------------------------------------- machine types
def _fan(rng, frng, n: int, inst: dict, fault: str) -> tuple[np.ndarray, np.ndarray]:
    """(normal sound, fault component) of a fan."""
    speed = _drift(rng, n, 0.015)
    phase = _phase(inst["f_rot"] * speed)
    b = inst["blades"]
    tones = _tones(phase, b * np.arange(1, 7), inst["amps"], inst["phases"][:6])
    aero = _spectral(
        _noise(rng, n, inst["tilt"]), _peaks(inst["res_f"], inst["res_w"], inst["res_g"])
    )
    aero *= 1 + 0.3 * np.sin(b * phase)  # blade-pass modulation of the flow noise
    normal = inst["tonal"] * tones / _rms(tones) + aero / _rms(aero)
    if fault == "none":
        return normal, np.zeros(n)
    elif fault == "imbalance":  # once/twice per revolution: shaft harmonics and a wobble
        bad = _tones(phase, [1, 2, 3, 4], [1.0, 0.6, 0.3, 0.2], frng.uniform(0, 6.3, 4))
        bad = bad / _rms(bad) + np.sin(phase) * normal / _rms(normal)  # and a wobble
    elif fault == "blade_damage":  # one blade differs: every shaft harmonic around blade pass
        orders = np.arange(1, 4 * b)
        bad = _tones(
            phase, orders, frng.uniform(0.2, 1.0, len(orders)), frng.uniform(0, 6.3, len(orders))
        )
    else:
        bad = _bearing(frng, n, inst, speed)
    return normal, bad


def _pump(rng, frng, n: int, inst: dict, fault: str) -> tuple[np.ndarray, np.ndarray]:
    speed = _drift(rng, n, 0.01)
    phase = _phase(inst["f_rot"] * speed)
    hum = _tones(
        _phase(np.full(n, 2 * inst["mains"])), np.arange(1, 5), inst["amps"][:4], inst["phases"][:4]
    )
    vane = _tones(phase, inst["vanes"] * np.arange(1, 5), inst["amps"][4:], inst["phases"][4:8])
    flow = _spectral(
        _noise(rng, n, inst["tilt"] + 0.5), _peaks(inst["res_f"], inst["res_w"], inst["res_g"])
    )
    normal = 0.6 * hum / _rms(hum) + vane / _rms(vane) + flow / _rms(flow)
    if fault == "none":
        return normal, np.zeros(n)
    elif fault == "cavitation":  # random short broadband bursts, mostly high frequency
        burst = _noise(frng, n, 0.0, band=(1500.0, 8000.0))
        count = int(frng.integers(6, 14) * n / SR) + 1
        env = fftconvolve(
            _impulses(n, frng.uniform(0, n / SR, count)), np.exp(-np.arange(160) / 40)
        )[:n]
        bad = burst * env
    elif fault == "leak":  # continuous hiss in a narrow band
        centre = frng.uniform(2500, 6000)
        bad = _spectral(frng.standard_normal(n), _peaks([centre], [centre / 12], [1.0], floor=0.0))
    else:
        bad = _bearing(frng, n, inst, speed)
    return normal, bad


def _slider(rng, frng, n: int, inst: dict, fault: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) / SR
    stroke = inst["stroke_s"] * rng.uniform(1 - CYCLE_JITTER, 1 + CYCLE_JITTER)
    pos = (t / stroke + rng.uniform(0, 1)) % 1.0  # phase within the stroke
    moving = (pos < inst["duty"]).astype(float)
    moving = np.convolve(moving, np.hanning(321) / np.hanning(321).sum(), mode="same")
    speed = _drift(rng, n, 0.01)
    whine = _tones(_phase(inst["whine"] * speed), [1, 2, 3], [1.0, 0.5, 0.25], inst["phases"][:3])
    rub = _spectral(
        _noise(rng, n, inst["tilt"]), _peaks(inst["res_f"], inst["res_w"], inst["res_g"])
    )
    starts = np.flatnonzero(np.diff((pos < inst["duty"]).astype(int)) != 0) / SR
    knocks = fftconvolve(_impulses(n, starts), _ring(inst["knock_hz"], 0.01, 0.06))[:n]
    normal = moving * (whine / _rms(whine) + rub / _rms(rub)) + 0.8 * knocks / _rms(knocks + 1e-3)
    if fault == "none":
        return normal, np.zeros(n)
    elif fault == "rail_damage":  # ticks each time the carriage passes the damaged spot
        at = (
            np.flatnonzero(np.diff((pos > inst["tick_pos"] * inst["duty"]).astype(int)) == 1)
        ) / SR
        ticks = np.concatenate([at + k * 0.012 for k in range(3)])
        bad = fftconvolve(_impulses(n, ticks), _ring(frng.uniform(3000, 6000), 0.002))[:n]
    elif fault == "dry_friction":  # squeal with a wandering pitch while moving
        squeal = np.sin(_phase(frng.uniform(1500, 4000) * _drift(frng, n, 0.05, 12)))
        bad = moving * squeal
    else:
        bad = _bearing(frng, n, inst, speed, gate=moving)
    return normal, bad


def _valve(rng, frng, n: int, inst: dict, fault: str) -> tuple[np.ndarray, np.ndarray]:
    period = inst["period_s"] * rng.uniform(1 - CYCLE_JITTER, 1 + CYCLE_JITTER)
    count = int(n / SR / period) + 2
    opens = rng.uniform(0, period) + period * np.arange(count) + rng.normal(0, 0.003, count)
    closes = opens + inst["open"] * period
    click = sum(_ring(f, inst["click_tau"]) for f in inst["click_hz"])
    flow = _noise(rng, n, 0.3, band=(1000.0, 7000.0))
    gate = np.zeros(n)
    for a, b in zip(
        np.round(opens * SR).astype(int), np.round(closes * SR).astype(int), strict=True
    ):
        gate[max(a, 0) : max(min(b, n), 0)] = 1.0

    def clicks(times):
        return fftconvolve(_impulses(n, times), click)[:n]

    main = clicks(np.concatenate([opens, closes]))
    normal = main / _rms(main) + 0.15 * gate * flow
    if fault == "none":
        return normal, np.zeros(n)
    elif fault == "timing_jitter":  # replaces the regular train: same clicks, irregular times
        jit = frng.normal(0, 0.2 * period, count)
        bad = clicks(np.concatenate([opens + jit, closes + jit])) - main
    elif fault == "missing_clicks":  # some strokes fail: their clicks vanish
        drop = frng.random(count) < 0.5
        bad = -clicks(np.concatenate([opens[drop], closes[drop]]))
    else:  # chatter: contaminated seat, bounces after each closing click
        bad = clicks(np.concatenate([closes + 0.012, closes + 0.025, opens + 0.015]))
    return normal, bad


_SYNTH = {"fan": _fan, "pump": _pump, "slider": _slider, "valve": _valve}
#: Faults that change the machine's own clicks (not an added sound): a signed change of the
#: normal signal, scaled from full (severity 3) to a third (severity 1).
_STRUCTURAL = {
    "timing_jitter": {1: 0.5, 2: 0.75, 3: 1.0},
    "missing_clicks": {1: 0.5, 2: 0.75, 3: 1.0},
}


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Factory background: pink noise, distant hum, occasional impacts."""
    hum_f = np.array([50.0, 100.0, 150.0]) * rng.uniform(0.99, 1.01)  # the plant's mains hum
    hum = _tones(_phase(np.full(n, 1.0)), hum_f, rng.uniform(0.1, 0.4, 3), rng.uniform(0, 6.3, 3))
    count = rng.poisson(2 * n / SR)
    hits = fftconvolve(
        _impulses(n, rng.uniform(0, n / SR, count), rng.uniform(0.5, 3, count)),
        _ring(rng.uniform(200, 1500), 0.02, 0.1),
    )[:n]
    return _noise(rng, n, 1.0) + hum + 0.3 * hits


def synth_clip(
    kind: str, inst: dict, seed_seq: list[int], n: int, fault: str = "", severity: int = 0
) -> tuple[np.ndarray, float]:
    """One clip as int16 audio and its SNR.

    Parameters
    ----------
    kind : str
        Machine type (:data:`MACHINE_TYPES`).
    inst : dict
        The instance (:func:`_instances`).
    seed_seq : list of int
        RNG seed of this clip.
    n : int
        Samples.
    fault : str
        ``""`` for a normal clip, else one of ``FAULTS[kind]``.
    severity : int
        1..3 for faults.

    Returns
    -------
    audio : np.ndarray
        int16 ``[n]``.
    snr_db : float
        Machine-to-background ratio of the clip.
    """
    # independent streams: a fault never changes the machine's or the background's randomness
    rng, frng, brng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed_seq).spawn(3))
    unit = _faulty(inst, fault, severity) if fault else inst
    normal, bad = _SYNTH[kind](rng, frng, n, unit, fault if fault else "none")
    if fault in _STRUCTURAL:
        machine = normal + _STRUCTURAL[fault][severity] * bad
    elif fault:
        machine = normal + _at_level(bad, normal, SEVERITY_DB[severity] + TYPE_OFFSET_DB[kind])
    else:
        machine = normal
    snr = float(brng.choice(SNRS_DB))
    mix = machine + _at_level(_background(brng, n), machine, -snr)
    level_db = -26.0 + brng.uniform(-6, 6)  # gain nuisance around -26 dBFS RMS
    mix *= 32768 * 10 ** (level_db / 20) / _rms(mix)
    return np.clip(np.round(mix), -32768, 32767).astype(np.int16), snr


def _plan(size: CorpusSize) -> list[dict]:
    """Every clip to generate, in file order."""
    rows = []
    for t, kind in enumerate(MACHINE_TYPES):
        faults = FAULTS[kind]
        for mid in range(size.n_ids):
            for split, label, count in [
                ("train", "normal", size.n_train),
                ("test", "normal", size.n_test),
                ("test", "anomaly", size.n_test),
            ]:
                for k in range(count):
                    fault = faults[k % len(faults)] if label == "anomaly" else ""
                    sev = SEVERITIES[(k // len(faults)) % len(SEVERITIES)] if fault else 0
                    rows.append(
                        {
                            "machine_type": kind,
                            "type_index": t,
                            "machine_id": 2 * mid,
                            "split": split,
                            "label": label,
                            "index": k,
                            "fault": fault,
                            "severity": sev,
                        }
                    )
    return rows


def _corpus_meta(preset: CorpusSize, seed: int) -> dict:
    """What ``corpus.json`` records about a generated corpus."""
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": asdict(preset),
        "machine_types": list(MACHINE_TYPES),
        "machine_ids": [f"id_{2 * i:02d}" for i in range(preset.n_ids)],
        "faults": {k: list(v) for k, v in FAULTS.items()},
        "severities": list(SEVERITIES),
        "severity_db": {str(k): v for k, v in SEVERITY_DB.items()},
        "type_offset_db": dict(TYPE_OFFSET_DB),
        "snrs_db": list(SNRS_DB),
        "speed_spread": SPEED_SPREAD,
        "tolerance": dict(TOLERANCE),
        "fault_shift": FAULT_SHIFT,
        "sample_rate": SR,
    }


def generate(root: str | Path, size: str = "default", seed: int = 0, progress: bool = True) -> Path:
    """Write the synthetic machine corpus to ``root`` (replacing nothing: ``root`` must not exist).

    Parameters
    ----------
    root : str or Path
        Output folder; written in a temporary sibling and renamed when complete.
    size : {"tiny", "default"}
        :data:`SIZES` preset.
    seed : int
        Corpus seed: the same seed gives byte-identical files.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        ``root``.
    """
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; sizes: {', '.join(SIZES)}")
    root = Path(root)
    if root.exists():
        raise ValueError(f"{root}: already exists; remove it or choose another folder")
    preset = SIZES[size]
    n = int(round(preset.clip_seconds * SR))

    def fill(tmp: Path) -> None:
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(
            ["file", "machine_type", "machine_id", "split", "label", "fault", "severity", "snr_db"]
        )
        insts = {
            (kind, 2 * k): inst
            for t, kind in enumerate(MACHINE_TYPES)
            for k, inst in enumerate(
                _instances(kind, np.random.default_rng([seed, t, 7919]), preset.n_ids)
            )
        }
        for row in tqdm(_plan(preset), desc="synth machines", unit="clip", disable=not progress):
            kind, mid, t = row["machine_type"], row["machine_id"], row["type_index"]
            split_code = 0 if row["split"] == "train" else 1 + (row["label"] == "anomaly")
            audio, snr = synth_clip(
                kind,
                insts[kind, mid],
                [seed, t, mid, split_code, row["index"]],
                n,
                row["fault"],
                row["severity"],
            )
            name = f"{kind}/{row['split']}/{row['label']}_id_{mid:02d}_{row['index']:08d}.wav"
            write_wav(tmp / name, audio)
            writer.writerow(
                [
                    name,
                    kind,
                    f"id_{mid:02d}",
                    row["split"],
                    row["label"],
                    row["fault"],
                    row["severity"],
                    snr,
                ]
            )
        (tmp / "machines.csv").write_text(table.getvalue())
        meta = _corpus_meta(preset, seed)
        (tmp / "corpus.json").write_text(json.dumps(meta, indent=1) + "\n")

    atomic_dir(root, fill)
    return root
