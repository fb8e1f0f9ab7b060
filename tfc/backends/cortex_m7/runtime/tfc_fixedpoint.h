/* Exact integer arithmetic of the INT8 path, shared by every kernel.
 *
 * These mirror tfc/ir/quant_math.py bit for bit: a real scale is an int32 multiplier in
 * [2^30, 2^31) and a shift (positive = left), as in TFLite, and requantization rounds the exact
 * product once (half up), which is cheaper on the M7 than gemmlowp's two roundings.
 * Everything is static inline so the hot loops see through it; no floats, no libm. */
#ifndef TFC_FIXEDPOINT_H
#define TFC_FIXEDPOINT_H

#include <stdint.h>

static inline int32_t tfc_clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline int64_t tfc_clamp_i64(int64_t x, int64_t lo, int64_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* MBQM: x * multiplier * 2^(shift - 31) rounded half up in one step, i.e. with t = 31 - shift,
 * floor((x * multiplier + 2^(t-1)) / 2^t) of the exact 64-bit product, saturated to int32
 * (quant_math.multiply_by_quantized_multiplier; shift in [-31, 30]).
 * For shift <= -2 (t >= 33) only the product's high word h matters:
 * floor((h * 2^32 + l + 2^(t-1)) / 2^t) = floor((h + 2^(t-33)) / 2^(t-32)) because the low word
 * l < 2^32 cannot carry across a multiple of 2^t; |h| <= 2^30, so nothing overflows. That is
 * SMMUL, ADD, ASR on the M7, and the case of every conv/linear/matmul output scale in practice. */
static inline int32_t tfc_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int64_t product = (int64_t)x * multiplier;
    if (shift <= -2) {
        const int32_t k = -1 - shift;
        return ((int32_t)(product >> 32) + (1 << (k - 1))) >> k;
    }
    const int32_t t = 31 - shift;
    return (int32_t)tfc_clamp_i64((product + ((int64_t)1 << (t - 1))) >> t, INT32_MIN, INT32_MAX);
}

/* Wraps an int64 intermediate to int32 the way the reference's 32-bit shift does; callers use it
 * where the spec computes a sum in wide integers and then requantizes it. */
static inline int32_t tfc_wrap_i32(int64_t x)
{
    return (int32_t)(uint32_t)(uint64_t)x;
}

/* Means divide the sum at 2^8 times the input resolution, so the only rounding that matters is
 * the final requantization (quant_math.MEAN_EXTRA_BITS; the multiplier absorbs the 2^-8). */
#define TFC_MEAN_EXTRA_BITS 8

/* num / den rounded half away from zero, den > 0. */
static inline int64_t tfc_rounding_divide(int64_t num, int64_t den)
{
    int64_t half = den / 2;
    return num >= 0 ? (num + half) / den : -((-num + half) / den);
}

/* floor(sqrt(x)) for x >= 0, digit by digit (no floats). */
static inline int64_t tfc_isqrt64(int64_t x)
{
    uint64_t rem = (uint64_t)x;
    uint64_t root = 0;
    uint64_t bit = (uint64_t)1 << 62;
    while (bit > rem) {
        bit >>= 2;
    }
    while (bit != 0) {
        if (rem >= root + bit) {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return (int64_t)root;
}

/* rounding_divide(sum * 2^8, count): the fine-resolution mean of the int8 averaging kernels. */
static inline int32_t tfc_mean_fine(int32_t sum, int32_t count)
{
    return (int32_t)tfc_rounding_divide((int64_t)sum * ((int64_t)1 << TFC_MEAN_EXTRA_BITS), count);
}

static inline int8_t tfc_sat_i8(int32_t x)
{
    return (int8_t)tfc_clamp_i32(x, -128, 127);
}

#endif /* TFC_FIXEDPOINT_H */
