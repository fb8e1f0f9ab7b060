/* Sparse int8 kernels that compute on block run-length (brle) weight streams directly.
 *
 * Stream format (tfc/sparse/codec.py): the weights, one row per output channel in the kernel's
 * walk order, cut into blocks of b; only blocks that are not all zero are stored, each as the
 * record (d, v1..vb) with d the count of all-zero blocks skipped since the previous record.
 * Positions run on across rows; fillers (255, 0..0) are ordinary records.
 *
 * conv2d and linear work on groups of 8 output pixels (or tokens; 4 for the last few): their
 * input windows are sign-extended to int16 once, into a "group patch" laid out block by block
 * with the group's pixels side by side, so one decoded record (one LDR, two SXTB16) feeds two
 * SMLADs per pixel whose operands are adjacent words (LDRD pairs). The input zero point is
 * folded into the bias by the compiler (padding taps hold the zero point), so widening is
 * SXTB16 and nothing else. A pre-pass measures the records of every row once per call, so the
 * hot loop has no row-boundary test and no division. For b = 4 each pixel's block is stored
 * pairwise interleaved (x0, x2, x1, x3) so that SXTB16 of the weight word and of its rotation
 * line up with it.
 * The portable forms of SXTB16/SMLAD in tfc_internal.h make the host run the very same code.
 * The depthwise kernel, which walks channel by channel, is in tfc_sparse_dw.c. */
#include <string.h>

#include "tfc_runtime.h"
#include "tfc_internal.h"

/* Output pixels (tokens) that share one pass over the stream: BRLE_WIDE while that many are
 * left, BRLE_NARROW for the rest and for small layers (fewer than BRLE_NARROW run one at a
 * time). Wider groups spread each row's start and requantization constants over more outputs. */
#define BRLE_WIDE 8
#define BRLE_NARROW 4

/* The group patch is written and read as packed int16 pairs. */
typedef uint32_t __attribute__((may_alias)) brle_word;

/* How a call requantizes: the short form (tfc_requantize_high, exact where the compiler set
 * tfc_brle.short_requant) with a plain int8 clamp or with the activation range, or
 * tfc_requantize per output. */
enum { BRLE_SHORT_SAT, BRLE_SHORT_CLAMP, BRLE_GENERIC };

/* What the row loops need of row r, one entry per row so that they walk one pointer. The
 * constants come from the compiler (sparse_lowering.row_constants, 4 int32 per row in flash); the
 * record bytes are counted from the stream once per call (brle_row_table), because storing them
 * would cost flash per row that the stream's size (eta) does not account for. */
typedef struct {
    int32_t record_bytes; /* (1 + block) x the records (fillers included) in the row: the row
                           * start is one ADD */
    int32_t bias;         /* zero point folded in */
    int32_t multiplier;   /* short form: 0 for an all-zero row with a large shift, whose */
    int32_t rounding;     /* rounding is then its constant output; generic: the shift */
    int32_t k;            /* short form: -1 - shift */
} brle_row;

/* The activation range and output zero point of a call. The row loops copy them out of
 * tfc_channel_quant: int8 stores may alias it and would force reloads per output. */
typedef struct {
    int32_t zp, lo, hi;
} brle_range;

/* Where a group's outputs go: pixel k's channel r at y[k * step + r] (step 0 when the group is
 * one pixel repeated). */
typedef struct {
    int8_t *y;
    int32_t step;
} brle_outputs;

/* One row's accumulators of the group's pixels, requantized and stored at y[k * step]. All are
 * requantized before the first store so that the constants' registers are free for the
 * addresses. */
