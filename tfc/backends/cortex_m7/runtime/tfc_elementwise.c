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

/* ---- int8 add/sub (ops.py `add`) -----------------------------------------------------------
 * elementwise_lowering.py folds both zero points, the rounding half and the output zero point
 * into one bias and negates b's multiplier for sub, so every element is
 *     y = clamp((a * a_multiplier + b * b_multiplier + bias) >> shift, act_min, act_max)
 * two MLAs, a shift and a saturation; all intermediates fit in int32 (quant_math.add_multipliers).
 * Rows where an operand is contiguous or constant go to the tight loops below; the strided walk
 * handles everything else. */

/* The clamp is a single SSAT when the activation range is the whole int8 range. */
#define TFC_ADD_FULL_RANGE(q) ((q)->act_min == -128 && (q)->act_max == 127)

static inline int8_t add_out(int32_t acc, int32_t shift, int32_t lo, int32_t hi)
{
    return (int8_t)tfc_clamp_i32(acc >> shift, lo, hi);
}

static inline int8_t add_out_sat(int32_t acc, int32_t shift)
{
    return (int8_t)tfc_ssat8(acc >> shift);
}

/* y[i] = out(a[i] * ma + b[i] * mb + bias): both operands contiguous. Four elements per trip so
 * the loop overhead is spread (gcc does not unroll at -O3 for the M7). */
#define ADD_ROW_LOOP(OUT)                                                                        \
    do {                                                                                         \
        int32_t i_ = 0;                                                                          \
        for (; i_ + 4 <= n; i_ += 4) {                                                           \
            int32_t acc0 = bias + a[i_] * ma + b[i_] * mb;                                       \
            int32_t acc1 = bias + a[i_ + 1] * ma + b[i_ + 1] * mb;                               \
            int32_t acc2 = bias + a[i_ + 2] * ma + b[i_ + 2] * mb;                               \
            int32_t acc3 = bias + a[i_ + 3] * ma + b[i_ + 3] * mb;                               \
            y[i_] = OUT(acc0);                                                                   \
            y[i_ + 1] = OUT(acc1);                                                               \
            y[i_ + 2] = OUT(acc2);                                                               \
            y[i_ + 3] = OUT(acc3);                                                               \
        }                                                                                        \
        for (; i_ < n; ++i_) {                                                                   \
            y[i_] = OUT(bias + a[i_] * ma + b[i_] * mb);                                         \
        }                                                                                        \
    } while (0)

static void add_row(const int8_t *a, int32_t ma, const int8_t *b, int32_t mb, int32_t bias,
                    int8_t *y, int32_t n, const tfc_add_quant *q)
{
    const int32_t shift = q->shift;
    if (TFC_ADD_FULL_RANGE(q)) {
#define OUT_SAT(acc) add_out_sat((acc), shift)
        ADD_ROW_LOOP(OUT_SAT);
#undef OUT_SAT
    } else {
        const int32_t lo = q->act_min, hi = q->act_max;
#define OUT_CLAMP(acc) add_out((acc), shift, lo, hi)
        ADD_ROW_LOOP(OUT_CLAMP);
#undef OUT_CLAMP
    }
}

/* y[i] = out(a[i] * ma + bias): the other operand is constant along the row (folded in bias). */
static void scale_row(const int8_t *a, int32_t ma, int32_t bias, int8_t *y, int32_t n,
                      const tfc_add_quant *q)
{
    const int32_t shift = q->shift, lo = q->act_min, hi = q->act_max;
    int32_t i = 0;
    for (; i + 2 <= n; i += 2) {
        int32_t acc0 = bias + a[i] * ma;
        int32_t acc1 = bias + a[i + 1] * ma;
        y[i] = add_out(acc0, shift, lo, hi);
        y[i + 1] = add_out(acc1, shift, lo, hi);
    }
    if (i < n) {
        y[i] = add_out(bias + a[i] * ma, shift, lo, hi);
    }
}

void tfc_add_s8_contig(const int8_t *a, const int8_t *b, int8_t *y, int32_t size,
                       const tfc_add_quant *q)
{
    add_row(a, q->a_multiplier, b, q->b_multiplier, q->bias, y, size, q);
}

void tfc_add_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_broadcast *s,
                const tfc_add_quant *q)
{
    const int32_t outer_rank = s->rank - 1;
    const int32_t inner = s->dims[outer_rank];
    const int32_t a_step = s->a_strides[outer_rank];
    const int32_t b_step = s->b_strides[outer_rank];
    const int32_t rows = tfc_product(outer_rank, s->dims);
    const int32_t ma = q->a_multiplier, mb = q->b_multiplier;
    tfc_walker it;
    tfc_walker_start(&it);
    for (int32_t row = 0; row < rows; ++row, y += inner) {
        const int8_t *a_row = a + it.off_a;
        const int8_t *b_row = b + it.off_b;
        if (a_step == 1 && b_step == 1) {
            add_row(a_row, ma, b_row, mb, q->bias, y, inner, q);
        } else if (a_step == 1 && b_step == 0) {
            scale_row(a_row, ma, q->bias + b_row[0] * mb, y, inner, q);
        } else if (a_step == 0 && b_step == 1) {
            scale_row(b_row, mb, q->bias + a_row[0] * ma, y, inner, q);
        } else {
            for (int32_t i = 0; i < inner; ++i) {
                int32_t acc = q->bias + a_row[i * a_step] * ma + b_row[i * b_step] * mb;
                y[i] = add_out(acc, q->shift, q->act_min, q->act_max);
            }
        }
        tfc_walker_next(&it, outer_rank, s->dims, s->a_strides, s->b_strides);
    }
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

/* y = table[x & 0xFF]: any int8 -> int8 map computed by the compiler (requantize:
 * quant_math.requantize_table). Four elements per trip; one table load each. */
void tfc_lookup_s8(const int8_t *x, int8_t *y, int32_t size, const int8_t *table)
{
    const uint8_t *in = (const uint8_t *)x;
    int32_t i = 0;
    for (; i + 4 <= size; i += 4) {
        int8_t y0 = table[in[i]];
        int8_t y1 = table[in[i + 1]];
        int8_t y2 = table[in[i + 2]];
        int8_t y3 = table[in[i + 3]];
        y[i] = y0;
        y[i + 1] = y1;
        y[i + 2] = y2;
        y[i + 3] = y3;
    }
    for (; i < size; ++i) {
        y[i] = table[in[i]];
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
