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

void tfc_maxpool2d_s8(const int8_t *x, int8_t *y, const tfc_window *g)
{
    TFC_POOL_LOOP(g, {
        int32_t best = -128;
        TFC_WINDOW_TAPS(g, int8_t, { best = v > best ? v : best; })
        *y++ = (int8_t)best;
    })
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

void tfc_avgpool2d_s8(const int8_t *x, int8_t *y, const tfc_window *g, int32_t count_include_pad,
                      const tfc_tensor_quant *q)
{
    TFC_POOL_LOOP(g, {
        int32_t acc = 0;
        TFC_WINDOW_TAPS(g, int8_t, { acc += v - q->input_zp; })
        int32_t count = window_count(g, ih0, iw0, count_include_pad);
        int32_t mean = tfc_mean_fine(acc, count);
        int32_t out = tfc_requantize(mean, q->multiplier, q->shift) + q->output_zp;
        *y++ = (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
    })
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
