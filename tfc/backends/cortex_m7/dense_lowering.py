"""Lowering of dense int8 conv2d / linear to the fast kernels of runtime/tfc_gemm_s8.c (and of
depthwise conv2d to runtime/tfc_depthwise.c, via depthwise_lowering.py).

`kernels.py` asks `lower_dense(op, ctx)` for an int8 conv2d or linear whose weights are stored
dense; it returns None when the op needs the generic kernel. Everything shape-dependent is done
here, at compile time:

- conv2d (groups == 1) and linear become one matrix product over packed weights: channel pairs
  interleaved per 4 reduction elements, padded to a multiple of 4 (`pack_gemm_weights`), so the
  kernel's 2x2 register block loads each weight word once for two rows;
- a 1x1, stride-1, unpadded conv2d is a linear layer over the pixels (no im2col at all);
- depthwise conv2d (channel multiplier 1) gets its bias with the input zero point folded in
  (bias - input_zp * sum of taps) and the weight layout of its kernel (depthwise_lowering.py).

The fast kernels take ops whose multipliers are not INT32_MIN and whose shifts are in [-31, 30].
When every channel's shift is in [-22, -2] (output scales below a quarter of the accumulator's:
all of them in practice), the lowering adds a {multiplier, round, k} table
(quant_math.high_word_requant) and the kernels requantize from the product's high word in two
instructions, zero point included.
"""

from __future__ import annotations

import numpy as np

from tfc.backends.cortex_m7 import depthwise_lowering
from tfc.ir.core import Op
from tfc.passes.memory_plan import storage_root

INT32_MIN = -(1 << 31)
MIN_SHIFT, MAX_SHIFT = -31, 30

__all__ = ["fold_zero_point", "lower_dense", "pack_gemm_weights", "dense_scratch_bytes"]


# -- weight layouts -------------------------------------------------------------------------------

def pack_gemm_weights(w: np.ndarray) -> np.ndarray:
    """[out, K] int8 -> the flat layout of tfc_gemm_s8.c: for each channel pair, each group of 4
    reduction elements holds 4 weights of the first channel then 4 of the second. K is padded to a
    multiple of 4 and an odd channel count gets a zero channel (both padded with 0)."""
    out_c, k = w.shape
    k4 = -(-k // 4) * 4
    pairs = -(-out_c // 2)
    padded = np.zeros((pairs * 2, k4), np.int8)
    padded[:out_c, :k] = w
    return np.ascontiguousarray(padded.reshape(pairs, 2, k4 // 4, 4).transpose(0, 2, 1, 3)).reshape(-1)


def fold_zero_point(bias: np.ndarray | None, w: np.ndarray, input_zp: int) -> np.ndarray:
    """bias[c] - input_zp * sum(w[c]), wrapped to int32 like the kernel's accumulator."""
    channels = w.shape[0]
    base = np.zeros(channels, np.int64) if bias is None else bias.astype(np.int64)
    folded = base - int(input_zp) * w.reshape(channels, -1).astype(np.int64).sum(axis=1)
    return (((folded + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)


# -- which kernel -----------------------------------------------------------------------------------

def _const_array(op: Op, index: int) -> np.ndarray | None:
    """The data of operand `index` when it is a (possibly reshaped) dense constant."""
    if len(op.operands) <= index:
        return None
    root = storage_root(op.operands[index]).producer
    if root is None or root.name != "const" or root.attrs.get("storage", "dense") != "dense":
        return None
    return root.attrs["value"].array.reshape(op.operands[index].type.shape)


def _exact_requant(op: Op) -> bool:
    multipliers = np.atleast_1d(np.asarray(op.attrs["multiplier"], np.int64))
    shifts = np.atleast_1d(np.asarray(op.attrs["shift"], np.int64))
    return bool((multipliers != INT32_MIN).all() and (shifts >= MIN_SHIFT).all()
                and (shifts <= MAX_SHIFT).all())


def _kind(op: Op) -> str | None:
    """'linear', 'pointwise', 'conv' or 'depthwise' when a fast kernel computes `op`, else None."""
    if op.name not in ("conv2d", "linear") or op.operands[0].type.dtype != "i8":
        return None
    if _const_array(op, 1) is None or not _exact_requant(op):
        return None
    if len(op.operands) > 2 and _const_array(op, 2) is None:
        return None
    if op.name == "linear":
        return "linear"
    if op.attr("layout", "nchw") != "nhwc":
        return None
    out_c, kh, kw, per_group = op.operands[1].type.shape
    groups = op.attr("group", 1)
    if groups == 1:
        if ((kh, kw) == (1, 1) and list(op.attr("strides", [1, 1])) == [1, 1]
                and not any(op.attr("pads", [0, 0, 0, 0]))):
            return "pointwise"
        return "conv"
    in_c = op.operands[0].type.shape[3]
    if groups == in_c == out_c and per_group == 1 and kh * kw <= depthwise_lowering.MAX_TAPS:
        return "depthwise"
    return None


def _reduction(op: Op) -> int:
    w = op.operands[1].type.shape
    return int(np.prod(w[1:]))


def dense_scratch_bytes(op: Op) -> int:
    """Scratch the fast kernel for `op` needs: the 2-row int16 panel, or depthwise's."""
    kind = _kind(op)
    if kind is None:
        return 0
    if kind == "depthwise":
        return depthwise_lowering.scratch_bytes(op)
    return 4 * (-(-_reduction(op) // 4) * 4)


def lower_dense(op: Op, ctx):
    """The tfc_gemm_s8.c call that computes `op`, or None when it takes the generic kernel."""
    from tfc.backends.cortex_m7.kernels import KernelCall, _channel_quant, _window

    kind = _kind(op)
    if kind is None:
        return None
    w = _const_array(op, 1)
    bias = _const_array(op, 2)
    if kind == "depthwise":
        return depthwise_lowering.lower_depthwise(op, ctx, w, fold_zero_point(
            bias, w, op.attrs["input_zp"]))
    x, y, name = ctx.buf(op.operands[0]), ctx.buf(op.result), op.result.name
    out_c = w.shape[0]
    quant = _channel_quant(ctx, op, out_c, high_word=True)
    packed = ctx.const_array(f"{name}_w_packed", pack_gemm_weights(w.reshape(out_c, -1)))
    bias_arg = ctx.buf(op.operands[2]) if bias is not None else "NULL"
    panel = ctx.scratch(dense_scratch_bytes(op), "uint32_t")
    if kind in ("linear", "pointwise"):
        in_features = _reduction(op)
        rows = op.operands[0].type.numel // in_features
        return [KernelCall("tfc_linear_s8_packed", (x, packed, bias_arg, y, str(rows),
                                                    str(in_features), str(out_c), quant, panel))]
    kh, kw = w.shape[1:3]
    return [KernelCall("tfc_conv2d_s8_packed", (x, packed, bias_arg, y,
                                                _window(op, (kh, kw), out_c, 1), quant, panel))]
