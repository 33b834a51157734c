"""The integer front end: int16 audio in, int8 log-mel features out, bit-exact with its C twin.

Every step is integer arithmetic on numpy arrays; the C version in ``firmware_gen/templates``
performs the same operations in the same order, so both produce identical bytes. Per frame:

1. **Block normalisation.** ``s`` is the largest shift in [0, 15] with ``peak << s <= 32768``
   (``peak`` = max |x| over the frame), so quiet frames keep full precision through the FFT.
2. **Window.** ``v = ((x << s) * w + 2**14) >> 15`` with ``w`` a periodic Hann in Q15
   (``|v| <= 32767``), zero-padded to ``fft_size``.
3. **Real FFT** of ``fft_size`` = N points as an N/2-point complex FFT of
   ``z[n] = v[2n] + j v[2n+1]`` (radix-4 decimation in time, digit-reversed input, int32 data,
   Q30 twiddles, each product rounded once: ``(a*c + b*s + 2**29) >> 30``; no per-stage scaling:
   every intermediate is a partial DFT bounded by ``sum|v| < 2**23``), then the split step gives
   ``Y[k] = 2 X[k]`` for k = 0..N/2.
4. **Power.** ``P[k] = (Re(Y)**2 + Im(Y)**2) >> 16`` (< 2**32, a uint32 in C).
5. **Mel.** ``E[m] = sum_k W[m, k] P[k]`` with sparse Q15 triangles (librosa design, Slaney mel
   scale, peak-normalised), accumulated in 64 bits.
6. **Log.** ``log2(E)`` in Q16 from the position of the top bit plus a 256-entry mantissa
   table, minus the normalisation ``2 s``; ``q = round(log2_steps * log2 E) - log_offset``
   clamped to int8; ``E == 0`` gives -128.

The dequantised feature ``(q - input_zero_point) * input_scale`` equals ``log2(2 S)``, where
``S`` is librosa's float mel power spectrogram of ``x / 32768`` (``power=2``, ``norm=None``, same
window, hop and filters). With the defaults one int8 step is 1/6 of a doubling (0.50 dB), and
[-128, 127] covers ``S`` from 2**-27.7 (-83 dB) to 2**14.8 (+44.7 dB): 128 dB, from below the
quantisation noise of 16-bit audio to full scale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model_dev import frontend_native
from model_dev.audio import SAMPLE_RATE
from model_dev.config_io import JsonConfig

#: Bumped whenever the integer algorithm changes; part of the config hash, so caches and
#: generated firmware from an older algorithm are never mistaken for current ones.
ALGORITHM_VERSION = 1

Q15 = 15
Q30 = 30
POWER_SHIFT = 16
#: log2 of E for a full-scale (x / 32768 = 1) band power S = 1/2: E = 2 S * 2**30.
LOG2_FULL_SCALE = 30
LOG_LUT_BITS = 8
LOG_FRAC_BITS = 16


@dataclass(frozen=True)
class FrontendConfig(JsonConfig):
    """Everything that defines the front end's output; its hash travels with every artifact.

    Parameters
    ----------
    sample_rate : int
        Input rate in Hz (int16 mono); only 16000, the rate every stage reads audio at.
    window_length : int
        Frame length in samples (default 400 = 25 ms), periodic Hann window.
    hop_length : int
        Frame step in samples (default 160 = 10 ms).
    fft_size : int
        FFT length N; N/2 must be a power of 4 (128, 512, 2048) for the radix-4 FFT.
    n_mels : int
        Number of mel bands.
    fmin_hz, fmax_hz : float
        Frequency range of the mel filterbank.
    log2_steps : int
        int8 steps per doubling of band energy (6: 0.50 dB per step, 128 dB range).
    log_offset : int
        Subtracted after scaling: ``q = round(log2_steps * log2(E)) - log_offset``. The default
        puts a full-scale square wave just below 127.
    """

    sample_rate: int = 16000
    window_length: int = 400
    hop_length: int = 160
    fft_size: int = 512
    n_mels: int = 40
    fmin_hz: float = 125.0
    fmax_hz: float = 7500.0
    log2_steps: int = 6
    log_offset: int = 148

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = float if f.type == "float" else int
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"FrontendConfig.{f.name}: expected a number, got {value!r}")
            if kind is int and not isinstance(value, int):
                raise ValueError(f"FrontendConfig.{f.name}: expected an integer, got {value!r}")
            object.__setattr__(self, f.name, kind(value))
        half = self.fft_size // 2
        checks = [
            (
                self.sample_rate == SAMPLE_RATE,
                "sample_rate",
                f"must be {SAMPLE_RATE}: every stage reads audio at {SAMPLE_RATE} Hz "
                "(model_dev.audio), so filters for another rate would be silently wrong",
            ),
            (0 < self.window_length <= self.fft_size, "window_length", "must be in 1..fft_size"),
            (
                0 < self.hop_length <= self.window_length,
                "hop_length",
                "must be in 1..window_length",
            ),
            (
                self.fft_size % 2 == 0
                and half >= 4
                and 4 ** round(np.log(half) / np.log(4)) == half,
                "fft_size",
                "must be 2 * 4**k (128, 512, 2048, ...) for the radix-4 FFT",
            ),
            (self.n_mels > 0, "n_mels", "must be positive"),
            (0 <= self.fmin_hz < self.fmax_hz, "fmin_hz", "must be >= 0 and below fmax_hz"),
            (self.fmax_hz <= self.sample_rate / 2, "fmax_hz", "must not exceed sample_rate / 2"),
            (1 <= self.log2_steps <= 64, "log2_steps", "must be in 1..64"),
            (
                -128 <= LOG2_FULL_SCALE * self.log2_steps - self.log_offset <= 127,
                "log_offset",
                "must make the int8 zero point (log2_steps * 30 - log_offset) fit in int8",
            ),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"FrontendConfig.{name}={getattr(self, name)!r}: {why}")

    # -- int8 output format (contract 2: the model's input tensor uses exactly these) --
    @property
    def input_scale(self) -> float:
        """Scale of the int8 features: dequantised value = (q - zero_point) * scale."""
        return 1.0 / self.log2_steps

    @property
    def input_zero_point(self) -> int:
        """Zero point of the int8 features: the q of a band power S = 1/2 (log2(2 S) = 0)."""
        return LOG2_FULL_SCALE * self.log2_steps - self.log_offset

    @property
    def n_bins(self) -> int:
        """Number of one-sided FFT bins, N/2 + 1."""
        return self.fft_size // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` input samples (no padding; partial frames dropped)."""
        if n_samples < self.window_length:
            return 0
        return 1 + (n_samples - self.window_length) // self.hop_length

    # -- identity (serialisation comes from JsonConfig) --
    @cached_property
    def hash(self) -> str:
        """Stable sha256 hex of the canonical JSON and the algorithm version."""
        payload = f"aedfw-frontend-v{ALGORITHM_VERSION}:{self.to_json()}".encode()
        return hashlib.sha256(payload).hexdigest()

    @property
    def short_hash(self) -> str:
        """First 16 hex digits of :attr:`hash` (what the device reports)."""
        return self.hash[:16]


