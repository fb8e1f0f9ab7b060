"""Lowering of int8 conv2d / linear whose weight const is stored brle (sparse-storage pass).

`kernels.py` asks `lower_sparse(op, ctx)` first; it returns None when the weights are dense, and
otherwise the call of the tfc_sparse.c kernel that computes on the encoded stream. The stream is
encoded here (tfc.sparse.encode, in the kernel's walk order) and stored in weights.c as a uint8
array; the dense weights are never emitted for such an op. Depthwise convs go to
sparse_dw_lowering.py (tfc_sparse_dw.c).
"""

from __future__ import annotations

import numpy as np

from tfc.backends.cortex_m7.sparse_dw_lowering import (depthwise_scratch_bytes,
                                                     lower_sparse_depthwise)
from tfc.errors import UnsupportedOpError
from tfc.ir.core import Op
from tfc.ir.quant_math import high_word_rounding
from tfc.passes.memory_plan import storage_root
from tfc.passes.sparse_storage import weight_walk
from tfc.sparse import BrleStream, encode, walk_rows


def brle_const(op: Op) -> Op | None:
    """The weight const of `op` when the sparse-storage pass chose brle for it, else None."""
    if op.name not in ("conv2d", "linear") or len(op.operands) < 2:
        return None
    root = storage_root(op.operands[1])
    const = root.producer
    if const is None or const.name != "const" or const.attrs.get("storage") != "brle":
        return None
    return const


def stream_of(const: Op, walk: str) -> BrleStream:
    return encode(walk_rows(const.attrs["value"].array, walk), int(const.attrs["block"]))


def _stream_struct(ctx, op: Op, stream: BrleStream, short_requant: bool = False) -> str:
    from tfc.backends.cortex_m7.kernels import c_struct

    data = ctx.const_array(f"{op.operands[1].name}_brle", stream.data if stream.nbytes else
                           np.zeros(1, np.uint8))
    return c_struct("tfc_brle", data=data, records=stream.records, block=stream.block,
                    blocks_per_row=stream.blocks_per_row, rows=stream.rows,
                    short_requant=int(short_requant))


def _bias_array(op: Op) -> np.ndarray | None:
    if len(op.operands) < 3:
        return None
    const = storage_root(op.operands[2]).producer
    if const is None or const.name != "const":
        raise UnsupportedOpError(f"{op.where()}: the sparse kernel needs a constant bias; store "
                                 "these weights dense")
    return const.attrs["value"].array.reshape(-1)


def short_requant_exact(op: Op, rows: np.ndarray) -> bool:
    """Whether tfc_sparse.c's short requantization (SMMLA, ASR) is exact on every output of `op`.

    It needs, with k = -1 - shift, every shift <= -2 (MBQM then only needs the product's high
    word) and the rounding constant 2^(k-1) + output_zp * 2^k within +-2^30. A row whose weights
    are all zero may have any shift (a pruned channel's tiny weight scale makes it large): the
    kernel stores its constant output instead."""
    channels = rows.shape[0]
    shift = np.broadcast_to(np.asarray(op.attrs["shift"], np.int64), (channels,))
    zero_rows = ~rows.any(axis=1)
    short = (shift <= -2) & (shift >= -31)
    if not (short | zero_rows).all():
        return False
    rounding, _ = high_word_rounding(shift[short], op.attrs["output_zp"])
    return bool((np.abs(rounding) < (1 << 30)).all())


BRLE_GROUP = 4  # output pixels or tokens per pass over the stream (BRLE_GROUP in tfc_sparse.c)


ROW_TABLE_BYTES = 20  # sizeof(brle_row) in tfc_sparse.c: records, bias and requantization


def _patch_bytes(blocks_per_row: int, block: int, rows: int) -> int:
    """The group patch (BRLE_GROUP int16 rows) and the row table."""
    return 2 * BRLE_GROUP * blocks_per_row * block + ROW_TABLE_BYTES * rows


