/* Fast dense int8 kernels: conv2d (groups == 1), linear and depthwise conv2d.
 *
 * conv2d and linear are one matrix product: rows (output pixels or tokens) times packed weights.
 * Two rows at a time are widened to int16 with the input zero point removed, into a "panel"
 * (scratch); padding widens to 0. Each panel then meets every output channel, two channels at a
 * time, so each weight word loaded (4 int8, unpacked by SXTB16) feeds four SMLADs: a 2x2 block of
 * rows x channels, 16 MACs for 15 instructions on the M7: one LDRD of 2 weight words, two LDRD
 * of 4 panel words, 4 SXTB16 and 8 SMLAD.
 *
 * Panel layout, per group g of 4 reduction elements (k = 4g..4g+3), four words:
 *     row0 (a0, a2), row0 (a1, a3), row1 (a0, a2), row1 (a1, a3)
 * i.e. pairwise interleaved so that SXTB16(w) = (w0, w2) and SXTB16(w ROR 8) = (w1, w3) line up
 * with them. The reduction is padded to K4 = K rounded up to 4 (panel 0, weights 0).
 *
 * Packed weights (kernels.py pack_gemm_weights): channel pairs (2p, 2p+1), each K4 / 4 groups of
 * [4 weights of channel 2p][4 weights of channel 2p+1]; an odd channel count adds a zero channel.
 *
 * Depthwise takes weights transposed to [kh, kw, C] (HWC) so four channels are one word, and a
 * bias with the zero point folded in (bias - input_zp * sum of the channel's taps): padding taps
 * then read the zero point itself (a row of it in scratch) and contribute nothing, without
 * branches in the loop. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

/* The most kernel taps (kh * kw) the depthwise kernel takes; kernels.py falls back beyond. */
#define TFC_DW_MAX_TAPS 64

/* ---- panels ------------------------------------------------------------------------------ */

/* Writes one int16 element k of `row` (0 or 1) into its interleaved slot. */
static inline void panel_put(uint32_t *panel, int32_t row, int32_t k, int32_t value)
{
    const int32_t lane = k & 3;
    uint32_t *word = panel + (k >> 2) * 4 + row * 2 + (lane & 1);
    const int32_t bit = (lane >> 1) * 16;
    *word = (*word & ~(0xFFFFu << bit)) | ((uint32_t)(uint16_t)value << bit);
}

/* Elements k .. k+count-1 of `row` = src[i] - zp, or 0 where src is NULL (padding). */
static void panel_pack(uint32_t *panel, int32_t row, int32_t k, const int8_t *src, int32_t count,
                       int32_t zp)
{
    while (count > 0 && (k & 3)) {
        panel_put(panel, row, k++, src ? *src++ - zp : 0);
        --count;
    }
    uint32_t *words = panel + (k >> 2) * 4 + row * 2;
    if (src) {
        const uint32_t minus_zp = (uint32_t)(uint16_t)(-zp) * 0x10001u;
        for (; count >= 4; count -= 4, k += 4, src += 4, words += 4) {
            const uint32_t x = tfc_load4(src);
            words[0] = tfc_sadd16(tfc_sxtb16(x), minus_zp);
            words[1] = tfc_sadd16(tfc_sxtb16_ror8(x), minus_zp);
        }
    } else {
        for (; count >= 4; count -= 4, k += 4, words += 4) {
            words[0] = 0;
            words[1] = 0;
        }
    }
    while (count-- > 0) {
        panel_put(panel, row, k++, src ? *src++ - zp : 0);
    }
}

/* Zeroes the last group of both rows, so the padding up to K4 reads 0. */
static inline void panel_clear_tail(uint32_t *panel, int32_t k4)
{
    if (k4 > 0) {
        uint32_t *last = panel + (k4 / 4 - 1) * 4;
        last[0] = last[1] = last[2] = last[3] = 0;
    }
}

/* ---- the 2 x 2 block product -------------------------------------------------------------- */

/* The requantization constants of a call, copied out of tfc_channel_quant: the output stores
 * (int8) may alias anything, so fields read through the pointer would be reloaded per output. */
typedef struct {
    const int32_t *multiplier, *shift, *high_word;
    int32_t output_zp, act_min, act_max;
} channel_requant;

