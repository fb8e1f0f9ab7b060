/* Fast dense int8 kernels: conv2d (groups == 1) and linear (depthwise: tfc_depthwise.c).
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
 * [4 weights of channel 2p][4 weights of channel 2p+1]; an odd channel count adds a zero channel. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

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

/* How a call requantizes: from the {multiplier, round, k} table with SSAT as the only clamp (the
 * activation range is all of int8), or by testing which constants it has. */
enum { REQUANT_TABLE_SATURATE, REQUANT_ANY };

/* One output channel's two results (rows 0 and 1) in table mode: the channel's constants are
 * loaded once for both rows. */
static inline __attribute__((always_inline)) void
table_saturate_pair(int32_t acc0, int32_t acc1, const int32_t *params, int8_t *y0, int8_t *y1)
{
    const int32_t multiplier = params[0], rounding = params[1], k = params[2];
    *y0 = (int8_t)tfc_ssat8(tfc_requantize_high(acc0, multiplier, rounding, k));
    if (y1) {
        *y1 = (int8_t)tfc_ssat8(tfc_requantize_high(acc1, multiplier, rounding, k));
    }
}

/* Both panel rows times every output channel; y0/y1 are the rows' outputs (y1 NULL when the panel
 * holds one real row twice). Inlined once per requantization mode. */
static inline __attribute__((always_inline)) void
panel_times_weights_mode(const uint32_t *panel, const int8_t *w_packed, const int32_t *bias,
                         int8_t *y0, int8_t *y1, int32_t k4, int32_t out_c,
                         const tfc_channel_quant *q, int mode)
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
        if (mode == REQUANT_TABLE_SATURATE) {
            const int32_t *p0 = r.high_word + 3 * o;
            table_saturate_pair(acc00, acc10, p0, y0 + o, y1 ? y1 + o : NULL);
            if (has_second) {
                table_saturate_pair(acc01, acc11, p0 + 3, y0 + o + 1, y1 ? y1 + o + 1 : NULL);
            }
            continue;
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

static void panel_times_weights_saturate(const uint32_t *panel, const int8_t *w_packed,
                                         const int32_t *bias, int8_t *y0, int8_t *y1, int32_t k4,
                                         int32_t out_c, const tfc_channel_quant *q)
{
    panel_times_weights_mode(panel, w_packed, bias, y0, y1, k4, out_c, q, REQUANT_TABLE_SATURATE);
}

static void panel_times_weights_any(const uint32_t *panel, const int8_t *w_packed,
                                    const int32_t *bias, int8_t *y0, int8_t *y1, int32_t k4,
                                    int32_t out_c, const tfc_channel_quant *q)
{
    panel_times_weights_mode(panel, w_packed, bias, y0, y1, k4, out_c, q, REQUANT_ANY);
}

typedef void (*panel_times_weights_fn)(const uint32_t *, const int8_t *, const int32_t *,
                                       int8_t *, int8_t *, int32_t, int32_t,
                                       const tfc_channel_quant *);

/* The panel product of a call: the table-and-SSAT instance when the call allows it. */
static panel_times_weights_fn panel_times_weights_for(const tfc_channel_quant *q)
{
    const int saturate_only = q->act_min <= -128 && q->act_max >= 127;
    return q->high_word && saturate_only ? panel_times_weights_saturate : panel_times_weights_any;
}

/* ---- linear ------------------------------------------------------------------------------ */

void tfc_linear_s8_packed(const int8_t *x, const int8_t *w_packed, const int32_t *bias, int8_t *y,
                          int32_t rows, int32_t in_features, int32_t out_features,
                          const tfc_channel_quant *q, uint32_t *panel)
{
    const int32_t k4 = (in_features + 3) & ~3;
    const panel_times_weights_fn panel_times_weights = panel_times_weights_for(q);
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

/* Kernel windows up to this many bytes whose rows are not whole words (a stem's 3 x 3 x 3) are
 * gathered as bytes first, then widened a word at a time: widening them row by row would put
 * most elements through panel_put. */
#define TFC_SMALL_WINDOW_BYTES 64

/* Short copies and fills a word at a time (unaligned words are allowed on the M7 and are one
 * LDR/STR there). The empty asm keeps gcc from turning the loops into memcpy/memset calls, which
 * cost more than the copy itself at these lengths. */
static inline void copy_short(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        const uint32_t word = tfc_load4(src);
        __builtin_memcpy(dst, &word, 4);
        __asm__ volatile("");
    }
    if (n & 2) {
        dst[0] = src[0];
        dst[1] = src[1];
        dst += 2;
        src += 2;
    }
    if (n & 1) {
        dst[0] = src[0];
    }
}

static inline void fill_short(int8_t *dst, int32_t value, int32_t n)
{
    const uint32_t word = (uint32_t)(uint8_t)value * 0x01010101u;
    for (; n >= 4; n -= 4, dst += 4) {
        __builtin_memcpy(dst, &word, 4);
        __asm__ volatile("");
    }
    if (n & 2) {
        dst[0] = dst[1] = (int8_t)value;
        dst += 2;
    }
    if (n & 1) {
        dst[0] = (int8_t)value;
    }
}

/* The im2col row of output pixel (oh, ow) as int8 codes, zero point where it is padding (it
 * widens to 0), up to k4 bytes. */
static void small_window_bytes(int8_t *bytes, int32_t k4, const int8_t *image, int32_t ih0,
                               int32_t iw0, const tfc_window *g, int32_t zp)
{
    const int32_t row_len = g->kernel_w * g->in_c;
    int32_t k = 0;
    const int whole_rows = g->dilation_w == 1 && iw0 >= 0 &&
                           iw0 + (g->kernel_w - 1) < g->in_w;
    for (int32_t kh = 0; kh < g->kernel_h; ++kh, k += row_len) {
        const int32_t ih = ih0 + kh * g->dilation_h;
        if (ih < 0 || ih >= g->in_h) {
            fill_short(bytes + k, zp, row_len);
            continue;
        }
        const int8_t *line = image + ih * g->in_w * g->in_c;
        if (whole_rows) {
            copy_short(bytes + k, line + iw0 * g->in_c, row_len);
            continue;
        }
        for (int32_t kw = 0; kw < g->kernel_w; ++kw) {
            const int32_t iw = iw0 + kw * g->dilation_w;
            if (iw < 0 || iw >= g->in_w) {
                fill_short(bytes + k + kw * g->in_c, zp, g->in_c);
            } else {
                copy_short(bytes + k + kw * g->in_c, line + iw * g->in_c, g->in_c);
            }
        }
    }
    fill_short(bytes + k, zp, k4 - k);
}

/* The im2col row of output pixel (oh, ow) of `image` into panel row `row`. */
static void panel_pack_window(uint32_t *panel, int32_t row, const int8_t *image, int32_t oh,
                              int32_t ow, const tfc_window *g, int32_t zp)
{
    const int32_t ih0 = oh * g->stride_h - g->pad_top;
    const int32_t iw0 = ow * g->stride_w - g->pad_left;
    const int32_t row_len = g->kernel_w * g->in_c;
    const int32_t k4 = (g->kernel_h * row_len + 3) & ~3;
    if ((row_len & 3) != 0 && k4 <= TFC_SMALL_WINDOW_BYTES) {
        int8_t bytes[TFC_SMALL_WINDOW_BYTES] __attribute__((aligned(4)));
        small_window_bytes(bytes, k4, image, ih0, iw0, g, zp);
        panel_pack(panel, row, 0, bytes, k4, zp);
        return;
    }
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
    const panel_times_weights_fn panel_times_weights = panel_times_weights_for(q);
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
