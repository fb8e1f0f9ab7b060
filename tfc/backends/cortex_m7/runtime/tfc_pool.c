/* Pooling over NHWC windows and means over arbitrary axes.
 *
 * The average divisor counts the window taps that land on real input, plus those on the explicit
 * padding when count_include_pad; taps that ceil mode adds past the end padding never count. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

/* Number of taps of one window along one axis, split into real and explicit-padding taps. */
static void count_taps(int32_t start, int32_t kernel, int32_t dilation, int32_t size,
                       int32_t pad_begin, int32_t pad_end, int32_t *real, int32_t *padded)
{
    *real = 0;
    *padded = 0;
    for (int32_t k = 0; k < kernel; ++k) {
        int32_t i = start + k * dilation;
        if (i >= 0 && i < size) {
            *real += 1;
        } else if (i >= -pad_begin && i < size + pad_end) {
            *padded += 1;
        }
    }
}

static int32_t window_count(const tfc_window *g, int32_t ih0, int32_t iw0, int32_t include_pad)
{
    int32_t real_h, pad_h, real_w, pad_w;
    count_taps(ih0, g->kernel_h, g->dilation_h, g->in_h, g->pad_top, g->pad_bottom, &real_h, &pad_h);
    count_taps(iw0, g->kernel_w, g->dilation_w, g->in_w, g->pad_left, g->pad_right, &real_w, &pad_w);
    if (include_pad) {
        return (real_h + pad_h) * (real_w + pad_w);
    }
    return real_h * real_w;
}

/* Visits every (output position, channel) of a pooling window walk. BODY sees `image`
 * (the batch's input), ih0/iw0 (window origin) and `c`; it writes *y++. */
