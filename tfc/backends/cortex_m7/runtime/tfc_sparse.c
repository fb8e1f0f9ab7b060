/* Sparse int8 kernels that compute on block run-length (brle) weight streams directly.
 *
 * Stream format (tfc/sparse/codec.py): the weights, one row per output channel in the kernel's
 * walk order, cut into blocks of b; only blocks that are not all zero are stored, each as the
 * record (d, v1..vb) with d the count of all-zero blocks skipped since the previous record.
 * Positions run on across rows: a kernel keeps a column counter and wraps it at blocks_per_row,
 * finishing the row (requantize and store) each time. Fillers (255, 0..0) are ordinary records.
 *
 * conv2d and linear first widen the input window ("patch") to int16 with the zero point removed,
 * once per output pixel or token, so every stored block costs one multiply per weight and nothing
 * for the skipped ones. With __ARM_FEATURE_DSP (Cortex-M7), SXTB16 unpacks two weights at a time
 * and SMLAD does two MACs per instruction; for b = 4 the patch is stored pairwise interleaved
 * (x0, x2, x1, x3) so that SXTB16 of the weight word and of its rotation line up with it. */
#include <string.h>

#include "tfc_runtime.h"
#include "tfc_internal.h"

/* The SXTB16/SMLAD path (TFC_NO_DSP forces the portable one, as for the dense kernels). */
#if defined(__ARM_FEATURE_DSP) && !defined(TFC_NO_DSP)
#define TFC_BRLE_DSP 1
#include <arm_acle.h>
#endif

/* Where element i of a patch row goes: b = 4 blocks are interleaved for SXTB16 on the DSP path. */
static inline int32_t brle_patch_index(int32_t i, int32_t block)
{
#if defined(TFC_BRLE_DSP)
    if (block == 4) {
        return i ^ (((i ^ (i >> 1)) & 1) * 3); /* swaps elements 1 and 2 of every group of 4 */
    }
#else
    (void)block;
#endif
    return i;
}

static inline int8_t brle_output(int32_t acc, int32_t row, const tfc_channel_quant *q)
{
    int32_t out = tfc_requantize(acc, q->multiplier[row], q->shift[row]) + q->output_zp;
    return (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
}

#if defined(TFC_BRLE_DSP)
/* Bytes 1 and 3 of w, sign-extended to two int16 halves (SXTB16 with its rotation folded in). */
static inline uint32_t brle_sxtb16_ror8(uint32_t w)
{
    uint32_t out;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(out) : "r"(w));
    return out;
}
#endif

/* acc0 += block . patch0 and acc1 += block . patch1 for one record's b = 4 values. */
static inline void brle_dot4(const uint8_t *values, const int16_t *p0, const int16_t *p1,
                             int32_t *acc0, int32_t *acc1)
{
#if defined(TFC_BRLE_DSP)
    uint32_t w, a02, a13, b02, b13;
    memcpy(&w, values, 4);
    const uint32_t w02 = __sxtb16(w), w13 = brle_sxtb16_ror8(w);
    memcpy(&a02, p0, 4);
    memcpy(&a13, p0 + 2, 4);
    memcpy(&b02, p1, 4);
    memcpy(&b13, p1 + 2, 4);
    *acc0 = __smlad(w13, a13, __smlad(w02, a02, *acc0));
    *acc1 = __smlad(w13, b13, __smlad(w02, b02, *acc1));
#else
    const int8_t *v = (const int8_t *)values;
    *acc0 += p0[0] * v[0] + p0[1] * v[1] + p0[2] * v[2] + p0[3] * v[3];
    *acc1 += p1[0] * v[0] + p1[1] * v[1] + p1[2] * v[2] + p1[3] * v[3];
#endif
}

static inline void brle_dot2(const uint8_t *values, const int16_t *p0, const int16_t *p1,
                             int32_t *acc0, int32_t *acc1)
{
#if defined(TFC_BRLE_DSP)
    uint16_t h;
    uint32_t a, b;
    memcpy(&h, values, 2);
    const uint32_t w = __sxtb16((uint32_t)h | ((uint32_t)h << 8));
    memcpy(&a, p0, 4);
    memcpy(&b, p1, 4);
    *acc0 = __smlad(w, a, *acc0);
    *acc1 = __smlad(w, b, *acc1);
#else
    const int8_t *v = (const int8_t *)values;
    *acc0 += p0[0] * v[0] + p0[1] * v[1];
    *acc1 += p1[0] * v[0] + p1[1] * v[1];
#endif
}

/* For every row r: y0[r] = requant(bias[r] + row r . patch0), y1[r] likewise with patch1. One pass
 * over the stream serves two output pixels (or tokens), so each record is decoded once per pair.
 * patch1 == patch0 with y1 == y0 computes a single one. */
