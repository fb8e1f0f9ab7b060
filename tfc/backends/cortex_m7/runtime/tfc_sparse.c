/* Sparse int8 kernels that compute on block run-length (brle) weight streams directly.
 *
 * Stream format (tfc/sparse/codec.py): the weights, one row per output channel in the kernel's
 * walk order, cut into blocks of b; only blocks that are not all zero are stored, each as the
 * record (d, v1..vb) with d the count of all-zero blocks skipped since the previous record.
 * Positions run on across rows; fillers (255, 0..0) are ordinary records.
 *
 * conv2d and linear work on groups of BRLE_GROUP output pixels (or tokens): their input windows
 * are widened to int16 minus the zero point once, into a "group patch" laid out block by block
 * with the group's pixels side by side, so one decoded record (one LDR, two SXTB16) feeds
 * 2 * BRLE_GROUP SMLADs whose operands are adjacent words (LDRD pairs). A pre-pass counts the
 * records of every row once per call, so the hot loop has no row-boundary test and no division.
 * For b = 4 each pixel's block is stored pairwise interleaved (x0, x2, x1, x3) so that SXTB16 of
 * the weight word and of its rotation line up with it. The portable forms of SXTB16/SMLAD in
 * tfc_internal.h make the host run the very same code. */
#include <string.h>

#include "tfc_runtime.h"
#include "tfc_internal.h"

/* Output pixels (tokens) that share one pass over the stream. */
#define BRLE_GROUP 4

/* The group patch is written and read both as int16 and as packed words. */
typedef uint32_t __attribute__((may_alias)) brle_word;
typedef int16_t __attribute__((may_alias)) brle_half;

/* Int16 index in the group patch of element `e` (of the weight row's walk) of pixel `k`. */
static inline int32_t brle_group_index(int32_t e, int32_t k, int32_t block)
{
    if (block == 4) {
        const int32_t lane = e & 3;
        return (e >> 2) * (4 * BRLE_GROUP) + k * 4 + (lane == 1 ? 2 : lane == 2 ? 1 : lane);
    }
    return (e >> 1) * (2 * BRLE_GROUP) + k * 2 + (e & 1);
}

/* Whether every row's requantization is exact with tfc_requantize_fast (see tfc_internal.h). */
static int brle_fast_requant(const tfc_channel_quant *q, int32_t rows)
{
    for (int32_t r = 0; r < rows; ++r) {
        if (q->multiplier[r] == INT32_MIN || q->shift[r] < -31 || q->shift[r] > 30) {
            return 0;
        }
    }
    return 1;
}

static inline int8_t brle_output(int32_t acc, int32_t multiplier, int32_t shift,
                                 const tfc_channel_quant *q, int fast)
{
    const int32_t scaled = fast ? tfc_requantize_fast(acc, multiplier, shift)
                                : tfc_requantize(acc, multiplier, shift);
    return (int8_t)tfc_clamp_i32(scaled + q->output_zp, q->act_min, q->act_max);
}

/* The group's accumulators of row r, requantized into each pixel's output. The constants are
 * read before any store: int8 stores may alias them and would force reloads per output. */
static inline void brle_store_group(const int32_t acc[BRLE_GROUP], int32_t r, int8_t *const y[],
                                    const tfc_channel_quant *q, int fast)
{
    const int32_t multiplier = q->multiplier[r], shift = q->shift[r];
    const int32_t zp = q->output_zp, lo = q->act_min, hi = q->act_max;
    int8_t out[BRLE_GROUP];
    for (int32_t k = 0; k < BRLE_GROUP; ++k) {
        const int32_t scaled = fast ? tfc_requantize_fast(acc[k], multiplier, shift)
                                    : tfc_requantize(acc[k], multiplier, shift);
        out[k] = (int8_t)tfc_clamp_i32(scaled + zp, lo, hi);
    }
    for (int32_t k = 0; k < BRLE_GROUP; ++k) {
        y[k][r] = out[k];
    }
}

/* Two adjacent patch words at word offset OFF of x: one LDRD on the M7 (gcc would emit two LDRs;
 * the group patch is 4-byte aligned). */
