"""ONNX -> tfc IR: the entry point of the front end.

    graph = import_onnx("model.onnx")          # or a ModelProto

The result is a float graph in ONNX (nchw) layout with static shapes, or, for a QDQ model from
onnxruntime's `quantize_static`, a float graph with `quantize`/`dequantize` ops whose types carry
the quantization parameters. Everything that only depends on constants (shape subgraphs, folded
weights) is evaluated here, so no ONNX-only op (Shape, Gather, Cast, ...) reaches the IR.

The import walks the ONNX nodes in order with an environment that maps every ONNX tensor name to
either a numpy array (a known constant) or an IR `Value`. Constants become `const` ops only when
an IR op consumes them; unused ones leave no trace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import onnx
from onnx import numpy_helper

from frontends import onnx_fold
from tfc.errors import FrontendError, UnsupportedOpError, VerifyError
from tfc.ir.core import Builder, Graph, Value, sanitize_name
from tfc.ir.types import TensorType, dtype_of_numpy

MIN_OPSET = 13
Item = Union[np.ndarray, Value]  # what an ONNX tensor name is bound to during the import

_ONNX_TO_DTYPE = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.INT8: "i8"}


@dataclass
class Node:
    """One ONNX node with its attributes decoded; `inputs` are bound items (None: omitted)."""

    proto: onnx.NodeProto
    inputs: list[Item | None]
    attrs: dict

    @property
    def op_type(self) -> str:
        return self.proto.op_type

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)

    @property
    def label(self) -> str:
        """How messages and `op.loc` name the node: its name, else its first output."""
        return self.proto.name or (self.proto.output[0] if self.proto.output else self.op_type)

    def input(self, i: int) -> Item | None:
        return self.inputs[i] if i < len(self.inputs) else None


class ImportContext:
    """The state converters work on: the graph under construction and the name environment."""

    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
        self.node: Node | None = None
        self._builder = Builder(graph)
        # id(array) -> (array, its const op): weights are shared, and holding the array keeps its
        # id from being reused by another one.
        self._const_values: dict[int, tuple[np.ndarray, Value]] = {}
        self.array_names: dict[int, tuple[np.ndarray, str]] = {}  # id(array) -> its ONNX name
        self.block_hints: dict[str, int] = {}  # ONNX initializer name -> the NAS block-size hint
        self.preferred_names: list[tuple[Value, str]] = []  # applied if free after the import

    # -- errors -------------------------------------------------------------------------------
    def where(self) -> str:
        node = self.node
        return f"ONNX node '{node.label}' ({node.op_type})" if node else "ONNX graph"

    def unsupported(self, what: str, fix: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.where()}: {what}; {fix}")

    # -- items ----------------------------------------------------------------------------------
    @staticmethod
    def shape(item: Item) -> tuple[int, ...]:
        return tuple(item.shape) if isinstance(item, np.ndarray) else item.type.shape

    def constant(self, i: int, what: str, default=None) -> np.ndarray | None:
        """Input i as an array; a user error if it is computed at run time."""
        item = self.node.input(i)
        if item is None:
            return default
        if not isinstance(item, np.ndarray):
            raise self.unsupported(f"its {what} (input {i}, %{item.name}) is computed at run time",
                                   "tfc needs it to be a constant (an initializer or foldable subgraph)")
        return item

    def value(self, item: Item, hint: str = "cst", quant=None) -> Value:
        """The IR value of an item: constants become `const` ops (one per distinct array)."""
        if isinstance(item, Value):
            return item
        cached = self._const_values.get(id(item))
        if cached is not None and quant is None:
            return cached[1]
        named = self.array_names.get(id(item))
        if named is not None and named[0] is item:
            hint = named[1]
        array = np.asarray(item)
        try:
            dtype_of_numpy(array.dtype)
        except ValueError:
            raise self.unsupported(f"constant '{hint}' has dtype {array.dtype}, which tfc cannot "
                                   "store", "only float32/int8/int32 tensors reach the IR") from None
        attrs = {}
        if named is not None and named[0] is item and named[1] in self.block_hints:
            attrs["block"] = self.block_hints[named[1]]
        value = self._builder.const(array, hint, quant=quant, **attrs)
        value.producer.loc = self.node.label if self.node else None
        if quant is None:
            self._const_values[id(item)] = (item, value)
        return value

    def derived(self, array: np.ndarray, source: Item) -> np.ndarray:
        """`array`, computed from constant `source`, takes over its ONNX name as a name hint."""
        named = self.array_names.get(id(source))
        if named is not None and named[0] is source:
            self.array_names[id(array)] = (array, named[1])
        return array

    def emit(self, op_name: str, operands: list[Item], attrs: dict | None = None, *,
             names: list[str] | str | None = None,
             result_types: list[TensorType] | None = None) -> list[Value]:
        """Appends an IR op whose location is the current ONNX node; returns its results."""
        values = [self.value(x, f"{self.node.label}_{k}" if self.node else "cst")
                  for k, x in enumerate(operands)]
        if names is None and self.node is not None:
            names = self.node.outputs[0] if len(self.node.outputs) == 1 else self.node.label
        op = self._builder.create(op_name, values, attrs, result_types, names,
                                  loc=self.node.label if self.node else None)
        return op.results

    def emit1(self, op_name: str, operands: list[Item], attrs: dict | None = None, **kw) -> Value:
        return self.emit(op_name, operands, attrs, **kw)[0]


# -- loading ------------------------------------------------------------------------------------

def load_model(path_or_model) -> tuple[onnx.ModelProto, str]:
    """The model (external data loaded) and its stem; FrontendError for anything unreadable."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model, path_or_model.graph.name or "model"
    path = Path(path_or_model)
    if not path.is_file():
        raise FrontendError(f"{path}: no such model file; check the path")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning, ValueError...
        raise FrontendError(f"{path}: not a readable ONNX model ({type(e).__name__}); the file "
                            "is malformed or truncated, export it again") from None
    if not model.graph.node and not model.graph.output:
        raise FrontendError(f"{path}: the file holds no ONNX graph; it is empty or not an ONNX model")
    _load_external_data(model, path)
    return model, path.stem


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    base = path.parent
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        info = onnx.external_data_helper.ExternalDataInfo(tensor)
        data_file = base / info.location
        if not data_file.is_file():
            raise FrontendError(f"{path}: initializer '{tensor.name}' keeps its data in "
                                f"'{info.location}', which is missing next to the model; copy it "
                                f"to {data_file}")
        size = os.path.getsize(data_file)
        end = (info.offset or 0) + (info.length or 0)
        if end > size:
            raise FrontendError(f"{path}: external data file '{info.location}' is truncated "
                                f"({size} bytes, initializer '{tensor.name}' needs {end}); "
                                "export the model again")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(base))
    except Exception as e:
        raise FrontendError(f"{path}: cannot load external data ({e}); export the model again") from None