#define TFC_BRLE_MATVEC(NAME, B, DOT)                                                              \
    static void NAME(const int16_t *patch0, const int16_t *patch1, const tfc_brle *w,             \
                     const int32_t *bias, int8_t *y0, int8_t *y1, const tfc_channel_quant *q)      \
    {                                                                                              \
        const uint8_t *rec = w->data;                                                              \
        const uint8_t *const end = rec + w->records * (1 + (B));                                   \
        const int32_t per_row = w->blocks_per_row;                                                 \
        int32_t row = 0, col = -1;                                                                 \
        int32_t acc0 = bias ? bias[0] : 0, acc1 = acc0;                                            \
        for (; rec < end; rec += 1 + (B)) {                                                        \
            col += (int32_t)rec[0] + 1;                                                            \
            while (col >= per_row) { /* a record always lies in a row < rows */                   \
                y0[row] = brle_output(acc0, row, q);                                               \
                y1[row] = brle_output(acc1, row, q);                                               \
                ++row;                                                                             \
                col -= per_row;                                                                    \
                acc0 = acc1 = bias ? bias[row] : 0;                                                \
            }                                                                                      \
            DOT(rec + 1, patch0 + col * (B), patch1 + col * (B), &acc0, &acc1);                    \
        }                                                                                          \
        for (; row < w->rows; ++row) { /* the rows after the last record */                        \
            y0[row] = brle_output(acc0, row, q);                                                   \
            y1[row] = brle_output(acc1, row, q);                                                   \
            acc0 = acc1 = (bias && row + 1 < w->rows) ? bias[row + 1] : 0;                         \
        }                                                                                          \
    }

TFC_BRLE_MATVEC(brle_matvec4, 4, brle_dot4)
TFC_BRLE_MATVEC(brle_matvec2, 2, brle_dot2)

static void brle_matvec(const int16_t *patch0, const int16_t *patch1, const tfc_brle *w,
                        const int32_t *bias, int8_t *y0, int8_t *y1, const tfc_channel_quant *q)
{
    if (w->block == 4) {
        brle_matvec4(patch0, patch1, w, bias, y0, y1, q);
    } else {
        brle_matvec2(patch0, patch1, w, bias, y0, y1, q);
    }
}

/* dst[0..n) = src - zp as int16 in the patch layout of `block` (n a multiple of 4 on the fast path). */
static void brle_widen(int16_t *dst, const int8_t *src, int32_t n, int32_t zp, int32_t block,
                       int32_t at)
{
#if defined(TFC_BRLE_DSP)
    if ((n & 3) == 0 && (at & 3) == 0) {
        const uint32_t minus_zp = (uint32_t)(uint16_t)(int16_t)-zp * 0x00010001u;
        for (int32_t i = 0; i < n; i += 4) {
            uint32_t x, even, odd, lo, hi;
            memcpy(&x, src + i, 4);
            even = __sadd16(__sxtb16(x), minus_zp);       /* (x0, x2) */
            odd = __sadd16(brle_sxtb16_ror8(x), minus_zp); /* (x1, x3) */
            if (block == 4) { /* interleaved: x0 x2 x1 x3 */
                lo = even;
                hi = odd;
            } else { /* natural: x0 x1 x2 x3 */
                lo = (even & 0xFFFFu) | (odd << 16);
                hi = (even >> 16) | (odd & 0xFFFF0000u);
            }
            memcpy(dst + i, &lo, 4);
            memcpy(dst + i + 2, &hi, 4);
        }
        return;
    }
#endif
    for (int32_t i = 0; i < n; ++i) {
        dst[brle_patch_index(at + i, block) - at] = (int16_t)((int32_t)src[i] - zp);
    }
}

/* The conv window of output pixel (oh, ow), zero point removed, padding as 0, in patch layout. */
static void brle_conv_patch(int16_t *patch, const int8_t *image, int32_t oh, int32_t ow,
                            const tfc_window *g, const tfc_channel_quant *q, int32_t block)
{
    const int32_t ih0 = oh * g->stride_h - g->pad_top;
    const int32_t iw0 = ow * g->stride_w - g->pad_left;
    int32_t i = 0;
    for (int32_t kh = 0; kh < g->kernel_h; ++kh) {
        const int32_t ih = ih0 + kh * g->dilation_h;
        for (int32_t kw = 0; kw < g->kernel_w; ++kw, i += g->in_c) {
            const int32_t iw = iw0 + kw * g->dilation_w;
            if (ih >= 0 && ih < g->in_h && iw >= 0 && iw < g->in_w) {
                brle_widen(patch + i, image + (ih * g->in_w + iw) * g->in_c, g->in_c, q->input_zp,
                           block, i);
            } else {
                for (int32_t c = 0; c < g->in_c; ++c) {
                    patch[brle_patch_index(i + c, block)] = 0;
                }
            }
        }
    }
}