static inline __attribute__((always_inline)) void
brle_store(const int32_t *acc, int group, const brle_row *row, int8_t *y, int32_t step,
           const brle_range *range, int mode)
{
    const int32_t multiplier = row->multiplier, rounding = row->rounding, k = row->k;
    int32_t v[BRLE_WIDE];
    for (int i = 0; i < group; ++i) {
        if (mode == BRLE_GENERIC) {
            v[i] = tfc_clamp_i32(tfc_requantize(acc[i], multiplier, rounding) + range->zp,
                                 range->lo, range->hi);
        } else if (mode == BRLE_SHORT_SAT) {
            v[i] = tfc_ssat8(tfc_requantize_high(acc[i], multiplier, rounding, k));
        } else {
            v[i] = tfc_clamp_i32(tfc_requantize_high(acc[i], multiplier, rounding, k), range->lo,
                                 range->hi);
        }
    }
    for (int i = 0; i < group; i += 2, y += 2 * step) {
        y[0] = (int8_t)v[i];
        y[step] = (int8_t)v[i + 1];
    }
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

/* b = 4: pixel K's (x0, x2), (x1, x3) pair of the current column times the record's weights. */
#define BRLE_MAC4(K)                                                                               \
    do {                                                                                           \
        BRLE_PAIR(xa, 2 * K, lo, hi);                                                              \
        acc[K] = tfc_smlad(w13, hi, tfc_smlad(w02, lo, from[K]));                                  \
    } while (0)

/* b = 2: pixels K and K + 1 of the current column times the record's weights. */
#define BRLE_MAC2(K)                                                                               \
    do {                                                                                           \
        BRLE_PAIR(xa, K, x0, x1);                                                                  \
        acc[K] = tfc_smlad(v, x0, from[K]);                                                        \
        acc[K + 1] = tfc_smlad(v, x1, from[K + 1]);                                                \
    } while (0)

/* One b = 4 record at *rec_at: acc[k] = from[k] + its block . pixel k's block of its column. */
static inline __attribute__((always_inline)) void
brle_record4(const uint8_t **rec_at, uintptr_t *xa_at, int32_t *acc, const int32_t *from,
             int group)
{
    const uint8_t *rec = *rec_at;
    uintptr_t xa = *xa_at;
    uint32_t d, v, lo, hi;
    BRLE_SKIP(rec, 5, d);
    memcpy(&v, rec - 4, 4);
    const uint32_t w02 = tfc_sxtb16(v), w13 = tfc_sxtb16_ror8(v);
    if (group == BRLE_WIDE) {
        xa += d * (8 * BRLE_WIDE);
        BRLE_PAIR_ADVANCE(xa, 64, lo, hi); /* the record's own column */
    } else {
        xa += d * (8 * BRLE_NARROW);
        BRLE_PAIR_ADVANCE(xa, 32, lo, hi);
    }
    acc[0] = tfc_smlad(w13, hi, tfc_smlad(w02, lo, from[0]));
    BRLE_MAC4(1);
    BRLE_MAC4(2);
    BRLE_MAC4(3);
    if (group == BRLE_WIDE) {
        BRLE_MAC4(4);
        BRLE_MAC4(5);
        BRLE_MAC4(6);
        BRLE_MAC4(7);
    }
    *rec_at = rec;
    *xa_at = xa;
}

/* One b = 2 record, as brle_record4. */
static inline __attribute__((always_inline)) void
brle_record2(const uint8_t **rec_at, uintptr_t *xa_at, int32_t *acc, const int32_t *from,
             int group)
{
    const uint8_t *rec = *rec_at;
    uintptr_t xa = *xa_at;
    uint32_t d, x0, x1;
    uint16_t h;
    BRLE_SKIP(rec, 3, d);
    memcpy(&h, rec - 2, 2);
    const uint32_t v = tfc_sxtb16((uint32_t)h | ((uint32_t)h << 8)); /* (v1, v2) */
    if (group == BRLE_WIDE) {
        xa += d * (4 * BRLE_WIDE);
        BRLE_PAIR_ADVANCE(xa, 32, x0, x1); /* the record's own column */
    } else {
        xa += d * (4 * BRLE_NARROW);
        BRLE_PAIR_ADVANCE(xa, 16, x0, x1);
    }
    acc[0] = tfc_smlad(v, x0, from[0]);
    acc[1] = tfc_smlad(v, x1, from[1]);
    BRLE_MAC2(2);
    if (group == BRLE_WIDE) {
        BRLE_MAC2(4);
        BRLE_MAC2(6);
    }
    *rec_at = rec;
    *xa_at = xa;
}

/* For every row r and pixel k of a group of `group` pixels: output r of k = requant(bias[r] +
 * row r . patch k). Inlined per block size, group and requantization mode so that the record
 * loop has no test on any of them. A row's first record starts from the bias (no copies of it
 * into the accumulators). The patch is walked at `xa` (one block column before it at first): the
 * records' positions run on across rows, so each row ends by going back one row of columns. */
static inline __attribute__((always_inline)) void
brle_rows(const brle_word *patch, const tfc_brle *w, const brle_row *table, brle_outputs out,
          const brle_range *range, int mode, int group)
{
    const uint32_t column = (uint32_t)(2 * w->block * group); /* bytes */
    const uint8_t *rec = w->data;
    const uint32_t row_bytes = (uint32_t)w->blocks_per_row * column;
    const int32_t step = out.step;
    const brle_row *const table_end = table + w->rows;
    int8_t *y = out.y;
    uintptr_t xa = (uintptr_t)patch - column;
    for (const brle_row *row = table; row < table_end; ++row, ++y) {
        int32_t acc[BRLE_WIDE], bias[BRLE_WIDE];
        for (int k = 0; k < group; ++k) {
            bias[k] = row->bias;
        }
        const uint8_t *const end = rec + row->record_bytes;
        if (rec < end) {
            if (w->block == 4) {
                brle_record4(&rec, &xa, acc, bias, group);
                while (rec < end) {
                    brle_record4(&rec, &xa, acc, acc, group);
                }
            } else {
                brle_record2(&rec, &xa, acc, bias, group);
                while (rec < end) {
                    brle_record2(&rec, &xa, acc, acc, group);
                }
            }
            xa -= row_bytes;
            brle_store(acc, group, row, y, step, range, mode);
        } else {
            xa -= row_bytes;
            brle_store(bias, group, row, y, step, range, mode);
        }
    }
}

/* One instance of the row loops per block size, group and requantization mode. */
#define BRLE_ROWS_INSTANCE(NAME, BLOCK, MODE, GROUP)                                               \
    static void NAME(const brle_word *patch, const tfc_brle *w, const brle_row *table,            \
                     brle_outputs out, const brle_range *range)                                   \
    {                                                                                              \
        const tfc_brle stream = {w->data, w->records, BLOCK, w->blocks_per_row, w->rows, 0};       \
        brle_rows(patch, &stream, table, out, range, MODE, GROUP);                                 \
    }
BRLE_ROWS_INSTANCE(brle_rows4_sat, 4, BRLE_SHORT_SAT, BRLE_NARROW)
BRLE_ROWS_INSTANCE(brle_rows4_clamp, 4, BRLE_SHORT_CLAMP, BRLE_NARROW)
BRLE_ROWS_INSTANCE(brle_rows4_generic, 4, BRLE_GENERIC, BRLE_NARROW)
BRLE_ROWS_INSTANCE(brle_rows2_sat, 2, BRLE_SHORT_SAT, BRLE_NARROW)
BRLE_ROWS_INSTANCE(brle_rows2_clamp, 2, BRLE_SHORT_CLAMP, BRLE_NARROW)
BRLE_ROWS_INSTANCE(brle_rows2_generic, 2, BRLE_GENERIC, BRLE_NARROW)
BRLE_ROWS_INSTANCE(brle_rows4_sat_wide, 4, BRLE_SHORT_SAT, BRLE_WIDE)
BRLE_ROWS_INSTANCE(brle_rows4_clamp_wide, 4, BRLE_SHORT_CLAMP, BRLE_WIDE)
BRLE_ROWS_INSTANCE(brle_rows2_sat_wide, 2, BRLE_SHORT_SAT, BRLE_WIDE)
BRLE_ROWS_INSTANCE(brle_rows2_clamp_wide, 2, BRLE_SHORT_CLAMP, BRLE_WIDE)

typedef void (*brle_rows_fn)(const brle_word *, const tfc_brle *, const brle_row *, brle_outputs,
                             const brle_range *);

/* The row loops of a call, by block size and requantization mode, for either group size. The
 * generic requantization (rare: large shifts or output zero points) has no wide form (NULL):
 * 2 KB of flash each for a path compiled models seldom take. */
typedef struct {
    brle_rows_fn narrow, wide;
} brle_row_loops;

static brle_row_loops brle_row_loops_for(const tfc_brle *w, const tfc_channel_quant *q)
{
    const int mode = !w->short_requant                         ? BRLE_GENERIC
                     : q->act_min <= -128 && q->act_max >= 127 ? BRLE_SHORT_SAT
                                                               : BRLE_SHORT_CLAMP;
    static const brle_row_loops loops[2][3] = {
        {{brle_rows2_sat, brle_rows2_sat_wide}, {brle_rows2_clamp, brle_rows2_clamp_wide},
         {brle_rows2_generic, NULL}},
        {{brle_rows4_sat, brle_rows4_sat_wide}, {brle_rows4_clamp, brle_rows4_clamp_wide},
         {brle_rows4_generic, NULL}},
    };
    return loops[w->block == 4][mode];
}

/* A call's group patch: `group` pixels' rows of `length` elements (the rest up to `padded`, a
 * multiple of 4, multiply zero weights). */
typedef struct {
    brle_word *words;
    int32_t group, block, length, padded;
} brle_patch;

/* Elements [at, at + 4 * quads) of pixel k's row = src sign-extended; `at` a multiple of 4.
 * A b = 4 block column holds (x0, x2) and (x1, x3) per pixel; b = 2 columns hold (x0, x1), and
 * (x2, x3) `group` words on. Either way the next 4 elements start 2 * group words on. */
static void brle_widen_quads(const brle_patch *patch, int32_t k, const int8_t *src,
                             int32_t quads, int32_t at)
{
    const int32_t group = patch->group;
    if (patch->block == 4) {
        brle_word *dst = patch->words + (at >> 2) * (2 * group) + 2 * k;
        int32_t i = 0;
        for (; i + 2 <= quads; i += 2, src += 8, dst += 4 * group) { /* two per pass: fewer loop tests */
            const uint32_t x = tfc_load4(src), x4 = tfc_load4(src + 4);
            dst[0] = tfc_sxtb16(x);      /* (x0, x2) */
            dst[1] = tfc_sxtb16_ror8(x); /* (x1, x3) */
            dst[2 * group] = tfc_sxtb16(x4);
            dst[2 * group + 1] = tfc_sxtb16_ror8(x4);
        }
        if (i < quads) {
            const uint32_t x = tfc_load4(src);
            dst[0] = tfc_sxtb16(x);
            dst[1] = tfc_sxtb16_ror8(x);
        }
        return;
    }
    brle_word *dst = patch->words + (at >> 1) * group + k;
    for (int32_t i = 0; i < quads; ++i, src += 4, dst += 2 * group) {
        const uint32_t x = tfc_load4(src);
        const uint32_t even = tfc_sxtb16(x), odd = tfc_sxtb16_ror8(x);
        dst[0] = (even & 0xFFFFu) | (odd << 16);         /* (x0, x1) */
        dst[group] = (even >> 16) | (odd & 0xFFFF0000u); /* (x2, x3) */
    }
}

/* Elements [at, at + n) of pixel k's row = `value` (the input zero point for padding taps);
 * `at` and `n` multiples of 4. */
static void brle_set_quads(const brle_patch *patch, int32_t k, int32_t n, int32_t value,
                           int32_t at)
{
    const int32_t group = patch->group;
    const uint32_t pair = (uint32_t)(uint16_t)(int16_t)value * 0x00010001u;
    const int32_t second = patch->block == 4 ? 1 : group;
    brle_word *dst = patch->block == 4 ? patch->words + (at >> 2) * (2 * group) + 2 * k
                                       : patch->words + (at >> 1) * group + k;
    for (int32_t i = 0; i < n; i += 4, dst += 2 * group) {
        dst[0] = pair;
        dst[second] = pair;
    }
}

/* n bytes from src to dst, a word at a time. */
static inline void brle_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        const uint32_t x = tfc_load4(src);
        memcpy(dst, &x, 4);
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

/* The conv window of output pixel (oh, ow) as int8 in `window` (the im2col row; taps outside
 * the image hold the input zero point), for input channels that are not a multiple of 4: the
 * widening then runs over whole quads of the window instead of element by element. */
static void brle_gather_window(int8_t *window, const int8_t *image, int32_t oh, int32_t ow,
                               const tfc_window *g, int32_t zp)
{
    const int32_t ih0 = oh * g->stride_h - g->pad_top;
    const int32_t iw0 = ow * g->stride_w - g->pad_left;
    const int32_t row_len = g->kernel_w * g->in_c;
    const int32_t iw_last = iw0 + (g->kernel_w - 1) * g->dilation_w;
    const int whole_rows = (g->dilation_w == 1 || g->kernel_w == 1) && iw0 >= 0
                           && iw_last < g->in_w;
    const int32_t line = g->in_w * g->in_c;
    if (whole_rows && ih0 >= 0 && ih0 + (g->kernel_h - 1) * g->dilation_h < g->in_h) {
        /* inside the image: one run per kernel row */
        const int8_t *src = image + ih0 * line + iw0 * g->in_c;
        for (int32_t kh = 0; kh < g->kernel_h; ++kh, window += row_len) {
            brle_copy(window, src, row_len);
            src += g->dilation_h * line;
        }
        return;
    }
    for (int32_t kh = 0; kh < g->kernel_h; ++kh, window += row_len) {
        const int32_t ih = ih0 + kh * g->dilation_h;
        if (ih < 0 || ih >= g->in_h) {
            memset(window, zp, (size_t)row_len);
            continue;
        }
        const int8_t *pixels = image + ih * line;
        if (whole_rows) {
            brle_copy(window, pixels + iw0 * g->in_c, row_len);
            continue;
        }
        for (int32_t kw = 0; kw < g->kernel_w; ++kw) {
            const int32_t iw = iw0 + kw * g->dilation_w;
            if (iw >= 0 && iw < g->in_w) {
                brle_copy(window + kw * g->in_c, pixels + iw * g->in_c, g->in_c);
            } else {
                memset(window + kw * g->in_c, zp, (size_t)g->in_c);
            }
        }
    }
}

/* The conv window of output pixel (oh, ow) as pixel k of the group patch; taps outside the image
 * hold the input zero point. With input channels a multiple of 4 every tap is whole quads and a
 * kernel row inside the image one contiguous run; otherwise the window goes through `window`. */
static void brle_conv_patch(const brle_patch *patch, int32_t k, const int8_t *image, int32_t oh,
                            int32_t ow, const tfc_window *g, int32_t zp, int8_t *window)
{
    if (g->in_c & 3) {
        brle_gather_window(window, image, oh, ow, g, zp);
        brle_widen_quads(patch, k, window, patch->padded >> 2, 0);
        return;
    }
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
            brle_set_quads(patch, k, row_len, zp, i);
            continue;
        }
        const int8_t *line = image + ih * g->in_w * g->in_c;
        if (whole_rows) {
            brle_widen_quads(patch, k, line + iw0 * g->in_c, row_len >> 2, i);
            continue;
        }
        for (int32_t kw = 0; kw < g->kernel_w; ++kw) {
            const int32_t iw = iw0 + kw * g->dilation_w;
            const int32_t at = i + kw * g->in_c;
            if (iw >= 0 && iw < g->in_w) {
                brle_widen_quads(patch, k, line + iw * g->in_c, g->in_c >> 2, at);
            } else {
                brle_set_quads(patch, k, g->in_c, zp, at);
            }
        }
    }
}

