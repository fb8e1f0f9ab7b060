"""Op definitions: operands, attributes, shape inference and verification.

This file is the semantic contract of the IR. The docstring of each op states what it computes;
`tfc/ir/interp.py` implements exactly that, and the C kernels match the interpreter bit for bit.

Conventions shared by all ops:
- Float ops (`f32`) follow ONNX semantics.
- An op whose data operands are `i8` is the integer form of the same op. Integer forms carry every
  number they need as attributes (zero points, `multiplier`/`shift` pairs from
  `quant_math.quantize_multiplier`, clamp bounds `act_min`/`act_max`), so that their semantics do not
  depend on floats. Requantization is `quant_math.multiply_by_quantized_multiplier` (MBQM below):
  floor((x * multiplier + 2^(t-1)) / 2^t) with t = 31 - shift, the exact product rounded once,
  half up, saturated to int32; shift in [-31, 30].
  Result types still carry the quantization parameters for readers and for the I/O helpers.
- `layout` is "nchw" (ONNX order, weights OIHW) or "nhwc" (weights OHWI; depthwise weights
  [C, kh, kw, 1]). The frontend produces nchw; the layout pass turns backend graphs into nhwc.
- `pads` are [top, left, bottom, right] (ONNX order: begins then ends).
- Float activations fused into an op: `act` is "none", "relu", "relu6" or "clip" (with `act_min`,
  `act_max` floats). Integer ops always clamp to [act_min, act_max] (ints, in the output domain).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tfc.errors import UnsupportedOpError, VerifyError
from tfc.ir.types import TensorType

# Attribute kinds: "int", "float", "str", "bool", "ints", "floats", "dense", "number" (int or float),
# "strs".
_INT8_REQUANT = {"input_zp": "int", "output_zp": "int", "multiplier": "ints", "shift": "ints",
                 "act_min": "int", "act_max": "int"}
_FLOAT_ACT = {"act": "str", "act_min": "number", "act_max": "number"}
_SPATIAL = {"strides": "ints", "pads": "ints", "dilations": "ints", "layout": "str"}


@dataclass
class OpDef:
    name: str
    operands: tuple[int, int]  # (min, max); max -1 = variadic
    attrs: dict[str, str]  # attribute name -> kind (all optional unless in `required`)
    infer: Callable[[list[TensorType], dict], list[TensorType]]
    doc: str = ""
    required: tuple[str, ...] = ()
    required_int: tuple[str, ...] = ()  # required when the op computes in integers
    int_attrs: dict[str, str] = field(default_factory=dict)  # attrs only integer forms take


OPS: dict[str, OpDef] = {}

# Annotations any op may carry; passes record them and the backend reads them.
COMMON_ATTRS = {
    "arena_offset": "ints",  # memory-plan: byte offset of each result in the arena (-1: not in it)
    "scratch_bytes": "int",  # kernel scratch the backend's kernel for this op needs (bytes)
    "scratch_offset": "int",  # memory-plan: where that scratch lies in the arena
}


def register(opdef: OpDef) -> OpDef:
    OPS[opdef.name] = opdef
    return opdef


def infer_types(name: str, operand_types: list[TensorType], attrs: dict) -> list[TensorType]:
    """Result types of op `name`; the dtype follows the first operand, quantization is dropped."""
    if name not in OPS:
        raise VerifyError(f"unknown op '{name}'; known ops: {', '.join(sorted(OPS))}")
    return OPS[name].infer(operand_types, attrs)


def is_integer_op(operand_types: list[TensorType]) -> bool:
    return bool(operand_types) and operand_types[0].dtype in ("i8", "u8", "i16")


# -- shape helpers ------------------------------------------------------------------------------

def _same(ts, attrs):
    return [TensorType(ts[0].shape, ts[0].dtype)]


def _broadcast(ts, attrs):
    try:
        shape = np.broadcast_shapes(*[t.shape for t in ts])
    except ValueError:
        raise VerifyError(f"shapes {[list(t.shape) for t in ts]} do not broadcast") from None
    return [TensorType(shape, ts[0].dtype)]


def _spatial_dims(x: TensorType, layout: str):
    if x.rank != 4:
        raise VerifyError(f"expects a rank-4 input, got {list(x.shape)}")
    if layout == "nchw":
        n, c, h, w = x.shape
    elif layout == "nhwc":
        n, h, w, c = x.shape
    else:
        raise VerifyError(f"layout must be 'nchw' or 'nhwc', got '{layout}'")
    return n, c, h, w


def _make_spatial(n, c, h, w, layout, dtype):
    shape = (n, c, h, w) if layout == "nchw" else (n, h, w, c)
    return TensorType(shape, dtype)


def _window_out(size, k, stride, pad_begin, pad_end, dilation, ceil_mode=False):
    span = dilation * (k - 1) + 1
    num = size + pad_begin + pad_end - span
    if num < 0:
        raise VerifyError(f"window {k} (dilation {dilation}) is larger than padded input {size}")
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:  # ONNX: last window starts inside
        out -= 1
    return out


def _conv_infer(ts, a):
    x, w = ts[0], ts[1]
    layout = a.get("layout", "nchw")
    n, c, h, wd = _spatial_dims(x, layout)
    if w.rank != 4:
        raise VerifyError(f"weights must be rank 4, got {list(w.shape)}")
    if layout == "nchw":
        o, ci, kh, kw = w.shape
    else:
        o, kh, kw, ci = w.shape
    group = a.get("group", 1)
    if ci * group != c:
        raise VerifyError(f"input has {c} channels but weights expect {ci} x group {group}")
    if o % group:
        raise VerifyError(f"{o} output channels do not split into {group} groups")
    if len(ts) > 2 and ts[2].shape != (o,):
        raise VerifyError(f"bias must have shape [{o}], got {list(ts[2].shape)}")
    s = a.get("strides", [1, 1])
    p = a.get("pads", [0, 0, 0, 0])
    d = a.get("dilations", [1, 1])
    oh = _window_out(h, kh, s[0], p[0], p[2], d[0])
    ow = _window_out(wd, kw, s[1], p[1], p[3], d[1])
    return [_make_spatial(n, o, oh, ow, layout, x.dtype)]


def _pool_infer(ts, a):
    x = ts[0]
    layout = a.get("layout", "nchw")
    n, c, h, w = _spatial_dims(x, layout)
    k = a["kernel"]
    s = a.get("strides", [1, 1])
    p = a.get("pads", [0, 0, 0, 0])
    d = a.get("dilations", [1, 1])
    ceil = a.get("ceil_mode", False)
    oh = _window_out(h, k[0], s[0], p[0], p[2], d[0], ceil)
    ow = _window_out(w, k[1], s[1], p[1], p[3], d[1], ceil)
    return [_make_spatial(n, c, oh, ow, layout, x.dtype)]


def _global_pool_infer(ts, a):
    layout = a.get("layout", "nchw")
    n, c, _, _ = _spatial_dims(ts[0], layout)
    return [_make_spatial(n, c, 1, 1, layout, ts[0].dtype)]


def _linear_infer(ts, a):
    x, w = ts[0], ts[1]
    if w.rank != 2:
        raise VerifyError(f"weights must be [out, in], got {list(w.shape)}")
    if x.shape[-1] != w.shape[1]:
        raise VerifyError(f"input's last dim {x.shape[-1]} != weights' in-features {w.shape[1]}")
    if len(ts) > 2 and ts[2].shape != (w.shape[0],):
        raise VerifyError(f"bias must have shape [{w.shape[0]}], got {list(ts[2].shape)}")
    return [TensorType(x.shape[:-1] + (w.shape[0],), x.dtype)]


def _permuted(shape: tuple[int, ...], perm, what: str) -> tuple[int, ...]:
    """`shape` read through `perm` (None: unchanged); the matmul operand/result layouts."""
    if perm is None:
        return tuple(shape)
    if sorted(perm) != list(range(len(shape))):
        raise VerifyError(f"{what} {list(perm)} is not a permutation of rank {len(shape)}")
    return tuple(shape[p] for p in perm)


def _matmul_infer(ts, a):
    x = TensorType(_permuted(ts[0].shape, a.get("a_perm"), "a_perm"), ts[0].dtype)
    y = TensorType(_permuted(ts[1].shape, a.get("b_perm"), "b_perm"), ts[1].dtype)
    if x.rank < 2 or y.rank < 2:
        raise VerifyError("matmul operands must have rank >= 2 (the frontend reshapes vectors)")
    if x.shape[-1] != y.shape[-2]:
        raise VerifyError(f"contraction dims differ: {list(x.shape)} @ {list(y.shape)}")
    try:
        batch = np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    except ValueError:
        raise VerifyError(f"batch dims do not broadcast: {list(x.shape)} @ {list(y.shape)}") from None
    product = tuple(batch) + (x.shape[-2], y.shape[-1])
    return [TensorType(_permuted(product, a.get("y_perm"), "y_perm"), x.dtype)]


def _norm_axes(axes, rank):
    out = []
    for ax in axes:
        if not -rank <= ax < rank:
            raise VerifyError(f"axis {ax} is out of range for rank {rank}")
        out.append(ax % rank)
    return sorted(set(out))


def _reduce_infer(ts, a):
    x = ts[0]
    axes = _norm_axes(a["axes"], x.rank)
    keep = a.get("keepdims", True)
    shape = [1 if i in axes else d for i, d in enumerate(x.shape)] if keep else \
        [d for i, d in enumerate(x.shape) if i not in axes]
    return [TensorType(tuple(shape), x.dtype)]


def _transpose_infer(ts, a):
    perm = a["perm"]
    x = ts[0]
    if sorted(perm) != list(range(x.rank)):
        raise VerifyError(f"perm {perm} is not a permutation of rank {x.rank}")
    return [TensorType(tuple(x.shape[p] for p in perm), x.dtype)]


def _reshape_infer(ts, a):
    shape = tuple(a["shape"])
    if any(d < 0 for d in shape):
        raise VerifyError(f"reshape target {list(shape)} must be fully static")
    if int(np.prod(shape, dtype=np.int64)) != ts[0].numel:
        raise VerifyError(f"cannot reshape {list(ts[0].shape)} ({ts[0].numel} elements) to {list(shape)}")
    return [TensorType(shape, ts[0].dtype)]


def _concat_infer(ts, a):
    r = ts[0].rank
    ax = _norm_axes([a["axis"]], r)[0]
    for t in ts[1:]:
        if t.rank != r or any(t.shape[i] != ts[0].shape[i] for i in range(r) if i != ax):
            raise VerifyError(f"concat shapes differ off axis {ax}: {[list(t.shape) for t in ts]}")
    shape = list(ts[0].shape)
    shape[ax] = sum(t.shape[ax] for t in ts)
    return [TensorType(tuple(shape), ts[0].dtype)]


def _slice_infer(ts, a):
    x = ts[0]
    shape = list(x.shape)
    for st, en, ax, sp in zip(a["starts"], a["ends"], a["axes"], a.get("steps", [1] * len(a["axes"]))):
        ax = _norm_axes([ax], x.rank)[0]
        shape[ax] = len(range(*slice(st, en, sp).indices(x.shape[ax])))
    return [TensorType(tuple(shape), x.dtype)]


def _split_infer(ts, a):
    x = ts[0]
    ax = _norm_axes([a["axis"]], x.rank)[0]
    sizes = a["sizes"]
    if sum(sizes) != x.shape[ax]:
        raise VerifyError(f"split sizes {sizes} do not sum to dim {x.shape[ax]} of axis {ax}")
    return [TensorType(tuple(s if i == ax else d for i, d in enumerate(x.shape)), x.dtype)
            for s in sizes]


def _const_infer(ts, a):
    arr = a["value"].array
    from tfc.ir.types import dtype_of_numpy

    return [TensorType(arr.shape, dtype_of_numpy(arr.dtype))]


def _convert_infer(dtype):
    def infer(ts, a):
        return [TensorType(ts[0].shape, dtype)]
    return infer


def _batchnorm_infer(ts, a):
    layout = a.get("layout", "nchw")
    _, c, _, _ = _spatial_dims(ts[0], layout) if ts[0].rank == 4 else (0, ts[0].shape[1], 0, 0)
    for t in ts[1:]:
        if t.shape != (c,):
            raise VerifyError(f"batchnorm parameters must have shape [{c}], got {list(t.shape)}")
    return _same(ts, a)


# -- the ops ------------------------------------------------------------------------------------

register(OpDef("const", (0, 0), {"value": "dense", "storage": "str", "block": "int",
                                 "sparsity": "float", "eta": "float", "ratio": "float",
                                 "predicted_dense_instructions": "int",
                                 "predicted_sparse_instructions": "int"},
               _const_infer, required=("value",), doc="""
