"""fold-matmul-requantize: a requantize right after an int8 matmul becomes the matmul's own.

Attention scales Q.K^T by 1/sqrt(d). In a QDQ or calibrated graph that Div is a float island
between the matmul's quantize and the softmax's, and `quantize` turns it into a `requantize`
(often an integer identity: multiplier 1.0, same zero point, only the scale label changes by
sqrt(d)). Either way it is a second pass over the scores. This pass folds it into the matmul:

    requantize(matmul(a, b) {M1, zp1}) {M2, zp1 -> zp2}  =>  matmul(a, b) {M1 * M2, zp2}

where M1 and M2 are the real multipliers the two ops carry (multiplier * 2^(shift - 31)), and the
product is quantized once. Conditions: the requantize is the matmul result's only reader (and the
result is not a graph output), its input zero point is the matmul's output zero point, and the
matmul does not clamp (its act range is the whole int8 range), so no intermediate saturation is
lost; the fold takes the requantize's clamp and result type.

Exactness: when M2 is exactly 1.0 (the 1/sqrt(d) label-only case) the matmul's multiplier and shift
are unchanged and the result is bit-identical. Otherwise the fold rounds once instead of twice and
never saturates in between, so it is at least as accurate as the pair it replaces (the two may
differ by one LSB where the double rounding of the pair was off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfc.ir.core import Graph, Op
from tfc.ir.quant_math import quantize_multiplier
from tfc.ir.rewriter import replace_value, single_user
from tfc.pipeline import Pass

INT8_MIN, INT8_MAX = -128, 127


@dataclass
class FoldMatmulRequantizePass(Pass):
    """Folds a requantize that follows an int8 matmul into the matmul's multiplier and zero point."""

    name = "fold-matmul-requantize"

    def run(self, graph: Graph) -> bool:
        changed = False
        for op in list(graph.walk("matmul")):
            changed |= _fold(graph, op)
        return changed


def _real(multiplier: int, shift: int) -> float:
    return math.ldexp(float(multiplier), int(shift) - 31)


def _fold(graph: Graph, matmul: Op) -> bool:
    requant = single_user(matmul.result)
    if requant is None or requant.name != "requantize" or "multiplier" not in matmul.attrs:
        return False
    mm, rq = matmul.attrs, requant.attrs
    clamps = mm.get("act_min", INT8_MIN) > INT8_MIN or mm.get("act_max", INT8_MAX) < INT8_MAX
    if clamps or rq["input_zp"] != mm["output_zp"] or not isinstance(rq["multiplier"], int):
        return False
    if (rq["multiplier"], rq["shift"]) == quantize_multiplier(1.0):
        multiplier, shift = mm["multiplier"], mm["shift"]  # a label-only requantize: exact
    else:
        try:
            multiplier, shift = quantize_multiplier(_real(mm["multiplier"], mm["shift"])
                                                    * _real(rq["multiplier"], rq["shift"]))
        except ValueError:
            return False  # the product is too large for a 32-bit multiplier
    mm.update(multiplier=multiplier, shift=shift, output_zp=rq["output_zp"],
              act_min=rq.get("act_min", INT8_MIN), act_max=rq.get("act_max", INT8_MAX))
    matmul.result.type = requant.result.type
    replace_value(graph, requant.result, matmul.result)
    return True
