/* Softmax over the last axis.
 *
 * The int8 form follows ops.py exactly and touches no float: a row max (8 bytes per two SSUB8 +
 * SEL), a compile-time exp table read as base[x] and summed, one 64/32 division per row, then per
 * element one rounding high multiply that also adds the zero point (SMMLAR on the M7) and SSAT. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

static inline int32_t tfc_row_max_s8(const int8_t *row, int32_t cols)
{
    int32_t top = -128;
    int32_t c = 0;
#if defined(TFC_USE_DSP)
    if (cols >= 4) {
        uint32_t best = 0x80808080u; /* four lanes of -128 */
        for (; c + 8 <= cols; c += 8) {
            uint32_t w0 = tfc_load4(row + c), w1 = tfc_load4(row + c + 4);
            (void)__ssub8((int8x4_t)w0, (int8x4_t)best); /* GE bits: lanes where w >= best */
            best = __sel(w0, best);
            (void)__ssub8((int8x4_t)w1, (int8x4_t)best);
            best = __sel(w1, best);
        }
        if (c + 4 <= cols) {
            uint32_t w = tfc_load4(row + c);
            (void)__ssub8((int8x4_t)w, (int8x4_t)best);
            best = __sel(w, best);
            c += 4;
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

/* clamp(((e * recip + 2^31) >> 32) + zp, -128, 127). On the M7 one SMMLAR (the signed rounding
 * high product; e <= 2^16 and recip < 2^31 keep it equal to the unsigned one) and one SSAT. */
static inline int8_t tfc_softmax_code(uint32_t e, uint32_t recip, int32_t zp)
{
#if defined(TFC_USE_DSP)
    int32_t p;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(p) : "r"(e), "r"(recip), "r"(zp));
    return (int8_t)__ssat(p, 8);
#else
    uint32_t p = (uint32_t)(((uint64_t)e * recip + 0x80000000u) >> 32);
    return tfc_sat_i8((int32_t)p + zp);
#endif
}

void tfc_softmax_s8(const int8_t *x, const int32_t *exp_lut, int8_t *y, int32_t rows,
                    int32_t cols, int32_t output_zp, int32_t multiplier, int32_t shift)
{
    const uint64_t numerator = (uint64_t)(uint32_t)multiplier << (shift + 1);
    const int32_t octet_cols = cols & ~7;
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * cols;
        /* base[v] = exp(-(top - v) * s_x) * 2^16 for every v <= top (the table is stored reversed). */
        const uint32_t *base = (const uint32_t *)exp_lut + 255 - tfc_row_max_s8(row, cols);
        uint32_t sum = 0;
        int32_t c = 0;
        for (; c < octet_cols; c += 8) { /* eight lookups per step: LDRSB, LDR, ADD each */
            sum += base[row[c]] + base[row[c + 1]] + base[row[c + 2]] + base[row[c + 3]] +
                   base[row[c + 4]] + base[row[c + 5]] + base[row[c + 6]] + base[row[c + 7]];
        }
        for (; c < cols; ++c) {
            sum += base[row[c]];
        }
        /* sum >= 2^16 (the row's maximum alone) and 1 / s_y < 2^15 (ops.py): recip < 2^31 */
        const uint32_t recip = (uint32_t)(numerator / sum);
        for (c = 0; c < octet_cols; c += 8) {
            for (int32_t i = 0; i < 8; ++i) {
                y[c + i] = tfc_softmax_code(base[row[c + i]], recip, output_zp);
            }
        }
        for (; c < cols; ++c) {
            y[c] = tfc_softmax_code(base[row[c]], recip, output_zp);
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
