"""Lowering of the elementwise, requantization, pooling and mean ops to runtime kernels.

Everything that depends only on shapes and quantization is decided here, at compile time:

- add/sub: the zero points, the rounding half and the output zero point fold into one bias and
  sub negates b's multiplier, so the kernel (runtime/tfc_elementwise.c) does two MLAs and one
  saturating shift per element. Same-shape contiguous operands call `tfc_add_s8_contig` (no walk);
  anything else walks rows, and the kernel picks a tight loop per row where an operand is
  contiguous or constant along it (a channel broadcast, a scalar).
- requantize: an int8 -> int8 map, so the compiler tabulates it (256 bytes of flash,
  quant_math.requantize_table) and the kernel does one table load per element.
- pooling and means: window geometry and reduce walks (runtime/tfc_pool.c).
"""

from __future__ import annotations

from tfc.errors import UnsupportedOpError
from tfc.ir.core import Op
from tfc.ir.quant_math import ADD_MAX_SHIFT, ADD_MULTIPLIER_BITS, requantize_table

__all__ = ["ELEMENTWISE_LOWERINGS", "add_bias"]


def add_bias(attrs: dict, sign: int) -> int:
    """The kernel's bias: 2^(shift-1) + output_zp * 2^shift - a_zp * a_mult - sign * b_zp * b_mult,
    so that (a * a_mult + b * sign * b_mult + bias) >> shift == the op's output before the clamp."""
    shift = attrs["shift"]
    return ((1 << (shift - 1)) + (attrs["output_zp"] << shift) - attrs["a_zp"] * attrs["a_multiplier"]
            - sign * attrs["b_zp"] * attrs["b_multiplier"])


def _check_add_attrs(op: Op) -> None:
    a = op.attrs
    limit = 1 << ADD_MULTIPLIER_BITS
    if not 1 <= a["shift"] <= ADD_MAX_SHIFT or max(abs(a["a_multiplier"]), abs(a["b_multiplier"])) >= limit:
        raise UnsupportedOpError(f"{op.where()}: the int8 add needs 1 <= shift <= {ADD_MAX_SHIFT} "
                                 f"and multipliers below 2^{ADD_MULTIPLIER_BITS}; recompute them "
                                 f"with quant_math.add_multipliers")
    for key in ("a_zp", "b_zp", "output_zp"):
        if not -128 <= a[key] <= 127:
            raise UnsupportedOpError(f"{op.where()}: {key} = {a[key]} is outside int8; give "
                                     f"int8 zero points")


def _add_quant(op: Op) -> str:
    from tfc.backends.cortex_m7.kernels import _act_range, c_struct

    _check_add_attrs(op)
    sign = -1 if op.name == "sub" else 1
    a = op.attrs
    lo, hi = _act_range(op)
    return c_struct("tfc_add_quant", a_multiplier=a["a_multiplier"],
                    b_multiplier=sign * a["b_multiplier"], bias=add_bias(a, sign),
                    shift=a["shift"], act_min=lo, act_max=hi)


def _mul_quant(op: Op) -> str:
    from tfc.backends.cortex_m7.kernels import _act_range, c_struct

    a = op.attrs
    lo, hi = _act_range(op)
    return c_struct("tfc_binary_quant", a_zp=a["a_zp"], b_zp=a["b_zp"], output_zp=a["output_zp"],
                    multiplier=a["multiplier"], shift=a["shift"], act_min=lo, act_max=hi)


def _same_shape(op: Op) -> bool:
    shapes = {v.type.shape for v in (*op.operands, op.result)}
    return len(shapes) == 1


def _elementwise_binary(op: Op, ctx) -> list:
    from tfc.backends.cortex_m7.kernels import KernelCall, _broadcast, _float_act, _kind

    kind = _kind(op)
    if op.operands[1].type.dtype != kind:
        raise UnsupportedOpError(f"{op.where()}: operands are {kind} and "
                                 f"{op.operands[1].type.dtype}; both must have the same dtype")
    a, b, y = ctx.buf(op.operands[0]), ctx.buf(op.operands[1]), ctx.buf(op.result)
    if kind == "f32":
        return [KernelCall(f"tfc_{op.name}_f32", (a, b, y, _broadcast(op)) + _float_act(op))]
    if op.name == "mul":
        return [KernelCall("tfc_mul_s8", (a, b, y, _broadcast(op), _mul_quant(op)))]
    if _same_shape(op):
        return [KernelCall("tfc_add_s8_contig", (a, b, y, str(op.result.type.numel), _add_quant(op)))]
    return [KernelCall("tfc_add_s8", (a, b, y, _broadcast(op), _add_quant(op)))]


