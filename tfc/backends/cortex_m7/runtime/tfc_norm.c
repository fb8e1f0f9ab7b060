/* Row-wise normalizations over the last axis: layer normalization and softmax.
 *
 * The int8 forms follow ops.py exactly and touch no float:
 * - Scaled-LayerNorm: integer row statistics (SMLAD on int16 pairs), one integer square root and
 *   one division per row, then per element one multiply-add giving x_norm * 2^23 (its top half is
 *   the INT16 x_norm * 2^7) and one SMLAWT applying gamma and beta.
 * - Softmax: a row max (4 bytes per SSUB8 + SEL), a compile-time exp table read as base[x], one
 *   64/32 division per row, one UMLAL per element. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

/* ---- Scaled-LayerNorm -------------------------------------------------------------------- */

/* floor(sqrt(n)) for n in [2^30, 2^32): Newton's iteration from a line lying above sqrt on that
 * range; it reaches the floor in at most 4 divisions (tests/transformer checks it exhaustively
 * around every perfect square). */
static inline uint32_t tfc_isqrt_normalized(uint32_t n)
{
    uint32_t s = 23173u + (n >> 17) + (n >> 18);
    for (;;) {
        uint32_t q = n / s;
        if (q >= s) {
            return s;
        }
        s = (s + q) >> 1;
    }
}

static inline int32_t tfc_bit_length64(uint64_t v)
{
    uint32_t hi = (uint32_t)(v >> 32);
    if (hi != 0) {
        return 64 - __builtin_clz(hi);
    }
    uint32_t lo = (uint32_t)v;
    return lo != 0 ? 32 - __builtin_clz(lo) : 0;
}

/* (acc + (a * top16(b)) >> 16) as the SMLAWT instruction computes it. */
static inline int32_t tfc_smlawt(int32_t a, int32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    return __smlawt(a, b, acc);
#else
    int64_t product = (int64_t)a * (int64_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)(int32_t)(product >> 16));
#endif
}

/* sum x and sum x^2 of a row, two int16 lanes at a time. */
static inline void tfc_row_moments(const int8_t *row, int32_t cols, int32_t *total, int32_t *sum_sq)
{
    const uint32_t ones = 0x00010001u;
    int32_t t = 0;
    int32_t q = 0;
    int32_t c = 0;
    for (; c + 4 <= cols; c += 4) {
        uint32_t w = tfc_load4(row + c);
        uint32_t even = tfc_sxtb16(w);
        uint32_t odd = tfc_sxtb16_ror8(w);
        q = tfc_smlad(even, even, q);
        q = tfc_smlad(odd, odd, q);
        t = tfc_smlad(even, ones, t);
        t = tfc_smlad(odd, ones, t);
    }
    for (; c < cols; ++c) {
        t += row[c];
        q += row[c] * row[c];
    }
    *total = t;
    *sum_sq = q;
}

/* The row's (A, Bx) with x_norm * 2^23 = x * A + Bx: quant_math.scaled_layernorm_row. */
static inline void tfc_layernorm_row(int32_t total, int32_t sum_sq, int32_t cols, int32_t eps_q,
                                     int32_t inv_cols, int32_t *scale, int32_t *offset)
{
    int64_t d = (int64_t)cols * (uint32_t)sum_sq - (int64_t)total * total + eps_q;
    int64_t least = (((int64_t)cols * cols) >> 15) + 1;
    if (d < least) {
        d = least;
    }
    int32_t h = (tfc_bit_length64((uint64_t)d) - 31) >> 1;
    uint32_t normed = h >= 0 ? (uint32_t)((uint64_t)d >> (2 * h)) : (uint32_t)((uint64_t)d << (-2 * h));
    uint32_t recip = 0xFFFFFFFFu / tfc_isqrt_normalized(normed);
    uint32_t scaled = (uint32_t)cols * recip;
    int32_t sh = 9 + h;
    int32_t a = sh > 0 ? (int32_t)((scaled + (1u << (sh - 1))) >> sh) : (int32_t)(scaled << -sh);
    int64_t mean_a = ((int64_t)(total * inv_cols) * a) >> 23;
    *scale = a;
    *offset = (int32_t)(uint32_t)((uint64_t)32768 - (uint64_t)mean_a);
}