A constant tensor. `value` holds the data. `storage` ("dense" or "brle") and `block` record how
the backend stores it in flash (set by the sparse-storage pass), with the block sparsity ρ, the
predicted compression `eta` = 1/((1-ρ)(1+1/b)) and the measured dense/stored `ratio`. Storage never
changes what the constant is: `value` always holds the decoded weights. A `block` may arrive
before sparse-storage as a hint (ONNX initializer metadata `tfc.sparse.block`, written by a NAS
exporter): passes that rewrite a weight keep it, and sparse-storage then uses that block size.
`predicted_dense_instructions` / `predicted_sparse_instructions` are the M7 cost model's figures
for the layers that read it, which sparse-storage chose by (informational, like `eta`)."""))

register(OpDef("conv2d", (2, 3), {**_SPATIAL, "group": "int", **_FLOAT_ACT}, _conv_infer,
               int_attrs=_INT8_REQUANT, required_int=tuple(_INT8_REQUANT), doc="""
2-D convolution (ONNX Conv) with optional bias and fused activation. Depthwise is group == C.
int8: acc[o] = bias[o] + sum (x - input_zp) * w over the window (padding contributes 0);
      y = clamp(MBQM(acc, multiplier[o], shift[o]) + output_zp, act_min, act_max).
      Weights are i8 symmetric per output channel, bias i32 at scale s_x * s_w[o]."""))

register(OpDef("linear", (2, 3), dict(_FLOAT_ACT), _linear_infer,
               int_attrs=_INT8_REQUANT, required_int=tuple(_INT8_REQUANT), doc="""
