"""Integer forms of the compute ops, exactly as the docstrings in `tfc.ir.ops` state them.

Accumulation is exact (int64 in numpy); requantization, rounding and square roots are the
`quant_math` primitives the C kernels implement bit for bit. This module is the spec the
runtime kernels are written against, so each function reads like its docstring.
"""

from __future__ import annotations

import numpy as np

from tfc.errors import UnsupportedOpError
from tfc.ir.interp_spatial import (conv_accumulate, from_nchw, out_hw, spatial_params, to_nchw,
                                   weights_to_oihw, window_counts, windows)
from tfc.ir.ops import require_last_axis
from tfc.ir.quant_math import (LAYERNORM_MAX_CHANNELS, MEAN_EXTRA_BITS, SOFTMAX_MAX_ROW, add_int,
                               clamp, multiply_by_quantized_multiplier as mbqm, rounding_divide,
                               scaled_layernorm_row, smlawb, softmax_row_reciprocal, wrap_int32)

I64 = np.int64


def act_range(op) -> tuple[int, int]:
    """The fused clamp [act_min, act_max]; the result dtype's range where the op has none."""
    info = np.iinfo(op.results[0].type.np_dtype)
    return int(op.attr("act_min", info.min)), int(op.attr("act_max", info.max))


def _requantize_out(op, acc, multiplier, shift, output_zp):
    """clamp(MBQM(acc, multiplier, shift) + output_zp, act_min, act_max)."""
    lo, hi = act_range(op)
    return clamp(mbqm(acc, np.asarray(multiplier, I64), np.asarray(shift, I64)) + output_zp, lo, hi)


def _conv2d(op, xs):
    """acc[o] = bias[o] + sum (x - input_zp) * w; padding contributes 0 (it pads x - input_zp)."""
    a = op.attrs
    layout = a.get("layout", "nchw")
    strides, pads, dilations = spatial_params(op)
    x = to_nchw(xs[0].astype(I64) - a["input_zp"], layout)
    w = weights_to_oihw(xs[1].astype(I64), layout)
    acc = conv_accumulate(x, w, a.get("group", 1), strides, pads, dilations, out_hw(op))
    if len(xs) > 2:
        acc = acc + xs[2].astype(I64)
    y = _requantize_out(op, acc, a["multiplier"], a["shift"], a["output_zp"])  # channel-last
    return [y if layout == "nhwc" else y.transpose(0, 3, 1, 2)]


def _linear(op, xs):
    a = op.attrs
    acc = np.matmul(xs[0].astype(I64) - a["input_zp"], xs[1].astype(I64).T)
    if len(xs) > 2:
        acc = acc + xs[2].astype(I64)
    return [_requantize_out(op, acc, a["multiplier"], a["shift"], a["output_zp"])]


def _through(x, perm):
    """x read through a matmul layout attribute (a_perm, b_perm, y_perm; None = as stored)."""
    return x if perm is None else np.transpose(x, perm)


def _matmul(op, xs):
    """A = a read through a_perm, B = b through b_perm; the result is written through y_perm."""
    a = op.attrs
    lhs = _through(xs[0], a.get("a_perm")).astype(I64) - a["a_zp"]
    rhs = _through(xs[1], a.get("b_perm")).astype(I64) - a["b_zp"]
    y = _requantize_out(op, np.matmul(lhs, rhs), a["multiplier"], a["shift"], a["output_zp"])
    return [_through(y, a.get("y_perm"))]


def _add_sub(op, xs, sign: int):
    """acc = (a - a_zp) * a_multiplier +- (b - b_zp) * b_multiplier, rounded by 2^shift once."""
    a = op.attrs
    total = add_int(xs[0], xs[1], a["a_zp"], a["b_zp"], a["a_multiplier"], a["b_multiplier"],
                    a["shift"], sign)
    lo, hi = act_range(op)
    return [clamp(total + a["output_zp"], lo, hi)]


def _add(op, xs):
    return _add_sub(op, xs, 1)


def _sub(op, xs):
    return _add_sub(op, xs, -1)


def _mul(op, xs):
    a = op.attrs
    acc = (xs[0].astype(I64) - a["a_zp"]) * (xs[1].astype(I64) - a["b_zp"])
    return [_requantize_out(op, acc, a["multiplier"], a["shift"], a["output_zp"])]


