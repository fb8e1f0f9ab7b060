/* Layer normalization over the last axis (softmax, the other row-wise op, is tfc_softmax.c).
 *
 * The int8 forms follow ops.py exactly and touch no float:
 * - Scaled-LayerNorm: integer row statistics (SMLAD on int16 pairs, 16 codes per LDM), one
 *   integer square root (two Newton steps) and one division per row, then per element one SMLAWB
 *   giving the int16 x_norm * 2^s and one SMLAWB applying gamma and beta; PKHTB + USAT16 pack and
 *   saturate two outputs at a time, one word store per four. On the M7 the common shapes run as
 *   one assembly loop over all rows (tfc_layernorm_rows_dsp), which parks each row's SXTB16
 *   lanes in the planned scratch between its two passes. */
#include <stddef.h>

#include "tfc_runtime.h"
#include "tfc_internal.h"

/* ---- Scaled-LayerNorm -------------------------------------------------------------------- */

/* acc + ((a * int16(b)) >> 16), wrapping like SMLAWB. */
static inline int32_t tfc_smlawb(int32_t a, int32_t b, int32_t acc)
{
#if defined(TFC_USE_DSP)
    return __smlawb(a, b, acc);
#else
    int32_t product = (int32_t)(((int64_t)a * (int16_t)b) >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)product);
#endif
}

/* T and Q of a row's codes: the portable loop, four codes per word (SXTB16 + SMLAD). */
static inline void tfc_row_moments_words(const int8_t *row, int32_t cols, int32_t *total,
                                         uint32_t *sum_sq)
{
    const uint32_t ones = 0x00010001u;
    int32_t t = *total;
    int32_t q = (int32_t)*sum_sq;
    int32_t c = 0;
    for (; c + 4 <= cols; c += 4) {
        uint32_t w = tfc_load4(row + c);
        uint32_t even = tfc_sxtb16(w);
        uint32_t odd = tfc_sxtb16_ror8(w);
        q = tfc_smlad(even, even, q);
        q = tfc_smlad(odd, odd, q);
        t = tfc_smlad(even, ones, t);
        t = tfc_smlad(odd, ones, t);
    }
    for (; c < cols; ++c) {
        t += row[c];
        q += row[c] * row[c];
    }
    *total = t;
    *sum_sq = (uint32_t)q;
}

#if defined(TFC_USE_DSP)
/* The M7 hot loops are inline assembly: LDM/LDRD/STRD of whole groups, which gcc does not emit
 * for this code, and a register budget (all 14) that gcc would spill. They compute exactly what
 * the portable loops do; tests/transformer compares them on the emulated M7. */

/* T and Q over the 16-code blocks [p, end) of a word-aligned row: one LDM per 16 codes. LDM fills
 * registers in ascending order, so its four are pinned (the sums do not care about the order). */
static inline void tfc_row_moments_blocks(const int8_t *p, const int8_t *end, int32_t *total,
                                          uint32_t *sum_sq)
{
    register uint32_t w0 __asm__("r8");
    register uint32_t w1 __asm__("r9");
    register uint32_t w2 __asm__("r10");
    register uint32_t w3 __asm__("r11");
    uint32_t lanes;
    int32_t t = *total;
    uint32_t q = *sum_sq;
#define TFC_LN_MOMENTS_WORD(w)                                                                   \
    "sxtb16 %[e], " w "\n\t"                                                                     \
    "sxtb16 " w ", " w ", ror #8\n\t"                                                            \
    "smlad  %[q], %[e], %[e], %[q]\n\t"                                                          \
    "smlad  %[t], %[e], %[ones], %[t]\n\t"                                                       \
    "smlad  %[q], " w ", " w ", %[q]\n\t"                                                        \
    "smlad  %[t], " w ", %[ones], %[t]\n\t"
    __asm__ volatile("1:\n\t"
                     "ldmia  %[p]!, {%[w0], %[w1], %[w2], %[w3]}\n\t"
                     TFC_LN_MOMENTS_WORD("%[w0]") TFC_LN_MOMENTS_WORD("%[w1]")
                     TFC_LN_MOMENTS_WORD("%[w2]") TFC_LN_MOMENTS_WORD("%[w3]")
                     "cmp    %[p], %[end]\n\t"
                     "bne    1b\n\t"
                     : [p] "+r"(p), [t] "+r"(t), [q] "+r"(q), [e] "=&r"(lanes), [w0] "=&r"(w0),
                       [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)
                     : [end] "r"(end), [ones] "r"(0x00010001u)
                     : "cc", "memory");
#undef TFC_LN_MOMENTS_WORD
    *total = t;
    *sum_sq = q;
}

