"""Folding in the ONNX domain, before and during the import.

- Constant folding: a node whose inputs are all known arrays is evaluated with `onnx.reference`
  (shape subgraphs such as Shape -> Gather -> Concat -> Reshape, weight preprocessing). The one
  exception is DequantizeLinear of an integer constant, which stays an op: it is how a QDQ model
  says "these int8 weights, with this quantization".
- Pattern folding: the LayerNorm that opset-13 TorchScript export spells out in primitives
  (ReduceMean, Sub, Pow|Mul, ReduceMean, Add eps, Sqrt, Div, Mul gamma, Add beta) becomes one
  LayerNormalization node again. A candidate that does not match logs why at DEBUG level on the
  `tfc.frontend` logger.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tfc.errors import FrontendError

if TYPE_CHECKING:
    from frontends.onnx_import import Node

log = logging.getLogger("tfc.frontend")

# Ops whose result is not a function of their inputs: never evaluate them at compile time.
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                     "Multinomial", "Bernoulli"}


# -- constant folding ---------------------------------------------------------------------------

def can_fold(node: "Node") -> bool:
    if node.op_type in _NONDETERMINISTIC:
        return False
    present = [x for x in node.inputs if x is not None]
    if not all(isinstance(x, np.ndarray) for x in present):
        return False
    if node.op_type == "DequantizeLinear" and present[0].dtype.kind in "iu":
        return False  # quantized weights: kept as const + dequantize
    return bool(present) or node.op_type == "Constant"


def fold_node(node: "Node", opset: int) -> list[np.ndarray]:
    """Evaluates a node on constant inputs with the ONNX reference implementation."""
    from onnx.reference import ReferenceEvaluator

    proto = node.proto
    feeds = {name: item for name, item in zip(proto.input, node.inputs) if name}
    try:
        evaluator = ReferenceEvaluator(proto, opsets={"": opset})
        results = evaluator.run(None, feeds)
    except Exception as e:
        raise FrontendError(f"ONNX node '{node.label}' ({node.op_type}): cannot evaluate it on its "
                            f"constant inputs ({type(e).__name__}: {e}); check the model with "
                            "onnx.checker") from None
    arrays = []
    for r in results:
        array = np.asarray(r)
        array.setflags(write=False)
        arrays.append(array)
    return arrays


def constant_node_value(proto: onnx.NodeProto) -> np.ndarray | None:
    """The value of a Constant node, or None for forms the pattern matchers do not need."""
    for attr in proto.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_floats"):
            return np.asarray(helper.get_attribute_value(attr), dtype=np.float32)
        if attr.name in ("value_int", "value_ints"):
            return np.asarray(helper.get_attribute_value(attr), dtype=np.int64)
    return None


# -- the decomposed LayerNorm -------------------------------------------------------------------

class _Graph:
    """Producer/consumer lookups over a node list, and the constants known before the import."""

    def __init__(self, nodes: list[onnx.NodeProto], constants: dict, graph_outputs: set[str]):
        self.constants = dict(constants)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.graph_outputs = graph_outputs
        for node in nodes:
            if node.op_type == "Constant" and node.output:
                value = constant_node_value(node)
                if value is not None:
                    self.constants[node.output[0]] = value
            for name in node.input:
                users = self.consumers.setdefault(name, [])
                if not any(u is node for u in users):
                    users.append(node)

    def const(self, name: str) -> np.ndarray | None:
        value = self.constants.get(name)
        return value if isinstance(value, np.ndarray) else None

    def sole_consumer(self, name: str, op_type: str) -> onnx.NodeProto | str:
        users = self.consumers.get(name, [])
        if name in self.graph_outputs:
            return f"'{name}' is a graph output"
        if len(users) != 1:
            return f"'{name}' has {len(users)} consumers, expected one {op_type}"
        if users[0].op_type != op_type:
            return f"'{name}' feeds {users[0].op_type}, expected {op_type}"
        return users[0]

    def reduce_axes(self, node: onnx.NodeProto) -> list[int] | None:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("keepdims", 1) != 1:
            return None
        if "axes" in attrs:
            return list(attrs["axes"])
        if len(node.input) > 1 and node.input[1]:
            axes = self.const(node.input[1])
            return None if axes is None else [int(a) for a in axes.reshape(-1)]
        return None

    def scalar(self, name: str) -> float | None:
        value = self.const(name)
        if value is None or value.size != 1 or value.dtype.kind != "f":
            return None
        return float(value.reshape(()))


def _other_input(node: onnx.NodeProto, name: str) -> str | None:
    """For a binary op that reads `name`, its other operand."""
    if len(node.input) != 2:
        return None
    if node.input[0] == name:
        return node.input[1]
    if node.input[1] == name:
        return node.input[0]
    return None


def _match_layernorm(g: _Graph, mean_node: onnx.NodeProto):
    """(pattern nodes, fused node) for a decomposed LayerNorm starting at `mean_node`, or a reason."""
    x = mean_node.input[0]
    axes = g.reduce_axes(mean_node)
    if axes is None or len(axes) != 1:
        return "the first ReduceMean does not reduce exactly one axis with keepdims=1"
    sub = g.sole_consumer(mean_node.output[0], "Sub")
    if isinstance(sub, str):
        return sub
    if list(sub.input) != [x, mean_node.output[0]]:
        return "Sub does not compute x - mean(x)"
    d = sub.output[0]
    if d in g.graph_outputs:
        return f"'{d}' is a graph output"
    users = g.consumers.get(d, [])
    square = next((u for u in users if u.op_type in ("Pow", "Mul")), None)
    div = next((u for u in users if u.op_type == "Div"), None)
    if len(users) != 2 or square is None or div is None:
        return f"x - mean(x) ('{d}') must feed exactly a Pow (or Mul) and a Div"
    if square.op_type == "Pow":
        exponent = g.scalar(square.input[1]) if square.input[0] == d else None
        if exponent != 2.0:
            return "Pow does not square x - mean(x) with a constant exponent 2"
    elif list(square.input) != [d, d]:
        return "Mul does not square x - mean(x)"
    var_node = g.sole_consumer(square.output[0], "ReduceMean")
    if isinstance(var_node, str):
        return var_node
    if g.reduce_axes(var_node) != axes:
        return "the variance ReduceMean reduces different axes than the mean"
    add_eps = g.sole_consumer(var_node.output[0], "Add")
    if isinstance(add_eps, str):
        return add_eps
    eps_name = _other_input(add_eps, var_node.output[0])
    epsilon = g.scalar(eps_name) if eps_name else None
    if epsilon is None:
        return "epsilon is not a constant float scalar"
    sqrt = g.sole_consumer(add_eps.output[0], "Sqrt")
    if isinstance(sqrt, str):
        return sqrt
    if g.sole_consumer(sqrt.output[0], "Div") is not div or list(div.input) != [d, sqrt.output[0]]:
        return "Div does not compute (x - mean) / sqrt(var + eps)"
    pattern = [mean_node, sub, square, var_node, add_eps, sqrt, div]
    gamma = beta = ""
    last = div
    mul = g.sole_consumer(div.output[0], "Mul")
    if not isinstance(mul, str):
        gamma = _other_input(mul, div.output[0]) or ""
        if gamma and g.const(gamma) is not None:
            pattern.append(mul)
            last = mul
            add = g.sole_consumer(mul.output[0], "Add")
            if not isinstance(add, str):
                beta = _other_input(add, mul.output[0]) or ""
                if beta and g.const(beta) is not None:
                    pattern.append(add)
                    last = add
                else:
                    beta = ""
        else:
            gamma = ""
    fused = helper.make_node("LayerNormalization", [x, gamma, beta], [last.output[0]],
                             name=_common_scope([n.name for n in pattern]) or last.name,
                             axis=axes[0], epsilon=epsilon)
    return pattern, fused


def _common_scope(names: list[str]) -> str:
    """'/enc/ln/' for nodes named '/enc/ln/ReduceMean', '/enc/ln/Sub', ...; '' when none."""
    prefix = os.path.commonprefix(names)
    scope = prefix[: prefix.rfind("/") + 1]
    return f"{scope}LayerNormalization" if scope else ""


def fuse_decomposed_layernorms(nodes: list[onnx.NodeProto], constants: dict,
                               graph_outputs: set[str]) -> list[onnx.NodeProto]:
    """The node list with each decomposed LayerNorm replaced by one LayerNormalization node.

    A missing gamma or beta is left empty (''): the LayerNormalization converter reads an
    omitted scale as 1 and an omitted bias as 0.
    """
    g = _Graph(nodes, constants, graph_outputs)
    replaced: dict[int, onnx.NodeProto | None] = {}
    for node in nodes:
        if node.op_type != "ReduceMean" or id(node) in replaced:
            continue
        if g.consumers.get(node.output[0], [None])[0] is None or \
                g.consumers[node.output[0]][0].op_type != "Sub":
            continue  # not even the start of a candidate: stay quiet
        match = _match_layernorm(g, node)
        if isinstance(match, str):
            log.debug("layernorm: candidate at ReduceMean '%s' does not match: %s",
                      node.name or node.output[0], match)
            continue
        pattern, fused = match
        for n in pattern:
            replaced[id(n)] = None
        replaced[id(pattern[-1])] = fused
        log.debug("layernorm: folded %d nodes from '%s' into LayerNormalization '%s'",
                  len(pattern), node.name or node.output[0], fused.name)
    out = []
    for node in nodes:
        if id(node) not in replaced:
            out.append(node)
        elif replaced[id(node)] is not None:
            out.append(replaced[id(node)])
    return out
