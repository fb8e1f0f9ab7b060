"""Small rewriting helpers shared by passes: constants, value replacement, dead-op removal.

Passes in tfc are short loops over `graph.walk()`; these helpers keep the bookkeeping (uses,
names, op order) out of them. Replacing an op keeps its result name on the new value, so name
hints from ONNX survive rewrites and FileCheck tests read naturally.
"""

from __future__ import annotations

import numpy as np

from tfc.ir.core import Builder, DenseAttr, Graph, Op, Value, const_value
from tfc.ir.types import Quant, TensorType, dtype_of_numpy

__all__ = ["const_value", "single_user", "replace_value", "erase_dead", "erase_dead_ops",
           "make_const", "transpose_quant", "transposed_type", "rename"]


def single_user(v: Value) -> Op | None:
    """The one op that uses `v` once, when `v` is not a graph output; else None."""
    if len(v.uses) != 1 or (v.producer is not None and v.producer.graph is not None
                            and v.producer.graph.is_output(v)):
        return None
    return v.uses[0][0]


def rename(graph: Graph, v: Value, name: str) -> None:
    """Gives `v` the name hint `name` (made unique), e.g. the name of the value it replaced."""
    if v.name != name:
        v.name = "__renaming__"
        v.name = graph.unique_name(name)


def replace_value(graph: Graph, old: Value, new: Value, keep_name: bool = False) -> None:
    """Redirects every use of `old` (graph outputs too) to `new`; erases `old`'s op if now dead.

    With `keep_name` (for a value made to stand in for `old`, e.g. a folded constant), `new` takes
    `old`'s name once `old`'s op is gone; graph inputs keep theirs (they are the model's interface).
    """
    name = old.name
    graph.replace_all_uses_with(old, new)
    producer = old.producer
    if producer is not None and producer.graph is graph and _dead(graph, producer):
        graph.erase(producer)
        if keep_name and new.producer is not None:
            rename(graph, new, name)


def _dead(graph: Graph, op: Op) -> bool:
    return all(not r.uses and not graph.is_output(r) for r in op.results)


def erase_dead(graph: Graph, op: Op | None) -> bool:
    """Erases `op` and, transitively, its operands' producers when they become unused."""
    if op is None or op.graph is not graph or not _dead(graph, op):
        return False
    producers = [v.producer for v in op.operands]
    graph.erase(op)
    for p in producers:
        erase_dead(graph, p)
    return True


def erase_dead_ops(graph: Graph) -> bool:
    """Dead-code elimination over the whole graph (reverse order, so chains die in one sweep)."""
    changed = False
    for op in reversed(list(graph.ops)):
        if op.graph is graph and _dead(graph, op):
            graph.erase(op)
            changed = True
    return changed


HINT_ATTRS = ("block",)  # what a weight keeps when a pass rewrites its data (the NAS block hint)
_HINT_CARRIERS = ("dequantize", "quantize", "transpose", "reshape")


def const_hints(v: Value) -> dict:
    """The hint attributes of the const behind `v`, looking through Q/DQ and movement ops."""
    while v.producer is not None and v.producer.name in _HINT_CARRIERS and v.producer.operands:
        v = v.producer.operands[0]
    producer = v.producer
    if producer is None or producer.name != "const":
        return {}
    return {key: producer.attrs[key] for key in HINT_ATTRS if key in producer.attrs}


def make_const(graph: Graph, before: Op, array: np.ndarray, name: str,
               type: TensorType | None = None, **attrs) -> Value:
    """A new `const` op placed before `before`. `type` keeps a quantization; its dtype wins."""
    array = np.asarray(array)
    if type is not None:
        array = array.astype(type.np_dtype, copy=False)
        result_type = type.with_shape(array.shape)
    else:
        result_type = TensorType(array.shape, dtype_of_numpy(array.dtype))
    op = Builder(graph, insert_before=before).create(
        "const", [], {"value": DenseAttr(array), **attrs}, [result_type], name)
    return op.result


def transpose_quant(quant: Quant | None, perm: list[int]) -> Quant | None:
    """The quantization of a tensor after `transpose(perm)`: a per-axis axis follows its data."""
    if quant is None or quant.axis is None:
        return quant
    return Quant(quant.scale, quant.zero_point, list(perm).index(quant.axis))


def transposed_type(t: TensorType, perm: list[int]) -> TensorType:
    return TensorType(tuple(t.shape[p] for p in perm), t.dtype, transpose_quant(t.quant, perm))
