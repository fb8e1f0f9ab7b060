"""Per-op lowering rules: one IR op -> the runtime kernel calls that compute it.

The emitter walks the final graph (layout nhwc, int8 or float32) and, for each op, asks
`lower_op(op, ctx)` for a list of `KernelCall`s, which it writes into model.c in order. All the
arithmetic on shapes happens here (window geometry, broadcast strides, merged dims), so the C
kernels in `runtime/` stay generic and the generated call reads as a self-describing literal:

    tfc_conv2d_s8(in0, w_conv1, w_conv1_bias, ((int8_t *)(arena + 0)),
                  &(const tfc_window){.batch = 1, .in_h = 8, ...},
                  &(const tfc_channel_quant){.input_zp = -3, ...});

`ctx` is the emitter's: `ctx.buf(value)` is a typed C pointer expression to a value's data and
`ctx.const_array(hint, array)` stores an array in weights.c and returns its symbol.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from tfc.backends.cortex_m7.dense_lowering import dense_scratch_bytes, lower_dense
from tfc.backends.cortex_m7.elementwise_lowering import ELEMENTWISE_LOWERINGS
from tfc.backends.cortex_m7.matmul_lowering import lower_matmul, matmul_scratch_bytes
from tfc.errors import UnsupportedOpError
from tfc.ir.core import Op, Value
from tfc.ir.ops import require_last_axis
from tfc.ir.quant_math import high_word_requant, scaled_layernorm_xn_bits
from tfc.ir.types import Quant, row_major_strides

RUNTIME_DIR = Path(__file__).parent / "runtime"
RUNTIME_HEADER = "tfc_runtime.h"
MAX_RANK = 8  # TFC_MAX_RANK in tfc_runtime.h

__all__ = ["KernelCall", "LOWERINGS", "RUNTIME_DIR", "is_view", "lower_op", "runtime_symbols"]


@dataclass(frozen=True)
class KernelCall:
    """One call statement: `fn(args...);` with each argument a C expression."""

    fn: str
    args: tuple[str, ...]

    def render(self) -> str:
        return f"{self.fn}({', '.join(self.args)});"


class LoweringContext(Protocol):
    def buf(self, value: Value) -> str: ...

    def const_array(self, hint: str, array: np.ndarray) -> str: ...


Lowering = Callable[[Op, LoweringContext], list[KernelCall]]


def lower_op(op: Op, ctx: LoweringContext) -> list[KernelCall]:
    """The kernel calls that compute `op`; UnsupportedOpError when no kernel does."""
    from tfc.backends.cortex_m7.sparse_lowering import lower_sparse

    sparse = lower_sparse(op, ctx)  # weights stored brle by sparse-storage: compute on the stream
    if sparse is not None:
        return sparse
    rule = LOWERINGS.get(op.name)
    if rule is None:
        raise UnsupportedOpError(f"{op.where()} has no Cortex-M7 kernel; ops with kernels: "
                                 f"{', '.join(sorted(LOWERINGS))}")
    return rule(op, ctx)


def is_view(op: Op) -> bool:
    """True when the emitter aliases this op's result to its operand and calls no kernel."""
    from tfc.passes.memory_plan import is_view as planned_view

    return planned_view(op)


# Kernel scratch (bytes) per op kind: memory-plan places it in the arena, shared between layers,
# and `ctx.scratch(n)` hands it out. A kernel that needs scratch declares its size here.
SCRATCH_RULES: dict[str, Callable[[Op], int]] = {
    "conv2d": dense_scratch_bytes, "linear": dense_scratch_bytes,  # dense_lowering.py's kernels
    "matmul": matmul_scratch_bytes,  # matmul_lowering.py: the int16 operand panels
    "layernorm": lambda op: _layernorm_scratch_bytes(op),  # a row's codes as int16 lanes
}


def scratch_bytes(op: Op) -> int:
    """The scratch bytes the kernel for `op` needs (recorded by the m7-kernel-scratch pass)."""
    from tfc.backends.cortex_m7.sparse_lowering import sparse_scratch_bytes

    sparse = sparse_scratch_bytes(op)  # None unless the weights are stored brle
    if sparse is not None:
        return sparse
    rule = SCRATCH_RULES.get(op.name)
    return int(rule(op)) if rule is not None else 0


