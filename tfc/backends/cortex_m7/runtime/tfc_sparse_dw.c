/* Sparse depthwise conv2d on a block run-length weight stream: one record per kept kernel row
 * (block = kernel_w; stream format in tfc_sparse.c and tfc/sparse/codec.py).
 *
 * The input is NHWC, so one channel's pixels lie in_c bytes apart and cannot feed SIMD as they
 * are. The kernel therefore runs channel by channel: it decodes the channel's records once (its
 * kept kernel rows, "taps"), widens the input rows those taps read into an int16 plane (once
 * per channel, skipping rows no kept tap reads), and walks the plane. A channel without a kept
 * tap is a constant the compiler precomputed.
 *
 * The plane holds input_zp in its padding rows and columns, so the hot loops have no bounds
 * checks; the compiler folds input_zp * sum(w) into the bias, so padding contributes exactly
 * zero and nothing subtracts the zero point.
 *
 * Kernel width 3 with dilation_w 1 and stride_w 1 or 2 (the fast path) packs a tap's weights as
 * (w0, w1) and (w1, w2): two output pixels cost one LDRD of input (and one LDR more at stride
 * 2) and four SMLAD/SMLAxy per tap. Taps accumulate into an int32 row of out_w accumulators;
 * the last tap of a channel requantizes from registers instead (SMMLA, ASR, SSAT), so a channel
 * with one kept tap never touches memory but for its inputs and outputs. Other geometries take
 * a plain loop over the same plane. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

/* The plane is read as packed int16 pairs as well as written as int16. */
typedef uint32_t __attribute__((may_alias)) dw_word;
typedef int16_t __attribute__((may_alias)) dw_half;

#define DW_INLINE static inline __attribute__((always_inline))

/* How outputs are requantized: the high-word form saturating to int8 or clamping to the
 * activation range (the fast path takes only these two), or the generic tfc_requantize. */
enum { DW_SAT, DW_CLAMP, DW_GENERIC };

typedef struct {
    int32_t multiplier, rounding, k; /* high-word form; DW_GENERIC keeps the shift in `rounding` */
    int32_t zp, lo, hi;
} dw_requant;

typedef struct {
    uint32_t w01, w12;   /* (w0, w1) and (w1, w2) as int16 pairs (fast path) */
    const int8_t *w;     /* the record's kernel_w weights (generic path) */
    const dw_half *row;  /* the plane row it reads for output row 0 */
} dw_tap;

/* What the channel loops need, in int16 plane units where it is about the plane. */
typedef struct {
    int32_t out_h, out_w, out_c; /* outputs of a channel are out_c bytes apart */
    int32_t row_step;            /* plane elements between the first rows of two output rows */
    int32_t stride_w, kernel_w, dilation_w;
    int32_t *acc;                /* out_w (rounded up to even) accumulators */
} dw_walk;

/* Plane width in int16: every column an output reads, plus the word the pair loops read
 * ahead, even so rows stay word aligned. Keep in step with sparse_dw_lowering._plane_shape. */
static int32_t dw_plane_width(const tfc_window *g)
{
    const int32_t needed = (g->out_w - 1) * g->stride_w + (g->kernel_w - 1) * g->dilation_w + 1;
    const int32_t cols = g->pad_left + g->in_w > needed ? g->pad_left + g->in_w : needed;
    return (cols + 4 + 1) & ~1;
}

static int32_t dw_plane_rows(const tfc_window *g)
{
    const int32_t needed = (g->out_h - 1) * g->stride_h + (g->kernel_h - 1) * g->dilation_h + 1;
    return g->pad_top + g->in_h > needed ? g->pad_top + g->in_h : needed;
}

DW_INLINE uint32_t dw_pair(int32_t lo, int32_t hi)
{
    return (uint32_t)(uint16_t)(int16_t)lo | ((uint32_t)(uint16_t)(int16_t)hi << 16);
}

/* (lo, hi) as the int16 halves of a word (PKHBT). */
DW_INLINE uint32_t dw_pack(int32_t lo, int32_t hi)
{
#if defined(TFC_USE_DSP)
    uint32_t out;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(out) : "r"(lo), "r"(hi));
    return out;
