"""`tfc validate`: how far a compiled model is from onnxruntime, per output and per layer.

    report = tfc.validate("model.onnx", "build/model", data="inputs.npz", on="host")
    print(report.format_table()); report.first_suspect     # -> the layer that broke accuracy

Both sides see the same float samples. onnxruntime runs MODEL.onnx as it is (a float model, or a
QDQ model in its float simulation), with every intermediate tensor it needs added as an extra
graph output. tfc's side is twofold:
- the final outputs come from the real build (`tfc.run`, host or emulated M7), dequantized;
- the per-layer int8 activations come from the IR interpreter on OUTDIR/model.tir, which is
  bit-exact with the C build (the report says whether the build's outputs agreed on every sample).

Matching a tfc value to an ONNX tensor (documented in docs/validate.md):
1. IR value names are sanitized ONNX tensor names, so a value matches the ONNX tensor whose
   `sanitize_name` equals its name. Values a pass created (`input_nhwc`, `*_nchw`) match nothing.
2. A fused op keeps the name of the first op it absorbed (conv + BatchNorm + Relu keeps the Conv's
   output name; a linear keeps its MatMul's name after absorbing the bias Add) but computes the
   last one. So from the named tensor we follow the ONNX graph forward while the tensor has a
   single consumer that is elementwise with constant other inputs (Relu, Clip, BatchNormalization,
   Add/Sub/Mul/Div of a constant, Identity) and whose output did not survive as a tfc value.
3. layout-nhwc computes spatial ops in NHWC. Each value's permutation from its ONNX layout is
   tracked through the graph (nhwc ops, transposes, layout-agnostic elementwise ops), and the
   onnxruntime tensor is permuted the same way before comparing.

A layer's SQNR drop is the SQNR of its nearest compared inputs minus its own: quantization error
accumulates gently layer by layer, while a broken layer loses many dB at once. The first layer
below `SUSPECT_SQNR_DB` whose drop exceeds `SUSPECT_DROP_DB` is reported as the suspect.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
import numpy as np

from tfc.errors import TfcError
from tfc.ir.core import Graph, Value, sanitize_name
from tfc.ir.quant_math import dequantize_int, quantize_float

DEFAULT_RANDOM_SAMPLES = 16
DEFAULT_SEED = 0
SUSPECT_SQNR_DB = 20.0  # healthy int8 layers of the test models sit well above this
SUSPECT_DROP_DB = 10.0  # a broken scale costs tens of dB at once; rounding costs a few

# ONNX ops that tfc fuses into the op producing their input (see rule 2 above).
# QuantizeLinear/DequantizeLinear: a QDQ model's activation is what its Q/DQ pair lets through (the
# ONNX quantizer drops a Relu that the QuantizeLinear's clamp makes redundant).
_FUSED_FOLLOWERS = ("Relu", "Clip", "BatchNormalization", "Identity", "Add", "Sub", "Mul", "Div",
                    "QuantizeLinear", "DequantizeLinear")
# IR ops that leave the layout of their operand as it is (layout-nhwc sinks transposes through them).
_LAYOUT_KEEPING = ("relu", "clip", "add", "sub", "mul", "requantize", "quantize", "dequantize")


@dataclass
class OutputMetrics:
    name: str  # the tfc output name
    onnx_tensor: str
    shape: list[int]
    top1_agreement: float | None  # fraction of rows whose argmax agrees; None for a single value
    max_abs_error: float
    sqnr_db: float | None  # None: the error is exactly zero (or the reference is all zeros)


@dataclass
class LayerMetrics:
    name: str  # the tfc value name
    op: str
    shape: list[int]
    onnx_tensor: str | None = None  # None: nothing to compare with (see `note`)
    sqnr_db: float | None = None
    max_abs_error: float | None = None
    input_sqnr_db: float | None = None  # the worst SQNR among its nearest compared inputs
    drop_db: float | None = None  # input_sqnr_db - sqnr_db (None: no compared inputs)
    note: str = ""  # why the layer was not compared

    @property
    def compared(self) -> bool:
        return self.onnx_tensor is not None and self.max_abs_error is not None


@dataclass
class ValidationReport:
    model: str
    outdir: str
    on: str  # "host", "m7", or "interp" (no C build: outputs from the interpreter)
    samples: int
    inputs_from: str  # where the samples came from, in words
    build_matches_interpreter: bool | None  # None when no build ran
    outputs: list[OutputMetrics] = field(default_factory=list)
    layers: list[LayerMetrics] = field(default_factory=list)

    @property
    def first_suspect(self) -> LayerMetrics | None:
        """The first layer (graph order) whose SQNR is low and fell steeply from its inputs'."""
        for layer in self.layers:
            drop = layer.drop_db
            if (drop is not None and drop >= SUSPECT_DROP_DB
                    and _finite(layer.sqnr_db) < SUSPECT_SQNR_DB):
                return layer
        return None

    def to_dict(self) -> dict:
        suspect = self.first_suspect
        return _json_safe({
            "model": self.model, "outdir": self.outdir, "on": self.on, "samples": self.samples,
            "inputs_from": self.inputs_from,
            "build_matches_interpreter": self.build_matches_interpreter,
            "outputs": [asdict(o) for o in self.outputs],
            "layers": [asdict(layer) for layer in self.layers],
            "first_suspect": suspect.name if suspect else None,
            "suspect_rule": {"sqnr_below_db": SUSPECT_SQNR_DB, "drop_at_least_db": SUSPECT_DROP_DB},
        })

    def write_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def format_table(self) -> str:
        return "\n".join(_table_lines(self)) + "\n"


