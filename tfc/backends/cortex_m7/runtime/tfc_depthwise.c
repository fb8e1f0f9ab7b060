/* Dense int8 depthwise conv2d (groups == in_c == out_c, channel multiplier 1).
 *
 * Both kernels take a bias with the input zero point folded in (bias - input_zp * sum of the
 * channel's taps): padding then holds the zero point itself and contributes nothing, and no
 * loop subtracts the zero point.
 *
 * tfc_depthwise_s8_3x3 (3x3, dilation 1, stride_w 1 or 2, any stride_h and padding) is the fast
 * kernel. NHWC puts one channel's pixels in_c bytes apart, where no SIMD instruction can pair
 * them, so it first transposes four channels of a band of input rows into four int8 planes
 * ("planes": one channel, padded rows of `pitch` bytes, the zero point in the padding) and then
 * runs each channel along its plane. In a plane, the word at column j holds (x_j .. x_j+3) and
 * SXTB16 splits it into the int16 pairs (x_j, x_j+2) and (x_j+1, x_j+3), which meet the kernel
 * row's weights pre-packed as (w0, w2) and (w1, .) (depthwise_lowering.py):
 *     stride 1, outputs j..j+3 from the words at j and j+2: out_j = (x_j, x_j+2).(w0, w2) +
 *         x_j+1 w1, out_j+1 = (x_j+1, x_j+3).(w0, w2) + x_j+2 w1, ... : 2 loads, 4 SXTB16 and
 *         8 SMLAD/SMLAxy per 12 MACs;
 *     stride 2, outputs j..j+3 from the words at 2j, 2j+2, 2j+4, 2j+6: 4 loads, 6 SXTB16 and
 *         8 SMLAD/SMLAxy per 12 MACs.
 * Four outputs of a channel share each weight load; requantization is SMMLA, ASR and SSAT from
 * the {multiplier, round, k} table. A band is as many output rows as the compiler's scratch
 * allows (usually the whole image), so each input element is transposed about once.
 *
 * tfc_depthwise_s8_hwc takes every other geometry (other kernel sizes, dilation, stride_w > 2):
 * weights transposed to [kh, kw, C] so four channels are one word, one output pixel at a time
 * over a table of tap pointers. */
#include "tfc_runtime.h"
#include "tfc_internal.h"

#define DW_INLINE static inline __attribute__((always_inline))

/* The most kernel taps (kh * kw) tfc_depthwise_s8_hwc takes (depthwise_lowering.MAX_TAPS); the
 * generic conv2d kernel takes larger ones. */
#define TFC_DW_MAX_TAPS 64

/* ---- requantization --------------------------------------------------------------------- */

/* How tfc_depthwise_s8_hwc requantizes: from the {multiplier, round, k} table, or with
 * multiplier/shift where the compiler found a channel unfit for the table. */
enum { DW_TABLE, DW_GENERIC };

/* One channel's constants, copied out of tfc_channel_quant: the int8 stores may alias anything,
 * so fields read through the pointer would be reloaded per output. */
typedef struct {
    int32_t multiplier, rounding, k; /* table form; DW_GENERIC has the shift in `k` */
    int32_t output_zp, act_min, act_max;
} dw_requant;

static dw_requant channel_requant(const tfc_channel_quant *q, int32_t c)
{
    dw_requant r = {0, 0, 0, q->output_zp, q->act_min, q->act_max};
    if (q->high_word) {
        r.multiplier = q->high_word[3 * c];
        r.rounding = q->high_word[3 * c + 1];
        r.k = q->high_word[3 * c + 2];
    } else {
        r.multiplier = q->multiplier[c];
        r.k = q->shift[c];
    }
    return r;
}

DW_INLINE int8_t requant_dw(int32_t acc, dw_requant r, int mode)
{
    const int32_t out = mode == DW_TABLE
                            ? tfc_requantize_high(acc, r.multiplier, r.rounding, r.k)
                            : tfc_requantize(acc, r.multiplier, r.k) + r.output_zp;
    return (int8_t)tfc_clamp_i32(out, r.act_min, r.act_max);
}