/* One word of four outputs from the word of codes `x` (clobbered): SXTB16 splits it into lanes
 * (x0, x2) and (x1, x3); per lane SMLAWB gives xn and a second SMLAWB gamma and beta (biased by
 * 128 codes); PKHTB packs two results' code halves, USAT16 saturates both to [0, 255], ORR
 * interleaves the bytes and EOR 0x80 per byte removes the bias. */
#define TFC_LN_OUT_WORD(x, out)                                                                  \
    "sxtb16 " out ", " x "\n\t"                                                                  \
    "sxtb16 " x ", " x ", ror #8\n\t"                                                            \
    "ldmia  %[p]!, {%[g0], %[b0], %[g2], %[b2]}\n\t"                                             \
    "smlawb %[xn], %[a], " out ", %[b]\n\t"                                                      \
    "smlawb %[b0], %[g0], %[xn], %[b0]\n\t"                                                      \
    "smlawt %[xn], %[a], " out ", %[b]\n\t"                                                      \
    "smlawb %[b2], %[g2], %[xn], %[b2]\n\t"                                                      \
    "pkhtb  " out ", %[b2], %[b0], asr #16\n\t"                                                  \
    "usat16 " out ", #8, " out "\n\t"                                                            \
    "ldmia  %[p]!, {%[g0], %[b0], %[g2], %[b2]}\n\t"                                             \
    "smlawb %[xn], %[a], " x ", %[b]\n\t"                                                        \
    "smlawb %[b0], %[g0], %[xn], %[b0]\n\t"                                                      \
    "smlawt %[xn], %[a], " x ", %[b]\n\t"                                                        \
    "smlawb %[b2], %[g2], %[xn], %[b2]\n\t"                                                      \
    "pkhtb  " x ", %[b2], %[b0], asr #16\n\t"                                                    \
    "usat16 " x ", #8, " x "\n\t"                                                                \
    "orr    " out ", " out ", " x ", lsl #8\n\t"                                                 \
    "eor    " out ", " out ", #0x80808080\n\t"

/* Full-range outputs of `pairs` 8-code groups then `quads` (0 or 1) 4-code group; x and y
 * word-aligned. Returns the advanced parameter pointer. */
static inline const int32_t *tfc_layernorm_groups(const int8_t *x, int8_t *y, int32_t pairs,
                                                  int32_t quads, const int32_t *gb, int32_t a,
                                                  int32_t b)
{
    register int32_t g0 __asm__("r8");
    register int32_t b0 __asm__("r9");
    register int32_t g2 __asm__("r10");
    register int32_t b2 __asm__("r11");
    uint32_t w0, w1, xn;
    if (pairs > 0) {
        const int8_t *end = x + 8 * pairs;
        __asm__ volatile("1:\n\t"
                         "ldrd   %[w0], %[w1], [%[x]], #8\n\t"
                         TFC_LN_OUT_WORD("%[w0]", "%[xn2]")
                         TFC_LN_OUT_WORD("%[w1]", "%[w0]")
                         "strd   %[xn2], %[w0], [%[y]], #8\n\t"
                         "cmp    %[x], %[end]\n\t"
                         "bne    1b\n\t"
                         : [x] "+r"(x), [y] "+r"(y), [p] "+r"(gb), [w0] "=&r"(w0), [w1] "=&r"(w1),
                           [xn] "=&r"(xn), [xn2] "=&r"(pairs), [g0] "=&r"(g0), [b0] "=&r"(b0),
                           [g2] "=&r"(g2), [b2] "=&r"(b2)
                         : [end] "r"(end), [a] "r"(a), [b] "r"(b)
                         : "cc", "memory");
    }
    if (quads > 0) {
        __asm__ volatile("ldr    %[w0], [%[x]]\n\t"
                         TFC_LN_OUT_WORD("%[w0]", "%[w1]")
                         "str    %[w1], [%[y]]\n\t"
                         : [p] "+r"(gb), [w0] "=&r"(w0), [w1] "=&r"(w1), [xn] "=&r"(xn),
                           [g0] "=&r"(g0), [b0] "=&r"(b0), [g2] "=&r"(g2), [b2] "=&r"(b2)
                         : [x] "r"(x), [y] "r"(y), [a] "r"(a), [b] "r"(b)
                         : "cc", "memory");
    }
    return gb;
}
#undef TFC_LN_OUT_WORD

