"""Integer anomaly scores of the deployable methods: the Python references that the device's C
(``aed_anomaly.c``) must equal bit for bit, their thresholds in score units and the constants
the C side needs (:func:`device_defines`).

Every score is a non-negative integer per window (``uint32`` on the device); the clip score is
the mean over the clip's windows (kept exact as sum and count), anomalous when it is
``>= thresholds_q[0]``.

* **Dense autoencoders** (``reconstruction_sse``): ``x`` the int8 window (5 frames x n_mels,
  frame-major), ``y`` the int8 reconstruction, requantised to the input's scale and zero point
  with TFLite's fixed-point multiplier and clamped to int8 (:func:`requantize`); score
  ``sum((x - y_rq)^2)`` over the ``n = 640`` values. Float units: ``score * s_in^2 / n``.
* **Causal convolutional predictor** (``prediction_sse``): the window has ``T`` frames; output
  row ``j`` (of ``T - k + 1``, ``k`` the context) predicts input frame ``j + k``. The score
  compares rows ``0 .. T-k-1`` with frames ``k .. T-1`` (the last row predicts frame ``T``,
  outside the window, and is not used): ``sum((x[k:] - y_rq[:T-k])^2)`` over
  ``n = (T - k) * n_mels`` values, at most ``27 * 128 * 255^2 < 2^31``.
* **ID classifier** (``id_nll_q16``): ``-log p(own ID)`` of the softmax over the int8 logits
  ``q`` (scale ``s``), in units of ``2^-16`` nats, from tables only::

      d_i   = max(q) - q_i                        (0 .. 255)
      S     = sum_i EXP[d_i],  EXP[d] = round(2^24 exp(-s d))      (uint32, n_classes <= 255)
      score = STEP[d_own] + LN(S),  STEP[d] = round(2^16 s d)

  ``LN(S)`` = ``ln(S / 2^24)`` in Q16: with ``b = floor(log2 S)`` (24..31), ``m = S >> (b -
  24)`` in ``[2^24, 2^25)``, fraction ``f = m - 2^24``, ``i = f >> 16``, ``r = f & 0xffff``:
  ``(b - 24) LN2 + LN[i] + ((LN[i+1] - LN[i]) r + 2^15 >> 16)`` with ``LN[i] = round(2^16
  ln(1 + i/256))`` (257 entries) and ``LN2 = round(2^16 ln 2)``.

  Error against the exact ``-log softmax`` of the dequantised logits (in Q16 units): STEP 0.5;
  LN entries 0.5; the interpolation's rounding 0.5 and curvature ``(1/256)^2 / 8`` nats = 0.125;
  ``(b - 24) |LN2 - 2^16 ln 2|`` <= 7 x 0.094 = 0.66; EXP entries ``n 2^-25`` nats = ``n / 512``;
  the shift of ``m`` ``2^-24`` nats = 0.004. Total ``<= 2.29 + n/512 < 2.8`` for n <= 255:
  :data:`ID_NLL_ERROR_Q16` = 3 (tested).

* **Group MADE** (``gaussian_nll_q8``): the model outputs the means ``mu`` (first ``n``
  values, in input units) and the log-scales times a gain ``c`` (the metadata's
  ``log_scale_gain``) of the ``n = 640`` inputs, one int8 tensor. With ``d = x - mu_rq`` (the
  means requantised to the input scale) and ``q`` the int8 log-scale output of the same input,
  in units of ``2^-8`` nats::

      E[q] = round(2^K 2^8 (s_in^2 / 2) exp(-2 l(q))),  L[q] = round(2^8 (l(q) - l(-128)))
      score = min(sum_i ((d_i^2 E[q_i] + 2^(K-1)) >> K) + sum_i L[q_i], 2^32 - 1)

  with ``l(q) = s_out (q - zp_out) / c`` and ``K`` (<= 24) the largest shift keeping ``E`` in
  uint32. In float: the Gaussian negative log-likelihood of the window in input units, summed
  over its values, less ``n l(-128)`` (keeps it non-negative) and ``n/2 log(2 pi)``. Its float
  threshold (metadata ``thresholds``) is in those units (the host detector's mean over
  standardised values, converted by :func:`made_threshold`).

Thresholds: float decision ``clip score > t``; integer ``clip score >= floor(t c) + 1`` with
``c`` the score units per float unit (``n / s_in^2`` for the squared errors, ``2^16`` for the
ID classifier), exact for integer means.
"""