#else
    return dw_pair(lo, hi);
#endif
}

/* acc + bottom(a) * top(b) (SMLABT) and acc + top(a) * bottom(b) (SMLATB). */
DW_INLINE int32_t dw_smlabt(uint32_t a, uint32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    return __smlabt(a, b, acc);
#else
    return tfc_smlabb(a, b >> 16, acc);
#endif
}

DW_INLINE int32_t dw_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    return __smlatb(a, b, acc);
#else
    return tfc_smlabb(a >> 16, b, acc);
#endif
}

DW_INLINE int32_t dw_output(int32_t acc, const dw_requant *r, int mode)
{
    if (mode == DW_GENERIC) {
        return tfc_clamp_i32(tfc_requantize(acc, r->multiplier, r->rounding) + r->zp, r->lo, r->hi);
    }
    const int32_t v = tfc_requantize_high(acc, r->multiplier, r->rounding, r->k);
    return mode == DW_SAT ? tfc_ssat8(v) : tfc_clamp_i32(v, r->lo, r->hi);
}

/* Two consecutive words at `in`, then `in` advanced by `advance` words: one LDRD with
 * post-increment on the M7 (gcc would add a pointer update, or a register move for a carried
 * word, per pair). `in` must be 4-byte aligned. */
DW_INLINE void dw_load2(const dw_word **in, uint32_t *lo, uint32_t *hi, int advance)
{
#if defined(TFC_USE_DSP)
    if (advance == 1) {
        __asm__("ldrd %0, %1, [%2], #4" : "=&r"(*lo), "=&r"(*hi), "+r"(*in)
                : "m"(**in), "m"((*in)[1]));
    } else {
        __asm__("ldrd %0, %1, [%2], #8" : "=&r"(*lo), "=&r"(*hi), "+r"(*in)
                : "m"(**in), "m"((*in)[1]));
    }
#else
    *lo = (*in)[0];
    *hi = (*in)[1];
    *in += advance;
#endif
}

/* acc[0] and acc[1], then acc advanced past them (LDRD with post-increment). */
DW_INLINE void dw_load_acc(int32_t **acc, int32_t *a0, int32_t *a1)
{
#if defined(TFC_USE_DSP)
    __asm__("ldrd %0, %1, [%2], #8" : "=&r"(*a0), "=&r"(*a1), "+r"(*acc)
            : "m"(**acc), "m"((*acc)[1]));
#else
    *a0 = (*acc)[0];
    *a1 = (*acc)[1];
    *acc += 2;
#endif
}

/* y += 2 * step as one ADD with a shifted operand: gcc would keep 2 * step in a register of its
 * own, which the requantizing loops do not have to spare. */
DW_INLINE int8_t *dw_skip2(int8_t *y, int32_t step)
{
#if defined(TFC_USE_DSP)
    __asm__("add %0, %0, %1, lsl #1" : "+r"(y) : "r"(step));
    return y;
#else
    return y + 2 * step;
#endif
}

/* One tap of kernel width 3 over a row of output pixels, two at a time. Stride 1: pixels
 * (p, p + 1) read x[p .. p + 3] = words (lo, hi). Stride 2: they read x[2p .. 2p + 5] =
 * words (lo, mid, hi). The accumulators start at `bias` (from_bias) or come from `acc`; they go
 * back to `acc`, or (to_output) are requantized into y, `step` bytes apart, where exactly
 * `count` pixels are written (acc holds an even number). Flags are constants. */
