"""User errors from the front end: one line, the culprit named, a fix suggested."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from frontends import import_onnx
from onnx_testutil import IR_VERSION, make_model
from tfc.errors import FrontendError, TfcError, UnsupportedOpError

N = helper.make_node


def _raises(exc_type, pattern, model_or_path):
    with pytest.raises(exc_type, match=pattern) as info:
        import_onnx(model_or_path)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, TfcError)
    return message


def test_unsupported_op_names_node_and_lists_supported():
    model = make_model([N("Relu", ["x"], ["r"]), N("Sigmoid", ["r"], ["y"], name="/dec/act")],
                       {"x": [1, 4]}, ["y"])
    message = _raises(UnsupportedOpError, r"^ONNX op 'Sigmoid' \(node '/dec/act'\) is not "
                      r"supported by tfc; supported ops: ", model)
    assert "Conv" in message and "Softmax" in message


def test_custom_domain_op():
    graph = helper.make_graph([N("Gelu", ["x"], ["y"], domain="com.microsoft", name="g")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              ir_version=IR_VERSION)
    _raises(UnsupportedOpError, r"'com\.microsoft\.Gelu' \(node 'g'\).*standard ONNX ops", model)


def test_symbolic_input_dimension():
    graph = helper.make_graph([N("Relu", ["images"], ["y"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                             ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=IR_VERSION)
    _raises(FrontendError, r"input 'images' has a dynamic dimension 'batch' at axis 0; "
            r"re-export with static shapes.*update_inputs_outputs_dims", model)


def test_truncated_file(tmp_path):
    model = make_model([N("Conv", ["x", "W"], ["y"])], {"x": [1, 3, 8, 8]}, ["y"],
                       {"W": np.ones((4, 3, 3, 3), np.float32)})
    data = model.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    _raises(FrontendError, r"cut\.onnx: not a readable ONNX model .*malformed or truncated", path)


def test_garbage_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n")
    _raises(FrontendError, r"notes\.onnx: ", path)


def test_missing_file(tmp_path):
    _raises(FrontendError, r"nothere\.onnx: no such model file", tmp_path / "nothere.onnx")


def _save_with_external_data(tmp_path):
    model = make_model([N("MatMul", ["x", "W"], ["y"])], {"x": [2, 64]}, ["y"],
                       {"W": np.ones((64, 64), np.float32)})
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.weights", size_threshold=0)
    return path


def test_external_data_loads(tmp_path):
    graph = import_onnx(_save_with_external_data(tmp_path))
    weights = next(op for op in graph.ops if op.name == "const")
    assert weights.attrs["value"].array.shape == (64, 64)


def test_missing_external_data_file(tmp_path):
    path = _save_with_external_data(tmp_path)
    (tmp_path / "ext.weights").unlink()
    _raises(FrontendError, r"initializer 'W' keeps its data in 'ext\.weights', which is missing",
            path)


def test_truncated_external_data_file(tmp_path):
    path = _save_with_external_data(tmp_path)
    weights = tmp_path / "ext.weights"
    weights.write_bytes(weights.read_bytes()[:100])
    _raises(FrontendError, r"'ext\.weights' is truncated", path)


def test_bad_auto_pad_value():
    model = make_model([N("Conv", ["x", "W"], ["y"], name="conv0")], {"x": [1, 3, 8, 8]}, ["y"],
                       {"W": np.ones((4, 3, 3, 3), np.float32)})
    # An invalid value the checker would reject, added after the model was checked.
    model.graph.node[0].attribute.append(helper.make_attribute("auto_pad", "SAME_MIDDLE"))
    _raises(UnsupportedOpError, r"ONNX node 'conv0' \(Conv\): auto_pad 'SAME_MIDDLE'.*use one of "
            r"NOTSET, SAME_UPPER", model)


def test_batchnorm_training_mode():
    c = np.ones(3, np.float32)
    model = make_model([N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                          training_mode=1, name="bn")], {"x": [1, 3, 4, 4]}, ["y"],
                       {"s": c, "b": c, "m": c, "v": c}, opset=15)
    _raises(UnsupportedOpError, r"'bn' \(BatchNormalization\): training_mode=1; .*model\.eval", model)


def test_division_by_activation():
    model = make_model([N("Div", ["x", "z"], ["y"], name="div")], {"x": [2, 3], "z": [2, 3]}, ["y"])
    _raises(UnsupportedOpError, r"'div' \(Div\): its divisor \(input 1, %z\) is computed at run time", model)


def test_old_opset():
    model = make_model([N("Relu", ["x"], ["y"])], {"x": [2, 3]}, ["y"], opset=11)
    _raises(FrontendError, r"opset 11 is older than tfc supports.*version_converter", model)


def test_non_float_input():
    graph = helper.make_graph([N("Cast", ["ids"], ["y"], to=TensorProto.FLOAT)], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=IR_VERSION)
    _raises(FrontendError, r"graph input 'ids' has element type INT64", model)


def test_runtime_value_where_a_constant_is_needed():
    model = make_model([N("Clip", ["x", "lo"], ["y"], name="clip")], {"x": [2, 3], "lo": []}, ["y"])
    _raises(UnsupportedOpError, r"'clip' \(Clip\): its min \(input 1, %lo\) is computed at run "
            r"time; tfc needs it to be a constant", model)


def test_inconsistent_model_names_the_node():
    model = make_model([N("Conv", ["x", "W"], ["y"], name="stem")], {"x": [1, 3, 8, 8]}, ["y"],
                       {"W": np.ones((4, 3, 3, 3), np.float32)})
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 5  # 5 channels into 3
    _raises(FrontendError, r"^ONNX node 'stem' \(Conv\): .*5 channels.*onnx\.checker", model)
