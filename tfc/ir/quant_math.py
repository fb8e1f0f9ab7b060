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


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """x * multiplier * 2^(shift-31), rounded half up in one step; the requantization of every
    INT8 op (MBQM).

    With t = 31 - shift (shift in [-31, 30], as quantize_multiplier makes it), the result is
    floor((x * multiplier + 2^(t-1)) / 2^t) from the exact 64-bit product, saturated to int32.
    One rounding, not gemmlowp's two (a rounding doubling high multiply, then a rounding shift):
    it is at least as accurate, and for shift <= -2 (real multipliers below 1/4, i.e. every
    conv/linear/matmul output scale in practice) the Cortex-M7 computes it from the product's high
    word in three instructions (SMMUL, ADD, ASR; tfc_fixedpoint.h). `x` is int32 (wider values
    wrap); `multiplier` and `shift` broadcast against it (per-channel lists along the last axis).
    """
    x = _wrap_int32(np.asarray(x, dtype=np.int64))
    multiplier = np.asarray(multiplier, dtype=np.int64)
    t = 31 - np.asarray(shift, dtype=np.int64)
    rounded = (x * multiplier + np.left_shift(np.int64(1), t - 1)) >> t
    return np.clip(rounded, INT32_MIN, INT32_MAX)


HIGH_WORD_MAX_K = 21  # keeps |high word| + |round| below 2^31 (2^30 + 2^(k-1) + 128 * 2^k)


def high_word_rounding(shift, output_zp: int):
    """(round, k) of the high-word requantization, elementwise over `shift`: k = -1 - shift and
    round = 2^(k-1) + output_zp * 2^k. For shift <= -2 (k >= 1), MBQM(x) + output_zp ==
    (h + round) >> k with h = (x * multiplier) >> 32 (the identity in tfc_fixedpoint.h; adding a
    multiple of 2^k inside the floor adds output_zp exactly), which is SMMLA and ASR on the M7
    (tfc_requantize_high). Callers check k >= 1 and that h + round stays in int32."""
    k = -1 - np.asarray(shift, dtype=np.int64)
    rounding = np.left_shift(np.int64(1), np.maximum(k, 1) - 1) + int(output_zp) * np.left_shift(
        np.int64(1), np.maximum(k, 0))
    return rounding, k


def high_word_requant(multiplier, shift, output_zp: int) -> np.ndarray | None:
    """int32[channels, 3] of (multiplier, round, k) for the dense kernels' per-channel table, or
    None when a channel cannot take it: k outside [1, HIGH_WORD_MAX_K], the bound that keeps
    |h| + |round| below 2^31 for any int32 accumulator."""
    multiplier = np.atleast_1d(np.asarray(multiplier, dtype=np.int64))
    rounding, k = high_word_rounding(np.atleast_1d(shift), output_zp)
    if (k < 1).any() or (k > HIGH_WORD_MAX_K).any():
        return None
    multiplier, rounding, k = np.broadcast_arrays(multiplier, rounding, k)
    return np.stack([multiplier, rounding, k], axis=-1).astype(np.int32)


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


# Integer add/sub (ops.py `add`): each operand's scale ratio s_in / s_y becomes one multiplier of
# fewer than ADD_MULTIPLIER_BITS bits over a common power of two 2^shift, shift <= ADD_MAX_SHIFT.
# With int8 operands and zero points every intermediate, zero points and rounding folded in,
# stays inside int32: 2 * 255 * 2^21 + 128 * 2^21 + 2^20 < 2^31.
ADD_MULTIPLIER_BITS = 21
ADD_MAX_SHIFT = 21


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def add_multipliers(a_ratio: float, b_ratio: float) -> tuple[int, int, int]:
    """(a_multiplier, b_multiplier, shift) with ratio ~= multiplier / 2^shift, for the largest
    shift <= ADD_MAX_SHIFT that keeps both multipliers below 2^ADD_MULTIPLIER_BITS."""
    largest = max(abs(float(a_ratio)), abs(float(b_ratio)))
    limit = 1 << ADD_MULTIPLIER_BITS
    shift = ADD_MAX_SHIFT
    while shift > 1 and round_half_up(largest * (1 << shift)) >= limit:
        shift -= 1
    if round_half_up(largest * (1 << shift)) >= limit:
        raise ValueError(f"add input/output scale ratio {largest:.4g} is too large for the integer "
                         f"add (at most 2^{ADD_MULTIPLIER_BITS - 2}); use a coarser output scale")
    return round_half_up(a_ratio * (1 << shift)), round_half_up(b_ratio * (1 << shift)), shift


def add_int(a, b, a_zp: int, b_zp: int, a_multiplier: int, b_multiplier: int, shift: int,
            sign: int = 1):
    """The integer add/sub before its output zero point and clamp: round((a' +- b') / 2^shift)
    with a' = (a - a_zp) * a_multiplier, b' likewise; halves round up (floor of x + 1/2)."""
    lhs = (np.asarray(a, dtype=np.int64) - a_zp) * a_multiplier
    rhs = (np.asarray(b, dtype=np.int64) - b_zp) * b_multiplier
    return (lhs + sign * rhs + (1 << (shift - 1))) >> shift


