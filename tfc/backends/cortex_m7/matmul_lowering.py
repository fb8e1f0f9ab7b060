"""Lowering of `matmul` (activation x activation, e.g. attention's Q.K^T and A.V) to the runtime.

The op may read its operands and write its result through permutations (`a_perm`, `b_perm`,
`y_perm`: the multi-head split and merge, K^T), so everything here is strides: each operand and
the result are walked in place, and no transpose is ever copied. All of it is computed at compile
time:

- the element strides of A's rows and columns, of B's, of the result's, and of the batch walk
  (broadcast batch dims get stride 0; dims every walk steps through contiguously are merged);
- which operand the int8 kernel packs whole (tfc_matmul_s8.c widens all of B into scratch and A two
  rows at a time): Y = A B and Y^T = B^T A^T are the same strided call with the roles swapped, so
  the smaller of the two is packed;
- the requantization constants of the one-multiply form (`fast_requant`, proof below).

int8 matmuls whose panel would exceed MAX_PANEL_BYTES of scratch take the scalar strided kernel.

The requantization in the kernel's loop is tfc_requantize_high (SMMLA, ASR, then SSAT, STRB)
with the constants of quant_math.high_word_rounding, provided the high word plus the rounding
term stays in int32: `fast_requant` checks that from the largest possible |acc| = k * 255^2 (the
same bound that keeps the int32 accumulator exact), which admits more shifts than the dense
kernels' any-accumulator bound.
"""

from __future__ import annotations

import numpy as np

from tfc.errors import UnsupportedOpError
from tfc.ir.core import Op
from tfc.ir.quant_math import high_word_rounding
from tfc.ir.types import row_major_strides

MAX_PANEL_BYTES = 64 * 1024  # larger panels: the scalar kernel (no scratch) instead
MAX_ABS_DIFF = 255  # |x - zp| for int8 x and zp
INT32_MAX = (1 << 31) - 1

__all__ = ["fast_requant", "lower_matmul", "matmul_layout", "matmul_scratch_bytes"]


def _identity(rank: int) -> list[int]:
    return list(range(rank))


def _batch_strides(shape, strides, batch) -> list[int]:
    """Strides of an operand's batch dims (shape[:-2], right-aligned) along the broadcast batch."""
    pad = len(batch) - (len(shape) - 2)
    return [0 if i < pad or shape[i - pad] != d else strides[i - pad] for i, d in enumerate(batch)]


def _swap(lay: dict) -> dict:
    """The same product as Y^T = B^T A^T: A and B trade places, and so do the result's axes."""
    return dict(lay, m=lay["n"], n=lay["m"], a_stride_m=lay["b_stride_n"],
                a_stride_k=lay["b_stride_k"], b_stride_k=lay["a_stride_k"],
                b_stride_n=lay["a_stride_m"], y_stride_m=lay["y_stride_n"],
                y_stride_n=lay["y_stride_m"], a_batch=lay["b_batch"], b_batch=lay["a_batch"],
                swapped=not lay["swapped"])


def matmul_layout(op: Op, orient: bool = True) -> dict:
    """The strides of `op`'s operands and result as tfc_matmul_layout fields (batch dims not yet
    merged). `orient`: swap to Y^T = B^T A^T (`swapped`) when that packs the smaller operand."""
    a_type, b_type, y_type = op.operands[0].type, op.operands[1].type, op.result.type
    a_perm = op.attr("a_perm", None) or _identity(a_type.rank)
    b_perm = op.attr("b_perm", None) or _identity(b_type.rank)
    y_perm = op.attr("y_perm", None) or _identity(y_type.rank)
    a_nat, b_nat, y_nat = (row_major_strides(t.shape) for t in (a_type, b_type, y_type))
    a_shape = [a_type.shape[p] for p in a_perm]
    b_shape = [b_type.shape[p] for p in b_perm]
    a_str = [a_nat[p] for p in a_perm]  # logical A's dim d is stored dim a_perm[d]
    b_str = [b_nat[p] for p in b_perm]
    y_str = [0] * y_type.rank  # the product's dim y_perm[e] is stored dim e
    for e, d in enumerate(y_perm):
        y_str[d] = y_nat[e]
    batch = [int(d) for d in np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))]
    lay = dict(m=a_shape[-2], k=a_shape[-1], n=b_shape[-1], a_stride_m=a_str[-2],
               a_stride_k=a_str[-1], b_stride_k=b_str[-2], b_stride_n=b_str[-1],
               y_stride_m=y_str[-2], y_stride_n=y_str[-1], batch=batch,
               a_batch=_batch_strides(a_shape, a_str, batch),
               b_batch=_batch_strides(b_shape, b_str, batch), y_batch=y_str[:-2], swapped=False)
    return _swap(lay) if orient and lay["m"] < lay["n"] else lay