y[..., n] = sum_k x[..., k] * w[n, k] + b[n]: a fully connected layer over the last axis, batched
over all leading axes (tokens). Weights are [out, in], so blocks run along input channels.
int8: as conv2d, per output channel n."""))

register(OpDef("matmul", (2, 2), {"a_perm": "ints", "b_perm": "ints", "y_perm": "ints"},
             _matmul_infer,
             int_attrs={"a_zp": "int", "b_zp": "int", "output_zp": "int", "multiplier": "int",
                        "shift": "int", "act_min": "int", "act_max": "int"},
             required_int=("a_zp", "b_zp", "output_zp", "multiplier", "shift", "act_min", "act_max"),
             doc="""
Batched matrix product of two activations (numpy matmul broadcasting), with optional operand and
result layouts: A = transpose(a, a_perm), B = transpose(b, b_perm), P = A @ B and the result is
transpose(P, y_perm) (each perm absent = identity). The perms let attention's multi-head split and
merge be strided reads and writes of one kernel instead of copies (pass fold-transpose-matmul).
int8: acc = sum (A - a_zp) * (B - b_zp); P = clamp(MBQM(acc, multiplier, shift) + output_zp,
      act_min, act_max)."""))

_ADD_INT = {"a_zp": "int", "b_zp": "int", "output_zp": "int", "a_multiplier": "int",
            "b_multiplier": "int", "shift": "int", "act_min": "int", "act_max": "int"}
for _name, _sign in (("add", "+"), ("sub", "-")):
    register(OpDef(_name, (2, 2), dict(_FLOAT_ACT), _broadcast, int_attrs=_ADD_INT,
                   required_int=tuple(_ADD_INT), doc=f"""
