"""Sparse weight storage: the block run-length codec and the dense-vs-sparse choice.

Public (used by the sparse-storage pass, the Cortex-M7 backend and nas/):

    from tfc import sparse
    rows = sparse.walk_rows(w_ohwi, "conv")          # [O, kh*kw*I] in the kernel's walk order
    stream = sparse.encode(rows, block=4)            # BrleStream: (d, v1..vb) records
    assert (sparse.decode(stream) == rows).all()
    choice = sparse.choose_storage(w_ohwi, "conv")   # dense or brle, block, ρ, η, measured ratio
    pruned = sparse.prune_onnx(model, 0.7, block=4)  # a whole ONNX model, block-pruned by magnitude

The NAS exporter may fix a tensor's block size with the ONNX initializer metadata key
`BLOCK_HINT_KEY` (value "2" or "4"); see docs/sparse.md.
"""

from tfc.sparse.choice import (PREFERENCES, LayerGeometry, StorageChoice, candidate_blocks,
                               choose_storage, element_sparsity, layer_geometry)
from tfc.sparse.codec import (MAX_SKIP, BrleStream, block_sparsity, decode, encode, encoded_nbytes,
                              predicted_eta, walk_rows)
from tfc.sparse.onnx_prune import prune_onnx

BLOCK_HINT_KEY = "tfc.sparse.block"
HINTABLE_BLOCKS = (2, 4)  # along input channels; depthwise always uses b = kernel width


def prune_blocks(weights, walk: str, block: int, sparsity: float):
    """Magnitude pruning in blocks: zeroes the `sparsity` fraction of blocks with the least L1 norm.

    Works on any array in the walk's layout and returns a new array of the same dtype; used by
    tests and benchmarks, and by nas/ to make exported weights block-sparse.
    """
    import numpy as np

    w = np.asarray(weights)
    rows = walk_rows(w, walk)
    n_rows, length = rows.shape
    per_row = -(-length // block)
    padded = np.zeros((n_rows, per_row * block), dtype=np.float64)
    padded[:, :length] = rows
    norms = np.abs(padded.reshape(n_rows * per_row, block)).sum(axis=1)
    drop = int(round(sparsity * len(norms)))
    keep = np.ones(len(norms), dtype=bool)
    keep[np.argsort(norms, kind="stable")[:drop]] = False
    mask = np.repeat(keep, block).reshape(n_rows, per_row * block)[:, :length]
    return np.where(mask.reshape(w.shape), w, np.zeros_like(w))


__all__ = ["BLOCK_HINT_KEY", "HINTABLE_BLOCKS", "MAX_SKIP", "PREFERENCES",
           "BrleStream", "LayerGeometry", "StorageChoice",
           "block_sparsity", "candidate_blocks", "choose_storage", "decode", "element_sparsity",
           "encode", "encoded_nbytes", "layer_geometry", "predicted_eta", "prune_blocks", "prune_onnx", "walk_rows"]