def runtime_symbols() -> list[str]:
    """Every extern function the runtime defines (for the per-model namespace header)."""
    text = (RUNTIME_DIR / RUNTIME_HEADER).read_text()
    return sorted(set(re.findall(r"^(?!static)[A-Za-z_][\w \*]*?\b(tfc_\w+)\(", text, re.M)))


# -- C literals ---------------------------------------------------------------------------------

def c_float(x: float) -> str:
    if math.isinf(x):
        return "INFINITY" if x > 0 else "-INFINITY"
    text = f"{float(np.float32(x)):.9g}"
    if not any(ch in text for ch in ".en"):
        text += ".0"
    return text + "f"


def c_ints(values) -> str:
    """A compound-literal int32 array (for short shape and stride lists)."""
    return "(const int32_t[]){" + ", ".join(str(int(v)) for v in values) + "}"


def c_floats(values) -> str:
    return "(const float[]){" + ", ".join(c_float(v) for v in values) + "}"


def c_struct(ctype: str, **fields) -> str:
    """A pointer to a compound-literal descriptor: `&(const T){.a = 1, ...}`."""
    body = ", ".join(f".{k} = {v}" for k, v in fields.items())
    return f"&(const {ctype}){{{body}}}"


def _ptr(ctx: LoweringContext, v: Value, offset_elems: int = 0) -> str:
    base = ctx.buf(v)
    return base if offset_elems == 0 else f"({base} + {offset_elems})"


# -- shape arithmetic ---------------------------------------------------------------------------

def _merge_dims(dims, *stride_lists):
    """Drops size-1 dims and merges neighbours every stride list walks contiguously.

    Returns (dims, strides...) with at least one dim, so C never sees an empty array.
    """
    kept = [(d, [s[i] for s in stride_lists]) for i, d in enumerate(dims) if d != 1]
    merged: list[tuple[int, list[int]]] = []
    for d, ss in kept:
        if merged and all(prev_s == s * d for prev_s, s in zip(merged[-1][1], ss)):
            merged[-1] = (merged[-1][0] * d, ss)
        else:
            merged.append((d, ss))
    if not merged:
        merged = [(1, [0] * len(stride_lists))]
    return ([d for d, _ in merged],) + tuple([ss[k] for _, ss in merged] for k in range(len(stride_lists)))


def _check_rank(op: Op, rank: int) -> None:
    if rank > MAX_RANK:
        raise UnsupportedOpError(f"{op.where()} needs a {rank}-dimensional walk; the runtime "
                                 f"handles {MAX_RANK}; reshape to fewer dimensions")


def _broadcast_strides(in_shape, out_shape) -> list[int]:
    """Element strides of an input walked along the (broadcast) output shape; 0 where it repeats."""
    pad = len(out_shape) - len(in_shape)
    full = [1] * pad + list(in_shape)
    natural = row_major_strides(full)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(full, out_shape, natural)]


# -- dtype dispatch -----------------------------------------------------------------------------

def _kind(op: Op, *, allowed=("i8", "f32")) -> str:
    """'i8' or 'f32' from the first operand; anything else is not supported."""
    dtype = op.operands[0].type.dtype
    if dtype not in allowed:
        raise UnsupportedOpError(f"{op.where()}: no Cortex-M7 kernel for {dtype} operands; "
                                 f"supported: {', '.join(allowed)}")
    return dtype


def _suffix(kind: str) -> str:
    return "s8" if kind == "i8" else "f32"


def _float_act(op: Op) -> tuple[str, str]:
    """The fused activation of a float op as clamp bounds."""
    act = op.attr("act", "none")
    if act == "none":
        return "-INFINITY", "INFINITY"
    if act == "relu":
        return "0.0f", "INFINITY"
    if act == "relu6":
        return "0.0f", "6.0f"
    if act == "clip":
        lo, hi = op.attr("act_min"), op.attr("act_max")
        return (c_float(-math.inf if lo is None else lo), c_float(math.inf if hi is None else hi))
    raise UnsupportedOpError(f"{op.where()}: unknown act '{act}'; use none, relu, relu6 or clip")


