"""The sounds of the synthetic corpus (:mod:`model_dev.synth`): signal building blocks, one
generator per SONYC-UST coarse class (:data:`GENERATORS`, in :data:`model_dev.synth.CLASSES`
order), the urban background bed and unlabelled distractors. Every function draws only from the
``rng`` it is given, so a clip is a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from model_dev.audio import SAMPLE_RATE

SR = SAMPLE_RATE
_MAX_PARTIAL_HZ = 7600.0  # partials above this are dropped: no aliasing near Nyquist
_TABLE = 2048  # wavetable length


# ---------------------------------------------------------------------------------------------
# Shared signal helpers (all vectorised; Python loops only over events, notes, hits, syllables)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)) + 1e-12)


def active_rms(x: np.ndarray, block: int = 800) -> float:
    """RMS over the active 50 ms blocks (within 10 dB of the mean block power, as BS.1770 gates).

    Sparse sounds (a few barks or hits) are thus levelled by how loud they are when sounding.
    """
    p = (
        np.mean(x[: len(x) // block * block].reshape(-1, block) ** 2, axis=1)
        if len(x) >= block
        else np.array([np.mean(x * x)])
    )
    return float(np.sqrt(np.mean(p[p >= 0.1 * p.mean()])) + 1e-12)


def _loguni(rng: np.random.Generator, lo: float, hi: float, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def _secs(n: int) -> np.ndarray:
    return np.arange(n) / SR


def _walk(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Smooth random curve in [-1, 1] with about ``rate_hz`` independent points per second."""
    k = int(np.ceil(n / SR * rate_hz)) + 2
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), rng.uniform(-1, 1, k))


def _noise(rng: np.random.Generator, n: int, slope: float = 0.0) -> np.ndarray:
    """Unit-RMS Gaussian noise with power spectrum ~ f**-slope (0 white, 1 pink, 2 brown)."""
    if slope == 0.0:
        return rng.standard_normal(n)
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    x = np.fft.irfft(spec * np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0) ** (-slope / 2), n)
    return x / rms(x)


def _filt(x: np.ndarray, btype: str, freq, order: int = 2) -> np.ndarray:
    """Butterworth filter; cut-off frequencies in Hz are clamped into the valid band."""
    f = np.clip(np.asarray(freq, dtype=float), 20.0, 0.95 * SR / 2)
    return sosfilt(butter(order, f, btype, fs=SR, output="sos"), x)


def _resonate(x: np.ndarray, freqs, bws, gains) -> np.ndarray:
    """Parallel bank of unit-peak-gain two-pole resonators (formants, body resonances)."""
    out = np.zeros_like(x)
    for f, bw, g in zip(freqs, bws, gains, strict=True):
        r = np.exp(-np.pi * bw / SR)
        a = [1.0, -2 * r * np.cos(2 * np.pi * min(f, 7800.0) / SR), r * r]
        out += g * lfilter([(1 - r * r) / 2, 0.0, -(1 - r * r) / 2], a, x)
    return out