Elementwise a {_sign} b with numpy broadcasting and optional fused activation.
int8 (one rounding, two multiply-accumulates per element):
      acc = (a - a_zp) * a_multiplier {_sign} (b - b_zp) * b_multiplier
      y = clamp(((acc + 2^(shift-1)) >> shift) + output_zp, act_min, act_max)      (>> floors)
      with multiplier = round(s_in / s_y * 2^shift), |multiplier| < 2^21 and 1 <= shift <= 21
      (quant_math.add_multipliers), so every intermediate fits in int32."""))

register(OpDef("mul", (2, 2), {}, _broadcast,
               int_attrs={"a_zp": "int", "b_zp": "int", "output_zp": "int", "multiplier": "int",
                          "shift": "int", "act_min": "int", "act_max": "int"},
               required_int=("a_zp", "b_zp", "output_zp", "multiplier", "shift"), doc="""
Elementwise a * b with broadcasting (ONNX Mul; Div by a constant arrives as Mul by its reciprocal).
int8: y = clamp(MBQM((a - a_zp) * (b - b_zp), multiplier, shift) + output_zp, act_min, act_max)."""))

register(OpDef("relu", (1, 1), {}, _same, doc="max(x, 0). Float only: quantization folds it into a clamp."))

register(OpDef("clip", (1, 1), {"min": "number", "max": "number"}, _same, doc="""
Clamp to [min, max] (ONNX Clip, Relu6). For integer tensors min/max are integer codes."""))

register(OpDef("maxpool2d", (1, 1), {**_SPATIAL, "kernel": "ints", "ceil_mode": "bool"},
               _pool_infer, required=("kernel",), doc="""
