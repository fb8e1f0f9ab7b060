"""Converters for matrix products, normalization, softmax and the QDQ quantization ops.

These register into `frontends.onnx_ops.CONVERTERS` like the others; they live apart because
they share the weight-layout and quantization helpers.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from frontends.onnx_import import ImportContext, Item, Node
from frontends.onnx_ops import (_axis, _no_extra_outputs, _reshape, _runtime_input, _weight_transform,
                                converts, is_constant_weight)
from tfc.ir.core import Value
from tfc.ir.types import Quant, TensorType


# -- matrix products ----------------------------------------------------------------------------

def _transposed_weight(ctx: ImportContext, b: Item) -> Item | None:
    """A constant [in, out] weight as [out, in] (linear's layout), through QDQ too; else None."""
    if len(ctx.shape(b)) != 2:
        return None
    return _weight_transform(ctx, b, lambda a: a.T, lambda axis: 1 - axis)


@converts("MatMul")
def _matmul(ctx, node):
    a, b = node.input(0), node.input(1)
    a_shape, b_shape = ctx.shape(a), ctx.shape(b)
    out_name = node.outputs[0]
    # 1-D operands are promoted to matrices and the added axis removed again (numpy rules).
    squeeze_rows = len(a_shape) == 1
    squeeze_cols = len(b_shape) == 1
    if squeeze_rows:
        a = _reshape(ctx, a, [1, a_shape[0]], names=f"{out_name}_lhs")
    if squeeze_cols:
        b = b.reshape(-1, 1) if isinstance(b, np.ndarray) else \
            _reshape(ctx, b, [b_shape[0], 1], names=f"{out_name}_rhs")
    weight = _transposed_weight(ctx, b) if isinstance(a, Value) else None
    reshaped = squeeze_rows or squeeze_cols
    names = f"{out_name}_2d" if reshaped else None
    if weight is not None:
        y = ctx.emit1("linear", [a, weight], names=names)
    else:
        y = ctx.emit1("matmul", [a, b], names=names)
    if reshaped:
        shape = list(y.type.shape)
        if squeeze_cols:
            shape.pop(-1)
        if squeeze_rows:
            shape.pop(-1 if squeeze_cols else -2)
        y = _reshape(ctx, y, shape)
    return [y]


@converts("Gemm")
def _gemm(ctx, node):
    a = _runtime_input(ctx, node)
    alpha = float(node.attrs.get("alpha", 1.0))
    beta = float(node.attrs.get("beta", 1.0))
    if node.attrs.get("transA", 0):
        a = ctx.emit1("transpose", [a], {"perm": [1, 0]}, names=f"{node.outputs[0]}_at")
    b = node.input(1)
    if not is_constant_weight(b):
        ctx.constant(1, "B operand")  # raises: products of two activations are MatMuls
    weight = b if node.attrs.get("transB", 0) else _transposed_weight(ctx, b)
    scale_after = alpha != 1.0 and not isinstance(weight, np.ndarray)
    if isinstance(weight, np.ndarray) and alpha != 1.0:
        weight = ctx.derived((weight * np.float32(alpha)).astype(np.float32), weight)
    n_out = ctx.shape(weight)[0]
    c = node.input(2)
    bias, add_after = None, None
    if c is not None:
        if isinstance(c, np.ndarray):
            c = (c * np.float32(beta)).astype(np.float32)
            if c.size in (1, n_out) and c.ndim <= 2 and (c.ndim < 2 or c.shape[0] == 1):
                bias = np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (n_out,)))
            else:
                add_after = c
        elif c.type.shape == (n_out,) and beta == 1.0 and not scale_after:
            bias = c
        else:
            add_after = c if beta == 1.0 else ctx.emit1("mul", [c, np.float32(beta)],
                                                          names=f"{node.outputs[0]}_c")
    if scale_after or add_after is not None:
        y = ctx.emit1("linear", [a, weight] + ([bias] if bias is not None else []),
                      names=f"{node.outputs[0]}_ab")
        if scale_after:
            y = ctx.emit1("mul", [y, np.float32(alpha)],
                          names=f"{node.outputs[0]}_scaled" if add_after is not None else None)
        if add_after is not None:
            y = ctx.emit1("add", [y, add_after])
        return [y]
    return [ctx.emit1("linear", [a, weight] + ([bias] if bias is not None else []))]


# -- normalization and softmax ------------------------------------------------------------------

def _per_feature(ctx: ImportContext, item: Item | None, feature_shape, fill: float, what: str):
    """gamma or beta as a flat [C] operand (C = prod(feature_shape))."""
    size = math.prod(feature_shape)
    if item is None:
        return np.full(size, fill, dtype=np.float32)
    if isinstance(item, np.ndarray):
        if item.shape == (size,) and item.dtype == np.float32:
            return item
        try:
            return ctx.derived(np.ascontiguousarray(
                np.broadcast_to(item.astype(np.float32), feature_shape).reshape(size)), item)
        except ValueError:
            raise ctx.unsupported(f"{what} of shape {list(item.shape)} does not broadcast to the "
                                  f"normalized shape {list(feature_shape)}", "fix the model") from None
    if item.type.shape == (size,):
        return item
    if item.type.numel == size:
        return _reshape(ctx, item, [size], names=f"{item.name}_flat")
    raise ctx.unsupported(f"run-time {what} %{item.name} of shape {list(item.type.shape)}",
                          f"give it the normalized shape {list(feature_shape)}")