/* ---- 3x3: planes ------------------------------------------------------------------------ */

/* A channel's record in w_rows: kernel row r's (w0 | w2 << 16) and w1 at 2r and 2r + 1, then the
 * folded bias and the {multiplier, round, k} requantization (depthwise_lowering.records_3x3). */
enum { REC_BIAS = 6, REC_REQUANT = 7, REC_WORDS = 10 };

/* Plane geometry; depthwise_lowering.plane_geometry computes the same. A plane row covers the
 * columns that groups of four outputs read, in whole words: up to 2 bytes (stride 1) or 10 bytes
 * (stride 2) past the last group's first column. */
typedef struct {
    int32_t pitch;      /* bytes per plane row, a multiple of 4 */
    int32_t plane;      /* bytes per plane: pitch * the band's input rows */
    int32_t left;       /* plane column of input column 0 (at most pitch) */
    int32_t width;      /* input columns a plane row holds */
} dw_planes;

static dw_planes planes_of(const tfc_window *g, int32_t band_rows)
{
    const int32_t groups = (g->out_w + 3) / 4;
    dw_planes p;
    p.pitch = g->stride_w == 1 ? 4 * groups + 4 : 8 * groups + 4;
    p.plane = p.pitch * ((band_rows - 1) * g->stride_h + 3);
    p.left = g->pad_left < p.pitch ? g->pad_left : p.pitch;
    p.width = g->in_w < p.pitch - p.left ? g->in_w : p.pitch - p.left;
    return p;
}

DW_INLINE void store4(int8_t *p, uint32_t v)
{
    __builtin_memcpy(p, &v, 4);
}

/* n bytes of the zero point, a word at a time where it can (the empty asm keeps gcc from
 * calling memset for a few words). */
static void fill_zp(int8_t *dst, int32_t n, int32_t zp)
{
    const uint32_t word = (uint32_t)(uint8_t)zp * 0x01010101u;
    for (; n >= 4; n -= 4, dst += 4) {
        store4(dst, word);
        __asm__ volatile("");
    }
    for (; n > 0; --n, ++dst) {
        *dst = (int8_t)zp;
        __asm__ volatile("");
    }
}

/* Four channels of `blocks` * 4 pixels (channels apart, from `line`) into four planes (`plane`
 * bytes apart, from `dst`): each plane gets one channel's bytes, four pixels to a word. Per block:
 * four words of four channels transpose as halfwords (PKHBT/PKHTB), then as bytes (SEL with
 * GE = 0101 takes bytes 0 and 2 from its first operand, 1 and 3 from its second). */