/* ---- the whole-layer M7 loop -------------------------------------------------------------- */

/* What tfc_layernorm_rows_dsp reads, at the byte offsets its assembly names (checked below). It
 * copies the block into its own stack frame: the row's output pointers and constants are then
 * one LDM from SP and all 14 registers stay free for the loops. The *_entry words come in as
 * counts and the assembly turns them into the addresses it jumps to at every row. */
typedef struct {
    uint32_t *lanes;            /*  0: the row's codes as int16 pairs (x0, x2), (x1, x3) */
    int8_t *y;                  /*  4: the next row's outputs */
    const int32_t *gamma_bias;  /*  8 */
    int32_t cols;               /* 12 */
    int32_t eps_less_cols;      /* 16: eps_q - cols, so that USAT gives max(D, C) - C */
    uint32_t numerator;         /* 20: C << k */
    int32_t shift0;             /* 24: 16 + s - k */
    int32_t inv_cols;           /* 28: round(2^23 / C) */
    uint32_t out_count;         /* 32: (output loop steps - 1) << 16 */
    uint32_t sqrt_seed;         /* 36: 23173, the seed line's constant */
    const int8_t *x;            /* 40: the next row's codes */
    const int8_t *x_end;        /* 44 */
    const uint32_t *lanes_end;  /* 48: lanes + 2 * words */
    uint32_t *lanes_again;      /* 52: lanes, next to lanes_end for one LDRD */
    uint32_t lead_entry;        /* 56: words % 4: words before the first 4-word block */
    uint32_t block_entry;       /* 60: (words / 4) % 2: blocks before the first 2-block step */
    uint32_t out_entry;         /* 64: (words / 2) % 4: word pairs before the first 4-pair step */
    uint32_t odd_entry;         /* 68: words % 2: a last single word */
} tfc_layernorm_rows;

#define TFC_CHECK_OFFSET(field, at) \
    typedef char tfc_layernorm_rows_##field[offsetof(tfc_layernorm_rows, field) == (at) ? 1 : -1]
TFC_CHECK_OFFSET(cols, 12);
TFC_CHECK_OFFSET(sqrt_seed, 36);
TFC_CHECK_OFFSET(x, 40);
TFC_CHECK_OFFSET(lead_entry, 56);
TFC_CHECK_OFFSET(odd_entry, 68);
#undef TFC_CHECK_OFFSET

/* Statistics of one word W: SXTB16 into the lanes E = (x0, x2) and W = (x1, x3), which stay in
 * their registers for the scratch store; Q += E.E + W.W and T += E.1 + W.1 (r12 = Q, r3 = T,
 * lr = (1, 1)). The _FIRST form starts Q and T with SMUAD. */
#define TFC_LN_STATS_(E, W, FIRST_Q, FIRST_T)                                                    \
    "sxtb16 " E ", " W "\n\t"                                                                    \
    "sxtb16 " W ", " W ", ror #8\n\t"                                                            \
    FIRST_Q "\n\t"                                                                               \
    FIRST_T "\n\t"                                                                               \
    "smlad  r12, " W ", " W ", r12\n\t"                                                          \
    "smlad  r3, " W ", lr, r3\n\t"
#define TFC_LN_STATS(E, W) \
    TFC_LN_STATS_(E, W, "smlad  r12, " E ", " E ", r12", "smlad  r3, " E ", lr, r3")
