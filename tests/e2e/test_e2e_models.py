"""The committed model zoo is complete and self-consistent (fast: onnxruntime only, no tfc build).

The models are written by scripts/make_models.py; these checks catch a partial regeneration or a
calibration file that no longer matches its model.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from e2e_util import (EXAMPLE, FAMILIES, INT8_VARIANTS, MODELS, WITH_DYNAMO, case_id, load_samples,
                      model_path, ort_outputs)

MAX_INT8_WEIGHT_BYTES = 300 * 1024


def _static_input_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    (inp,) = [i for i in model.graph.input
              if i.name not in {t.name for t in model.graph.initializer}]
    return tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)


@pytest.mark.parametrize("case", INT8_VARIANTS, ids=case_id)
def test_model_file_is_valid_with_static_input(case):
    path = model_path(*case)
    model = onnx.load(str(path))  # also loads a dynamo export's external .data file
    onnx.checker.check_model(model)
    shape = _static_input_shape(model)
    assert shape and all(d > 0 for d in shape), f"{path}: input shape {shape} is not static"
    assert [i.name for i in model.graph.input][:1] == ["input"]


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_sets_match_the_model_input(family):
    shape = _static_input_shape(onnx.load(str(model_path(family, "ts17"))))
    calib, tests = load_samples(family, "calib"), load_samples(family, "inputs")
    for samples in (calib, tests):
        assert samples.dtype == np.float32
        assert samples.shape[0] >= 100 and samples.shape[1:] == shape
    assert not np.array_equal(calib[:10], tests[:10]), "test inputs must differ from calibration"


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_fit_the_size_budget(family):
    model = onnx.load(str(model_path(family, "ts17")))
    params = sum(numpy_helper.to_array(t).size for t in model.graph.initializer
                 if t.data_type == onnx.TensorProto.FLOAT)
    assert 0 < params <= MAX_INT8_WEIGHT_BYTES  # one byte per weight once quantized


@pytest.mark.parametrize("family", FAMILIES)
def test_exports_agree_and_are_confident(family):
    """All float exports compute the same function, and the net is trained (a clear top-1)."""
    samples = load_samples(family)[:20]
    reference = ort_outputs(model_path(family, "ts17"), samples)
    others = ["ts13"] + (["dynamo"] if family in WITH_DYNAMO else [])
    for variant in others:
        got = ort_outputs(model_path(family, variant), samples)
        np.testing.assert_allclose(got, reference, atol=1e-4, rtol=1e-4, err_msg=variant)
    top2 = np.sort(reference.reshape(len(samples), -1), axis=1)[:, -2:]
    assert np.median(top2[:, 1] - top2[:, 0]) > 1.0, "logits are near-tied: is the model trained?"


def test_bundled_example_is_the_hybrid_model():
    model = onnx.load(str(EXAMPLE / "model.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "LayerNormalization", "Softmax", "MatMul"} <= ops
    x = np.load(EXAMPLE / "input.npy")
    assert x.dtype == np.float32 and x.shape == _static_input_shape(model)
    with np.load(EXAMPLE / "calib.npz") as calib:
        assert calib["input"].shape[1:] == x.shape
    np.testing.assert_allclose(ort_outputs(EXAMPLE / "model.onnx", x[None]),
                               ort_outputs(MODELS / "hybrid" / "ts17.onnx", x[None]), atol=1e-6)


def test_tiny_model_reexports_through_torch(tmp_path):
    """The generator's export path still works with the installed torch (a [dev] dependency)."""
    import torch
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_models",
                                                  MODELS.parents[1] / "scripts" / "make_models.py")
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    torch.manual_seed(0)
    model = make_models.InvertedResidual(4, 4, 1, 2).eval()
    x = torch.randn(1, 4, 6, 6)
    path = tmp_path / "tiny.onnx"
    with torch.no_grad():
        make_models.export_torchscript(model, x, path, 13)
        make_models.check_against_torch(path, model, x.numpy()[None])
    assert "BatchNormalization" in {n.op_type for n in onnx.load(str(path)).graph.node}
