"""Lowering of an int8 depthwise conv2d whose weights are stored brle to tfc_sparse_dw.c.

The kernel (see its header comment) widens one channel's input rows into an int16 plane whose
padding holds the input zero point, so the compiler folds input_zp * sum(w) into the bias. It
requantizes in the high-word form (quant_math.high_word_requant); a channel whose weights were all
pruned away is a constant, which its table entry (multiplier 0, the constant, k 0) yields whatever
its own scale, so pruned channels with a huge multiplier do not push the layer off the fast path.
"""

from __future__ import annotations

import numpy as np

from tfc.errors import UnsupportedOpError
from tfc.ir.core import Op
from tfc.ir.quant_math import high_word_requant, multiply_by_quantized_multiplier

MAX_KERNEL_ROWS = 16  # TFC_BRLE_MAX_KERNEL in tfc_runtime.h


def _plane_shape(op: Op) -> tuple[int, int]:
    """(rows, width) of the int16 input plane: dw_plane_rows and dw_plane_width in the C."""
    _, kh, kw, _ = op.operands[1].type.shape
    _, in_h, in_w, _ = op.operands[0].type.shape
    _, out_h, out_w, _ = op.result.type.shape
    stride_h, stride_w = op.attr("strides", [1, 1])
    top, left, _, _ = op.attr("pads", [0, 0, 0, 0])
    dilation_h, dilation_w = op.attr("dilations", [1, 1])
    rows = max(top + in_h, (out_h - 1) * stride_h + (kh - 1) * dilation_h + 1)
    # Every column an output reads, plus the word the pair loops read ahead; even for alignment.
    cols = max(left + in_w, (out_w - 1) * stride_w + (kw - 1) * dilation_w + 1)
    return rows, (cols + 5) & ~1


def depthwise_scratch_bytes(op: Op) -> int:
    """The int16 plane plus a row of int32 accumulators (out_w rounded up to even)."""
    rows, width = _plane_shape(op)
    out_w = op.result.type.shape[2]
    return 2 * rows * width + 4 * (out_w + (out_w & 1))


def _requant_table(op: Op, rows: np.ndarray, bias: np.ndarray | None) -> np.ndarray | None:
    """int32[channels, 3] (multiplier, round, k) for tfc_requantize_high, or None when a channel
    with a kept weight cannot take the high-word form."""
    channels = rows.shape[0]
    multiplier = np.broadcast_to(np.asarray(op.attrs["multiplier"], np.int64), (channels,))
    shift = np.broadcast_to(np.asarray(op.attrs["shift"], np.int64), (channels,))
    pruned = ~rows.any(axis=1)
    # A shift the table accepts stands in for the pruned channels' own, replaced below.
    table = high_word_requant(multiplier, np.where(pruned, -2, shift), op.attrs["output_zp"])
    if table is None:
        return None
    acc = np.zeros(channels, np.int64) if bias is None else bias.astype(np.int64)
    constant = np.clip(multiply_by_quantized_multiplier(acc, multiplier, shift)
                       + int(op.attrs["output_zp"]), int(op.attr("act_min", -128)),
                       int(op.attr("act_max", 127)))
    table[pruned] = np.stack([np.zeros_like(constant), constant, np.zeros_like(constant)],
                             axis=-1)[pruned]
    return table


def lower_sparse_depthwise(op: Op, ctx, stream, rows: np.ndarray, bias: np.ndarray | None):
    """The tfc_depthwise_brle_s8 call for `op` (weights [C, kh*kw] as `rows`, encoded `stream`)."""
    from tfc.backends.cortex_m7.dense_lowering import fold_zero_point
    from tfc.backends.cortex_m7.kernels import (KernelCall, _act_range, _channel_quant, _window,
                                                c_struct)
    from tfc.backends.cortex_m7.sparse_lowering import _stream_struct

    out_c, kh, kw, _ = op.operands[1].type.shape
    if kh > MAX_KERNEL_ROWS or stream.block != kw:
        raise UnsupportedOpError(f"{op.where()}: the sparse depthwise kernel takes at most "
                                 f"{MAX_KERNEL_ROWS} kernel rows of one block each; store these "
                                 "weights dense")
    # The plane pads with input_zp, so padding taps add input_zp * w, which the fold takes back.
    folded = ctx.const_array(f"{op.operands[1].name}_bias_folded",
                             fold_zero_point(bias, rows, op.attrs["input_zp"]))
    table = _requant_table(op, rows, bias)
    if table is None:
        quant = _channel_quant(ctx, op, out_c)  # the kernel's generic (slow) requantization
    else:
        lo, hi = _act_range(op)
        quant = c_struct("tfc_channel_quant", input_zp=op.attrs["input_zp"],
                         output_zp=op.attrs["output_zp"], multiplier="NULL", shift="NULL",
                         act_min=lo, act_max=hi,
                         high_word=ctx.const_array(f"{op.result.name}_requant", table.reshape(-1)))
    return [KernelCall("tfc_depthwise_brle_s8", (
        ctx.buf(op.operands[0]), _stream_struct(ctx, op, stream), folded, ctx.buf(op.result),
        _window(op, (kh, kw), out_c, op.attr("group", 1)), quant,
        ctx.scratch(depthwise_scratch_bytes(op), "int16_t")))]