# -- the entry point ---------------------------------------------------------------------------------

def validate(model, outdir, data=None, on: str = "host", samples: int | None = None,
             seed: int = DEFAULT_SEED) -> ValidationReport:
    """Compares the compiled OUTDIR with onnxruntime running `model` (see the module docstring).

    data: a .npz path or a mapping input name -> samples (first axis); None draws
      `DEFAULT_RANDOM_SAMPLES` standard-normal samples with `seed`. samples: use at most this many.
    on: "host" or "m7" run the C build for the outputs; "interp" takes them from the interpreter.
    """
    if on not in ("host", "m7", "interp"):
        raise TfcError(f"unknown validation target '{on}'; use 'host', 'm7' or 'interp'")
    onnx_model, model_name = _load_onnx(model)
    graph = _load_final_ir(outdir)
    inputs, inputs_from = _input_samples(graph, onnx_model, data, samples, seed)
    count = len(next(iter(inputs.values())))

    layer_targets = _layer_targets(graph, onnx_model)
    wanted = sorted({t for t in layer_targets.values() if t is not None}
                    | {o.name for o in onnx_model.graph.output})
    reference = _run_onnxruntime(onnx_model, inputs, wanted)

    onnx_name_of = {sanitize_name(name): name for name in inputs}
    quantized = {v.name: np.stack([_to_graph_input(x, v) for x in inputs[onnx_name_of[v.name]]])
                 for v in graph.inputs}
    interp_values = _run_interpreter(graph, quantized, count)

    build_matches = None
    if on == "interp":
        final = [interp_values[v.name] for v in graph.outputs]
    else:
        import tfc

        final = [np.asarray(y).reshape((count,) + v.type.shape)
                 for y, v in zip(tfc.run(outdir, [quantized[v.name] for v in graph.inputs],
                                         on=on, raw=True), graph.outputs)]
        build_matches = all(np.array_equal(y, interp_values[v.name])
                            for y, v in zip(final, graph.outputs))

    report = ValidationReport(model_name, str(outdir), on, count, inputs_from, build_matches)
    for v, onnx_out, y in zip(graph.outputs, onnx_model.graph.output, final):
        report.outputs.append(_output_metrics(v, onnx_out.name, _dequantize(y, v), reference[onnx_out.name]))
    report.layers = _layer_metrics(graph, layer_targets, interp_values, reference)
    return report


# -- loading --------------------------------------------------------------------------------------

def _load_onnx(model):
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "model"
    path = Path(model)
    if not path.is_file():
        raise TfcError(f"model file {path} does not exist; pass the .onnx the OUTDIR was compiled from")
    try:
        return onnx.load(str(path)), path.name
    except Exception as e:  # onnx raises DecodeError and friends
        raise TfcError(f"cannot read ONNX model {path} ({e}); pass the .onnx the OUTDIR was "
                       "compiled from") from None


def _load_final_ir(outdir) -> Graph:
    from tfc.ir.parser import parse_file

    path = Path(outdir) / "model.tir"
    if not path.is_file():
        raise TfcError(f"{outdir} is not a tfc output directory (no model.tir); create it with "
                       "`tfc compile MODEL.onnx -o DIR`")
    return parse_file(str(path))


