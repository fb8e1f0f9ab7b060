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
SOFTMAX_MAX_ROW = (1 << 15) - 1  # the row's sum of table entries stays below 2^31


def softmax_exp_lut(input_scale: float) -> np.ndarray:
    """lut[j] = round(2^16 * exp(-(255 - j) * s_in)): entry 255 - (x_max - x_i) of the row.

    Stored reversed so that the kernel reads `base[x_i]` with `base = lut + 255 - x_max`: one
    load with a register offset per element, no subtraction."""
    k = 255 - np.arange(256, dtype=np.float64)
    return np.round(np.exp(-k * float(input_scale)) * (1 << SOFTMAX_LUT_BITS)).astype(np.int32)


def softmax_params(output_scale: float) -> tuple[int, int]:
    """(multiplier, shift) of 1 / s_y, the softmax's per-row reciprocal numerator."""
    inverse = 1.0 / float(output_scale)
    if not 1.0 <= inverse < float(1 << 15):
        raise ValueError(f"softmax output scale {output_scale} is outside [2^-15, 1]; "
                         "quantize probabilities with a scale in that range (e.g. 1/256)")
    return quantize_multiplier(inverse)


def softmax_row_reciprocal(row_sum, multiplier: int, shift: int):
    """recip = floor(2^32 / (sum * s_y)), with 1 / s_y = multiplier * 2^(shift - 31)."""
    return (np.int64(multiplier) << np.int64(shift + 1)) // np.asarray(row_sum, dtype=np.int64)


# -- Scaled-LayerNorm (ops.py `layernorm`) ---------------------------------------------------------
LAYERNORM_MAX_CHANNELS = 4096  # keeps x_norm * 2^23 and C * recip inside int32
LAYERNORM_GAMMA_BITS = 17  # multiplier = gamma / s_y * 2^17 (x_norm is carried as x_norm * 2^7)
LAYERNORM_ACC_BITS = 8  # the accumulator keeps 8 fraction bits of the output code


def scaled_layernorm_params(gamma, beta, output_scale: float, output_zp: int):
    """Per-channel (multiplier, bias) lists of the integer layernorm, from float gamma and beta."""
    gamma = np.asarray(gamma, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    mult = np.round(gamma / output_scale * (1 << LAYERNORM_GAMMA_BITS))
    bias = (np.round((beta / output_scale + output_zp) * (1 << LAYERNORM_ACC_BITS))
            + (1 << (LAYERNORM_ACC_BITS - 1)))
    if np.any(np.abs(mult) > INT32_MAX) or np.any(np.abs(bias) > INT32_MAX):
        raise ValueError(f"gamma / s_y reaches {np.abs(gamma).max() / output_scale:.4g}; the integer "
                         "layernorm needs |gamma| / s_y < 2^14: use a coarser output scale")
    return [int(v) for v in mult], [int(v) for v in bias]


def scaled_layernorm_eps_q(epsilon: float, channels: int, input_scale: float) -> int:
    """epsilon in the units of D = C^2 * var (codes^2)."""
    return min(INT32_MAX, max(1, int(round(epsilon * channels * channels / (input_scale * input_scale)))))


def scaled_layernorm_row(total: int, sum_sq: int, channels: int, eps_q: int) -> tuple[int, int]:
    """(A, Bx) of one row: x_norm * 2^23 = x * A + Bx (see ops.py `layernorm`)."""
    c = int(channels)
    d = max(c * int(sum_sq) - int(total) * int(total) + int(eps_q), ((c * c) >> 15) + 1)
    h = (d.bit_length() - 31) >> 1
    normed = d >> (2 * h) if h >= 0 else d << (-2 * h)
    recip = 0xFFFFFFFF // math.isqrt(normed)
    sh = 9 + h
    a = (c * recip + (1 << (sh - 1))) >> sh if sh > 0 else (c * recip) << -sh
    mean = int(total) * (((1 << 23) + c // 2) // c)
    return a, (1 << 15) - ((mean * a) >> 23)


def smlawt(a, b, acc):
    """ARM SMLAWT: ((a * top_half(b)) >> 16) + acc, a and acc int32, b int32 (arrays broadcast)."""
    top = np.asarray(b, dtype=np.int64) >> 16
    return ((np.asarray(a, dtype=np.int64) * top) >> 16) + np.asarray(acc, dtype=np.int64)


def wrap_int32(x):
    """x modulo 2^32 as a signed int32 (what 32-bit two's complement arithmetic gives)."""
    return _wrap_int32(x)