static void transpose_blocks(int8_t *dst, const int8_t *line, int32_t blocks, int32_t channels,
                             int32_t plane)
{
#if defined(TFC_USE_DSP)
    const int8_t *const end = dst + 4 * blocks;
    uint32_t a, b, c, d, t;
    __asm__ volatile("mov %[t], #0x50000\n\t"
                     "msr APSR_g, %[t]\n"
                     "1:\n\t"
                     "ldr %[a], [%[line]]\n\t"
                     "ldr %[b], [%[line], %[channels]]\n\t"
                     "add %[line], %[line], %[channels], lsl #1\n\t"
                     "ldr %[c], [%[line]]\n\t"
                     "ldr %[d], [%[line], %[channels]]\n\t"
                     "add %[line], %[line], %[channels], lsl #1\n\t"
                     "pkhbt %[t], %[a], %[c], lsl #16\n\t" /* a0 a1 c0 c1 */
                     "pkhtb %[c], %[c], %[a], asr #16\n\t" /* a2 a3 c2 c3 */
                     "pkhbt %[a], %[b], %[d], lsl #16\n\t" /* b0 b1 d0 d1 */
                     "pkhtb %[d], %[d], %[b], asr #16\n\t" /* b2 b3 d2 d3 */
                     "lsl %[b], %[a], #8\n\t"
                     "sel %[b], %[t], %[b]\n\t"
                     "str %[b], [%[dst]]\n\t"
                     "lsr %[b], %[t], #8\n\t"
                     "sel %[b], %[b], %[a]\n\t"
                     "str %[b], [%[dst], %[plane1]]\n\t"
                     "lsl %[b], %[d], #8\n\t"
                     "sel %[b], %[c], %[b]\n\t"
                     "str %[b], [%[dst], %[plane2]]\n\t"
                     "lsr %[b], %[c], #8\n\t"
                     "sel %[b], %[b], %[d]\n\t"
                     "str %[b], [%[dst], %[plane3]]\n\t"
                     "add %[dst], %[dst], #4\n\t"
                     "cmp %[dst], %[end]\n\t"
                     "bne 1b\n\t"
                     : [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d), [t] "=&r"(t),
                       [line] "+r"(line), [dst] "+r"(dst)
                     : [channels] "r"(channels), [plane1] "r"(plane), [plane2] "r"(2 * plane),
                       [plane3] "r"(3 * plane), [end] "r"(end)
                     : "cc", "memory");
#else
    for (int32_t i = 0; i < blocks; ++i, line += 4 * channels, dst += 4) {
        const uint32_t a = tfc_load4(line), b = tfc_load4(line + channels);
        const uint32_t c = tfc_load4(line + 2 * channels), d = tfc_load4(line + 3 * channels);
        const uint32_t ac01 = (a & 0xFFFFu) | (c << 16), ac23 = (c & 0xFFFF0000u) | (a >> 16);
        const uint32_t bd01 = (b & 0xFFFFu) | (d << 16), bd23 = (d & 0xFFFF0000u) | (b >> 16);
        store4(dst, (ac01 & 0x00FF00FFu) | ((bd01 & 0x00FF00FFu) << 8));
        store4(dst + plane, ((ac01 >> 8) & 0x00FF00FFu) | (bd01 & 0xFF00FF00u));
        store4(dst + 2 * plane, (ac23 & 0x00FF00FFu) | ((bd23 & 0x00FF00FFu) << 8));
        store4(dst + 3 * plane, ((ac23 >> 8) & 0x00FF00FFu) | (bd23 & 0xFF00FF00u));
    }
#endif
}

/* Channels c0 .. c0 + count - 1 (count <= 4) of input row `line` (at channel c0) into `dst`,
 * the plane row's first input column in plane 0 (the others follow p->plane bytes apart). */
static void transpose_row(int8_t *dst, const int8_t *line, int32_t count, const dw_planes *p,
                          int32_t channels, int32_t zp)
{
    const int32_t plane = p->plane;
    int32_t iw = 0;
    if (count == 4 && p->width >= 4) {
        iw = p->width & ~3;
        transpose_blocks(dst, line, iw / 4, channels, plane);
        line += iw * channels;
        dst += iw;
    }
    for (; iw < p->width; ++iw, line += channels, ++dst) {
        for (int32_t k = 0; k < 4; ++k) {
            dst[k * plane] = k < count ? line[k] : (int8_t)zp;
        }
    }
}

/* `rows` input rows (line_step bytes apart) into consecutive plane rows. */
static void transpose_band(int8_t *dst, const int8_t *line, int32_t rows, int32_t line_step,
                           int32_t count, const dw_planes *p, int32_t channels, int32_t zp)
{
    if (count == 4 && (p->width & 3) == 0) { /* whole blocks: no per-row checks */
        const int32_t blocks = p->width / 4, pitch = p->pitch, plane = p->plane;
        for (int32_t row = 0; row < rows; ++row, dst += pitch) {
            transpose_blocks(dst, line + row * line_step, blocks, channels, plane);
        }
        return;
    }
    for (int32_t row = 0; row < rows; ++row, dst += p->pitch) {
        transpose_row(dst, line + row * line_step, count, p, channels, zp);
    }
}

/* ---- 3x3: four outputs of one channel ------------------------------------------------------ */

/* A group: four outputs of a channel, from kernel rows at x, x + pitch and x + 2 * pitch of its
 * plane, `rec` its record, requantized and saturated to int8. group_store_s1/s2 store them
 * `channels` bytes apart and advance x and out past the group; group_values_s1/s2 return them
 * (the last, partial group of a row, and activation ranges narrower than int8). */