# ----------------------------------------------------------------------------------------------
# Tables: pure functions of the config, emitted verbatim into C by firmware_gen.
# ----------------------------------------------------------------------------------------------


def window_q15(cfg: FrontendConfig) -> np.ndarray:
    """Periodic Hann window in Q15, int16 [window_length] (peak 1.0 saturates to 32767)."""
    n = np.arange(cfg.window_length)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.window_length)
    return np.minimum(np.round(w * 2**Q15), 2**Q15 - 1).astype(np.int16)


def cos_q30(cfg: FrontendConfig) -> np.ndarray:
    """cos(2 pi k / N) in Q30 for k in [0, N), int32; sin(2 pi k/N) = cos(2 pi (k - N/4) / N)."""
    k = np.arange(cfg.fft_size)
    return np.round(np.cos(2 * np.pi * k / cfg.fft_size) * 2**Q30).astype(np.int32)


def digit_reverse(cfg: FrontendConfig) -> np.ndarray:
    """Base-4 digit-reversal permutation of the N/2-point complex FFT input, uint16."""
    m = cfg.fft_size // 2
    n_digits = int(round(np.log(m) / np.log(4)))
    idx = np.arange(m)
    rev = np.zeros(m, dtype=np.int64)
    for d in range(n_digits):
        rev = rev * 4 + (idx >> (2 * d)) % 4
    return rev.astype(np.uint16)