#if defined(TFC_USE_DSP)
#define BRLE_PAIR(x, OFF, lo, hi)                                                                  \
    __asm__("ldrd %0, %1, [%2, #" #OFF " * 4]"                                                     \
            : "=&r"(lo), "=&r"(hi)                                                                 \
            : "r"(x), "m"((x)[OFF]), "m"((x)[(OFF) + 1]))
#else
#define BRLE_PAIR(x, OFF, lo, hi) ((lo) = (x)[OFF], (hi) = (x)[(OFF) + 1])
#endif

/* row_records[r] = the records (fillers included) whose position lies in row r. */
static void brle_count_rows(const tfc_brle *w, int32_t *row_records)
{
    for (int32_t r = 0; r < w->rows; ++r) {
        row_records[r] = 0;
    }
    const uint8_t *rec = w->data;
    int32_t row = 0, col = -1;
    for (int32_t k = 0; k < w->records; ++k, rec += 1 + w->block) {
        col += (int32_t)rec[0] + 1;
        while (col >= w->blocks_per_row) {
            col -= w->blocks_per_row;
            ++row;
        }
        row_records[row] += 1;
    }
}

/* For every row r and pixel k of the group: y[k][r] = requant(bias[r] + row r . patch of k). */
static void brle_group4(const brle_word *patch, const tfc_brle *w, const int32_t *row_records,
                        const int32_t *bias, int8_t *const y[], const tfc_channel_quant *q,
                        int fast)
{
    enum { WORDS = 2 * BRLE_GROUP }; /* one block column: BRLE_GROUP pixels x (x0x2, x1x3) */
    const uint8_t *rec = w->data;
    const int32_t row_words = w->blocks_per_row * WORDS;
    int32_t at = -WORDS; /* word offset of the current block column, relative to the row */
    for (int32_t r = 0; r < w->rows; ++r) {
        int32_t a0 = bias ? bias[r] : 0, a1 = a0, a2 = a0, a3 = a0;
        for (int32_t n = row_records[r]; n > 0; --n, rec += 5) {
            at += ((int32_t)rec[0] + 1) * WORDS;
            const brle_word *x = patch + at;
            uint32_t v;
            memcpy(&v, rec + 1, 4);
            const uint32_t w02 = tfc_sxtb16(v), w13 = tfc_sxtb16_ror8(v);
            uint32_t lo, hi;
            BRLE_PAIR(x, 0, lo, hi);
            a0 = tfc_smlad(w13, hi, tfc_smlad(w02, lo, a0));
            BRLE_PAIR(x, 2, lo, hi);
            a1 = tfc_smlad(w13, hi, tfc_smlad(w02, lo, a1));
            BRLE_PAIR(x, 4, lo, hi);
            a2 = tfc_smlad(w13, hi, tfc_smlad(w02, lo, a2));
            BRLE_PAIR(x, 6, lo, hi);
            a3 = tfc_smlad(w13, hi, tfc_smlad(w02, lo, a3));
        }
        at -= row_words;
        const int32_t acc[BRLE_GROUP] = {a0, a1, a2, a3};
        brle_store_group(acc, r, y, q, fast);
    }
}

static void brle_group2(const brle_word *patch, const tfc_brle *w, const int32_t *row_records,
                        const int32_t *bias, int8_t *const y[], const tfc_channel_quant *q,
                        int fast)
{
    enum { WORDS = BRLE_GROUP }; /* one block column: BRLE_GROUP pixels x (x0x1) */
    const uint8_t *rec = w->data;
    const int32_t row_words = w->blocks_per_row * WORDS;
    int32_t at = -WORDS;
    for (int32_t r = 0; r < w->rows; ++r) {
        int32_t a0 = bias ? bias[r] : 0, a1 = a0, a2 = a0, a3 = a0;
        for (int32_t n = row_records[r]; n > 0; --n, rec += 3) {
            at += ((int32_t)rec[0] + 1) * WORDS;
            const brle_word *x = patch + at;
            uint16_t h;
            memcpy(&h, rec + 1, 2);
            const uint32_t v = tfc_sxtb16((uint32_t)h | ((uint32_t)h << 8)); /* (v1, v2) */
            uint32_t x0, x1;
            BRLE_PAIR(x, 0, x0, x1);
            a0 = tfc_smlad(v, x0, a0);
            a1 = tfc_smlad(v, x1, a1);
            BRLE_PAIR(x, 2, x0, x1);
            a2 = tfc_smlad(v, x0, a2);
            a3 = tfc_smlad(v, x1, a3);
        }
        at -= row_words;
        const int32_t acc[BRLE_GROUP] = {a0, a1, a2, a3};
        brle_store_group(acc, r, y, q, fast);
    }
}

