"""scaled-layernorm: dequantize -> layernorm -> quantize becomes an integer Scaled-LayerNorm.

TinyFormer (paper III-C.3): normalising in integers and rounding x_norm straight to an integer
loses most of its precision (it spans only about [-2, 10]). The integer kernel keeps x_norm * 2^7
in int16 and the 1/2^7 is folded into the requantization scale, so gamma / (128 * s_y) becomes a
per-channel multiplier/shift pair and beta a per-channel bias in output codes. See the
`layernorm` docstring in tfc/ir/ops.py for the exact arithmetic; it uses no float at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tfc.ir.core import Builder, Graph, Op
from tfc.passes import register_pass
from tfc.passes.quant_rules import (INT8_MAX, INT8_MIN, LastAxisIsland, per_channel_multipliers,
                                    real_const, replace_island, rewrite_islands)
from tfc.pipeline import Pass

NORM_SCALE = 128  # x_norm is kept as x_norm * 2^(8-1)


@register_pass
@dataclass
class ScaledLayernormPass(Pass):
    """Replace float LayerNorm islands between dequantize/quantize by int8 Scaled-LayerNorm."""

    name: ClassVar[str] = "scaled-layernorm"

    def run(self, graph: Graph) -> bool:
        return rewrite_islands(graph, "layernorm", _rewrite)


def _rewrite(graph: Graph, island: LastAxisIsland) -> str | None:
    """Rewrites one island; returns why it does not match instead (None when rewritten)."""
    op, x, out = island.op, island.x, island.out
    channels = x.type.shape[-1]
    gamma = _param(op, 1, channels, 1.0)
    beta = _param(op, 2, channels, 0.0)
    if gamma is None or beta is None:
        return "gamma or beta is not a constant"

    s_x = x.type.quant.s
    eps = float(op.attr("epsilon", 1e-5))
    eps_q = max(1, int(round(eps * channels * channels / (s_x * s_x))))
    multiplier, shift = per_channel_multipliers(gamma.astype(np.float64) / (NORM_SCALE * out.s))
    bias = [int(round(float(b) / out.s)) + out.zp for b in beta]
    attrs = {"axis": -1, "epsilon": eps, "input_zp": x.type.quant.zp, "eps_q": eps_q,
             "multiplier": multiplier, "shift": shift, "bias": bias,
             "act_min": INT8_MIN, "act_max": INT8_MAX}
    new = Builder(graph, insert_before=op, loc=op.loc).op(
        "layernorm", [x], name_hint=op.result.name, result_type=x.type.with_quant(out), **attrs)
    replace_island(graph, island, new)
    return None


def _param(op: Op, i: int, channels: int, default: float) -> np.ndarray | None:
    """gamma/beta as `channels` reals (float const or dequantized const; missing -> default)."""
    if len(op.operands) <= i:
        return np.full(channels, default, dtype=np.float32)
    arr = real_const(op.operands[i])
    if arr is None:
        return None
    return np.broadcast_to(arr.reshape(-1) if arr.size == channels else arr, (channels,))