#define TFC_LN_STATS_FIRST(E, W) TFC_LN_STATS_(E, W, "smuad  r12, " E ", " E, "smuad  r3, " E ", lr")
/* A block of four words: one LDM, one STM of the eight lane words. */
#define TFC_LN_STATS_BLOCK                                                                       \
    "ldmia  r0!, {r5, r7, r9, r11}\n\t"                                                          \
    TFC_LN_STATS("r4", "r5") TFC_LN_STATS("r6", "r7")                                            \
    TFC_LN_STATS("r8", "r9") TFC_LN_STATS("r10", "r11")                                          \
    "stmia  r1!, {r4-r11}\n\t"
/* Two outputs from the lane pair V (overwritten by them, USAT16-saturated and 128-biased): xn by
 * SMLAWB(A = r3, lane, B = lr), then SMLAWB(multiplier, xn, bias); r2 walks the (multiplier, bias)
 * words, r8-r11 take two channels of them, r12 holds xn. */
#define TFC_LN_OUT_LANES(V)                                                                      \
    "ldmia  r2!, {r8-r11}\n\t"                                                                   \
    "smlawb r12, r3, " V ", lr\n\t"                                                              \
    "smlawb r9, r8, r12, r9\n\t"                                                                 \
    "smlawt r12, r3, " V ", lr\n\t"                                                              \
    "smlawb r11, r10, r12, r11\n\t"                                                              \
    "pkhtb  " V ", r11, r9, asr #16\n\t"                                                         \
    "usat16 " V ", #8, " V "\n\t"
/* A word of four outputs into E from its lane pairs E and O. */
#define TFC_LN_OUT_WORD(E, O)                                                                    \
    TFC_LN_OUT_LANES(E) TFC_LN_OUT_LANES(O)                                                      \
    "orr    " E ", " E ", " O ", lsl #8\n\t"                                                     \
    "eor    " E ", " E ", #0x80808080\n\t"
/* Two words: one LDM of their four lane words (r0 walks them), one STRD (r1 walks y). */
#define TFC_LN_OUT_PAIR                                                                          \
    "ldmia  r0!, {r4-r7}\n\t"                                                                    \
    TFC_LN_OUT_WORD("r4", "r5") TFC_LN_OUT_WORD("r6", "r7")                                      \
    "strd   r4, r6, [r1], #8\n\t"

/* Every row of a layer whose rows are word-aligned, 16 <= cols <= 256, cols % 4 == 0, with the
 * full int8 output range. Per row: the statistics walk the codes once (the cols/4 % 4 leading
 * words, then LDM blocks of four) and leave them as int16 lanes in the scratch; the row scale
 * is tfc_layernorm_row's 32-bit branch; the outputs read the lanes back, two words per LDM, four
 * pairs per loop step (entered part-way, Duff-style), then an odd word. The loop counter rides in
 * the top half of B, which SMLAWB's int16 read of xn never sees. The partial first steps are
 * entered through addresses computed once per call (LDR PC). Bit-exact with the portable path
 * (tests/transformer/test_layernorm_exact.py). */