#if defined(TFC_USE_DSP)
/* One asm block per group: in C, gcc keeps too few of the 13 registers it needs and spills in
 * the loop. Row 0 seeds the accumulators with the bias (held in a3 until its own first SMLAD). */

#define DW_S1_ROW(offset, s0, s1, s2)                                                            \
    "ldrd %[w02], %[w1], [%[rec], #" #offset "]\n\t"                                             \
    "ldr %[xa], [%[x]]\n\t"                                                                      \
    "sxtb16 %[e], %[xa]\n\t"                                                                     \
    "sxtb16 %[xa], %[xa], ror #8\n\t"                                                            \
    "smlad %[a0], %[e], %[w02], %[" s0 "]\n\t"                                                   \
    "smlabb %[a0], %[xa], %[w1], %[a0]\n\t"                                                      \
    "smlad %[a1], %[xa], %[w02], %[" s1 "]\n\t"                                                  \
    "smlatb %[a1], %[e], %[w1], %[a1]\n\t"                                                       \
    "ldr %[xa], [%[x], #2]\n\t"                                                                  \
    "sxtb16 %[e], %[xa]\n\t"                                                                     \
    "sxtb16 %[xa], %[xa], ror #8\n\t"                                                            \
    "smlad %[a2], %[e], %[w02], %[" s2 "]\n\t"                                                   \
    "smlabb %[a2], %[xa], %[w1], %[a2]\n\t"                                                      \
    "smlad %[a3], %[xa], %[w02], %[a3]\n\t"                                                      \
    "smlatb %[a3], %[e], %[w1], %[a3]\n\t"

#define DW_S2_ROW(offset, s0, s1, s2)                                                            \
    "ldrd %[w02], %[w1], [%[rec], #" #offset "]\n\t"                                             \
    "ldr %[xa], [%[x]]\n\t"                                                                      \
    "sxtb16 %[e], %[xa]\n\t"                                                                     \
    "sxtb16 %[xa], %[xa], ror #8\n\t"                                                            \
    "smlad %[a0], %[e], %[w02], %[" s0 "]\n\t"                                                   \
    "smlabb %[a0], %[xa], %[w1], %[a0]\n\t"                                                      \
    "ldr %[e], [%[x], #2]\n\t"                                                                   \
    "sxtb16 %[e], %[e]\n\t"                                                                      \
    "smlad %[a1], %[e], %[w02], %[" s1 "]\n\t"                                                   \
    "smlatb %[a1], %[xa], %[w1], %[a1]\n\t"                                                      \
    "ldr %[xa], [%[x], #4]\n\t"                                                                  \
    "sxtb16 %[e], %[xa]\n\t"                                                                     \
    "sxtb16 %[xa], %[xa], ror #8\n\t"                                                            \
    "smlad %[a2], %[e], %[w02], %[" s2 "]\n\t"                                                   \
    "smlabb %[a2], %[xa], %[w1], %[a2]\n\t"                                                      \
    "ldr %[e], [%[x], #6]\n\t"                                                                   \
    "sxtb16 %[e], %[e]\n\t"                                                                      \
    "smlad %[a3], %[e], %[w02], %[a3]\n\t"                                                       \
    "smlatb %[a3], %[xa], %[w1], %[a3]\n\t"

#define DW_REQUANT(a)                                                                            \
    "smmla %[" a "], %[" a "], %[w02], %[w1]\n\t"                                                \
    "asr %[" a "], %[" a "], %[e]\n\t"                                                           \
    "ssat %[" a "], #8, %[" a "]\n\t"

/* The three kernel rows (x back at row 0 after them) and the requantization. */
#define DW_GROUP(ROW)                                                                            \
    "ldr %[a3], [%[rec], #24]\n\t" ROW(0, "a3", "a3", "a3")                                     \
    "add %[x], %[x], %[pitch]\n\t" ROW(8, "a0", "a1", "a2")                                     \
    "add %[x], %[x], %[pitch]\n\t" ROW(16, "a0", "a1", "a2")                                    \
    "sub %[x], %[x], %[pitch], lsl #1\n\t"                                                       \
    "ldrd %[w02], %[w1], [%[rec], #28]\n\t"                                                      \
    "ldr %[e], [%[rec], #36]\n\t" DW_REQUANT("a0") DW_REQUANT("a1") DW_REQUANT("a2")            \
        DW_REQUANT("a3")