def _act_range(op: Op) -> tuple[int, int]:
    return int(op.attr("act_min", -128)), int(op.attr("act_max", 127))


def _per_channel(ctx: LoweringContext, op: Op, key: str, channels: int) -> str:
    """A per-channel int32 attribute (a single value applies to every channel) in weights.c."""
    values = list(op.attrs[key])
    if len(values) == 1:
        values *= channels
    if len(values) != channels:
        raise UnsupportedOpError(f"{op.where()}: attribute '{key}' has {len(values)} entries for "
                                 f"{channels} channels; give one per channel")
    return ctx.const_array(f"{op.result.name}_{key}", np.asarray(values, dtype=np.int32))


def _channel_quant(ctx: LoweringContext, op: Op, channels: int, high_word: bool = False) -> str:
    """The op's tfc_channel_quant. With `high_word` (kernels that read it), the fast
    requantization table replaces the multiplier and shift arrays when every channel allows it,
    so flash holds one of the two."""
    lo, hi = _act_range(op)
    if high_word:
        multipliers = np.broadcast_to(np.asarray(op.attrs["multiplier"], np.int64), (channels,))
        shifts = np.broadcast_to(np.asarray(op.attrs["shift"], np.int64), (channels,))
        params = high_word_requant(multipliers, shifts, op.attrs["output_zp"])
        if params is not None:
            table = ctx.const_array(f"{op.result.name}_requant", params.reshape(-1))
            return c_struct("tfc_channel_quant", input_zp=op.attrs["input_zp"],
                            output_zp=op.attrs["output_zp"], multiplier="NULL", shift="NULL",
                            act_min=lo, act_max=hi, high_word=table)
    return c_struct("tfc_channel_quant", input_zp=op.attrs["input_zp"],
                    output_zp=op.attrs["output_zp"],
                    multiplier=_per_channel(ctx, op, "multiplier", channels),
                    shift=_per_channel(ctx, op, "shift", channels), act_min=lo, act_max=hi)


def _tensor_quant(op: Op) -> str:
    lo, hi = _act_range(op)
    a = op.attrs
    return c_struct("tfc_tensor_quant", input_zp=a["input_zp"], output_zp=a["output_zp"],
                    multiplier=a["multiplier"], shift=a["shift"], act_min=lo, act_max=hi)


def _bias(ctx: LoweringContext, op: Op) -> str:
    return ctx.buf(op.operands[2]) if len(op.operands) > 2 else "NULL"


def _require_nhwc(op: Op) -> None:
    if op.attr("layout", "nchw") != "nhwc":
        raise UnsupportedOpError(f"{op.where()} has layout '{op.attr('layout', 'nchw')}'; the "
                                 f"Cortex-M7 kernels take nhwc (run layout-nhwc first)")


# -- compute ops --------------------------------------------------------------------------------

def _window(op: Op, kernel_hw, out_c: int, groups: int = 1) -> str:
    n, h, w, c = op.operands[0].type.shape
    _, oh, ow, _ = op.result.type.shape
    sh, sw = op.attr("strides", [1, 1])
    top, left, bottom, right = op.attr("pads", [0, 0, 0, 0])
    dh, dw = op.attr("dilations", [1, 1])
    return c_struct("tfc_window", batch=n, in_h=h, in_w=w, in_c=c, out_h=oh, out_w=ow, out_c=out_c,
                    kernel_h=kernel_hw[0], kernel_w=kernel_hw[1], stride_h=sh, stride_w=sw,
                    pad_top=top, pad_left=left, pad_bottom=bottom, pad_right=right,
                    dilation_h=dh, dilation_w=dw, groups=groups)


def _conv2d(op: Op, ctx) -> list[KernelCall]:
    kind = _kind(op)
    _require_nhwc(op)
    out_c, kh, kw, _ = op.operands[1].type.shape
    geometry = _window(op, (kh, kw), out_c, op.attr("group", 1))
    fast = lower_dense(op, ctx) if kind == "i8" else None  # tfc_gemm_s8.c where shapes allow
    if fast is not None:
        return fast
    args = (ctx.buf(op.operands[0]), ctx.buf(op.operands[1]), _bias(ctx, op), ctx.buf(op.result),
            geometry)
    if kind == "i8":
        return [KernelCall("tfc_conv2d_s8", args + (_channel_quant(ctx, op, out_c),))]
    return [KernelCall("tfc_conv2d_f32", args + _float_act(op))]