Max over each window; padding never wins. int8: same quantization in and out."""))

_POOL_INT = {"input_zp": "int", "output_zp": "int", "multiplier": "int", "shift": "int",
             "act_min": "int", "act_max": "int"}
register(OpDef("avgpool2d", (1, 1), {**_SPATIAL, "kernel": "ints", "ceil_mode": "bool",
                                     "count_include_pad": "bool"},
               _pool_infer, required=("kernel",), int_attrs=_POOL_INT,
               required_int=tuple(_POOL_INT), doc="""
Average over each window (ONNX AveragePool). The divisor counts padded elements only when
count_include_pad. int8: acc = sum (x - input_zp) over the window (padding adds 0);
      avg = rounding_divide(acc * 2^8, count)          (quant_math.MEAN_EXTRA_BITS = 8)
      y = clamp(MBQM(avg, multiplier, shift) + output_zp, act_min, act_max)
      with multiplier/shift = quantize_multiplier(s_x / (2^8 * s_y))."""))

register(OpDef("global_avgpool", (1, 1), {"layout": "str"}, _global_pool_infer,
               int_attrs=_POOL_INT, required_int=tuple(_POOL_INT), doc="""
Mean over H and W, keeping them as 1. int8: as avgpool2d with count = H * W."""))

register(OpDef("reduce_mean", (1, 1), {"axes": "ints", "keepdims": "bool"}, _reduce_infer,
               required=("axes",), int_attrs=_POOL_INT, required_int=tuple(_POOL_INT), doc="""
Mean over `axes` (pooling over space or over tokens). int8: as avgpool2d with count = the number
of reduced elements."""))

register(OpDef("batchnorm", (5, 5), {"epsilon": "float", "layout": "str"}, _batchnorm_infer, doc="""
Inference batch norm over the channel axis: operands x, scale, bias, mean, var. Float only; the
fold-batchnorm pass removes it."""))

register(OpDef("transpose", (1, 1), {"perm": "ints"}, _transpose_infer, required=("perm",),
               doc="Permute axes. Any dtype; quantization passes through."))
register(OpDef("reshape", (1, 1), {"shape": "ints"}, _reshape_infer, required=("shape",),
               doc="Reshape to a static shape (Reshape, Flatten, Squeeze, Unsqueeze)."))
register(OpDef("concat", (1, -1), {"axis": "int"}, _concat_infer, required=("axis",),
               doc="Concatenate along `axis`. int8: all operands and the result share quantization."))
register(OpDef("slice", (1, 1), {"starts": "ints", "ends": "ints", "axes": "ints", "steps": "ints"},
               _slice_infer, required=("starts", "ends", "axes"),
               doc="Python-style slicing per listed axis (ends clamp, negative steps allowed)."))
register(OpDef("split", (1, 1), {"axis": "int", "sizes": "ints"}, _split_infer,
               required=("axis", "sizes"), doc="Split into consecutive pieces of `sizes` along `axis`."))

register(OpDef("layernorm", (1, 3), {"axis": "int", "epsilon": "float"}, _same,
               int_attrs={"eps_q": "int", "multiplier": "ints", "bias": "ints", "act_min": "int",
                          "act_max": "int"},
               required_int=("eps_q", "multiplier", "bias", "act_min", "act_max"), doc="""