def _panel_bytes(layout: dict) -> int:
    """B's column pairs (two int16 columns of k4 plus two int32 start values each) and A's row pair."""
    k4 = -(-layout["k"] // 4) * 4
    column_pairs = -(-layout["n"] // 2)
    return column_pairs * (4 * k4 + 8) + 4 * k4


def _uses_panel(op: Op) -> bool:
    return op.operands[0].type.dtype == "i8" and _panel_bytes(matmul_layout(op)) <= MAX_PANEL_BYTES


def matmul_scratch_bytes(op: Op) -> int:
    """Scratch of the int8 panel kernel: int16 B panel plus two rows of A (0 for other kernels)."""
    return _panel_bytes(matmul_layout(op)) if _uses_panel(op) else 0


def fast_requant(multiplier: int, shift: int, output_zp: int, k: int) -> tuple[int, int] | None:
    """(rounding_high, post_shift) of the kernel's high-word requantization (module docstring), or
    None where shift > -2 or the high word could overflow (the kernel then calls tfc_requantize)."""
    rounding, post_shift = (int(v) for v in high_word_rounding(shift, output_zp))
    if not 1 <= post_shift <= 30:
        return None
    rounding_high = rounding
    max_high = (k * MAX_ABS_DIFF * MAX_ABS_DIFF * abs(int(multiplier))) >> 32
    if abs(rounding_high) + max_high + 1 > INT32_MAX:
        return None
    return rounding_high, post_shift


def lower_matmul(op: Op, ctx) -> list:
    """The kernel call computing `op`: the int8 panel kernel, or the scalar strided kernels."""
    from tfc.backends.cortex_m7.kernels import (KernelCall, _act_range, _check_rank, _kind,
                                                _merge_dims, c_ints, c_struct)

    kind = _kind(op)
    lay = matmul_layout(op)
    if kind == "i8" and lay["k"] * MAX_ABS_DIFF * MAX_ABS_DIFF > INT32_MAX:
        raise UnsupportedOpError(f"{op.where()}: a reduction of {lay['k']} elements can overflow "
                                 f"the kernel's int32 accumulator; split the matmul along k")
    panel = kind == "i8" and _panel_bytes(lay) <= MAX_PANEL_BYTES
    if not panel:  # the scalar kernels walk the op as written
        lay = matmul_layout(op, orient=False)
    dims, a_bs, b_bs, y_bs = _merge_dims(lay["batch"], lay["a_batch"], lay["b_batch"], lay["y_batch"])
    _check_rank(op, len(dims))
    shape = c_struct("tfc_matmul_layout", m=lay["m"], k=lay["k"], n=lay["n"],
                     a_stride_m=lay["a_stride_m"], a_stride_k=lay["a_stride_k"],
                     b_stride_k=lay["b_stride_k"], b_stride_n=lay["b_stride_n"],
                     y_stride_m=lay["y_stride_m"], y_stride_n=lay["y_stride_n"],
                     batch_rank=len(dims), batch_dims=c_ints(dims), a_batch_strides=c_ints(a_bs),
                     b_batch_strides=c_ints(b_bs), y_batch_strides=c_ints(y_bs))
    first, second = (1, 0) if lay["swapped"] else (0, 1)
    args = (ctx.buf(op.operands[first]), ctx.buf(op.operands[second]), ctx.buf(op.result), shape)
    if kind == "f32":
        return [KernelCall("tfc_matmul_f32", args)]
    a = op.attrs
    lo, hi = _act_range(op)
    a_zp, b_zp = (a["b_zp"], a["a_zp"]) if lay["swapped"] else (a["a_zp"], a["b_zp"])
    fast = fast_requant(a["multiplier"], a["shift"], a["output_zp"], lay["k"]) if panel else None
    rounding_high, post_shift = fast if fast is not None else (0, -1)
    quant = c_struct("tfc_matmul_quant", a_zp=a_zp, b_zp=b_zp, output_zp=a["output_zp"],
                     multiplier=a["multiplier"], shift=a["shift"], act_min=lo, act_max=hi,
                     rounding_high=rounding_high, post_shift=post_shift)
    if not panel:
        return [KernelCall("tfc_matmul_s8", args + (quant,))]
    scratch = ctx.scratch(_panel_bytes(lay), "uint32_t")
    return [KernelCall("tfc_matmul_s8_panel", args + (quant, scratch))]