/* Token features `x` as pixel k of the group patch; a length that is not a multiple of 4 goes
 * through `window`, whose tail is zero. */
static void brle_linear_patch(const brle_patch *patch, int32_t k, const int8_t *x, int8_t *window)
{
    if (patch->length & 3) {
        brle_copy(window, x, patch->length);
        x = window;
    }
    brle_widen_quads(patch, k, x, patch->padded >> 2, 0);
}

/* Elements of a weight row, padded to whole blocks and to a multiple of 4 (the widening writes
 * whole quads). */
static int32_t brle_padded_length(const tfc_brle *w)
{
    return (w->blocks_per_row * w->block + 3) & ~3;
}

/* The kernels' scratch (sparse_lowering._patch_bytes): the group patch for BRLE_WIDE pixels,
 * then the int8 window (an im2col row) whose tail past `length` is zero, so that widening whole
 * quads of it also zeroes the patch's row padding, then the row table. */
typedef struct {
    brle_word *patch;
    int8_t *window;
    brle_row *table;
} brle_scratch;

/* The row table: each row's constants, and the bytes of the records whose position lies in the
 * row (fillers included), from one walk over the stream. */
static void brle_row_table(const tfc_brle *w, const int32_t *constants, brle_row *table)
{
    for (int32_t r = 0; r < w->rows; ++r, constants += 4) {
        table[r].record_bytes = 0;
        table[r].bias = constants[0];
        table[r].multiplier = constants[1];
        table[r].rounding = constants[2];
        table[r].k = constants[3];
    }
    const int32_t step = 1 + w->block;
    const uint8_t *rec = w->data;
    int32_t row = 0, column = -1;
    for (int32_t i = 0; i < w->records; ++i, rec += step) {
        column += (int32_t)rec[0] + 1;
        while (column >= w->blocks_per_row) {
            column -= w->blocks_per_row;
            ++row;
        }
        table[row].record_bytes += step;
    }
}