def requantize_table(input_zp: int, output_zp: int, multiplier: int, shift: int, act_min: int,
                     act_max: int) -> np.ndarray:
    """int8[256]: the requantize op's output for every input code, indexed by the code's byte
    (entry x & 0xFF), so a kernel computes the op with one table load per element."""
    codes = np.arange(256, dtype=np.int64).astype(np.uint8).astype(np.int8).astype(np.int64)
    out = multiply_by_quantized_multiplier(codes - input_zp, multiplier, shift) + output_zp
    return clamp(out, act_min, act_max).astype(np.int8)


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
LAYERNORM_MAX_CHANNELS = 4096  # keeps the row statistics' D below 2^39 and T * (2^23 / C) in int32
LAYERNORM_EPS_Q_MAX = 1 << 30  # a larger epsilon (in D units) would swamp any row's variance anyway


def scaled_layernorm_xn_bits(channels: int) -> int:
    """s: x_norm is carried as the int16 x_norm * 2^s, s as large as the row length allows.

    No element of a row is further than sqrt(C - 1) standard deviations from its mean, so
    2^s * C / sqrt(C - 1) <= 2^14 keeps |x_norm * 2^s| below 2^14 and the row scale A below
    2^30 (half the int16 and int32 ranges: rounding never reaches them)."""
    c = int(channels)
    s = 14
    while c > 1 and (c * c) << (2 * s) > (c - 1) << 28:
        s -= 1
    return s


def scaled_layernorm_params(gamma, beta, output_scale: float, output_zp: int):
    """Per-channel (multiplier, bias) lists of the integer layernorm, from float gamma and beta:
    multiplier = gamma / s_y * 2^(32 - s) and bias = (beta / s_y + zp) * 2^16 + 2^15."""
    gamma = np.asarray(gamma, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    s = scaled_layernorm_xn_bits(gamma.size)
    mult = np.round(gamma / output_scale * 2.0 ** (32 - s))
    bias = np.round((beta / output_scale + output_zp) * 65536.0) + 32768
    if np.any(np.abs(mult) > INT32_MAX):
        raise ValueError(f"gamma / s_y reaches {np.abs(gamma).max() / output_scale:.4g}; the "
                         f"integer layernorm over {gamma.size} channels needs |gamma| / s_y < "
                         f"{2 ** (s - 1)}: use a coarser output scale")
    if np.any(np.abs(bias) >= 1 << 30):
        raise ValueError(f"beta / s_y reaches {np.abs(beta).max() / output_scale:.4g}; the integer "
                         "layernorm needs |beta / s_y + zp| < 2^14: use a coarser output scale")
    return [int(v) for v in mult], [int(v) for v in bias]


def scaled_layernorm_eps_q(epsilon: float, channels: int, input_scale: float) -> int:
    """epsilon in the units of D = C^2 * var (codes^2)."""
    eps_q = int(round(epsilon * channels * channels / (input_scale * input_scale)))
    return min(LAYERNORM_EPS_Q_MAX, max(1, eps_q))


def scaled_layernorm_row(total: int, sum_sq: int, channels: int, eps_q: int) -> tuple[int, int]:
    """(A, B) of one row: x_norm * 2^s = B + ((x * A) >> 16) (see ops.py `layernorm`)."""
    c, t = int(channels), int(total)
    s = scaled_layernorm_xn_bits(c)
    d = max(c * int(sum_sq) - t * t + int(eps_q), c)
    z = (32 - d.bit_length()) & ~1  # an even shift normalises D into [2^30, 2^32)
    dn = d << z if z >= 0 else d >> -z
    r = 23173 + (dn >> 17) + (dn >> 18)  # a line above sqrt on [2^30, 2^32): two Newton steps
    r = (r + dn // r) >> 1
    r = (r + dn // r) >> 1
    kc = 31 - c.bit_length()
    q = (c << kc) // r
    e = 16 + s - kc + (z >> 1)
    a = q << e if e >= 0 else (q + (1 << (-e - 1))) >> -e
    mean = t * (((1 << 23) + c // 2) // c)  # mean * 2^23
    return a, (64 - ((a * mean) >> 32)) >> 7


def smlawb(a, b, acc):
    """ARM SMLAWB: acc + ((a * int16(b)) >> 16), a and acc int32 (arrays broadcast, no wrap)."""
    low = wrap_int16(b)
    return ((np.asarray(a, dtype=np.int64) * low) >> 16) + np.asarray(acc, dtype=np.int64)


def wrap_int16(x):
    """x modulo 2^16 as a signed int16 (the low half of a register, as SMLAxB reads it)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def wrap_int32(x):
    """x modulo 2^32 as a signed int32 (what 32-bit two's complement arithmetic gives)."""
    return _wrap_int32(x)
