"""Float forms of the compute ops: ONNX semantics, computed in float32 like onnxruntime."""

from __future__ import annotations

import numpy as np

from tfc.errors import UnsupportedOpError
from tfc.ir.interp_spatial import (conv_accumulate, from_nchw, out_hw, spatial_params, to_nchw,
                                   weights_to_oihw, window_counts, windows)
from tfc.ir.ops import require_last_axis

F32 = np.float32


def fused_activation(op, y: np.ndarray) -> np.ndarray:
    """The `act` a fusion pass folded into op: none, relu, relu6 or clip[act_min, act_max]."""
    act = op.attr("act", "none")
    if act == "none":
        return y
    if act == "relu":
        return np.maximum(y, F32(0))
    if act == "relu6":
        return np.clip(y, F32(0), F32(6))
    if act == "clip":
        lo, hi = op.attr("act_min"), op.attr("act_max")
        return np.clip(y, -np.inf if lo is None else F32(lo), np.inf if hi is None else F32(hi))
    raise UnsupportedOpError(f"{op.where()}: unknown act '{act}'; use none, relu, relu6 or clip")


def _conv2d(op, xs):
    x, w = xs[0].astype(F32), xs[1].astype(F32)
    layout = op.attr("layout", "nchw")
    strides, pads, dilations = spatial_params(op)
    acc = conv_accumulate(to_nchw(x, layout), weights_to_oihw(w, layout), op.attr("group", 1),
                          strides, pads, dilations, out_hw(op))
    if len(xs) > 2:
        acc = acc + xs[2].astype(F32)
    y = fused_activation(op, acc.astype(F32))
    return [y if layout == "nhwc" else y.transpose(0, 3, 1, 2)]


def _linear(op, xs):
    x, w = xs[0].astype(F32), xs[1].astype(F32)
    y = np.matmul(x, w.T)
    if len(xs) > 2:
        y = y + xs[2].astype(F32)
    return [fused_activation(op, y)]


def _through(x, perm):
    """x read through a matmul layout attribute (a_perm, b_perm, y_perm; None = as stored)."""
    return x if perm is None else np.transpose(x, perm)


def _matmul(op, xs):
    a = op.attrs
    lhs = _through(xs[0].astype(F32), a.get("a_perm"))
    rhs = _through(xs[1].astype(F32), a.get("b_perm"))
    return [_through(np.matmul(lhs, rhs), a.get("y_perm"))]


def _add(op, xs):
    return [fused_activation(op, xs[0].astype(F32) + xs[1].astype(F32))]


def _sub(op, xs):
    return [fused_activation(op, xs[0].astype(F32) - xs[1].astype(F32))]


def _mul(op, xs):
    return [xs[0].astype(F32) * xs[1].astype(F32)]


def _relu(op, xs):
    return [np.maximum(xs[0], F32(0))]


def _avgpool2d(op, xs):
    layout = op.attr("layout", "nchw")
    x = to_nchw(xs[0].astype(F32), layout)
    strides, pads, dilations = spatial_params(op)
    kernel, out_size = op.attrs["kernel"], out_hw(op)
    total = windows(x, kernel, strides, pads, dilations, out_size, 0).sum(axis=(-2, -1))
    count = window_counts(x.shape[2:], kernel, strides, pads, dilations, out_size,
                          op.attr("count_include_pad", False))
    return [from_nchw((total / count.astype(F32)).astype(F32), layout)]


def _global_avgpool(op, xs):
    axes = (2, 3) if op.attr("layout", "nchw") == "nchw" else (1, 2)
    return [np.mean(xs[0].astype(F32), axis=axes, keepdims=True, dtype=F32)]


def _reduce_mean(op, xs):
    axes = tuple(op.attrs["axes"])
    return [np.mean(xs[0].astype(F32), axis=axes, keepdims=op.attr("keepdims", True), dtype=F32)]


def _batchnorm(op, xs):
    x, scale, bias, mean, var = (a.astype(F32) for a in xs)
    channel_axis = 3 if op.attr("layout", "nchw") == "nhwc" and x.ndim == 4 else 1
    shape = [1] * x.ndim
    shape[channel_axis] = -1

    def per_channel(p):
        return p.reshape(shape)

    eps = F32(op.attr("epsilon", 1e-5))
    y = (x - per_channel(mean)) / np.sqrt(per_channel(var) + eps) * per_channel(scale) + per_channel(bias)
    return [y.astype(F32)]


def _layernorm(op, xs):
    """ONNX LayerNormalization over the last axis (stash_type float32)."""
    require_last_axis(op)
    x = xs[0].astype(F32)
    mean = np.mean(x, axis=-1, keepdims=True, dtype=F32)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True, dtype=F32)
    y = centered / np.sqrt(var + F32(op.attr("epsilon", 1e-5)))
    if len(xs) > 1:
        y = y * xs[1].astype(F32)
    if len(xs) > 2:
        y = y + xs[2].astype(F32)
    return [y.astype(F32)]


def _softmax(op, xs):
    require_last_axis(op)
    x = xs[0].astype(F32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return [(e / e.sum(axis=-1, keepdims=True, dtype=F32)).astype(F32)]


KERNELS = {
    "conv2d": _conv2d, "linear": _linear, "matmul": _matmul, "add": _add, "sub": _sub,
    "mul": _mul, "relu": _relu, "avgpool2d": _avgpool2d, "global_avgpool": _global_avgpool,
    "reduce_mean": _reduce_mean, "batchnorm": _batchnorm, "layernorm": _layernorm,
    "softmax": _softmax,
}