DW_INLINE void dw_row_k3(const dw_half *row, uint32_t w01, uint32_t w12, int32_t *acc,
                         int32_t bias, int8_t *y, int32_t count, int32_t step,
                         const dw_requant *rq, int stride, int from_bias, int to_output, int mode)
{
    const dw_word *in = (const dw_word *)row;
    const int32_t pairs = to_output ? count >> 1 : (count + 1) >> 1;
    for (const dw_word *end = in + pairs * stride; in != end;) {
        int32_t a0 = bias, a1 = bias;
        if (!from_bias) {
            dw_load_acc(&acc, &a0, &a1);
        }
        uint32_t lo, hi;
        dw_load2(&in, &lo, &hi, stride);
        if (stride == 1) {
            a0 = tfc_smlad(lo, w01, a0);
            a0 = dw_smlabt(hi, w12, a0);
            a1 = dw_smlatb(lo, w01, a1);
            a1 = tfc_smlad(hi, w12, a1);
        } else {
            const uint32_t next = in[0];
            a0 = tfc_smlad(lo, w01, a0);
            a0 = dw_smlabt(hi, w12, a0);
            a1 = tfc_smlad(hi, w01, a1);
            a1 = dw_smlabt(next, w12, a1);
        }
        if (to_output) {
            y[0] = (int8_t)dw_output(a0, rq, mode);
            y[step] = (int8_t)dw_output(a1, rq, mode);
            y = dw_skip2(y, step);
        } else if (from_bias) {
            acc[0] = a0;
            acc[1] = a1;
            acc += 2;
        } else {
            acc[-2] = a0;
            acc[-1] = a1;
        }
    }
    if (to_output && (count & 1)) {
        int32_t a0 = from_bias ? bias : acc[0];
        a0 = tfc_smlad(in[0], w01, a0);
        a0 = dw_smlabt(in[1], w12, a0);
        y[0] = (int8_t)dw_output(a0, rq, mode);
    }
}

/* Every output of one channel on the fast path. Flags are constants. */
DW_INLINE void dw_fast_channel(const dw_tap *taps, int32_t n, int32_t bias, int8_t *y,
                               const dw_walk *walk, const dw_requant *r, int stride, int mode)
{
    /* In locals: the int8 stores may alias *walk and *r and would force reloads. */
    const dw_requant rq = *r;
    const int32_t out_h = walk->out_h, out_w = walk->out_w, step = walk->out_c;
    const int32_t row_step = walk->row_step;
    int32_t *const acc = walk->acc;
    for (int32_t oh = 0, offset = 0; oh < out_h; ++oh, offset += row_step, y += out_w * step) {
        const dw_tap *t = taps;
        if (n > 1) {
            dw_row_k3(t->row + offset, t->w01, t->w12, acc, bias, NULL, out_w, 0, &rq, stride, 1,
                      0, mode);
            for (++t; t != taps + n - 1; ++t) {
                dw_row_k3(t->row + offset, t->w01, t->w12, acc, 0, NULL, out_w, 0, &rq, stride, 0,
                          0, mode);
            }
            dw_row_k3(t->row + offset, t->w01, t->w12, acc, 0, y, out_w, step, &rq, stride, 0, 1,
                      mode);
        } else {
            dw_row_k3(t->row + offset, t->w01, t->w12, acc, bias, y, out_w, step, &rq, stride, 1,
                      1, mode);
        }
    }
}

#define DW_FAST_CHANNEL(name, stride, mode)                                                        \
    static void name(const dw_tap *taps, int32_t n, int32_t bias, int8_t *y, const dw_walk *walk, \
                     const dw_requant *r)                                                         \
    {                                                                                             \
        dw_fast_channel(taps, n, bias, y, walk, r, stride, mode);                                  \
    }

DW_FAST_CHANNEL(dw_fast_s1_sat, 1, DW_SAT)
DW_FAST_CHANNEL(dw_fast_s1_clamp, 1, DW_CLAMP)
DW_FAST_CHANNEL(dw_fast_s2_sat, 2, DW_SAT)
DW_FAST_CHANNEL(dw_fast_s2_clamp, 2, DW_CLAMP)

/* Every output of one channel for any other geometry (or the generic requantization). */
static void dw_generic_channel(const dw_tap *taps, int32_t n, int32_t bias, int8_t *y,
                               const dw_walk *walk, const dw_requant *r, int mode)
{
    const int32_t out_w = walk->out_w, step = walk->out_c, stride_w = walk->stride_w;
    const int32_t kernel_w = walk->kernel_w, dilation_w = walk->dilation_w;
    for (int32_t oh = 0, offset = 0; oh < walk->out_h; ++oh, offset += walk->row_step) {
        for (int32_t ow = 0; ow < out_w; ++ow, y += step) {
            int32_t acc = bias;
            for (int32_t t = 0; t < n; ++t) {
                const dw_half *in = taps[t].row + offset + ow * stride_w;
                for (int32_t kw = 0; kw < kernel_w; ++kw) {
                    acc += (int32_t)in[kw * dilation_w] * taps[t].w[kw];
                }
            }
            *y = (int8_t)dw_output(acc, r, mode);
        }
    }
}