static void brle_group(const brle_word *patch, const tfc_brle *w, const int32_t *row_records,
                       const int32_t *bias, int8_t *const y[], const tfc_channel_quant *q,
                       int fast)
{
    if (w->block == 4) {
        brle_group4(patch, w, row_records, bias, y, q, fast);
    } else {
        brle_group2(patch, w, row_records, bias, y, q, fast);
    }
}

/* Elements [at, at + n) of pixel k's row = src - zp, as int16 in the group patch. */
static void brle_widen(brle_word *patch, int32_t k, const int8_t *src, int32_t n, int32_t zp,
                       int32_t block, int32_t at)
{
    if ((n & 3) == 0 && (at & 3) == 0) {
        const uint32_t minus_zp = (uint32_t)(uint16_t)(int16_t)-zp * 0x00010001u;
        for (int32_t i = 0; i < n; i += 4) {
            const uint32_t x = tfc_load4(src + i);
            const uint32_t even = tfc_sadd16(tfc_sxtb16(x), minus_zp);     /* (x0, x2) */
            const uint32_t odd = tfc_sadd16(tfc_sxtb16_ror8(x), minus_zp); /* (x1, x3) */
            const int32_t e = at + i;
            if (block == 4) {
                brle_word *dst = patch + (e >> 2) * (2 * BRLE_GROUP) + 2 * k;
                dst[0] = even;
                dst[1] = odd;
            } else {
                brle_word *dst = patch + (e >> 1) * BRLE_GROUP + k;
                dst[0] = (even & 0xFFFFu) | (odd << 16);         /* (x0, x1) */
                dst[BRLE_GROUP] = (even >> 16) | (odd & 0xFFFF0000u); /* (x2, x3) */
            }
        }
        return;
    }
    brle_half *half = (brle_half *)patch;
    for (int32_t i = 0; i < n; ++i) {
        half[brle_group_index(at + i, k, block)] = (int16_t)((int32_t)src[i] - zp);
    }
}

/* Elements [at, at + n) of pixel k's row = 0 (padding). */
static void brle_zero(brle_word *patch, int32_t k, int32_t n, int32_t block, int32_t at)
{
    brle_half *half = (brle_half *)patch;
    for (int32_t i = 0; i < n; ++i) {
        half[brle_group_index(at + i, k, block)] = 0;
    }
}

/* Zeroes the row padding [length, blocks_per_row * block) of every pixel once per call: the
 * widening never writes it. */
static void brle_zero_padding(brle_word *patch, const tfc_brle *w, int32_t length)
{
    const int32_t padded = w->blocks_per_row * w->block;
    for (int32_t k = 0; k < BRLE_GROUP; ++k) {
        brle_zero(patch, k, padded - length, w->block, length);
    }
}

/* The conv window of output pixel (oh, ow) as pixel k of the group patch. */
static void brle_conv_patch(brle_word *patch, int32_t k, const int8_t *image, int32_t oh,
                            int32_t ow, const tfc_window *g, const tfc_channel_quant *q,
                            int32_t block)
{
    const int32_t ih0 = oh * g->stride_h - g->pad_top;
    const int32_t iw0 = ow * g->stride_w - g->pad_left;
    int32_t i = 0;
    for (int32_t kh = 0; kh < g->kernel_h; ++kh) {
        const int32_t ih = ih0 + kh * g->dilation_h;
        for (int32_t kw = 0; kw < g->kernel_w; ++kw, i += g->in_c) {
            const int32_t iw = iw0 + kw * g->dilation_w;
            if (ih >= 0 && ih < g->in_h && iw >= 0 && iw < g->in_w) {
                brle_widen(patch, k, image + (ih * g->in_w + iw) * g->in_c, g->in_c, q->input_zp,
                           block, i);
            } else {
                brle_zero(patch, k, g->in_c, block, i);
            }
        }
    }
}

