"""Quantization helpers shared by calibrate, quantize, scaled-layernorm and softmax-lut.

The numeric conventions (DESIGN.md "Numerics"): activations int8 asymmetric per tensor, weights
int8 symmetric per output channel, bias int32 at s_in * s_w, requantization by a fixed-point
multiplier/shift pair from `quant_math.quantize_multiplier`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tfc.errors import UnsupportedOpError
from tfc.ir import quant_math
from tfc.ir.core import Builder, Graph, Op, Value, const_value
from tfc.ir.types import Quant

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = quant_math.INT32_MIN, quant_math.INT32_MAX

# The fixed output quantization of softmax: probabilities in [0, 1) on the full int8 range.
SOFTMAX_OUTPUT_QUANT = Quant.per_tensor(1.0 / 256.0, -128)

# Ops that only move or select data: their result keeps their input's quantization.
DATA_MOVEMENT_OPS = ("reshape", "transpose", "slice", "split", "maxpool2d")


QDQ_OPS = ("quantize", "dequantize", "requantize")


# -- choosing parameters -------------------------------------------------------------------------

def activation_quant(rmin: float, rmax: float) -> Quant:
    """Asymmetric int8 parameters for the real range [rmin, rmax], widened to contain 0.

    Containing 0 makes zero padding and ReLU exact. A degenerate (all-zero) range gets a unit
    span so that later multipliers stay representable.
    """
    rmin, rmax = min(float(rmin), 0.0), max(float(rmax), 0.0)
    span = rmax - rmin
    if not span > 1e-12:
        span = 1.0
    scale = float(np.float32(span / (INT8_MAX - INT8_MIN)))  # ONNX stores scales as float32
    zero_point = int(np.clip(round(INT8_MIN - rmin / scale), INT8_MIN, INT8_MAX))
    return Quant.per_tensor(scale, zero_point)


def symmetric_per_channel(w: np.ndarray, axis: int = 0) -> tuple[np.ndarray, Quant]:
    """int8 weights with one symmetric scale per index of `axis` (max |w| maps to 127)."""
    w = np.asarray(w, dtype=np.float32)
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
    max_abs = np.max(np.abs(w), axis=reduce_axes) if reduce_axes else np.abs(w)
    # An all-zero channel (a pruned output) has no range of its own; its scale only sets the
    # resolution of its bias, so it borrows the widest channel's rather than a coarse 1.0.
    fallback = float(max_abs.max()) / INT8_MAX if np.any(max_abs > 0) else 1.0
    scales = np.where(max_abs > 0, max_abs / INT8_MAX, fallback).astype(np.float64)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = quant_math.quantize_float(w, scales.reshape(shape).astype(np.float32), 0)
    return q, Quant(tuple(scales), (0,) * len(scales), axis)


def bias_int32(bias: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Bias at scale s_in * s_w[o], saturated to int32."""
    q = np.round(np.asarray(bias, dtype=np.float64) / np.asarray(scales, dtype=np.float64))
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int32)


def multiplier_shift(real: float) -> tuple[int, int]:
    return quant_math.quantize_multiplier(float(real))


def per_channel_multipliers(reals) -> tuple[list[int], list[int]]:
    pairs = [quant_math.quantize_multiplier(float(r)) for r in reals]
    return [m for m, _ in pairs], [s for _, s in pairs]


# The requantization every constant channel gets: multiplier 2^30 with shift -2 is x / 8
# rounded half up, so MBQM(8 * t) == t exactly, and its high-word form has k = 1.
CONSTANT_CHANNEL_MULTIPLIER, CONSTANT_CHANNEL_SHIFT = 1 << 30, -2
_CONSTANT_CHANNEL_DIVISOR = 8


def canonical_constant_channels(weights: np.ndarray, bias: np.ndarray | None, multiplier: list[int],
                                shift: list[int]) -> tuple[np.ndarray | None, list[int], list[int]]:
    """Requantization of the output channels whose int8 weights are all zero, made canonical.

    Such a channel's accumulator is its bias whatever the input, so its output is the constant
    t = MBQM(bias, multiplier, shift). Its (multiplier, shift) came from a weight scale that
    means nothing (onnxruntime gives 1.0, so the shift can be positive) and would keep the
    whole layer off the kernels' high-word requantization. It is replaced by the canonical pair
    with bias 8 * t, which gives the same t exactly. t is first clipped to +-512: the output
    clamp to int8 after adding the zero point gives the same code.
    """
    w = np.asarray(weights)
    constant = ~w.reshape(w.shape[0], -1).any(axis=1)
    if not constant.any():
        return bias, multiplier, shift
    multiplier, shift = list(multiplier), list(shift)
    bias = None if bias is None else np.array(bias, dtype=np.int32)
    for c in np.flatnonzero(constant):
        if bias is not None:
            t = int(quant_math.multiply_by_quantized_multiplier(int(bias[c]), multiplier[c],
                                                                 shift[c]))
            bias[c] = _CONSTANT_CHANNEL_DIVISOR * int(np.clip(t, -512, 512))
        multiplier[c], shift[c] = CONSTANT_CHANNEL_MULTIPLIER, CONSTANT_CHANNEL_SHIFT
    return bias, multiplier, shift


def code_of(real: float, q: Quant) -> int:
    """The int8 code of a real number under per-tensor `q`, saturated."""
    return int(np.clip(round(real / q.s) + q.zp, INT8_MIN, INT8_MAX))


