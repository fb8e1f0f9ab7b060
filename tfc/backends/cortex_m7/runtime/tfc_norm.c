/* Row-wise normalizations over the last axis: layer normalization and softmax.
 *
 * The int8 forms follow ops.py exactly: Scaled-LayerNorm normalizes in integers and keeps
 * x_norm * 2^7 in int16; softmax reads a compile-time exp table. Neither touches a float. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

void tfc_layernorm_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t cols,
                      const tfc_layernorm_quant *q)
{
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * cols;
        int64_t sum = 0;
        int64_t sum_sq = 0;
        for (int32_t c = 0; c < cols; ++c) {
            int64_t xi = (int64_t)row[c] - q->input_zp;
            sum += xi;
            sum_sq += xi * xi;
        }
        int64_t spread = (int64_t)cols * sum_sq - sum * sum + q->eps_q;
        int64_t root = tfc_isqrt64(spread);
        for (int32_t c = 0; c < cols; ++c) {
            int64_t centered = (int64_t)cols * ((int64_t)row[c] - q->input_zp) - sum;
            int64_t normed = tfc_clamp_i64(tfc_rounding_divide(centered * 128, root), -32768, 32767);
            int32_t out = tfc_requantize((int32_t)normed, q->multiplier[c], q->shift[c]) + q->bias[c];
            *y++ = (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
        }
    }
}

void tfc_layernorm_f32(const float *x, const float *gamma, const float *beta, float *y,
                       int32_t rows, int32_t cols, float epsilon)
{
    for (int32_t r = 0; r < rows; ++r) {
        const float *row = x + r * cols;
        float mean = 0.0f;
        for (int32_t c = 0; c < cols; ++c) {
            mean += row[c];
        }
        mean /= (float)cols;
        float var = 0.0f;
        for (int32_t c = 0; c < cols; ++c) {
            float d = row[c] - mean;
            var += d * d;
        }
        var /= (float)cols;
        float inv_std = 1.0f / sqrtf(var + epsilon);
        for (int32_t c = 0; c < cols; ++c) {
            float v = (row[c] - mean) * inv_std;
            if (gamma) {
                v *= gamma[c];
            }
            if (beta) {
                v += beta[c];
            }
            *y++ = v;
        }
    }
}

void tfc_softmax_s8(const int8_t *x, const int32_t *exp_lut, int8_t *y, int32_t rows,
                    int32_t cols, int32_t output_zp, int32_t multiplier, int32_t shift)
{
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * cols;
        int32_t top = -128;
        for (int32_t c = 0; c < cols; ++c) {
            top = row[c] > top ? row[c] : top;
        }
        int32_t sum = 0;
        for (int32_t c = 0; c < cols; ++c) {
            sum += exp_lut[top - row[c]];
        }
        /* 2^46 / sum keeps e * inv within 2^46, so the product >> 15 is probability * 2^31. */
        int64_t inv = ((int64_t)1 << 46) / sum;
        for (int32_t c = 0; c < cols; ++c) {
            int64_t prob = ((int64_t)exp_lut[top - row[c]] * inv) >> 15;
            int32_t t = prob > INT32_MAX ? INT32_MAX : (int32_t)prob;
            *y++ = tfc_sat_i8(tfc_requantize(t, multiplier, shift) + output_zp);
        }
    }
}

void tfc_softmax_f32(const float *x, float *y, int32_t rows, int32_t cols)
{
    for (int32_t r = 0; r < rows; ++r) {
        const float *row = x + r * cols;
        float top = row[0];
        for (int32_t c = 1; c < cols; ++c) {
            top = row[c] > top ? row[c] : top;
        }
        float sum = 0.0f;
        for (int32_t c = 0; c < cols; ++c) {
            y[c] = expf(row[c] - top);
            sum += y[c];
        }
        for (int32_t c = 0; c < cols; ++c) {
            y[c] /= sum;
        }
        y += cols;
    }
}
