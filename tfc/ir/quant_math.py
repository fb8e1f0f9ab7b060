"""Exact integer arithmetic of the INT8 path (TFLite / CMSIS-NN conventions).

These functions *define* the semantics: the interpreter calls them, the C kernels implement the
same operations bit for bit, and the quantizer uses `quantize_multiplier` to produce the
(multiplier, shift) pairs that ops carry as attributes.

A real scale M is carried as an int32 `multiplier` in [2^30, 2^31) (negative for M < 0) and a
`shift`, with M == multiplier * 2^(shift - 31). Positive shifts are left shifts (TFLite sign).
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier, shift) with real == multiplier * 2^(shift-31); 0.0 gives (0, 0)."""
    if real == 0.0:
        return 0, 0
    mant, exp = math.frexp(abs(real))  # abs(real) = mant * 2^exp, mant in [0.5, 1)
    q = int(round(mant * (1 << 31)))
    if q == (1 << 31):
        q //= 2
        exp += 1
    if exp < -31:  # too small to represent: it rounds to zero
        return 0, 0
    if exp > 30:
        raise ValueError(f"scale {real} is too large for a 32-bit fixed-point multiplier")
    return (q if real > 0 else -q), exp


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp SRDHM: round(a * b / 2^31) with ties rounded up (-1.5 -> -1); int32 in and out."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # C's int64 division truncates toward zero.
    res = np.where(num >= 0, num >> 31, -((-num) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, res).astype(np.int64)


def rounding_divide_by_pot(x, exponent):
    """x / 2^exponent, rounded half away from zero (gemmlowp RoundingDivideByPOT)."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """x * multiplier * 2^(shift-31), rounded; the requantization step of every INT8 op.

    `x` is int32; `multiplier` and `shift` broadcast against it (per-channel lists work when
    their axis is last). The left shift is done in 32 bits, so quantizers keep x << shift within
    int32 (it always is for the scales tfc produces).
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap_int32(x << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def rounding_divide(num, den):
    """num / den rounded half away from zero (integer division, den > 0)."""
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    half = den // 2
    pos = (num + half) // den
    neg = -((-num + half) // den)
    return np.where(num >= 0, pos, neg)


def isqrt64(x):
    """floor(sqrt(x)) for non-negative int64 values."""
    x = np.asarray(x, dtype=np.int64)
    out = np.zeros_like(x)
    flat_in, flat_out = x.reshape(-1), out.reshape(-1)
    for i, v in enumerate(flat_in):
        flat_out[i] = math.isqrt(int(v))
    return out


def clamp(x, lo: int, hi: int):
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def quantize_float(x, scale, zero_point, dtype=np.int8):
    """ONNX QuantizeLinear: round half to even, saturate to the dtype's range."""
    info = np.iinfo(dtype)
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_int(q, scale, zero_point):
    """ONNX DequantizeLinear, in float32."""
    return ((np.asarray(q, dtype=np.int32) - np.int32(zero_point)).astype(np.float32)
            * np.float32(scale))


def _wrap_int32(x):
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


# Averages are divided at 2^8 times the input's resolution, so that the one rounding that matters
# is the final requantization (an output scale finer than the input's then gains precision).
MEAN_EXTRA_BITS = 8

SOFTMAX_LUT_BITS = 16
SOFTMAX_INV_BITS = 46


def softmax_exp_lut(input_scale: float) -> np.ndarray:
    """The 256-entry table lut[k] = round(2^16 * exp(-k * s_in)), k = x_max - x_i."""
    k = np.arange(256, dtype=np.float64)
    return np.round(np.exp(-k * float(input_scale)) * (1 << SOFTMAX_LUT_BITS)).astype(np.int32)