def _linear(op: Op, ctx) -> list[KernelCall]:
    kind = _kind(op)
    out_features, in_features = op.operands[1].type.shape
    rows = op.operands[0].type.numel // in_features
    fast = lower_dense(op, ctx) if kind == "i8" else None
    if fast is not None:
        return fast
    args = (ctx.buf(op.operands[0]), ctx.buf(op.operands[1]), _bias(ctx, op), ctx.buf(op.result),
            str(rows), str(in_features), str(out_features))
    if kind == "i8":
        return [KernelCall("tfc_linear_s8", args + (_channel_quant(ctx, op, out_features),))]
    return [KernelCall("tfc_linear_f32", args + _float_act(op))]


def _broadcast(op: Op) -> str:
    out_shape = op.result.type.shape or (1,)
    a_strides = _broadcast_strides(op.operands[0].type.shape, out_shape)
    b_strides = _broadcast_strides(op.operands[1].type.shape, out_shape)
    dims, a_strides, b_strides = _merge_dims(out_shape, a_strides, b_strides)
    _check_rank(op, len(dims))
    return c_struct("tfc_broadcast", rank=len(dims), dims=c_ints(dims),
                    a_strides=c_ints(a_strides), b_strides=c_ints(b_strides))


def _relu(op: Op, ctx) -> list[KernelCall]:
    _kind(op, allowed=("f32",))
    return [KernelCall("tfc_clip_f32", (ctx.buf(op.operands[0]), ctx.buf(op.result),
                                        str(op.result.type.numel), "0.0f", "INFINITY"))]


def _clip(op: Op, ctx) -> list[KernelCall]:
    kind = _kind(op)
    lo, hi = op.attr("min"), op.attr("max")
    if kind == "i8":
        bounds = (str(-128 if lo is None else int(lo)), str(127 if hi is None else int(hi)))
    else:
        bounds = (c_float(-math.inf if lo is None else lo), c_float(math.inf if hi is None else hi))
    return [KernelCall(f"tfc_clip_{_suffix(kind)}", (ctx.buf(op.operands[0]), ctx.buf(op.result),
                                                     str(op.result.type.numel)) + bounds)]


def _rows_over_last_axis(op: Op) -> tuple[int, int]:
    require_last_axis(op)
    x = op.operands[0].type
    cols = x.shape[-1]
    return x.numel // cols, cols


def _layernorm_scratch_bytes(op: Op) -> int:
    """2 * cols for an int8 layernorm that takes tfc_norm.c's whole-layer M7 loop (16 <= cols <=
    256, cols % 4 == 0, full int8 output range), which keeps a row's codes there as int16 lanes."""
    cols = op.result.type.shape[-1]
    full_range = _act_range(op) == (-128, 127)
    fits = 16 <= cols <= 256 and cols % 4 == 0 and full_range
    return 2 * cols if op.operands[0].type.dtype == "i8" and fits else 0


