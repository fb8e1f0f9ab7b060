/* Helpers private to the runtime's .c files: strided walks and the int8 dot products.
 *
 * The dot products are the seam for the Cortex-M7 DSP path: an __ARM_FEATURE_DSP version
 * (__sxtb16 + __smlad, two MACs per instruction) replaces their bodies without touching callers. */
#ifndef TFC_INTERNAL_H
#define TFC_INTERNAL_H

#include <string.h>

#include "tfc_runtime.h"

/* The Cortex-M7 DSP extension (SXTB16, SMLAD: two 16x16 MACs per instruction). -DTFC_NO_DSP
 * builds the portable C versions of the same primitives on the M7 too, for comparison. The packed
 * int16 pairs below assume a little-endian target (the M7 and every host tfc tests on). */
#if defined(__ARM_FEATURE_DSP) && !defined(TFC_NO_DSP)
#define TFC_USE_DSP 1
#include <arm_acle.h>
#endif

/* A row-major counter over `rank` dims that keeps two strided offsets in step with it. */
typedef struct {
    int32_t idx[TFC_MAX_RANK];
    int32_t off_a, off_b;
} tfc_walker;

static inline void tfc_walker_start(tfc_walker *it)
{
    for (int32_t d = 0; d < TFC_MAX_RANK; ++d) {
        it->idx[d] = 0;
    }
    it->off_a = 0;
    it->off_b = 0;
}

/* Advances to the next index; b_strides may be NULL when only one offset is tracked. */
static inline void tfc_walker_next(tfc_walker *it, int32_t rank, const int32_t *dims,
                                   const int32_t *a_strides, const int32_t *b_strides)
{
    for (int32_t d = rank - 1; d >= 0; --d) {
        it->idx[d] += 1;
        it->off_a += a_strides[d];
        it->off_b += b_strides ? b_strides[d] : 0;
        if (it->idx[d] < dims[d]) {
            return;
        }
        it->off_a -= a_strides[d] * dims[d];
        it->off_b -= b_strides ? b_strides[d] * dims[d] : 0;
        it->idx[d] = 0;
    }
}

static inline int32_t tfc_product(int32_t rank, const int32_t *dims)
{
    int32_t n = 1;
    for (int32_t d = 0; d < rank; ++d) {
        n *= dims[d];
    }
    return n;
}

/* Element offset of the `index`-th position of a row-major walk over `dims`, along `strides`
 * (for walks that are too short to be worth a tfc_walker, e.g. a matmul's batch). */
static inline int32_t tfc_walk_offset(int32_t index, int32_t rank, const int32_t *dims,
                                      const int32_t *strides)
{
    int32_t offset = 0;
    for (int32_t d = rank - 1; d >= 0; --d) {
        offset += (index % dims[d]) * strides[d];
        index /= dims[d];
    }
    return offset;
}

/* sum (x[i] + x_offset) * w[i] over contiguous int8 vectors. */
static inline int32_t tfc_dot_s8(const int8_t *x, const int8_t *w, int32_t len, int32_t x_offset)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < len; ++i) {
        acc += ((int32_t)x[i] + x_offset) * (int32_t)w[i];
    }
    return acc;
}

/* sum (a[i] + a_offset) * (b[i * b_stride] + b_offset): a row of a against a column of b. */
static inline int32_t tfc_dot_strided_s8(const int8_t *a, int32_t a_offset, const int8_t *b,
                                         int32_t b_stride, int32_t b_offset, int32_t len)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < len; ++i) {
        acc += ((int32_t)a[i] + a_offset) * ((int32_t)b[i * b_stride] + b_offset);
    }
    return acc;
}

/* ---- SIMD primitives of the dense int8 kernels (tfc_gemm_s8.c) ----------------------------- */

/* Four int8 as one word; memcpy keeps it alignment-safe (gcc emits a single LDR on the M7). */
static inline uint32_t tfc_load4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Bytes 0 and 2 of x sign-extended into the two int16 halves of a word (SXTB16). */
static inline uint32_t tfc_sxtb16(uint32_t x)
{
#if defined(TFC_USE_DSP)
    return __sxtb16(x);
#else
    return (uint32_t)(uint16_t)(int16_t)(int8_t)x | ((uint32_t)(uint16_t)(int16_t)(int8_t)(x >> 16) << 16);
#endif
}

/* Bytes 1 and 3 of x sign-extended (SXTB16 with ROR #8; gcc 12's arm_acle.h has no __ror). */
static inline uint32_t tfc_sxtb16_ror8(uint32_t x)
{
#if defined(TFC_USE_DSP)
    uint32_t out;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(out) : "r"(x));
    return out;
