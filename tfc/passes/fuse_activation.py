"""fuse-activation: activations and bias adds become attributes of the op that produces them.

The kernels apply a clamp and a bias while the accumulator is still in registers, so a separate
`relu`, `clip` or `add(bias)` op would cost a whole extra pass over the activation (and, once
quantized, an extra requantization that loses precision). Rules, for float graphs:

- `conv2d` / `linear` / `add` followed by `relu` -> `act = "relu"`; by `clip(0, 6)` ->
  `act = "relu6"`; by any other `clip(lo, hi)` -> `act = "clip"` with `act_min`/`act_max`;
  `clip(min=0)` without a max is a relu;
- `add` of a constant per-channel vector after a `conv2d` / `linear` that has no bias -> the
  bias operand (ONNX exporters often write MatMul + Add instead of Gemm).

The producer must have that single use (another user would see the activation) and no activation
yet. Integer graphs are left alone: the quantize pass fuses clamps into act_min/act_max itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfc.ir.core import Graph, Op, Value, const_value
from tfc.ir.rewriter import erase_dead, make_const, replace_value, single_user
from tfc.pipeline import Pass

_ACT_PRODUCERS = ("conv2d", "linear", "add")
_BIAS_PRODUCERS = ("conv2d", "linear")


@dataclass
class FuseActivationPass(Pass):
    """Folds relu/relu6/clip into conv2d/linear/add, and constant bias adds into conv2d/linear."""

    name = "fuse-activation"

    def run(self, graph: Graph) -> bool:
        changed = False
        for op in graph.walk():
            if op.graph is not graph or op.results[0].type.dtype != "f32":
                continue  # erased by an earlier fusion, or an integer op
            if op.name in ("relu", "clip"):
                changed |= fuse_activation(graph, op)
            elif op.name == "add":
                changed |= fuse_bias_add(graph, op)
        return changed


def activation_attrs(op: Op) -> dict | None:
    """The `act` attributes equivalent to a relu/clip op, or None when it is not expressible."""
    if op.name == "relu":
        return {"act": "relu"}
    lo, hi = op.attr("min"), op.attr("max")
    if lo is None:
        return None  # no lower bound: the fused clamp always has one
    if hi is None:
        return {"act": "relu"} if float(lo) == 0.0 else None
    if float(lo) == 0.0 and float(hi) == 6.0:
        return {"act": "relu6"}
    return {"act": "clip", "act_min": float(lo), "act_max": float(hi)}


def _fusable_producer(x: Value, consumer: Op, kinds: tuple[str, ...]) -> Op | None:
    producer = x.producer
    if (producer is None or producer.name not in kinds or single_user(x) is not consumer
            or producer.attr("act", "none") != "none" or x.type.dtype != "f32"):
        return None
    return producer


def fuse_activation(graph: Graph, act: Op) -> bool:
    x = act.operands[0]
    producer = _fusable_producer(x, act, _ACT_PRODUCERS)
    attrs = activation_attrs(act)
    if producer is None or attrs is None:
        return False
    producer.attrs.update(attrs)
    replace_value(graph, act.result, x)
    return True


def fuse_bias_add(graph: Graph, add: Op) -> bool:
    for data_index in (0, 1):
        x, other = add.operands[data_index], add.operands[1 - data_index]
        producer = _fusable_producer(x, add, _BIAS_PRODUCERS)
        bias = const_value(other)
        if producer is None or bias is None or len(producer.operands) != 2:
            continue
        vector = _per_channel_vector(producer, bias)
        if vector is None:
            continue
        producer.set_operands([*producer.operands, make_const(graph, producer, vector,
                                                               f"{x.name}_bias")])
        if add.attr("act", "none") != "none":  # the add's own activation now belongs to the producer
            producer.attrs.update({k: add.attrs[k] for k in ("act", "act_min", "act_max")
                                   if k in add.attrs})
        replace_value(graph, add.result, x)
        erase_dead(graph, other.producer)
        return True
    return False


def _per_channel_vector(producer: Op, bias: np.ndarray) -> np.ndarray | None:
    """The bias as a 1-D [channels] f32 vector, when it only varies along the output channels."""
    out = producer.result.type
    if bias.dtype != np.float32 or bias.ndim > out.rank:
        return None
    if producer.name == "conv2d" and producer.attr("layout", "nchw") == "nchw":
        channel_axis = 1
    else:
        channel_axis = out.rank - 1
    shape = (1,) * (out.rank - bias.ndim) + bias.shape
    channels = out.shape[channel_axis]
    if any(d != 1 for i, d in enumerate(shape) if i != channel_axis):
        return None
    if shape[channel_axis] not in (1, channels):
        return None
    return np.broadcast_to(bias.reshape(-1), (channels,)).astype(np.float32)