#define DW_STORE(step)                                                                           \
    "strb %[a0], [%[out]]\n\t"                                                                   \
    "strb %[a1], [%[out], %[channels]]\n\t"                                                      \
    "add %[out], %[out], %[channels], lsl #1\n\t"                                                \
    "strb %[a2], [%[out]]\n\t"                                                                   \
    "strb %[a3], [%[out], %[channels]]\n\t"                                                      \
    "add %[out], %[out], %[channels], lsl #1\n\t"                                                \
    "add %[x], %[x], #" #step "\n\t"

#define DW_GROUP_OPERANDS                                                                        \
    [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [w02] "=&r"(w02),            \
        [w1] "=&r"(w1), [xa] "=&r"(xa), [e] "=&r"(e), [x] "+r"(x)

#define DW_GROUP_FUNCTIONS(stride, ROW)                                                          \
    DW_INLINE void group_store_s##stride(const int8_t **x_, int8_t **out_, int32_t pitch,        \
                                         const int32_t *rec, int32_t channels)                   \
    {                                                                                            \
        const int8_t *x = *x_;                                                                   \
        int8_t *out = *out_;                                                                     \
        int32_t a0, a1, a2, a3;                                                                  \
        uint32_t w02, w1, xa, e;                                                                 \
        __asm__(DW_GROUP(ROW) DW_STORE(4 * stride)                                               \
                : DW_GROUP_OPERANDS, [out] "+r"(out)                                             \
                : [rec] "r"(rec), [pitch] "r"(pitch), [channels] "r"(channels)                   \
                : "memory");                                                                     \
        *x_ = x;                                                                                 \
        *out_ = out;                                                                             \
    }                                                                                            \
    DW_INLINE void group_values_s##stride(const int8_t *x, int32_t pitch, const int32_t *rec,    \
                                          int32_t v[4])                                          \
    {                                                                                            \
        int32_t a0, a1, a2, a3;                                                                  \
        uint32_t w02, w1, xa, e;                                                                 \
        __asm__(DW_GROUP(ROW)                                                                    \
                : DW_GROUP_OPERANDS                                                              \
                : [rec] "r"(rec), [pitch] "r"(pitch)                                             \
                : "memory");                                                                     \
        v[0] = a0;                                                                               \
        v[1] = a1;                                                                               \
        v[2] = a2;                                                                               \
        v[3] = a3;                                                                               \
    }

DW_GROUP_FUNCTIONS(1, DW_S1_ROW)
DW_GROUP_FUNCTIONS(2, DW_S2_ROW)

#else /* portable twins: the same arithmetic in C */

/* One kernel row of four stride-1 outputs: the plane words at j and j + 2. */
static inline void row_stride1(const int8_t *x, uint32_t w02, uint32_t w1, int32_t acc[4])
{
    const uint32_t xa = tfc_load4(x), xc = tfc_load4(x + 2);
    const uint32_t a02 = tfc_sxtb16(xa), a13 = tfc_sxtb16_ror8(xa);
    const uint32_t c24 = tfc_sxtb16(xc), c35 = tfc_sxtb16_ror8(xc);
    acc[0] = tfc_smlabb(a13, w1, tfc_smlad(a02, w02, acc[0]));
    acc[1] = tfc_smlatb(a02, w1, tfc_smlad(a13, w02, acc[1]));
    acc[2] = tfc_smlabb(c35, w1, tfc_smlad(c24, w02, acc[2]));
    acc[3] = tfc_smlatb(c24, w1, tfc_smlad(c35, w02, acc[3]));
}

