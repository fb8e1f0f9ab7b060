/* Row-wise normalizations over the last axis: layer normalization and softmax.
 *
 * The int8 forms follow ops.py exactly and touch no float:
 * - Scaled-LayerNorm: integer row statistics (SMLAD on int16 pairs, 16 codes per LDM), one
 *   integer square root (two Newton steps) and one division per row, then per element one SMLAWB
 *   giving the int16 x_norm * 2^s and one SMLAWB applying gamma and beta; PKHTB + USAT16 pack and
 *   saturate two outputs at a time, one word store per four.
 * - Softmax: a row max (4 bytes per SSUB8 + SEL), a compile-time exp table read as base[x], one
 *   64/32 division per row, one UMLAL per element. */
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

/* ---- Softmax ------------------------------------------------------------------------------ */

static inline int32_t tfc_row_max_s8(const int8_t *row, int32_t cols)
{
    int32_t top = -128;
    int32_t c = 0;
#if defined(TFC_USE_DSP)
    if (cols >= 4) {
        uint32_t best = 0x80808080u; /* four lanes of -128 */
        for (; c + 4 <= cols; c += 4) {
            uint32_t w = tfc_load4(row + c);
            (void)__ssub8((int8x4_t)w, (int8x4_t)best); /* GE bits: lanes where w >= best */
            best = __sel(w, best);
        }
        for (int32_t lane = 0; lane < 4; ++lane) {
            int32_t v = (int8_t)(best >> (8 * lane));
            top = v > top ? v : top;
        }
    }
#endif
    for (; c < cols; ++c) {
        top = row[c] > top ? row[c] : top;
    }
    return top;
}

void tfc_softmax_s8(const int8_t *x, const int32_t *exp_lut, int8_t *y, int32_t rows,
                    int32_t cols, int32_t output_zp, int32_t multiplier, int32_t shift)
{
    const uint64_t numerator = (uint64_t)(uint32_t)multiplier << (shift + 1);
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * cols;
        /* base[v] = exp(-(top - v) * s_x) * 2^16 for every v <= top (the table is stored reversed). */
        const int32_t *base = exp_lut + 255 - tfc_row_max_s8(row, cols);
        uint32_t sum = 0;
        for (int32_t c = 0; c < cols; ++c) {
            sum += (uint32_t)base[row[c]];
        }
        uint32_t recip = (uint32_t)(numerator / sum);
        for (int32_t c = 0; c < cols; ++c) {
            uint32_t p = (uint32_t)(((uint64_t)(uint32_t)base[row[c]] * recip + 0x80000000u) >> 32);
            y[c] = tfc_sat_i8((int32_t)p + output_zp);
        }
        y += cols;
    }
}

#ifndef TFC_INT8_ONLY /* float code: kept out of the int8 translation units */
void tfc_softmax_f32(const float *x, float *y, int32_t rows, int32_t cols)
{
    for (int32_t r = 0; r < rows; ++r) {
        const float *row = x + r * cols;
        float top = row[0];
        for (int32_t c = 1; c < cols; ++c) {
            top = row[c] > top ? row[c] : top;
        }
        float sum = 0.0f;
        for (int32_t c = 0; c < cols; ++c) {
            y[c] = expf(row[c] - top);
            sum += y[c];
        }
        for (int32_t c = 0; c < cols; ++c) {
            y[c] /= sum;
        }
        y += cols;
    }
}
#endif /* TFC_INT8_ONLY */
