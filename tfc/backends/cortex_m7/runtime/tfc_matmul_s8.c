/* Fast int8 activation x activation matmul (attention's Q.K^T and A.V) with strided operands.
 *
 * Both operands are activations with zero points, and either may arrive in any layout: a
 * multi-head split (transpose of [tokens, heads, d]) or K^T is just a pair of strides here, so the
 * graph needs no copies (see matmul_lowering.py and the fold-transpose-matmul pass). The kernel
 * widens both operands to int16 into scratch:
 *
 * - the B panel: every column of B minus b_zp, contiguous along k, columns interleaved by pairs;
 * - the A panel: two rows of A at a time (raw, zero point not removed), interleaved the same way.
 *
 * After that the product is the NT form SMLAD wants. A 2x2 block of outputs (rows i, i+1 times
 * columns j, j+1) reads, per group of 4 reduction elements, 2 words of each of the 4 vectors (four
 * LDRDs) and does 8 SMLADs: 16 MACs in 12 instructions, and every widening happens once per
 * element instead of once per MAC. The zero points cost nothing per MAC either:
 *
 *   sum (a - a_zp) (b - b_zp) = sum a (b - b_zp) - a_zp * sum (b - b_zp)
 *
 * and the last term, one per column, is computed while packing B and stored in the panel in front
 * of the column pair's groups, where the block loads it as its accumulators' start value. Every
 * partial sum wraps like the int32 accumulator of the IR, and the final one is exact (the
 * lowering checks |acc| <= k * 255^2 fits).
 *
 * Panel layout, per vector and per group g of 4 reduction elements (k = 4g..4g+3): two words,
 * (v0, v2) and (v1, v3), the order SXTB16 / SXTB16 ROR 8 produce from one loaded word. Both panels
 * use it, so each SMLAD pairs matching k. A pair of vectors keeps its groups side by side
 * ([v 2 words][w 2 words] per group), so one pointer walks both; a B column pair starts with its
 * two start values (2 words). The reduction is padded with zeros to k4 = k rounded up to 4.
 *
 * Requantization (tfc_matmul_quant): where the compiler proved it exact (matmul_lowering.py),
 * MBQM(acc) + output_zp is one 64-bit multiply-accumulate and one shift; otherwise the generic
 * tfc_requantize. Results with unit column stride (every attention layout) get a loop of their
 * own whose four stores use immediate offsets, which frees the registers the block needs. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

/* gcc's pre-allocation scheduler hoists the 2x2 block's loads and spills its requantization
 * constants: 88 instead of 78 instructions per K = 16 block on the M7. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__arm__)
#pragma GCC optimize("no-schedule-insns")
#endif

/* ---- panels ------------------------------------------------------------------------------ */

static inline uint32_t pack_halves(int32_t lo, int32_t hi)
{
    return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16);
}

/* One vector (len elements at src, `stride` apart) minus zp into its panel slot: `dst` is its
 * group-0 words, groups are 4 words apart; groups past len are zero up to k4. Returns the sum of
 * the vector minus zp. `subtract_zp` is a constant at each call (0: the A rows, zp unused). */
static inline int32_t pack_vector(uint32_t *dst, const int8_t *src, int32_t stride, int32_t len,
                                  int32_t zp, int32_t k4, int subtract_zp)
{
    int32_t k = 0, sum = 0;
    if (!subtract_zp) {
        zp = 0;
    }
    if (stride == 1) {
        const uint32_t minus_zp = (uint32_t)(uint16_t)(-zp) * 0x10001u;
        for (; k + 4 <= len; k += 4, src += 4, dst += 4) {
            const uint32_t x = tfc_load4(src);
            uint32_t even = tfc_sxtb16(x), odd = tfc_sxtb16_ror8(x);
            if (subtract_zp) {
                even = tfc_sadd16(even, minus_zp);
                odd = tfc_sadd16(odd, minus_zp);
                sum = tfc_smlad(even, 0x10001u, tfc_smlad(odd, 0x10001u, sum));
            }
            dst[0] = even;
            dst[1] = odd;
        }
    } else {
        const int32_t s2 = 2 * stride, s3 = 3 * stride;
        for (; k + 4 <= len; k += 4, src += 4 * stride, dst += 4) {
            const int32_t v0 = src[0] - zp, v1 = src[stride] - zp;
            const int32_t v2 = src[s2] - zp, v3 = src[s3] - zp;
            dst[0] = pack_halves(v0, v2);
            dst[1] = pack_halves(v1, v3);
            sum += v0 + v1 + v2 + v3;
        }
    }
    if (k < k4) { /* the last, partial group: missing elements are 0 */
        int32_t v[4] = {0, 0, 0, 0};
        for (int32_t lane = 0; k + lane < len; ++lane) {
            v[lane] = src[lane * stride] - zp;
            sum += v[lane];
        }
        dst[0] = pack_halves(v[0], v[2]);
        dst[1] = pack_halves(v[1], v[3]);
    }
    return sum;
}

