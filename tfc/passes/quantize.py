"""quantize: a QDQ graph becomes integer ops, adopting the scales its quantize ops carry.

Each float op whose data operands come from `dequantize` and whose results all feed `quantize`
(an "island") becomes the integer form of the op defined in `tfc/ir/ops.py`, with the zero
points, multiplier/shift pairs and clamp bounds computed from the surrounding quantization. This
serves both the `calibrate` pass's output and onnxruntime `quantize_static` QDQ models.

LayerNorm and Softmax islands are left for `scaled-layernorm` and `softmax-lut`. The leading
quantize of each graph input and the trailing dequantize of each output are removed, so the graph
reads and writes int8 tensors carrying their quantization.

Requantization here is fixed point (TFLite); onnxruntime requantizes in float, so the two may
differ by one output LSB on a few elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from tfc.errors import UnsupportedOpError
from tfc.ir.core import Builder, Graph, Op, Value, const_value
from tfc.ir.ops import infer_types
from tfc.ir.quant_math import MEAN_EXTRA_BITS, add_multipliers, quantize_float
from tfc.ir.rewriter import const_hints
from tfc.ir.types import Quant, TensorType
from tfc.passes import register_pass
from tfc.passes.quant_rules import (INT8_MAX, INT8_MIN, activation_bounds, activation_quant,
                                    bias_int32, canonical_constant_channels, code_of,
                                    dequantized_source, erase_dead,
                                    float_const, has_qdq, multiplier_shift,
                                    per_channel_multipliers, quantize_users, real_const, requantize,
                                    symmetric_per_channel)
from tfc.pipeline import Pass

FLOAT_ISLANDS = ("layernorm", "softmax")  # lowered by scaled-layernorm and softmax-lut
_FLOAT_ACT_ATTRS = ("act", "act_min", "act_max")


@register_pass
@dataclass
class QuantizePass(Pass):
    """Lower dequantize -> float op -> quantize islands to integer ops (QDQ scale adoption)."""

    name: ClassVar[str] = "quantize"

    def run(self, graph: Graph) -> bool:
        if not has_qdq(graph):
            return False
        _fold_quantized_consts(graph)
        reasons: dict[int, str] = {}
        for op in graph.walk():
            rule = RULES.get(op.name)
            if rule is None or op.graph is not graph or not _is_float(op):
                continue
            island = Island.match(graph, op)
            if isinstance(island, str):
                reasons[id(op)] = island
                continue
            result = rule(island)
            if isinstance(result, str):
                reasons[id(op)] = result
                continue
            island.finish(result)
        _collapse_requantize_pairs(graph)
        _adopt_inputs(graph)
        _adopt_outputs(graph)
        erase_dead(graph)
        _check_integer(graph, reasons)
        return True


# -- islands -------------------------------------------------------------------------------------

class Island:
    """A float op between dequantize ops (its inputs) and quantize ops (its results' readers)."""

    def __init__(self, graph: Graph, op: Op, sources: list[Value], readers: list[list[Op]]):
        self.graph = graph
        self.op = op
        self.sources = sources  # per operand: the dequantized integer value, or the float const
        self.readers = readers  # per result: the quantize ops reading it
        self.b = Builder(graph, insert_before=op, loc=op.loc)

    @staticmethod
    def match(graph: Graph, op: Op) -> "Island | str":
        sources = []
        for v in op.operands:
            src = dequantized_source(v)
            if src is None and float_const(v) is None:
                return f"operand %{v.name} does not come from a dequantize"
            sources.append(src if src is not None else v)
        readers = []
        for r in op.results:
            users = quantize_users(graph, r)
            if users is None:
                return f"result %{r.name} does not feed only quantize ops"
            readers.append(users)
        return Island(graph, op, sources, readers)

    # -- operand access ----------------------------------------------------------------------
    def out_quant(self, i: int = 0) -> Quant:
        return self.readers[i][0].result.type.quant

    def activation(self, i: int) -> Value | str:
        """Operand i as an int8 per-tensor value (float constants are quantized on the spot)."""
        src = self.sources[i]
        arr = float_const(src)
        if arr is not None:
            quant = activation_quant(float(arr.min()), float(arr.max()))
            return self.b.const(quantize_float(arr, quant.s, quant.zp), f"{src.name}_q", quant)
        q = src.type.quant
        if src.type.dtype != "i8" or q is None or not q.is_per_tensor:
            return f"operand %{self.op.operands[i].name} is not an int8 per-tensor activation"
        return src

    def result_type(self, name: str, operands: list[Value], attrs: dict, quant: Quant) -> TensorType:
        return infer_types(name, [v.type for v in operands], attrs)[0].with_quant(quant)

    def int_op(self, operands: list[Value], int_attrs: dict, quant: Quant,
               drop_float_act: bool = True, name: str | None = None) -> Value:
        """The integer form of this island's op (one result), with its attributes merged in."""
        name = name or self.op.name
        attrs = {k: v for k, v in self.op.attrs.items()
                 if not (drop_float_act and k in _FLOAT_ACT_ATTRS)}
        attrs.update(int_attrs)
        rtype = self.result_type(name, operands, attrs, quant)
        return self.b.create(name, operands, attrs, [rtype], self.op.results[0].name).result

    # -- replacing the island ----------------------------------------------------------------
    def finish(self, new_values: list[Value]) -> None:
        """Readers of each quantize read the new integer value (requantized where they differ)."""
        names = [r.name for r in self.op.results]
        finals = []
        for value, readers in zip(new_values, self.readers):
            final = value
            for k, q in enumerate(readers):
                want = q.result.type.quant
                got = value if value.type.quant == want else requantize(self.b, value, want)
                if k == 0:
                    final = got
                self.graph.replace_all_uses_with(q.result, got)
                self.graph.erase(q)
            finals.append(final)
        self.graph.erase(self.op)
        taken = {v.name for v in self.graph.values()}
        for value, name in zip(finals, names):  # a new integer value inherits the float op's name
            if name not in taken and not any(value is s for s in self.sources):
                value.name = name


# -- the per-op rules ----------------------------------------------------------------------------
# A rule returns the new integer values (one per result) or a string saying why it cannot.

def _weights(isl: Island, i: int, out_channels_axis: int = 0, transpose: bool = False):
    """(int8 weight const, per-output-channel scales) for operand i, or a reason string.

    Symmetric int8 codes are kept as they are (an onnxruntime model stays bit-exact); float or
    asymmetric weights are requantized symmetric per output channel.
    """
    src = isl.sources[i]
    codes = const_value(src)
    q = src.type.quant
    if codes is not None and src.type.dtype == "i8" and q is not None and not any(q.zero_point):
        if q.axis is None or q.axis == out_channels_axis:
            codes = codes.T if transpose else codes
            n_out = codes.shape[0]
            scales = list(q.scale) * n_out if q.axis is None else list(q.scale)
            if transpose or q.axis not in (None, 0):
                quant = Quant(tuple(scales), (0,) * n_out, 0)
                return (isl.b.const(np.ascontiguousarray(codes), f"{src.name}_t", quant,
                                    **const_hints(src)), scales)
            return src, scales
    real = real_const(isl.op.operands[i])
    if real is None:
        return f"weights %{isl.op.operands[i].name} are not a constant"
    real = real.T if transpose else real
    codes, quant = symmetric_per_channel(real, axis=0)
    return isl.b.const(codes, f"{src.name}_q", quant, **const_hints(src)), list(quant.scale)


def _bias(isl: Island, i: int, scales: np.ndarray) -> Value | str:
    """An int32 bias at s_in * s_w; an onnxruntime bias already at that scale is kept."""
    src = isl.sources[i]
    q = src.type.quant
    codes = const_value(src)
    if codes is not None and src.type.dtype == "i32" and q is not None and not any(q.zero_point):
        have = np.broadcast_to(np.asarray(q.scale, dtype=np.float64), scales.shape)
        if np.allclose(have, scales, rtol=1e-6, atol=0):
            return src
    real = real_const(isl.op.operands[i])
    if real is None:
        return f"bias %{isl.op.operands[i].name} is not a constant"
    quant = Quant(tuple(scales), (0,) * len(scales), 0)
    return isl.b.const(bias_int32(real, scales), f"{src.name}_q", quant)


def _lower_weighted(isl: Island, from_matmul: bool = False) -> list[Value] | str:
    """conv2d / linear (and matmul by a constant [K, N] matrix, which becomes linear)."""
    x = isl.activation(0)
    if isinstance(x, str):
        return x
    weights = _weights(isl, 1, out_channels_axis=1 if from_matmul else 0, transpose=from_matmul)
    if isinstance(weights, str):
        return weights
    w, w_scales = weights
    out = isl.out_quant()
    s_x = x.type.quant.s
    acc_scales = s_x * np.asarray(w_scales, dtype=np.float64)
    bias = None
    if len(isl.sources) > 2:
        bias = _bias(isl, 2, acc_scales)
        if isinstance(bias, str):
            return bias
    multiplier, shift = per_channel_multipliers(acc_scales / out.s)
    bias, multiplier, shift = _canonical_constant_channels(isl, w, bias, multiplier, shift)
    operands = [x, w] if bias is None else [x, w, bias]
    act_min, act_max = activation_bounds(isl.op, out)
    attrs = {"input_zp": x.type.quant.zp, "output_zp": out.zp, "multiplier": multiplier,
             "shift": shift, "act_min": act_min, "act_max": act_max}
    name = "linear" if from_matmul else None
    return [isl.int_op(operands, attrs, out, name=name)]


def _canonical_constant_channels(isl: Island, w: Value, bias: Value | None, multiplier: list[int],
                                 shift: list[int]) -> tuple[Value | None, list[int], list[int]]:
    """quant_rules.canonical_constant_channels on the op's constants (pruned output channels)."""
    codes = const_value(w)
    if codes is None or len(multiplier) != codes.shape[0]:
        return bias, multiplier, shift
    bias_codes = None if bias is None else const_value(bias)
    if bias is not None and bias_codes is None:
        return bias, multiplier, shift
    new_bias, multiplier, shift = canonical_constant_channels(codes, bias_codes, multiplier, shift)
    if bias is not None and not np.array_equal(new_bias, bias_codes):
        bias = isl.b.const(new_bias, f"{bias.name}_c", bias.type.quant)
    return bias, multiplier, shift


def _lower_matmul(isl: Island) -> list[Value] | str:
    b_src = isl.sources[1]
    if b_src.type.rank == 2 and real_const(isl.op.operands[1]) is not None and \
            real_const(isl.op.operands[0]) is None:
        return _lower_weighted(isl, from_matmul=True)
    a, b = isl.activation(0), isl.activation(1)
    for v in (a, b):
        if isinstance(v, str):
            return v
    out = isl.out_quant()
    multiplier, shift = multiplier_shift(a.type.quant.s * b.type.quant.s / out.s)
    attrs = {"a_zp": a.type.quant.zp, "b_zp": b.type.quant.zp, "output_zp": out.zp,
             "multiplier": multiplier, "shift": shift, "act_min": INT8_MIN, "act_max": INT8_MAX}
    return [isl.int_op([a, b], attrs, out)]


def _lower_add(isl: Island) -> list[Value] | str:
    """add/sub: each operand scaled by s_in / s_y as multiplier / 2^shift, one rounding."""
    a, b = isl.activation(0), isl.activation(1)
    for v in (a, b):
        if isinstance(v, str):
            return v
    out = isl.out_quant()
    try:
        a_mult, b_mult, shift = add_multipliers(a.type.quant.s / out.s, b.type.quant.s / out.s)
    except ValueError as err:
        return str(err)
    act_min, act_max = activation_bounds(isl.op, out)
    attrs = {"a_zp": a.type.quant.zp, "b_zp": b.type.quant.zp, "output_zp": out.zp,
             "a_multiplier": a_mult, "b_multiplier": b_mult, "shift": shift,
             "act_min": act_min, "act_max": act_max}
    return [isl.int_op([a, b], attrs, out)]


def _lower_mul(isl: Island) -> list[Value] | str:
    """Multiplying by a scalar constant (or dividing by one) is a requantize."""
    out = isl.out_quant()
    for i in (0, 1):
        c = real_const(isl.op.operands[i])
        if c is not None and c.size == 1 and real_const(isl.op.operands[1 - i]) is None:
            x = isl.activation(1 - i)
            if isinstance(x, str):
                return x
            if isl.op.results[0].type.shape != x.type.shape:
                break  # the scalar broadcasts x to a larger shape; use the general form
            mult, shift = multiplier_shift(x.type.quant.s * float(c.reshape(())) / out.s)
            attrs = {"input_zp": x.type.quant.zp, "output_zp": out.zp, "multiplier": mult,
                     "shift": shift, "act_min": INT8_MIN, "act_max": INT8_MAX}
            return [isl.b.op("requantize", [x], name_hint=isl.op.results[0].name,
                             result_type=x.type.with_quant(out), **attrs)]
    a, b = isl.activation(0), isl.activation(1)
    for v in (a, b):
        if isinstance(v, str):
            return v
    mult, shift = multiplier_shift(a.type.quant.s * b.type.quant.s / out.s)
    attrs = {"a_zp": a.type.quant.zp, "b_zp": b.type.quant.zp, "output_zp": out.zp,
             "multiplier": mult, "shift": shift, "act_min": INT8_MIN, "act_max": INT8_MAX}
    return [isl.int_op([a, b], attrs, out)]


def _lower_clamp(isl: Island) -> list[Value] | str:
    """relu / clip: folded into the producer's clamp when possible, else clip or requantize."""
    x = isl.activation(0)
    if isinstance(x, str):
        return x
    out = isl.out_quant()
    if isl.op.name == "relu":
        lo, hi = code_of(0.0, out), INT8_MAX
    else:
        lo_real, hi_real = isl.op.attr("min"), isl.op.attr("max")
        lo = INT8_MIN if lo_real is None else code_of(lo_real, out)
        hi = INT8_MAX if hi_real is None else code_of(hi_real, out)
    if x.type.quant != out:
        return [requantize(isl.b, x, out, lo, hi, name_hint=isl.op.results[0].name)]
    producer = x.producer
    dq = isl.op.operands[0]
    if (producer is not None and "act_min" in producer.attrs and "act_max" in producer.attrs
            and len(x.uses) == 1 and len(dq.uses) == 1 and not isl.graph.is_output(x)):
        producer.attrs["act_min"] = max(lo, producer.attrs["act_min"])
        producer.attrs["act_max"] = min(hi, producer.attrs["act_max"])
        return [x]
    return [isl.b.op("clip", [x], name_hint=isl.op.results[0].name, result_type=x.type,
                     min=int(lo), max=int(hi))]


def _lower_pool(isl: Island) -> list[Value] | str:
    """avgpool2d / global_avgpool / reduce_mean: integer mean, then rescale s_x / s_y."""
    x = isl.activation(0)
    if isinstance(x, str):
        return x
    out = isl.out_quant()
    mult, shift = multiplier_shift(x.type.quant.s / ((1 << MEAN_EXTRA_BITS) * out.s))
    attrs = {"input_zp": x.type.quant.zp, "output_zp": out.zp, "multiplier": mult,
             "shift": shift, "act_min": INT8_MIN, "act_max": INT8_MAX}
    return [isl.int_op([x], attrs, out)]


def _lower_data_movement(isl: Island) -> list[Value] | str:
    """reshape / transpose / slice / split / maxpool2d keep their input's codes."""
    x = isl.activation(0)
    if isinstance(x, str):
        return x
    op = isl.op
    types = [t.with_quant(x.type.quant) for t in infer_types(op.name, [x.type], op.attrs)]
    new = isl.b.create(op.name, [x], dict(op.attrs), types, [r.name for r in op.results])
    return list(new.results)


def _lower_concat(isl: Island) -> list[Value] | str:
    out = isl.out_quant()
    parts = []
    for i in range(len(isl.sources)):
        v = isl.activation(i)
        if isinstance(v, str):
            return v
        parts.append(v if v.type.quant == out else requantize(isl.b, v, out))
    return [isl.int_op(parts, {}, out)]


RULES: dict[str, Callable[[Island], list[Value] | str]] = {
    "conv2d": _lower_weighted, "linear": _lower_weighted, "matmul": _lower_matmul,
    "add": _lower_add, "sub": _lower_add, "mul": _lower_mul,
    "relu": _lower_clamp, "clip": _lower_clamp,
    "avgpool2d": _lower_pool, "global_avgpool": _lower_pool, "reduce_mean": _lower_pool,
    "reshape": _lower_data_movement, "transpose": _lower_data_movement,
    "slice": _lower_data_movement, "split": _lower_data_movement,
    "maxpool2d": _lower_data_movement, "concat": _lower_concat,
}


# -- graph-level steps ---------------------------------------------------------------------------

def _is_float(op: Op) -> bool:
    return any(r.type.dtype == "f32" for r in op.results)


def _fold_quantized_consts(graph: Graph) -> None:
    """quantize(const f32) -> an integer const (frontends may leave weights as float + Q/DQ)."""
    for q in graph.walk("quantize"):
        arr = float_const(q.operands[0])
        quant = q.result.type.quant
        if arr is None or quant is None:
            continue
        scale = np.asarray(quant.scale, dtype=np.float32)
        zp = np.asarray(quant.zero_point, dtype=np.int32)
        if quant.axis is not None:
            shape = [1] * arr.ndim
            shape[quant.axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        codes = np.clip(np.rint(arr / scale) + zp, INT8_MIN, INT8_MAX).astype(np.int8)
        c = Builder(graph, insert_before=q).const(codes, q.result.name, quant,
                                                  **const_hints(q.operands[0]))
        graph.replace_all_uses_with(q.result, c)
        graph.erase(q)


def _collapse_requantize_pairs(graph: Graph) -> None:
    """quantize(dequantize(x)) is x itself, or a requantize when the parameters differ."""
    for q in graph.walk("quantize"):
        src = dequantized_source(q.operands[0])
        want = q.result.type.quant
        if src is None or src.type.dtype != "i8" or src.type.quant is None \
                or not src.type.quant.is_per_tensor or want is None:
            continue
        if src.type.quant == want:
            new = src
        else:
            new = requantize(Builder(graph, insert_before=q, loc=q.loc), src, want,
                             name_hint=q.result.name)
        graph.replace_all_uses_with(q.result, new)
        graph.erase(q)


def _adopt_inputs(graph: Graph) -> None:
    """A float input read only by quantize ops becomes an int8 input with their quantization."""
    for v in graph.inputs:
        readers = quantize_users(graph, v)
        if v.type.dtype != "f32" or readers is None:
            continue
        v.type = v.type.with_dtype("i8", readers[0].result.type.quant)
        for q in readers:
            want = q.result.type.quant
            new = v if want == v.type.quant else requantize(
                Builder(graph, insert_before=q, loc=q.loc), v, want, name_hint=q.result.name)
            graph.replace_all_uses_with(q.result, new)
            graph.erase(q)


def _adopt_outputs(graph: Graph) -> None:
    """An output that is dequantize(x) becomes x: the graph returns int8 with its quantization."""
    outputs = []
    for v in graph.outputs:
        src = dequantized_source(v)
        outputs.append(src if src is not None and src.type.dtype == "i8" else v)
    graph.outputs = outputs


def _check_integer(graph: Graph, reasons: dict[int, str]) -> None:
    """Only LayerNorm/Softmax islands may stay float; anything else is named in the error."""
    compute = [op for op in graph.ops if op.name not in ("const", "quantize", "dequantize")
               and op.name not in FLOAT_ISLANDS]
    for op in compute + [op for op in graph.ops if op.name in ("quantize", "dequantize")]:
        if _is_island_boundary(graph, op):
            continue
        floats = [v for v in list(op.operands) + list(op.results)
                  if v.type.dtype == "f32" and const_value(v) is None]
        if not floats:
            continue
        why = reasons.get(id(op))
        if why is None:
            why = (f"'{op.name}' has no int8 form" if op.name not in RULES
                   else "it is not between dequantize and quantize ops")
        raise UnsupportedOpError(
            f"{op.where()} is still float after quantization: {why}; quantize the model around "
            f"it (calibrate, or a QDQ model) or compile with --precision float32")
    for v in graph.inputs:
        if v.type.dtype == "f32":
            raise UnsupportedOpError(f"graph input %{v.name} is still float after quantization: "
                                     f"it must feed only quantize ops; recalibrate the model")


def _is_island_boundary(graph: Graph, op: Op) -> bool:
    """The dequantize into / quantize out of a LayerNorm or Softmax island (lowered later)."""
    if op.name == "dequantize":
        return all(u.name in FLOAT_ISLANDS for u in op.result.users) \
            and not graph.is_output(op.result)
    if op.name == "quantize":
        producer = op.operands[0].producer
        return producer is not None and producer.name in FLOAT_ISLANDS
    return False