static brle_scratch brle_scratch_in(int16_t *scratch, const tfc_brle *w, int32_t length,
                                    const int32_t *row_constants)
{
    brle_scratch s;
    const int32_t padded = brle_padded_length(w);
    s.patch = (brle_word *)(void *)scratch;
    s.window = (int8_t *)(void *)(scratch + BRLE_WIDE * padded);
    s.table = (brle_row *)(void *)(s.window + padded); /* padded: a multiple of 4 */
    memset(s.window + length, 0, (size_t)(padded - length));
    brle_row_table(w, row_constants, s.table);
    return s;
}

/* The patch of a group of `group` pixels over weight rows of `length` elements. Where `length`
 * is a multiple of 4 the row padding (blocks_per_row * block - length) is empty. */
static brle_patch brle_patch_of(const brle_scratch *s, const tfc_brle *w, int32_t group,
                                int32_t length)
{
    const brle_patch patch = {s->patch, group, w->block, length, brle_padded_length(w)};
    return patch;
}

/* The first output pixel (token) of the group of `group` that starts at p: the last group ends
 * at the last pixel, recomputing a few (same values, same place). */
static int32_t brle_group_start(int32_t p, int32_t group, int32_t pixels)
{
    return p + group <= pixels ? p : pixels - group;
}

