/* Fast int8 activation x activation matmul (attention's Q.K^T and A.V) with strided operands.
 *
 * Both operands are activations with zero points, and either may arrive in any layout: a
 * multi-head split (transpose of [tokens, heads, d]) or K^T is just a pair of strides here, so the
 * graph needs no copies (see matmul_lowering.py and the fold-transpose-matmul pass). The kernel
 * widens both operands to int16 with their zero points removed, into scratch:
 *
 * - the B panel: every column of B, contiguous along k, columns interleaved by pairs;
 * - the A panel: two rows of A at a time, interleaved the same way.
 *
 * After that the product is the NT form SMLAD wants. A 2x2 block of outputs (rows i, i+1 times
 * columns j, j+1) reads, per group of 4 reduction elements, 2 words of each of the 4 vectors (four
 * LDRDs) and does 8 SMLADs: 16 MACs in 12 instructions, and every widening happens once per
 * element instead of once per MAC. Zero points need no correction terms: they are subtracted while
 * packing (x - zp fits int16), so the accumulator is exactly sum (a - a_zp) * (b - b_zp).
 *
 * Panel layout, per vector and per group g of 4 reduction elements (k = 4g..4g+3): two words,
 * (v0, v2) and (v1, v3), the order SXTB16 / SXTB16 ROR 8 produce from one loaded word. Both panels
 * use it, so each SMLAD pairs matching k. A pair of vectors keeps its groups side by side
 * ([v 2 words][w 2 words] per group), so one pointer walks both. The reduction is padded with
 * zeros to k4 = k rounded up to 4.
 *
 * Requantization (tfc_matmul_quant): where the compiler proved it exact (matmul_lowering.py),
 * MBQM(acc) + output_zp is one 64-bit multiply-accumulate and one shift; otherwise the generic
 * tfc_requantize. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

/* ---- panels ------------------------------------------------------------------------------ */

static inline uint32_t pack_halves(int32_t lo, int32_t hi)
{
    return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16);
}

/* One vector (len elements at src, `stride` apart) minus zp into its panel slot: `dst` is its
 * group-0 words, groups are 4 words apart; groups past len are zero up to k4. */
static void pack_vector(uint32_t *dst, const int8_t *src, int32_t stride, int32_t len,
                        int32_t zp, int32_t k4)
{
    int32_t k = 0;
    if (stride == 1) {
        const uint32_t minus_zp = (uint32_t)(uint16_t)(-zp) * 0x10001u;
        for (; k + 4 <= len; k += 4, src += 4, dst += 4) {
            const uint32_t x = tfc_load4(src);
            dst[0] = tfc_sadd16(tfc_sxtb16(x), minus_zp);
            dst[1] = tfc_sadd16(tfc_sxtb16_ror8(x), minus_zp);
        }
    } else {
        const int32_t s2 = 2 * stride, s3 = 3 * stride;
        for (; k + 4 <= len; k += 4, src += 4 * stride, dst += 4) {
            dst[0] = pack_halves(src[0] - zp, src[s2] - zp);
            dst[1] = pack_halves(src[stride] - zp, src[s3] - zp);
        }
    }
    if (k < k4) { /* the last, partial group: missing elements are 0 */
        int32_t v[4] = {0, 0, 0, 0};
        for (int32_t lane = 0; k + lane < len; ++lane) {
            v[lane] = src[lane * stride] - zp;
        }
        dst[0] = pack_halves(v[0], v[2]);
        dst[1] = pack_halves(v[1], v[3]);
    }
}

/* ---- the 2 x 2 block --------------------------------------------------------------------- */

/* One group of 4 reduction elements: rows (r0, r1) of the A panel times columns (c0, c1) of the
 * B panel, 16 MACs. */
#define MATMUL_GROUP(pa, pb)                                                                     \
    do {                                                                                         \
        uint32_t a0e_, a0o_, b0e_, b0o_, b1e_, b1o_;                                             \
        tfc_load_pair(&(pa), &a0e_, &a0o_);                                                          \
        tfc_load_pair(&(pb), &b0e_, &b0o_);                                                          \
        tfc_load_pair(&(pb), &b1e_, &b1o_);                                                          \
        acc00 = tfc_smlad(a0o_, b0o_, tfc_smlad(a0e_, b0e_, acc00));                             \
        acc01 = tfc_smlad(a0o_, b1o_, tfc_smlad(a0e_, b1e_, acc01));                             \
        tfc_load_pair(&(pa), &a0e_, &a0o_);                                                          \
        acc10 = tfc_smlad(a0o_, b0o_, tfc_smlad(a0e_, b0e_, acc10));                             \
        acc11 = tfc_smlad(a0o_, b1o_, tfc_smlad(a0e_, b1e_, acc11));                             \
    } while (0)

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

/* The four outputs of a 2x2 block: y0 row i, y0 + dy row i + 1 (dy = 0 when the pair holds one
 * real row: the same value is stored twice), y_stride_n between the two columns. */
#define STORE_BLOCK(y0, dy, y_stride_n, both_columns)                                           \
    do {                                                                                         \
        (y0)[dy] = requant_output(acc10, r, mode);                                               \
        (y0)[0] = requant_output(acc00, r, mode);                                                \
        if (both_columns) {                                                                      \
            (y0)[(dy) + (y_stride_n)] = requant_output(acc11, r, mode);                          \
            (y0)[y_stride_n] = requant_output(acc01, r, mode);                                   \
        }                                                                                        \
    } while (0)

