/* Data movement for any element type: copies, row copies (concat, split) and strided gathers
 * (transpose, slice with any steps). */
#include <string.h>

#include "tfc_runtime.h"
#include "tfc_internal.h"

void tfc_copy(void *dst, const void *src, int32_t nbytes)
{
    if (dst != src) {
        memmove(dst, src, (size_t)nbytes);
    }
}

void tfc_copy_rows(void *dst, int32_t dst_pitch, const void *src, int32_t src_pitch,
                   int32_t rows, int32_t row_bytes)
{
    uint8_t *out = (uint8_t *)dst;
    const uint8_t *in = (const uint8_t *)src;
    for (int32_t r = 0; r < rows; ++r) {
        memcpy(out + r * dst_pitch, in + r * src_pitch, (size_t)row_bytes);
    }
}

/* A merged rank-2 byte gather, out[r][i] = in[r * outer + i * inner_step], walked column by
 * column: a layout change with few channels (NCHW -> NHWC of an RGB input: 3 columns of H*W)
 * would otherwise pay the walker for every 3 bytes. */
static void gather_bytes_by_column(uint8_t *out, const uint8_t *in, int32_t rows, int32_t cols,
                                   int32_t outer_step, int32_t inner_step)
{
    for (int32_t i = 0; i < cols; ++i) {
        const uint8_t *from = in + (ptrdiff_t)i * inner_step;
        uint8_t *to = out + i;
        for (int32_t r = 0; r < rows; ++r, from += outer_step, to += cols) {
            *to = *from;
        }
    }
}

void tfc_gather(void *dst, const void *src, int32_t elem_size, int32_t offset, int32_t rank,
                const int32_t *dims, const int32_t *strides)
{
    uint8_t *out = (uint8_t *)dst;
    const uint8_t *in = (const uint8_t *)src + (ptrdiff_t)offset * elem_size;
    const int32_t last = rank - 1;
    if (rank == 2 && elem_size == 1 && strides[1] != 1 && dims[1] < dims[0]) {
        gather_bytes_by_column(out, in, dims[0], dims[1], strides[0], strides[1]);
        return;
    }
    const int32_t inner = dims[last];
    const int32_t step = strides[last];
    const int32_t rows = tfc_product(last, dims);
    tfc_walker it;
    tfc_walker_start(&it);
    for (int32_t r = 0; r < rows; ++r) {
        const uint8_t *base = in + (ptrdiff_t)it.off_a * elem_size;
        if (step == 1) {
            memcpy(out, base, (size_t)inner * (size_t)elem_size);
            out += inner * elem_size;
        } else if (elem_size == 1) {
            for (int32_t i = 0; i < inner; ++i) {
                *out++ = base[i * step];
            }
        } else {
            for (int32_t i = 0; i < inner; ++i) {
                memcpy(out, base + (ptrdiff_t)i * step * elem_size, (size_t)elem_size);
                out += elem_size;
            }
        }
        tfc_walker_next(&it, last, dims, strides, NULL);
    }
}
