"""Lowering of dense int8 depthwise conv2d to runtime/tfc_depthwise.c.

Both kernels take the bias with the input zero point folded in (dense_lowering.fold_zero_point),
so the padding they read holds the zero point and contributes nothing.

- 3x3, dilation 1, stride_w 1 or 2 (any stride_h and padding), every channel fit for the
  high-word requantization table: `tfc_depthwise_s8_3x3`. It reads one record per channel
  (`records_3x3`): two words per kernel row, int16 pairs matching the SXTB16 lanes of an input
  word, (w0, w2) and (w1, 0), so the kernel never widens a weight; then the folded bias and the
  {multiplier, round, k} requantization, so one pointer reaches all of a channel's constants.
  Its scratch holds four channels of a band of input rows transposed into int8 planes
  (`plane_geometry`): a band is the whole image when that fits in PLANE_BUDGET_BYTES, else as
  many output rows as do.
- any other kernel (up to MAX_TAPS taps, any stride and dilation): `tfc_depthwise_s8_hwc`, with
  weights [kh * kw, C] (four channels per word) and a row of the zero point as scratch.
"""

from __future__ import annotations

import numpy as np

from tfc.ir.core import Op
from tfc.ir.quant_math import high_word_requant

MAX_TAPS = 64  # TFC_DW_MAX_TAPS in tfc_depthwise.c
PLANE_BUDGET_BYTES = 4096  # the 3x3 kernel's scratch when a whole image would take more
PLANE_CHANNELS = 4  # channels transposed at a time (one input word)

__all__ = ["MAX_TAPS", "depthwise_hwc", "is_3x3_fast", "lower_depthwise", "plane_geometry",
           "records_3x3", "scratch_bytes"]


def depthwise_hwc(w: np.ndarray) -> np.ndarray:
    """Depthwise weights [C, kh, kw, 1] -> [kh * kw, C] (taps outer, channels inner)."""
    channels = w.shape[0]
    return np.ascontiguousarray(w.reshape(channels, -1).T)


def records_3x3(w: np.ndarray, folded_bias: np.ndarray, requant: np.ndarray) -> np.ndarray:
    """int32 [C, 10] records of tfc_depthwise_s8_3x3 from weights [C, 3, 3, 1], the folded bias
    [C] and the {multiplier, round, k} table [C, 3]: for kernel rows 0..2, (w0 | w2 << 16) and
    w1 as int16 halves; then the bias and the table row."""
    taps = w.reshape(w.shape[0], 3, 3).astype(np.int64)
    pair02 = (taps[:, :, 0] & 0xFFFF) | ((taps[:, :, 2] & 0xFFFF) << 16)
    rows = np.stack([pair02, taps[:, :, 1] & 0xFFFF], axis=-1).reshape(w.shape[0], 6)
    rows = ((rows + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    return np.concatenate([rows, folded_bias.astype(np.int64)[:, None],
                           requant.astype(np.int64)], axis=1).astype(np.int32)


def _requant_table(op: Op) -> np.ndarray | None:
    channels = op.operands[1].type.shape[0]
    multipliers = np.broadcast_to(np.asarray(op.attrs["multiplier"], np.int64), (channels,))
    shifts = np.broadcast_to(np.asarray(op.attrs["shift"], np.int64), (channels,))
    return high_word_requant(multipliers, shifts, op.attrs["output_zp"])


def is_3x3_fast(op: Op) -> bool:
    """Whether tfc_depthwise_s8_3x3 computes depthwise `op`."""
    _, kh, kw, _ = op.operands[1].type.shape
    _, stride_w = op.attr("strides", [1, 1])
    return ((kh, kw) == (3, 3) and list(op.attr("dilations", [1, 1])) == [1, 1]
            and stride_w in (1, 2) and _requant_table(op) is not None)


def plane_geometry(op: Op) -> tuple[int, int]:
    """(pitch, band_rows) of the 3x3 kernel's planes, as planes_of in tfc_depthwise.c: a plane
    row covers the input columns four outputs at a time read, in whole words."""
    _, out_h, out_w, _ = op.result.type.shape
    stride_h, stride_w = op.attr("strides", [1, 1])
    groups = -(-out_w // 4)
    pitch = 4 * groups + 4 if stride_w == 1 else 8 * groups + 4

    def plane_bytes(rows: int) -> int:
        return PLANE_CHANNELS * pitch * ((rows - 1) * stride_h + 3)

    band = out_h
    while band > 1 and plane_bytes(band) > PLANE_BUDGET_BYTES:
        band -= 1
    return pitch, band


def scratch_bytes(op: Op) -> int:
    """The planes of the 3x3 kernel, or the other kernel's zero-point row."""
    if not is_3x3_fast(op):
        return int(op.operands[0].type.shape[3])
    pitch, band = plane_geometry(op)
    stride_h = op.attr("strides", [1, 1])[0]
    return PLANE_CHANNELS * pitch * ((band - 1) * stride_h + 3)


def lower_depthwise(op: Op, ctx, w: np.ndarray, folded_bias: np.ndarray):
    """The tfc_depthwise.c call for depthwise `op` (dense int8 weights `w`, [C, kh, kw, 1])."""
    from tfc.backends.cortex_m7.kernels import (KernelCall, _act_range, _channel_quant, _window,
                                                c_struct)

    x, y, name = ctx.buf(op.operands[0]), ctx.buf(op.result), op.result.name
    channels, kh, kw, _ = w.shape
    window = _window(op, (kh, kw), channels, channels)
    if is_3x3_fast(op):
        records = ctx.const_array(f"{name}_dw_records",
                                  records_3x3(w, folded_bias, _requant_table(op)).reshape(-1))
        lo, hi = _act_range(op)  # the records hold the rest of the requantization
        quant = c_struct("tfc_channel_quant", input_zp=op.attrs["input_zp"],
                         output_zp=op.attrs["output_zp"], multiplier="NULL", shift="NULL",
                         act_min=lo, act_max=hi, high_word="NULL")
        _, band = plane_geometry(op)
        planes = ctx.scratch(scratch_bytes(op), "int8_t")
        return [KernelCall("tfc_depthwise_s8_3x3", (x, records, y, window, quant, planes,
                                                    str(band)))]
    quant = _channel_quant(ctx, op, channels, high_word=True)
    weights = ctx.const_array(f"{name}_w_hwc", depthwise_hwc(w))
    folded = ctx.const_array(f"{name}_bias_folded", folded_bias)
    return [KernelCall("tfc_depthwise_s8_hwc", (x, weights, folded, y, window, quant,
                                                ctx.scratch(scratch_bytes(op), "int8_t")))]
