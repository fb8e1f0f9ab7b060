/* Sparse int8 kernels that compute on block run-length (brle) weight streams directly.
 *
 * Stream format (tfc/sparse/codec.py): the weights, one row per output channel in the kernel's
 * walk order, cut into blocks of b; only blocks that are not all zero are stored, each as the
 * record (d, v1..vb) with d the count of all-zero blocks skipped since the previous record.
 * Positions run on across rows; fillers (255, 0..0) are ordinary records.
 *
 * conv2d and linear work on groups of BRLE_GROUP output pixels (or tokens): their input windows
 * are sign-extended to int16 once, into a "group patch" laid out block by block with the group's
 * pixels side by side, so one decoded record (one LDR, two SXTB16) feeds 2 * BRLE_GROUP SMLADs
 * whose operands are adjacent words (LDRD pairs). The input zero point is folded into the bias
 * by the compiler (padding taps hold the zero point), so widening is SXTB16 and nothing else.
 * A pre-pass counts the records of every row once per call, so the hot loop has no row-boundary
 * test and no division. For b = 4 each pixel's block is stored pairwise interleaved
 * (x0, x2, x1, x3) so that SXTB16 of the weight word and of its rotation line up with it.
 * The portable forms of SXTB16/SMLAD in tfc_internal.h make the host run the very same code.
 * The depthwise kernel, which walks channel by channel, is in tfc_sparse_dw.c. */
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

/* The short form is tfc_requantize_high, whose `rounding` the compiler checks to lie within
 * +-2^30 (tfc_brle.short_requant). Rows with a larger shift must be all zero: multiplier 0, k 0
 * and the constant output as `rounding` (brle_row_table). */
/* How a call requantizes: the short form with a plain int8 clamp or with the activation range,
 * or tfc_requantize per output. */
enum { BRLE_SHORT_SAT, BRLE_SHORT_CLAMP, BRLE_GENERIC };

/* What the row loops need of row r, gathered once per call into scratch so that one pointer
 * walks it (the row loops run out of registers otherwise). */
typedef struct {
    int32_t records;    /* records (fillers included) whose position lies in the row */
    int32_t bias;       /* zero point folded in */
    int32_t multiplier;
    int32_t rounding;   /* short form: 2^(k-1) + output_zp * 2^k; generic: the shift */
    int32_t k;          /* short form: -1 - shift */
} brle_row;

/* The activation range and output zero point of a call. The row loops copy them out of
 * tfc_channel_quant: int8 stores may alias it and would force reloads per output. */
typedef struct {
    int32_t zp, lo, hi;
} brle_range;

/* Fills the row table: the records of each row (one pass over the stream) and its constants. */
static void brle_row_table(const tfc_brle *w, const int32_t *bias, const tfc_channel_quant *q,
                           brle_row *table)
{
    for (int32_t r = 0; r < w->rows; ++r) {
        const int32_t shift = q->shift[r];
        table[r].records = 0;
        table[r].bias = bias[r];
        table[r].multiplier = q->multiplier[r];
        if (w->short_requant && shift > -2) {
            /* The compiler proved this row all zero (pruned away; its tiny weight scale gives a
             * large multiplier): its output is the constant requantized bias. */
            table[r].multiplier = 0;
            table[r].rounding = tfc_clamp_i32(tfc_requantize(bias[r], q->multiplier[r], shift)
                                              + q->output_zp, q->act_min, q->act_max);
            table[r].k = 0;
        } else if (w->short_requant) {
            const int32_t k = -1 - shift;
            table[r].rounding = (1 << (k - 1)) + q->output_zp * (1 << k);
            table[r].k = k;
        } else {
            table[r].rounding = shift;
            table[r].k = 0;
        }
    }
    const uint8_t *rec = w->data;
    int32_t row = 0, col = -1;
    for (int32_t k = 0; k < w->records; ++k, rec += 1 + w->block) {
        col += (int32_t)rec[0] + 1;
        while (col >= w->blocks_per_row) {
            col -= w->blocks_per_row;
            ++row;
        }
        table[row].records += 1;
    }
}

/* Where a group's outputs go: pixel k's channel r at y[k * step + r] (step 0 when the group is
 * one pixel repeated). */
typedef struct {
    int8_t *y;
    int32_t step;
} brle_outputs;

