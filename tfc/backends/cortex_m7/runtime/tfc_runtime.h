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
    /* NULL, or per channel {multiplier, round, k} (tfc_requantize_high, output_zp included)
     * where the compiler found every channel fit for it: the fast kernels then requantize in two
     * instructions, and multiplier/shift are NULL (flash holds one form). */
    const int32_t *high_word;
} tfc_channel_quant;

/* Requantization of a per-tensor int8 op (pooling, means, requantize). */
typedef struct {
    int32_t input_zp, output_zp;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} tfc_tensor_quant;

/* The int8 mul: a product requantized once. */
typedef struct {
    int32_t a_zp, b_zp, output_zp;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} tfc_binary_quant;

/* An elementwise walk over `dims` (row major, output contiguous); a_strides/b_strides are the
 * inputs' element strides, 0 along broadcast dimensions. */
typedef struct {
    int32_t rank;
    const int32_t *dims, *a_strides, *b_strides;
} tfc_broadcast;

/* Batched matrix product with strided operands and result (element strides): A[i][kk] is
 * a[i * a_stride_m + kk * a_stride_k], B[kk][j] is b[kk * b_stride_k + j * b_stride_n] and Y[i][j]
 * is y[i * y_stride_m + j * y_stride_n], each matrix at its batch offset (row-major walk over
 * batch_dims, 0 strides where a batch dim broadcasts). Transposed operands and multi-head
 * split/merge layouts are strides here (matmul_lowering.py). */
typedef struct {
    int32_t m, k, n;
    int32_t a_stride_m, a_stride_k, b_stride_k, b_stride_n, y_stride_m, y_stride_n;
    int32_t batch_rank;
    const int32_t *batch_dims, *a_batch_strides, *b_batch_strides, *y_batch_strides;
} tfc_matmul_layout;

/* Requantization of the matmul kernels. post_shift >= 0 selects the high-word form
 * y = (hi32(acc * multiplier) + rounding_high) >> post_shift with output_zp folded into
 * rounding_high (matmul_lowering.py checks it equals MBQM + output_zp without overflow);
 * post_shift = -1 uses tfc_requantize(acc, multiplier, shift) + output_zp. */
typedef struct {
    int32_t a_zp, b_zp, output_zp;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
    int32_t rounding_high, post_shift;
} tfc_matmul_quant;

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
    int32_t xn_bits; /* s: x_norm is carried as x_norm * 2^s (quant_math.scaled_layernorm_xn_bits) */
    /* (multiplier, bias + 2^23) pairs. Columns 4j..4j+3 of each full group of four are stored in
     * the order 4j, 4j+2, 4j+1, 4j+3 (the lanes of SXTB16 and SXTB16 ROR #8); the cols % 4 last
     * ones in order. The 2^23 (128 codes) lets USAT16 do the int8 saturation. */
    const int32_t *gamma_bias;
    int32_t act_min, act_max;
    /* 2 * cols bytes, word-aligned, valid during the call (planned kernel scratch): the M7 keeps
     * a row's codes there as int16 lanes between its statistics and its outputs. NULL: none. */
    uint32_t *scratch;
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

void tfc_matmul_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_matmul_layout *s,
                   const tfc_matmul_quant *q);
#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_matmul_f32(const float *a, const float *b, float *y, const tfc_matmul_layout *s);
#endif /* TFC_INT8_ONLY */

/* int8 activation x activation matmul (tfc_matmul_s8.c): `scratch` is word-aligned, of
 * 2 * round_up(n, 2) * round_up(k, 4) + 4 * round_up(k, 4) bytes (int16 panels of B and of two rows
 * of A). */
void tfc_matmul_s8_panel(const int8_t *a, const int8_t *b, int8_t *y, const tfc_matmul_layout *s,
                         const tfc_matmul_quant *q, uint32_t *scratch);

/* ---- fast dense int8 kernels: tfc_gemm_s8.c (layouts and scratch chosen by kernels.py) ------ */

/* Weights packed by channel pairs (kernels.pack_gemm_weights); `panel` is word-aligned scratch
 * of 4 * round_up(K, 4) bytes, K = in_features or kh * kw * in_c. */
void tfc_linear_s8_packed(const int8_t *x, const int8_t *w_packed, const int32_t *bias, int8_t *y,
                          int32_t rows, int32_t in_features, int32_t out_features,
                          const tfc_channel_quant *q, uint32_t *panel);
/* groups == 1; any stride, padding and dilation. */
void tfc_conv2d_s8_packed(const int8_t *x, const int8_t *w_packed, const int32_t *bias, int8_t *y,
                          const tfc_window *g, const tfc_channel_quant *q, uint32_t *panel);