@converts("LayerNormalization")
def _layernorm(ctx, node):
    _no_extra_outputs(ctx, node, 1, "Mean/InvStdDev")
    x = _runtime_input(ctx, node)
    shape = x.type.shape
    axis = _axis(ctx, node.attrs.get("axis", -1), len(shape))
    features = shape[axis:]
    gamma = _per_feature(ctx, node.input(1), features, 1.0, "scale")
    beta = _per_feature(ctx, node.input(2), features, 0.0, "bias")
    attrs = {"axis": -1, "epsilon": float(node.attrs.get("epsilon", 1e-5))}
    if axis == len(shape) - 1:
        return [ctx.emit1("layernorm", [x, gamma, beta], attrs)]
    # Normalizing over several trailing axes is normalizing over one flattened axis.
    out = node.outputs[0]
    flat = _reshape(ctx, x, list(shape[:axis]) + [math.prod(features)], names=f"{out}_flat")
    y = ctx.emit1("layernorm", [flat, gamma, beta], attrs, names=f"{out}_norm")
    return [_reshape(ctx, y, shape)]


@converts("Softmax")
def _softmax(ctx, node):
    x = _runtime_input(ctx, node)
    rank = x.type.rank
    axis = _axis(ctx, node.attrs.get("axis", -1), rank)
    if axis == rank - 1:
        return [ctx.emit1("softmax", [x], {"axis": -1})]
    # The IR's softmax runs over the last axis: swap the softmax axis there and back.
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    out = node.outputs[0]
    moved = ctx.emit1("transpose", [x], {"perm": perm}, names=f"{out}_in")
    y = ctx.emit1("softmax", [moved], {"axis": -1}, names=f"{out}_last")
    return [ctx.emit1("transpose", [y], {"perm": perm})]


# -- quantization -------------------------------------------------------------------------------

def _quant_of(ctx: ImportContext, node: Node, data_shape, stored_dtype: str) -> Quant:
    """The Quant described by a Q/DQ node's scale and zero point inputs."""
    if node.attrs.get("block_size", 0):
        raise ctx.unsupported("blocked quantization (block_size)", "quantize per tensor or per "
                              "channel")
    scale = ctx.constant(1, "scale").astype(np.float32)
    zero_point = ctx.constant(2, "zero point")
    if zero_point is None:
        zero_point = np.zeros(scale.shape, dtype=np.int32 if stored_dtype == "i32" else np.int8)
    if stored_dtype == "i8" and zero_point.dtype != np.int8:
        kind = onnx.helper.np_dtype_to_tensor_dtype(zero_point.dtype)
        raise ctx.unsupported(f"{onnx.TensorProto.DataType.Name(kind)} quantization", "tfc runs int8: "
                              "quantize with activation_type=QuantType.QInt8 and "
                              "weight_type=QuantType.QInt8")
    if scale.size == 1:
        return Quant.per_tensor(float(scale.reshape(())), int(zero_point.reshape(-1)[0]))
    axis = _axis(ctx, node.attrs.get("axis", 1), len(data_shape))
    return Quant(tuple(scale.reshape(-1).tolist()),
                 tuple(np.broadcast_to(zero_point.reshape(-1), scale.shape).tolist()), axis)


@converts("QuantizeLinear")
def _quantize(ctx, node):
    x = _runtime_input(ctx, node)
    output_dtype = node.attrs.get("output_dtype", 0)
    if node.input(2) is None and output_dtype != onnx.TensorProto.INT8:
        raise ctx.unsupported("UINT8 quantization (no zero point given)", "tfc runs int8: quantize "
                              "with activation_type=QuantType.QInt8")
    quant = _quant_of(ctx, node, x.type.shape, "i8")
    if not quant.is_per_tensor:
        raise ctx.unsupported("per-axis quantization of a run-time tensor", "quantize activations "
                              "per tensor")
    return ctx.emit("quantize", [x], result_types=[TensorType(x.type.shape, "i8", quant)])


@converts("DequantizeLinear")
def _dequantize(ctx, node):
    x = node.input(0)
    if isinstance(x, np.ndarray):
        stored = {np.dtype(np.int8): "i8", np.dtype(np.int32): "i32"}.get(x.dtype)
        if stored is None:
            raise ctx.unsupported(f"{x.dtype} quantization of constant '{node.proto.input[0]}'",
                                  "tfc runs int8 (int32 biases): quantize with activation_type="
                                  "QuantType.QInt8 and weight_type=QuantType.QInt8")
        quant = _quant_of(ctx, node, x.shape, stored)
        x = ctx.value(x, node.proto.input[0], quant=quant)
    else:
        quant = _quant_of(ctx, node, x.type.shape, x.type.dtype)
        if x.type.quant != quant:
            raise ctx.unsupported(f"its scale/zero point differ from those of %{x.name} "
                                  f"({x.type.quant})", "give the QuantizeLinear/DequantizeLinear "
                                  "pair the same parameters")
    return ctx.emit("dequantize", [x], result_types=[TensorType(x.type.shape, "f32")])