/* One kernel row of four stride-2 outputs: the plane words at 2j, 2j + 2, 2j + 4, 2j + 6. */
static inline void row_stride2(const int8_t *x, uint32_t w02, uint32_t w1, int32_t acc[4])
{
    const uint32_t xa = tfc_load4(x), xc = tfc_load4(x + 2);
    const uint32_t a02 = tfc_sxtb16(xa), a13 = tfc_sxtb16_ror8(xa), c24 = tfc_sxtb16(xc);
    acc[0] = tfc_smlabb(a13, w1, tfc_smlad(a02, w02, acc[0]));
    acc[1] = tfc_smlatb(a13, w1, tfc_smlad(c24, w02, acc[1]));
    const uint32_t xb = tfc_load4(x + 4), xd = tfc_load4(x + 6);
    const uint32_t b46 = tfc_sxtb16(xb), b57 = tfc_sxtb16_ror8(xb), d68 = tfc_sxtb16(xd);
    acc[2] = tfc_smlabb(b57, w1, tfc_smlad(b46, w02, acc[2]));
    acc[3] = tfc_smlatb(b57, w1, tfc_smlad(d68, w02, acc[3]));
}

static inline void group_portable(const int8_t *x, int32_t pitch, const int32_t *rec,
                                  int32_t v[4], int stride)
{
    v[0] = v[1] = v[2] = v[3] = rec[REC_BIAS];
    for (int32_t r = 0; r < 3; ++r, x += pitch) {
        const uint32_t w02 = (uint32_t)rec[2 * r], w1 = (uint32_t)rec[2 * r + 1];
        if (stride == 1) {
            row_stride1(x, w02, w1, v);
        } else {
            row_stride2(x, w02, w1, v);
        }
    }
    const int32_t *q = rec + REC_REQUANT;
    for (int32_t i = 0; i < 4; ++i) {
        v[i] = tfc_ssat8(tfc_requantize_high(v[i], q[0], q[1], q[2]));
    }
}

#define DW_GROUP_FUNCTIONS(stride)                                                               \
    static inline void group_values_s##stride(const int8_t *x, int32_t pitch,                    \
                                              const int32_t *rec, int32_t v[4])                  \
    {                                                                                            \
        group_portable(x, pitch, rec, v, stride);                                                \
    }                                                                                            \
    static inline void group_store_s##stride(const int8_t **x, int8_t **out, int32_t pitch,      \
                                             const int32_t *rec, int32_t channels)               \
    {                                                                                            \
        int32_t v[4];                                                                            \
        group_portable(*x, pitch, rec, v, stride);                                               \
        for (int32_t i = 0; i < 4; ++i, *out += channels) {                                      \
            **out = (int8_t)v[i];                                                                \
        }                                                                                        \
        *x += 4 * stride;                                                                        \
    }

DW_GROUP_FUNCTIONS(1)
DW_GROUP_FUNCTIONS(2)

#endif /* TFC_USE_DSP */

/* ---- 3x3: one channel along its plane ------------------------------------------------------ */

/* A channel's `rows` output rows from its plane (row 0 = the band's first input row); y is the
 * first output, channels apart. Inlined per stride and per clamp (`clamp`: the activation range
 * is narrower than int8, so every group goes through group_values). */
DW_INLINE void channel_rows(const int8_t *plane, const dw_planes *p, const int32_t *rec,
                            int8_t *y, int32_t rows, const tfc_window *g, int32_t act_min,
                            int32_t act_max, int stride, int clamp)
{
    const int32_t channels = g->in_c, out_w = g->out_w;
    const int32_t pitch = p->pitch, row_step = g->stride_h * pitch;
    const int32_t full = clamp ? 0 : out_w / 4, rest = out_w - 4 * full;
    const int8_t *x = plane;
    int8_t *out = y;
    if (rest == 0) { /* whole rows of groups: out runs on from row to row */
        const int32_t span = 4 * stride * full;
        for (int32_t row = rows; row > 0; --row, x += row_step - span) {
            for (const int8_t *end = x + span; x != end;) {
                if (stride == 1) {
                    group_store_s1(&x, &out, pitch, rec, channels);
                } else {
                    group_store_s2(&x, &out, pitch, rec, channels);
                }
            }
        }
        return;
    }
    for (int32_t oh = 0; oh < rows; ++oh, plane += row_step) {
        x = plane;
        out = y + oh * out_w * channels;
        for (const int8_t *end = x + 4 * stride * full; x != end;) {
            if (stride == 1) {
                group_store_s1(&x, &out, pitch, rec, channels);
            } else {
                group_store_s2(&x, &out, pitch, rec, channels);
            }
        }
        for (int32_t left = rest; left > 0; left -= 4, x += 4 * stride) {
            int32_t v[4];
            if (stride == 1) {
                group_values_s1(x, pitch, rec, v);
            } else {
                group_values_s2(x, pitch, rec, v);
            }
            for (int32_t i = 0; i < left && i < 4; ++i, out += channels) {
                *out = (int8_t)tfc_clamp_i32(v[i], act_min, act_max);
            }
        }
    }
}