def _tilt(x: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Apply a spectral tilt around 1 kHz (positive = brighter)."""
    f = np.maximum(np.fft.rfftfreq(len(x), 1 / SR), 30.0)
    return np.fft.irfft(np.fft.rfft(x) * (f / 1000.0) ** (db_per_octave / 6.02), len(x))


def _harmonics(rng, n_harm: int, tilt_db_oct: float, odd: bool = False, jitter_db: float = 4.0):
    """Harmonic amplitudes falling ``tilt_db_oct`` per octave with random per-partial colour."""
    k = np.arange(1, n_harm + 1)
    amps = 10 ** ((-tilt_db_oct * np.log2(k) + rng.normal(0, jitter_db, n_harm)) / 20)
    if odd:  # square/clarinet-like timbre
        amps[1::2] *= 0.05
    return amps


def _osc(rng: np.random.Generator, f0, amps, n: int | None = None) -> np.ndarray:
    """Wavetable oscillator with harmonic amplitudes ``amps`` following ``f0`` (Hz, per sample).

    Partials that would exceed ``_MAX_PARTIAL_HZ`` at the highest f0 are dropped.
    """
    f0 = np.broadcast_to(np.asarray(f0, dtype=float), (n,) if n else np.shape(f0))
    amps = np.asarray(amps, dtype=float)[: _TABLE // 2 - 1]
    k = np.arange(1, len(amps) + 1)
    spec = np.zeros(_TABLE // 2 + 1, complex)
    phases = np.exp(2j * np.pi * rng.uniform(0, 1, len(amps)))
    spec[1 : len(amps) + 1] = np.where(k * f0.max() < _MAX_PARTIAL_HZ, amps, 0.0) * phases
    table = np.fft.irfft(spec, _TABLE) * _TABLE / 2
    table = np.append(table, table[0])
    pos = (rng.uniform() + np.cumsum(f0) / SR) % 1.0 * _TABLE
    i = pos.astype(np.int64)
    frac = pos - i
    return table[i] * (1 - frac) + table[i + 1] * frac


def fade(n: int, attack_s: float, release_s: float) -> np.ndarray:
    """Linear attack/release envelope, 1 in between."""
    t = np.arange(n)
    a, r = max(1.0, attack_s * SR), max(1.0, release_s * SR)
    return np.clip(np.minimum((t + 1) / a, (n - t) / r), 0.0, 1.0)


def _decay(n: int, tau_s: float, attack_s: float = 0.002) -> np.ndarray:
    """Fast attack, exponential decay."""
    t = _secs(n)
    return np.minimum(1.0, t / attack_s) * np.exp(-t / tau_s)


def _gate(n: int, period_s: float, duty: float, phase: float = 0.0, ramp_s: float = 0.004):
    """Periodic on/off envelope with short linear ramps (beepers, alarms, tone alternation)."""
    p = (_secs(n) / period_s + phase) % 1.0 * period_s
    return np.clip(np.minimum(p, duty * period_s - p) / ramp_s, 0.0, 1.0)


def _smooth(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """One-pole low-pass smoothing of a control curve (load, gate)."""
    return sosfilt(butter(1, cutoff_hz, fs=SR, output="sos"), x)


def _place(n: int, starts, make: Callable[[int], np.ndarray]) -> np.ndarray:
    """Sum grains ``make(i)`` starting at sample ``starts[i]`` into an ``n``-sample buffer."""
    out = np.zeros(n)
    for i, s in enumerate(np.asarray(starts, dtype=np.int64)):
        if 0 <= s < n:
            g = make(i)[: n - s]
            out[s : s + len(g)] += g
    return out


def _times(rng, n: int, period_s: float, jitter: float, start_s: float = 0.0, count: int = 0):
    """Onset samples of a repetition with relative period jitter (count 0: fill the buffer)."""
    start_s = min(start_s, 0.5 * n / SR)  # always at least one onset
    m = count or int((n / SR - start_s) / period_s) + 1
    steps = period_s * (1 + jitter * rng.standard_normal(m)).clip(0.3, None)
    t = start_s + np.concatenate([[0.0], np.cumsum(steps[:-1])])
    return (t[t < n / SR] * SR).astype(np.int64)


def _bouts(rng, n: int, period_s: float, jitter: float, most: int, gap_s: tuple) -> np.ndarray:
    """Onset samples of bouts of 1..``most`` repetitions separated by pauses, filling the buffer."""
    out, t = [], rng.uniform(0, period_s)
    while t < n / SR:
        steps = period_s * (1 + jitter * rng.standard_normal(rng.integers(1, most + 1))).clip(0.3)
        times = t + np.concatenate([[0.0], np.cumsum(steps[:-1])])
        out.append(times)
        t = times[-1] + period_s + rng.uniform(*gap_s)
    times = np.concatenate(out)
    return (times[times < n / SR] * SR).astype(np.int64)


def reverb(rng, x: np.ndarray) -> np.ndarray:
    """Street/courtyard reflections: add a decaying, darkening noise tail at a random level."""
    rt60 = _loguni(rng, 0.15, 1.5)
    m = int(rt60 * SR)
    ir = _filt(_noise(rng, m), "lowpass", _loguni(rng, 2000, 7000)) * np.exp(-6.9 * _secs(m) / rt60)
    wet = fftconvolve(x, ir)[: len(x)]
    return x + wet / rms(wet) * rms(x) * 10 ** (rng.uniform(-15, 0) / 20)


def _doppler(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequency factor and amplitude of a source passing by at a random time and speed."""
    u = (_secs(n) - rng.uniform(0.2, 0.8) * n / SR) / rng.uniform(0.3, 2.0)
    factor = 1 - rng.uniform(5, 30) / 343 * u / np.sqrt(1 + u * u)
    return factor, 1 / np.sqrt(1 + u * u)


def _ring(rng, modes_hz: np.ndarray, decays_s: np.ndarray) -> np.ndarray:
    """Exponentially decaying resonant modes of a struck object (modal synthesis)."""
    t = _secs(int(SR * min(1.2, 5 * decays_s.max() + 0.02)))[:, None]
    phase = 2 * np.pi * modes_hz * t + rng.uniform(0, 2 * np.pi, len(modes_hz))
    return (np.exp(-t / decays_s) * np.sin(phase)) @ _loguni(rng, 0.2, 1.0, len(modes_hz))


def _hits(rng, n: int, starts, modes_lo: float, modes_hi: float, decay: tuple, bright: tuple):
    """Repeated hits of one object: each a noise burst exciting a few decaying modes.

    Modes, decays and brightness belong to the object; level and pitch jitter from hit to hit.
    """
    k = rng.integers(1, 5)
    modes, decays = _loguni(rng, modes_lo, modes_hi, k), _loguni(rng, *decay, k)
    tau = _loguni(rng, 0.002, 0.03)
    m = int(5 * tau * SR) + 1
    gains = 10 ** (rng.normal(0, 2.5, len(starts)) / 20)
    bursts = _place(
        n, starts, lambda i: gains[i] * rng.uniform(0.5, 3) * _noise(rng, m) * _decay(m, tau, 5e-4)
    )
    rings = _place(
        n, starts, lambda i: gains[i] * _ring(rng, modes * (1 + 0.02 * rng.normal(size=k)), decays)
    )
    return _filt(bursts, "lowpass", _loguni(rng, *bright)) + rings


# ---------------------------------------------------------------------------------------------
# Class generators: (rng, n) -> float signal of n samples, any scale (normalised by the mixer)


def _engine(rng, n: int) -> np.ndarray:
    """Idling, revving or passing engine: low harmonic series, firing jitter, AM, muffling."""
    base = _loguni(rng, 15, 70)
    mode = rng.integers(3)
    if mode == 0:  # idle
        curve, amp = 1 + 0.04 * _walk(rng, n, 1.5), 1.0
    elif mode == 1:  # revving: rpm sweeps up and back
        curve, amp = 1 + rng.uniform(0.5, 2.0) * _walk(rng, n, rng.uniform(0.3, 1.5)).clip(0), 1.0
    else:  # passing vehicle
        curve, amp = _doppler(rng, n)
        curve = curve * (1 + 0.1 * _walk(rng, n, 0.5))
    f0 = base * curve * (1 + 0.03 * _walk(rng, n, 25))
    x = _osc(rng, f0, _harmonics(rng, 120, rng.uniform(2, 8)))
    x *= 1 + rng.uniform(0.1, 0.7) * np.sin(2 * np.pi * np.cumsum(f0 / rng.choice([2, 4])) / SR)
    x += rng.uniform(0.1, 1.0) * _noise(rng, n, rng.uniform(0.5, 2)) * curve / curve.max() * rms(x)
    return _filt(x, "lowpass", _loguni(rng, 150, 3000)) * amp


def _powered_saw(rng, n: int) -> np.ndarray:
    """Chainsaw, circular saw or grinder: bright buzz whose pitch drops under cutting load."""
    variant = rng.integers(3)
    f_free = _loguni(rng, *[(60, 180), (45, 110), (80, 220)][variant])
    cuts = np.zeros(n)
    for _ in range(rng.integers(1, 5)):
        a = rng.integers(0, n)
        cuts[a : a + int(_loguni(rng, 0.3, 2.5) * SR)] = 1.0
    load = _smooth(cuts, rng.uniform(1.0, 6.0))
    spin = 1 - rng.uniform(0.2, 0.6) * np.exp(-_secs(n) / rng.uniform(0.1, 0.6))
    f0 = f_free * spin * (1 - rng.uniform(0.1, 0.4) * load) * (1 + 0.015 * _walk(rng, n, 20))
    x = _osc(rng, f0, _harmonics(rng, 100, rng.uniform(1, 5)))
    if variant == 0:  # chain roughness
        x *= 1 + rng.uniform(0.2, 0.6) * _walk(rng, n, rng.uniform(20, 60))
    else:  # blade/disc whine tracks the rpm
        whine = f0 * _loguni(rng, 2000, 6000) / f_free
        x += rng.uniform(0.1, 0.6) * _osc(rng, whine, [1.0, 0.2]) * rms(x)
    hiss = _filt(_noise(rng, n), "bandpass", [_loguni(rng, 500, 2000), _loguni(rng, 3000, 7500)])
    x += rng.uniform(0.5, 2.0) * hiss * (0.15 + load) * rms(x)
    return _filt(x, "lowpass", _loguni(rng, 2000, 7500))


def _machinery_impact(rng, n: int) -> np.ndarray:
    """Jackhammer, hammering or pile driver: regular trains of resonant hits."""
    variant = rng.integers(3)
    if variant == 0:  # jackhammer: fast hit trains in bursts
        starts = _times(rng, n, _loguni(rng, 0.035, 0.09), 0.03)
        gate = _gate(n, rng.uniform(0.8, 3.0), rng.uniform(0.4, 0.85), rng.uniform(), 0.02)
        return _hits(rng, n, starts, 300, 5000, (0.005, 0.04), (2000, 7000)) * gate
    if variant == 1:  # hammering
        starts = _times(
            rng, n, rng.uniform(0.25, 0.9), rng.uniform(0.02, 0.08), rng.uniform(0, 0.3)
        )
        return _hits(rng, n, starts, 600, 5000, (0.02, 0.4), (1500, 7000))
    starts = _times(rng, n, rng.uniform(0.7, 1.8), 0.03, rng.uniform(0, 0.4))  # pile driver
    return _hits(rng, n, starts, 40, 2500, (0.05, 0.5), (300, 4000))


def _non_machinery_impact(rng, n: int) -> np.ndarray:
    """Door slams, footsteps, object drops and knocks: few, irregular hits."""
    variant = rng.integers(4)
    dur = n / SR
    if variant == 0:  # slam (+ latch/rattle shortly after), once or twice in the clip
        t0 = np.sort(rng.uniform(0, max(0.01, dur - 0.3), rng.integers(1, 3)))
        starts = np.concatenate([t0, t0 + rng.uniform(0.03, 0.2)]) * SR
        return _hits(rng, n, starts, 50, 800, (0.03, 0.3), (200, 2000))
    if variant == 1:  # footsteps: quasi-regular but sloppy
        starts = _times(
            rng, n, rng.uniform(0.35, 0.75), rng.uniform(0.08, 0.2), rng.uniform(0, 0.5)
        )
        starts = starts[: rng.integers(4, 15)]
        return _hits(rng, n, starts, 60, 600, (0.01, 0.08), (200, 1500))
    if variant == 2:  # dropped object bouncing: geometric intervals and levels
        k = rng.integers(3, 9)
        gaps = rng.uniform(0.1, 0.45) * rng.uniform(0.5, 0.85) ** np.arange(k)
        starts = (rng.uniform(0, dur * 0.5) + np.concatenate([[0], np.cumsum(gaps)[:-1]])) * SR
        x = _hits(rng, n, starts, 200, 5000, (0.01, 0.3), (1000, 7000))
        return x * np.interp(_secs(n), starts / SR, 0.8 ** np.arange(k), right=0.8**k)
    starts = _times(
        rng, n, rng.uniform(0.1, 0.25), 0.15, rng.uniform(0, dur / 2), rng.integers(2, 6)
    )
    return _hits(rng, n, starts, 120, 1500, (0.01, 0.1), (500, 4000))  # knocking


def _alert_signal(rng, n: int) -> np.ndarray:
    """Sirens (wail, yelp, hi-lo, with Doppler), car horns, reverse beepers, alarms."""
    t = _secs(n)
    variant = rng.integers(6)
    amps = _harmonics(rng, 15, rng.uniform(3, 10), odd=rng.random() < 0.5)
    if variant <= 2:  # sirens
        lo = _loguni(rng, 450, 1000)
        hi = lo * rng.uniform(1.3, 2.2)
        period = rng.uniform(2.0, 7.0) if variant == 0 else rng.uniform(0.15, 0.45)
        if variant == 2:  # hi-lo two-tone
            period = rng.uniform(0.8, 2.0)
        ph = (t / period + rng.uniform()) % 1.0
        sweep = [0.5 - 0.5 * np.cos(2 * np.pi * ph), ph**0.6, _smooth(ph < 0.5, 40.0)][variant]
        factor, amp = _doppler(rng, n) if rng.random() < 0.5 else (1.0, 1.0)
        return _osc(rng, (lo + (hi - lo) * sweep) * factor, amps, n) * amp
    if variant == 3:  # car horn: two steady detuned tones, a few honks
        f1 = _loguni(rng, 300, 550)
        x = _osc(rng, f1, amps, n) + _osc(rng, f1 * rng.uniform(1.18, 1.3), amps, n)
        k = rng.integers(1, 5)
        lens = (_loguni(rng, 0.12, 1.2, k) * SR).astype(int)
        return x * _place(n, rng.uniform(0, 0.8, k) * n, lambda i: fade(lens[i], 0.01, 0.02))
    if variant == 4:  # reverse beeper
        gate = _gate(n, rng.uniform(0.6, 1.3), rng.uniform(0.35, 0.6), rng.uniform())
        return _osc(rng, _loguni(rng, 900, 3000), amps, n) * gate
    # alarm: fast pulses or warble between two tones
    f = _loguni(rng, 1200, 4000) * (1 + rng.uniform(0, 0.3) * _gate(n, 1 / rng.uniform(4, 15), 0.5))
    return _osc(rng, f, amps, n) * (
        _gate(n, 1 / rng.uniform(3, 10), 0.5) if rng.random() < 0.5 else 1
    )


_SCALES = ([0, 2, 4, 7, 9], [0, 3, 5, 7, 10], [0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10])


def _midi(m) -> np.ndarray:
    return 440.0 * 2 ** ((np.asarray(m, dtype=float) - 69) / 12)


def _notes(rng, n: int, starts, pitches, lens, tilt: float, tau: float | None, vib: float):
    """Render notes with one instrument timbre (plucked when ``tau``, else sustained)."""
    amps = _harmonics(rng, 30, tilt, odd=rng.random() < 0.3)

    def note(i: int) -> np.ndarray:
        m = int(lens[i])
        f0 = _midi(pitches[i]) * (1 + vib * np.sin(2 * np.pi * 5.5 * _secs(m)))
        env = _decay(m, tau, 0.003) if tau else fade(m, 0.03, 0.08)
        return _osc(rng, f0, amps, m) * env * fade(m, 0.001, 0.01)

    return _place(n, starts, note)


_VOWELS = np.array(  # F1, F2, F3 in Hz (adult male); scaled for other talkers
    [
        [730, 1090, 2440],
        [270, 2290, 3010],
        [530, 1840, 2480],
        [570, 840, 2410],
        [300, 870, 2240],
        [660, 1720, 2410],
        [490, 1350, 1690],
        [400, 2000, 2550],
    ]
)


def _vowel(rng, x: np.ndarray, scale: float) -> np.ndarray:
    """Filter ``x`` through the formants of a random vowel (``scale`` 1: adult male)."""
    fmt = _VOWELS[rng.integers(len(_VOWELS))] * scale * rng.uniform(0.9, 1.1, 3)
    return _resonate(x, fmt, [80, 100, 150], [1.0, 0.6, 0.3])


def _music(rng, n: int) -> np.ndarray:
    """Melody (sometimes sung) over optional chords, bass and drums; varied tempo, key, timbre."""
    beat = 60 / rng.uniform(70, 170)
    scale = np.array(_SCALES[rng.integers(len(_SCALES))])
    root = rng.integers(55, 72)
    steps = rng.choice([0.5, 1, 1, 2], size=int(n / SR / beat * 2) + 2)
    onsets = np.concatenate([[0], np.cumsum(steps)]) * beat * SR
    degree = np.cumsum(rng.integers(-2, 3, len(onsets))) % (2 * len(scale))
    pitch = root + scale[degree % len(scale)] + 12 * (degree // len(scale))
    lens = np.diff(onsets, append=n) + 0.05 * SR
    sung = rng.random() < 0.25  # vowel formants and vibrato: a deliberate voice confuser
    tau = None if sung or rng.random() < 0.35 else _loguni(rng, 0.08, 0.6)
    vib = rng.uniform(0.01, 0.025) if sung else rng.uniform(0, 0.01)
    x = _notes(rng, n, onsets, pitch, lens, rng.uniform(3, 12), tau, vib)
    if sung:
        x = _vowel(rng, x, rng.uniform(1.0, 1.3))
    bars = np.arange(0, n, 4 * beat * SR)
    bar_len = np.full(len(bars), 4 * beat * SR)
    roots = root - 12 + scale[rng.integers(0, len(scale), len(bars))]
    if rng.random() < 0.6:  # chords: a triad each bar
        for third in (0, 4, 7):
            x += 0.5 * _notes(rng, n, bars, roots + third, bar_len, rng.uniform(6, 14), None, 0.0)
    if rng.random() < 0.7:  # bass
        x += _notes(rng, n, bars, roots - 12, bar_len / 2, 8.0, 0.3, 0.0)
    if rng.random() < 0.75:  # drums: kick, snare and hats on the grid
        grid = np.arange(0, n, beat * SR / 2)
        kick = _osc(rng, np.geomspace(150, 45, 2400), [1.0]) * _decay(2400, 0.08)
        snare = _filt(_noise(rng, 2000), "bandpass", [900, 5000]) * _decay(2000, 0.05)
        hat = _filt(_noise(rng, 800), "highpass", 6000) * _decay(800, 0.015)
        sound = (kick, hat, snare, hat)
        x += rng.uniform(0.3, 1.5) * _place(n, grid, lambda i: sound[i % 4]) * rms(x)
    return _filt(x, "lowpass", _loguni(rng, 300, 7500)) if rng.random() < 0.2 else x


def _talker(rng) -> tuple[float, float, float, float]:
    """A random talker: (f0 in Hz, formant scale, spectral tilt in dB/oct, syllables per s)."""
    kind = rng.integers(3)  # male, female, child
    shout = rng.random() < 0.3  # higher, brighter
    f0 = _loguni(rng, *[(85, 150), (160, 260), (230, 350)][kind]) * (1.5 if shout else 1.0)
    tilt = rng.uniform(3, 6) if shout else rng.uniform(7, 12)
    return f0, 1 + 0.15 * kind, tilt, rng.uniform(3, 7)


def _phrase(rng, n: int, talker: tuple[float, float, float, float]) -> np.ndarray:
    """One phrase: a glottal source with declining, wobbling pitch cut into vowel syllables."""
    f0, fscale, tilt, rate = talker
    syl = (_loguni(rng, 0.5, 1.6, rng.integers(2, 12)) / rate * SR).astype(int)
    m = min(int(syl.sum()), n)
    contour = np.linspace(1.15, 0.85, m) * (1 + 0.12 * _walk(rng, m, rate))  # declination
    src = _osc(rng, f0 * contour * (1 + 0.01 * _walk(rng, m, 60)), _harmonics(rng, 80, tilt))
    src += 0.05 * _noise(rng, m) * rms(src)  # breathiness
    starts = np.concatenate([[0], np.cumsum(syl)[:-1]])

    def syllable(i: int) -> np.ndarray:
        v = _vowel(rng, src[starts[i] : starts[i] + syl[i]], fscale)
        v *= fade(len(v), rng.uniform(0.01, 0.05), rng.uniform(0.03, 0.1))
        if rng.random() < 0.5:  # consonant: short fricative burst
            k = min(len(v), int(rng.uniform(0.02, 0.08) * SR))
            v[:k] += _filt(_noise(rng, k), "highpass", _loguni(rng, 2000, 5000)) * rms(v)
        return v

    return _place(m, starts, syllable)


def _human_voice(rng, n: int) -> np.ndarray:
    """Talking or shouting, one talker or a conversation of two: phrases separated by pauses."""
    talkers = [_talker(rng) for _ in range(1 + (rng.random() < 0.3))]
    out, pos = np.zeros(n), int(rng.uniform(0, 0.3) * SR)
    while pos < n:
        phrase = _phrase(rng, n - pos, talkers[rng.integers(len(talkers))])
        out[pos : pos + len(phrase)] = phrase
        pos += len(phrase) + int(_loguni(rng, 0.1, 0.8) * SR)
    return _filt(out, "lowpass", _loguni(rng, 700, 2500)) if rng.random() < 0.3 else out  # far


def _dog(rng, n: int) -> np.ndarray:
    """Barks (repeated, varied count and period), growls and whines."""
    variant = rng.choice(3, p=[0.7, 0.15, 0.15])
    big = rng.random() < 0.5
    fmt = np.array([_loguni(rng, 500, 1000), _loguni(rng, 1500, 3000)]) * (0.75 if big else 1.0)

    def voiced(m: int, f0, tilt: float, noisy: float) -> np.ndarray:
        h = _osc(rng, f0, _harmonics(rng, 40, tilt), m)
        return _resonate(h + noisy * _noise(rng, m) * rms(h), fmt, [150, 300], [1.0, 0.5]) + 0.3 * h

    if variant == 0:  # barks
        f_peak = _loguni(rng, *((150, 400) if big else (400, 900)))
        length = _loguni(rng, 0.07, 0.25)

        def bark(i: int) -> np.ndarray:
            m = int(length * rng.uniform(0.8, 1.25) * SR)
            u = np.linspace(0, 1, m)
            f0 = f_peak * rng.uniform(0.9, 1.1) * (1 - 0.4 * u) * np.minimum(1, 0.7 + 2 * u)
            return voiced(m, f0, rng.uniform(5, 10), rng.uniform(0.2, 1.0)) * _decay(m, m / SR / 3)

        starts = _bouts(rng, n, _loguni(rng, 0.2, 0.7), 0.15, rng.integers(2, 9), (0.3, 2.0))
        return _place(n, starts, bark)
    if variant == 1:  # growl: low, rough, long
        f0 = _loguni(rng, 70, 200) * (1 + 0.1 * _walk(rng, n, 4))
        rough = 1 + rng.uniform(0.5, 0.9) * np.sin(2 * np.pi * rng.uniform(15, 40) * _secs(n))
        return voiced(n, f0, rng.uniform(6, 12), rng.uniform(0.5, 2)) * rough * fade(n, 0.1, 0.1)
    k = rng.integers(1, 4)  # whines: high, near-tonal slides
    lens = (_loguni(rng, 0.3, 1.2, k) * SR).astype(int).clip(max=n)
    f_w = _loguni(rng, 500, 1400)

    def whine(i: int) -> np.ndarray:
        m = lens[i]
        f0 = f_w * (1 + rng.uniform(-0.25, 0.25) * np.sin(np.pi * np.linspace(0, 1, m)))
        return voiced(m, f0, rng.uniform(12, 20), 0.1) * fade(m, 0.05, 0.1)

    return _place(n, np.sort(rng.uniform(0, 0.7, k)) * n, whine)


GENERATORS: tuple[Callable[[np.random.Generator, int], np.ndarray], ...] = (
    _engine,
    _machinery_impact,
    _non_machinery_impact,
    _powered_saw,
    _alert_signal,
    _music,
    _human_voice,
    _dog,
)
# Event length range in seconds per class (clipped to the clip length).
DURATIONS = ((1.5, 10), (0.8, 10), (0.3, 3), (1.0, 10), (1.0, 10), (1.5, 10), (1.5, 10), (1.0, 10))


# ---------------------------------------------------------------------------------------------
# Background and distractors


def background(rng, n: int) -> np.ndarray:
    """Urban bed: traffic rumble plus random wind, babble, hum and hiss; random tilt; unit RMS."""
    x = _filt(_noise(rng, n, rng.uniform(1.2, 2.0)), "lowpass", _loguni(rng, 300, 2500))
    x /= rms(x)
    layers = []
    if rng.random() < 0.4:  # wind: low noise with gusts
        gust = (0.3 + 0.7 * (0.5 + 0.5 * _walk(rng, n, rng.uniform(0.3, 1.5)))) ** 2
        layers.append(_filt(_noise(rng, n), "lowpass", _loguni(rng, 80, 500)) * gust)
    if rng.random() < 0.2:  # distant crowd babble: speech-shaped noise, weak syllabic AM
        babble = _resonate(_noise(rng, n, 1.0), [500, 1500, 2500], [400, 600, 800], [1, 0.6, 0.3])
        layers.append(babble * (1 + 0.4 * _walk(rng, n, rng.uniform(3, 8))))
    if rng.random() < 0.2:  # mains / transformer / fan hum: harmonic but steady
        f = rng.choice([50.0, 60.0, 100.0, 120.0, _loguni(rng, 25, 90)])
        layers.append(_osc(rng, f * (1 + 0.003 * _walk(rng, n, 0.5)), _harmonics(rng, 40, 6)))
    if rng.random() < 0.15:  # air-conditioning hiss
        layers.append(_filt(_noise(rng, n), "highpass", _loguni(rng, 1000, 4000)))
    for layer in layers:
        x += layer / rms(layer) * 10 ** (rng.uniform(-20, -3) / 20)
    x = _tilt(x, rng.uniform(-1.0, 1.0))
    return x / rms(x)


def distractor(rng, n: int) -> np.ndarray:
    """A non-target sound: bird song, rain, a wind gust or rustling leaves."""
    variant = rng.integers(4)
    if variant == 0:  # birds: trills of fast FM chirps
        f1, ratio = _loguni(rng, 2000, 6000), _loguni(rng, 0.6, 1.6)
        lens = (_loguni(rng, 0.02, 0.12, 64) * SR).astype(int)

        def chirp(i: int) -> np.ndarray:
            f = np.geomspace(f1, f1 * ratio, lens[i]) * rng.uniform(0.95, 1.05)
            return _osc(rng, f, [1.0, 0.1]) * np.hanning(lens[i])

        trills = [
            _times(
                rng, n, rng.uniform(0.06, 0.25), 0.1, rng.uniform(0, n / SR), rng.integers(2, 12)
            )
            for _ in range(rng.integers(1, 4))
        ]
        starts = np.concatenate(trills)[:64]
        return _place(n, starts, chirp)
    if variant == 1:  # rain: hiss plus random drop clicks
        drops = np.zeros(n)
        k = int(rng.uniform(20, 300) * n / SR) + 1
        drops[rng.integers(0, n, k)] = rng.standard_normal(k)
        hiss = _filt(_noise(rng, n), "highpass", _loguni(rng, 800, 4000))
        return hiss + 5 * _filt(drops, "bandpass", [1000, 6000]) * rms(hiss) / rms(drops)
    span = fade(n, 0.5 * n / SR, 0.5 * n / SR) ** 2  # gust / rustle swell over the clip
    if variant == 2:
        return _filt(_noise(rng, n), "lowpass", _loguni(rng, 100, 800)) * span
    rustle = (0.5 + 0.5 * _walk(rng, n, 12)) ** 2
    return _filt(_noise(rng, n), "highpass", _loguni(rng, 1500, 4000)) * span * rustle
