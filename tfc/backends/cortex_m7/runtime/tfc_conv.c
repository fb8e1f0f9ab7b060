/* 2-D convolution over NHWC activations and OHWI weights, any group count (depthwise included),
 * strides, padding and dilations. Padding contributes zero, i.e. the input zero point in int8. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

void tfc_conv2d_s8(const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y,
                   const tfc_window *g, const tfc_channel_quant *q)
{
    const int32_t in_per_group = g->in_c / g->groups;
    const int32_t out_per_group = g->out_c / g->groups;
    const int32_t filter_size = g->kernel_h * g->kernel_w * in_per_group;
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * g->in_c;
        for (int32_t oh = 0; oh < g->out_h; ++oh) {
            const int32_t ih0 = oh * g->stride_h - g->pad_top;
            for (int32_t ow = 0; ow < g->out_w; ++ow) {
                const int32_t iw0 = ow * g->stride_w - g->pad_left;
                for (int32_t o = 0; o < g->out_c; ++o) {
                    const int8_t *filter = w + o * filter_size;
                    const int32_t channel0 = (o / out_per_group) * in_per_group;
                    int32_t acc = bias ? bias[o] : 0;
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
                            const int8_t *pixel = image + (ih * g->in_w + iw) * g->in_c + channel0;
                            const int8_t *taps = filter + (kh * g->kernel_w + kw) * in_per_group;
                            acc += tfc_dot_s8(pixel, taps, in_per_group, -q->input_zp);
                        }
                    }
                    int32_t out = tfc_requantize(acc, q->multiplier[o], q->shift[o]) + q->output_zp;
                    *y++ = (int8_t)tfc_clamp_i32(out, q->act_min, q->act_max);
                }
            }
        }
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_conv2d_f32(const float *x, const float *w, const float *bias, float *y,
                    const tfc_window *g, float act_min, float act_max)
{
    const int32_t in_per_group = g->in_c / g->groups;
    const int32_t out_per_group = g->out_c / g->groups;
    const int32_t filter_size = g->kernel_h * g->kernel_w * in_per_group;
    for (int32_t n = 0; n < g->batch; ++n) {
        const float *image = x + n * g->in_h * g->in_w * g->in_c;
        for (int32_t oh = 0; oh < g->out_h; ++oh) {
            const int32_t ih0 = oh * g->stride_h - g->pad_top;
            for (int32_t ow = 0; ow < g->out_w; ++ow) {
                const int32_t iw0 = ow * g->stride_w - g->pad_left;
                for (int32_t o = 0; o < g->out_c; ++o) {
                    const float *filter = w + o * filter_size;
                    const int32_t channel0 = (o / out_per_group) * in_per_group;
                    float acc = 0.0f;
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
                            const float *pixel = image + (ih * g->in_w + iw) * g->in_c + channel0;
                            const float *taps = filter + (kh * g->kernel_w + kw) * in_per_group;
                            for (int32_t c = 0; c < in_per_group; ++c) {
                                acc += pixel[c] * taps[c];
                            }
                        }
                    }
                    if (bias) {
                        acc += bias[o];
                    }
                    *y++ = tfc_clamp_f32(acc, act_min, act_max);
                }
            }
        }
    }
}
#endif /* TFC_INT8_ONLY */
