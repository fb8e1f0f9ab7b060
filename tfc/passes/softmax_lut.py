"""softmax-lut: dequantize -> softmax -> quantize becomes an int8 softmax reading an exp table.

Softmax of int8 codes only needs exp(-s_x * (x_max - x_i)) for the 256 possible differences, and
s_x is known at compile time: the compiler computes the table (`quant_math.softmax_exp_lut`) and
stores it in flash, so the run-time kernel uses no exp and no float. Per row the kernel finds the
max, sums table entries, and takes one reciprocal 2^32 / (sum * s_y); each output is then one
32x32->64 multiply (UMLAL) of its table entry by that reciprocal. See `softmax` in tfc/ir/ops.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tfc.errors import UnsupportedOpError
from tfc.ir.core import Builder, Graph
from tfc.ir.quant_math import SOFTMAX_MAX_ROW, softmax_exp_lut, softmax_params
from tfc.passes import register_pass
from tfc.passes.quant_rules import LastAxisIsland, replace_island, rewrite_islands
from tfc.pipeline import Pass


@register_pass
@dataclass
class SoftmaxLutPass(Pass):
    """Replace float Softmax islands between dequantize/quantize by int8 softmax with an exp LUT."""

    name: ClassVar[str] = "softmax-lut"

    def run(self, graph: Graph) -> bool:
        return rewrite_islands(graph, "softmax", _rewrite)


def _rewrite(graph: Graph, island: LastAxisIsland) -> str | None:
    op, x, out = island.op, island.x, island.out
    if x.type.shape[-1] > SOFTMAX_MAX_ROW:
        return f"rows of {x.type.shape[-1]} elements (the integer kernel takes <= {SOFTMAX_MAX_ROW})"
    try:
        multiplier, shift = softmax_params(out.s)
    except ValueError as e:
        raise UnsupportedOpError(f"{op.where()}: {e}") from None
    b = Builder(graph, insert_before=op, loc=op.loc)
    lut = b.const(softmax_exp_lut(x.type.quant.s), f"{op.result.name}_exp_lut")
    new = b.op("softmax", [x, lut], name_hint=op.result.name, result_type=x.type.with_quant(out),
               axis=-1, output_zp=out.zp, multiplier=multiplier, shift=shift)
    replace_island(graph, island, new)
    return None
