"""fold-transpose-matmul: multi-head split and merge (and K^T) become matmul strides, not copies.

Attention reshapes each projection [tokens, heads * d] to [tokens, heads, d] (free: a view) and
transposes it to [heads, tokens, d] (K to [heads, d, tokens]) before the two matmuls, then
transposes the result back to [tokens, heads, d] for the output projection. Each transpose is a
copy of the whole activation, and a buffer the arena must hold. The matmul kernel reads its
operands and writes its result with any strides, so this pass moves the transposes into the matmul
as layout attributes (ops.py `matmul`):

- a `transpose` producing operand A (B) whose only reader is the matmul: the matmul reads the
  transpose's input through `a_perm` (`b_perm`), composed with any perm it already had;
- a `transpose` that is the only reader of the matmul's result: the matmul writes the transposed
  layout itself (`y_perm`), takes the transpose's result name, and the transpose goes.

Reshapes around the transposes stay: they are views. Transposes with other readers, that are
graph outputs, or that carry per-axis quantization are left alone. Float and integer matmuls alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfc.ir.core import Graph, Op
from tfc.ir.rewriter import replace_value, single_user
from tfc.pipeline import Pass

_OPERAND_PERMS = ("a_perm", "b_perm")


@dataclass
class FoldTransposeMatmulPass(Pass):
    """Absorbs the transposes around a matmul into its a_perm / b_perm / y_perm attributes."""

    name = "fold-transpose-matmul"

    def run(self, graph: Graph) -> bool:
        changed = False
        for op in list(graph.walk("matmul")):
            for index, key in enumerate(_OPERAND_PERMS):
                changed |= _fold_operand(graph, op, index, key)
            changed |= _fold_result(graph, op)
        return changed


def _foldable(transpose: Op | None) -> bool:
    if transpose is None or transpose.name != "transpose":
        return False
    quants = (transpose.operands[0].type.quant, transpose.result.type.quant)
    return all(q is None or q.axis is None for q in quants)


def _perm_or_identity(op: Op, key: str, rank: int) -> list[int]:
    return list(op.attr(key, None) or range(rank))


def _set_perm(op: Op, key: str, perm: list[int]) -> None:
    if perm == list(range(len(perm))):
        op.attrs.pop(key, None)  # the identity layout is the default: keep the IR canonical
    else:
        op.attrs[key] = perm


def _fold_operand(graph: Graph, op: Op, index: int, key: str) -> bool:
    """matmul(transpose(x, t)) {perm} reads x through t[perm]."""
    value = op.operands[index]
    transpose = value.producer
    if not _foldable(transpose) or single_user(value) is not op:
        return False
    perm = _perm_or_identity(op, key, value.type.rank)
    _set_perm(op, key, [transpose.attrs["perm"][p] for p in perm])
    op.set_operand(index, transpose.operands[0])
    graph.erase(transpose)  # its one reader now reads its input
    return True


def _fold_result(graph: Graph, op: Op) -> bool:
    """transpose(matmul {y_perm}, t) is the matmul writing through y_perm[t]."""
    transpose = single_user(op.result)
    if not _foldable(transpose):
        return False
    perm = _perm_or_identity(op, "y_perm", op.result.type.rank)
    _set_perm(op, "y_perm", [perm[t] for t in transpose.attrs["perm"]])
    op.result.type = transpose.result.type
    # The result now is the transpose's value: its name keeps dumps and `tfc validate` matching
    # the ONNX tensor of that layout.
    replace_value(graph, transpose.result, op.result, keep_name=True)
    return True
