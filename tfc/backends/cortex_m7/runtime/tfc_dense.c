/* Fully connected layers (batched over tokens) and batched matrix products of two activations. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

void tfc_linear_s8(const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y,
                   int32_t rows, int32_t in_features, int32_t out_features,
                   const tfc_channel_quant *q)
{
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * in_features;
        for (int32_t o = 0; o < out_features; ++o) {
            int32_t acc = bias ? bias[o] : 0;
            acc += tfc_dot_s8(row, w + o * in_features, in_features, -q->input_zp);
            int32_t out = tfc_requantize(acc, q->multiplier[o], q->shift[o]) + q->output_zp;
            *y++ = (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
        }
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_linear_f32(const float *x, const float *w, const float *bias, float *y,
                    int32_t rows, int32_t in_features, int32_t out_features,
                    float act_min, float act_max)
{
    for (int32_t r = 0; r < rows; ++r) {
        const float *row = x + r * in_features;
        for (int32_t o = 0; o < out_features; ++o) {
            const float *weights = w + o * in_features;
            float acc = 0.0f;
            for (int32_t k = 0; k < in_features; ++k) {
                acc += row[k] * weights[k];
            }
            if (bias) {
                acc += bias[o];
            }
            *y++ = tfc_clamp_f32(acc, act_min, act_max);
        }
    }
}
#endif /* TFC_INT8_ONLY */

/* The scalar strided matmul: the reference the panel kernel (tfc_matmul_s8.c) is tested against,
 * and the kernel for matmuls whose panel would not fit in scratch. */
void tfc_matmul_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_matmul_layout *s,
                   const tfc_matmul_quant *q)
{
    const int32_t batches = tfc_product(s->batch_rank, s->batch_dims);
    for (int32_t batch = 0; batch < batches; ++batch) {
        const int8_t *a_mat = a + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->a_batch_strides);
        const int8_t *b_mat = b + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->b_batch_strides);
        int8_t *y_mat = y + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->y_batch_strides);
        for (int32_t i = 0; i < s->m; ++i) {
            for (int32_t j = 0; j < s->n; ++j) {
                int32_t acc = 0;
                for (int32_t k = 0; k < s->k; ++k) {
                    acc += ((int32_t)a_mat[i * s->a_stride_m + k * s->a_stride_k] - q->a_zp)
                           * ((int32_t)b_mat[k * s->b_stride_k + j * s->b_stride_n] - q->b_zp);
                }
                int32_t out = tfc_requantize(acc, q->multiplier, q->shift) + q->output_zp;
                y_mat[i * s->y_stride_m + j * s->y_stride_n] =
                    (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
            }
        }
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_matmul_f32(const float *a, const float *b, float *y, const tfc_matmul_layout *s)
{
    const int32_t batches = tfc_product(s->batch_rank, s->batch_dims);
    for (int32_t batch = 0; batch < batches; ++batch) {
        const float *a_mat = a + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->a_batch_strides);
        const float *b_mat = b + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->b_batch_strides);
        float *y_mat = y + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->y_batch_strides);
        for (int32_t i = 0; i < s->m; ++i) {
            for (int32_t j = 0; j < s->n; ++j) {
                float acc = 0.0f;
                for (int32_t k = 0; k < s->k; ++k) {
                    acc += a_mat[i * s->a_stride_m + k * s->a_stride_k]
                           * b_mat[k * s->b_stride_k + j * s->b_stride_n];
                }
                y_mat[i * s->y_stride_m + j * s->y_stride_n] = acc;
            }
        }
    }
}
#endif /* TFC_INT8_ONLY */