/* `count` bytes `step` apart set to v. */
static void dw_fill(int8_t *y, int8_t v, int32_t count, int32_t step)
{
    for (; count >= 4; count -= 4, y += 4 * step) {
        y[0] = v;
        y[step] = v;
        y[2 * step] = v;
        y[3 * step] = v;
    }
    for (; count > 0; --count, y += step) {
        *y = v;
    }
}

/* Widens `rows` image rows of one channel (pixels in_c bytes apart, rows row_bytes apart) into
 * plane rows `width` apart, two pixels per word store. */
static void dw_gather_rows(dw_half *dst, int32_t width, const int8_t *src, int32_t row_bytes,
                           int32_t rows, int32_t in_w, int32_t in_c)
{
    const int32_t head = ((uintptr_t)dst & 2) != 0; /* the same for every row: width is even */
    const int32_t quads = (in_w - head) >> 2, rest = (in_w - head) & 3;
    for (; rows > 0; --rows, dst += width, src += row_bytes) {
        const int8_t *in = src;
        dw_half *out = dst;
        if (head) {
            *out++ = *in;
            in += in_c;
        }
        dw_word *pair = (dw_word *)out;
        for (const dw_word *end = pair + 2 * quads; pair != end; pair += 2, in += 4 * in_c) {
            pair[0] = dw_pack(in[0], in[in_c]);
            pair[1] = dw_pack(in[2 * in_c], in[3 * in_c]);
        }
        if (rest & 2) {
            *pair++ = dw_pack(in[0], in[in_c]);
            in += 2 * in_c;
        }
        if (rest & 1) {
            *(dw_half *)pair = *in;
        }
    }
}

/* Widens the image rows that channel's kept kernel rows read into the plane (at column
 * pad_left); `image` points at the channel's first pixel. */
static void dw_gather_plane(dw_half *plane, int32_t width, const int8_t *image,
                            const int32_t *kernel_rows, int32_t n, const tfc_window *g)
{
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c, row_bytes = in_w * in_c;
    const int32_t top = g->pad_top, stride_h = g->stride_h, dilation_h = g->dilation_h;
    const int32_t span = (g->out_h - 1) * stride_h; /* plane rows a kernel row sweeps, less one */
    dw_half *const first_row = plane + top * width + g->pad_left;
    if (stride_h == 1) {
        /* Kernel row r reads plane rows [r * dilation_h, + span]; kernel rows come in order, so
         * the union is a sweep that never goes back. */
        int32_t next = 0; /* first image row not yet gathered */
        for (int32_t t = 0; t < n; ++t) {
            const int32_t lo = kernel_rows[t] * dilation_h - top, hi = lo + span;
            const int32_t from = lo > next ? lo : next, to = hi < in_h - 1 ? hi : in_h - 1;
            if (from <= to) {
                dw_gather_rows(first_row + from * width, width, image + from * row_bytes,
                               row_bytes, to - from + 1, in_w, in_c);
                next = to + 1;
            }
        }
        return;
    }
    for (int32_t ih = 0; ih < in_h; ++ih) { /* gather only rows some output row reads */
        for (int32_t t = 0; t < n; ++t) {
            const int32_t offset = top + ih - kernel_rows[t] * dilation_h; /* oh * stride_h */
            if (offset >= 0 && offset <= span && offset % stride_h == 0) {
                dw_gather_rows(first_row + ih * width, width, image + ih * row_bytes, row_bytes,
                               1, in_w, in_c);
                break;
            }
        }
    }
}