static void __attribute__((naked, noinline)) tfc_layernorm_rows_dsp(
    const tfc_layernorm_rows *k __attribute__((unused))) /* r0 */
{
    __asm__(
        "push   {r4-r11, lr}\n\t"
        "sub    sp, sp, #72\n\t"
        "mov    r12, sp\n\t"
        "ldmia  r0!, {r1-r9}\n\t"
        "stmia  r12!, {r1-r9}\n\t"
        "ldmia  r0, {r1-r9}\n\t"
        "stmia  r12, {r1-r9}\n\t"
        /* counts -> entry addresses: table 90 holds 4 + 2 + 4 + 2 of them */
        "adr    r3, 90f\n\t"
        "add    r12, sp, #56\n\t"
        "ldmia  r12, {r4-r7}\n\t"
        "ldr    r4, [r3, r4, lsl #2]\n\t"
        "add    r3, r3, #16\n\t"
        "ldr    r5, [r3, r5, lsl #2]\n\t"
        "add    r3, r3, #8\n\t"
        "ldr    r6, [r3, r6, lsl #2]\n\t"
        "add    r3, r3, #16\n\t"
        "ldr    r7, [r3, r7, lsl #2]\n\t"
        "stmia  r12, {r4-r7}\n\t"
        "ldr    r0, [sp, #40]\n\t"
        /* row: r0 = x, r1 = lanes, r2 = lanes_end */
        "10:\n\t"
        "ldrd   r2, r1, [sp, #48]\n\t"
        "mov    lr, #0x10001\n\t"
        "ldr    pc, [sp, #56]\n\t"
        "20:\n\t"
        "movs   r3, #0\n\t"
        "mov    r12, #0\n\t"
        "ldr    pc, [sp, #60]\n\t"
        "21:\n\t"
        "ldr    r5, [r0], #4\n\t"
        TFC_LN_STATS_FIRST("r4", "r5")
        "strd   r4, r5, [r1], #8\n\t"
        "ldr    pc, [sp, #60]\n\t"
        "22:\n\t"
        "ldmia  r0!, {r5, r7}\n\t"
        TFC_LN_STATS_FIRST("r4", "r5") TFC_LN_STATS("r6", "r7")
        "stmia  r1!, {r4-r7}\n\t"
        "ldr    pc, [sp, #60]\n\t"
        "23:\n\t"
        "ldmia  r0!, {r5, r7, r9}\n\t"
        TFC_LN_STATS_FIRST("r4", "r5") TFC_LN_STATS("r6", "r7") TFC_LN_STATS("r8", "r9")
        "stmia  r1!, {r4-r9}\n\t"
        "ldr    pc, [sp, #60]\n\t"
        "30:\n\t"
        TFC_LN_STATS_BLOCK
        "31:\n\t"
        TFC_LN_STATS_BLOCK
        "cmp    r1, r2\n\t"
        "bne    30b\n\t"
        /* the row scale A (r3) and offset B (lr, loop counter on top) from T = r3 and Q = r12;
         * r0 = lanes, r1 = y, r2 = (multiplier, bias) words for the outputs */
        "str    r0, [sp, #40]\n\t"
        "ldmia  sp, {r0-r2, r4-r10}\n\t"
        "mla    r5, r12, r4, r5\n\t"
        "mls    r5, r3, r3, r5\n\t"
        "mul    r8, r3, r8\n\t"
        "usat   r5, #31, r5\n\t"
        "add    r5, r5, r4\n\t"
        "clz    r11, r5\n\t"
        "bic    r11, r11, #1\n\t"
        "lsl    r5, r5, r11\n\t"
        "add    r10, r10, r5, lsr #17\n\t"
        "add    r10, r10, r5, lsr #18\n\t"
        "udiv   r4, r5, r10\n\t"
        "add    r10, r10, r4\n\t"
        "lsr    r10, r10, #1\n\t"
        "udiv   r4, r5, r10\n\t"
        "add    r10, r10, r4\n\t"
        "lsr    r10, r10, #1\n\t"
        "udiv   r6, r6, r10\n\t"
        "add    r7, r7, r11, lsr #1\n\t"
        "lsl    r3, r6, r7\n\t"
        "smull  r10, r8, r3, r8\n\t"
        "rsb    r8, r8, #64\n\t"
        "pkhtb  lr, r9, r8, asr #7\n\t"
        "ldr    pc, [sp, #64]\n\t"
        "40:\n\t"
        TFC_LN_OUT_PAIR
        "41:\n\t"
        TFC_LN_OUT_PAIR
        "42:\n\t"
        TFC_LN_OUT_PAIR
        "43:\n\t"
        TFC_LN_OUT_PAIR
        "subs   lr, lr, #0x10000\n\t"
        "bcs    40b\n\t"
        "ldr    pc, [sp, #68]\n\t"
        "50:\n\t"
        "ldrd   r4, r5, [r0]\n\t"
        TFC_LN_OUT_WORD("r4", "r5")
        "str    r4, [r1], #4\n\t"
        "60:\n\t"
        "str    r1, [sp, #4]\n\t"
        "ldrd   r0, r4, [sp, #40]\n\t"
        "cmp    r0, r4\n\t"
        "bne    10b\n\t"
        "add    sp, sp, #72\n\t"
        "pop    {r4-r11, pc}\n\t"
        ".p2align 2\n\t"
        "90:\n\t" /* +1: Thumb state for LDR PC */
        ".word  20b + 1, 21b + 1, 22b + 1, 23b + 1\n\t" /* leading words 0-3 */
        ".word  30b + 1, 31b + 1\n\t"                   /* blocks: even, odd */
        ".word  40b + 1, 43b + 1, 42b + 1, 41b + 1\n\t" /* word pairs % 4 */
        ".word  60b + 1, 50b + 1\n\t");                 /* words: even, odd */
}
#undef TFC_LN_STATS_
#undef TFC_LN_STATS
#undef TFC_LN_STATS_FIRST
#undef TFC_LN_STATS_BLOCK
#undef TFC_LN_OUT_LANES
#undef TFC_LN_OUT_WORD
#undef TFC_LN_OUT_PAIR
#endif /* TFC_USE_DSP */

