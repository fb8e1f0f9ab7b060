"""Float ONNX models, one op (or idiom) each: tfc's interpreter on the import matches ORT."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx_testutil import import_and_check, make_model, op_names

R = np.random.default_rng(7)


def w(*shape):
    return R.standard_normal(shape).astype(np.float32)


def i64(*values):
    return np.array(values, dtype=np.int64)


N = helper.make_node

# (id, nodes, inputs, initializers, opset, IR ops the import must contain)
CASES = [
    ("conv_pads_strides", [N("Conv", ["x", "W", "B"], ["y"], pads=[1, 0, 2, 1], strides=[2, 1])],
     {"x": [1, 3, 9, 8]}, {"W": w(4, 3, 3, 3), "B": w(4)}, 17, ["conv2d"]),
    ("conv_dilated_nobias", [N("Conv", ["x", "W"], ["y"], dilations=[2, 2], pads=[2, 2, 2, 2])],
     {"x": [1, 2, 7, 7]}, {"W": w(3, 2, 3, 3)}, 13, ["conv2d"]),
    ("conv_grouped", [N("Conv", ["x", "W", "B"], ["y"], group=2)],
     {"x": [1, 4, 6, 6]}, {"W": w(6, 2, 3, 3), "B": w(6)}, 17, ["conv2d"]),
    ("conv_depthwise_same_upper", [N("Conv", ["x", "W"], ["y"], group=4, auto_pad="SAME_UPPER",
                                     strides=[2, 2])],
     {"x": [1, 4, 7, 8]}, {"W": w(4, 1, 3, 3)}, 17, ["conv2d"]),
    ("conv_same_lower", [N("Conv", ["x", "W"], ["y"], auto_pad="SAME_LOWER", kernel_shape=[2, 4])],
     {"x": [1, 2, 5, 6]}, {"W": w(2, 2, 2, 4)}, 17, ["conv2d"]),
    ("conv_valid", [N("Conv", ["x", "W"], ["y"], auto_pad="VALID", strides=[2, 2])],
     {"x": [1, 2, 7, 7]}, {"W": w(2, 2, 3, 3)}, 17, ["conv2d"]),
    ("conv1d", [N("Conv", ["x", "W", "B"], ["y"], pads=[1, 1], strides=[2])],
     {"x": [1, 3, 10]}, {"W": w(5, 3, 3), "B": w(5)}, 17, ["reshape", "conv2d", "reshape"]),
    ("batchnorm_relu", [N("BatchNormalization", ["x", "s", "b", "m", "v"], ["t"], epsilon=1e-3),
                        N("Relu", ["t"], ["y"])],
     {"x": [2, 3, 4, 4]}, {"s": w(3), "b": w(3), "m": w(3), "v": np.abs(w(3)) + 0.5}, 15,
     ["batchnorm", "relu"]),
    ("clip_inputs", [N("Clip", ["x", "lo", "hi"], ["y"])],
     {"x": [2, 8]}, {"lo": np.float32(-0.5), "hi": np.float32(0.7)}, 13, ["clip"]),
    ("clip_max_only", [N("Clip", ["x", "", "hi"], ["y"])],
     {"x": [2, 8]}, {"hi": np.float32(0.2)}, 13, ["clip"]),
    ("maxpool_ceil", [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
                        pads=[1, 1, 0, 0])],
     {"x": [1, 2, 8, 7]}, {}, 17, ["maxpool2d"]),
    ("avgpool_include_pad", [N("AveragePool", ["x"], ["y"], kernel_shape=[2, 3], pads=[1, 1, 1, 1],
                               count_include_pad=1)],
     {"x": [1, 2, 5, 5]}, {}, 17, ["avgpool2d"]),
    ("avgpool_exclude_pad_same", [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                    auto_pad="SAME_UPPER", strides=[2, 2])],
     {"x": [1, 2, 6, 5]}, {}, 17, ["avgpool2d"]),
    ("global_pools", [N("GlobalAveragePool", ["x"], ["a"]), N("GlobalMaxPool", ["x"], ["b"]),
                      N("Add", ["a", "b"], ["y"])],
     {"x": [1, 3, 4, 5]}, {}, 17, ["global_avgpool", "maxpool2d", "add"]),
    ("reduce_mean_attr_axes", [N("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)],
     {"x": [2, 5, 4]}, {}, 13, ["reduce_mean"]),
    ("reduce_mean_input_axes", [N("ReduceMean", ["x", "ax"], ["y"])],
     {"x": [2, 5, 4]}, {"ax": i64(-1, 0)}, 18, ["reduce_mean"]),
    ("add_sub_mul_broadcast", [N("Add", ["x", "c"], ["a"]), N("Sub", ["c", "a"], ["s"]),
                               N("Mul", ["s", "x"], ["y"])],
     {"x": [2, 3, 4]}, {"c": w(4)}, 17, ["add", "sub", "mul"]),
    ("div_by_constant", [N("Div", ["x", "c"], ["y"])],
     {"x": [2, 6]}, {"c": np.float32(2.5)}, 17, ["mul"]),
    ("matmul_constant_is_linear", [N("MatMul", ["x", "W"], ["m"]), N("Add", ["m", "B"], ["y"])],
     {"x": [2, 3, 6]}, {"W": w(6, 5), "B": w(5)}, 17, ["linear", "add"]),
    ("matmul_activations", [N("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
                            N("MatMul", ["x", "t"], ["y"])],
     {"x": [2, 3, 4]}, {}, 17, ["transpose", "matmul"]),
    ("matmul_vector_weights", [N("MatMul", ["x", "v"], ["y"])],
     {"x": [3, 4]}, {"v": w(4)}, 17, ["linear", "reshape"]),
    ("matmul_vector_activation", [N("MatMul", ["x", "W"], ["y"])],
     {"x": [4]}, {"W": w(4, 3)}, 17, ["reshape", "linear", "reshape"]),
    ("gemm_alpha_beta_transB", [N("Gemm", ["x", "W", "C"], ["y"], alpha=0.5, beta=2.0, transB=1)],
     {"x": [3, 4]}, {"W": w(5, 4), "C": w(5)}, 13, ["linear"]),
    ("gemm_transA_matrix_bias", [N("Gemm", ["x", "W", "C"], ["y"], transA=1)],
     {"x": [4, 3]}, {"W": w(4, 5), "C": w(3, 5)}, 13, ["transpose", "linear", "add"]),
    ("reshape_zero_minus_one", [N("Reshape", ["x", "s"], ["y"])],
     {"x": [2, 3, 4]}, {"s": i64(0, -1)}, 17, ["reshape"]),
    ("flatten_squeeze_unsqueeze", [N("Flatten", ["x"], ["f"], axis=2),
                                   N("Unsqueeze", ["f", "ax"], ["u"]),
                                   N("Squeeze", ["u", "ax"], ["y"])],
     {"x": [2, 3, 2, 2]}, {"ax": i64(0, -1)}, 17, ["reshape", "reshape", "reshape"]),
    ("split_sizes_and_concat", [N("Split", ["x", "sz"], ["a", "b"], axis=1),
                                N("Concat", ["b", "c", "a"], ["y"], axis=1)],
     {"x": [2, 5]}, {"sz": i64(2, 3), "c": w(2, 1)}, 17, ["split", "concat"]),
    ("split_num_outputs", [N("Split", ["x"], ["a", "b", "c"], axis=-1, num_outputs=3),
                           N("Concat", ["c", "a"], ["y"], axis=-1)],
     {"x": [2, 7]}, {}, 18, ["split", "concat"]),
    ("slice_negative_steps", [N("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
     {"x": [3, 8, 5]}, {"st": i64(-1, 1), "en": i64(-2**63, 7), "ax": i64(1, 2),
                        "sp": i64(-2, 2)}, 17, ["slice"]),
    ("identity_constant", [N("Constant", [], ["k"], value_float=3.0), N("Identity", ["x"], ["i"]),
                           N("Mul", ["i", "k"], ["y"])],
     {"x": [2, 2]}, {}, 17, ["mul"]),
    ("layernorm_last_axis", [N("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-4)],
     {"x": [2, 3, 8]}, {"g": w(8), "b": w(8)}, 17, ["layernorm"]),
    ("layernorm_two_axes_no_bias", [N("LayerNormalization", ["x", "g"], ["y"], axis=-2)],
     {"x": [2, 3, 4]}, {"g": w(3, 4)}, 17, ["reshape", "layernorm", "reshape"]),
    ("softmax_last", [N("Softmax", ["x"], ["y"])], {"x": [2, 3, 5]}, {}, 13, ["softmax"]),
    ("softmax_middle_axis", [N("Softmax", ["x"], ["y"], axis=1)],
     {"x": [2, 3, 5]}, {}, 13, ["transpose", "softmax", "transpose"]),
]


@pytest.mark.parametrize("nodes, inputs, inits, opset, expected_ops",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_op_matches_onnxruntime(nodes, inputs, inits, opset, expected_ops):
    model = make_model(nodes, inputs, [nodes[-1].output[-1]], inits, opset=opset)
    graph = import_and_check(model)
    ops = [n for n in op_names(graph) if n != "const"]
    assert ops == expected_ops


def test_shape_subgraph_folds_away():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape is evaluated at import time."""
    nodes = [N("Shape", ["x"], ["shp"]),
             N("Gather", ["shp", "zero"], ["batch"], axis=0),
             N("Unsqueeze", ["batch", "zero_axes"], ["batch1"]),
             N("Concat", ["batch1", "minus_one"], ["target"], axis=0),
             N("Cast", ["target"], ["target_f"], to=1),
             N("Cast", ["target_f"], ["target_i"], to=7),
             N("Reshape", ["x", "target_i"], ["y"])]
    model = make_model(nodes, {"x": [3, 2, 4]}, ["y"],
                       {"zero": np.array(0, np.int64), "zero_axes": i64(0), "minus_one": i64(-1)})
    graph = import_and_check(model)
    assert op_names(graph) == ["reshape"]
    assert graph.ops[0].attrs["shape"] == [3, 8]


def test_names_locations_and_graph_name(tmp_path):
    model = make_model([N("Relu", ["in.put:0"], ["/block/relu_out"], name="/block/Relu")],
                       {"in.put:0": [1, 4]}, ["/block/relu_out"])
    path = tmp_path / "my-model.v2.onnx"
    onnx.save(model, path)
    graph = import_and_check(path)
    assert graph.name == "my_model_v2"
    assert graph.inputs[0].name == "in_put_0"
    assert graph.outputs[0].name == "block_relu_out"
    assert graph.ops[0].loc == "/block/Relu"


def test_shared_initializer_becomes_one_const():
    nodes = [N("Add", ["x", "c"], ["a"]), N("Mul", ["a", "c"], ["y"])]
    model = make_model(nodes, {"x": [2, 3]}, ["y"], {"c": w(3)})
    graph = import_and_check(model)
    consts = [op for op in graph.ops if op.name == "const"]
    assert len(consts) == 1 and consts[0].result.name == "c"