/* Column j of B minus b_zp into the panel, and -a_zp * its sum as the column's start value. */
static void pack_column(uint32_t *b_panel, int32_t j, int32_t pair_words, const int8_t *column,
                        const tfc_matmul_layout *s, const tfc_matmul_quant *q, int32_t k4)
{
    uint32_t *pair = b_panel + (j >> 1) * pair_words;
    const int32_t sum = pack_vector(pair + 2 + (j & 1) * 2, column, s->b_stride_k, s->k, q->b_zp,
                                    k4, 1);
    pair[j & 1] = (uint32_t)(-q->a_zp * sum);
}

/* ---- the 2 x 2 block --------------------------------------------------------------------- */

/* One group of 4 reduction elements: rows (r0, r1) of the A panel times columns (c0, c1) of the
 * B panel, 16 MACs. */
#define MATMUL_GROUP(pa, pb)                                                                     \
    do {                                                                                         \
        uint32_t a0e_, a0o_, b0e_, b0o_, b1e_, b1o_;                                             \
        tfc_load_pair(&(pa), &a0e_, &a0o_);                                                      \
        tfc_load_pair(&(pb), &b0e_, &b0o_);                                                      \
        tfc_load_pair(&(pb), &b1e_, &b1o_);                                                      \
        acc00 = tfc_smlad(a0o_, b0o_, tfc_smlad(a0e_, b0e_, acc00));                             \
        acc01 = tfc_smlad(a0o_, b1o_, tfc_smlad(a0e_, b1e_, acc01));                             \
        tfc_load_pair(&(pa), &a0e_, &a0o_);                                                      \
        acc10 = tfc_smlad(a0o_, b0o_, tfc_smlad(a0e_, b0e_, acc10));                             \
        acc11 = tfc_smlad(a0o_, b1o_, tfc_smlad(a0e_, b1e_, acc11));                             \
    } while (0)

/* The column pair's start values (the zero-point terms) as all four accumulators. */
#define MATMUL_START(pb)                                                                         \
    uint32_t start0_, start1_;                                                                   \
    tfc_load_pair(&(pb), &start0_, &start1_);                                                    \
    int32_t acc00 = (int32_t)start0_, acc10 = (int32_t)start0_;                                  \
    int32_t acc01 = (int32_t)start1_, acc11 = (int32_t)start1_

/* The requantization constants of a call, copied out of the descriptor: the int8 stores may alias
 * anything, so fields read through the pointer would be reloaded per output. */
typedef struct {
    int32_t multiplier, shift, rounding_high, post_shift, output_zp, act_min, act_max;
} requant_consts;

/* How a row pair requantizes; a constant at each call of row_pair, so each gets its own loop. */
enum { REQUANT_FAST_SAT8, REQUANT_FAST_CLAMP, REQUANT_GENERIC };

/* MBQM(acc, multiplier, shift) + output_zp for shift <= -2 (tfc_requantize_high). */
static inline int32_t requant_fast(int32_t acc, const requant_consts *r)
{
    return tfc_requantize_high(acc, r->multiplier, r->rounding_high, r->post_shift);
}

static inline int8_t requant_output(int32_t acc, const requant_consts *r, int mode)
{
    if (mode == REQUANT_FAST_SAT8) {
        return (int8_t)tfc_ssat8(requant_fast(acc, r));
    }
    const int32_t out = mode == REQUANT_FAST_CLAMP
                            ? requant_fast(acc, r)
                            : tfc_requantize(acc, r->multiplier, r->shift) + r->output_zp;
    return (int8_t)tfc_clamp_i32(out, r->act_min, r->act_max);
}

/* Every output of one row pair (A panel filled) against all column pairs of the B panel: row i
 * at y0, row i + 1 at y1 (== y0 when the pair holds one real row: its accumulators are the same,
 * so the same value is stored twice), columns y_stride_n apart. `fixed_groups` > 0 is the number
 * of reduction groups known at the call (the loop is unrolled whole); 0 reads k4. mode,
 * fixed_groups and (where it is 1) y_stride_n are constants at each call, so each call site gets
 * its own specialised loop. */