/* One output code, biased bias included: ops.py `layernorm`, y = clamp(acc >> 16, lo, hi). */
static inline int8_t tfc_layernorm_one(int32_t code, int32_t a, int32_t b, const int32_t *gb,
                                       int32_t lo, int32_t hi)
{
    int32_t xn = tfc_smlawb(a, code, b);
    return (int8_t)tfc_clamp_i32((tfc_smlawb(gb[0], xn, gb[1]) >> 16) - 128, lo, hi);
}

/* Per-layer constants of the row parameters: C << k with k = 31 - bitlen(C), 16 + s - k, and
 * round(2^23 / C). */
typedef struct {
    int32_t cols, eps_q, shift0, inv_cols;
    uint32_t numerator;
} tfc_layernorm_consts;

static inline tfc_layernorm_consts tfc_layernorm_prepare(int32_t cols, int32_t xn_bits,
                                                         int32_t eps_q)
{
    const int32_t k = __builtin_clz((uint32_t)cols) - 1;
    tfc_layernorm_consts c = {cols, eps_q, 16 + xn_bits - k,
                              (int32_t)(((1u << 23) + (uint32_t)cols / 2) / (uint32_t)cols),
                              (uint32_t)cols << k};
    return c;
}

/* The row's (A, B) with x_norm * 2^s = B + ((x * A) >> 16): quant_math.scaled_layernorm_row. */
static inline void tfc_layernorm_row(int32_t total, uint32_t sum_sq, const tfc_layernorm_consts *k,
                                     int32_t *scale, int32_t *offset)
{
    const int32_t cols = k->cols;
    const int32_t eps_q = k->eps_q;
    uint32_t normed;
    int32_t z;
    if (cols <= 256) { /* D <= C^2 * 2^14 + eps_q <= 2^31: 32-bit arithmetic is exact */
        uint32_t d = (uint32_t)cols * sum_sq - (uint32_t)(total * total) + (uint32_t)eps_q;
        d = d < (uint32_t)cols ? (uint32_t)cols : d;
        z = __builtin_clz(d) & ~1;
        normed = d << z;
    } else {
        int64_t d = (int64_t)cols * sum_sq - (int64_t)total * total + eps_q;
        d = d < cols ? cols : d;
        uint32_t hi = (uint32_t)((uint64_t)d >> 32);
        int32_t bits = hi != 0 ? 64 - __builtin_clz(hi) : 32 - __builtin_clz((uint32_t)d);
        z = (32 - bits) & ~1;
        normed = z >= 0 ? (uint32_t)((uint64_t)d << z) : (uint32_t)((uint64_t)d >> -z);
    }
    uint32_t r = 23173u + (normed >> 17) + (normed >> 18); /* above sqrt: two Newton steps */
    r = (r + normed / r) >> 1;
    r = (r + normed / r) >> 1;
    uint32_t q = k->numerator / r;
    int32_t e = k->shift0 + z / 2;
    int32_t a = e >= 0 ? (int32_t)(q << e) : (int32_t)((q + (1u << (-e - 1))) >> -e);
    int32_t high = (int32_t)(((int64_t)a * (total * k->inv_cols)) >> 32);
    *scale = a;
    *offset = (64 - high) >> 7;
}