@dataclass(frozen=True)
class MelTable:
    """Sparse Q15 mel filterbank: band m uses bins start[m] .. start[m] + length[m] - 1,
    with weights weights[offset[m] : offset[m] + length[m]]."""

    start: np.ndarray  # int16 [n_mels]
    length: np.ndarray  # int16 [n_mels]
    offset: np.ndarray  # int32 [n_mels]
    weights: np.ndarray  # int16 [sum(length)]

    def dense(self, n_bins: int) -> np.ndarray:
        """The filterbank as a dense int64 [n_mels, n_bins] matrix (for checks and plots)."""
        out = np.zeros((len(self.start), n_bins), dtype=np.int64)
        for m, (s, n, o) in enumerate(zip(self.start, self.length, self.offset, strict=True)):
            out[m, s : s + n] = self.weights[o : o + n]
        return out


def mel_filters_float(cfg: FrontendConfig) -> np.ndarray:
    """librosa's float mel filterbank for this config, [n_mels, n_bins] (peak-normalised)."""
    import librosa  # slow import; only table generation needs it

    with warnings.catch_warnings():  # empty bands get our own error in mel_table
        warnings.simplefilter("ignore", UserWarning)
        return librosa.filters.mel(
            sr=cfg.sample_rate,
            n_fft=cfg.fft_size,
            n_mels=cfg.n_mels,
            fmin=cfg.fmin_hz,
            fmax=cfg.fmax_hz,
            htk=False,
            norm=None,
            dtype=np.float64,
        )


def mel_table(cfg: FrontendConfig) -> MelTable:
    """Quantise librosa's mel filterbank to sparse Q15 weights.

    Raises
    ------
    ValueError
        If a band gets no FFT bin (too many bands for the FFT resolution).
    """
    q = np.minimum(np.round(mel_filters_float(cfg) * 2**Q15), 2**Q15 - 1).astype(np.int64)
    start, length, chunks = [], [], []
    for m, row in enumerate(q):
        nz = np.flatnonzero(row)
        if nz.size == 0:
            raise ValueError(
                f"FrontendConfig: mel band {m} covers no FFT bin; lower n_mels ({cfg.n_mels}), "
                f"raise fmin_hz ({cfg.fmin_hz}) or raise fft_size ({cfg.fft_size})"
            )
        start.append(nz[0])
        length.append(nz[-1] + 1 - nz[0])
        chunks.append(row[nz[0] : nz[-1] + 1])
    length_arr = np.array(length, dtype=np.int16)
    offset = np.concatenate([[0], np.cumsum(length_arr[:-1], dtype=np.int64)]).astype(np.int32)
    return MelTable(
        start=np.array(start, dtype=np.int16),
        length=length_arr,
        offset=offset,
        weights=np.concatenate(chunks).astype(np.int16),
    )


def log2_lut() -> np.ndarray:
    """log2(1 + (i + 0.5) / 256) in Q16 for the 8 mantissa bits below the top bit, uint16[256]."""
    i = np.arange(2**LOG_LUT_BITS)
    return np.round(np.log2(1 + (i + 0.5) / 2**LOG_LUT_BITS) * 2**LOG_FRAC_BITS).astype(np.uint16)


@dataclass(frozen=True)
class FrontendTables:
    """All constant tables of one config (what the C front end compiles in)."""

    window: np.ndarray
    cos: np.ndarray
    digit_reverse: np.ndarray
    mel: MelTable
    log2: np.ndarray