def _layernorm(op: Op, ctx) -> list[KernelCall]:
    kind = _kind(op)
    rows, cols = _rows_over_last_axis(op)
    x, y = ctx.buf(op.operands[0]), ctx.buf(op.result)
    if kind == "f32":
        gamma = ctx.buf(op.operands[1]) if len(op.operands) > 1 else "NULL"
        beta = ctx.buf(op.operands[2]) if len(op.operands) > 2 else "NULL"
        return [KernelCall("tfc_layernorm_f32", (x, gamma, beta, y, str(rows), str(cols),
                                                 c_float(op.attr("epsilon", 1e-5))))]
    if len(op.operands) != 1:
        raise UnsupportedOpError(f"{op.where()}: the integer layernorm takes x only; gamma and "
                                 f"beta fold into multiplier/bias (run scaled-layernorm)")
    lo, hi = _act_range(op)
    # (multiplier, bias + 128 codes) per column; each full group of four columns in the SXTB16
    # lane order 0, 2, 1, 3, so that one LDM fetches a lane pair's four words (tfc_runtime.h).
    pairs = np.stack([np.asarray(op.attrs["multiplier"], np.int64),
                      np.asarray(op.attrs["bias"], np.int64) + (128 << 16)], axis=-1)
    if pairs.shape != (cols, 2):
        raise UnsupportedOpError(f"{op.where()}: multiplier and bias need {cols} entries each, "
                                 f"one per channel")
    order = np.arange(cols)
    order[:cols & ~3] = order[:cols & ~3].reshape(-1, 4)[:, [0, 2, 1, 3]].reshape(-1)
    gamma_bias = ctx.const_array(f"{op.result.name}_gamma_bias",
                                 pairs[order].reshape(-1).astype(np.int32))
    lanes = _layernorm_scratch_bytes(op)
    scratch = ctx.scratch(lanes, "uint32_t") if lanes else "NULL"
    quant = c_struct("tfc_layernorm_quant", eps_q=int(op.attrs["eps_q"]),
                     xn_bits=scaled_layernorm_xn_bits(cols), gamma_bias=gamma_bias,
                     act_min=lo, act_max=hi, scratch=scratch)
    return [KernelCall("tfc_layernorm_s8", (x, y, str(rows), str(cols), quant))]


def _softmax(op: Op, ctx) -> list[KernelCall]:
    kind = _kind(op)
    rows, cols = _rows_over_last_axis(op)
    x, y = ctx.buf(op.operands[0]), ctx.buf(op.result)
    if kind == "f32":
        return [KernelCall("tfc_softmax_f32", (x, y, str(rows), str(cols)))]
    if len(op.operands) != 2 or op.operands[1].type.shape != (256,):
        raise UnsupportedOpError(f"{op.where()}: the integer softmax needs its 256-entry exp table "
                                 f"as the second operand (run softmax-lut)")
    a = op.attrs
    return [KernelCall("tfc_softmax_s8", (x, ctx.buf(op.operands[1]), y, str(rows), str(cols),
                                          str(a["output_zp"]), str(a["multiplier"]),
                                          str(a["shift"])))]


def _quant_layout(op: Op, ctx, quant: Quant | None, shape, side: str) -> tuple[str, ...]:
    """(outer, channels, inner, scales, zero points) of a per-tensor or per-axis conversion."""
    if quant is None:
        raise UnsupportedOpError(f"{op.where()}: its {side} type has no quantization parameters; "
                                 f"give it q<scale:zero_point>")
    numel = int(np.prod(shape, dtype=np.int64))
    if quant.axis is None:
        return ("1", "1", str(numel), c_floats(quant.scale), c_ints(quant.zero_point))
    axis = quant.axis % len(shape)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    name = op.result.name
    scales = ctx.const_array(f"{name}_scale", np.asarray(quant.scale, dtype=np.float32))
    zero_points = ctx.const_array(f"{name}_zero_point", np.asarray(quant.zero_point, dtype=np.int32))
    return (str(outer), str(shape[axis]), str(inner), scales, zero_points)


def _quantize(op: Op, ctx) -> list[KernelCall]:
    _kind(op, allowed=("f32",))
    if op.result.type.dtype != "i8":
        raise UnsupportedOpError(f"{op.where()}: quantize to {op.result.type.dtype} has no kernel; "
                                 f"only i8 is supported")
    layout = _quant_layout(op, ctx, op.result.type.quant, op.result.type.shape, "result")
    return [KernelCall("tfc_quantize_f32_s8", (ctx.buf(op.operands[0]), ctx.buf(op.result)) + layout)]


def _dequantize(op: Op, ctx) -> list[KernelCall]:
    kind = _kind(op, allowed=("i8", "i32"))
    operand = op.operands[0].type
    layout = _quant_layout(op, ctx, operand.quant, operand.shape, "operand")
    fn = "tfc_dequantize_s8_f32" if kind == "i8" else "tfc_dequantize_s32_f32"
    return [KernelCall(fn, (ctx.buf(op.operands[0]), ctx.buf(op.result)) + layout)]


