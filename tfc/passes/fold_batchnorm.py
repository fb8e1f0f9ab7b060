"""fold-batchnorm: inference BatchNorm disappears into the conv (or linear) before it.

At inference a batchnorm is a per-channel affine map, y = a * x + c with a = scale / sqrt(var + eps)
and c = bias - mean * a. After a conv2d (or linear) with constant weights it folds into them for
free: w'[o] = a[o] * w[o], b'[o] = a[o] * (b[o] - mean[o]) + bias[o] (a bias is created if the
conv had none). That saves a pass over the activation and, on the int8 path, a requantization.

A batchnorm that cannot fold (its producer is used elsewhere, has a fused activation, or has
non-constant weights) becomes `mul` + `add` with constants, which the quantizer handles like any
elementwise op. Batchnorms with non-constant parameters, or a layout this pass cannot broadcast
(not 2-D and not 4-D), stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfc.ir.core import Builder, Graph, Op, const_value
from tfc.ir.rewriter import const_hints, erase_dead, make_const, rename, replace_value, single_user
from tfc.pipeline import Pass


@dataclass
class FoldBatchnormPass(Pass):
    """Folds batchnorm into a preceding conv2d/linear; lowers any other batchnorm to mul + add."""

    name = "fold-batchnorm"

    def run(self, graph: Graph) -> bool:
        changed = False
        for bn in graph.walk("batchnorm"):
            affine = batchnorm_affine(bn)
            if affine is None:
                continue
            changed |= fold_into_producer(graph, bn, *affine) or lower_to_mul_add(graph, bn, *affine)
        return changed


def batchnorm_affine(bn: Op) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, c) with batchnorm(x) == a * x + c per channel, in float64; None if not constant f32."""
    if bn.result.type.dtype != "f32":
        return None
    params = [const_value(v) for v in bn.operands[1:]]
    if any(p is None for p in params):
        return None
    scale, bias, mean, var = (p.astype(np.float64) for p in params)
    a = scale / np.sqrt(var + float(bn.attr("epsilon", 1e-5)))
    return a, bias - mean * a


def _channel_axis(bn: Op) -> int | None:
    rank = bn.result.type.rank
    if rank == 4:
        return 3 if bn.attr("layout", "nchw") == "nhwc" else 1
    return 1 if rank == 2 else None


def fold_into_producer(graph: Graph, bn: Op, a: np.ndarray, c: np.ndarray) -> bool:
    x = bn.operands[0]
    producer = x.producer
    if producer is None or producer.name not in ("conv2d", "linear") or single_user(x) is not bn:
        return False
    if producer.attr("act", "none") != "none":
        return False  # the activation sits between the conv and the batchnorm
    if producer.name == "linear" and (x.type.rank != 2 or _channel_axis(bn) != 1):
        return False
    if producer.name == "conv2d" and _channel_axis(bn) != (3 if producer.attr("layout", "nchw") == "nhwc" else 1):
        return False
    weights = const_value(producer.operands[1])
    if weights is None or weights.dtype != np.float32:
        return False
    bias = const_value(producer.operands[2]) if len(producer.operands) > 2 else np.zeros(len(a))
    if bias is None:
        return False
    # Weights are [O, ...] in every layout (OIHW, OHWI, [out, in]): scale along axis 0.
    scale = a.reshape((-1,) + (1,) * (weights.ndim - 1))
    new_w = make_const(graph, producer, weights.astype(np.float64) * scale,
                       producer.operands[1].name, producer.operands[1].type,
                       **const_hints(producer.operands[1]))
    new_b = make_const(graph, producer, bias.astype(np.float64) * a + c, f"{x.name}_bias",
                       producer.operands[1].type.with_shape(a.shape).with_quant(None))
    old_w = producer.operands[1].producer
    old_b = producer.operands[2].producer if len(producer.operands) > 2 else None
    weights_name = producer.operands[1].name
    producer.set_operands([producer.operands[0], new_w, new_b])
    if erase_dead(graph, old_w):
        rename(graph, new_w, weights_name)
    erase_dead(graph, old_b)
    params = [v.producer for v in bn.operands[1:]]
    replace_value(graph, bn.result, x)
    for p in params:
        erase_dead(graph, p)
    return True


def lower_to_mul_add(graph: Graph, bn: Op, a: np.ndarray, c: np.ndarray) -> bool:
    axis = _channel_axis(bn)
    if axis is None:
        return False
    rank = bn.result.type.rank
    shape = (-1,) + (1,) * (rank - 1 - axis)  # broadcast against the trailing dims
    scale = make_const(graph, bn, a.reshape(shape).astype(np.float32), f"{bn.result.name}_scale")
    shift = make_const(graph, bn, c.reshape(shape).astype(np.float32), f"{bn.result.name}_shift")
    b = Builder(graph, insert_before=bn, loc=bn.loc)
    scaled = b.op("mul", [bn.operands[0], scale], name_hint=f"{bn.result.name}_mul")
    shifted = b.op("add", [scaled, shift], name_hint=bn.result.name)
    params = [v.producer for v in bn.operands[1:]]
    replace_value(graph, bn.result, shifted, keep_name=True)
    for p in params:
        erase_dead(graph, p)
    return True