void tfc_conv2d_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                        const tfc_window *g, const tfc_channel_quant *q, int16_t *patch)
{
    const int32_t row_length = g->kernel_h * g->kernel_w * g->in_c;
    const int32_t padded = w->blocks_per_row * w->block;
    int16_t *const pair[2] = {patch, patch + padded};
    for (int32_t i = row_length; i < padded; ++i) {
        pair[0][brle_patch_index(i, w->block)] = 0;
        pair[1][brle_patch_index(i, w->block)] = 0;
    }
    const int32_t pixels = g->out_h * g->out_w;
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * g->in_c;
        int8_t *out = y + n * pixels * g->out_c;
        for (int32_t p = 0; p < pixels; p += 2) {
            const int32_t count = p + 1 < pixels ? 2 : 1;
            for (int32_t k = 0; k < count; ++k) {
                brle_conv_patch(pair[k], image, (p + k) / g->out_w, (p + k) % g->out_w, g, q,
                                w->block);
            }
            int8_t *y0 = out + p * g->out_c;
            brle_matvec(pair[0], pair[count - 1], w, bias, y0, y0 + (count - 1) * g->out_c, q);
        }
    }
}

void tfc_linear_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                        int32_t rows, int32_t in_features, const tfc_channel_quant *q,
                        int16_t *patch)
{
    const int32_t padded = w->blocks_per_row * w->block;
    int16_t *const pair[2] = {patch, patch + padded};
    for (int32_t i = in_features; i < padded; ++i) {
        pair[0][brle_patch_index(i, w->block)] = 0;
        pair[1][brle_patch_index(i, w->block)] = 0;
    }
    for (int32_t r = 0; r < rows; r += 2) {
        const int32_t count = r + 1 < rows ? 2 : 1;
        for (int32_t k = 0; k < count; ++k) {
            brle_widen(pair[k], x + (r + k) * in_features, in_features, q->input_zp, w->block, 0);
        }
        int8_t *y0 = y + r * w->rows;
        brle_matvec(pair[0], pair[count - 1], w, bias, y0, y0 + (count - 1) * w->rows, q);
    }
}

/* One channel of a depthwise conv: its stored kernel rows (taps) against every output pixel. */
static void brle_depthwise_channel(const int8_t *x, int32_t c, const int8_t *const *taps,
                                   const int32_t *tap_rows, int32_t n_taps, int32_t acc0,
                                   int8_t *y, const tfc_window *g, const tfc_channel_quant *q)
{
    const int32_t kw_n = g->kernel_w;
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * g->in_c + c;
        int8_t *out = y + n * g->out_h * g->out_w * g->out_c + c;
        for (int32_t oh = 0; oh < g->out_h; ++oh) {
            const int32_t ih0 = oh * g->stride_h - g->pad_top;
            for (int32_t ow = 0; ow < g->out_w; ++ow, out += g->out_c) {
                const int32_t iw0 = ow * g->stride_w - g->pad_left;
                const int whole_row = iw0 >= 0 && iw0 + (kw_n - 1) * g->dilation_w < g->in_w;
                int32_t acc = acc0;
                for (int32_t t = 0; t < n_taps; ++t) {
                    const int32_t ih = ih0 + tap_rows[t] * g->dilation_h;
                    if (ih < 0 || ih >= g->in_h) {
                        continue;
                    }
                    const int8_t *v = taps[t];
                    const int8_t *line = image + ih * g->in_w * g->in_c;
                    if (whole_row && kw_n == 3) {
                        const int32_t step = g->dilation_w * g->in_c;
                        const int8_t *px = line + iw0 * g->in_c;
                        acc += ((int32_t)px[0] - q->input_zp) * v[0]
                             + ((int32_t)px[step] - q->input_zp) * v[1]
                             + ((int32_t)px[2 * step] - q->input_zp) * v[2];
                        continue;
                    }
                    for (int32_t kw = 0; kw < kw_n; ++kw) {
                        const int32_t iw = iw0 + kw * g->dilation_w;
                        if (iw >= 0 && iw < g->in_w) {
                            acc += ((int32_t)line[iw * g->in_c] - q->input_zp) * v[kw];
                        }
                    }
                }
                *out = brle_output(acc, c, q);
            }
        }
    }
}

void tfc_depthwise_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                           const tfc_window *g, const tfc_channel_quant *q)
{
    const int8_t *taps[TFC_BRLE_MAX_KERNEL];
    int32_t tap_rows[TFC_BRLE_MAX_KERNEL];
    const uint8_t *rec = w->data;
    int32_t channel = 0, col = -1, n_taps = 0;
    for (int32_t k = 0; k <= w->records; ++k, rec += 1 + w->block) {
        /* past the last record, flush every remaining channel */
        col = k < w->records ? col + (int32_t)rec[0] + 1 : w->rows * w->blocks_per_row;
        while (col >= w->blocks_per_row && channel < w->rows) {
            brle_depthwise_channel(x, channel, taps, tap_rows, n_taps, bias ? bias[channel] : 0,
                                   y, g, q);
            ++channel;
            col -= w->blocks_per_row;
            n_taps = 0;
        }
        if (k < w->records) {
            taps[n_taps] = (const int8_t *)(rec + 1);
            tap_rows[n_taps] = col;
            ++n_taps;
        }
    }
}