from __future__ import annotations

import math

import numpy as np

from firmware_gen.fixed_point import mbqm_array, quantize_multiplier

#: The metadata's ``score`` of each deployable method.
SCORES = {
    "dense_ae": "reconstruction_sse",
    "dense_ae_small": "reconstruction_sse",
    "causal_conv": "prediction_sse",
    "id_classifier": "id_nll_q16",
    "group_made": "gaussian_nll_q8",
}
#: Fraction bits of the ID classifier's score (units of 2^-ID_Q nats) and of its exp table.
ID_Q, EXP_Q = 16, 24
#: Proven bound of |ID-classifier score - exact -log p(own)| in 2^-16 nats (module docstring).
ID_NLL_ERROR_Q16 = 3
#: ``round(2^16 ln(1 + i/256))``, i = 0..256, and ``round(2^16 ln 2)``.
LN_TABLE = np.array([round(2**ID_Q * math.log1p(i / 256)) for i in range(257)], np.int64)
LN2_Q16 = round(2**ID_Q * math.log(2))
#: The ID classifier's own class index when none is given: the C default
#: ``AED_ANOMALY_MACHINE_ID`` (a package's golden vectors use it).
DEFAULT_MACHINE_ID = 0
#: Most classes the uint32 sum of the exp table holds (``n 2^24 < 2^32``).
MAX_ID_CLASSES = 255


# --------------------------------------------------------------------------------------------
# Squared errors (dense autoencoders, causal predictor)
# --------------------------------------------------------------------------------------------
def requantize(y_q: np.ndarray, scales: tuple[float, int, float, int]) -> np.ndarray:
    """int8 outputs -> int8 at the input's scale: ``scales`` = (input scale, input zero point,
    output scale, output zero point); float32 scales as stored in the flatbuffer."""
    s_in, zp_in, s_out, zp_out = scales
    m, shift = quantize_multiplier(float(np.float64(s_out) / np.float64(s_in)))
    y = mbqm_array(np.asarray(y_q, np.int64) - zp_out, m, shift) + zp_in
    return np.clip(y, -128, 127)


def integer_window_scores(
    windows_q: np.ndarray, outputs_q: np.ndarray, scales: tuple[float, int, float, int]
) -> np.ndarray:
    """Integer anomaly score of each dense-AE window (int64 ``[N]``).

    Parameters
    ----------
    windows_q : np.ndarray
        int8 model inputs ``[N, frames, n_mels]``.
    outputs_q : np.ndarray
        int8 model outputs ``[N, frames * n_mels]`` (frame-major).
    scales : tuple
        (input scale, input zero point, output scale, output zero point).
    """
    x = np.asarray(windows_q, np.int64).reshape(len(windows_q), -1)
    y = requantize(outputs_q, scales).reshape(x.shape)
    return ((x - y) ** 2).sum(axis=1)


def predictor_window_scores(
    windows_q: np.ndarray, outputs_q: np.ndarray, scales: tuple[float, int, float, int]
) -> np.ndarray:
    """Integer next-frame prediction error of each window (int64 ``[N]``, module docstring).

    ``windows_q`` int8 ``[N, T, n_mels]``, ``outputs_q`` int8 ``[N, (T - k + 1) * n_mels]``
    (or ``[N, T - k + 1, n_mels]``); the context ``k`` follows from the two shapes.
    """
    n, t, f = np.shape(windows_q)
    y = np.asarray(outputs_q).reshape(n, -1, f)
    k = t - y.shape[1] + 1  # frames k..t-1 are predicted by output rows 0..t-k-1
    return integer_window_scores(np.asarray(windows_q)[:, k:], y[:, : t - k], scales)


def scales_of(meta_or_info) -> tuple[float, int, float, int]:
    """The (input scale, input zero point, output scale, output zero point) of a model's
    metadata or :class:`~quantize.convert.GraphInfo`."""
    m = meta_or_info
    return m.input_scale, m.input_zero_point, m.output_scale, m.output_zero_point


