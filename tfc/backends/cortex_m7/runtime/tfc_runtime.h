/* The tfc runtime: portable C99 kernels that generated model code calls in order.
 *
 * Layouts: activations are NHWC (channels last), conv weights OHWI (depthwise [C, kh, kw, 1]),
 * linear weights [out, in]. Every tensor is dense and contiguous unless a descriptor below gives
 * strides (counted in elements). The kernels allocate nothing. The int8 kernels use integers only;
 * the float32 kernels may call sqrtf/expf.
 *
 * Every extern name here starts with tfc_; "tfc_namespace.h" (written next to the generated
 * model) may #define each one to a model-specific prefix so two models link together. */
#ifndef TFC_RUNTIME_H
#define TFC_RUNTIME_H

#include "tfc_namespace.h"

#include <math.h> /* INFINITY for "no activation" bounds; nothing here needs libm */
#include <stddef.h>
#include <stdint.h>

#include "tfc_fixedpoint.h"

/* The most dimensions a strided descriptor may have (after the compiler merges what it can). */
#define TFC_MAX_RANK 8

/* ---- descriptors ------------------------------------------------------------------------- */

/* A sliding-window op over an NHWC tensor. The bottom/right padding is implied by out_h/out_w. */
typedef struct {
    int32_t batch, in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t pad_bottom, pad_right; /* only average pooling reads these (count_include_pad) */
    int32_t dilation_h, dilation_w;
    int32_t groups;
} tfc_window;

/* Requantization of a per-output-channel int8 op (conv2d, linear). */
typedef struct {
    int32_t input_zp, output_zp;
    const int32_t *multiplier, *shift; /* one per output channel */
    int32_t act_min, act_max;
} tfc_channel_quant;

/* Requantization of a per-tensor int8 op (pooling, means, requantize). */
typedef struct {
    int32_t input_zp, output_zp;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} tfc_tensor_quant;

/* Two-input int8 ops: matmul and mul use multiplier/shift; add and sub (TFLite add) rescale each
 * input first (a_*, b_*, left_shift) and then the sum (multiplier/shift). */
typedef struct {
    int32_t a_zp, b_zp, output_zp;
    int32_t left_shift;
    int32_t a_multiplier, a_shift, b_multiplier, b_shift;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} tfc_binary_quant;

/* An elementwise walk over `dims` (row major, output contiguous); a_strides/b_strides are the
 * inputs' element strides, 0 along broadcast dimensions. */
typedef struct {
    int32_t rank;
    const int32_t *dims, *a_strides, *b_strides;
} tfc_broadcast;

/* Batched matrix product y[batch] = a[batch] (m x k) @ b[batch] (k x n), y contiguous; the batch
 * walk is like tfc_broadcast (strides count elements, 0 where a batch dim broadcasts). */
typedef struct {
    int32_t m, k, n;
    int32_t batch_rank;
    const int32_t *batch_dims, *a_batch_strides, *b_batch_strides;
} tfc_matmul_shape;

/* A mean over some dims: each output element (walking outer dims, output contiguous) averages the
 * inputs reached by the reduce dims. Strides count input elements. */
typedef struct {
    int32_t outer_rank;
    const int32_t *outer_dims, *outer_strides;
    int32_t reduce_rank;
    const int32_t *reduce_dims, *reduce_strides;
} tfc_reduce_shape;

/* Scaled-LayerNorm parameters (see ops.py: layernorm). */
typedef struct {
    int32_t eps_q;
    const int32_t *gamma_bias; /* per column c: [2c] = multiplier, [2c + 1] = bias (one LDRD) */
    int32_t act_min, act_max;
} tfc_layernorm_quant;

/* ---- convolution and dense layers --------------------------------------------------------- */

void tfc_conv2d_s8(const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y,
                   const tfc_window *g, const tfc_channel_quant *q);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_conv2d_f32(const float *x, const float *w, const float *bias, float *y,
                    const tfc_window *g, float act_min, float act_max);
#endif /* TFC_INT8_ONLY */

void tfc_linear_s8(const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y,
                   int32_t rows, int32_t in_features, int32_t out_features,
                   const tfc_channel_quant *q);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_linear_f32(const float *x, const float *w, const float *bias, float *y,
                    int32_t rows, int32_t in_features, int32_t out_features,
                    float act_min, float act_max);
#endif /* TFC_INT8_ONLY */

void tfc_matmul_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_matmul_shape *s,
                   const tfc_binary_quant *q);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_matmul_f32(const float *a, const float *b, float *y, const tfc_matmul_shape *s);
#endif /* TFC_INT8_ONLY */

/* ---- fast dense int8 kernels: tfc_gemm_s8.c (layouts and scratch chosen by kernels.py) ------ */

/* Weights packed by channel pairs (kernels.pack_gemm_weights); `panel` is word-aligned scratch
 * of 4 * round_up(K, 4) bytes, K = in_features or kh * kw * in_c. */
void tfc_linear_s8_packed(const int8_t *x, const int8_t *w_packed, const int32_t *bias, int8_t *y,
                          int32_t rows, int32_t in_features, int32_t out_features,
                          const tfc_channel_quant *q, uint32_t *panel);
/* groups == 1; any stride, padding and dilation. */
void tfc_conv2d_s8_packed(const int8_t *x, const int8_t *w_packed, const int32_t *bias, int8_t *y,
                          const tfc_window *g, const tfc_channel_quant *q, uint32_t *panel);
/* groups == in_c == out_c, weights [kh, kw, C], bias with the input zero point folded in;
 * `zp_row` is scratch of in_c bytes. */