def _input_samples(graph: Graph, onnx_model, data, limit, seed) -> tuple[dict[str, np.ndarray], str]:
    """Float samples keyed by ONNX input name, each sample shaped as the compiled input."""
    initializers = {i.name for i in onnx_model.graph.initializer}
    onnx_inputs = [i.name for i in onnx_model.graph.input if i.name not in initializers]
    by_ir_name = {v.name: v for v in graph.inputs}
    missing = [n for n in onnx_inputs if sanitize_name(n) not in by_ir_name]
    if missing or len(onnx_inputs) != len(graph.inputs):
        raise TfcError(f"the compiled model's inputs ({', '.join(by_ir_name)}) are not those of the "
                       f"ONNX model ({', '.join(onnx_inputs)}); pass the .onnx OUTDIR was compiled from")
    if data is None:
        rng = np.random.default_rng(seed)
        count = limit or DEFAULT_RANDOM_SAMPLES
        arrays = {n: rng.standard_normal((count,) + by_ir_name[sanitize_name(n)].type.shape)
                  .astype(np.float32) for n in onnx_inputs}
        return arrays, f"{count} random normal samples (seed {seed}); pass --data for real inputs"
    from tfc.driver import load_calibration

    given = load_calibration(data)
    arrays = {}
    for name in onnx_inputs:
        if name not in given:
            raise TfcError(f"the data has no array for model input '{name}'; it holds "
                           f"{', '.join(sorted(given)) or 'nothing'}")
        arrays[name] = _as_samples(np.asarray(given[name], np.float32), name,
                                   by_ir_name[sanitize_name(name)].type.shape)
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1:
        raise TfcError(f"the data's inputs hold different numbers of samples: "
                       f"{ {n: len(a) for n, a in arrays.items()} }; give each input as many")
    if limit:
        arrays = {n: a[:limit] for n, a in arrays.items()}
    source = data if isinstance(data, (str, os.PathLike)) else "the given arrays"
    return arrays, f"{len(next(iter(arrays.values())))} samples from {source}"