def _default_opset(model: onnx.ModelProto, label: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise FrontendError(f"{label}: the model imports no default ONNX opset; export it again")
    opset = versions[0]
    if opset < MIN_OPSET:
        raise FrontendError(f"{label}: opset {opset} is older than tfc supports ({MIN_OPSET}-21); "
                            f"convert it with onnx.version_converter.convert_version(model, 17)")
    return opset


# -- the import ---------------------------------------------------------------------------------

def import_onnx(path_or_model, name: str | None = None) -> Graph:
    """An ONNX model (a path or a ModelProto) as a tfc graph in nchw layout with static shapes."""
    # The converter modules import this one, so they are imported on first use.
    from frontends import onnx_ops, onnx_ops_dense  # noqa: F401  (onnx_ops_dense registers converters)

    model, stem = load_model(path_or_model)
    label = str(path_or_model) if not isinstance(path_or_model, onnx.ModelProto) else stem
    opset = _default_opset(model, label)
    graph = Graph(sanitize_name(name or stem))
    ctx = ImportContext(graph, opset)
    env: dict[str, Item] = {}

    onnx_graph = model.graph
    initializers = {t.name for t in onnx_graph.initializer}
    for tensor in onnx_graph.initializer:
        env[tensor.name] = array = _to_array(tensor)
        ctx.array_names[id(array)] = (array, tensor.name)
        hint = _block_hint(tensor, label)
        if hint is not None:
            ctx.block_hints[tensor.name] = hint
    for value_info in onnx_graph.input:
        if value_info.name not in initializers:
            env[value_info.name] = graph.add_input(_input_type(value_info, label), value_info.name)

    nodes = onnx_fold.fuse_decomposed_layernorms(list(onnx_graph.node), env,
                                                 {o.name for o in onnx_graph.output})
    for proto in nodes:
        _import_node(ctx, proto, env, onnx_ops)
    ctx.node = None

    for out in onnx_graph.output:
        item = env.get(out.name)
        if item is None:
            raise FrontendError(f"{label}: graph output '{out.name}' is produced by no node")
        value = ctx.value(item, out.name)
        graph.outputs.append(value)
    _remove_dead_ops(graph)
    _apply_preferred_names(graph, ctx.preferred_names)
    return graph


def _import_node(ctx: ImportContext, proto: onnx.NodeProto, env: dict[str, Item], onnx_ops) -> None:
    inputs: list[Item | None] = []
    for name in proto.input:
        if not name:
            inputs.append(None)
            continue
        if name not in env:
            raise FrontendError(f"ONNX node '{proto.name or proto.op_type}' reads tensor '{name}', "
                                "which no earlier node produces; the graph is not topologically "
                                "sorted or is malformed")
        inputs.append(env[name])
    node = Node(proto, inputs, {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute})
    ctx.node = node
    if proto.domain not in ("", "ai.onnx"):
        raise UnsupportedOpError(f"ONNX op '{proto.domain}.{proto.op_type}' (node '{node.label}') "
                                 f"is from a custom domain tfc does not support; export with "
                                 f"standard ONNX ops only")
    if onnx_fold.can_fold(node):
        results = onnx_fold.fold_node(node, ctx.opset)
    else:
        converter = onnx_ops.CONVERTERS.get(proto.op_type)
        if converter is None:
            raise UnsupportedOpError(
                f"ONNX op '{proto.op_type}' (node '{node.label}') is not supported by tfc; "
                f"supported ops: {', '.join(sorted(onnx_ops.CONVERTERS))}")
        try:
            results = converter(ctx, node)
        except VerifyError as e:  # the IR rejected what the node asks for: say which node
            raise FrontendError(f"{ctx.where()}: {e}; the model is inconsistent, check it with "
                                "onnx.checker.check_model(model, full_check=True)") from None
    for out_name, item in zip(proto.output, results):
        if out_name:
            env[out_name] = item
            if isinstance(item, np.ndarray):
                ctx.array_names[id(item)] = (item, out_name)


def _block_hint(tensor: onnx.TensorProto, label: str) -> int | None:
    """The block size a NAS exporter fixed for this weight (metadata `tfc.sparse.block`), if any."""
    from tfc.sparse import BLOCK_HINT_KEY, HINTABLE_BLOCKS

    for prop in tensor.metadata_props:
        if prop.key != BLOCK_HINT_KEY:
            continue
        if prop.value.strip() not in {str(b) for b in HINTABLE_BLOCKS}:
            raise FrontendError(f"{label}: initializer '{tensor.name}' has metadata "
                                f"{BLOCK_HINT_KEY}={prop.value!r}; the block size must be one of "
                                f"{', '.join(map(str, HINTABLE_BLOCKS))} (or drop the key)")
        return int(prop.value)
    return None


def _to_array(tensor: onnx.TensorProto) -> np.ndarray:
    array = numpy_helper.to_array(tensor)
    array.setflags(write=False)
    return array


def _input_type(value_info: onnx.ValueInfoProto, label: str) -> TensorType:
    tensor_type = value_info.type.tensor_type
    name = value_info.name
    dtype = _ONNX_TO_DTYPE.get(tensor_type.elem_type)
    if dtype is None:
        elem = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
        raise FrontendError(f"{label}: graph input '{name}' has element type {elem}; tfc models "
                            "take float32 (or int8) inputs, export the model with a float input")
    if not tensor_type.HasField("shape"):
        raise FrontendError(f"{label}: graph input '{name}' has no shape; re-export the model with "
                            "static input shapes")
    dims = []
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(dim.dim_value)
            continue
        if dim.HasField("dim_value"):
            raise FrontendError(f"{label}: graph input '{name}' has size {dim.dim_value} at axis "
                                f"{axis}; tfc needs non-empty tensors, give it a positive size")
        symbol = f"'{dim.dim_param}'" if dim.dim_param else "unknown"
        raise FrontendError(f"{label}: graph input '{name}' has a dynamic dimension {symbol} at "
                            f"axis {axis}; re-export with static shapes or fix it with onnx.tools."
                            f"update_model_dims.update_inputs_outputs_dims")
    return TensorType(tuple(dims), dtype)


def _apply_preferred_names(graph: Graph, preferred: list[tuple[Value, str]]) -> None:
    taken = {v.name for v in graph.values()}
    for value, name in preferred:
        if name not in taken and value.name in taken and value.producer.graph is graph:
            taken.discard(value.name)
            value.name = name
            taken.add(name)


def _remove_dead_ops(graph: Graph) -> None:
    """Drops ops nothing reads (constants and dequantizes left behind by rewrites)."""
    for op in reversed(list(graph.ops)):
        if all(not r.uses and not graph.is_output(r) for r in op.results):
            graph.erase(op)
