"""calibrate: post-training quantization of a float graph into a QDQ graph.

The float interpreter runs over calibration samples to find each activation's real range; the pass
then puts a quantize/dequantize pair after every graph input and every op result, and replaces
conv2d/linear weights by int8 per-output-channel constants (and biases by int32 constants at
s_in * s_w) behind dequantize ops. The `quantize` pass turns the result into integer ops.

A graph that already has quantize/dequantize ops (an onnxruntime QDQ model) or integer inputs is
left alone: its scales are adopted as they are.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

import numpy as np

from tfc.errors import PassError
from tfc.ir.core import Builder, Graph, Op, Value, sanitize_name
from tfc.ir.quant_math import quantize_float
from tfc.ir.rewriter import const_hints
from tfc.ir.types import Quant
from tfc.passes import register_pass
from tfc.passes.quant_rules import (DATA_MOVEMENT_OPS, SOFTMAX_OUTPUT_QUANT, activation_quant,
                                    bias_int32, erase_dead, float_const, has_qdq,
                                    symmetric_per_channel)
from tfc.pipeline import Pass

NO_CALIBRATION_DATA = ("model is float and no calibration data was given: pass --calib CALIB.npz "
                       "(a .npz mapping each input name to samples) or compile with "
                       "--precision float32")

WEIGHTED_OPS = ("conv2d", "linear")


@register_pass
@dataclass
class CalibratePass(Pass):
    """Calibrate a float graph on sample inputs and insert quantize/dequantize ops (PTQ)."""

    name: ClassVar[str] = "calibrate"

    data: str = ""  # an .npz: graph input name -> samples along the first axis
    method: str = "minmax"  # or "percentile"
    percentile: float = 99.99
    max_samples: int = 100
    # Programmatic alternative to `data` (tfc.compile(calib=...)); not a pipeline option.
    samples: Mapping[str, np.ndarray] | None = field(default=None, repr=False, compare=False,
                                                     metadata={"cli": False})

    def __str__(self) -> str:  # the pipeline text never spells out sample arrays
        return Pass.__str__(dataclasses.replace(self, samples=None))

    def run(self, graph: Graph) -> bool:
        if has_qdq(graph) or not _is_float_graph(graph):
            return False
        if self.method not in ("minmax", "percentile"):
            raise PassError(f"calibrate: unknown method '{self.method}'; use minmax or percentile")
        feeds = self._feeds(graph)
        ranges = _collect_ranges(graph, feeds, self.method, self.percentile)
        params = _choose_params(graph, ranges)
        _quantize_weights(graph, params)
        _insert_qdq(graph, params)
        erase_dead(graph, ("const",))
        return True

    # -- samples ---------------------------------------------------------------------------------
    def _feeds(self, graph: Graph) -> list[dict[str, np.ndarray]]:
        """One {input name: array shaped like the input} per calibration sample."""
        source = self.samples
        path = source if isinstance(source, (str, os.PathLike)) else (None if source else self.data)
        where = "calibration samples"
        if path:
            if not os.path.exists(path):
                raise PassError(f"calibration data '{path}' does not exist; pass an .npz that "
                                f"maps each input name to samples")
            with np.load(path) as npz:
                source = {k: npz[k] for k in npz.files}
            where = str(path)
        if source is None:
            raise PassError(NO_CALIBRATION_DATA)
        per_input: dict[str, list[np.ndarray]] = {}
        for value in graph.inputs:
            per_input[value.name] = _split_samples(value, _lookup(source, value, where, len(graph.inputs) == 1), where)
        count = min(len(s) for s in per_input.values()) if per_input else 0
        count = min(count, max(1, self.max_samples))
        return [{name: arrays[i] for name, arrays in per_input.items()} for i in range(count)]


def _is_float_graph(graph: Graph) -> bool:
    return all(v.type.dtype == "f32" for v in graph.inputs)


def _lookup(source: Mapping[str, np.ndarray], value: Value, where: str,
            single_input: bool) -> np.ndarray:
    if value.name in source:
        return np.asarray(source[value.name])
    # ONNX names are sanitised into name hints ('input.1' -> 'input_1'); accept either spelling.
    for key, arr in source.items():
        if sanitize_name(key) == value.name:
            return np.asarray(arr)
    if len(source) == 1 and single_input:
        return np.asarray(next(iter(source.values())))
    raise PassError(f"{where} has no samples for graph input %{value.name}; it has "
                    f"{', '.join(sorted(source)) or 'nothing'}: add an array named '{value.name}'")


def _split_samples(value: Value, arr: np.ndarray, where: str) -> list[np.ndarray]:
    shape = value.type.shape
    arr = arr.astype(np.float32)
    if arr.shape[1:] == shape:  # samples x input shape
        return [arr[i] for i in range(arr.shape[0])]
    if shape and shape[0] == 1 and arr.shape[1:] == shape[1:]:  # the batch axis holds the samples
        return [arr[i:i + 1] for i in range(arr.shape[0])]
    raise PassError(f"{where}: samples for %{value.name} have shape {list(arr.shape)}; expected "
                    f"[N, {', '.join(map(str, shape))}] (N samples of the input)")


# -- ranges --------------------------------------------------------------------------------------

def _activations(graph: Graph) -> list[Value]:
    """The float values that get activation quantization: graph inputs and non-const op results."""
    values = [v for v in graph.inputs]
    for op in graph.ops:
        if op.name != "const":
            values.extend(r for r in op.results if r.type.dtype == "f32")
    return values


def _collect_ranges(graph: Graph, feeds, method: str, percentile: float) -> dict[str, tuple[float, float]]:
    from tfc.ir.interp import run_all

    names = [v.name for v in _activations(graph)]
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    seen: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in feeds:
        env = run_all(graph, feed)
        for n in names:
            a = np.asarray(env[n], dtype=np.float32)
            if method == "percentile":
                seen[n].append(a.ravel())
            else:
                lows[n] = min(lows.get(n, np.inf), float(a.min()))
                highs[n] = max(highs.get(n, -np.inf), float(a.max()))
    if method == "percentile":
        for n in names:
            flat = np.concatenate(seen[n])
            lows[n] = float(np.percentile(flat, 100.0 - percentile))
            highs[n] = float(np.percentile(flat, percentile))
    return {n: (lows[n], highs[n]) for n in names}


def _choose_params(graph: Graph, ranges) -> dict[int, Quant]:
    """Activation quantization per value id, in graph order so shared params can propagate."""
    params: dict[int, Quant] = {}
    for v in graph.inputs:
        params[id(v)] = activation_quant(*ranges[v.name])
    for op in graph.ops:
        if op.name == "const":
            continue
        for r in op.results:
            if r.type.dtype != "f32":
                continue
            lo, hi = ranges[r.name]
            source = op.operands[0] if op.operands else None
            if op.name in DATA_MOVEMENT_OPS and id(source) in params:
                params[id(r)] = params[id(source)]  # data movement must not change the codes
            elif op.name == "softmax":
                params[id(r)] = SOFTMAX_OUTPUT_QUANT
            else:
                if op.name == "relu" or op.attr("act") in ("relu", "relu6"):
                    lo = 0.0
                params[id(r)] = activation_quant(lo, hi)
    return params


# -- rewriting -----------------------------------------------------------------------------------

def _quantize_weights(graph: Graph, params: dict[int, Quant]) -> None:
    """conv2d/linear float weights -> int8 per output channel; biases -> int32 at s_in * s_w."""
    for op in graph.walk():
        if op.name not in WEIGHTED_OPS or len(op.operands) < 2:
            continue
        w = float_const(op.operands[1])
        in_quant = params.get(id(op.operands[0]))
        if w is None or in_quant is None:
            continue
        b = Builder(graph, insert_before=op, loc=op.loc)
        w_q, w_quant = symmetric_per_channel(w, axis=0)
        op.set_operand(1, _dequantized_const(b, w_q, w_quant, op.operands[1].name,
                                             **const_hints(op.operands[1])))
        if len(op.operands) > 2:
            bias = float_const(op.operands[2])
            if bias is not None:
                scales = in_quant.s * np.asarray(w_quant.scale, dtype=np.float64)
                b_quant = Quant(tuple(scales), (0,) * len(scales), 0)
                op.set_operand(2, _dequantized_const(b, bias_int32(bias, scales), b_quant,
                                                     op.operands[2].name))
    _quantize_other_consts(graph)


def _quantize_other_consts(graph: Graph) -> None:
    """Float constants that integer ops read as tensors become int8 per-tensor constants.

    Scalars multiplied in (`mul` by a constant, a Div that arrived as Mul) stay float: quantize
    folds them into a requantize. LayerNorm's gamma/beta stay float: scaled-layernorm folds them.
    """
    for op in graph.walk():
        if op.name in ("const", "layernorm", "quantize", "dequantize"):
            continue
        for i, v in enumerate(op.operands):
            arr = float_const(v)
            if arr is None or (op.name in WEIGHTED_OPS and i > 0):
                continue
            if op.name == "mul" and arr.size == 1:
                continue
            b = Builder(graph, insert_before=op, loc=op.loc)
            quant = activation_quant(float(arr.min()), float(arr.max()))
            op.set_operand(i, _dequantized_const(b, quantize_float(arr, quant.s, quant.zp), quant,
                                                 v.name))


def _dequantized_const(b: Builder, array: np.ndarray, quant: Quant, name: str,
                       **hints) -> Value:
    q = b.const(array, f"{name}_q", quant, **hints)
    return b.op("dequantize", [q], name_hint=f"{name}_dq")


def _insert_qdq(graph: Graph, params: dict[int, Quant]) -> None:
    """A quantize -> dequantize pair after each activation; its readers read the dequantize."""
    first = graph.ops[0] if graph.ops else None
    for v in graph.inputs:
        if first is None:
            break
        _wrap(graph, v, params[id(v)], before=first)
    for op in list(graph.ops):
        if op.name in ("const", "quantize", "dequantize"):
            continue
        anchor = op
        for r in op.results:
            if id(r) in params:
                anchor = _wrap(graph, r, params[id(r)], after=anchor)


def _wrap(graph: Graph, v: Value, quant: Quant, before: Op | None = None,
          after: Op | None = None) -> Op:
    readers = list(v.uses)
    was_output = graph.is_output(v)
    q = Op("quantize", [v], [v.type.with_dtype("i8", quant)], result_names=[f"{v.name}_q"])
    dq = Op("dequantize", [q.result], [v.type.with_dtype("f32")], result_names=[f"{v.name}_dq"])
    if before is not None:
        graph.insert_before(before, q)
    else:
        graph.insert_after(after, q)
    graph.insert_after(q, dq)
    for reader, i in readers:
        reader.set_operand(i, dq.result)
    if was_output:
        graph.outputs = [dq.result if o is v else o for o in graph.outputs]
    return dq