/* One output: clamp(smlawt(gamma, x * A + Bx, bias) >> 8) into int8 (ops.py `layernorm`). */
static inline int32_t tfc_layernorm_acc(int32_t v, int32_t a, int32_t b, const int32_t *gb)
{
    int32_t xn = (int32_t)((uint32_t)v * (uint32_t)a + (uint32_t)b);
    return tfc_smlawt(gb[0], xn, gb[1]);
}

/* (acc >> 8) saturated to int8: one SSAT with a shifted operand on the M7. */
static inline int8_t tfc_sat8_asr8(int32_t acc)
{
#if defined(TFC_USE_DSP)
    return (int8_t)__ssat(acc >> 8, 8);
#else
    return tfc_sat_i8(acc >> 8);
#endif
}

void tfc_layernorm_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t cols,
                      const tfc_layernorm_quant *q)
{
    const int32_t inv_cols = (int32_t)(((1u << 23) + (uint32_t)cols / 2) / (uint32_t)cols);
    const int32_t lo = q->act_min;
    const int32_t hi = q->act_max;
    const int full_range = lo == -128 && hi == 127;
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * cols;
        int32_t total, sum_sq, a, b;
        tfc_row_moments(row, cols, &total, &sum_sq);
        tfc_layernorm_row(total, sum_sq, cols, q->eps_q, inv_cols, &a, &b);
        const int32_t *gb = q->gamma_bias;
        int32_t c = 0;
        if (full_range) {
            for (; c + 4 <= cols; c += 4) { /* unrolled: the loop overhead is a third of the work */
                y[c] = tfc_sat8_asr8(tfc_layernorm_acc(row[c], a, b, gb + 2 * c));
                y[c + 1] = tfc_sat8_asr8(tfc_layernorm_acc(row[c + 1], a, b, gb + 2 * c + 2));
                y[c + 2] = tfc_sat8_asr8(tfc_layernorm_acc(row[c + 2], a, b, gb + 2 * c + 4));
                y[c + 3] = tfc_sat8_asr8(tfc_layernorm_acc(row[c + 3], a, b, gb + 2 * c + 6));
            }
        }
        for (; c < cols; ++c) {
            int32_t v = tfc_layernorm_acc(row[c], a, b, gb + 2 * c) >> 8;
            y[c] = (int8_t)tfc_clamp_i32(v, lo, hi);
        }
        y += cols;
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
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
#endif /* TFC_INT8_ONLY */

/* ---- Softmax ------------------------------------------------------------------------------ */

static inline int32_t tfc_row_max_s8(const int8_t *row, int32_t cols)
{
    int32_t top = -128;
    int32_t c = 0;
#if defined(TFC_USE_DSP)
    if (cols >= 4) {
        uint32_t best = 0x80808080u; /* four lanes of -128 */
        for (; c + 4 <= cols; c += 4) {
            uint32_t w = tfc_load4(row + c);
            (void)__ssub8((int8x4_t)w, (int8x4_t)best); /* GE bits: lanes where w >= best */
            best = __sel(w, best);
        }
        for (int32_t lane = 0; lane < 4; ++lane) {
            int32_t v = (int8_t)(best >> (8 * lane));
            top = v > top ? v : top;
        }
    }
#endif
    for (; c < cols; ++c) {
        top = row[c] > top ? row[c] : top;
    }
    return top;
}

void tfc_softmax_s8(const int8_t *x, const int32_t *exp_lut, int8_t *y, int32_t rows,
                    int32_t cols, int32_t output_zp, int32_t multiplier, int32_t shift)
{
    const uint64_t numerator = (uint64_t)(uint32_t)multiplier << (shift + 1);
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * cols;
        /* base[v] = exp(-(top - v) * s_x) * 2^16 for every v <= top (the table is stored reversed). */
        const int32_t *base = exp_lut + 255 - tfc_row_max_s8(row, cols);
        uint32_t sum = 0;
        for (int32_t c = 0; c < cols; ++c) {
            sum += (uint32_t)base[row[c]];
        }
        uint32_t recip = (uint32_t)(numerator / sum);
        for (int32_t c = 0; c < cols; ++c) {
            uint32_t p = (uint32_t)(((uint64_t)(uint32_t)base[row[c]] * recip + 0x80000000u) >> 32);
            y[c] = tfc_sat_i8((int32_t)p + output_zp);
        }
        y += cols;
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
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
#endif /* TFC_INT8_ONLY */