/* The group size for the pixels from p on: BRLE_WIDE while more than BRLE_NARROW are left (the
 * last wide group overlaps the one before), where the layer has that many and `loops` a wide
 * form. */
static int32_t brle_group_size(int32_t p, int32_t pixels, const brle_row_loops *loops)
{
    return pixels - p > BRLE_NARROW && pixels >= BRLE_WIDE && loops->wide ? BRLE_WIDE
                                                                           : BRLE_NARROW;
}

void tfc_conv2d_brle_s8(const int8_t *x, const tfc_brle *w,
                        const int32_t *row_constants, int8_t *y,
                        const tfc_window *g, const tfc_channel_quant *q, int16_t *scratch)
{
    const int32_t length = g->kernel_h * g->kernel_w * g->in_c;
    const brle_scratch s = brle_scratch_in(scratch, w, length, row_constants);
    const brle_row *table = s.table;
    const brle_range range = {q->output_zp, q->act_min, q->act_max};
    const brle_row_loops loops = brle_row_loops_for(w, q);
    const brle_patch narrow = brle_patch_of(&s, w, BRLE_NARROW, length);
    const brle_patch wide = brle_patch_of(&s, w, BRLE_WIDE, length);
    const int32_t pixels = g->out_h * g->out_w;
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * g->in_c;
        int8_t *out = y + n * pixels * g->out_c;
        if (pixels < BRLE_NARROW) { /* each pixel alone, in all the group's slots */
            for (int32_t p = 0; p < pixels; ++p) {
                for (int32_t k = 0; k < BRLE_NARROW; ++k) {
                    brle_conv_patch(&narrow, k, image, p / g->out_w, p % g->out_w, g,
                                    q->input_zp, s.window);
                }
                loops.narrow(s.patch, w, table, (brle_outputs){out + p * g->out_c, 0}, &range);
            }
            continue;
        }
        for (int32_t p = 0; p < pixels;) {
            const int32_t group = brle_group_size(p, pixels, &loops);
            const brle_patch *patch = group == BRLE_WIDE ? &wide : &narrow;
            const int32_t first = brle_group_start(p, group, pixels);
            int32_t oh = first / g->out_w, ow = first % g->out_w;
            for (int32_t k = 0; k < group; ++k) {
                brle_conv_patch(patch, k, image, oh, ow, g, q->input_zp, s.window);
                if (++ow == g->out_w) {
                    ow = 0;
                    ++oh;
                }
            }
            (group == BRLE_WIDE ? loops.wide : loops.narrow)(
                s.patch, w, table, (brle_outputs){out + first * g->out_c, g->out_c}, &range);
            p = first + group;
        }
    }
}