#define DW_CHANNEL_ROWS(name, stride, clamp)                                                       \
    static void name(const int8_t *plane, const dw_planes *p, const int32_t *rec, int8_t *y,     \
                     int32_t rows, const tfc_window *g, int32_t act_min, int32_t act_max)        \
    {                                                                                            \
        channel_rows(plane, p, rec, y, rows, g, act_min, act_max, stride, clamp);                \
    }

DW_CHANNEL_ROWS(rows_s1, 1, 0)
DW_CHANNEL_ROWS(rows_s1_clamp, 1, 1)
DW_CHANNEL_ROWS(rows_s2, 2, 0)
DW_CHANNEL_ROWS(rows_s2_clamp, 2, 1)

typedef void (*channel_rows_fn)(const int8_t *, const dw_planes *, const int32_t *, int8_t *,
                                int32_t, const tfc_window *, int32_t, int32_t);

void tfc_depthwise_s8_3x3(const int8_t *x, const int32_t *records, int8_t *y,
                          const tfc_window *g, const tfc_channel_quant *q, int8_t *planes,
                          int32_t band_rows)
{
    static const channel_rows_fn by_geometry[2][2] = {{rows_s1, rows_s1_clamp},
                                                      {rows_s2, rows_s2_clamp}};
    const int clamp = q->act_min > -128 || q->act_max < 127;
    const channel_rows_fn rows_fn = by_geometry[g->stride_w == 2][clamp];
    const dw_planes p = planes_of(g, band_rows);
    const int32_t channels = g->in_c, zp = q->input_zp;
    fill_zp(planes, 4 * p.plane, zp); /* padding; transpose_row writes the input columns only */
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * channels;
        int8_t *y_image = y + n * g->out_h * g->out_w * channels;
        for (int32_t oh0 = 0; oh0 < g->out_h; oh0 += band_rows) {
            const int32_t rows = g->out_h - oh0 < band_rows ? g->out_h - oh0 : band_rows;
            const int32_t ih0 = oh0 * g->stride_h - g->pad_top;
            const int32_t in_rows = (rows - 1) * g->stride_h + 3;
            for (int32_t row = 0; row < in_rows && oh0 > 0; ++row) {
                if (ih0 + row >= g->in_h) { /* a later band's rows below the image */
                    for (int32_t k = 0; k < 4; ++k) {
                        fill_zp(planes + k * p.plane + row * p.pitch + p.left, p.width, zp);
                    }
                }
            }
            /* the band's rows inside the image: first_row .. last_row - 1 */
            const int32_t first_row = ih0 < 0 ? -ih0 : 0;
            const int32_t last_row = g->in_h - ih0 < in_rows ? g->in_h - ih0 : in_rows;
            const int32_t line_step = g->in_w * channels;
            for (int32_t c0 = 0; c0 < channels; c0 += 4) {
                const int32_t count = channels - c0 < 4 ? channels - c0 : 4;
                if (first_row < last_row) {
                    transpose_band(planes + first_row * p.pitch + p.left,
                                   image + (ih0 + first_row) * line_step + c0,
                                   last_row - first_row, line_step, count, &p, channels, zp);
                }
                for (int32_t k = 0; k < count; ++k) {
                    const int32_t c = c0 + k;
                    rows_fn(planes + k * p.plane, &p, records + REC_WORDS * c,
                            y_image + oh0 * g->out_w * channels + c, rows, g, q->act_min,
                            q->act_max);
                }
            }
        }
    }
}