static inline void row_pair(const uint32_t *a_panel, const uint32_t *b_panel, int8_t *y0,
                            int8_t *y1, int32_t k4, int32_t n, int32_t y_stride_n,
                            const requant_consts *r, int mode, int32_t fixed_groups)
{
    const int32_t groups = fixed_groups > 0 ? fixed_groups : k4 >> 2;
    const int32_t y_step = 2 * y_stride_n;
    const uint32_t *pb = b_panel;
    for (int32_t pairs = n >> 1; pairs > 0; --pairs, y0 += y_step, y1 += y_step) {
        MATMUL_START(pb);
        const uint32_t *pa = a_panel;
        for (int32_t g = groups >> 1; g > 0; --g) { /* two groups per trip halve the loop cost */
            MATMUL_GROUP(pa, pb);
            MATMUL_GROUP(pa, pb);
        }
        if (groups & 1) {
            MATMUL_GROUP(pa, pb);
        }
        y1[0] = requant_output(acc10, r, mode);
        y1[y_stride_n] = requant_output(acc11, r, mode);
        y0[0] = requant_output(acc00, r, mode);
        y0[y_stride_n] = requant_output(acc01, r, mode);
    }
    if (n & 1) { /* the last column pair repeats its column: keep one */
        MATMUL_START(pb);
        const uint32_t *pa = a_panel;
        for (int32_t g = groups; g > 0; --g) {
            MATMUL_GROUP(pa, pb);
        }
        (void)acc01;
        (void)acc11;
        y1[0] = requant_output(acc10, r, mode);
        y0[0] = requant_output(acc00, r, mode);
    }
}

/* The int8-saturating row pair, specialised for unit column strides and for the reduction
 * lengths (in groups of 4) of attention head sizes 16, 32 and 64. */
static void row_pair_sat8(const uint32_t *a_panel, const uint32_t *b_panel, int8_t *y0, int8_t *y1,
                          int32_t k4, int32_t n, int32_t y_stride_n, const requant_consts *r)
{
    if (y_stride_n != 1) {
        row_pair(a_panel, b_panel, y0, y1, k4, n, y_stride_n, r, REQUANT_FAST_SAT8, 0);
        return;
    }
    switch (k4) {
    case 16:
        row_pair(a_panel, b_panel, y0, y1, k4, n, 1, r, REQUANT_FAST_SAT8, 4);
        break;
    case 32:
        row_pair(a_panel, b_panel, y0, y1, k4, n, 1, r, REQUANT_FAST_SAT8, 8);
        break;
    case 64:
        row_pair(a_panel, b_panel, y0, y1, k4, n, 1, r, REQUANT_FAST_SAT8, 16);
        break;
    default:
        row_pair(a_panel, b_panel, y0, y1, k4, n, 1, r, REQUANT_FAST_SAT8, 0);
        break;
    }
}

void tfc_matmul_s8_panel(const int8_t *a, const int8_t *b, int8_t *y, const tfc_matmul_layout *s,
                         const tfc_matmul_quant *q, uint32_t *scratch)
{
    const int32_t m = s->m, k = s->k, n = s->n;
    const int32_t k4 = (k + 3) & ~3;
    const int32_t pair_words = 2 + k4; /* start values, then k4 / 4 groups of 4 words */
    uint32_t *b_panel = scratch;                                 /* (n + 1) / 2 column pairs */
    uint32_t *a_panel = scratch + ((n + 1) >> 1) * pair_words;  /* one pair of rows */
    const requant_consts r = {q->multiplier, q->shift, q->rounding_high, q->post_shift,
                              q->output_zp, q->act_min, q->act_max};
    const int mode = q->post_shift < 0                            ? REQUANT_GENERIC
                     : (q->act_min <= -128 && q->act_max >= 127) ? REQUANT_FAST_SAT8
                                                                   : REQUANT_FAST_CLAMP;
    const int32_t batches = tfc_product(s->batch_rank, s->batch_dims);
    for (int32_t batch = 0; batch < batches; ++batch) {
        const int8_t *a_mat = a + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->a_batch_strides);
        const int8_t *b_mat = b + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->b_batch_strides);
        int8_t *y_mat = y + tfc_walk_offset(batch, s->batch_rank, s->batch_dims, s->y_batch_strides);
        for (int32_t j = 0; j < n; ++j) {
            pack_column(b_panel, j, pair_words, b_mat + j * s->b_stride_n, s, q, k4);
        }
        if (n & 1) { /* the last pair's second column repeats the first; its outputs are dropped */
            pack_column(b_panel, n, pair_words, b_mat + (n - 1) * s->b_stride_n, s, q, k4);
        }
        for (int32_t i = 0; i < m; i += 2) {
            const int32_t i1 = i + 1 < m ? i + 1 : i;
            pack_vector(a_panel, a_mat + i * s->a_stride_m, s->a_stride_k, k, 0, k4, 0);
            pack_vector(a_panel + 2, a_mat + i1 * s->a_stride_m, s->a_stride_k, k, 0, k4, 0);
            int8_t *y0 = y_mat + i * s->y_stride_m, *y1 = y_mat + i1 * s->y_stride_m;
            if (mode == REQUANT_FAST_SAT8) {
                row_pair_sat8(a_panel, b_panel, y0, y1, k4, n, s->y_stride_n, &r);
            } else if (mode == REQUANT_FAST_CLAMP) {
                row_pair(a_panel, b_panel, y0, y1, k4, n, s->y_stride_n, &r, REQUANT_FAST_CLAMP, 0);
            } else {
                row_pair(a_panel, b_panel, y0, y1, k4, n, s->y_stride_n, &r, REQUANT_GENERIC, 0);
            }
        }
    }
}
