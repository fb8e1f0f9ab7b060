/* Exact integer arithmetic of the INT8 path, shared by every kernel.
 *
 * These mirror tfc/ir/quant_math.py bit for bit (gemmlowp / TFLite conventions): a real scale is
 * an int32 multiplier in [2^30, 2^31) and a shift (positive = left), and requantization is a
 * saturating rounding doubling high multiply followed by a rounding divide by a power of two.
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

/* round(a * b / 2^31), ties away from zero; the one overflowing input pair saturates. */
static inline int32_t tfc_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* C's division truncates toward zero, which is what the reference specifies. */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded half away from zero (gemmlowp RoundingDivideByPOT). */
static inline int32_t tfc_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    if (exponent > 62) {
        exponent = 62; /* every shift past 31 already gives the same result for an int32 */
    }
    int64_t wide = x;
    int64_t mask = ((int64_t)1 << exponent) - 1;
    int64_t remainder = wide & mask;
    int64_t threshold = (mask >> 1) + (wide < 0 ? 1 : 0);
    return (int32_t)((wide >> exponent) + (remainder > threshold ? 1 : 0));
}

/* MBQM: x * multiplier * 2^(shift - 31), rounded. The left shift wraps in 32 bits like the
 * reference (quantizers keep it in range). */
static inline int32_t tfc_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    int32_t left = shift > 0 ? shift : 0;
    int32_t right = shift > 0 ? 0 : -shift;
    /* Shift as unsigned: a signed left shift of a negative value is undefined in C. */
    int32_t shifted = left >= 32 ? 0 : (int32_t)((uint32_t)x << left);
    return tfc_rounding_divide_by_pot(tfc_srdhm(shifted, multiplier), right);
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
