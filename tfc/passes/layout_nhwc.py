"""layout-nhwc: spatial ops compute in NHWC, with as few transposes as possible between them.

The Cortex-M7 kernels walk channels innermost (so sparse blocks run along input channels and two
int8 weights pair up per SMLAD), while ONNX graphs are NCHW. This pass:

1. turns every nchw `conv2d`, `maxpool2d`, `avgpool2d`, `global_avgpool` and rank-4 `batchnorm`
   into its nhwc form, transposing constant conv weights OIHW -> OHWI at compile time (a
   per-axis quantization axis follows its data), with a transpose to NHWC before the op and one
   back to NCHW after it, so every other op still sees the layout it was written for;
2. sinks the transposes back to NCHW through layout-agnostic elementwise ops (relu, clip, add,
   sub, mul, requantize, quantize, dequantize) when all their non-constant operands come from
   the same transpose perm: constants are transposed at compile time instead;
3. composes adjacent transposes and drops the identities, so a chain of convs and elementwise
   ops ends up with no transposes inside it.

The graph's interface stays NCHW exactly as in ONNX: a transpose at an input or an output (or
before a layout-sensitive op such as reshape) remains, as a real op that the backend runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfc.ir.core import Builder, Graph, Op, Value, const_value
from tfc.ir.rewriter import const_hints, erase_dead, make_const, rename, transpose_quant, transposed_type
from tfc.passes.canonicalize import merge_transposes, remove_identity
from tfc.pipeline import Pass

TO_NHWC = [0, 2, 3, 1]
TO_NCHW = [0, 3, 1, 2]

_SPATIAL_OPS = ("conv2d", "maxpool2d", "avgpool2d", "global_avgpool", "batchnorm")
_ELEMENTWISE = ("relu", "clip", "add", "sub", "mul", "requantize", "quantize", "dequantize")


@dataclass
class LayoutNhwcPass(Pass):
    """Converts nchw spatial ops to nhwc and cancels the transposes that meet in between."""

    name = "layout-nhwc"

    def run(self, graph: Graph) -> bool:
        changed = False
        ohwi_weights: dict[int, Value] = {}  # a weight shared by several convs is transposed once
        for op in graph.walk():
            if op.name in _SPATIAL_OPS and op.attr("layout", "nchw") == "nchw" and op.result.type.rank == 4:
                convert_to_nhwc(graph, op, ohwi_weights)
                changed = True
        if changed:  # only tidy transposes this pass made; a graph already in nhwc is left alone
            cancel_transposes(graph)
        return changed


def transpose(graph: Graph, before: Op, x: Value, perm: list[int], name: str) -> Value:
    """`transpose(x, perm)` placed before `before`; a constant is transposed right away."""
    array = const_value(x)
    result_type = transposed_type(x.type, perm)
    if array is not None:
        return make_const(graph, before, np.transpose(array, perm), name, result_type,
                          **const_hints(x))
    op = Builder(graph, insert_before=before, loc=before.loc).create(
        "transpose", [x], {"perm": list(perm)}, [result_type], name)
    return op.result


def convert_to_nhwc(graph: Graph, op: Op, ohwi_weights: dict[int, Value]) -> None:
    x, result = op.operands[0], op.result
    operands = [transpose(graph, op, x, TO_NHWC, f"{x.name}_nhwc")]
    if op.name == "conv2d":
        w = op.operands[1]
        if id(w) not in ohwi_weights:  # OIHW -> OHWI
            ohwi_weights[id(w)] = transpose(graph, op, w, TO_NHWC, f"{w.name}_ohwi")
        operands.append(ohwi_weights[id(w)])
        operands.extend(op.operands[2:])
    else:
        operands.extend(op.operands[1:])
    new = Builder(graph, insert_before=op, loc=op.loc).create(
        op.name, operands, {**op.attrs, "layout": "nhwc"},
        [transposed_type(result.type, TO_NHWC)], result.name)
    back = Builder(graph, insert_before=op, loc=op.loc).create(
        "transpose", [new.result], {"perm": list(TO_NCHW)}, [result.type], f"{result.name}_nchw")
    graph.replace_all_uses_with(result, back.result)
    old_weights = op.operands[1].producer if op.name == "conv2d" else None
    graph.erase(op)
    rename(graph, new.result, result.name)
    erase_dead(graph, old_weights)


def cancel_transposes(graph: Graph) -> None:
    """Sinks transposes through elementwise ops and cancels them, to a fixpoint."""
    changed = True
    while changed:
        changed = False
        for op in graph.walk():
            if op.graph is not graph:
                continue
            if op.name in _ELEMENTWISE:
                changed |= sink_transpose(graph, op)
            elif op.name == "transpose":
                changed |= merge_transposes(graph, op) or remove_identity(graph, op)
        for op in reversed(list(graph.ops)):  # transposes left without users by sinking
            if op.name == "transpose" and not op.result.uses and not graph.is_output(op.result):
                graph.erase(op)


def sink_transpose(graph: Graph, op: Op) -> bool:
    """op(transpose(a, p), transpose(b, p), const) -> transpose(op(a, b, const'), p)."""
    perm = None
    for v in op.operands:
        producer = v.producer
        if producer is not None and producer.name == "transpose" and const_value(v) is None:
            if perm is not None and producer.attrs["perm"] != perm:
                return False
            perm = producer.attrs["perm"]
        elif const_value(v) is None:
            return False  # an operand in the other layout would need a transpose of its own
    if perm is None:
        return False
    rank = len(perm)
    if op.result.type.rank != rank or any(v.type.rank > rank for v in op.operands):
        return False
    inverse = [int(i) for i in np.argsort(perm)]
    operands = []
    for v in op.operands:
        array = const_value(v)
        if array is None:
            operands.append(v.producer.operands[0])
            continue
        if array.ndim and v.type.quant is not None and v.type.quant.axis is not None:
            return False  # a per-axis constant would change meaning under broadcasting
        full = array.reshape((1,) * (rank - array.ndim) + array.shape)
        operands.append(make_const(graph, op, np.transpose(full, inverse), f"{v.name}_t",
                                   v.type.with_shape(full.shape).with_quant(v.type.quant)))
    result = op.result
    in_type = result.type.with_shape(tuple(result.type.shape[i] for i in inverse))
    in_type = in_type.with_quant(transpose_quant(result.type.quant, inverse))
    new = Builder(graph, insert_before=op, loc=op.loc).create(
        op.name, operands, dict(op.attrs), [in_type], result.name)
    back = Builder(graph, insert_before=op, loc=op.loc).create(
        "transpose", [new.result], {"perm": list(perm)}, [result.type], f"{result.name}_t")
    graph.replace_all_uses_with(result, back.result)
    old_producers = [v.producer for v in op.operands]
    graph.erase(op)
    rename(graph, new.result, result.name)
    for producer in old_producers:
        erase_dead(graph, producer)
    return True