Layer normalization over the last axis (only axis == -1 is supported), operands x, gamma, beta.
int8 (Scaled-LayerNorm; operand x only; gamma and beta are folded into attributes by
quant_math.scaled_layernorm_params). Per row of C raw codes x (C <= 4096), in exact integers,
with s = quant_math.scaled_layernorm_xn_bits(C) (x_norm is carried as x_norm * 2^s; 11 for C = 44):
  T = sum x;  Q = sum x^2;  D = max(C*Q - T*T + eps_q, C)                # C^2 * var (+ eps)
  z = (32 - bitlen(D)) & ~1;  Dn = D << z (D >> -z when z < 0)           # Dn in [2^30, 2^32)
  r = 23173 + (Dn >> 17) + (Dn >> 18), then twice r = (r + Dn // r) >> 1  # ~sqrt(Dn), Newton
  k = 31 - bitlen(C);  e = 16 + s - k + z/2;  q = (C << k) // r
  A = q << e   (rshift_round(q, -e) when e < 0)                          # 2^(16+s) * C / sqrt(D)
  B = (64 - ((A * T * ((2^23 + C//2) // C)) >> 32)) >> 7                 # -mean * A / 2^16
  xn[c] = B + ((A * x[c]) >> 16)           # SMLAWB: x_norm * 2^s, |xn| < 2^14 by the choice of s
  acc[c] = wrap_i32(bias[c] + ((multiplier[c] * wrap_i16(xn[c])) >> 16))  # SMLAWB
  y[c] = clamp(acc[c] >> 16, act_min, act_max)
  with multiplier[c] = round(gamma[c] / s_y * 2^(32 - s)) (|gamma| / s_y < 2^(s-1))
  and bias[c] = round((beta[c] / s_y + output_zp) * 2^16) + 2^15 (the final rounding).
  The statistics are shift-invariant, so the input zero point never enters; `>>` floors.
  rshift_round(v, n) = (v + 2^(n-1)) >> n. quant_math.scaled_layernorm_row holds A and B."""))

register(OpDef("softmax", (1, 2), {"axis": "int"}, _same,
               int_attrs={"output_zp": "int", "multiplier": "int", "shift": "int"},
               required_int=("output_zp", "multiplier", "shift"), doc="""
Softmax over the last axis (only axis == -1 is supported), any row length up to 32767.
int8: operands x, lut (i32[256] = quant_math.softmax_exp_lut(s_x):
  lut[j] = round(2^16 * exp(-(255 - j) * s_x)), so lut[255 - m + x] = 2^16 * exp(-(m - x) s_x)).
  Per row: m = max x; e[i] = lut[255 - m + x[i]]; sum = sum e (>= 2^16, int32);
  recip = (multiplier << (shift + 1)) // sum         # one division per row: 2^32 / (sum * s_y)
  y[i] = clamp(((e[i] * recip + 2^31) >> 32) + output_zp, -128, 127)     # one multiply-round per element (SMMLAR on the M7)
  with (multiplier, shift) = quantize_multiplier(1 / s_y) (quant_math.softmax_params), which
  requires 1 <= 1 / s_y < 2^15."""))

register(OpDef("quantize", (1, 1), {}, _convert_infer("i8"), doc="""
f32 -> i8 with the result type's per-tensor quantization (ONNX QuantizeLinear, round half to even).
Per-axis quantization is allowed on constants (weights)."""))
register(OpDef("dequantize", (1, 1), {}, _convert_infer("f32"), doc="""
i8 or i32 -> f32 with the operand type's quantization (ONNX DequantizeLinear)."""))
register(OpDef("requantize", (1, 1), {}, _same,
               int_attrs={"input_zp": "int", "output_zp": "int", "multiplier": "int", "shift": "int",
                          "act_min": "int", "act_max": "int"},
               required_int=("input_zp", "output_zp", "multiplier", "shift"), doc="""
i8 -> i8 change of quantization: y = clamp(MBQM(x - input_zp, multiplier, shift) + output_zp)."""))


# -- verification -------------------------------------------------------------------------------

_KIND_CHECK = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, float),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "ints": lambda v: isinstance(v, list) and all(_KIND_CHECK["int"](x) for x in v),
    "floats": lambda v: isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
    "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def verify_op(op) -> None:
    """Raises VerifyError('<where>: '<op>' op <constraint>, got <actual>') when op is malformed."""
    d = OPS.get(op.name)
    if d is None:
        raise VerifyError(f"{_loc(op)}unknown op '{op.name}'; known ops: {', '.join(sorted(OPS))}")
    lo, hi = d.operands
    n = len(op.operands)
    if n < lo or (hi >= 0 and n > hi):
        want = f"{lo}" if lo == hi else (f"at least {lo}" if hi < 0 else f"{lo} to {hi}")
        raise VerifyError(f"{_loc(op)}{op.where()} expects {want} operands, got {n}")
    integer = is_integer_op([v.type for v in op.operands])
    known = {**COMMON_ATTRS, **d.attrs}
    if integer:
        known.update(d.int_attrs)
    for key, val in op.attrs.items():
        kind = known.get(key)
        if kind is None:
            raise VerifyError(f"{_loc(op)}{op.where()} has unknown attribute '{key}'; "
                              f"known: {', '.join(sorted(known)) or 'none'}")
        if kind == "dense":
            from tfc.ir.core import DenseAttr

            ok = isinstance(val, DenseAttr)
        else:
            ok = _KIND_CHECK[kind](val)
        if not ok:
            raise VerifyError(f"{_loc(op)}{op.where()} attribute '{key}' must be {kind}, got {val!r}")
    for key in d.required + (d.required_int if integer else ()):
        if key not in op.attrs:
            raise VerifyError(f"{_loc(op)}{op.where()} is missing required attribute '{key}'")
    try:
        expected = d.infer([v.type for v in op.operands], op.attrs)
    except VerifyError as e:
        raise VerifyError(f"{_loc(op)}{op.where()}: {e}") from None
    except (KeyError, IndexError, TypeError) as e:
        raise VerifyError(f"{_loc(op)}{op.where()}: malformed attributes ({e})") from None
    if len(expected) != len(op.results):
        raise VerifyError(f"{_loc(op)}{op.where()} must have {len(expected)} results, got {len(op.results)}")
    for r, t in zip(op.results, expected):
        if r.type.shape != t.shape:
            raise VerifyError(f"{_loc(op)}{op.where()} result shape must be {list(t.shape)}, "
                              f"got {list(r.type.shape)}")
        if op.name not in ("const", "quantize", "dequantize") and not integer and r.type.dtype != t.dtype:
            raise VerifyError(f"{_loc(op)}{op.where()} result dtype must be {t.dtype}, got {r.type.dtype}")


def verify_graph(graph) -> None:
    """Checks SSA dominance, uses, and every op."""
    defined = {id(v) for v in graph.inputs}
    for op in graph.ops:
        for v in op.operands:
            if id(v) not in defined:
                raise VerifyError(f"{_loc(op)}{op.where()} uses %{v.name} before it is defined")
        verify_op(op)
        defined.update(id(r) for r in op.results)
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerifyError(f"graph @{graph.name} returns %{v.name}, which is not defined")
    names = [v.name for v in graph.values()]
    if len(names) != len(set(names)):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise VerifyError(f"graph @{graph.name} defines %{dup} more than once")


def _loc(op) -> str:
    """`path:line:col: error: ` when the op came from IR text, else ''."""
    if op.loc and op.loc.count(":") >= 2 and op.loc.rsplit(":", 2)[1].isdigit():
        return f"{op.loc}: error: "
    return ""


def require_last_axis(op) -> None:
    """layernorm, softmax and log_softmax normalize over the last axis only (interpreters and
    kernels alike)."""
    axis = op.attr("axis", -1)
    rank = op.operands[0].type.rank
    if axis % rank != rank - 1:
        raise UnsupportedOpError(f"{op.where()}: only axis -1 is supported, got axis {axis}; "
                                 f"transpose the normalized axis last")
