"""Converters from ONNX nodes to tfc IR ops, one function per ONNX op type.

A converter is `fn(ctx, node) -> list[item]`, one item per ONNX output: an IR `Value`, or a numpy
array when the result is known at compile time (Shape of a static tensor). Converters only run
when some input is computed at run time; all-constant nodes are folded before they get here.
Anything tfc cannot express raises `ctx.unsupported(what, fix)`, which names the ONNX node.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx

from frontends.onnx_import import ImportContext, Item, Node
from tfc.ir.core import Value, const_value
from tfc.ir.types import Quant, TensorType

Converter = Callable[[ImportContext, Node], list[Item]]
CONVERTERS: dict[str, Converter] = {}


def converts(*op_types: str):
    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            CONVERTERS[op_type] = fn
        return fn
    return register


def _axis(ctx: ImportContext, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ctx.unsupported(f"axis {axis} is out of range for rank {rank}", "fix the model")
    return axis % rank


def _runtime_input(ctx: ImportContext, node: Node, i: int = 0) -> Value:
    item = node.input(i)
    if not isinstance(item, Value):
        raise ctx.unsupported(f"input {i} is missing", "the model is malformed; export it again")
    return item


def _no_extra_outputs(ctx: ImportContext, node: Node, used: int, what: str) -> None:
    if any(node.outputs[used:]):
        raise ctx.unsupported(f"its optional output(s) {what} are used", "tfc computes only the "
                              "main output; remove the other outputs from the model")


def _reshape(ctx: ImportContext, x: Item, shape, **kw) -> Value:
    return ctx.emit1("reshape", [x], {"shape": [int(d) for d in shape]}, **kw)


def is_constant_weight(item: Item) -> bool:
    """A constant, or a QDQ weight: dequantize of a constant."""
    if isinstance(item, np.ndarray):
        return True
    producer = item.producer
    return (producer is not None and producer.name == "dequantize"
            and producer.operands[0].producer is not None
            and producer.operands[0].producer.name == "const")


def _weight_transform(ctx: ImportContext, item: Item, array_fn, axis_fn) -> Item | None:
    """Applies a layout change to a constant weight, also through a QDQ weight's dequantize.

    `array_fn` maps the array; `axis_fn` maps a per-axis quantization axis. Returns None when
    the weight is computed at run time (the caller then emits ops instead).
    """
    if isinstance(item, np.ndarray):
        return ctx.derived(np.ascontiguousarray(array_fn(item)), item)
    if not is_constant_weight(item):
        return None
    stored = item.producer.operands[0]
    quant = stored.type.quant
    if quant is not None and quant.axis is not None:
        quant = Quant(quant.scale, quant.zero_point, axis_fn(quant.axis))
    array = np.ascontiguousarray(array_fn(stored.producer.attrs["value"].array))
    weights = ctx.value(array, stored.name, quant=quant)
    result = ctx.emit1("dequantize", [weights], names=item.name,
                       result_types=[TensorType(array.shape, "f32")])
    # Once the old layout is dead, the new one takes over its (ONNX) names.
    ctx.preferred_names += [(weights, stored.name), (result, item.name)]
    return result


# -- data movement and shapes -------------------------------------------------------------------

@converts("Identity", "Dropout")
def _identity(ctx, node):
    _no_extra_outputs(ctx, node, 1, "mask")
    return [node.input(0)]


@converts("Cast")
def _cast(ctx, node):
    x = _runtime_input(ctx, node)
    to = node.attrs.get("to")
    if to != onnx.TensorProto.FLOAT or x.type.dtype != "f32":
        name = onnx.TensorProto.DataType.Name(to) if to else "?"
        raise ctx.unsupported(f"casting %{x.name} ({x.type.dtype}) to {name} at run time",
                              "tfc computes in float32 and int8 only; remove the Cast")
    return [x]


@converts("Shape")
def _shape(ctx, node):
    shape = np.array(ctx.shape(node.input(0)), dtype=np.int64)
    return [shape[node.attrs.get("start", 0): node.attrs.get("end", len(shape))]]


@converts("Size")
def _size(ctx, node):
    return [np.array(math.prod(ctx.shape(node.input(0))), dtype=np.int64)]


@converts("Reshape")
def _reshape_node(ctx, node):
    x = _runtime_input(ctx, node)
    target = [int(d) for d in ctx.constant(1, "target shape").reshape(-1)]
    allow_zero = node.attrs.get("allowzero", 0)
    shape = [x.type.shape[i] if d == 0 and not allow_zero else d for i, d in enumerate(target)]
    if shape.count(-1) > 1:
        raise ctx.unsupported(f"target shape {target} has more than one -1", "fix the model")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or x.type.numel % known:
            raise ctx.unsupported(f"cannot reshape {list(x.type.shape)} to {target}", "fix the model")
        shape[shape.index(-1)] = x.type.numel // known
    if math.prod(shape) != x.type.numel:
        raise ctx.unsupported(f"cannot reshape {list(x.type.shape)} to {target}", "fix the model")
    return [_reshape(ctx, x, shape)]


@converts("Flatten")
def _flatten(ctx, node):
    x = _runtime_input(ctx, node)
    axis = node.attrs.get("axis", 1)
    axis = axis + x.type.rank if axis < 0 else axis
    shape = x.type.shape
    return [_reshape(ctx, x, [math.prod(shape[:axis]), math.prod(shape[axis:])])]


def _axes_input_or_attr(ctx: ImportContext, node: Node) -> list[int] | None:
    if "axes" in node.attrs:
        return list(node.attrs["axes"])
    axes = ctx.constant(1, "axes")
    return None if axes is None else [int(a) for a in axes.reshape(-1)]


@converts("Squeeze")
def _squeeze(ctx, node):
    x = _runtime_input(ctx, node)
    shape = x.type.shape
    axes = _axes_input_or_attr(ctx, node)
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else \
        [_axis(ctx, a, len(shape)) for a in axes]
    if any(shape[a] != 1 for a in axes):
        raise ctx.unsupported(f"squeezes axes {axes} of shape {list(shape)}, which are not all 1",
                              "fix the model")
    return [_reshape(ctx, x, [d for i, d in enumerate(shape) if i not in axes])]


@converts("Unsqueeze")
def _unsqueeze(ctx, node):
    x = _runtime_input(ctx, node)
    axes = _axes_input_or_attr(ctx, node) or []
    rank = x.type.rank + len(axes)
    axes = sorted(_axis(ctx, a, rank) for a in axes)
    dims = iter(x.type.shape)
    return [_reshape(ctx, x, [1 if i in axes else next(dims) for i in range(rank)])]


@converts("Transpose")
def _transpose(ctx, node):
    x = _runtime_input(ctx, node)
    perm = node.attrs.get("perm", list(range(x.type.rank))[::-1])
    return [ctx.emit1("transpose", [x], {"perm": [int(p) for p in perm]})]


@converts("Concat")
def _concat(ctx, node):
    parts = [x for x in node.inputs if x is not None and math.prod(ctx.shape(x)) > 0]
    rank = len(ctx.shape(parts[0]))
    axis = _axis(ctx, node.attrs["axis"], rank)
    if len(parts) == 1:
        return [ctx.value(parts[0])]
    return [ctx.emit1("concat", parts, {"axis": axis})]


@converts("Split")
def _split(ctx, node):
    x = _runtime_input(ctx, node)
    axis = _axis(ctx, node.attrs.get("axis", 0), x.type.rank)
    dim = x.type.shape[axis]
    sizes = ctx.constant(1, "split sizes")
    if sizes is not None:
        sizes = [int(s) for s in sizes.reshape(-1)]
    elif "split" in node.attrs:
        sizes = list(node.attrs["split"])
    else:
        pieces = node.attrs.get("num_outputs", len(node.outputs))
        chunk = -(-dim // pieces)
        sizes = [min(chunk, dim - k * chunk) for k in range(pieces)]
    if sum(sizes) != dim or len(sizes) != len(node.outputs):
        raise ctx.unsupported(f"split sizes {sizes} do not cut axis {axis} (size {dim}) into "
                              f"{len(node.outputs)} outputs", "fix the model")
    names = [o or f"{node.label}_{k}" for k, o in enumerate(node.outputs)]
    return ctx.emit("split", [x], {"axis": axis, "sizes": sizes}, names=names)


@converts("Slice")
def _slice(ctx, node):
    x = _runtime_input(ctx, node)
    shape = x.type.shape
    starts = [int(s) for s in ctx.constant(1, "starts").reshape(-1)]
    ends = [int(e) for e in ctx.constant(2, "ends").reshape(-1)]
    axes = ctx.constant(3, "axes", np.arange(len(starts)))
    steps = ctx.constant(4, "steps", np.ones(len(starts), dtype=np.int64))
    axes = [_axis(ctx, int(a), len(shape)) for a in axes.reshape(-1)]
    steps = [int(s) for s in steps.reshape(-1)]
    if 0 in steps:
        raise ctx.unsupported("a slice step is 0", "fix the model")

    # ONNX clamps out-of-range indices exactly as Python slicing does; bounding them to
    # [-dim-1, dim] keeps that meaning and keeps INT64_MAX sentinels out of the IR.
    def bound(v, dim):
        return max(-dim - 1, min(dim, v))
    starts = [bound(s, shape[a]) for s, a in zip(starts, axes)]
    ends = [bound(e, shape[a]) for e, a in zip(ends, axes)]
    return [ctx.emit1("slice", [x], {"starts": starts, "ends": ends, "axes": axes, "steps": steps})]


# -- elementwise --------------------------------------------------------------------------------

@converts("Add", "Sub", "Mul")
def _binary(ctx, node):
    a, b = node.input(0), node.input(1)
    if node.op_type != "Sub" and isinstance(a, np.ndarray) and isinstance(b, Value):
        a, b = b, a  # commutative: constants go second, where fusion passes look for a bias
    return [ctx.emit1(node.op_type.lower(), [a, b])]


@converts("Div")
def _div(ctx, node):
    # tfc divides only by constants, as a multiplication by the reciprocal. A quantizer may have
    # wrapped the constant divisor in DequantizeLinear; that is still known at compile time.
    divisor = _dequantized_constant(node.input(1))
    if divisor is None:
        divisor = ctx.constant(1, "divisor")
    with np.errstate(divide="ignore"):
        reciprocal = ctx.derived((np.float32(1) / divisor.astype(np.float32)).astype(np.float32),
                                 divisor)
    return [ctx.emit1("mul", [node.input(0), reciprocal])]


def _dequantized_constant(item) -> np.ndarray | None:
    """The float value of `dequantize(const)`, else None."""
    if not isinstance(item, Value) or item.producer is None or item.producer.name != "dequantize":
        return None
    source = item.producer.operands[0]
    if const_value(source) is None:
        return None
    from tfc.ir.interp import run_op

    return run_op(item.producer, [const_value(source)])[0]


@converts("Relu")
def _relu(ctx, node):
    return [ctx.emit1("relu", [_runtime_input(ctx, node)])]


@converts("Clip")
def _clip(ctx, node):
    x = _runtime_input(ctx, node)
    attrs = {}
    for i, key in ((1, "min"), (2, "max")):
        bound = ctx.constant(i, key)
        if bound is None and key in node.attrs:  # opset < 11 spelling
            bound = np.asarray(node.attrs[key])
        if bound is not None:
            attrs[key] = float(bound.reshape(()))
    return [ctx.emit1("clip", [x], attrs)]


# -- spatial ops --------------------------------------------------------------------------------

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _window_attrs(ctx: ImportContext, node: Node, in_hw, kernel) -> dict:
    """strides, pads ([top, left, bottom, right]) and dilations of a 2-D window op."""
    strides = list(node.attrs.get("strides", [1, 1]))
    dilations = list(node.attrs.get("dilations", [1, 1]))
    auto_pad = node.attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in _AUTO_PADS:
        raise ctx.unsupported(f"auto_pad '{auto_pad}' is not a valid value",
                              f"use one of {', '.join(_AUTO_PADS)}")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
        pads = begins + ends
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    else:
        pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
    return {"strides": strides, "pads": pads, "dilations": dilations, "layout": "nchw"}


def _as_2d(ctx: ImportContext, node: Node, x: Value) -> tuple[Value, Node, bool]:
    """1-D window ops run as 2-D ones over [N, C, 1, L]; returns (x, node with 2-D attrs, was_1d)."""
    if x.type.rank == 4:
        return x, node, False
    if x.type.rank != 3:
        raise ctx.unsupported(f"a {x.type.rank - 2}-D {node.op_type} over shape {list(x.type.shape)}",
                              "tfc supports 1-D and 2-D windows (inputs of rank 3 or 4)")
    n, c, length = x.type.shape
    attrs = dict(node.attrs)
    for key in ("kernel_shape", "strides", "dilations"):
        if key in attrs:
            attrs[key] = [1] + list(attrs[key])
    if "pads" in attrs:
        attrs["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
    x4 = _reshape(ctx, x, [n, c, 1, length], names=f"{x.name}_2d")
    return x4, Node(node.proto, node.inputs, attrs), True


def _from_2d(ctx: ImportContext, y: Value, was_1d: bool) -> Value:
    if not was_1d:
        return y
    n, c, _, length = y.type.shape
    y.name = ctx.graph.unique_name(f"{y.name}_2d")
    return _reshape(ctx, y, [n, c, length])


@converts("Conv")
def _conv(ctx, node):
    x, node4, was_1d = _as_2d(ctx, node, _runtime_input(ctx, node))
    w = node.input(1)
    if was_1d:
        w = _weight_transform(ctx, w, lambda a: a[:, :, None, :], lambda ax: ax)
        if w is None:
            raise ctx.unsupported("1-D convolution with run-time weights", "make the weights constant")
    kernel = list(ctx.shape(w)[2:])
    attrs = _window_attrs(ctx, node4, x.type.shape[2:], kernel)
    attrs["group"] = int(node.attrs.get("group", 1))
    operands = [x, w] + ([node.input(2)] if node.input(2) is not None else [])
    return [_from_2d(ctx, ctx.emit1("conv2d", operands, attrs), was_1d)]


def _pool(ctx: ImportContext, node: Node, op_name: str, extra: dict) -> list[Item]:
    x, node4, was_1d = _as_2d(ctx, node, _runtime_input(ctx, node))
    kernel = list(node4.attrs["kernel_shape"])
    attrs = _window_attrs(ctx, node4, x.type.shape[2:], kernel)
    attrs.update(kernel=kernel, ceil_mode=bool(node.attrs.get("ceil_mode", 0)), **extra)
    return [_from_2d(ctx, ctx.emit1(op_name, [x], attrs), was_1d)]


@converts("MaxPool")
def _maxpool(ctx, node):
    _no_extra_outputs(ctx, node, 1, "Indices")
    return _pool(ctx, node, "maxpool2d", {})


@converts("AveragePool")
def _avgpool(ctx, node):
    return _pool(ctx, node, "avgpool2d",
                 {"count_include_pad": bool(node.attrs.get("count_include_pad", 0))})


@converts("GlobalAveragePool")
def _global_avgpool(ctx, node):
    x = _runtime_input(ctx, node)
    if x.type.rank == 4:
        return [ctx.emit1("global_avgpool", [x], {"layout": "nchw"})]
    axes = list(range(2, x.type.rank))
    return [ctx.emit1("reduce_mean", [x], {"axes": axes, "keepdims": True})]


@converts("GlobalMaxPool")
def _global_maxpool(ctx, node):
    x = _runtime_input(ctx, node)
    if x.type.rank != 4:
        raise ctx.unsupported(f"GlobalMaxPool over rank {x.type.rank}", "use a rank-4 input")
    hw = list(x.type.shape[2:])
    return [ctx.emit1("maxpool2d", [x], {"kernel": hw, "strides": [1, 1], "pads": [0, 0, 0, 0],
                                         "dilations": [1, 1], "layout": "nchw"})]


@converts("ReduceMean")
def _reduce_mean(ctx, node):
    x = _runtime_input(ctx, node)
    axes = _axes_input_or_attr(ctx, node)
    if not axes:
        if node.attrs.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.type.rank))
    axes = sorted({_axis(ctx, a, x.type.rank) for a in axes})
    return [ctx.emit1("reduce_mean", [x], {"axes": axes,
                                            "keepdims": bool(node.attrs.get("keepdims", 1))})]


@converts("BatchNormalization")
def _batchnorm(ctx, node):
    if node.attrs.get("training_mode", 0):
        raise ctx.unsupported("training_mode=1", "export the model in eval mode (model.eval())")
    _no_extra_outputs(ctx, node, 1, "running_mean/running_var")
    x = _runtime_input(ctx, node)
    attrs = {"epsilon": float(node.attrs.get("epsilon", 1e-5))}
    if x.type.rank == 4:
        attrs["layout"] = "nchw"
    return [ctx.emit1("batchnorm", node.inputs[:5], attrs)]