def threshold_q(threshold: float, n_in: int, input_scale: float) -> int:
    """A float mean-squared-error threshold in integer squared-error units (``n_in`` values
    compared per window)."""
    return math.floor(threshold * n_in / float(input_scale) ** 2) + 1


# --------------------------------------------------------------------------------------------
# ID classifier: -log p(own ID) from tables
# --------------------------------------------------------------------------------------------
def id_tables(output_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``(STEP, EXP)`` of the module docstring for logits of scale ``output_scale`` (int64
    ``[256]`` each, values < 2^32)."""
    d = np.arange(256, dtype=np.float64)
    s = float(np.float64(output_scale))
    step = np.array([round(v) for v in 2.0**ID_Q * s * d], np.int64)
    exp = np.array([round(v) for v in 2.0**EXP_Q * np.exp(-s * d)], np.int64)
    if step[-1] + 8 * LN2_Q16 >= 2**32:
        raise ValueError(f"logit scale {s!r} too large for a uint32 score (255 steps)")
    return step, exp


def ln_q16(s: np.ndarray) -> np.ndarray:
    """``ln(S / 2^24)`` in Q16 of uint32 sums ``S >= 2^24`` (module docstring), int64."""
    s = np.asarray(s, np.int64)
    if (s < 2**EXP_Q).any() or (s >= 2**32).any():
        raise ValueError("ln_q16: sums must lie in [2^24, 2^32)")
    b = np.frexp(s.astype(np.float64))[1].astype(np.int64) - 1  # floor(log2 S), exact
    m = np.right_shift(s, b - EXP_Q)
    f = m - 2**EXP_Q
    i, r = f >> 16, f & 0xFFFF
    lo, hi = LN_TABLE[i], LN_TABLE[i + 1]
    return (b - EXP_Q) * LN2_Q16 + lo + (((hi - lo) * r + 2**15) >> 16)


def id_window_scores(outputs_q: np.ndarray, own, output_scale: float) -> np.ndarray:
    """``-log p(own ID)`` in 2^-16 nats of each window (int64 ``[N]``).

    Parameters
    ----------
    outputs_q : np.ndarray
        int8 logits ``[N, n_classes]``.
    own : int or array of int
        The own machine ID's class index, one for all windows or one per window.
    output_scale : float
        The logits' scale (the zero point cancels).
    """
    q = np.asarray(outputs_q, np.int64).reshape(len(outputs_q), -1)
    n, c = q.shape
    if c > MAX_ID_CLASSES:
        raise ValueError(f"{c} classes: the integer score holds at most {MAX_ID_CLASSES}")
    own = np.broadcast_to(np.asarray(own, np.int64), (n,))
    if ((own < 0) | (own >= c)).any():
        raise ValueError(f"own ID index out of range 0..{c - 1}")
    step, exp = id_tables(output_scale)
    d = q.max(axis=1, keepdims=True) - q
    total = exp[d].sum(axis=1)
    return step[d[np.arange(n), own]] + ln_q16(total)


# --------------------------------------------------------------------------------------------
# Dispatch on the model's method
# --------------------------------------------------------------------------------------------
def window_scores(meta, windows_q: np.ndarray, outputs_q: np.ndarray, own=None) -> np.ndarray:
    """The integer window scores of an anomaly model (``meta``: its
    :class:`~quantize.metadata.ModelMetadata`); ``own``: the ID classifier's own machine-ID
    class index (an int or one per window; an index into ``meta.machine_ids``), by default
    :data:`DEFAULT_MACHINE_ID`, what a device built without ``AED_ANOMALY_MACHINE_ID`` uses."""
    method = meta.method
    if method in ("dense_ae", "dense_ae_small"):
        return integer_window_scores(windows_q, outputs_q, scales_of(meta))
    if method == "causal_conv":
        return predictor_window_scores(windows_q, outputs_q, scales_of(meta))
    if method == "id_classifier":
        return id_window_scores(
            outputs_q, DEFAULT_MACHINE_ID if own is None else own, meta.output_scale
        )
    if method == "group_made":
        return made_window_scores(windows_q, outputs_q, scales_of(meta), meta.log_scale_gain)
    raise ValueError(f"no integer score for anomaly method {method!r} (known: {list(SCORES)})")


def method_threshold_q(method: str, threshold: float, n_compared: int, input_scale: float) -> int:
    """A method's float threshold in its integer score units (module docstring): anomalous when
    the integer clip mean is >= it."""
    if method == "id_classifier":
        return math.floor(threshold * 2**ID_Q) + 1
    if method == "group_made":
        raise ValueError("group_made: use made_threshold_q (needs the log-scales' range)")
    return threshold_q(threshold, n_compared, input_scale)


def check_outputs(meta, output_shape: tuple[int, ...]) -> str | None:
    """What is wrong with an anomaly model's metadata for a graph with ``output_shape`` (None:
    nothing): one label (the decision), the method's score, and the output the score reads."""
    if len(meta.labels) != 1:
        return f"labels: {list(meta.labels)}, an anomaly model has one (its decision)"
    want = SCORES.get(meta.method)
    if want is None or meta.score != want:
        return f"method {meta.method!r} / score {meta.score!r}: no integer score known ({SCORES})"
    n_out, frames, n_mels = int(np.prod(output_shape)), meta.window_frames, meta.frontend.n_mels
    if meta.method == "id_classifier":
        if not 2 <= n_out <= MAX_ID_CLASSES or len(meta.machine_ids) > n_out:
            return (
                f"machine_ids {list(meta.machine_ids)}: the ID classifier has {n_out} logits "
                f"(2 .. {MAX_ID_CLASSES}, at least one per machine ID)"
            )
        if not meta.machine_ids:
            return "machine_ids: empty; the ID classifier's score needs the IDs in class order"
    elif meta.method == "group_made":
        if n_out != 2 * frames * n_mels or not meta.log_scale_gain > 0:
            return (
                f"score {meta.score!r}: {n_out} outputs, expected means and log-scales of the "
                f"{frames} x {n_mels} inputs ({2 * frames * n_mels}), log_scale_gain "
                f"{meta.log_scale_gain!r} (> 0)"
            )
    elif meta.method == "causal_conv":
        if n_out % n_mels or not 2 <= n_out // n_mels <= frames:
            return (
                f"score {meta.score!r}: {n_out} outputs are not 2..{frames} predicted frames "
                f"of frontend.n_mels {n_mels}"
            )
    elif n_out != frames * n_mels:
        return (
            f"score {meta.score!r} reconstructs the window: window_frames {frames} x "
            f"frontend.n_mels {n_mels} = {frames * n_mels} outputs, the model has {n_out}"
        )
    return None