# -- data movement (any dtype) ------------------------------------------------------------------

def _gather(op: Op, ctx, offset: int, dims, strides) -> list[KernelCall]:
    if op.result.type.numel == 0:
        return []
    dims, strides = _merge_dims(dims, strides)
    _check_rank(op, len(dims))
    return [KernelCall("tfc_gather", (ctx.buf(op.result), ctx.buf(op.operands[0]),
                                      str(op.result.type.itemsize), str(offset), str(len(dims)),
                                      c_ints(dims), c_ints(strides)))]


def _transpose(op: Op, ctx) -> list[KernelCall]:
    shape = op.operands[0].type.shape
    natural = row_major_strides(shape)
    perm = op.attrs["perm"]
    return _gather(op, ctx, 0, [shape[p] for p in perm], [natural[p] for p in perm])


def _slice(op: Op, ctx) -> list[KernelCall]:
    shape = op.operands[0].type.shape
    natural = row_major_strides(shape)
    dims, strides, offset = list(shape), list(natural), 0
    axes = op.attrs["axes"]
    steps = op.attr("steps", [1] * len(axes))
    for start, end, axis, step in zip(op.attrs["starts"], op.attrs["ends"], axes, steps):
        axis %= len(shape)
        picked = range(*slice(start, end, step).indices(shape[axis]))
        dims[axis] = len(picked)
        strides[axis] = natural[axis] * step
        offset += (picked.start if len(picked) else 0) * natural[axis]
    return _gather(op, ctx, offset, dims, strides)


def _reshape(op: Op, ctx) -> list[KernelCall]:
    src, dst = ctx.buf(op.operands[0]), ctx.buf(op.result)
    if src == dst or op.result.type.nbytes == 0:
        return []
    return [KernelCall("tfc_copy", (dst, src, str(op.result.type.nbytes)))]


def _outer_inner(shape, axis: int) -> tuple[int, int]:
    return (int(np.prod(shape[:axis], dtype=np.int64)),
            int(np.prod(shape[axis + 1:], dtype=np.int64)))


def _concat(op: Op, ctx) -> list[KernelCall]:
    out = op.result.type
    axis = op.attrs["axis"] % out.rank
    outer, inner = _outer_inner(out.shape, axis)
    dst_pitch = out.shape[axis] * inner * out.itemsize
    calls, start = [], 0
    for v in op.operands:
        row_bytes = v.type.shape[axis] * inner * out.itemsize
        if row_bytes:
            calls.append(KernelCall("tfc_copy_rows", (_ptr(ctx, op.result, start * inner),
                                                      str(dst_pitch), ctx.buf(v), str(row_bytes),
                                                      str(outer), str(row_bytes))))
        start += v.type.shape[axis]
    return calls


def _split(op: Op, ctx) -> list[KernelCall]:
    x = op.operands[0].type
    axis = op.attrs["axis"] % x.rank
    outer, inner = _outer_inner(x.shape, axis)
    src_pitch = x.shape[axis] * inner * x.itemsize
    calls, start = [], 0
    for r in op.results:
        row_bytes = r.type.shape[axis] * inner * x.itemsize
        if row_bytes:
            calls.append(KernelCall("tfc_copy_rows", (ctx.buf(r), str(row_bytes),
                                                      _ptr(ctx, op.operands[0], start * inner),
                                                      str(src_pitch), str(outer), str(row_bytes))))
        start += r.type.shape[axis]
    return calls


def _const(op: Op, ctx) -> list[KernelCall]:
    return []  # the emitter stores constants in weights.c; ctx.buf names them


LOWERINGS: dict[str, Lowering] = {
    "const": _const,
    "conv2d": _conv2d, "linear": _linear, "matmul": lower_matmul,
    **ELEMENTWISE_LOWERINGS,  # add, sub, mul, requantize, pooling, means
    "relu": _relu, "clip": _clip,
    "quantize": _quantize, "dequantize": _dequantize,
    "layernorm": _layernorm, "softmax": _softmax,
    "transpose": _transpose, "reshape": _reshape, "concat": _concat, "slice": _slice,
    "split": _split,
}
