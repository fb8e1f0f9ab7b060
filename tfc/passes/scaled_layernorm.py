"""scaled-layernorm: dequantize -> layernorm -> quantize becomes an integer Scaled-LayerNorm.

TinyFormer (paper III-C.3): normalising in integers and rounding x_norm straight to an integer
loses most of its precision (it spans only about [-2, 10]). The integer kernel keeps x_norm * 2^s
in int16, with s as large as the row length allows (11 for 44 channels, where the paper keeps
2^7), and folds the 1/2^s with gamma / s_y into one per-channel multiplier; beta becomes a
per-channel bias with 16 fraction bits of the output code. Per row it takes one integer square
root (two Newton steps) and one division; per element one SMLAWB for x_norm and one for gamma and
beta. See the `layernorm` docstring in tfc/ir/ops.py and docs/transformer.md; it uses no float at
run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tfc.errors import UnsupportedOpError
from tfc.ir.core import Builder, Graph, Op
from tfc.ir.quant_math import (LAYERNORM_MAX_CHANNELS, scaled_layernorm_eps_q,
                               scaled_layernorm_params)
from tfc.passes import register_pass
from tfc.passes.quant_rules import (INT8_MAX, INT8_MIN, LastAxisIsland, real_const, replace_island,
                                    rewrite_islands)
from tfc.pipeline import Pass


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

    if channels > LAYERNORM_MAX_CHANNELS:
        return f"rows of {channels} channels (the integer kernel takes <= {LAYERNORM_MAX_CHANNELS})"
    eps = float(op.attr("epsilon", 1e-5))
    try:
        multiplier, bias = scaled_layernorm_params(gamma, beta, out.s, out.zp)
    except ValueError as e:
        raise UnsupportedOpError(f"{op.where()}: {e}") from None
    attrs = {"axis": -1, "epsilon": eps,
             "eps_q": scaled_layernorm_eps_q(eps, channels, x.type.quant.s),
             "multiplier": multiplier, "bias": bias, "act_min": INT8_MIN, "act_max": INT8_MAX}
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