static inline channel_requant requant_of(const tfc_channel_quant *q)
{
    channel_requant r = {q->multiplier, q->shift, q->high_word, q->output_zp, q->act_min,
                         q->act_max};
    return r;
}

/* Output channel o's int8 from the {multiplier, round, k} table (zero point included). */
static inline int8_t high_word_output(int32_t acc, const int32_t *params, const channel_requant *r)
{
    return (int8_t)tfc_clamp_i32(tfc_requantize_high(acc, params[0], params[1], params[2]),
                                 r->act_min, r->act_max);
}

static inline int8_t requant_output(int32_t acc, int32_t multiplier, int32_t shift,
                                    const channel_requant *r)
{
    int32_t out = tfc_requantize(acc, multiplier, shift) + r->output_zp;
    return (int8_t)tfc_clamp_i32(out, r->act_min, r->act_max);
}

static inline void load_weight_pair(const int8_t **p, uint32_t *lo, uint32_t *hi)
{
#if defined(TFC_USE_DSP)
    __asm__("ldrd %0, %1, [%2], #8"
            : "=&r"(*lo), "=&r"(*hi), "+r"(*p)
            : "m"(*(const uint32_t *)*p), "m"(*(const uint32_t *)(*p + 4)));
#else
    *lo = tfc_load4(*p);
    *hi = tfc_load4(*p + 4);
    *p += 8;
#endif
}

/* One group of 4 reduction elements of the 2x2 block: 2 weight words, 4 panel words, 16 MACs;
 * advances `a` and `w` past the group. */
#define GEMM_GROUP(a, w)                                                                         \
    do {                                                                                         \
        uint32_t r0e_, r0o_, r1e_, r1o_, w0_, w1_;                                               \
        tfc_load_pair(&(a), &r0e_, &r0o_);                                                     \
        tfc_load_pair(&(a), &r1e_, &r1o_);                                                     \
        load_weight_pair(&(w), &w0_, &w1_);                                                      \
        const uint32_t w0e_ = tfc_sxtb16(w0_), w0o_ = tfc_sxtb16_ror8(w0_);                      \
        acc00 = tfc_smlad(r0o_, w0o_, tfc_smlad(r0e_, w0e_, acc00));                             \
        acc10 = tfc_smlad(r1o_, w0o_, tfc_smlad(r1e_, w0e_, acc10));                             \
        const uint32_t w1e_ = tfc_sxtb16(w1_), w1o_ = tfc_sxtb16_ror8(w1_);                      \
        acc01 = tfc_smlad(r0o_, w1o_, tfc_smlad(r0e_, w1e_, acc01));                             \
        acc11 = tfc_smlad(r1o_, w1o_, tfc_smlad(r1e_, w1e_, acc11));                             \
    } while (0)

/* Both panel rows times every output channel; y0/y1 are the rows' outputs (y1 NULL when the panel
 * holds one real row twice). */
static void panel_times_weights(const uint32_t *panel, const int8_t *w_packed,
                                const int32_t *bias, int8_t *y0, int8_t *y1, int32_t k4,
                                int32_t out_c, const tfc_channel_quant *q)
{
    const channel_requant r = requant_of(q);
    const int32_t groups = k4 >> 2;
    const int8_t *w = w_packed;
    for (int32_t o = 0; o < out_c; o += 2) {
        const int32_t has_second = o + 1 < out_c;
        const int32_t bias0 = bias ? bias[o] : 0;
        const int32_t bias1 = bias && has_second ? bias[o + 1] : 0;
        int32_t acc00 = bias0, acc01 = bias1, acc10 = bias0, acc11 = bias1;
        const uint32_t *a = panel;
        /* Two groups per trip halve the loop overhead. */
        for (const uint32_t *pairs_end = panel + (groups & ~1) * 4; a != pairs_end;) {
            GEMM_GROUP(a, w);
            GEMM_GROUP(a, w);
        }
        if (groups & 1) {
            GEMM_GROUP(a, w);
        }
        if (r.high_word) {
            const int32_t *p0 = r.high_word + 3 * o;
            y0[o] = high_word_output(acc00, p0, &r);
            if (y1) {
                y1[o] = high_word_output(acc10, p0, &r);
            }
            if (has_second) {
                y0[o + 1] = high_word_output(acc01, p0 + 3, &r);
                if (y1) {
                    y1[o + 1] = high_word_output(acc11, p0 + 3, &r);
                }
            }
            continue;
        }
        const int32_t m0 = r.multiplier[o], s0 = r.shift[o];
        y0[o] = requant_output(acc00, m0, s0, &r);
        if (y1) {
            y1[o] = requant_output(acc10, m0, s0, &r);
        }
        if (has_second) {
            const int32_t m1 = r.multiplier[o + 1], s1 = r.shift[o + 1];
            y0[o + 1] = requant_output(acc01, m1, s1, &r);
            if (y1) {
                y1[o + 1] = requant_output(acc11, m1, s1, &r);
            }
        }
    }
}

