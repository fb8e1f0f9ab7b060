"""Helpers for the ONNX front-end tests: build small models, run them on ORT and on tfc's interp."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from frontends import import_onnx
from tfc.ir import interp, verify_graph
from tfc.ir.core import structural_diff
from tfc.ir.parser import parse
from tfc.ir.printer import print_graph

# onnxruntime 1.31 reads IR versions up to 13; onnx 1.23 writes newer ones by default.
IR_VERSION = 10


def make_model(nodes, inputs: dict, outputs, initializers: dict | None = None, opset: int = 17,
               name: str = "test") -> onnx.ModelProto:
    """A model from nodes; inputs {name: shape} are float32; initializers {name: array}."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=IR_VERSION)
    # Shape inference fills in the output shapes the checker requires and validates the nodes.
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    init = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in init:
            continue
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def run_ort(model_or_path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    source = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) \
        else str(model_or_path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(session.get_inputs(), inputs)}
    return session.run(None, feeds)


def import_and_check(model_or_path, inputs=None, rtol=1e-5, atol=1e-5):
    """Imports, verifies, round-trips the text form, and compares interp against ORT."""
    graph = import_onnx(model_or_path)
    verify_graph(graph)
    reparsed = parse(print_graph(graph))
    assert structural_diff(graph, reparsed) is None, structural_diff(graph, reparsed)
    if inputs is None:
        model = model_or_path if isinstance(model_or_path, onnx.ModelProto) \
            else onnx.load(str(model_or_path))
        inputs = random_inputs(model)
    expected = run_ort(model_or_path, inputs)
    got = interp.run(graph, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)
    return graph


def op_names(graph) -> list[str]:
    return [op.name for op in graph.ops]
