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
from tfc.sparse.choice import prediction_fields


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


BRLE_WIDE = 8  # output pixels or tokens per pass over the stream (BRLE_WIDE in tfc_sparse.c)


def _patch_bytes(blocks_per_row: int, block: int, rows: int) -> int:
    """tfc_sparse.c's scratch: the group patch (BRLE_WIDE int16 rows), the int8 window (one
    im2col row; rows are padded to whole blocks and to a multiple of 4), and the row table a
    call fills (brle_row: 5 int32 per weight row)."""
    padded = -(-blocks_per_row * block // 4) * 4
    return 2 * BRLE_WIDE * padded + padded + 20 * rows


def row_constants(op: Op, rows: np.ndarray, folded_bias: np.ndarray, short: bool) -> np.ndarray:
    """int32[rows, 4]: the constants tfc_sparse.c's row loops read of each weight row (its
    brle_row less the record bytes, which a call counts from the stream).

    (folded bias, multiplier, rounding, k): with the short requantization the rounding and k of
    tfc_requantize_high, except for rows whose shift is > -2 (short_requant_exact proved them all
    zero), which hold (0, constant output, 0); otherwise (multiplier, shift, 0) for
    tfc_requantize."""
    from tfc.backends.cortex_m7.kernels import _act_range
    from tfc.ir.quant_math import multiply_by_quantized_multiplier

    count = rows.shape[0]
    multiplier = np.broadcast_to(np.asarray(op.attrs["multiplier"], np.int64), (count,)).copy()
    shift = np.broadcast_to(np.asarray(op.attrs["shift"], np.int64), (count,))
    bias = folded_bias.astype(np.int64)
    if not short:
        rounding, k = shift.copy(), np.zeros(count, np.int64)
    else:
        rounding, k = high_word_rounding(shift, op.attrs["output_zp"])
        constant = shift > -2
        lo, hi = _act_range(op)
        outputs = multiply_by_quantized_multiplier(bias, multiplier, shift) + op.attrs["output_zp"]
        rounding = np.where(constant, np.clip(outputs, lo, hi), rounding)
        multiplier = np.where(constant, 0, multiplier)
        k = np.where(constant, 0, k)
    return np.stack([bias, multiplier, rounding, k], axis=1).astype(np.int32)


def _as_linear(op: Op) -> bool:
    """Whether conv `op` is a 1x1 conv that reads each pixel alone (stride 1, no padding): the
    linear kernel over its pixels, which widens whole pixels instead of gathering windows."""
    _, kh, kw, _ = op.operands[1].type.shape
    return (kh, kw) == (1, 1) and list(op.attr("strides", [1, 1])) == [1, 1] \
        and not any(op.attr("pads", [0, 0, 0, 0]))


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
    from tfc.backends.cortex_m7.kernels import KernelCall, _act_range, _window, c_struct

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
    if walk == "depthwise":
        return lower_sparse_depthwise(op, ctx, stream, walk_rows(const.attrs["value"].array, walk),
                                      _bias_array(op))
    # conv and linear: the input zero point folded into the bias (the kernels widen x as is), and
    # everything a row needs in one table.
    rows = walk_rows(const.attrs["value"].array, walk)
    short = short_requant_exact(op, rows)
    w = _stream_struct(ctx, op, stream, short)
    folded = fold_zero_point(_bias_array(op), rows, op.attrs["input_zp"])
    table = ctx.const_array(f"{op.operands[1].name}_rows",
                            row_constants(op, rows, folded, short).reshape(-1))
    lo, hi = _act_range(op)
    quant = c_struct("tfc_channel_quant", input_zp=op.attrs["input_zp"],
                     output_zp=op.attrs["output_zp"], multiplier="NULL", shift="NULL",
                     act_min=lo, act_max=hi, high_word="NULL")
    scratch = ctx.scratch(_patch_bytes(stream.blocks_per_row, stream.block, stream.rows),
                          "int16_t")
    if walk == "linear" or _as_linear(op):
        in_features = rows.shape[1]
        tokens = op.operands[0].type.numel // in_features
        return [KernelCall("tfc_linear_brle_s8", (
            x, w, table, y, str(tokens), str(in_features), quant, scratch))]
    out_c, kh, kw, _ = op.operands[1].type.shape
    return [KernelCall("tfc_conv2d_brle_s8", (
        x, w, table, y, _window(op, (kh, kw), out_c, 1), quant, scratch))]


def sparse_layer_fields(op: Op, const: Op) -> dict:
    """report.json fields of a layer whose weights the sparse-storage pass looked at.

    `execution` is the kernel that runs ("sparse" on the brle stream, else "dense");
    `stored_weight_bytes` what the weight tensor takes in flash; `eta` the predicted and
    `ratio` the measured dense/stored compression; `predicted_dense_instructions` and
    `predicted_sparse_instructions` the cost model's figures the pass chose by (when it made any)."""
    if "storage" not in const.attrs:
        return {}
    dense_bytes = int(const.attrs["value"].array.nbytes)
    if const.attrs["storage"] != "brle":
        return {"execution": "dense", "dense_weight_bytes": dense_bytes,
                "stored_weight_bytes": dense_bytes, "eta": None, "ratio": None,
                **prediction_fields(const.attrs)}
    walk = weight_walk(op)
    stored = stream_of(const, walk).nbytes if walk else dense_bytes
    return {"execution": "sparse" if walk else "dense", "dense_weight_bytes": dense_bytes,
            "stored_weight_bytes": stored, "eta": const.attrs.get("eta"),
            "ratio": round(dense_bytes / max(stored, 1), 4), **prediction_fields(const.attrs)}
