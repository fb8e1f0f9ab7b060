/* Elementwise ops: broadcasting binary arithmetic, clamps, and the int8 <-> float conversions. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

/* The walk all binary kernels share: a contiguous inner loop over the last dim, a strided
 * counter over the others. OP(a_value, b_value) yields the output element. */
#define TFC_BROADCAST_LOOP(A, B, Y, S, OP)                                                       \
    do {                                                                                         \
        const int32_t outer_rank_ = (S)->rank - 1;                                               \
        const int32_t inner_ = (S)->dims[outer_rank_];                                           \
        const int32_t a_step_ = (S)->a_strides[outer_rank_];                                     \
        const int32_t b_step_ = (S)->b_strides[outer_rank_];                                     \
        const int32_t rows_ = tfc_product(outer_rank_, (S)->dims);                               \
        tfc_walker it_;                                                                          \
        tfc_walker_start(&it_);                                                                  \
        for (int32_t row_ = 0; row_ < rows_; ++row_) {                                           \
            for (int32_t i_ = 0; i_ < inner_; ++i_) {                                            \
                *(Y)++ = OP((A)[it_.off_a + i_ * a_step_], (B)[it_.off_b + i_ * b_step_]);       \
            }                                                                                    \
            tfc_walker_next(&it_, outer_rank_, (S)->dims, (S)->a_strides, (S)->b_strides);       \
        }                                                                                        \
    } while (0)

/* TFLite add/sub: both inputs are brought to a common scale with extra headroom (left_shift),
 * combined, then scaled to the output. */
static inline int8_t add_sub_s8(int32_t a, int32_t b, int32_t sign, const tfc_binary_quant *q)
{
    int32_t a_wide = tfc_wrap_i32((int64_t)(a - q->a_zp) * ((int64_t)1 << q->left_shift));
    int32_t b_wide = tfc_wrap_i32((int64_t)(b - q->b_zp) * ((int64_t)1 << q->left_shift));
    int64_t a_scaled = tfc_requantize(a_wide, q->a_multiplier, q->a_shift);
    int64_t b_scaled = tfc_requantize(b_wide, q->b_multiplier, q->b_shift);
    int32_t combined = tfc_wrap_i32(a_scaled + sign * b_scaled);
    int32_t out = tfc_requantize(combined, q->multiplier, q->shift) + q->output_zp;
    return (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
}

void tfc_add_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_broadcast *s,
                const tfc_binary_quant *q)
{
#define ADD_S8(av, bv) add_sub_s8((av), (bv), 1, q)
    TFC_BROADCAST_LOOP(a, b, y, s, ADD_S8);
#undef ADD_S8
}

void tfc_sub_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_broadcast *s,
                const tfc_binary_quant *q)
{
#define SUB_S8(av, bv) add_sub_s8((av), (bv), -1, q)
    TFC_BROADCAST_LOOP(a, b, y, s, SUB_S8);
#undef SUB_S8
}

static inline int8_t mul_s8(int32_t a, int32_t b, const tfc_binary_quant *q)
{
    int32_t product = (a - q->a_zp) * (b - q->b_zp);
    int32_t out = tfc_requantize(product, q->multiplier, q->shift) + q->output_zp;
    return (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
}

void tfc_mul_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_broadcast *s,
                const tfc_binary_quant *q)
{
#define MUL_S8(av, bv) mul_s8((av), (bv), q)
    TFC_BROADCAST_LOOP(a, b, y, s, MUL_S8);
#undef MUL_S8
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_add_f32(const float *a, const float *b, float *y, const tfc_broadcast *s,
                 float act_min, float act_max)
{
#define ADD_F32(av, bv) tfc_clamp_f32((av) + (bv), act_min, act_max)
    TFC_BROADCAST_LOOP(a, b, y, s, ADD_F32);
#undef ADD_F32
}

void tfc_sub_f32(const float *a, const float *b, float *y, const tfc_broadcast *s,
                 float act_min, float act_max)
{
#define SUB_F32(av, bv) tfc_clamp_f32((av) - (bv), act_min, act_max)
    TFC_BROADCAST_LOOP(a, b, y, s, SUB_F32);
#undef SUB_F32
}

void tfc_mul_f32(const float *a, const float *b, float *y, const tfc_broadcast *s,
                 float act_min, float act_max)
{
#define MUL_F32(av, bv) tfc_clamp_f32((av) * (bv), act_min, act_max)
    TFC_BROADCAST_LOOP(a, b, y, s, MUL_F32);
#undef MUL_F32
}
#endif /* TFC_INT8_ONLY */

void tfc_clip_s8(const int8_t *x, int8_t *y, int32_t size, int32_t lo, int32_t hi)
{
    for (int32_t i = 0; i < size; ++i) {
        y[i] = (int8_t)tfc_clamp_i32(x[i], lo, hi);
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_clip_f32(const float *x, float *y, int32_t size, float lo, float hi)
{
    for (int32_t i = 0; i < size; ++i) {
        y[i] = tfc_clamp_f32(x[i], lo, hi);
    }
}
#endif /* TFC_INT8_ONLY */

void tfc_requantize_s8(const int8_t *x, int8_t *y, int32_t size, const tfc_tensor_quant *q)
{
    for (int32_t i = 0; i < size; ++i) {
        int32_t out = tfc_requantize(x[i] - q->input_zp, q->multiplier, q->shift) + q->output_zp;
        y[i] = (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
/* Round half to even without libm. Callers bound |v| well below 2^22 first, so the truncation
 * fits an int32 and v - trunc(v) is exact. */
static inline int32_t round_half_even(float v)
{
    int32_t t = (int32_t)v;
    float frac = v - (float)t;
    if (frac > 0.5f || (frac == 0.5f && (t & 1))) {
        t += 1;
    } else if (frac < -0.5f || (frac == -0.5f && (t & 1))) {
        t -= 1;
    }
    return t;
}

void tfc_quantize_f32_s8(const float *x, int8_t *y, int32_t outer, int32_t channels,
                         int32_t inner, const float *scale, const int32_t *zero_point)
{
    for (int32_t o = 0; o < outer; ++o) {
        for (int32_t c = 0; c < channels; ++c) {
            for (int32_t i = 0; i < inner; ++i) {
                float v = *x++ / scale[c];
                /* Anything beyond +-512 saturates anyway; the bound also catches NaN. */
                if (!(v >= -512.0f)) {
                    v = -512.0f;
                } else if (v > 512.0f) {
                    v = 512.0f;
                }
                *y++ = tfc_sat_i8(round_half_even(v) + zero_point[c]);
            }
        }
    }
}

void tfc_dequantize_s8_f32(const int8_t *x, float *y, int32_t outer, int32_t channels,
                           int32_t inner, const float *scale, const int32_t *zero_point)
{
    for (int32_t o = 0; o < outer; ++o) {
        for (int32_t c = 0; c < channels; ++c) {
            for (int32_t i = 0; i < inner; ++i) {
                *y++ = (float)((int32_t)*x++ - zero_point[c]) * scale[c];
            }
        }
    }
}

void tfc_dequantize_s32_f32(const int32_t *x, float *y, int32_t outer, int32_t channels,
                            int32_t inner, const float *scale, const int32_t *zero_point)
{
    for (int32_t o = 0; o < outer; ++o) {
        for (int32_t c = 0; c < channels; ++c) {
            for (int32_t i = 0; i < inner; ++i) {
                /* Wraps like numpy's int32 subtraction in the reference. */
                *y++ = (float)tfc_wrap_i32((int64_t)*x++ - zero_point[c]) * scale[c];
            }
        }
    }
}
#endif /* TFC_INT8_ONLY */
