"""Choosing a weight tensor's storage: dense, or brle with the block size that is smallest.

The block size is detected from the zero pattern: every candidate is measured (a tensor pruned in
blocks of 4 is also block-sparse for b = 2, but its stream is smaller with b = 4), unless a hint
fixes it. Sparse storage is chosen only where the stream is smaller than the dense tensor, and
sparse *execution* only where it is also faster: below `CROSSOVER_DENSITY` the sparse kernel runs
fewer instructions than the dense one (measured on the emulated Cortex-M7, see docs/sparse.md).
Above it, the tensor stays dense unless flash is the binding limit (`prefer="size"`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfc.sparse.codec import block_sparsity, encoded_nbytes, predicted_eta, walk_rows

# Candidate block sizes per walk (DESIGN.md "Sparse storage"); depthwise blocks are kernel rows.
BLOCK_CANDIDATES = {"conv": (4, 2), "linear": (4, 2), "depthwise": ()}

# Highest block density (1 - ρ) at which the sparse kernel still runs fewer instructions than
# tfc's SMLAD dense kernel on the same layer, per walk and block size: a straight line fitted to
# the sparse/dense instruction ratios that bench/sparse_kernels.py measures on the emulated
# Cortex-M7 over ρ = 0.3..0.9 (docs/sparse.md), solved for 1.0 and rounded down to 0.05. A walk
# takes the lowest of its layers (conv: 3x3 and pointwise; linear: 64->192 and 192->64). Above
# 0.8 (b = 4) or 2/3 (b = 2) brle is larger than dense anyway. Depthwise (tfc_sparse_dw.c against
# tfc_depthwise.c's 2.32 instructions/MAC on 16x16x64): 1.07x at ρ = 0.3, 0.98x at 0.4, 0.61x
# at 0.7, 0.30x at 0.9; the fitted line crosses 1.0 at density 0.62.
CROSSOVER_DENSITY = {
    ("conv", 2): 0.65, ("conv", 4): 0.90,
    ("linear", 2): 0.65, ("linear", 4): 0.90,
    ("depthwise", 3): 0.60,
}

PREFERENCES = ("speed", "size", "dense")


@dataclass(frozen=True)
class StorageChoice:
    storage: str  # "dense" or "brle"
    block: int | None
    sparsity: float  # ρ: fraction of all-zero blocks at `block` (element sparsity when dense)
    eta: float | None  # predicted dense/sparse ratio
    ratio: float | None  # measured dense/sparse ratio
    nbytes: int  # bytes in flash with this storage
    reason: str  # why, for reports and --debug output


def element_sparsity(weights: np.ndarray) -> float:
    w = np.asarray(weights)
    return float(np.count_nonzero(w == 0)) / max(1, w.size)


def candidate_blocks(weights: np.ndarray, walk: str) -> tuple[int, ...]:
    if walk == "depthwise":
        return (int(np.asarray(weights).shape[2]),)  # one block per kernel row: b = kw
    return BLOCK_CANDIDATES[walk]


def choose_storage(weights: np.ndarray, walk: str, *, block_hint: int | None = None,
                   prefer: str = "speed") -> StorageChoice:
    """Dense or brle for one int8 weight tensor walked as `walk` (see codec.walk_rows)."""
    if prefer not in PREFERENCES:
        raise ValueError(f"unknown preference '{prefer}'; known: {', '.join(PREFERENCES)}")
    w = np.asarray(weights)
    dense_bytes = int(w.nbytes)
    dense = StorageChoice("dense", None, round(element_sparsity(w), 4), None, None, dense_bytes, "")
    if prefer == "dense" or w.dtype != np.int8:
        return _with_reason(dense, "sparse storage is off" if prefer == "dense" else "not int8")
    rows = walk_rows(w, walk)
    blocks = (block_hint,) if block_hint else candidate_blocks(w, walk)
    best = None
    for b in blocks:
        nbytes = encoded_nbytes(rows, b)
        if best is None or nbytes < best[1]:
            best = (b, nbytes)
    if best is None:
        return _with_reason(dense, "no block size applies")
    b, nbytes = best
    rho = block_sparsity(rows, b)
    eta = predicted_eta(rho, b)
    sparse = StorageChoice("brle", b, round(rho, 4), round(min(eta, 1e9), 4),
                           round(dense_bytes / max(nbytes, 1), 4), nbytes, "")
    if nbytes >= dense_bytes:
        return _with_reason(dense, f"brle (b={b}) would take {nbytes} B >= {dense_bytes} B dense")
    density = 1.0 - rho
    limit = CROSSOVER_DENSITY.get((walk, b), 0.0)
    if prefer == "speed" and density > limit:
        return _with_reason(dense, f"block density {density:.2f} is above the {walk} b={b} "
                                   f"crossover {limit:.2f}: the dense kernel is faster")
    return _with_reason(sparse, f"brle b={b}: {nbytes} B < {dense_bytes} B dense")


def _with_reason(choice: StorageChoice, reason: str) -> StorageChoice:
    return StorageChoice(choice.storage, choice.block, choice.sparsity, choice.eta, choice.ratio,
                         choice.nbytes, reason)