/* One row's accumulators of the group's four pixels, requantized and stored at y[k * step]. */
static inline __attribute__((always_inline)) void
brle_store4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, const brle_row *row, int8_t *y,
            int32_t step, const brle_range *range, int mode)
{
    const int32_t multiplier = row->multiplier, rounding = row->rounding, k = row->k;
    int32_t v0, v1, v2, v3;
    if (mode == BRLE_GENERIC) {
        const int32_t zp = range->zp, lo = range->lo, hi = range->hi;
        v0 = tfc_clamp_i32(tfc_requantize(a0, multiplier, rounding) + zp, lo, hi);
        v1 = tfc_clamp_i32(tfc_requantize(a1, multiplier, rounding) + zp, lo, hi);
        v2 = tfc_clamp_i32(tfc_requantize(a2, multiplier, rounding) + zp, lo, hi);
        v3 = tfc_clamp_i32(tfc_requantize(a3, multiplier, rounding) + zp, lo, hi);
    } else if (mode == BRLE_SHORT_SAT) {
        v0 = tfc_ssat8(tfc_requantize_high(a0, multiplier, rounding, k));
        v1 = tfc_ssat8(tfc_requantize_high(a1, multiplier, rounding, k));
        v2 = tfc_ssat8(tfc_requantize_high(a2, multiplier, rounding, k));
        v3 = tfc_ssat8(tfc_requantize_high(a3, multiplier, rounding, k));
    } else {
        const int32_t lo = range->lo, hi = range->hi;
        v0 = tfc_clamp_i32(tfc_requantize_high(a0, multiplier, rounding, k), lo, hi);
        v1 = tfc_clamp_i32(tfc_requantize_high(a1, multiplier, rounding, k), lo, hi);
        v2 = tfc_clamp_i32(tfc_requantize_high(a2, multiplier, rounding, k), lo, hi);
        v3 = tfc_clamp_i32(tfc_requantize_high(a3, multiplier, rounding, k), lo, hi);
    }
    y[0] = (int8_t)v0;
    y[step] = (int8_t)v1;
    y += 2 * step;
    y[0] = (int8_t)v2;
    y[step] = (int8_t)v3;
}

/* The record loops walk the patch with an address `xa` (uintptr_t: it starts one block column
 * before the patch) and the stream with `rec`, in the M7's addressing modes that gcc does not
 * find on its own: d = *rec, rec += STEP is one LDRB (post-indexed); xa += BYTES and the pair of
 * patch words there is one LDRD (pre-indexed with writeback); the other pairs of the column are
 * LDRDs at offsets (gcc would emit two LDRs). The patch is 4-byte aligned. */