/* ---- linear ------------------------------------------------------------------------------ */

void tfc_linear_s8_packed(const int8_t *x, const int8_t *w_packed, const int32_t *bias, int8_t *y,
                          int32_t rows, int32_t in_features, int32_t out_features,
                          const tfc_channel_quant *q, uint32_t *panel)
{
    const int32_t k4 = (in_features + 3) & ~3;
    for (int32_t r = 0; r < rows; r += 2) {
        const int32_t pair = r + 1 < rows;
        const int32_t r1 = pair ? r + 1 : r;
        panel_clear_tail(panel, k4);
        panel_pack(panel, 0, 0, x + r * in_features, in_features, q->input_zp);
        panel_pack(panel, 1, 0, x + r1 * in_features, in_features, q->input_zp);
        panel_times_weights(panel, w_packed, bias, y + r * out_features,
                            pair ? y + r1 * out_features : NULL, k4, out_features, q);
    }
}

/* ---- conv2d (groups == 1) ---------------------------------------------------------------- */

/* The im2col row of output pixel (oh, ow) of `image` into panel row `row`. */
static void panel_pack_window(uint32_t *panel, int32_t row, const int8_t *image, int32_t oh,
                              int32_t ow, const tfc_window *g, int32_t zp)
{
    const int32_t ih0 = oh * g->stride_h - g->pad_top;
    const int32_t iw0 = ow * g->stride_w - g->pad_left;
    const int32_t row_len = g->kernel_w * g->in_c;
    int32_t k = 0;
    for (int32_t kh = 0; kh < g->kernel_h; ++kh, k += row_len) {
        const int32_t ih = ih0 + kh * g->dilation_h;
        if (ih < 0 || ih >= g->in_h) {
            panel_pack(panel, row, k, NULL, row_len, zp);
            continue;
        }
        const int8_t *line = image + ih * g->in_w * g->in_c;
        const int32_t iw_last = iw0 + (g->kernel_w - 1) * g->dilation_w;
        if (g->dilation_w == 1 && iw0 >= 0 && iw_last < g->in_w) {
            panel_pack(panel, row, k, line + iw0 * g->in_c, row_len, zp); /* one contiguous run */
            continue;
        }
        for (int32_t kw = 0; kw < g->kernel_w; ++kw) {
            const int32_t iw = iw0 + kw * g->dilation_w;
            const int8_t *src = (iw < 0 || iw >= g->in_w) ? NULL : line + iw * g->in_c;
            panel_pack(panel, row, k + kw * g->in_c, src, g->in_c, zp);
        }
    }
}

void tfc_conv2d_s8_packed(const int8_t *x, const int8_t *w_packed, const int32_t *bias, int8_t *y,
                          const tfc_window *g, const tfc_channel_quant *q, uint32_t *panel)
{
    const int32_t k4 = (g->kernel_h * g->kernel_w * g->in_c + 3) & ~3;
    const int32_t per_image = g->out_h * g->out_w;
    const int32_t pixels = g->batch * per_image;
    for (int32_t p = 0; p < pixels; p += 2) {
        const int32_t pair = p + 1 < pixels;
        panel_clear_tail(panel, k4);
        for (int32_t row = 0; row < 2; ++row) {
            const int32_t pixel = pair ? p + row : p;
            const int32_t n = pixel / per_image, at = pixel % per_image;
            const int8_t *image = x + n * g->in_h * g->in_w * g->in_c;
            panel_pack_window(panel, row, image, at / g->out_w, at % g->out_w, g, q->input_zp);
        }
        panel_times_weights(panel, w_packed, bias, y + p * g->out_c,
                            pair ? y + (p + 1) * g->out_c : NULL, k4, g->out_c, q);
    }
}