def _requantize(op: Op, ctx) -> list:
    from tfc.backends.cortex_m7.kernels import KernelCall, _act_range, _kind

    _kind(op, allowed=("i8",))
    a = op.attrs
    lo, hi = _act_range(op)
    table = requantize_table(a["input_zp"], a["output_zp"], a["multiplier"], a["shift"], lo, hi)
    symbol = ctx.const_array(f"{op.result.name}_table", table)
    return [KernelCall("tfc_lookup_s8", (ctx.buf(op.operands[0]), ctx.buf(op.result),
                                         str(op.result.type.numel), symbol))]


def _maxpool2d(op: Op, ctx) -> list:
    from tfc.backends.cortex_m7.kernels import KernelCall, _kind, _require_nhwc, _suffix, _window

    kind = _kind(op)
    _require_nhwc(op)
    geometry = _window(op, op.attrs["kernel"], op.result.type.shape[3])
    return [KernelCall(f"tfc_maxpool2d_{_suffix(kind)}",
                       (ctx.buf(op.operands[0]), ctx.buf(op.result), geometry))]


def _avgpool2d(op: Op, ctx) -> list:
    from tfc.backends.cortex_m7.kernels import (KernelCall, _kind, _require_nhwc, _tensor_quant,
                                                _window)

    kind = _kind(op)
    _require_nhwc(op)
    geometry = _window(op, op.attrs["kernel"], op.result.type.shape[3])
    args = (ctx.buf(op.operands[0]), ctx.buf(op.result), geometry,
            "1" if op.attr("count_include_pad", False) else "0")
    if kind == "i8":
        return [KernelCall("tfc_avgpool2d_s8", args + (_tensor_quant(op),))]
    return [KernelCall("tfc_avgpool2d_f32", args)]


def _mean_over(op: Op, ctx, axes) -> list:
    """A mean over `axes` of the operand; the result (keepdims or not) is contiguous."""
    from tfc.backends.cortex_m7.kernels import (KernelCall, _check_rank, _kind, _merge_dims,
                                                _tensor_quant, c_ints, c_struct)
    from tfc.ir.types import row_major_strides

    kind = _kind(op)
    shape = op.operands[0].type.shape
    natural = row_major_strides(shape)
    keep = [i for i in range(len(shape)) if i not in axes]
    outer_dims, outer_strides = _merge_dims([shape[i] for i in keep], [natural[i] for i in keep])
    reduce_dims, reduce_strides = _merge_dims([shape[i] for i in axes], [natural[i] for i in axes])
    _check_rank(op, max(len(outer_dims), len(reduce_dims)))
    walk = c_struct("tfc_reduce_shape", outer_rank=len(outer_dims), outer_dims=c_ints(outer_dims),
                    outer_strides=c_ints(outer_strides), reduce_rank=len(reduce_dims),
                    reduce_dims=c_ints(reduce_dims), reduce_strides=c_ints(reduce_strides))
    if kind == "i8":
        columns = _column_form(outer_dims, outer_strides, reduce_dims, reduce_strides)
        if columns is not None:  # SIMD column sums, about one instruction per element
            return [KernelCall("tfc_reduce_mean_columns_s8",
                               (ctx.buf(op.operands[0]), ctx.buf(op.result),
                                *(str(v) for v in columns), _tensor_quant(op)))]
    args = (ctx.buf(op.operands[0]), ctx.buf(op.result), walk)
    if kind == "i8":
        return [KernelCall("tfc_reduce_mean_s8", args + (_tensor_quant(op),))]
    return [KernelCall("tfc_reduce_mean_f32", args)]


def _column_form(outer_dims, outer_strides, reduce_dims, reduce_strides):
    """(outer, rows, channels) when the merged walk is x[outer][rows][channels] reduced over rows
    (the reduced axes sit just before contiguous kept ones), else None."""
    channels, rows = outer_dims[-1], reduce_dims[0]
    if outer_strides[-1] != 1 or len(reduce_dims) != 1 or reduce_strides[0] != channels:
        return None
    if len(outer_dims) == 1:
        return 1, rows, channels
    if len(outer_dims) == 2 and outer_strides[0] == rows * channels:
        return outer_dims[0], rows, channels
    return None


def _global_avgpool(op: Op, ctx) -> list:
    axes = [1, 2] if op.attr("layout", "nchw") == "nhwc" else [2, 3]
    return _mean_over(op, ctx, axes)


def _reduce_mean(op: Op, ctx) -> list:
    rank = op.operands[0].type.rank
    return _mean_over(op, ctx, sorted({ax % rank for ax in op.attrs["axes"]}))


ELEMENTWISE_LOWERINGS = {
    "add": _elementwise_binary, "sub": _elementwise_binary, "mul": _elementwise_binary,
    "requantize": _requantize, "maxpool2d": _maxpool2d, "avgpool2d": _avgpool2d,
    "global_avgpool": _global_avgpool, "reduce_mean": _reduce_mean,
}