void tfc_linear_brle_s8(const int8_t *x, const tfc_brle *w,
                        const int32_t *row_constants, int8_t *y,
                        int32_t rows, int32_t in_features, const tfc_channel_quant *q,
                        int16_t *scratch)
{
    const brle_scratch s = brle_scratch_in(scratch, w, in_features, row_constants);
    const brle_row *table = s.table;
    const brle_range range = {q->output_zp, q->act_min, q->act_max};
    const brle_row_loops loops = brle_row_loops_for(w, q);
    const brle_patch narrow = brle_patch_of(&s, w, BRLE_NARROW, in_features);
    const brle_patch wide = brle_patch_of(&s, w, BRLE_WIDE, in_features);
    if (rows < BRLE_NARROW) { /* few tokens: each alone, in all the group's slots */
        for (int32_t t = 0; t < rows; ++t) {
            for (int32_t k = 0; k < BRLE_NARROW; ++k) {
                brle_linear_patch(&narrow, k, x + t * in_features, s.window);
            }
            loops.narrow(s.patch, w, table, (brle_outputs){y + t * w->rows, 0}, &range);
        }
        return;
    }
    for (int32_t t = 0; t < rows;) {
        const int32_t group = brle_group_size(t, rows, &loops);
        const brle_patch *patch = group == BRLE_WIDE ? &wide : &narrow;
        const int32_t first = brle_group_start(t, group, rows);
        for (int32_t k = 0; k < group; ++k) {
            brle_linear_patch(patch, k, x + (first + k) * in_features, s.window);
        }
        (group == BRLE_WIDE ? loops.wide : loops.narrow)(
            s.patch, w, table, (brle_outputs){y + first * w->rows, w->rows}, &range);
        t = first + group;
    }
}