#else
    return tfc_sxtb16(x >> 8);
#endif
}

/* acc + lo(a) * lo(b) + hi(a) * hi(b) over int16 halves, wrapping like SMLAD. */
static inline int32_t tfc_smlad(uint32_t a, uint32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    return __smlad(a, b, acc);
#else
    int32_t lo = (int32_t)(int16_t)a * (int32_t)(int16_t)b;
    int32_t hi = (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
#endif
}

/* acc + lo(a) * lo(b) (SMLABB) and acc + hi(a) * hi(b) (SMLATT). */
static inline int32_t tfc_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    return __smlabb(a, b, acc);
#else
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)a * (int32_t)(int16_t)b));
#endif
}

static inline int32_t tfc_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    return __smlatt(a, b, acc);
#else
    return tfc_smlabb(a >> 16, b >> 16, acc);
#endif
}

/* acc + hi(a) * lo(b) (SMLATB). */
static inline int32_t tfc_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    return __smlatb(a, b, acc);
#else
    return tfc_smlabb(a >> 16, b, acc);
#endif
}

/* Both int16 halves of x plus those of y, wrapping (SADD16). */
static inline uint32_t tfc_sadd16(uint32_t x, uint32_t y)
{
#if defined(TFC_USE_DSP)
    return __sadd16(x, y);
#else
    return ((x + y) & 0xFFFFu) | ((((x >> 16) + (y >> 16)) & 0xFFFFu) << 16);
#endif
}

/* acc's int16 halves plus bytes 0 and 2 of x sign-extended, wrapping (SXTAB16). */
static inline uint32_t tfc_sxtab16(uint32_t acc, uint32_t x)
{
#if defined(TFC_USE_DSP)
    return __sxtab16(acc, x);
#else
    return tfc_sadd16(acc, tfc_sxtb16(x));
#endif
}

/* acc's int16 halves plus bytes 1 and 3 of x sign-extended, wrapping (SXTAB16 with ROR #8). */
static inline uint32_t tfc_sxtab16_ror8(uint32_t acc, uint32_t x)
{
#if defined(TFC_USE_DSP)
    uint32_t out;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(out) : "r"(acc), "r"(x));
    return out;
#else
    return tfc_sadd16(acc, tfc_sxtb16_ror8(x));
#endif
}

/* Two consecutive words, advancing the pointer past them: one LDRD with post-increment on the
 * M7 (gcc splits these into LDRs plus pointer adds). The words must be 4-byte aligned. */
static inline void tfc_load_pair(const uint32_t **p, uint32_t *lo, uint32_t *hi)
{
#if defined(TFC_USE_DSP)
    __asm__("ldrd %0, %1, [%2], #8" : "=&r"(*lo), "=&r"(*hi), "+r"(*p) : "m"(**p), "m"((*p)[1]));
#else
    *lo = (*p)[0];
    *hi = (*p)[1];
    *p += 2;
#endif
}

/* x saturated to int8 (SSAT #8). */
static inline int32_t tfc_ssat8(int32_t x)
{
#if defined(TFC_USE_DSP)
    return __ssat(x, 8);
#else
    return tfc_clamp_i32(x, -128, 127);
#endif
}

/* acc + the high word of a * b (SMMLA). */
static inline int32_t tfc_smmla(int32_t a, int32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    int32_t out;
    __asm__("smmla %0, %1, %2, %3" : "=r"(out) : "r"(a), "r"(b), "r"(acc));
    return out;
#else
    return (int32_t)((uint32_t)acc + (uint32_t)(int32_t)(((int64_t)a * b) >> 32));
#endif
}

/* MBQM(x, multiplier, shift) + output_zp from the product's high word, in two instructions (SMMLA,
 * ASR): with k = -1 - shift >= 1 and rounding = 2^(k-1) + output_zp * 2^k this is the identity
 * of tfc_fixedpoint.h, adding output_zp * 2^k before the shift adding output_zp after it. The
 * compiler derives rounding and k (quant_math.high_word_rounding) and checks that the sum stays
 * in int32. With multiplier 0 and k 0 it yields `rounding` itself (a constant output). */
static inline int32_t tfc_requantize_high(int32_t x, int32_t multiplier, int32_t rounding,
                                          int32_t k)
{
    return tfc_smmla(x, multiplier, rounding) >> k;
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
static inline float tfc_clamp_f32(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}
#endif /* TFC_INT8_ONLY */

#endif /* TFC_INTERNAL_H */