/* ---- depthwise conv2d (groups == in_c == out_c) ------------------------------------------- */

/* One output pixel: every channel over `taps` input pointers (each at channel 0). Not inlined and
 * not unrolled over the taps: with the requantization inlined as well, an unrolled body runs out of
 * registers and spills more than the loop overhead it saves. */
static void depthwise_pixel(const int8_t *const *tap, int32_t taps, const int8_t *w_hwc,
                                   const int32_t *folded_bias, int8_t *y, int32_t channels,
                                   const channel_requant *q)
{
    int32_t c = 0;
    for (; c + 4 <= channels; c += 4) {
        int32_t acc0 = folded_bias[c], acc1 = folded_bias[c + 1];
        int32_t acc2 = folded_bias[c + 2], acc3 = folded_bias[c + 3];
        const int8_t *w = w_hwc + c;
        for (int32_t t = 0; t < taps; ++t, w += channels) {
            const uint32_t xv = tfc_load4(tap[t] + c), wv = tfc_load4(w);
            const uint32_t x02 = tfc_sxtb16(xv), x13 = tfc_sxtb16_ror8(xv);
            const uint32_t w02 = tfc_sxtb16(wv), w13 = tfc_sxtb16_ror8(wv);
            acc0 = tfc_smlabb(x02, w02, acc0);
            acc2 = tfc_smlatt(x02, w02, acc2);
            acc1 = tfc_smlabb(x13, w13, acc1);
            acc3 = tfc_smlatt(x13, w13, acc3);
        }
        if (q->high_word) {
            const int32_t *p = q->high_word + 3 * c;
            y[c] = high_word_output(acc0, p, q);
            y[c + 1] = high_word_output(acc1, p + 3, q);
            y[c + 2] = high_word_output(acc2, p + 6, q);
            y[c + 3] = high_word_output(acc3, p + 9, q);
            continue;
        }
        y[c] = requant_output(acc0, q->multiplier[c], q->shift[c], q);
        y[c + 1] = requant_output(acc1, q->multiplier[c + 1], q->shift[c + 1], q);
        y[c + 2] = requant_output(acc2, q->multiplier[c + 2], q->shift[c + 2], q);
        y[c + 3] = requant_output(acc3, q->multiplier[c + 3], q->shift[c + 3], q);
    }
    for (; c < channels; ++c) {
        int32_t acc = folded_bias[c];
        for (int32_t t = 0; t < taps; ++t) {
            acc += (int32_t)tap[t][c] * (int32_t)w_hwc[t * channels + c];
        }
        y[c] = q->high_word ? high_word_output(acc, q->high_word + 3 * c, q)
                            : requant_output(acc, q->multiplier[c], q->shift[c], q);
    }
}

void tfc_depthwise_s8_hwc(const int8_t *x, const int8_t *w_hwc, const int32_t *folded_bias,
                          int8_t *y, const tfc_window *g, const tfc_channel_quant *q,
                          int8_t *zp_row)
{
    const int32_t channels = g->in_c;
    const int32_t taps = g->kernel_h * g->kernel_w;
    const int8_t *tap[TFC_DW_MAX_TAPS];
    const channel_requant r = requant_of(q);
    for (int32_t c = 0; c < channels; ++c) {
        zp_row[c] = (int8_t)q->input_zp;
    }
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * channels;
        for (int32_t oh = 0; oh < g->out_h; ++oh) {
            const int32_t ih0 = oh * g->stride_h - g->pad_top;
            for (int32_t ow = 0; ow < g->out_w; ++ow, y += channels) {
                const int32_t iw0 = ow * g->stride_w - g->pad_left;
                int32_t t = 0;
                for (int32_t kh = 0; kh < g->kernel_h; ++kh) {
                    const int32_t ih = ih0 + kh * g->dilation_h;
                    for (int32_t kw = 0; kw < g->kernel_w; ++kw, ++t) {
                        const int32_t iw = iw0 + kw * g->dilation_w;
                        const int inside = ih >= 0 && ih < g->in_h && iw >= 0 && iw < g->in_w;
                        tap[t] = inside ? image + (ih * g->in_w + iw) * channels : zp_row;
                    }
                }
                depthwise_pixel(tap, taps, w_hwc, folded_bias, y, channels, &r);
            }
        }
    }
}