#if defined(TFC_USE_DSP)
#define BRLE_SKIP(rec, STEP, d)                                                                    \
    __asm__("ldrb %0, [%1], #" #STEP : "=r"(d), "+r"(rec) : "m"(*(rec)))
#define BRLE_PAIR_ADVANCE(xa, BYTES, lo, hi)                                                       \
    __asm__("ldrd %0, %1, [%2, #" #BYTES "]!"                                                      \
            : "=&r"(lo), "=&r"(hi), "+r"(xa)                                                       \
            : "m"(*(const uint64_t *)((xa) + (BYTES))))
#define BRLE_PAIR(xa, OFF, lo, hi)                                                                 \
    __asm__("ldrd %0, %1, [%2, #" #OFF " * 4]"                                                     \
            : "=&r"(lo), "=&r"(hi)                                                                 \
            : "r"(xa), "m"(*(const uint64_t *)((xa) + 4 * (OFF))))
#else
#define BRLE_SKIP(rec, STEP, d) ((d) = *(rec), (rec) += (STEP))
#define BRLE_PAIR_ADVANCE(xa, BYTES, lo, hi)                                                       \
    ((xa) += (BYTES), BRLE_PAIR(xa, 0, lo, hi))
#define BRLE_PAIR(xa, OFF, lo, hi)                                                                 \
    ((lo) = ((const brle_word *)(xa))[OFF], (hi) = ((const brle_word *)(xa))[(OFF) + 1])
#endif

/* For every row r and pixel k of the group: output r of k = requant(bias[r] + row r . patch k).
 * Inlined per requantization mode so that the record loop has no test on it. */
static inline __attribute__((always_inline)) void
brle_rows4(const brle_word *patch, const tfc_brle *w, const brle_row *table, brle_outputs out,
           const brle_range *range, int mode)
{
    enum { COLUMN = 2 * BRLE_GROUP * 4 }; /* bytes: BRLE_GROUP pixels x (x0x2, x1x3) */
    const uint8_t *rec = w->data;
    const uint32_t row_bytes = (uint32_t)w->blocks_per_row * COLUMN;
    const int32_t step = out.step;
    const brle_row *const table_end = table + w->rows;
    int8_t *y = out.y;
    uintptr_t xa = (uintptr_t)patch - COLUMN; /* the current block column of the row */
    for (const brle_row *row = table; row < table_end; ++row, ++y) {
        int32_t a0 = row->bias, a1 = a0, a2 = a0, a3 = a0;
        for (const uint8_t *end = rec + 5 * row->records; rec < end;) {
            uint32_t d, v, lo, hi;
            BRLE_SKIP(rec, 5, d);
            memcpy(&v, rec - 4, 4);
            const uint32_t w02 = tfc_sxtb16(v), w13 = tfc_sxtb16_ror8(v);
            xa += d * COLUMN;
            BRLE_PAIR_ADVANCE(xa, 32, lo, hi); /* 32 = COLUMN: the record's own column */
            a0 = tfc_smlad(w13, hi, tfc_smlad(w02, lo, a0));
            BRLE_PAIR(xa, 2, lo, hi);
            a1 = tfc_smlad(w13, hi, tfc_smlad(w02, lo, a1));
            BRLE_PAIR(xa, 4, lo, hi);
            a2 = tfc_smlad(w13, hi, tfc_smlad(w02, lo, a2));
            BRLE_PAIR(xa, 6, lo, hi);
            a3 = tfc_smlad(w13, hi, tfc_smlad(w02, lo, a3));
        }
        xa -= row_bytes;
        brle_store4(a0, a1, a2, a3, row, y, step, range, mode);
    }
}

static inline __attribute__((always_inline)) void
brle_rows2(const brle_word *patch, const tfc_brle *w, const brle_row *table, brle_outputs out,
           const brle_range *range, int mode)
{
    enum { COLUMN = BRLE_GROUP * 4 }; /* bytes: BRLE_GROUP pixels x (x0x1) */
    const uint8_t *rec = w->data;
    const uint32_t row_bytes = (uint32_t)w->blocks_per_row * COLUMN;
    const int32_t step = out.step;
    const brle_row *const table_end = table + w->rows;
    int8_t *y = out.y;
    uintptr_t xa = (uintptr_t)patch - COLUMN;
    for (const brle_row *row = table; row < table_end; ++row, ++y) {
        int32_t a0 = row->bias, a1 = a0, a2 = a0, a3 = a0;
        for (const uint8_t *end = rec + 3 * row->records; rec < end;) {
            uint32_t d, x0, x1;
            uint16_t h;
            BRLE_SKIP(rec, 3, d);
            memcpy(&h, rec - 2, 2);
            const uint32_t v = tfc_sxtb16((uint32_t)h | ((uint32_t)h << 8)); /* (v1, v2) */
            xa += d * COLUMN;
            BRLE_PAIR_ADVANCE(xa, 16, x0, x1); /* 16 = COLUMN */
            a0 = tfc_smlad(v, x0, a0);
            a1 = tfc_smlad(v, x1, a1);
            BRLE_PAIR(xa, 2, x0, x1);
            a2 = tfc_smlad(v, x0, a2);
            a3 = tfc_smlad(v, x1, a3);
        }
        xa -= row_bytes;
        brle_store4(a0, a1, a2, a3, row, y, step, range, mode);
    }
}

/* One instance of the row loops per block size and requantization mode. */
#define BRLE_ROWS_INSTANCE(NAME, ROWS, MODE)                                                       \
    static void NAME(const brle_word *patch, const tfc_brle *w, const brle_row *table,            \
                     brle_outputs out, const brle_range *range)                                   \
    {                                                                                              \
        ROWS(patch, w, table, out, range, MODE);                                                   \
    }
BRLE_ROWS_INSTANCE(brle_rows4_sat, brle_rows4, BRLE_SHORT_SAT)
BRLE_ROWS_INSTANCE(brle_rows4_clamp, brle_rows4, BRLE_SHORT_CLAMP)
BRLE_ROWS_INSTANCE(brle_rows4_generic, brle_rows4, BRLE_GENERIC)
BRLE_ROWS_INSTANCE(brle_rows2_sat, brle_rows2, BRLE_SHORT_SAT)
BRLE_ROWS_INSTANCE(brle_rows2_clamp, brle_rows2, BRLE_SHORT_CLAMP)
BRLE_ROWS_INSTANCE(brle_rows2_generic, brle_rows2, BRLE_GENERIC)

typedef void (*brle_rows_fn)(const brle_word *, const tfc_brle *, const brle_row *, brle_outputs,
                             const brle_range *);

/* The row loop of a call, by block size and requantization mode. */
static brle_rows_fn brle_row_loop_for(const tfc_brle *w, const tfc_channel_quant *q)
{
    const int saturate_only = q->act_min <= -128 && q->act_max >= 127;
    if (w->block == 4) {
        return !w->short_requant ? brle_rows4_generic
               : saturate_only   ? brle_rows4_sat
                                 : brle_rows4_clamp;
    }
    return !w->short_requant ? brle_rows2_generic
           : saturate_only   ? brle_rows2_sat
                             : brle_rows2_clamp;
}

/* Elements [at, at + 4 * quads) of pixel k's row = src sign-extended; `at` a multiple of 4.
 * A b = 4 block column holds (x0, x2) and (x1, x3) per pixel; b = 2 columns hold (x0, x1), and
 * (x2, x3) BRLE_GROUP words on. Either way the next 4 elements start 2 * BRLE_GROUP words on. */
static void brle_widen_quads(brle_word *patch, int32_t k, const int8_t *src, int32_t quads,
                             int32_t block, int32_t at)
{
    if (block == 4) {
        brle_word *dst = patch + (at >> 2) * (2 * BRLE_GROUP) + 2 * k;
        for (int32_t i = 0; i < quads; ++i, src += 4, dst += 2 * BRLE_GROUP) {
            const uint32_t x = tfc_load4(src);
            dst[0] = tfc_sxtb16(x);      /* (x0, x2) */
            dst[1] = tfc_sxtb16_ror8(x); /* (x1, x3) */
        }
        return;
    }
    brle_word *dst = patch + (at >> 1) * BRLE_GROUP + k;
    for (int32_t i = 0; i < quads; ++i, src += 4, dst += 2 * BRLE_GROUP) {
        const uint32_t x = tfc_load4(src);
        const uint32_t even = tfc_sxtb16(x), odd = tfc_sxtb16_ror8(x);
        dst[0] = (even & 0xFFFFu) | (odd << 16);              /* (x0, x1) */
        dst[BRLE_GROUP] = (even >> 16) | (odd & 0xFFFF0000u); /* (x2, x3) */
    }
}

/* Elements [at, at + n) of pixel k's row = `value` (the zero point for padding taps, 0 for the
 * row's padding to whole blocks). */
static void brle_set(brle_word *patch, int32_t k, int32_t n, int32_t value, int32_t block,
                      int32_t at)
{
    if ((n & 3) == 0 && (at & 3) == 0) {
        const uint32_t pair = (uint32_t)(uint16_t)(int16_t)value * 0x00010001u;
        const int32_t second = block == 4 ? 1 : BRLE_GROUP;
        brle_word *dst = block == 4 ? patch + (at >> 2) * (2 * BRLE_GROUP) + 2 * k
                                    : patch + (at >> 1) * BRLE_GROUP + k;
        for (int32_t i = 0; i < n; i += 4, dst += 2 * BRLE_GROUP) {
            dst[0] = pair;
            dst[second] = pair;
        }
        return;
    }
    brle_half *half = (brle_half *)patch;
    for (int32_t i = 0; i < n; ++i) {
        half[brle_group_index(at + i, k, block)] = (int16_t)value;
    }
}

/* Elements [at, at + n) of pixel k's row = src sign-extended. */
static void brle_widen(brle_word *patch, int32_t k, const int8_t *src, int32_t n, int32_t block,
                       int32_t at)
{
    if ((n & 3) == 0 && (at & 3) == 0) {
        brle_widen_quads(patch, k, src, n >> 2, block, at);
        return;
    }
    brle_half *half = (brle_half *)patch;
    for (int32_t i = 0; i < n; ++i) {
        half[brle_group_index(at + i, k, block)] = src[i];
    }
}

/* Zeroes the row padding [length, blocks_per_row * block) of every pixel once per call: the
 * widening never writes it. */
static void brle_zero_padding(brle_word *patch, const tfc_brle *w, int32_t length)
{
    const int32_t padded = w->blocks_per_row * w->block;
    for (int32_t k = 0; k < BRLE_GROUP; ++k) {
        brle_set(patch, k, padded - length, 0, w->block, length);
    }
}

/* The conv window of output pixel (oh, ow) as pixel k of the group patch; taps outside the image
 * hold the input zero point. A kernel row inside the image is one contiguous run. */
static void brle_conv_patch(brle_word *patch, int32_t k, const int8_t *image, int32_t oh,
                            int32_t ow, const tfc_window *g, int32_t zp, int32_t block)
{
    const int32_t ih0 = oh * g->stride_h - g->pad_top;
    const int32_t iw0 = ow * g->stride_w - g->pad_left;
    const int32_t row_len = g->kernel_w * g->in_c;
    const int32_t iw_last = iw0 + (g->kernel_w - 1) * g->dilation_w;
    const int whole_rows = (g->dilation_w == 1 || g->kernel_w == 1) && iw0 >= 0
                           && iw_last < g->in_w;
    int32_t i = 0;
    for (int32_t kh = 0; kh < g->kernel_h; ++kh, i += row_len) {
        const int32_t ih = ih0 + kh * g->dilation_h;
        if (ih < 0 || ih >= g->in_h) {
            brle_set(patch, k, row_len, zp, block, i);
            continue;
        }
        const int8_t *line = image + ih * g->in_w * g->in_c;
        if (whole_rows) {
            brle_widen(patch, k, line + iw0 * g->in_c, row_len, block, i);
            continue;
        }
        for (int32_t kw = 0; kw < g->kernel_w; ++kw) {
            const int32_t iw = iw0 + kw * g->dilation_w;
            const int32_t at = i + kw * g->in_c;
            if (iw >= 0 && iw < g->in_w) {
                brle_widen(patch, k, line + iw * g->in_c, g->in_c, block, at);
            } else {
                brle_set(patch, k, g->in_c, zp, block, at);
            }
        }
    }
}

/* The row table, after the group patch in the kernels' scratch. */
static brle_row *brle_table_in(int16_t *scratch, const tfc_brle *w)
{
    return (brle_row *)(void *)(scratch + BRLE_GROUP * w->blocks_per_row * w->block);
}

void tfc_conv2d_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                        const tfc_window *g, const tfc_channel_quant *q, int16_t *scratch)
{
    brle_word *patch = (brle_word *)(void *)scratch;
    brle_row *table = brle_table_in(scratch, w);
    const brle_range range = {q->output_zp, q->act_min, q->act_max};
    const brle_rows_fn rows = brle_row_loop_for(w, q);
    brle_row_table(w, bias, q, table);
    brle_zero_padding(patch, w, g->kernel_h * g->kernel_w * g->in_c);
    const int32_t pixels = g->out_h * g->out_w;
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * g->in_c;
        int8_t *out = y + n * pixels * g->out_c;
        if (pixels < BRLE_GROUP) { /* each pixel alone, in all four slots */
            for (int32_t p = 0; p < pixels; ++p) {
                for (int32_t k = 0; k < BRLE_GROUP; ++k) {
                    brle_conv_patch(patch, k, image, p / g->out_w, p % g->out_w, g, q->input_zp,
                                    w->block);
                }
                rows(patch, w, table, (brle_outputs){out + p * g->out_c, 0}, &range);
            }
            continue;
        }
        for (int32_t p = 0; p < pixels; p += BRLE_GROUP) {
            /* The last group ends at the last pixel, recomputing a few: same values, same place. */
            const int32_t first = p + BRLE_GROUP <= pixels ? p : pixels - BRLE_GROUP;
            int32_t oh = first / g->out_w, ow = first % g->out_w;
            for (int32_t k = 0; k < BRLE_GROUP; ++k) {
                brle_conv_patch(patch, k, image, oh, ow, g, q->input_zp, w->block);
                if (++ow == g->out_w) {
                    ow = 0;
                    ++oh;
                }
            }
            rows(patch, w, table, (brle_outputs){out + first * g->out_c, g->out_c}, &range);
        }
    }
}

void tfc_linear_brle_s8(const int8_t *x, const tfc_brle *w, const int32_t *bias, int8_t *y,
                        int32_t rows, int32_t in_features, const tfc_channel_quant *q,
                        int16_t *scratch)
{
    brle_word *patch = (brle_word *)(void *)scratch;
    brle_row *table = brle_table_in(scratch, w);
    const brle_range range = {q->output_zp, q->act_min, q->act_max};
    const brle_rows_fn group_rows = brle_row_loop_for(w, q);
    brle_row_table(w, bias, q, table);
    brle_zero_padding(patch, w, in_features);
    const int32_t step = rows < BRLE_GROUP ? 0 : w->rows; /* few tokens: one at a time */
    for (int32_t t = 0; t < rows; t += step ? BRLE_GROUP : 1) {
        const int32_t first = !step || t + BRLE_GROUP <= rows ? t : rows - BRLE_GROUP;
        for (int32_t k = 0; k < BRLE_GROUP; ++k) {
            const int32_t token = step ? first + k : first;
            brle_widen(patch, k, x + token * in_features, in_features, w->block, 0);
        }
        group_rows(patch, w, table, (brle_outputs){y + first * w->rows, step}, &range);
    }
}
