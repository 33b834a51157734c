"""TFLite integer arithmetic in Python: twins of the C engine's helpers, used to precompute its
constants (requantisation multipliers, the LOGISTIC table, activation ranges) bit for bit."""

from __future__ import annotations

import math

import numpy as np

from quantize.tflite_model import Tensor

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _wrap32(x: int) -> int:
    return ((x + 2**31) % 2**32) - 2**31


def _round_away(x: float) -> int:
    """std::round: halves away from zero (exact for the float32/double values used here)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``m ~= q / 2^31 * 2^shift`` with q in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = _round_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def srdhm(a: int, b: int) -> int:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    v = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    q = abs(v) >> 31
    return _wrap32(q if v >= 0 else -q)


def rdpot(x: int, e: int) -> int:
    """gemmlowp ``RoundingDivideByPOT`` on int32."""
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if (x & mask) > threshold else 0)


def mbqm(x: int, m: int, shift: int) -> int:
    """TFLite ``MultiplyByQuantizedMultiplier`` (int32, double rounding)."""
    return rdpot(srdhm(_wrap32(x << max(shift, 0)), m), max(-shift, 0))


def mbqm_array(x: np.ndarray, m: int, shift: int) -> np.ndarray:
    """:func:`mbqm` over an array of int32 values (computed in int64; no saturation needed for
    the small products it is used on: ``|x| << shift`` stays far from 2^31)."""
    x = np.asarray(x, dtype=np.int64) * (1 << max(shift, 0))
    ab = x * m
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C division truncates
    e = max(-shift, 0)
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> e) + ((high & mask) > threshold)


def _sat_shl(x: int, e: int) -> int:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT`` with a positive exponent."""
    threshold = (1 << (31 - e)) - 1
    return INT32_MAX if x > threshold else INT32_MIN if x < -threshold else x << e


def _exp_quarter(a: int) -> int:
    """gemmlowp ``exp_on_interval_between_negative_one_quarter_and_0_excl`` (Q0.31)."""
    constant_term, one_third = 1895147668, 715827883
    x = _wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdpot(_wrap32(srdhm(_wrap32(rdpot(x4, 2) + x3), one_third) + x2), 1)
    return _wrap32(constant_term + srdhm(constant_term, _wrap32(x + poly)))


def _exp_negative_q4(a: int) -> int:
    """gemmlowp ``exp_on_negative_values`` for a Q4.27 input; returns Q0.31."""
    frac = 27
    quarter = 1 << (frac - 2)
    a_mod = _wrap32((a & (quarter - 1)) - quarter)
    result = _exp_quarter(_sat_shl(a_mod, 4))
    remainder = _wrap32(a_mod - a)
    barrel = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308)]
    barrel += [(2, 39332535), (3, 720401)]  # exponent 4 is skipped for 4 integer bits
    for exponent, multiplier in barrel:
        if remainder & (1 << (frac + exponent)):
            result = srdhm(result, multiplier)
    return INT32_MAX if a == 0 else result


def _one_over_one_plus_x(a: int) -> int:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1`` (Q0.31 in and out)."""
    s = a + INT32_MAX
    half_denominator = _wrap32(int((s + (1 if s >= 0 else -1)) / 2))
    x = _wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - srdhm(half_denominator, x))
        x = _wrap32(x + _sat_shl(srdhm(x, one_minus), 2))
    return _sat_shl(x, 1)


def _logistic_q4(a: int) -> int:
    """gemmlowp ``logistic`` of a Q4.27 value; returns Q0.31."""
    if a == 0:
        return 1 << 30
    positive = _one_over_one_plus_x(_exp_negative_q4(_wrap32(-abs(a))))
    return positive if a > 0 else _wrap32(INT32_MAX - positive)


def logistic_table(input_scale: float, input_zero_point: int) -> np.ndarray:
    """int8 LOGISTIC output for every int8 input (index ``q + 128``), as TFLM computes it."""
    q, left_shift = math.frexp(input_scale * float(1 << 27))
    multiplier = _wrap32(_round_away(q * (1 << 31)))
    radius = math.floor(15.0 * (1 << 27) / 2.0**left_shift)
    table = np.empty(256, dtype=np.int8)
    for i, value in enumerate(range(-128, 128)):
        x = value - input_zero_point
        if x <= -radius:
            table[i] = -128
        elif x >= radius:
            table[i] = 127
        else:
            y = rdpot(_logistic_q4(mbqm(x, multiplier, left_shift)), 23) - 128
            table[i] = min(max(y, -128), 127)
    return table


def _quantize_f32(scale: float, zero_point: int, value: float) -> int:
    """TFLM ``Quantize`` (float32 division, std::round) used for activation ranges."""
    return zero_point + _round_away(float(np.float32(value) / np.float32(scale)))


def activation_range(act: int, t: Tensor) -> tuple[int, int]:
    """TFLM ``CalculateActivationRangeQuantized`` for an int8 output tensor."""
    lo, hi = -128, 127
    if act in (1, 3):  # RELU, RELU6
        lo = max(lo, _quantize_f32(t.scale, t.zero_point, 0.0))
    if act == 3:
        hi = min(hi, _quantize_f32(t.scale, t.zero_point, 6.0))
    return lo, hi
