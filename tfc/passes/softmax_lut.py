"""softmax-lut: dequantize -> softmax -> quantize becomes an int8 softmax reading an exp table.

Softmax of int8 codes only needs exp(-s_x * (x_max - x_i)) for the 256 possible differences, and
s_x is known at compile time: the compiler computes the table (`quant_math.softmax_exp_lut`) and
stores it in flash, so the run-time kernel uses no exp and no float. The probability is formed as
a Q31 fixed-point number and requantized by 2^-31 / s_y. See `softmax` in tfc/ir/ops.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tfc.ir.core import Builder, Graph, Op
from tfc.ir.quant_math import softmax_exp_lut
from tfc.passes import register_pass
from tfc.passes.quant_rules import (dequantized_source, erase_dead, multiplier_shift, per_tensor,
                                    quantize_users)
from tfc.pipeline import Pass

Q31 = 2.0 ** -31


@register_pass
@dataclass
class SoftmaxLutPass(Pass):
    """Replace float Softmax islands between dequantize/quantize by int8 softmax with an exp LUT."""

    name: ClassVar[str] = "softmax-lut"

    def run(self, graph: Graph) -> bool:
        changed = False
        for op in graph.walk("softmax"):
            if op.graph is graph and op.result.type.dtype == "f32" and _rewrite(graph, op) is None:
                changed = True
        if changed:
            erase_dead(graph)
        return changed


def _rewrite(graph: Graph, op: Op) -> str | None:
    """Rewrites one island; returns why it does not match instead (None when rewritten)."""
    x = dequantized_source(op.operands[0])
    if x is None or x.type.dtype != "i8" or per_tensor(x) is None:
        return "input is not dequantized from an int8 per-tensor tensor"
    axis = op.attr("axis", -1)
    if axis not in (-1, x.type.rank - 1):
        return f"axis {axis} is not the last axis"
    readers = quantize_users(graph, op.result)
    if readers is None:
        return "result does not feed only quantize ops"
    out = per_tensor(readers[0].result)
    if out is None or any(q.result.type.quant != out for q in readers):
        return "result is quantized in different ways"

    b = Builder(graph, insert_before=op, loc=op.loc)
    lut = b.const(softmax_exp_lut(x.type.quant.s), f"{op.result.name}_exp_lut")
    multiplier, shift = multiplier_shift(Q31 / out.s)
    name = op.result.name
    new = b.op("softmax", [x, lut], name_hint=name, result_type=x.type.with_quant(out), axis=-1,
               output_zp=out.zp, multiplier=multiplier, shift=shift)
    for q in readers:
        graph.replace_all_uses_with(q.result, new)
        graph.erase(q)
    graph.erase(op)
    if name not in {v.name for v in graph.values()}:
        new.name = name
    return None