def sparse_scratch_bytes(op: Op) -> int | None:
    """Scratch the sparse kernel of `op` needs (None when its weights are stored dense)."""
    const = brle_const(op)
    walk = weight_walk(op) if const is not None else None
    if walk is None:
        return None
    if walk == "depthwise":
        return depthwise_scratch_bytes(op)  # tfc_sparse_dw.c
    rows, row_length = walk_rows(const.attrs["value"].array, walk).shape
    block = int(const.attrs["block"])
    return _patch_bytes(-(-row_length // block), block, rows)


def lower_sparse(op: Op, ctx):
    """The tfc_sparse.c call for `op`, or None when its weights are stored dense."""
    from tfc.backends.cortex_m7.dense_lowering import fold_zero_point
    from tfc.backends.cortex_m7.kernels import KernelCall, _channel_quant, _window

    const = brle_const(op)
    if const is None:
        return None
    walk = weight_walk(op)
    if walk is None:
        raise UnsupportedOpError(f"{op.where()}: its weights are stored brle but no sparse kernel "
                                 "takes this op; run sparse-storage again or store them dense")
    stream = stream_of(const, walk)
    if walk != "depthwise" and stream.block not in (2, 4):
        raise UnsupportedOpError(f"{op.where()}: brle block {stream.block} has no {walk} kernel; "
                                 "use block 2 or 4")
    x, y = ctx.buf(op.operands[0]), ctx.buf(op.result)
    patch_bytes = _patch_bytes(stream.blocks_per_row, stream.block, stream.rows)
    if walk == "depthwise":
        return lower_sparse_depthwise(op, ctx, stream, walk_rows(const.attrs["value"].array, walk),
                                      _bias_array(op))
    # conv and linear: the input zero point folded into the bias (the kernels widen x as is).
    rows = walk_rows(const.attrs["value"].array, walk)
    bias = _bias_array(op)
    w = _stream_struct(ctx, op, stream, short_requant_exact(op, rows))
    folded = ctx.const_array(f"{op.operands[1].name}_bias_folded",
                             fold_zero_point(bias, rows, op.attrs["input_zp"]))
    if walk == "linear":
        out_features, in_features = op.operands[1].type.shape
        tokens = op.operands[0].type.numel // in_features
        return [KernelCall("tfc_linear_brle_s8", (
            x, w, folded, y, str(tokens), str(in_features), _channel_quant(ctx, op, out_features),
            ctx.scratch(patch_bytes, "int16_t")))]
    out_c, kh, kw, _ = op.operands[1].type.shape
    return [KernelCall("tfc_conv2d_brle_s8", (
        x, w, folded, y, _window(op, (kh, kw), out_c, 1), _channel_quant(ctx, op, out_c),
        ctx.scratch(patch_bytes, "int16_t")))]


def sparse_layer_fields(op: Op, const: Op) -> dict:
    """report.json fields of a layer whose weights the sparse-storage pass looked at.

    `execution` is the kernel that runs ("sparse" on the brle stream, else "dense");
    `stored_weight_bytes` what the weight tensor takes in flash; `eta` the predicted and
    `ratio` the measured dense/stored compression."""
    if "storage" not in const.attrs:
        return {}
    dense_bytes = int(const.attrs["value"].array.nbytes)
    if const.attrs["storage"] != "brle":
        return {"execution": "dense", "dense_weight_bytes": dense_bytes,
                "stored_weight_bytes": dense_bytes, "eta": None, "ratio": None}
    walk = weight_walk(op)
    stored = stream_of(const, walk).nbytes if walk else dense_bytes
    return {"execution": "sparse" if walk else "dense", "dense_weight_bytes": dense_bytes,
            "stored_weight_bytes": stored, "eta": const.attrs.get("eta"),
            "ratio": round(dense_bytes / max(stored, 1), 4)}