def make_tables(cfg: FrontendConfig) -> FrontendTables:
    """Compute every table for ``cfg``."""
    return FrontendTables(
        window_q15(cfg), cos_q30(cfg), digit_reverse(cfg), mel_table(cfg), log2_lut()
    )


# ----------------------------------------------------------------------------------------------
# The reference computation, vectorised over frames (Frontend runs 128 at a time: big enough to
# amortise numpy's per-call cost, small enough for the temporaries to stay in cache). Arrays are
# bins-major ([bins, frames]) so per-bin constants broadcast along contiguous runs of frames;
# complex values are stacked as [2 (re, im), ...] so one numpy call updates both parts. FFT data
# are int32 (|values| <= 2 sum(window) < 2**24 by default); only the twiddle products, the power
# and the mel sums need int64.
# ----------------------------------------------------------------------------------------------

_HALF_Q30 = 1 << (Q30 - 1)
_POWERS_OF_2 = np.int64(1) << np.arange(63, dtype=np.int64)  # bit lengths by searchsorted


@dataclass(frozen=True, eq=False)
class _MelLayout:
    """The sparse mel table as numpy index arrays (bins-major)."""

    lo: int  # bins lo .. hi - 1 carry every nonzero weight
    hi: int
    rows: np.ndarray  # intp [nnz]: bin - lo of each nonzero weight, band after band
    weights: np.ndarray  # int64 [nnz, 1]
    offset: np.ndarray  # intp [n_mels]: first nonzero of each band


def _mel_layout(mel: MelTable) -> _MelLayout:
    bins = np.concatenate(
        [np.arange(s, s + n) for s, n in zip(mel.start, mel.length, strict=True)]
    ).astype(np.intp)
    return _MelLayout(
        lo=int(bins.min()),
        hi=int(bins.max()) + 1,
        rows=bins - bins.min(),
        weights=mel.weights.astype(np.int64)[:, None],
        offset=mel.offset.astype(np.intp),
    )


@dataclass(frozen=True, eq=False)
class _Plan:
    """Index and twiddle arrays of the vectorised reference, derived once from the tables."""

    m: int  # M = fft_size / 2 complex FFT points
    shift: np.ndarray  # int32 [32769]: block shift s for each frame peak max|x|
    round_shift: np.ndarray  # int32 [16, 2]: (2**(14 - s) or 0, 15 - s) for each s, see _power
    window: np.ndarray  # int32 [window_length]
    stages: tuple  # per radix-4 stage: (q, twiddles of a_1..a_3 at j >= 1, or None)
    split_twiddles: tuple  # W^k for k = 0..M, see _twiddles
    mel: _MelLayout
    log_table: np.ndarray  # int64 [64 << 9]: q + log_offset + 2 s log2_steps, by (bits, top)


