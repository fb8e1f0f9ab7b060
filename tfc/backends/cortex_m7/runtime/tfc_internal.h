/* Helpers private to the runtime's .c files: strided walks and the int8 dot products.
 *
 * The dot products are the seam for the Cortex-M7 DSP path: an __ARM_FEATURE_DSP version
 * (__sxtb16 + __smlad, two MACs per instruction) replaces their bodies without touching callers. */
#ifndef TFC_INTERNAL_H
#define TFC_INTERNAL_H

#include "tfc_runtime.h"

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

static inline float tfc_clamp_f32(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

#endif /* TFC_INTERNAL_H */