/* Every output of one row pair (A panel filled) against all column pairs of the B panel.
 * `fixed_groups` > 0 is the number of reduction groups known at the call (the loop is unrolled
 * whole); 0 reads k4. mode and fixed_groups are constants at each call, so each call site gets
 * its own specialised loop. */
static inline void row_pair(const uint32_t *a_panel, const uint32_t *b_panel, int8_t *y0,
                            int32_t dy, int32_t k4, int32_t n, int32_t y_stride_n,
                            const requant_consts *r, int mode, int32_t fixed_groups)
{
    const int32_t groups = fixed_groups > 0 ? fixed_groups : k4 >> 2;
    const int32_t y_step = 2 * y_stride_n;
    const uint32_t *pb = b_panel;
    for (int8_t *const y_end = y0 + (n >> 1) * y_step; y0 != y_end; y0 += y_step) {
        int32_t acc00 = 0, acc01 = 0, acc10 = 0, acc11 = 0;
        const uint32_t *pa = a_panel;
        for (int32_t g = groups >> 1; g > 0; --g) { /* two groups per trip halve the loop cost */
            MATMUL_GROUP(pa, pb);
            MATMUL_GROUP(pa, pb);
        }
        if (groups & 1) {
            MATMUL_GROUP(pa, pb);
        }
        STORE_BLOCK(y0, dy, y_stride_n, 1);
    }
    if (n & 1) { /* the last column pair repeats its column: keep one */
        int32_t acc00 = 0, acc01 = 0, acc10 = 0, acc11 = 0;
        const uint32_t *pa = a_panel;
        for (int32_t g = groups; g > 0; --g) {
            MATMUL_GROUP(pa, pb);
        }
        STORE_BLOCK(y0, dy, y_stride_n, 0);
    }
}

/* Reduction lengths (in groups of 4) the int8-saturating loop is specialised for: attention head
 * sizes 16, 32 and 64. */
static void row_pair_sat8(const uint32_t *a_panel, const uint32_t *b_panel, int8_t *y0, int32_t dy,
                          int32_t k4, int32_t n, int32_t y_stride_n, const requant_consts *r)
{
    switch (k4) {
    case 16:
        row_pair(a_panel, b_panel, y0, dy, k4, n, y_stride_n, r, REQUANT_FAST_SAT8, 4);
        break;
    case 32:
        row_pair(a_panel, b_panel, y0, dy, k4, n, y_stride_n, r, REQUANT_FAST_SAT8, 8);
        break;
    case 64:
        row_pair(a_panel, b_panel, y0, dy, k4, n, y_stride_n, r, REQUANT_FAST_SAT8, 16);
        break;
    default:
        row_pair(a_panel, b_panel, y0, dy, k4, n, y_stride_n, r, REQUANT_FAST_SAT8, 0);
        break;
    }
}

void tfc_matmul_s8_panel(const int8_t *a, const int8_t *b, int8_t *y, const tfc_matmul_layout *s,
                         const tfc_matmul_quant *q, uint32_t *scratch)
{
    const int32_t m = s->m, k = s->k, n = s->n;
    const int32_t k4 = (k + 3) & ~3;
    const int32_t vector_words = k4 >> 1;
    uint32_t *b_panel = scratch;                                     /* ((n + 1) / 2) pairs */
    uint32_t *a_panel = scratch + ((n + 1) >> 1) * 2 * vector_words; /* one pair of rows */
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
            uint32_t *slot = b_panel + (j >> 1) * 2 * vector_words + (j & 1) * 2;
            pack_vector(slot, b_mat + j * s->b_stride_n, s->b_stride_k, k, q->b_zp, k4);
        }
        if (n & 1) { /* the last pair's second column repeats the first; its outputs are dropped */
            uint32_t *slot = b_panel + (n >> 1) * 2 * vector_words;
            pack_vector(slot + 2, b_mat + (n - 1) * s->b_stride_n, s->b_stride_k, k, q->b_zp, k4);
        }
        for (int32_t i = 0; i < m; i += 2) {
            const int32_t i1 = i + 1 < m ? i + 1 : i;
            pack_vector(a_panel, a_mat + i * s->a_stride_m, s->a_stride_k, k, q->a_zp, k4);
            pack_vector(a_panel + 2, a_mat + i1 * s->a_stride_m, s->a_stride_k, k, q->a_zp, k4);
            int8_t *y0 = y_mat + i * s->y_stride_m;
            const int32_t dy = (i1 - i) * s->y_stride_m;
            if (mode == REQUANT_FAST_SAT8) {
                row_pair_sat8(a_panel, b_panel, y0, dy, k4, n, s->y_stride_n, &r);
            } else if (mode == REQUANT_FAST_CLAMP) {
                row_pair(a_panel, b_panel, y0, dy, k4, n, s->y_stride_n, &r, REQUANT_FAST_CLAMP, 0);
            } else {
                row_pair(a_panel, b_panel, y0, dy, k4, n, s->y_stride_n, &r, REQUANT_GENERIC, 0);
            }
        }
    }
}