def activation_bounds(op: Op, out: Quant) -> tuple[int, int]:
    """[act_min, act_max] in output codes for the float activation fused into `op`.

    Without a fused activation the clamp is the output type's range, which is also how a ReLU
    that onnxruntime removed (its range became the quantize's zp = -128) keeps its meaning.
    """
    act = op.attr("act", "none")
    if act == "none":
        return INT8_MIN, INT8_MAX
    if act == "relu":
        return code_of(0.0, out), INT8_MAX
    if act == "relu6":
        return code_of(0.0, out), code_of(6.0, out)
    if act == "clip":
        lo = op.attr("act_min")
        hi = op.attr("act_max")
        return (INT8_MIN if lo is None else code_of(lo, out)), (INT8_MAX if hi is None else code_of(hi, out))
    raise UnsupportedOpError(f"{op.where()}: fused activation '{act}' has no int8 form; "
                             f"use none, relu, relu6 or clip")


# -- matching ------------------------------------------------------------------------------------

def dequantized_source(v: Value) -> Value | None:
    """The integer value `v` was dequantized from, or None."""
    p = v.producer
    if p is not None and p.name == "dequantize":
        return p.operands[0]
    return None


def float_const(v: Value) -> np.ndarray | None:
    arr = const_value(v)
    if arr is not None and v.type.dtype == "f32":
        return arr
    return None


def real_const(v: Value) -> np.ndarray | None:
    """The real values of a float const or of a dequantized integer const, else None."""
    arr = float_const(v)
    if arr is not None:
        return np.asarray(arr, dtype=np.float32)
    src = dequantized_source(v)
    if src is not None and const_value(src) is not None and src.type.quant is not None:
        return dequantize_array(const_value(src), src.type.quant)
    return None


def dequantize_array(q: np.ndarray, quant: Quant) -> np.ndarray:
    scale = np.asarray(quant.scale, dtype=np.float32)
    zp = np.asarray(quant.zero_point, dtype=np.int32)
    if quant.axis is not None:
        shape = [1] * q.ndim
        shape[quant.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


def quantize_users(graph: Graph, v: Value) -> list[Op] | None:
    """The quantize ops that consume `v` when they are all it feeds (not a graph output); else None."""
    users = v.users
    if not users or graph.is_output(v) or any(u.name != "quantize" for u in users):
        return None
    return users


def per_tensor(v: Value) -> Quant | None:
    q = v.type.quant
    return q if q is not None and q.is_per_tensor else None


def has_qdq(graph: Graph) -> bool:
    return any(op.name in ("quantize", "dequantize") for op in graph.ops)


# -- building ------------------------------------------------------------------------------------

def requantize(b: Builder, x: Value, out: Quant, act_min: int = INT8_MIN, act_max: int = INT8_MAX,
               name_hint: str | None = None) -> Value:
    """x re-expressed under `out` (and clamped to [act_min, act_max] codes)."""
    q_in = x.type.quant
    mult, shift = multiplier_shift(q_in.s / out.s)
    return b.op("requantize", [x], name_hint=name_hint or f"{x.name}_rq",
                result_type=x.type.with_quant(out), input_zp=q_in.zp, output_zp=out.zp,
                multiplier=mult, shift=shift, act_min=int(act_min), act_max=int(act_max))


# -- float islands (layernorm, softmax) ----------------------------------------------------------

@dataclass
class LastAxisIsland:
    """dequantize(x) -> op (over the last axis) -> quantize: a float op between int8 tensors."""

    op: Op
    x: Value  # the int8 per-tensor input
    out: Quant  # the per-tensor quantization every reader applies
    readers: list[Op]  # the quantize ops reading the result


def match_last_axis_island(graph: Graph, op: Op) -> LastAxisIsland | str:
    """The island around `op`, or why `op` is not one."""
    x = dequantized_source(op.operands[0])
    if x is None or x.type.dtype != "i8" or per_tensor(x) is None:
        return "input is not dequantized from an int8 per-tensor tensor"
    axis = op.attr("axis", -1)
    if axis not in (-1, x.type.rank - 1):
        return f"axis {axis} is not the last axis"
    readers = quantize_users(graph, op.result)
    if readers is None:
        return "result does not feed only quantize ops"
    out = per_tensor(readers[0].result)
    if out is None or any(q.result.type.quant != out for q in readers):
        return "result is quantized in different ways"
    return LastAxisIsland(op, x, out, readers)


def replace_island(graph: Graph, island: LastAxisIsland, new: Value) -> None:
    """Routes the readers' users to `new`, which takes over the float op's name."""
    name = island.op.result.name
    for q in island.readers:
        graph.replace_all_uses_with(q.result, new)
        graph.erase(q)
    graph.erase(island.op)
    if name not in {v.name for v in graph.values()}:
        new.name = name


def rewrite_islands(graph: Graph, op_name: str,
                    rewrite: Callable[[Graph, LastAxisIsland], str | None]) -> bool:
    """Applies `rewrite` to every float `op_name` island; True when any was rewritten."""
    changed = False
    for op in graph.walk(op_name):
        if op.graph is not graph or op.result.type.dtype != "f32":
            continue
        island = match_last_axis_island(graph, op)
        if not isinstance(island, str) and rewrite(graph, island) is None:
            changed = True
    if changed:
        erase_dead(graph)
    return changed


def erase_dead(graph: Graph, names=("dequantize", "quantize", "const")) -> bool:
    """Erases ops of the given kinds whose results are unused, until none is left."""
    changed = True
    any_change = False
    while changed:
        changed = False
        for op in reversed(list(graph.ops)):
            if op.name in names and all(not r.uses and not graph.is_output(r) for r in op.results):
                graph.erase(op)
                changed = any_change = True
    return any_change