def _mean_requantize(op, total, count):
    """avg = rounding_divide(total * 2^8, count); then the usual requantization."""
    a = op.attrs
    avg = rounding_divide(np.asarray(total, dtype=I64) << MEAN_EXTRA_BITS, count)
    return _requantize_out(op, avg, a["multiplier"], a["shift"], a["output_zp"])


def _avgpool2d(op, xs):
    layout = op.attr("layout", "nchw")
    x = to_nchw(xs[0].astype(I64) - op.attrs["input_zp"], layout)
    strides, pads, dilations = spatial_params(op)
    kernel, out_size = op.attrs["kernel"], out_hw(op)
    total = windows(x, kernel, strides, pads, dilations, out_size, 0).sum(axis=(-2, -1))
    count = window_counts(x.shape[2:], kernel, strides, pads, dilations, out_size,
                          op.attr("count_include_pad", False))
    return [from_nchw(_mean_requantize(op, total, count), layout)]


def _global_avgpool(op, xs):
    axes = (2, 3) if op.attr("layout", "nchw") == "nchw" else (1, 2)
    x = xs[0].astype(I64) - op.attrs["input_zp"]
    count = x.shape[axes[0]] * x.shape[axes[1]]
    return [_mean_requantize(op, x.sum(axis=axes, keepdims=True), count)]


def _reduce_mean(op, xs):
    x = xs[0].astype(I64) - op.attrs["input_zp"]
    axes = tuple(sorted({ax % x.ndim for ax in op.attrs["axes"]}))
    count = int(np.prod([x.shape[ax] for ax in axes]))
    total = x.sum(axis=axes, keepdims=op.attr("keepdims", True))
    return [_mean_requantize(op, total, count)]


def _layernorm(op, xs):
    """Scaled-LayerNorm: integer statistics, one reciprocal square root per row, x_norm * 2^s in
    int16 (one SMLAWB), then gamma and beta as one more SMLAWB per element (ops.py `layernorm`)."""
    require_last_axis(op)
    if len(xs) != 1:
        raise UnsupportedOpError(f"{op.where()}: the integer layernorm takes x only; gamma and "
                                 f"beta fold into multiplier/bias (run scaled-layernorm)")
    a = op.attrs
    x = xs[0].astype(I64)
    channels = x.shape[-1]
    if channels > LAYERNORM_MAX_CHANNELS:
        raise UnsupportedOpError(f"{op.where()}: rows of {channels} channels; the integer "
                                 f"layernorm handles at most {LAYERNORM_MAX_CHANNELS}")
    rows = x.reshape(-1, channels)
    params = [scaled_layernorm_row(int(r.sum()), int((r * r).sum()), channels, a["eps_q"])
              for r in rows]
    scale = np.array([p[0] for p in params], dtype=I64).reshape(-1, 1)
    offset = np.array([p[1] for p in params], dtype=I64).reshape(-1, 1)
    xn = smlawb(scale, rows, offset)  # x_norm * 2^s; SMLAWB reads its low half as int16
    acc = wrap_int32(smlawb(np.asarray(a["multiplier"], I64), xn, np.asarray(a["bias"], I64)))
    lo, hi = act_range(op)
    return [clamp(acc >> 16, lo, hi).reshape(x.shape)]


def _softmax(op, xs):
    """Table-driven softmax: e = lut[255 - max + x], one reciprocal per row, one multiply each."""
    require_last_axis(op)
    if len(xs) != 2:
        raise UnsupportedOpError(f"{op.where()}: the integer softmax needs its exp table as the "
                                 f"second operand (run softmax-lut)")
    a = op.attrs
    x, lut = xs[0].astype(I64), xs[1].astype(I64)
    if x.shape[-1] > SOFTMAX_MAX_ROW:
        raise UnsupportedOpError(f"{op.where()}: rows of {x.shape[-1]} elements; the integer "
                                 f"softmax handles at most {SOFTMAX_MAX_ROW}")
    e = lut[255 - x.max(axis=-1, keepdims=True) + x]
    recip = softmax_row_reciprocal(e.sum(axis=-1, keepdims=True), a["multiplier"], a["shift"])
    y = ((e * recip + (1 << 31)) >> 32) + a["output_zp"]
    return [clamp(y, -128, 127)]


KERNELS = {
    "conv2d": _conv2d, "linear": _linear, "matmul": _matmul, "add": _add, "sub": _sub,
    "mul": _mul, "avgpool2d": _avgpool2d, "global_avgpool": _global_avgpool,
    "reduce_mean": _reduce_mean, "layernorm": _layernorm, "softmax": _softmax,
}
