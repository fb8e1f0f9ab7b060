"""canonicalize: local simplifications that leave the graph in one tidy, normal form.

Other passes match patterns, so they expect a graph without noise: no dead ops, no reshapes or
transposes that do nothing or that could be one op, no constant subgraphs left for the device to
compute, and one const op per distinct constant. Rules, applied to a fixpoint:

- dead ops (results unused and not returned) are removed;
- `reshape` to the same shape and `transpose` with the identity perm are removed;
- `reshape(reshape(x))` is one reshape; `transpose(transpose(x))` is one transpose (perms compose);
- a transpose that only moves size-1 dims is a `reshape` (no data moves);
- a chain of transposes and reshapes that leaves every element at its flat position (such as
  NHWC -> transpose to NCHW -> reshape to [N, C, HW] -> transpose to tokens [N, HW, C]) is one reshape;
- an identity `requantize` (same zero points, multiplier 1.0, no clamping) is removed;
- an op whose operands are all constants is evaluated with the interpreter and becomes a const
  (except `quantize`/`dequantize`: a weight's `dequantize(const i8)` is how QDQ graphs say
  "this float is really int8", which the quantize pass needs to see);
- identical constants (same type, data and attributes) are merged.

Works on float and integer graphs; it is the clean-up step between the other passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfc.ir.core import Graph, Op, attrs_equal, const_value
from tfc.ir.quant_math import quantize_multiplier
from tfc.ir.rewriter import const_hints, erase_dead_ops, make_const, replace_value
from tfc.pipeline import Pass

# Folding these would erase information later passes rely on (see the module docstring).
_NEVER_FOLD = frozenset({"const", "quantize", "dequantize"})
# A folded constant may not grow past this many bytes beyond its operands (broadcasts, tiling):
# flash is the scarce resource on the target, computing it at run time is cheaper.
_FOLD_GROWTH_LIMIT = 64 * 1024


@dataclass
class CanonicalizePass(Pass):
    """Removes dead and no-op ops, merges reshape/transpose chains, folds constants, dedupes them."""

    name = "canonicalize"
    fold_constants: bool = True
    max_iterations: int = 20

    def run(self, graph: Graph) -> bool:
        changed = False
        for _ in range(self.max_iterations):
            step = erase_dead_ops(graph)
            for op in graph.walk():
                step |= simplify_op(graph, op, self.fold_constants)
            step |= dedupe_constants(graph)
            step |= erase_dead_ops(graph)
            if not step:
                break
            changed = True
        return changed


def simplify_op(graph: Graph, op: Op, fold_constants: bool = True) -> bool:
    """Applies the first rule that matches `op`; True when the graph changed."""
    if op.graph is not graph:
        return False
    if op.name == "reshape":
        return (remove_identity(graph, op) or merge_reshapes(graph, op)
                or collapse_movement_chain(graph, op))
    if op.name == "transpose":
        return (remove_identity(graph, op) or merge_transposes(graph, op)
                or transpose_to_reshape(graph, op) or collapse_movement_chain(graph, op))
    if op.name == "requantize" and is_identity_requantize(op):
        return remove_identity(graph, op, check_attrs=False)
    if fold_constants:
        return fold_constant_op(graph, op)
    return False


def remove_identity(graph: Graph, op: Op, check_attrs: bool = True) -> bool:
    """Forwards the operand of a reshape/transpose/requantize that does not change its input."""
    src, res = op.operands[0], op.result
    if src.type != res.type:
        return False
    if check_attrs and op.name == "transpose" and op.attrs["perm"] != list(range(res.type.rank)):
        return False
    if src.producer is None and graph.is_output(res):
        return False  # `return %input` would make the graph's output alias its input buffer
    replace_value(graph, res, src)
    return True


def merge_reshapes(graph: Graph, op: Op) -> bool:
    inner = op.operands[0].producer
    if inner is None or inner.name != "reshape":
        return False
    op.set_operand(0, inner.operands[0])
    _erase_if_dead(graph, inner)
    return True


def merge_transposes(graph: Graph, op: Op) -> bool:
    inner = op.operands[0].producer
    if inner is None or inner.name != "transpose":
        return False
    inner_perm, outer_perm = inner.attrs["perm"], op.attrs["perm"]
    op.attrs["perm"] = [inner_perm[p] for p in outer_perm]
    op.set_operand(0, inner.operands[0])
    _erase_if_dead(graph, inner)
    return True


def transpose_to_reshape(graph: Graph, op: Op) -> bool:
    """A transpose keeps its bytes in place when the dims it reorders (other than 1s) keep order."""
    src = op.operands[0]
    perm = op.attrs["perm"]
    moved = [p for p in perm if src.type.shape[p] != 1]
    if moved != sorted(moved) or op.result.type.quant != src.type.quant:
        return False  # data moves, or a per-axis quantization axis would need remapping
    op.name = "reshape"
    op.attrs = {"shape": list(op.result.type.shape)}
    return True


_MOVEMENT = ("reshape", "transpose")
_CHAIN_TRACE_LIMIT = 1 << 20  # elements; tracing a larger chain costs more than it could save


def collapse_movement_chain(graph: Graph, op: Op) -> bool:
    """Replaces a reshape/transpose chain ending at `op` by one reshape when no element moves.

    The chain is followed upward through single-use movement ops with unchanged quantization;
    whether it moves data is decided exactly, by pushing the flat indices through it.
    """
    chain = [op]
    while True:
        src = chain[-1].operands[0]
        prev = src.producer
        if (prev is None or prev.name not in _MOVEMENT or len(src.uses) != 1
                or graph.is_output(src) or src.type.quant != op.result.type.quant):
            break
        chain.append(prev)
    if len(chain) < 2 or op.result.type.numel > _CHAIN_TRACE_LIMIT:
        return False
    head = chain[-1].operands[0]
    index = np.arange(head.type.numel).reshape(head.type.shape)
    for step in reversed(chain):
        if step.name == "transpose":
            index = index.transpose(step.attrs["perm"])
        else:
            index = index.reshape(step.result.type.shape)
    if not np.array_equal(index.reshape(-1), np.arange(head.type.numel)):
        return False
    op.name = "reshape"
    op.attrs = {"shape": list(op.result.type.shape)}
    op.set_operand(0, head)
    for dead in chain[1:]:
        _erase_if_dead(graph, dead)
    return True


def is_identity_requantize(op: Op) -> bool:
    a = op.attrs
    info = np.iinfo(op.result.type.np_dtype)
    return (a.get("input_zp") == a.get("output_zp")
            and (a.get("multiplier"), a.get("shift")) == quantize_multiplier(1.0)
            and a.get("act_min", info.min) <= info.min and a.get("act_max", info.max) >= info.max)


def fold_constant_op(graph: Graph, op: Op) -> bool:
    if op.name in _NEVER_FOLD or not op.operands:
        return False
    arrays = [const_value(v) for v in op.operands]
    if any(a is None for a in arrays):
        return False
    out_bytes = sum(r.type.nbytes for r in op.results)
    if out_bytes > sum(a.nbytes for a in arrays) + _FOLD_GROWTH_LIMIT:
        return False
    from tfc.ir.interp import run_op  # the interpreter is the definition of what the op computes

    results = run_op(op, list(arrays))
    for r, array in zip(list(op.results), results):
        hints = const_hints(op.operands[0]) if op.name in ("transpose", "reshape") else {}
        new = make_const(graph, op, array, r.name, r.type, **hints)
        replace_value(graph, r, new, keep_name=True)
    _erase_if_dead(graph, op)
    return True


def dedupe_constants(graph: Graph) -> bool:
    """Merges consts with equal type, data and attributes into the first of them."""
    seen: dict[tuple, list[Op]] = {}
    changed = False
    for op in graph.walk("const"):
        value = op.attrs["value"]
        key = (op.result.type, value.array.dtype.str, value.array.shape, value.array.tobytes())
        for first in seen.setdefault(key, []):
            if attrs_equal(first.attrs, op.attrs):
                if graph.is_output(op.result) and graph.is_output(first.result):
                    break  # two outputs need two buffers
                graph.replace_all_uses_with(op.result, first.result)
                _erase_if_dead(graph, op)
                changed = True
                break
        else:
            seen[key].append(op)
    return changed


def _erase_if_dead(graph: Graph, op: Op) -> None:
    if op.graph is graph and all(not r.uses and not graph.is_output(r) for r in op.results):
        graph.erase(op)