def _as_samples(x: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """`x` as [samples, *shape]: a batch axis of 1 may be left out of each sample."""
    if x.shape[1:] == shape:
        return x
    if shape and shape[0] == 1 and x.shape[1:] == shape[1:]:
        return x.reshape((len(x),) + shape)
    raise TfcError(f"data for input '{name}' has shape {list(x.shape)}; expected samples on the "
                   f"first axis, each of shape {list(shape)}")


def _to_graph_input(x: np.ndarray, value: Value) -> np.ndarray:
    """One float sample as the compiled graph's input (quantized with its parameters if int)."""
    t = value.type
    if t.dtype == "f32":
        return x.astype(np.float32)
    if t.quant is None:
        raise TfcError(f"input %{value.name} is {t.dtype} without quantization parameters; "
                       "validate needs them to quantize the float samples")
    return quantize_float(x, t.quant.s, t.quant.zp, t.np_dtype)


# -- running both sides ------------------------------------------------------------------------------

def _run_onnxruntime(onnx_model, inputs: dict[str, np.ndarray], tensors: list[str]) -> dict[str, np.ndarray]:
    """Every tensor in `tensors`, stacked over the samples, from onnxruntime (no graph rewrites)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(onnx_model)
    present = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in present:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    # Run the ONNX semantics as written: fusions would make the probed tensors disappear.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise TfcError(f"onnxruntime cannot load the model ({str(e).splitlines()[0]}); check it "
                       "with onnx.checker") from None
    names = [o.name for o in session.get_outputs()]
    count = len(next(iter(inputs.values())))
    runs = [session.run(names, {n: a[k] for n, a in inputs.items()}) for k in range(count)]
    return {name: np.stack([np.asarray(r[i], np.float32) for r in runs]) for i, name in enumerate(names)}


def _run_interpreter(graph: Graph, quantized: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """Every non-constant value of the final IR, stacked over the samples."""
    from tfc.ir.interp import run_all

    keep = [v.name for v in graph.inputs] + [r.name for op in graph.ops if op.name != "const"
                                            for r in op.results]
    per_sample = [run_all(graph, {n: a[k] for n, a in quantized.items()}) for k in range(count)]
    return {name: np.stack([values[name] for values in per_sample]) for name in keep}


# -- matching tfc values to ONNX tensors -------------------------------------------------------------

def _layer_targets(graph: Graph, onnx_model) -> dict[str, str | None]:
    """tfc value name -> the ONNX tensor holding the same quantity (None: none does)."""
    onnx_graph = onnx_model.graph
    constants = {i.name for i in onnx_graph.initializer}
    constants |= {o for n in onnx_graph.node if n.op_type == "Constant" for o in n.output}
    consumers: dict[str, list] = {}
    for node in onnx_graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tensors = [i.name for i in onnx_graph.input if i.name not in constants]
    tensors += [o for n in onnx_graph.node if n.op_type != "Constant" for o in n.output if o]
    by_sanitized: dict[str, str] = {}
    for name in tensors:
        by_sanitized.setdefault(sanitize_name(name), name)
    graph_outputs = {o.name for o in onnx_graph.output}
    ir_names = {v.name for v in graph.inputs} | {r.name for op in graph.ops for r in op.results}

    def last_fused(tensor: str) -> str:
        while tensor not in graph_outputs:
            users = consumers.get(tensor, [])
            if len(users) != 1:
                break
            node = users[0]
            others = [i for i in node.input if i and i != tensor]
            if (node.op_type not in _FUSED_FOLLOWERS or not all(i in constants for i in others)
                    or sanitize_name(node.output[0]) in ir_names):
                break
            tensor = node.output[0]
        return tensor

    targets = {}
    for value in _compared_values(graph):
        found = by_sanitized.get(value.name)
        targets[value.name] = last_fused(found) if found is not None else None
    return targets


def _compared_values(graph: Graph) -> list[Value]:
    """The graph inputs and every op result, in graph order (constants are not layers)."""
    return list(graph.inputs) + [r for op in graph.ops if op.name != "const" for r in op.results]


def _onnx_layout_perms(graph: Graph, targets: dict[str, str | None]) -> dict[str, list[int]]:
    """Value name -> perm p such that the tfc value is np.transpose(onnx_value, p).

    A transpose that carries an ONNX tensor's name is that ONNX Transpose (possibly merged with
    layout transposes around it): its result is in the ONNX layout. One a pass made is not.
    """
    perms: dict[str, list[int]] = {v.name: list(range(v.type.rank)) for v in graph.inputs}
    for op in graph.ops:
        for r in op.results:
            identity = list(range(r.type.rank))
            perm = identity
            if op.name == "transpose" and targets.get(r.name) is None:
                inner = perms.get(op.operands[0].name, identity)
                perm = [inner[i] for i in op.attrs["perm"]]
            elif op.attr("layout") == "nhwc" and r.type.rank == 4:
                perm = [0, 2, 3, 1]
            elif op.name in _LAYOUT_KEEPING:
                same_rank = [perms[v.name] for v in op.operands
                             if v.producer is None or v.producer.name != "const"
                             if v.name in perms and v.type.rank == r.type.rank]
                perm = same_rank[0] if same_rank else identity
            perms[r.name] = perm
    return perms


# -- metrics ------------------------------------------------------------------------------------

def _dequantize(q: np.ndarray, value: Value) -> np.ndarray:
    t = value.type
    if t.dtype == "f32":
        return q.astype(np.float32)
    quant = t.quant
    if quant.axis is None:
        return dequantize_int(q, quant.s, quant.zp)
    # per-axis: the axis counts from the value's own rank; q has a leading samples axis
    shape = [1] * q.ndim
    shape[1 + quant.axis % t.rank] = len(quant.scale)
    scale = np.asarray(quant.scale, np.float32).reshape(shape)
    zero = np.asarray(quant.zero_point, np.int64).reshape(shape)
    return ((q.astype(np.int64) - zero) * scale).astype(np.float32)


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float | None:
    """10 log10(signal power / error power); None when either is zero (no ratio to give)."""
    ref = reference.astype(np.float64)
    noise = float(np.sum((ref - test.astype(np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0 or signal == 0.0:
        return None
    return 10.0 * math.log10(signal / noise)


def _output_metrics(value: Value, onnx_name: str, got: np.ndarray, want: np.ndarray) -> OutputMetrics:
    want = want.reshape(got.shape)
    top1 = None
    if got.ndim >= 2 and got.shape[-1] > 1:
        rows = got.shape[-1]
        top1 = float(np.mean(np.argmax(got.reshape(-1, rows), -1) == np.argmax(want.reshape(-1, rows), -1)))
    return OutputMetrics(value.name, onnx_name, list(value.type.shape), top1,
                         float(np.max(np.abs(got - want))), sqnr_db(want, got))


def _layer_metrics(graph: Graph, targets: dict[str, str | None], tfc_values: dict[str, np.ndarray],
                   reference: dict[str, np.ndarray]) -> list[LayerMetrics]:
    perms = _onnx_layout_perms(graph, targets)
    layers: dict[str, LayerMetrics] = {}
    for value in _compared_values(graph):
        op = value.producer.name if value.producer is not None else "input"
        layer = LayerMetrics(value.name, op, list(value.type.shape))
        layers[value.name] = layer
        target = targets.get(value.name)
        if target is None:
            layer.note = "no ONNX tensor of this name (made by a pass)"
            continue
        if value.type.dtype != "f32" and value.type.quant is None:
            layer.note = f"{value.type.dtype} without quantization parameters"
            continue
        want = reference[target]
        perm = perms.get(value.name, list(range(value.type.rank)))
        if want.ndim == len(perm) + 1:
            want = np.transpose(want, [0] + [p + 1 for p in perm])
        got = _dequantize(tfc_values[value.name], value)
        if want.shape != got.shape:
            layer.note = f"shapes differ: tfc {list(got.shape[1:])}, onnxruntime {list(want.shape[1:])}"
            continue
        layer.onnx_tensor = target
        layer.sqnr_db = sqnr_db(want, got)
        layer.max_abs_error = float(np.max(np.abs(got - want))) if got.size else 0.0
        upstream = [_finite(layers[name].sqnr_db) for name in _nearest_compared(value, layers)]
        if upstream:
            layer.drop_db = min(upstream) - _finite(layer.sqnr_db)
            layer.input_sqnr_db = None if min(upstream) == _EXACT_DB else min(upstream)
    return list(layers.values())


def _nearest_compared(value: Value, layers: dict[str, LayerMetrics]) -> list[str]:
    """Names of the closest compared values upstream of `value` (through uncompared ones)."""
    found, seen = [], set()
    stack = list(value.producer.operands) if value.producer is not None else []
    while stack:
        v = stack.pop()
        if id(v) in seen or (v.producer is not None and v.producer.name == "const"):
            continue
        seen.add(id(v))
        layer = layers.get(v.name)
        if layer is not None and layer.compared:
            found.append(v.name)
        elif v.producer is not None:
            stack.extend(v.producer.operands)
    return found


# Stands in for an exact match (infinite SQNR) in drops: int8 itself tops out near 50 dB, so an
# exact input followed by a healthy int8 layer shows a drop of a few dB, not an infinite one.
_EXACT_DB = 60.0


def _finite(db: float | None) -> float:
    return _EXACT_DB if db is None else db


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


# -- the table ------------------------------------------------------------------------------------

def _fmt_db(db: float | None) -> str:
    return "exact" if db is None else f"{db:.1f}"


def _table_lines(report: ValidationReport) -> list[str]:
    where = {"host": "the host build", "m7": "the emulated Cortex-M7 build",
             "interp": "the IR interpreter"}[report.on]
    lines = [f"validate {report.model} against {report.outdir} ({where}): {report.inputs_from}"]
    if report.build_matches_interpreter is False:
        lines.append("  WARNING: the build's outputs differ from the IR interpreter's; the per-layer "
                     "figures below come from the interpreter")
    lines.append("")
    lines.append(f"  {'output':<32} {'top-1':>7} {'max |err|':>10} {'SQNR dB':>8}")
    for o in report.outputs:
        top1 = "-" if o.top1_agreement is None else f"{100 * o.top1_agreement:.1f}%"
        lines.append(f"  {o.name:<32} {top1:>7} {o.max_abs_error:>10.4g} {_fmt_db(o.sqnr_db):>8}")
    lines.append("")
    width = max([32] + [len(layer.name) for layer in report.layers])
    lines.append(f"  {'#':>3} {'layer':<{width}} {'op':<12} {'SQNR dB':>8} {'drop':>6} {'max |err|':>10}")
    suspect = report.first_suspect
    for index, layer in enumerate(report.layers):
        if not layer.compared:
            lines.append(f"  {index:>3} {layer.name:<{width}} {layer.op:<12} {'-':>8} {'':>6} "
                         f"{'':>10}  ({layer.note})")
            continue
        drop = "" if layer.drop_db is None else f"{layer.drop_db:.1f}"
        mark = "  <-- first large SQNR drop" if layer is suspect else ""
        lines.append(f"  {index:>3} {layer.name:<{width}} {layer.op:<12} {_fmt_db(layer.sqnr_db):>8} "
                     f"{drop:>6} {layer.max_abs_error:>10.4g}{mark}")
    lines.append("")
    compared = sum(layer.compared for layer in report.layers)
    lines.append(f"  {compared} of {len(report.layers)} layers compared with onnxruntime")
    if suspect is not None:
        lines.append(f"  suspect: %{suspect.name} ({suspect.op}) has SQNR {_fmt_db(suspect.sqnr_db)} dB, "
                     f"{suspect.drop_db:.1f} dB below its inputs: check its quantization")
    else:
        lines.append(f"  no layer loses {SUSPECT_DROP_DB:.0f} dB or more at once")
    return lines