/* ---- any geometry: one pixel at a time ------------------------------------------------------ */

/* One output pixel: every channel over `taps` input pointers (each at channel 0). Not inlined and
 * not unrolled over the taps: with the requantization inlined as well, an unrolled body runs out of
 * registers and spills more than the loop overhead it saves. */
static void depthwise_pixel(const int8_t *const *tap, int32_t taps, const int8_t *w_hwc,
                            const int32_t *folded_bias, int8_t *y, int32_t channels,
                            const tfc_channel_quant *q, int mode)
{
    int32_t c = 0;
    for (; c + 4 <= channels; c += 4) {
        int32_t acc0 = folded_bias[c], acc1 = folded_bias[c + 1];
        int32_t acc2 = folded_bias[c + 2], acc3 = folded_bias[c + 3];
        const int8_t *w = w_hwc + c;
        for (int32_t t = 0; t < taps; ++t, w += channels) {
            const uint32_t xv = tfc_load4(tap[t] + c), wv = tfc_load4(w);
            const uint32_t x02 = tfc_sxtb16(xv), x13 = tfc_sxtb16_ror8(xv);
            const uint32_t w02 = tfc_sxtb16(wv), w13 = tfc_sxtb16_ror8(wv);
            acc0 = tfc_smlabb(x02, w02, acc0);
            acc2 = tfc_smlatt(x02, w02, acc2);
            acc1 = tfc_smlabb(x13, w13, acc1);
            acc3 = tfc_smlatt(x13, w13, acc3);
        }
        const int32_t acc[4] = {acc0, acc1, acc2, acc3};
        for (int32_t k = 0; k < 4; ++k) {
            y[c + k] = requant_dw(acc[k], channel_requant(q, c + k), mode);
        }
    }
    for (; c < channels; ++c) {
        int32_t acc = folded_bias[c];
        for (int32_t t = 0; t < taps; ++t) {
            acc += (int32_t)tap[t][c] * (int32_t)w_hwc[t * channels + c];
        }
        y[c] = requant_dw(acc, channel_requant(q, c), mode);
    }
}

void tfc_depthwise_s8_hwc(const int8_t *x, const int8_t *w_hwc, const int32_t *folded_bias,
                          int8_t *y, const tfc_window *g, const tfc_channel_quant *q,
                          int8_t *zp_row)
{
    const int32_t channels = g->in_c;
    const int32_t taps = g->kernel_h * g->kernel_w;
    const int mode = q->high_word ? DW_TABLE : DW_GENERIC;
    const int8_t *tap[TFC_DW_MAX_TAPS];
    for (int32_t c = 0; c < channels; ++c) {
        zp_row[c] = (int8_t)q->input_zp;
    }
    for (int32_t n = 0; n < g->batch; ++n) {
        const int8_t *image = x + n * g->in_h * g->in_w * channels;
        for (int32_t oh = 0; oh < g->out_h; ++oh) {
            const int32_t ih0 = oh * g->stride_h - g->pad_top;
            for (int32_t ow = 0; ow < g->out_w; ++ow, y += channels) {
                const int32_t iw0 = ow * g->stride_w - g->pad_left;
                int32_t t = 0;
                for (int32_t kh = 0; kh < g->kernel_h; ++kh) {
                    const int32_t ih = ih0 + kh * g->dilation_h;
                    for (int32_t kw = 0; kw < g->kernel_w; ++kw, ++t) {
                        const int32_t iw = iw0 + kw * g->dilation_w;
                        const int inside = ih >= 0 && ih < g->in_h && iw >= 0 && iw < g->in_w;
                        tap[t] = inside ? image + (ih * g->in_w + iw) * channels : zp_row;
                    }
                }
                depthwise_pixel(tap, taps, w_hwc, folded_bias, y, channels, q, mode);
            }
        }
    }
}
