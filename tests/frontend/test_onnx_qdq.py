"""QDQ models from onnxruntime.quantization.quantize_static import as fake-quant graphs.

The interpreter runs the imported QDQ graph in float (quantize/dequantize round-trips), which is
what ORT computes when its graph optimizations (QDQ -> integer kernel fusion) are disabled. The
two may still differ by one output step where a float accumulation lands on a rounding tie.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from frontends import import_onnx
from onnx_testutil import make_model, random_inputs
from tfc.ir import interp, verify_graph

N = helper.make_node
R = np.random.default_rng(3)


def w(*shape):
    return R.standard_normal(shape).astype(np.float32)


class _Samples(CalibrationDataReader):
    def __init__(self, model: onnx.ModelProto, count: int = 16):
        self._it = iter([dict(zip([i.name for i in model.graph.input], random_inputs(model, seed)))
                         for seed in range(count)])

    def get_next(self):
        return next(self._it, None)


def quantize(model: onnx.ModelProto, tmp_path, **extra) -> str:
    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, float_path)
    quantize_static(str(float_path), str(qdq_path), _Samples(model), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, **extra)
    return str(qdq_path)


def run_ort_unfused(path: str, inputs):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs)})


def check_fake_quant(path: str):
    graph = import_onnx(path)
    verify_graph(graph)
    model = onnx.load(path)
    for seed in range(3):
        inputs = random_inputs(model, seed=100 + seed)
        expected = run_ort_unfused(path, inputs)
        got = interp.run(graph, inputs)
        for g, e, out in zip(got, expected, graph.outputs):
            step = out.producer.operands[0].type.quant.s  # outputs are dequantize(quantize(.))
            assert g.shape == e.shape
            assert np.max(np.abs(g - e)) <= step * 1.001
            assert np.mean(np.abs(g - e) > step / 2) <= 0.02
    return graph


def _cnn():
    nodes = [N("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]), N("Relu", ["c1"], ["r1"]),
             N("Conv", ["r1", "Wd"], ["c2"], group=4, pads=[1, 1, 1, 1], strides=[2, 2]),
             N("Add", ["c2", "c2b"], ["a"]), N("GlobalAveragePool", ["a"], ["g"]),
             N("Flatten", ["g"], ["f"]), N("Gemm", ["f", "Wf", "Bf"], ["y"], transB=1)]
    return make_model(nodes, {"x": [1, 3, 8, 8]}, ["y"],
                      {"W1": w(4, 3, 3, 3), "B1": w(4), "Wd": w(4, 1, 3, 3), "c2b": w(4, 1, 1),
                       "Wf": w(5, 4), "Bf": w(5)}, opset=17)


def _attention():
    d = 8
    nodes = [N("LayerNormalization", ["x", "g", "b"], ["ln"]),
             N("MatMul", ["ln", "Wq"], ["q"]), N("MatMul", ["ln", "Wk"], ["k"]),
             N("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), N("MatMul", ["q", "kt"], ["s"]),
             N("Div", ["s", "sqrt_d"], ["sd"]), N("Softmax", ["sd"], ["p"]),
             N("MatMul", ["p", "ln"], ["o"]), N("MatMul", ["o", "Wo"], ["m"]),
             N("Add", ["m", "bo"], ["y"])]
    return make_model(nodes, {"x": [1, 6, d]}, ["y"],
                      {"g": w(d), "b": w(d), "Wq": w(d, d), "Wk": w(d, d), "Wo": w(d, 4),
                       "bo": w(4), "sqrt_d": np.float32(np.sqrt(d))}, opset=17)


def test_qdq_cnn_weights_are_int8_consts(tmp_path):
    graph = check_fake_quant(quantize(_cnn(), tmp_path))
    convs = [op for op in graph.ops if op.name == "conv2d"]
    assert len(convs) == 2
    for conv in convs:
        weight = conv.operands[1].producer
        assert weight.name == "dequantize"
        stored = weight.operands[0]
        assert stored.producer.name == "const" and stored.type.dtype == "i8"
        assert stored.type.quant.axis == 0 and len(stored.type.quant.scale) == 4
        assert set(stored.type.quant.zero_point) == {0}
    bias = convs[0].operands[2].producer.operands[0]
    assert bias.type.dtype == "i32" and bias.type.quant.axis == 0
    assert graph.inputs[0].type.dtype == "f32"
    assert graph.inputs[0].uses[0][0].name == "quantize"
    linear = next(op for op in graph.ops if op.name == "linear")
    assert linear.operands[1].type.shape == (5, 4)  # Gemm transB=1 keeps [out, in]


def test_qdq_attention_islands(tmp_path):
    graph = check_fake_quant(quantize(_attention(), tmp_path))
    names = [op.name for op in graph.ops]
    for op_name in ("layernorm", "linear", "matmul", "softmax", "mul"):
        assert op_name in names
    # MatMul weights [in, out] become linear's [out, in]; the per-channel axis moves with them.
    for linear in (op for op in graph.ops if op.name == "linear"):
        stored = linear.operands[1].producer.operands[0]
        assert stored.type.quant.axis == 0
        assert len(stored.type.quant.scale) == stored.type.shape[0]


def test_uint8_activations_are_rejected(tmp_path):
    from tfc.errors import UnsupportedOpError

    model = _cnn()
    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq_u8.onnx"
    onnx.save(model, float_path)
    quantize_static(str(float_path), str(qdq_path), _Samples(model), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    with pytest.raises(UnsupportedOpError, match="(?i)uint8 quantization.*activation_type=QuantType.QInt8"):
        import_onnx(qdq_path)