def compared_values(meta, output_shape: tuple[int, ...]) -> int:
    """How many values a squared-error score sums (0 for the ID classifier)."""
    n_out = int(np.prod(output_shape))
    if meta.method == "id_classifier":
        return 0
    if meta.method == "causal_conv":
        return n_out - meta.frontend.n_mels  # rows - 1 predicted frames inside the window
    return n_out


def thresholds_q_of(meta, info) -> tuple[int, ...]:
    """``meta.thresholds`` in the method's integer score units for the graph ``info``
    (:class:`~quantize.convert.GraphInfo`)."""
    n = compared_values(meta, info.output_shape)
    if meta.method == "group_made":
        n_in = meta.window_frames * meta.frontend.n_mels
        return tuple(made_threshold_q(t, n_in, info, meta.log_scale_gain) for t in meta.thresholds)
    return tuple(method_threshold_q(meta.method, t, n, info.input_scale) for t in meta.thresholds)


def device_defines(meta, output_shape: tuple[int, ...]) -> dict[str, int | list[int]]:
    """The ``#define``s the C window score of ``meta.method`` needs besides the requantisation,
    zero points and threshold every anomaly model has (``aed_anomaly_methods.c``): the
    predictor's output rows; the ID classifier's class count, default own ID and tables."""
    n_out = int(np.prod(output_shape))
    if meta.method == "causal_conv":
        return {"AED_ANOMALY_PRED_ROWS": n_out // meta.frontend.n_mels}
    if meta.method == "id_classifier":
        step, exp = id_tables(meta.output_scale)
        return {
            "AED_ANOMALY_ID_N_CLASSES": n_out,
            "AED_ANOMALY_ID_STEP_Q16": step.tolist(),
            "AED_ANOMALY_ID_EXP_Q24": exp.tolist(),
            "AED_ANOMALY_LN_Q16": LN_TABLE.tolist(),
            "AED_ANOMALY_LN2_Q16": LN2_Q16,
        }
    if meta.method == "group_made":
        table_e, table_l, k = made_tables(
            meta.input_scale, meta.output_scale, meta.output_zero_point, meta.log_scale_gain
        )
        return {
            "AED_ANOMALY_MADE_E": table_e.tolist(),
            "AED_ANOMALY_MADE_L": table_l.tolist(),
            "AED_ANOMALY_MADE_SHIFT": k,
        }
    return {}


# --------------------------------------------------------------------------------------------
# Group MADE: Gaussian negative log-likelihood from tables
# --------------------------------------------------------------------------------------------
#: Fraction bits of Group MADE's score (units of 2^-MADE_Q nats).
MADE_Q = 8


def made_log_scales(output_scale: float, output_zero_point: int, gain: float) -> np.ndarray:
    """``l(q)`` for q = -128..127 (float64): the log-scale an int8 output value stands for."""
    q = np.arange(-128, 128, dtype=np.float64)
    return float(np.float64(output_scale)) * (q - output_zero_point) / float(gain)


def made_tables(
    input_scale: float, output_scale: float, output_zero_point: int, gain: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(E, L, K)`` of the module docstring (int64 ``[256]`` each, values < 2^32)."""
    ls = made_log_scales(output_scale, output_zero_point, gain)
    e = 2.0**MADE_Q * 0.5 * float(np.float64(input_scale)) ** 2 * np.exp(-2 * ls)
    k = 24
    while k > 0 and round(float(e.max()) * 2.0**k) >= 2**32:
        k -= 1
    if round(float(e.max()) * 2.0**k) >= 2**32:
        raise ValueError(f"log-scales down to {ls.min():.3g}: the NLL table overflows uint32")
    table_e = np.array([round(v) for v in e * 2.0**k], np.int64)
    table_l = np.array([round(v) for v in 2.0**MADE_Q * (ls - ls[0])], np.int64)
    return table_e, table_l, k


def made_window_scores(
    windows_q: np.ndarray, outputs_q: np.ndarray, scales: tuple[float, int, float, int], gain
) -> np.ndarray:
    """Group MADE's integer window scores (int64 ``[N]``, module docstring)."""
    x = np.asarray(windows_q, np.int64).reshape(len(windows_q), -1)
    n = x.shape[1]
    out = np.asarray(outputs_q, np.int64).reshape(len(x), 2 * n)
    table_e, table_l, k = made_tables(scales[0], scales[2], scales[3], gain)
    d = x - requantize(out[:, :n], scales)
    q = out[:, n:] + 128
    terms = (d * d * table_e[q] + (1 << k >> 1)) >> k
    return np.minimum(terms.sum(axis=1) + table_l[q].sum(axis=1), 2**32 - 1)


def made_threshold(host_threshold: float, n_in: int, log_scale_sum: float) -> float:
    """The host detector's threshold (mean over the standardised values of the Gaussian NLL,
    with ``1/2 log(2 pi)``) in the device's float units (the NLL summed over input values, in
    input units, without the constant): ``n (t - 1/2 log 2 pi) + sum log scale``."""
    return n_in * (host_threshold - 0.5 * math.log(2 * math.pi)) + log_scale_sum


def made_threshold_q(threshold: float, n_in: int, meta_or_info, gain: float) -> int:
    """A device-unit float threshold (:func:`made_threshold`) in integer score units:
    ``floor(2^8 (t - n l(-128))) + 1``."""
    ls_min = made_log_scales(meta_or_info.output_scale, meta_or_info.output_zero_point, gain)[0]
    return math.floor(2.0**MADE_Q * (threshold - n_in * ls_min)) + 1