/* The row records count, after the group patch in the kernels' scratch. */
static int32_t *brle_row_records(int16_t *scratch, const tfc_brle *w)
{
    return (int32_t *)(void *)(scratch + BRLE_GROUP * w->blocks_per_row * w->block);
}

void tfc_conv2d_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                        const tfc_window *g, const tfc_channel_quant *q, int16_t *scratch)
{
    brle_word *patch = (brle_word *)(void *)scratch;
    int32_t *row_records = brle_row_records(scratch, w);
    const int fast = brle_fast_requant(q, w->rows);
    brle_count_rows(w, row_records);
    brle_zero_padding(patch, w, g->kernel_h * g->kernel_w * g->in_c);
    const int32_t pixels = g->out_h * g->out_w;
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * g->in_c;
        int8_t *out = y + n * pixels * g->out_c;
        int32_t oh = 0, ow = 0; /* of pixel p */
        for (int32_t p = 0; p < pixels; p += BRLE_GROUP) {
            int8_t *outs[BRLE_GROUP];
            for (int32_t k = 0; k < BRLE_GROUP; ++k) {
                if (p + k < pixels) {
                    outs[k] = out + (p + k) * g->out_c;
                    brle_conv_patch(patch, k, image, oh, ow, g, q, w->block);
                    if (++ow == g->out_w) {
                        ow = 0;
                        ++oh;
                    }
                } else { /* past the last pixel, a slot repeats it: same result, same place */
                    outs[k] = outs[k - 1];
                    brle_conv_patch(patch, k, image, (pixels - 1) / g->out_w,
                                    (pixels - 1) % g->out_w, g, q, w->block);
                }
            }
            brle_group(patch, w, row_records, bias, outs, q, fast);
        }
    }
}

void tfc_linear_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                        int32_t rows, int32_t in_features, const tfc_channel_quant *q,
                        int16_t *scratch)
{
    brle_word *patch = (brle_word *)(void *)scratch;
    int32_t *row_records = brle_row_records(scratch, w);
    const int fast = brle_fast_requant(q, w->rows);
    brle_count_rows(w, row_records);
    brle_zero_padding(patch, w, in_features);
    for (int32_t t = 0; t < rows; t += BRLE_GROUP) {
        int8_t *outs[BRLE_GROUP];
        for (int32_t k = 0; k < BRLE_GROUP; ++k) {
            const int32_t token = t + k < rows ? t + k : rows - 1; /* past the end: repeat */
            outs[k] = y + token * w->rows;
            brle_widen(patch, k, x + token * in_features, in_features, q->input_zp, w->block, 0);
        }
        brle_group(patch, w, row_records, bias, outs, q, fast);
    }
}

/* One channel of a depthwise conv: its stored kernel rows (taps) against every output pixel. */
static void brle_depthwise_channel(const int8_t *x, int32_t c, const int8_t *const *taps,
                                   const int32_t *tap_rows, int32_t n_taps, int32_t acc0,
                                   int8_t *y, const tfc_window *g, const tfc_channel_quant *q,
                                   int fast)
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
                *out = brle_output(acc, q->multiplier[c], q->shift[c], q, fast);
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
    const int fast = brle_fast_requant(q, w->rows);
    for (int32_t k = 0; k <= w->records; ++k, rec += 1 + w->block) {
        /* past the last record, flush every remaining channel */
        col = k < w->records ? col + (int32_t)rec[0] + 1 : w->rows * w->blocks_per_row;
        while (col >= w->blocks_per_row && channel < w->rows) {
            brle_depthwise_channel(x, channel, taps, tap_rows, n_taps, bias ? bias[channel] : 0,
                                   y, g, q, fast);
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