static dw_requant dw_requant_of(const tfc_channel_quant *q, int32_t c, int mode)
{
    dw_requant r = {0, 0, 0, q->output_zp, q->act_min, q->act_max};
    if (mode == DW_GENERIC) {
        r.multiplier = q->multiplier[c];
        r.rounding = q->shift[c];
    } else {
        r.multiplier = q->high_word[3 * c];
        r.rounding = q->high_word[3 * c + 1];
        r.k = q->high_word[3 * c + 2];
    }
    return r;
}

static int dw_all_zero(const uint8_t *v, int32_t len)
{
    for (int32_t i = 0; i < len; ++i) {
        if (v[i]) {
            return 0;
        }
    }
    return 1;
}

typedef void (*dw_channel_fn)(const dw_tap *, int32_t, int32_t, int8_t *, const dw_walk *,
                              const dw_requant *);

void tfc_depthwise_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *folded_bias,
                           int8_t *y, const tfc_window *g, const tfc_channel_quant *q,
                           int16_t *scratch)
{
    const int mode = !q->high_word ? DW_GENERIC
                     : q->act_min == -128 && q->act_max == 127 ? DW_SAT : DW_CLAMP;
    const int fast = mode != DW_GENERIC && g->kernel_w == 3 && g->dilation_w == 1
                     && (g->stride_w == 1 || g->stride_w == 2);
    const dw_channel_fn fast_channel = g->stride_w == 1 ? (mode == DW_SAT ? dw_fast_s1_sat
                                                                          : dw_fast_s1_clamp)
                                                        : (mode == DW_SAT ? dw_fast_s2_sat
                                                                          : dw_fast_s2_clamp);
    const int32_t width = dw_plane_width(g), plane_size = dw_plane_rows(g) * width;
    dw_half *const plane = (dw_half *)scratch;
    const dw_walk walk = {g->out_h, g->out_w, g->out_c, g->stride_h * width, g->stride_w,
                          g->kernel_w, g->dilation_w, (int32_t *)(void *)(plane + plane_size)};
    /* Only image pixels are ever gathered, so the padding keeps the zero point all call long. */
    for (int32_t i = 0; i < plane_size; ++i) {
        plane[i] = (int16_t)q->input_zp;
    }

    const int32_t record = 1 + w->block, pixels = g->out_h * g->out_w;
    const uint8_t *rec = w->data, *end = w->data + w->records * record;
    int32_t position = -1; /* block index of the last record consumed */
    for (int32_t c = 0; c < w->rows; ++c) {
        dw_tap taps[TFC_BRLE_MAX_KERNEL];
        int32_t kernel_rows[TFC_BRLE_MAX_KERNEL];
        int32_t n = 0;
        const int32_t row_start = c * w->blocks_per_row;
        for (; rec < end && position + rec[0] + 1 < row_start + w->blocks_per_row; rec += record) {
            position += rec[0] + 1;
            if (dw_all_zero(rec + 1, w->block)) {
                continue; /* a filler */
            }
            const int8_t *v = (const int8_t *)(rec + 1);
            kernel_rows[n] = position - row_start;
            taps[n].w = v;
            taps[n].w01 = dw_pair(v[0], w->block > 1 ? v[1] : 0);
            taps[n].w12 = dw_pair(w->block > 1 ? v[1] : 0, w->block > 2 ? v[2] : 0);
            taps[n].row = plane + kernel_rows[n] * g->dilation_h * width;
            ++n;
        }
        const dw_requant r = dw_requant_of(q, c, mode);
        for (int32_t b = 0; b < g->batch; ++b) {
            int8_t *out = y + b * pixels * g->out_c + c;
            if (n == 0) { /* the compiler made its requantization yield the constant output */
                dw_fill(out, (int8_t)dw_output(folded_bias[c], &r, mode), pixels, g->out_c);
                continue;
            }
            dw_gather_plane(plane, width, x + b * g->in_h * g->in_w * g->in_c + c, kernel_rows,
                            n, g);
            if (fast) {
                fast_channel(taps, n, folded_bias[c], out, &walk, &r);
            } else {
                dw_generic_channel(taps, n, folded_bias[c], out, &walk, &r, mode);
            }
        }
    }
}