void tfc_layernorm_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t cols,
                      const tfc_layernorm_quant *q)
{
    const tfc_layernorm_consts consts = tfc_layernorm_prepare(cols, q->xn_bits, q->eps_q);
    const int32_t lo = q->act_min;
    const int32_t hi = q->act_max;
    const int32_t quad_cols = cols & ~3;
#if defined(TFC_USE_DSP)
    const int full_range = lo == -128 && hi == 127;
    const int aligned_layer = ((cols & 3) | (((uintptr_t)x | (uintptr_t)y | (uintptr_t)q->scratch) & 3)) == 0;
    if (full_range && aligned_layer && q->scratch != NULL && cols >= 16 && cols <= 256 && rows > 0 &&
        q->eps_q >= 0 && q->eps_q <= (1 << 29)) { /* eps_q bound: C*Q + eps_q stays below 2^31 */
        const int32_t words = cols / 4;
        const int32_t steps = (words / 2 + 3) / 4; /* of the output loop, 4 word pairs each */
        const tfc_layernorm_rows k = {
            q->scratch, y, q->gamma_bias, cols, q->eps_q - cols, consts.numerator, consts.shift0,
            consts.inv_cols, (uint32_t)(steps - 1) << 16, 23173u, x, x + rows * cols,
            q->scratch + 2 * words, q->scratch, (uint32_t)words & 3, (uint32_t)(words / 4) & 1,
            (uint32_t)(words / 2) & 3, (uint32_t)words & 1};
        tfc_layernorm_rows_dsp(&k);
        return;
    }
#endif
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * cols;
        int8_t *out = y + r * cols;
        int32_t total = 0, a, b;
        uint32_t sum_sq = 0;
        int32_t done = 0;
#if defined(TFC_USE_DSP)
        const int aligned = (((uintptr_t)row | (uintptr_t)out) & 3) == 0;
        if (aligned && cols >= 16) {
            done = cols & ~15;
            tfc_row_moments_blocks(row, row + done, &total, &sum_sq);
        }
#endif
        tfc_row_moments_words(row + done, cols - done, &total, &sum_sq);
        tfc_layernorm_row(total, sum_sq, &consts, &a, &b);
        const int32_t *gb = q->gamma_bias;
        int32_t c = 0;
#if defined(TFC_USE_DSP)
        if (aligned && full_range) {
            gb = tfc_layernorm_groups(row, out, quad_cols / 8, (quad_cols / 4) & 1, gb, a, b);
            c = quad_cols;
        }
#endif
        for (; c < quad_cols; c += 4, gb += 8) { /* the stored lane order: 0, 2, 1, 3 */
            out[c] = tfc_layernorm_one(row[c], a, b, gb, lo, hi);
            out[c + 2] = tfc_layernorm_one(row[c + 2], a, b, gb + 2, lo, hi);
            out[c + 1] = tfc_layernorm_one(row[c + 1], a, b, gb + 4, lo, hi);
            out[c + 3] = tfc_layernorm_one(row[c + 3], a, b, gb + 6, lo, hi);
        }
        for (; c < cols; ++c, gb += 2) {
            out[c] = tfc_layernorm_one(row[c], a, b, gb, lo, hi);
        }
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_layernorm_f32(const float *x, const float *gamma, const float *beta, float *y,
                       int32_t rows, int32_t cols, float epsilon)
{
    for (int32_t r = 0; r < rows; ++r) {
        const float *row = x + r * cols;
        float mean = 0.0f;
        for (int32_t c = 0; c < cols; ++c) {
            mean += row[c];
        }
        mean /= (float)cols;
        float var = 0.0f;
        for (int32_t c = 0; c < cols; ++c) {
            float d = row[c] - mean;
            var += d * d;
        }
        var /= (float)cols;
        float inv_std = 1.0f / sqrtf(var + epsilon);
        for (int32_t c = 0; c < cols; ++c) {
            float v = (row[c] - mean) * inv_std;
            if (gamma) {
                v *= gamma[c];
            }
            if (beta) {
                v += beta[c];
            }
            *y++ = v;
        }
    }
}
#endif /* TFC_INT8_ONLY */