/* ---- dense depthwise conv2d: tfc_depthwise.c ------------------------------------------------ */

/* groups == in_c == out_c, weights [kh, kw, C], bias with the input zero point folded in;
 * `zp_row` is scratch of in_c bytes. */
void tfc_depthwise_s8_hwc(const int8_t *x, const int8_t *w_hwc, const int32_t *folded_bias,
                          int8_t *y, const tfc_window *g, const tfc_channel_quant *q,
                          int8_t *zp_row);
/* 3x3, dilation 1, stride_w 1 or 2; one record of 10 words per channel (depthwise_lowering.
 * records_3x3: weights, folded bias, requantization; q supplies zero points and the activation
 * range); `planes` is word-aligned scratch of depthwise_lowering.scratch_bytes bytes for bands of
 * `band_rows` output rows. */
void tfc_depthwise_s8_3x3(const int8_t *x, const int32_t *records, int8_t *y,
                          const tfc_window *g, const tfc_channel_quant *q, int8_t *planes,
                          int32_t band_rows);

/* ---- sparse (block run-length) weights: tfc_sparse.c ---------------------------------------- */

/* A weight tensor as brle records (d, v1..vb) in its kernel's walk order (tfc/sparse/codec.py):
 * `rows` rows (output channels) of `blocks_per_row` blocks of `block` weights. `short_requant`
 * is 1 where the compiler proved the short requantization of tfc_sparse.c exact for the layer
 * (every multiplier > 0, every shift in [-31, -1], |accumulator| < 2^30). */
typedef struct {
    const uint8_t *data;
    int32_t records, block, blocks_per_row, rows;
    int32_t short_requant;
} tfc_brle;

/* The most kernel rows a depthwise brle kernel takes (kernel_h). */
#define TFC_BRLE_MAX_KERNEL 16

/* groups == 1, block 2 or 4 over the OHWI row kh*kw*in_c (zero-padded to whole blocks);
 * `row_constants` holds 4 int32 per row (sparse_lowering.row_constants: the bias with the input
 * zero point folded in (bias - input_zp * row sum), then the requantization), so q's multiplier
 * and shift are not read; `patch` is 4-byte aligned scratch of sparse_lowering._patch_bytes
 * (eight output pixels per stream pass, one int8 window and the per-call row table). */
void tfc_conv2d_brle_s8(const int8_t *x, const tfc_brle *w,
                        const int32_t *row_constants, int8_t *y,
                        const tfc_window *g, const tfc_channel_quant *q, int16_t *patch);
/* depthwise (groups == in_c == out_c), block = kernel_w (one record per kernel row), in
 * tfc_sparse_dw.c; `folded_bias` as for conv; `scratch` is 4-byte aligned, of the size
 * sparse_lowering.depthwise_scratch_bytes gives (int16 input-row slots and an int32 row). */
void tfc_depthwise_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *folded_bias,
                           int8_t *y, const tfc_window *g, const tfc_channel_quant *q,
                           int16_t *scratch);
/* [out, in] weights (w->rows = out), batched over `rows` tokens (1x1 convs with stride 1 and no
 * padding too: tokens = pixels); `row_constants` and `patch` as for conv. */
void tfc_linear_brle_s8(const int8_t *x, const tfc_brle *w,
                        const int32_t *row_constants, int8_t *y,
                        int32_t rows, int32_t in_features, const tfc_channel_quant *q,
                        int16_t *patch);

/* ---- elementwise ------------------------------------------------------------------------- */

/* int8 add and sub (sub negates b_multiplier): y = clamp((a * a_multiplier + b * b_multiplier
 * + bias) >> shift, act_min, act_max), the zero points and rounding folded into bias. */
typedef struct {
    int32_t a_multiplier, b_multiplier;
    int32_t bias, shift;
    int32_t act_min, act_max;
} tfc_add_quant;

void tfc_add_s8(const int8_t *a, const int8_t *b, int8_t *y, const tfc_broadcast *s,
                const tfc_add_quant *q);
/* Same-shape operands, all three contiguous: no walk at all. */
void tfc_add_s8_contig(const int8_t *a, const int8_t *b, int8_t *y, int32_t size,
                       const tfc_add_quant *q);
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
/* y[i] = table[x[i] & 0xFF] with a 256-entry table made by the compiler (requantize). */
void tfc_lookup_s8(const int8_t *x, int8_t *y, int32_t size, const int8_t *table);

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
/* The mean over the rows of contiguous x[outer][rows][channels] (SIMD column sums). */
void tfc_reduce_mean_columns_s8(const int8_t *x, int8_t *y, int32_t outer, int32_t rows,
                                int32_t channels, const tfc_tensor_quant *q);
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