def _twiddles(cos: np.ndarray, k: np.ndarray, n: int) -> tuple:
    """W^k = c - j s in Q30 as (c [..., 1], [c + s, c - s] [2, ..., 1]) int64 for _rounded_rotate
    (the trailing 1 broadcasts along frames)."""
    c, s = cos[k % n].astype(np.int64), cos[(k - n // 4) % n].astype(np.int64)
    return c[..., None], np.stack([c + s, c - s])[..., None]


def _make_plan(cfg: FrontendConfig, tables: FrontendTables) -> _Plan:
    n, m = cfg.fft_size, cfg.fft_size // 2
    # int32 FFT data: every intermediate is at most sum|v| <= sum(window) (+ rounding), Y twice that
    if int(tables.window.astype(np.int64).sum()) >= 2**28:
        raise ValueError(f"window_length {cfg.window_length}: too long for int32 FFT data")
    # s for every possible peak: largest s in [0, 15] with peak << s <= 32768.
    peak = np.arange(32769)
    shift = sum((peak << k) <= 32768 for k in range(1, 16)).astype(np.int32)
    # v = ((x << s) w + 2**14) >> 15 = (x w + 2**(14 - s)) >> (15 - s) exactly (divide the
    # numerator and the denominator by 2**s); for s = 15 the rounding term 2**-1 floors to 0.
    s = np.arange(16)
    round_shift = np.stack([np.where(s < 15, 1 << np.maximum(14 - s, 0), 0), 15 - s], axis=1)
    stages, q = [], 1
    while q < m:
        tw = None
        if q > 1:  # twiddle of a_i[j] is W^(i j N / 4q); j = 0 (W^0 = 1, exact) is skipped
            k = np.arange(1, 4)[:, None] * np.arange(1, q) * (n // (4 * q))
            tw = _twiddles(tables.cos, k[:, None], n)  # [:, None]: broadcasts over the blocks
        stages.append((q, tw))
        q *= 4
    # Step 6 as one lookup. With bits = bit length of E (msb = bits - 1) and the mantissa = the 8
    # bits below the top bit, q + log_offset + 2 s steps = steps msb + round(steps lut[mantissa]
    # / 2**16) (the whole part of steps (msb - 2 s) 2**16 passes through the rounding). Both are
    # fixed by (bits, top) with top = E >> max(bits - 9, 0): the top bit and the mantissa, or all
    # of E when bits <= 9. bits = 0 (E = 0) maps far below -128 so the clamp gives -128.
    bits, top = np.meshgrid(np.arange(64), np.arange(1 << (LOG_LUT_BITS + 1)), indexing="ij")
    msb = np.maximum(bits - 1, 0)
    mantissa = (top << np.maximum(9 - bits, 0)) & (2**LOG_LUT_BITS - 1)
    frac = (cfg.log2_steps * tables.log2.astype(np.int64)[mantissa] + (1 << 15)) >> LOG_FRAC_BITS
    log_table = np.where(bits == 0, -(1 << 20), cfg.log2_steps * msb + frac)
    return _Plan(
        m=m,
        shift=shift,
        round_shift=round_shift.astype(np.int32),
        window=tables.window.astype(np.int32),
        stages=tuple(stages),
        split_twiddles=_twiddles(tables.cos, np.arange(m + 1), n),
        mel=_mel_layout(tables.mel),
        log_table=log_table.ravel().astype(np.int64),
    )


def _rounded_rotate(z: np.ndarray, c: np.ndarray, c_plus_minus_s: np.ndarray, out=None):
    """z * (c - j s) for z = [2 (re, im), ...] and Q30 twiddles, each component rounded once.

    Three products instead of four: with t = c (re + im) + 2**29 the exact sums are
    c re + s im + 2**29 = t - (c - s) im and c im - s re + 2**29 = t - (c + s) re, so the single
    rounding of each component is unchanged (|re|, |im| < 2**30 and |c|, |s| <= 2**30: no
    overflow).
    Writes into ``out`` (int32 is fine) or returns a new int64 array.
    """
    z64 = z.astype(np.int64)
    t = z64[0] + z64[1]
    t *= c
    t += _HALF_Q30
    z64 *= c_plus_minus_s  # [(c + s) re, (c - s) im]
    np.subtract(t, z64, out=z64)  # [c im - s re, c re + s im] + 2**29
    return np.right_shift(z64[::-1], Q30, out=out)


def _fft_radix4(z: np.ndarray, plan: _Plan) -> np.ndarray:
    """In-order complex FFT of z = [2 (re, im), M, frames] in natural order (M = N/2 = 4**L).

    The C twin's radix-4 decimation in time (digit-reversed input, in place): at stage s, blocks
    of 4 q points (q = 4**s) combine their quarters a_0..a_3 (a_i[j] = block[i q + j]) after
    rotating a_i[j] by W^(i j N / 4q). Here the same butterflies, twiddles and roundings run in
    Stockham order: stage s reads its data as [2, 4 (i), blocks, q (j), frames] and writes output
    quarter i where stage s + 1 reads it, so every quarter is one contiguous slice; the order that
    stage 0 reads in is the digit reversal of the C twin's, which undoes its digit-reversed input.
    ``z`` is overwritten.
    """
    _, m, n_frames = z.shape
    out = np.empty_like(z)
    for q, twiddles in plan.stages:
        blocks = m // (4 * q)
        a, o = z.reshape(2, 4, blocks, q, n_frames), out.reshape(2, blocks, 4, q, n_frames)
        if twiddles is not None:
            rot = a[:, 1:, :, 1:]
            _rounded_rotate(rot, *twiddles, out=rot)
        a0, a1, a2, a3 = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
        t0, t1, t2 = a0 + a2, a0 - a2, a1 + a3
        u = np.empty_like(t0)  # -j (a1 - a3)
        np.subtract(a1[1], a3[1], out=u[0])
        np.subtract(a3[0], a1[0], out=u[1])
        np.add(t0, t2, out=o[:, :, 0])
        np.add(t1, u, out=o[:, :, 1])
        np.subtract(t0, t2, out=o[:, :, 2])
        np.subtract(t1, u, out=o[:, :, 3])
        z, out = out, z
    return z


def _power(frames: np.ndarray, plan: _Plan, lo: int, hi: int) -> tuple:
    """Steps 1-4 for int16 frames [n, window_length]: (P of bins lo..hi-1 [hi - lo, n] int64,
    shift s [n])."""
    n_frames = len(frames)
    peak = np.maximum(frames.max(axis=1).astype(np.int32), -frames.min(axis=1).astype(np.int32))
    shift = plan.shift[peak]
    rounding, right_shift = plan.round_shift[shift].T
    v = frames * plan.window  # |x w| < 2**30: int32 is exact
    v += rounding[:, None]
    v >>= right_shift[:, None]
    # z[n] = v[2n] + j v[2n+1], zero-padded to M points, as [2, M, frames]
    z = np.empty((2, plan.m, n_frames), np.int32)
    for part in (0, 1):
        samples = v[:, part::2].T
        z[part, : len(samples)] = samples
        z[part, len(samples) :] = 0
    z = _fft_radix4(z, plan)
    # Split: Y[k] = 2 X[k] = (Z[k] + conj Z[M-k]) - j W^k (Z[k] - conj Z[M-k]), k = 0..M.
    # Appending Z[M] = Z[0] makes Z[k] and Z[M-k] (the reversed rows) plain slices.
    z = np.concatenate([z, z[:, :1]], axis=1)
    a, b = z[:, lo:hi], z[:, ::-1][:, lo:hi]
    d = np.empty_like(a)
    np.add(a[1], b[1], out=d[0])
    np.subtract(b[0], a[0], out=d[1])
    c, cpm = plan.split_twiddles
    _rounded_rotate(d, c[lo:hi], cpm[:, lo:hi], out=d)
    d[0] += a[0]  # |Y| <= 2 sum|v| (+ rounding) < 2**29: still int32
    d[0] += b[0]
    d[1] += a[1]
    d[1] -= b[1]
    y = d.astype(np.int64)
    y *= y
    power = y[0] + y[1]
    power >>= POWER_SHIFT
    return power, shift


def _mel(power: np.ndarray, mel: _MelLayout) -> np.ndarray:
    """Step 5 on P [bins mel.lo.., frames]: int64 [n_mels, frames]."""
    weighted = power[mel.rows]
    weighted *= mel.weights
    return np.add.reduceat(weighted, mel.offset, axis=0)


def _log(energy: np.ndarray, shift: np.ndarray, cfg: FrontendConfig, plan: _Plan) -> np.ndarray:
    """Step 6 on E [n_mels, frames]: int8 [n_mels, frames], by plan.log_table."""
    bits = np.searchsorted(_POWERS_OF_2, energy, side="right")  # 2**(bits-1) <= E < 2**bits
    top = np.maximum(bits - (LOG_LUT_BITS + 1), 0)
    np.right_shift(energy, top, out=top)
    bits <<= LOG_LUT_BITS + 1
    bits |= top
    q = plan.log_table[bits]
    q -= 2 * cfg.log2_steps * shift + cfg.log_offset
    np.clip(q, -128, 127, out=q)
    return q.astype(np.int8)


# The three steps one at a time, [frames, ...] in and out (Frontend chains the private versions
# with its plan kept).


def power_spectrum(frames: np.ndarray, cfg: FrontendConfig, tables: FrontendTables) -> tuple:
    """Steps 1-4: normalised, windowed frames -> (P [frames, n_bins] int64, shift s [frames]).

    ``frames`` is int16 [n_frames, window_length].
    """
    power, shift = _power(frames, _make_plan(cfg, tables), 0, cfg.n_bins)
    return power.T, shift


def mel_energies(power: np.ndarray, tables: FrontendTables) -> np.ndarray:
    """Step 5: sparse Q15 mel weighting of P [frames, n_bins], int64 [frames, n_mels]."""
    mel = _mel_layout(tables.mel)
    return _mel(power.T[mel.lo :], mel).T


def log_compress(energy: np.ndarray, shift: np.ndarray, cfg: FrontendConfig, tables) -> np.ndarray:
    """Step 6: int8 ``round(log2_steps * (log2 E - 2 s)) - log_offset``; E == 0 gives -128."""
    return _log(energy.T, shift, cfg, _make_plan(cfg, tables)).T


def frame_signal(audio: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """View int16 audio as [n_frames, window_length] frames (hop_length apart, no padding)."""
    audio = np.asarray(audio)
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise ValueError(
            f"front end input must be 1-D int16 audio, got {audio.dtype} {audio.shape}"
        )
    n = cfg.n_frames(len(audio))
    if n == 0:
        return np.zeros((0, cfg.window_length), dtype=np.int16)
    view = np.lib.stride_tricks.sliding_window_view(audio, cfg.window_length)
    return view[: (n - 1) * cfg.hop_length + 1 : cfg.hop_length]


class Frontend:
    """The integer front end for one config, with its tables computed once.

    Examples
    --------
    >>> fe = Frontend(FrontendConfig())
    >>> fe(np.zeros(16000, dtype=np.int16)).shape
    (98, 40)
    """

    def __init__(
        self,
        cfg: FrontendConfig | None = None,
        chunk_frames: int = 128,
        tables: FrontendTables | None = None,
    ):
        self.cfg = cfg or FrontendConfig()
        # clips go through the device's C (model_dev.frontend_native) when it was built for this
        # config; tables passed in may differ from the config's, so only with our own tables
        self.native = tables is None and frontend_native.available(self.cfg.short_hash)
        self.tables = tables or make_tables(self.cfg)  # pass tables to skip librosa's import
        self.chunk_frames = chunk_frames  # bounds the temporaries (cache-sized) for long clips
        self._plan = _make_plan(self.cfg, self.tables)

    def features_from_frames(self, frames: np.ndarray) -> np.ndarray:
        """int16 frames [n, window_length] -> int8 features [n, n_mels]."""
        out = np.empty((len(frames), self.cfg.n_mels), dtype=np.int8)
        plan = self._plan
        for i in range(0, len(frames), self.chunk_frames):
            chunk = frames[i : i + self.chunk_frames]
            # only the bins under the mel filters are computed
            power, shift = _power(chunk, plan, plan.mel.lo, plan.mel.hi)
            out[i : i + len(chunk)] = _log(_mel(power, plan.mel), shift, self.cfg, plan).T
        return out

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """int16 mono audio -> int8 features [n_frames, n_mels] (the C extension's bytes, which
        are :meth:`reference`'s, when :attr:`native`)."""
        if self.native and isinstance(audio, np.ndarray):
            if audio.dtype == np.int16 and audio.ndim == 1:
                n = self.cfg.n_frames(len(audio))
                return frontend_native.clip_features(audio, n, self.cfg.n_mels)
        return self.reference(audio)

    def reference(self, audio: np.ndarray) -> np.ndarray:
        """The numpy specification: int16 mono audio -> int8 features [n_frames, n_mels]."""
        return self.features_from_frames(frame_signal(audio, self.cfg))

    def dequantize(self, features: np.ndarray) -> np.ndarray:
        """int8 features -> float32 ``log2(2 S)`` (``(q - zero_point) * input_scale``)."""
        zp = self.cfg.input_zero_point
        return ((features.astype(np.float32) - zp) * self.cfg.input_scale).astype(np.float32)
