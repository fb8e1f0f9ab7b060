"""sparse-storage: choose dense or block run-length (brle) storage for every int8 weight tensor.

Pruned weights stored dense buy nothing on an MCU. This pass looks at each constant that is the
weight operand of int8 `conv2d` (groups 1, or depthwise) and `linear` ops, measures its block
sparsity in the order the kernel walks it (tfc.sparse.walk_rows), and records the choice on the
const: `storage = "brle"` with `block`, the block sparsity `sparsity`, the predicted compression
`eta` and the measured `ratio`, or `storage = "dense"`. The backend then emits the encoded stream
and calls the sparse kernel. The weights' values never change: interpreters ignore storage.
Where a brle stream would be smaller, the const also records `predicted_dense_instructions` and
`predicted_sparse_instructions`: the fitted M7 cost model's instructions for the layers that
read it (tfc.sparse.choice), summed over all of them.

Options:
  prefer = speed (default): sparse only where it is smaller *and* the cost model predicts that
           the sparse kernels run fewer instructions than the dense ones on these layers;
           size: sparse wherever it is smaller (when flash is the binding limit);
           dense: never sparse.
  block  = 0 (detect from the zero pattern) or 2 / 4 to force the block size of conv and linear
           weights. A `block` attribute already on a const (the NAS exporter's hint, see
           docs/sparse.md) fixes that tensor's block size.
Runs on the final layout (nhwc: OHWI weights), so it sits just before memory-plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tfc.errors import PassError
from tfc.ir.core import Graph, Op, Value
from tfc.passes import register_pass
from tfc.pipeline import Pass
from tfc.sparse import PREFERENCES, LayerGeometry, choose_storage, layer_geometry

RECORDED = ("storage", "block", "sparsity", "eta", "ratio", "predicted_dense_instructions",
            "predicted_sparse_instructions")


def weight_walk(op: Op) -> str | None:
    """How the sparse kernel of `op` walks its weights, or None when no sparse kernel applies."""
    if len(op.operands) < 2 or op.operands[0].type.dtype != "i8" or op.operands[1].type.dtype != "i8":
        return None
    if op.name == "linear":
        return "linear"
    if op.name != "conv2d" or op.attr("layout", "nchw") != "nhwc":
        return None
    group = op.attr("group", 1)
    if group == 1:
        return "conv"
    in_c = op.operands[0].type.shape[3]
    if group == in_c == op.result.type.shape[3] and op.operands[1].type.shape[3] == 1:
        return "depthwise"
    return None


def op_geometry(op: Op, walk: str) -> LayerGeometry:
    """The shape facts the cost model needs of `op`, which reads its weights as `walk`."""
    return layer_geometry(walk, op.operands[0].type.shape, op.operands[1].type.shape,
                          op.result.type.shape, op.attr("strides", [1, 1]),
                          op.attr("pads", [0, 0, 0, 0]), op.attr("dilations", [1, 1]))


def _weight_walk_of(const: Op) -> str | None:
    """The one walk every reader of a const agrees on (None if it is read in any other way)."""
    walks = set()
    value: Value = const.result
    for user, index in value.uses:
        walk = weight_walk(user) if index == 1 else None
        if walk is None:
            return None
        walks.add(walk)
    if len(walks) != 1 or (const.graph is not None and const.graph.is_output(value)):
        return None
    return walks.pop()


@register_pass
@dataclass
class SparseStoragePass(Pass):
    """Store each int8 weight tensor dense or block run-length encoded, whichever pays (η per tensor)."""

    name: ClassVar[str] = "sparse-storage"
    prefer: str = "speed"
    block: int = 0

    def requires(self, graph: Graph) -> None:
        if self.prefer not in PREFERENCES:
            raise PassError(f"sparse-storage: unknown prefer={self.prefer}; use one of "
                            f"{', '.join(PREFERENCES)}")
        if self.block not in (0, 2, 4):
            raise PassError(f"sparse-storage: block={self.block} is not supported; use 0 "
                            "(detect), 2 or 4")

    def run(self, graph: Graph) -> bool:
        self.requires(graph)
        changed = False
        for const in graph.walk("const"):
            walk = _weight_walk_of(const)
            if walk is None:
                continue
            hint = self.block or const.attrs.get("block") if walk != "depthwise" else None
            layers = tuple(op_geometry(user, walk) for user, _ in const.result.uses)
            choice = choose_storage(const.attrs["value"].array, walk, block_hint=hint,
                                    prefer=self.prefer, layers=layers)
            attrs = {"storage": choice.storage}
            if choice.storage == "brle":
                attrs.update(block=choice.block, sparsity=float(choice.sparsity),
                             eta=float(choice.eta), ratio=float(choice.ratio))
            if choice.predicted_sparse_instructions is not None:
                attrs.update(predicted_dense_instructions=choice.predicted_dense_instructions,
                             predicted_sparse_instructions=choice.predicted_sparse_instructions)
            before = {k: const.attrs.get(k) for k in RECORDED}
            for key in RECORDED:
                const.attrs.pop(key, None)
            const.attrs.update(attrs)
            changed |= before != {k: const.attrs.get(k) for k in RECORDED}
        return changed
