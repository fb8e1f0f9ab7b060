"""Block magnitude pruning of a whole ONNX model, in the order tfc's kernels walk each weight.

Pruning that ignores the walk order leaves zeros the block codec cannot skip: a conv's blocks run
along input channels of OHWI weights, a depthwise conv's along kernel width, a linear's along
input features of [out, in] weights. Used by the tests, the benchmarks and nas/ exports.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

def prune_onnx(model: onnx.ModelProto, sparsity: float, block: int = 4,
               hint: bool = True) -> onnx.ModelProto:
    """A copy of `model` with every Conv, MatMul and Gemm weight block-pruned to `sparsity`.

    With `hint`, each weight pruned in blocks of `block` carries the initializer metadata
    `tfc.sparse.block`, so the sparse-storage pass encodes it with that block size (depthwise
    weights always use the kernel width and get no hint).
    """
    from tfc.sparse import BLOCK_HINT_KEY, prune_blocks

    pruned = onnx.ModelProto()
    pruned.CopyFrom(model)
    weight_of = {}
    for node in pruned.graph.node:
        if node.op_type in ("Conv", "MatMul", "Gemm") and len(node.input) > 1:
            weight_of[node.input[1]] = node
    for init in pruned.graph.initializer:
        node = weight_of.get(init.name)
        if node is None:
            continue
        w = numpy_helper.to_array(init)
        walk = "linear"
        if node.op_type == "Conv":  # OIHW -> OHWI (depthwise: [C, kh, kw, 1])
            ohwi = w.transpose(0, 2, 3, 1)
            walk, b = ("depthwise", w.shape[3]) if w.shape[1] == 1 else ("conv", block)
            new = prune_blocks(ohwi, walk, b, sparsity).transpose(0, 3, 1, 2)
        else:  # MatMul [in, out] (and Gemm with transB=0) -> [out, in]
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            out_in = w if trans_b else w.T
            new = prune_blocks(out_in, "linear", block, sparsity)
            new = new if trans_b else new.T
        metadata = [(p.key, p.value) for p in init.metadata_props if p.key != BLOCK_HINT_KEY]
        if hint and walk != "depthwise":
            metadata.append((BLOCK_HINT_KEY, str(block)))
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new), init.name))
        for key, value in metadata:
            init.metadata_props.add(key=key, value=value)
    return pruned