#define TFC_POOL_LOOP(G, BODY)                                                                   \
    for (int32_t n_ = 0; n_ < (G)->batch; ++n_) {                                                \
        for (int32_t oh_ = 0; oh_ < (G)->out_h; ++oh_) {                                         \
            const int32_t ih0 = oh_ * (G)->stride_h - (G)->pad_top;                              \
            for (int32_t ow_ = 0; ow_ < (G)->out_w; ++ow_) {                                     \
                const int32_t iw0 = ow_ * (G)->stride_w - (G)->pad_left;                         \
                for (int32_t c = 0; c < (G)->in_c; ++c) {                                        \
                    BODY                                                                         \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        x += (G)->in_h * (G)->in_w * (G)->in_c;                                                  \
    }

/* Visits the in-bounds taps of the current window: `v` is the tap's value. */
#define TFC_WINDOW_TAPS(G, TYPE, TAP)                                                            \
    for (int32_t kh_ = 0; kh_ < (G)->kernel_h; ++kh_) {                                          \
        const int32_t ih_ = ih0 + kh_ * (G)->dilation_h;                                         \
        if (ih_ < 0 || ih_ >= (G)->in_h) {                                                       \
            continue;                                                                            \
        }                                                                                        \
        for (int32_t kw_ = 0; kw_ < (G)->kernel_w; ++kw_) {                                      \
            const int32_t iw_ = iw0 + kw_ * (G)->dilation_w;                                     \
            if (iw_ < 0 || iw_ >= (G)->in_w) {                                                   \
                continue;                                                                        \
            }                                                                                    \
            const TYPE v = x[(ih_ * (G)->in_w + iw_) * (G)->in_c + c];                           \
            TAP                                                                                  \
        }                                                                                        \
    }

/* ---- int8 max pooling: four channels per instruction pair ------------------------------------
 * Channels are innermost (NHWC), so each window tap is a contiguous row of in_c bytes and the
 * output pixel is the lane-wise max of its taps' rows. Taps are consumed two at a time
 * (y = max(y, max(p, q))) so each output word is loaded and stored once per pair. */

/* Lane-wise signed max of four int8 (SSUB8 sets GE where a >= b, SEL takes those lanes of a). */
static inline uint32_t max4_s8(uint32_t a, uint32_t b)
{
#if defined(TFC_USE_DSP)
    uint32_t out;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(out) : "r"(a), "r"(b));
    return out;
#else
    uint32_t out = 0;
    for (int32_t k = 0; k < 32; k += 8) {
        int8_t u = (int8_t)(a >> k), v = (int8_t)(b >> k);
        out |= (uint32_t)(uint8_t)(u > v ? u : v) << k;
    }
    return out;
#endif
}

static inline void store4(int8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline int8_t max_s8(int8_t a, int8_t b)
{
    return a > b ? a : b;
}

/* y = max(p, q), or max(y, p, q) when `accumulate`; q == NULL means a single tap p. */
static void max_rows(int8_t *y, const int8_t *p, const int8_t *q, int32_t channels, int accumulate)
{
    int32_t c = 0;
    if (q == NULL && !accumulate) {
        for (; c + 4 <= channels; c += 4) {
            store4(y + c, tfc_load4(p + c));
        }
        for (; c < channels; ++c) {
            y[c] = p[c];
        }
    } else if (q == NULL) {
        for (; c + 4 <= channels; c += 4) {
            store4(y + c, max4_s8(tfc_load4(y + c), tfc_load4(p + c)));
        }
        for (; c < channels; ++c) {
            y[c] = max_s8(y[c], p[c]);
        }
    } else if (!accumulate) {
        for (; c + 4 <= channels; c += 4) {
            store4(y + c, max4_s8(tfc_load4(p + c), tfc_load4(q + c)));
        }
        for (; c < channels; ++c) {
            y[c] = max_s8(p[c], q[c]);
        }
    } else {
        for (; c + 4 <= channels; c += 4) {
            store4(y + c, max4_s8(tfc_load4(y + c), max4_s8(tfc_load4(p + c), tfc_load4(q + c))));
        }
        for (; c < channels; ++c) {
            y[c] = max_s8(y[c], max_s8(p[c], q[c]));
        }
    }
}

/* y = max of the four rows of a 2x2 window (the common pooling layer), all in registers. */
static void max_rows_2x2(int8_t *y, const int8_t *p, const int8_t *q, int32_t channels)
{
    int32_t c = 0;
    for (; c + 4 <= channels; c += 4) {
        const uint32_t top = max4_s8(tfc_load4(p + c), tfc_load4(p + channels + c));
        const uint32_t bottom = max4_s8(tfc_load4(q + c), tfc_load4(q + channels + c));
        store4(y + c, max4_s8(top, bottom));
    }
    for (; c < channels; ++c) {
        y[c] = max_s8(max_s8(p[c], p[channels + c]), max_s8(q[c], q[channels + c]));
    }
}

void tfc_maxpool2d_s8(const int8_t *x, int8_t *y, const tfc_window *g)
{
    const int32_t channels = g->in_c;
    const int plain_2x2 = g->kernel_h == 2 && g->kernel_w == 2 && g->dilation_h == 1 &&
                          g->dilation_w == 1;
    for (int32_t n = 0; n < g->batch; ++n) {
        for (int32_t oh = 0; oh < g->out_h; ++oh) {
            const int32_t ih0 = oh * g->stride_h - g->pad_top;
            for (int32_t ow = 0; ow < g->out_w; ++ow, y += channels) {
                const int32_t iw0 = ow * g->stride_w - g->pad_left;
                if (plain_2x2 && ih0 >= 0 && iw0 >= 0 && ih0 + 2 <= g->in_h && iw0 + 2 <= g->in_w) {
                    const int8_t *top = x + (ih0 * g->in_w + iw0) * channels;
                    max_rows_2x2(y, top, top + g->in_w * channels, channels);
                    continue;
                }
                const int8_t *pending = NULL; /* a tap waiting for its pair */
                int started = 0;
                for (int32_t kh = 0; kh < g->kernel_h; ++kh) {
                    const int32_t ih = ih0 + kh * g->dilation_h;
                    if (ih < 0 || ih >= g->in_h) {
                        continue;
                    }
                    for (int32_t kw = 0; kw < g->kernel_w; ++kw) {
                        const int32_t iw = iw0 + kw * g->dilation_w;
                        if (iw < 0 || iw >= g->in_w) {
                            continue;
                        }
                        const int8_t *tap = x + (ih * g->in_w + iw) * channels;
                        if (pending == NULL) {
                            pending = tap;
                            continue;
                        }
                        max_rows(y, pending, tap, channels, started);
                        started = 1;
                        pending = NULL;
                    }
                }
                if (pending != NULL) {
                    max_rows(y, pending, NULL, channels, started);
                } else if (!started) {
                    memset(y, -128, (size_t)channels); /* a window of padding only */
                }
            }
        }
        x += g->in_h * g->in_w * channels;
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_maxpool2d_f32(const float *x, float *y, const tfc_window *g)
{
    TFC_POOL_LOOP(g, {
        float best = -INFINITY;
        TFC_WINDOW_TAPS(g, float, { best = v > best ? v : best; })
        *y++ = best;
    })
}
#endif /* TFC_INT8_ONLY */

/* ---- int8 averages ---------------------------------------------------------------------------
 * The op's arithmetic (ops.py avgpool2d) with a cheaper exact step: for counts below 2^15 the
 * fine mean's sum * 2^8 fits int32, so its rounding division is one hardware divide instead of
 * a 64-bit library call. Window bounds are clipped once per output pixel, not per tap. */
#define TFC_SMALL_COUNT 32767 /* 255 * 2^8 * 32767 + 32767 / 2 < 2^31 */

static inline int32_t mean_fine_small(int32_t sum, int32_t count)
{
    const int32_t scaled = sum * (1 << TFC_MEAN_EXTRA_BITS);
    const int32_t half = count >> 1;
    return scaled >= 0 ? (scaled + half) / count : -((half - scaled) / count);
}

/* The output code of a mean: `sum` is already relative to the input zero point. */
static inline int8_t mean_out(int32_t sum, int32_t count, const tfc_tensor_quant *q)
{
    const int32_t mean = count <= TFC_SMALL_COUNT ? mean_fine_small(sum, count)
                                                  : tfc_mean_fine(sum, count);
    const int32_t out = tfc_requantize(mean, q->multiplier, q->shift) + q->output_zp;
    return (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
}

/* [lo, hi): the taps k of a window axis that land on real input. */
static void real_taps(int32_t start, int32_t kernel, int32_t dilation, int32_t size, int32_t *lo,
                      int32_t *hi)
{
    int32_t k = 0;
    while (k < kernel && start + k * dilation < 0) {
        ++k;
    }
    *lo = k;
    k = kernel;
    while (k > *lo && start + (k - 1) * dilation >= size) {
        --k;
    }
    *hi = k;
}

void tfc_avgpool2d_s8(const int8_t *x, int8_t *y, const tfc_window *g, int32_t count_include_pad,
                      const tfc_tensor_quant *q)
{
    const int32_t channels = g->in_c;
    const int32_t pixel_step_w = g->dilation_w * channels;
    const int32_t pixel_step_h = g->dilation_h * g->in_w * channels;
    for (int32_t n = 0; n < g->batch; ++n) {
        for (int32_t oh = 0; oh < g->out_h; ++oh) {
            const int32_t ih0 = oh * g->stride_h - g->pad_top;
            int32_t kh_lo, kh_hi;
            real_taps(ih0, g->kernel_h, g->dilation_h, g->in_h, &kh_lo, &kh_hi);
            for (int32_t ow = 0; ow < g->out_w; ++ow, y += channels) {
                const int32_t iw0 = ow * g->stride_w - g->pad_left;
                int32_t kw_lo, kw_hi;
                real_taps(iw0, g->kernel_w, g->dilation_w, g->in_w, &kw_lo, &kw_hi);
                const int32_t taps = (kh_hi - kh_lo) * (kw_hi - kw_lo);
                const int32_t count = count_include_pad ? window_count(g, ih0, iw0, 1) : taps;
                const int32_t zero_sum = taps * q->input_zp; /* padding adds 0, real taps x - zp */
                /* The first real tap (never a padded address). */
                const int8_t *origin = x + ((ih0 + kh_lo * g->dilation_h) * g->in_w + iw0 +
                                            kw_lo * g->dilation_w) * channels;
                if (taps == 4 && g->kernel_h == 2 && g->kernel_w == 2) { /* a whole 2x2 window */
                    const int8_t *p = origin, *r = origin + pixel_step_h;
                    for (int32_t c = 0; c < channels; ++c) {
                        const int32_t sum = p[c] + p[c + pixel_step_w] + r[c] + r[c + pixel_step_w];
                        y[c] = mean_out(sum - zero_sum, count, q);
                    }
                    continue;
                }
                for (int32_t c = 0; c < channels; ++c) {
                    int32_t sum = 0;
                    for (int32_t kh = 0; kh < kh_hi - kh_lo; ++kh) {
                        const int8_t *row = origin + kh * pixel_step_h + c;
                        for (int32_t kw = 0; kw < kw_hi - kw_lo; ++kw) {
                            sum += row[kw * pixel_step_w];
                        }
                    }
                    y[c] = mean_out(sum - zero_sum, count, q);
                }
            }
        }
        x += g->in_h * g->in_w * channels;
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_avgpool2d_f32(const float *x, float *y, const tfc_window *g, int32_t count_include_pad)
{
    TFC_POOL_LOOP(g, {
        float acc = 0.0f;
        TFC_WINDOW_TAPS(g, float, { acc += v; })
        *y++ = acc / (float)window_count(g, ih0, iw0, count_include_pad);
    })
}
#endif /* TFC_INT8_ONLY */

/* Walks the reduced elements of one output; SUM(v) accumulates each. */
#define TFC_REDUCE_LOOP(S, BASE, SUM)                                                            \
    do {                                                                                         \
        const int32_t last_ = (S)->reduce_rank - 1;                                              \
        const int32_t inner_ = (S)->reduce_dims[last_];                                          \
        const int32_t step_ = (S)->reduce_strides[last_];                                        \
        const int32_t rows_ = tfc_product(last_, (S)->reduce_dims);                              \
        tfc_walker red_;                                                                         \
        tfc_walker_start(&red_);                                                                 \
        for (int32_t row_ = 0; row_ < rows_; ++row_) {                                           \
            for (int32_t i_ = 0; i_ < inner_; ++i_) {                                            \
                SUM((BASE)[red_.off_a + i_ * step_]);                                            \
            }                                                                                    \
            tfc_walker_next(&red_, last_, (S)->reduce_dims, (S)->reduce_strides, NULL);          \
        }                                                                                        \
    } while (0)

void tfc_reduce_mean_s8(const int8_t *x, int8_t *y, const tfc_reduce_shape *s,
                        const tfc_tensor_quant *q)
{
    const int32_t outputs = tfc_product(s->outer_rank, s->outer_dims);
    const int32_t count = tfc_product(s->reduce_rank, s->reduce_dims);
    tfc_walker it;
    tfc_walker_start(&it);
    for (int32_t o = 0; o < outputs; ++o) {
        const int8_t *base = x + it.off_a;
        int32_t acc = 0;
#define SUM_S8(v) (acc += (int32_t)(v) - q->input_zp)
        TFC_REDUCE_LOOP(s, base, SUM_S8);
#undef SUM_S8
        int32_t mean = tfc_mean_fine(acc, count);
        int32_t out = tfc_requantize(mean, q->multiplier, q->shift) + q->output_zp;
        *y++ = (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
        tfc_walker_next(&it, s->outer_rank, s->outer_dims, s->outer_strides, NULL);
    }
}

/* ---- column means: [outer][rows][channels], the mean over rows ------------------------------
 * The pooled head's mean over tokens and the spatial mean of NHWC maps. A word of 4 channels adds
 * into two words of int16 lanes (SXTAB16 and SXTAB16 ROR 8: channels 0, 2 and 1, 3), so a row
 * costs about one instruction per channel. A lane holds any sum of LANE_ROWS int8 values
 * (|sum| <= 128 * 256 = 2^15, and -2^15 is the only sum of that size); longer columns are summed
 * in blocks of LANE_ROWS rows and the lanes flushed into int32 between blocks. */
#define LANE_ROWS 256

/* Flushes the lanes of one word pair (channels c..c+3) into sums[0..4). */
static inline void flush_lanes(uint32_t even, uint32_t odd, int32_t *sums)
{
    sums[0] += (int16_t)even;
    sums[1] += (int16_t)odd;
    sums[2] += (int16_t)(even >> 16);
    sums[3] += (int16_t)(odd >> 16);
}

/* sums[0..8) += the sums of the 8 columns at `column` over `rows` rows, `row_step` apart. */
static void column_sums8(const int8_t *column, int32_t rows, int32_t row_step, int32_t *sums)
{
    while (rows > 0) {
        const int32_t block = rows < LANE_ROWS ? rows : LANE_ROWS;
        uint32_t even0 = 0, odd0 = 0, even1 = 0, odd1 = 0;
        for (const int8_t *const end = column + block * row_step; column != end; column += row_step) {
            const uint32_t lo = tfc_load4(column), hi = tfc_load4(column + 4);
            even0 = tfc_sxtab16(even0, lo);
            odd0 = tfc_sxtab16_ror8(odd0, lo);
            even1 = tfc_sxtab16(even1, hi);
            odd1 = tfc_sxtab16_ror8(odd1, hi);
        }
        flush_lanes(even0, odd0, sums);
        flush_lanes(even1, odd1, sums + 4);
        rows -= block;
    }
}

/* sums[0..4) += the sums of the 4 columns at `column` (as column_sums8). */
static void column_sums4(const int8_t *column, int32_t rows, int32_t row_step, int32_t *sums)
{
    while (rows > 0) {
        const int32_t block = rows < LANE_ROWS ? rows : LANE_ROWS;
        uint32_t even = 0, odd = 0;
        for (const int8_t *const end = column + block * row_step; column != end; column += row_step) {
            const uint32_t word = tfc_load4(column);
            even = tfc_sxtab16(even, word);
            odd = tfc_sxtab16_ror8(odd, word);
        }
        flush_lanes(even, odd, sums);
        rows -= block;
    }
}

void tfc_reduce_mean_columns_s8(const int8_t *x, int8_t *y, int32_t outer, int32_t rows,
                                int32_t channels, const tfc_tensor_quant *q)
{
    const int32_t zero_sum = rows * q->input_zp; /* sum (x - zp) = sum x - rows * zp */
    for (int32_t o = 0; o < outer; ++o, x += rows * channels, y += channels) {
        int32_t c = 0;
        for (; c + 8 <= channels; c += 8) {
            int32_t sums[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            column_sums8(x + c, rows, channels, sums);
            for (int32_t i = 0; i < 8; ++i) {
                y[c + i] = mean_out(sums[i] - zero_sum, rows, q);
            }
        }
        if (c + 4 <= channels) {
            int32_t sums[4] = {0, 0, 0, 0};
            column_sums4(x + c, rows, channels, sums);
            for (int32_t i = 0; i < 4; ++i) {
                y[c + i] = mean_out(sums[i] - zero_sum, rows, q);
            }
            c += 4;
        }
        for (; c < channels; ++c) { /* the last 1..3 channels */
            int32_t sum = 0;
            for (int32_t r = 0; r < rows; ++r) {
                sum += x[r * channels + c];
            }
            y[c] = mean_out(sum - zero_sum, rows, q);
        }
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_reduce_mean_f32(const float *x, float *y, const tfc_reduce_shape *s)
{
    const int32_t outputs = tfc_product(s->outer_rank, s->outer_dims);
    const float count = (float)tfc_product(s->reduce_rank, s->reduce_dims);
    tfc_walker it;
    tfc_walker_start(&it);
    for (int32_t o = 0; o < outputs; ++o) {
        const float *base = x + it.off_a;
        float acc = 0.0f;
#define SUM_F32(v) (acc += (v))
        TFC_REDUCE_LOOP(s, base, SUM_F32);
#undef SUM_F32
        *y++ = acc / count;
        tfc_walker_next(&it, s->outer_rank, s->outer_dims, s->outer_strides, NULL);
    }
}
#endif /* TFC_INT8_ONLY */
