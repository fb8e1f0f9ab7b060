"""Block run-length encoding (brle) of int8 weight tensors.

A weight tensor is viewed as `rows` rows in the order its kernel walks them (one row per output
channel; see `walk_rows`). Each row is cut into blocks of `b` weights (the last block of a row is
zero-padded when the row length is not a multiple of b). The stream lists only the blocks that are
not all zero, in row-major order, each as the record

    (d, v1 .. vb)        d: uint8, the number of all-zero blocks skipped since the previous record

Block positions run on across row ends, so the stream needs no per-row offsets: a kernel keeps a
running (row, column) and wraps the column at `blocks_per_row`. A gap of more than 255 blocks is
bridged with filler records `(255, 0 .. 0)`; a filler is an ordinary record of zeros, so kernels
need no special case for it. All-zero rows (and all-zero tails) simply have no records.

Size: `(1 + b)` bytes per record, nothing else. With ρ the fraction of all-zero blocks,
dense / sparse = η = 1 / ((1 - ρ)(1 + 1/b)) exactly, up to fillers and the row padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SKIP = 255
WALKS = ("conv", "depthwise", "linear")


@dataclass(frozen=True)
class BrleStream:
    """An encoded tensor: the record bytes plus the geometry a kernel needs to walk them."""

    data: np.ndarray  # uint8, records of (1 + block) bytes
    block: int
    rows: int
    blocks_per_row: int
    row_length: int  # weights per row before padding to a multiple of `block`

    @property
    def records(self) -> int:
        return len(self.data) // (1 + self.block)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


def walk_rows(weights: np.ndarray, walk: str) -> np.ndarray:
    """The [rows, row_length] view of a weight tensor in its kernel's walk order.

    conv: OHWI weights -> [O, kh*kw*I] (blocks run along input channels, then kernel width);
    depthwise: [C, kh, kw, 1] -> [C, kh*kw] (with b = kw, one block per kernel row);
    linear: [out, in] -> itself (blocks run along input features).
    """
    w = np.asarray(weights)
    if walk not in WALKS:
        raise ValueError(f"unknown walk '{walk}'; known: {', '.join(WALKS)}")
    if walk == "linear":
        if w.ndim != 2:
            raise ValueError(f"linear weights must be [out, in], got {list(w.shape)}")
        return w
    if w.ndim != 4:
        raise ValueError(f"{walk} weights must be rank 4, got {list(w.shape)}")
    return w.reshape(w.shape[0], -1)


def _blocks(rows: np.ndarray, block: int) -> tuple[np.ndarray, int]:
    """[rows * blocks_per_row, block] blocks of a 2-D array, rows zero-padded; and blocks_per_row."""
    n_rows, length = rows.shape
    per_row = -(-length // block) if length else 0
    padded = np.zeros((n_rows, per_row * block), dtype=rows.dtype)
    padded[:, :length] = rows
    return padded.reshape(n_rows * per_row, block), per_row


def block_sparsity(rows: np.ndarray, block: int) -> float:
    """ρ: the fraction of blocks (rows zero-padded to whole blocks) that are all zero."""
    blocks, _ = _blocks(np.asarray(rows), block)
    if len(blocks) == 0:
        return 0.0
    return float(np.count_nonzero(~blocks.any(axis=1))) / len(blocks)


def predicted_eta(rho: float, block: int) -> float:
    """η = 1 / ((1 - ρ)(1 + 1/b)): the compression the paper predicts for block sparsity ρ."""
    if rho >= 1.0:
        return float("inf")
    return 1.0 / ((1.0 - rho) * (1.0 + 1.0 / block))


def encode(rows: np.ndarray, block: int) -> BrleStream:
    """Encodes a [rows, row_length] int8 array (see `walk_rows`) into a brle stream."""
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise ValueError(f"encode takes a [rows, row_length] array, got shape {list(rows.shape)}")
    if rows.dtype != np.int8:
        raise ValueError(f"encode takes int8 weights, got {rows.dtype}")
    if block < 1:
        raise ValueError(f"block size must be >= 1, got {block}")
    blocks, per_row = _blocks(rows, block)
    stored = np.flatnonzero(blocks.any(axis=1))
    gaps = np.diff(np.concatenate(([-1], stored))) - 1
    fillers = gaps // (MAX_SKIP + 1)  # each filler covers 255 skipped blocks plus itself
    skips = gaps - fillers * (MAX_SKIP + 1)
    n_records = len(stored) + int(fillers.sum())
    records = np.zeros((n_records, 1 + block), dtype=np.uint8)
    # Record i of `stored` lands after the fillers of all records up to and including it.
    at = np.arange(len(stored)) + np.cumsum(fillers)
    filler_mask = np.ones(n_records, dtype=bool)
    filler_mask[at] = False
    records[filler_mask, 0] = MAX_SKIP
    records[at, 0] = skips
    records[at, 1:] = blocks[stored].view(np.uint8)
    return BrleStream(records.reshape(-1), block, rows.shape[0], per_row, rows.shape[1])


def decode(stream: BrleStream) -> np.ndarray:
    """The [rows, row_length] int8 array a stream encodes (the inverse of `encode`)."""
    b = stream.block
    records = stream.data.reshape(-1, 1 + b)
    positions = np.cumsum(records[:, 0].astype(np.int64) + 1) - 1
    blocks = np.zeros((stream.rows * stream.blocks_per_row, b), dtype=np.int8)
    if len(positions) and positions[-1] >= len(blocks):
        raise ValueError(f"brle stream runs past its {len(blocks)} blocks (to block {positions[-1]})")
    blocks[positions] = records[:, 1:].view(np.int8)
    return blocks.reshape(stream.rows, stream.blocks_per_row * b)[:, :stream.row_length]


def encoded_nbytes(rows: np.ndarray, block: int) -> int:
    """Bytes of the stream `encode(rows, block)` would produce, without building it."""
    blocks, _ = _blocks(np.asarray(rows), block)
    stored = np.flatnonzero(blocks.any(axis=1))
    gaps = np.diff(np.concatenate(([-1], stored))) - 1
    return int(len(stored) + (gaps // (MAX_SKIP + 1)).sum()) * (1 + block)