void tfc_depthwise_s8_hwc(const int8_t *x, const int8_t *w_hwc, const int32_t *folded_bias,
                          int8_t *y, const tfc_window *g, const tfc_channel_quant *q,
                          int8_t *zp_row);

/* ---- sparse (block run-length) weights: tfc_sparse.c ---------------------------------------- */

/* A weight tensor as brle records (d, v1..vb) in its kernel's walk order (tfc/sparse/codec.py):
 * `rows` rows (output channels) of `blocks_per_row` blocks of `block` weights. */
typedef struct {
    const uint8_t *data;
    int32_t records, block, blocks_per_row, rows;
} tfc_brle;

/* The most kernel rows a depthwise brle kernel takes (kernel_h). */
#define TFC_BRLE_MAX_KERNEL 16

/* groups == 1, block 2 or 4 over the OHWI row kh*kw*in_c (zero-padded to whole blocks);
 * `patch` is 4-byte aligned scratch of 4 * blocks_per_row * block int16 (four output pixels per
 * stream pass) followed by `rows` int32 (records per row). */
void tfc_conv2d_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                        const tfc_window *g, const tfc_channel_quant *q, int16_t *patch);
/* depthwise (groups == in_c == out_c), block = kernel_w (one record per kernel row). */
void tfc_depthwise_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                           const tfc_window *g, const tfc_channel_quant *q);
/* [out, in] weights (w->rows = out), batched over `rows` tokens; `patch` as for conv. */
void tfc_linear_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                        int32_t rows, int32_t in_features, const tfc_channel_quant *q,
                        int16_t *patch);

/* ---- elementwise ------------------------------------------------------------------------- */

void tfc_add_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_broadcast *s,
                const tfc_binary_quant *q);
void tfc_sub_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_broadcast *s,
                const tfc_binary_quant *q);
void tfc_mul_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_broadcast *s,
                const tfc_binary_quant *q);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_add_f32(const float *a, const float *b, float *y, const tfc_broadcast *s,
                 float act_min, float act_max);
void tfc_sub_f32(const float *a, const float *b, float *y, const tfc_broadcast *s,
                 float act_min, float act_max);
void tfc_mul_f32(const float *a, const float *b, float *y, const tfc_broadcast *s,
                 float act_min, float act_max);
#endif /* TFC_INT8_ONLY */

void tfc_clip_s8(const int8_t *x, int8_t *y, int32_t size, int32_t lo, int32_t hi);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_clip_f32(const float *x, float *y, int32_t size, float lo, float hi);
#endif /* TFC_INT8_ONLY */
void tfc_requantize_s8(const int8_t *x, int8_t *y, int32_t size, const tfc_tensor_quant *q);

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
/* Per-axis conversions: the tensor is [outer, channels, inner]; per-tensor is channels == 1. */
void tfc_quantize_f32_s8(const float *x, int8_t *y, int32_t outer, int32_t channels,
                         int32_t inner, const float *scale, const int32_t *zero_point);
void tfc_dequantize_s8_f32(const int8_t *x, float *y, int32_t outer, int32_t channels,
                           int32_t inner, const float *scale, const int32_t *zero_point);
void tfc_dequantize_s32_f32(const int32_t *x, float *y, int32_t outer, int32_t channels,
                            int32_t inner, const float *scale, const int32_t *zero_point);
#endif /* TFC_INT8_ONLY */

/* ---- pooling and means ------------------------------------------------------------------- */

void tfc_maxpool2d_s8(const int8_t *x, int8_t *y, const tfc_window *g);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_maxpool2d_f32(const float *x, float *y, const tfc_window *g);
#endif /* TFC_INT8_ONLY */
void tfc_avgpool2d_s8(const int8_t *x, int8_t *y, const tfc_window *g, int32_t count_include_pad,
                      const tfc_tensor_quant *q);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_avgpool2d_f32(const float *x, float *y, const tfc_window *g, int32_t count_include_pad);
#endif /* TFC_INT8_ONLY */
void tfc_reduce_mean_s8(const int8_t *x, int8_t *y, const tfc_reduce_shape *s,
                        const tfc_tensor_quant *q);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_reduce_mean_f32(const float *x, float *y, const tfc_reduce_shape *s);
#endif /* TFC_INT8_ONLY */

/* ---- normalization ----------------------------------------------------------------------- */

void tfc_layernorm_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t cols,
                      const tfc_layernorm_quant *q);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_layernorm_f32(const float *x, const float *gamma, const float *beta, float *y,
                       int32_t rows, int32_t cols, float epsilon);
#endif /* TFC_INT8_ONLY */
void tfc_softmax_s8(const int8_t *x, const int32_t *exp_lut, int8_t *y, int32_t rows,
                    int32_t cols, int32_t output_zp, int32_t multiplier, int32_t shift);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_softmax_f32(const float *x, float *y, int32_t rows, int32_t cols);
#endif /* TFC_INT8_ONLY */

/* ---- data movement (any element type; sizes in bytes) -------------------------------------- */

void tfc_copy(void *dst, const void *src, int32_t nbytes);
/* rows x row_bytes from src to dst with independent row pitches (concat and split). */
void tfc_copy_rows(void *dst, int32_t dst_pitch, const void *src, int32_t src_pitch,
                   int32_t rows, int32_t row_bytes);
/* dst (contiguous, shape dims) = src[offset + sum idx[d] * strides[d]]; strides in elements and
 * possibly negative (transpose, slice). */
void tfc_gather(void *dst, const void *src, int32_t elem_size, int32_t offset, int32_t rank,
                const int32_t *dims, const int32_t *strides);

#endif /* TFC_RUNTIME_H */
