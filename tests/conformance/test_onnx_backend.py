"""ONNX's own node test cases (onnx.backend.test) run through tfc, for every op tfc supports.

The backend imports each case with `frontends.import_onnx` and runs it on the reference
interpreter; a representative subset also compiles to C (float32) and runs on the host.

ONNX node cases feed every operand as a graph input, including operands tfc needs at compile time
(shapes, axes, Clip bounds, Gemm's B, divisors). The backend turns those inputs into initializers
before importing: non-float inputs always, float ones when the front end says it needs them
constant. Run-time float inputs stay inputs.
"""

from __future__ import annotations

import re
import unittest

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep

from frontends import import_onnx
from tfc.errors import UnsupportedOpError
from tfc.ir import interp
from tfc.ir.core import sanitize_name

import onnx.backend.test as backend_test_module

pytestmark = pytest.mark.slow

SUPPORTED_OPS = ("add", "averagepool", "batchnorm", "clip", "concat", "constant", "conv", "div",
                 "flatten", "gemm", "globalaveragepool", "globalmaxpool", "identity", "matmul",
                 "maxpool", "mul", "reduce_mean", "relu", "reshape", "slice", "softmax", "split",
                 "squeeze", "sub", "transpose", "unsqueeze", "dequantizelinear", "quantizelinear")

# Every excluded case of a supported op, and why. Patterns match the test name (with `_cpu`).
EXCLUDED = {
    r"_expanded": "function-body decompositions use ops tfc does not support (Exp, ReduceMax, ...)",
    r"^test_(add|sub|mul|div)_(u?int\d+|int32_trunc)_": "integer tensor arithmetic: tfc's integer "
        "ops are quantized (TFLite semantics), not ONNX wrap-around integer math",
    r"^test_clip_default_int8_": "integer Clip on raw int8 tensors (tfc clips quantized codes "
        "only inside quantized graphs)",
    r"^test_(averagepool|maxpool)_3d_": "3-D pooling: tfc supports 1-D and 2-D windows",
    r"^test_maxpool_with_argmax_": "the Indices output of MaxPool is not supported",
    r"^test_maxpool_2d_uint8_": "uint8 tensors: tfc runs int8",
    r"^test_batchnorm_.*training_mode": "training-mode BatchNormalization (export in eval mode)",
    r"^test_identity_(opt|sequence)_": "optional and sequence types",
    r"^test_constant_pad": "Pad is not supported",
    r"^test_split_to_sequence": "SplitToSequence is not supported (sequence types)",
    r"^test_(split_zero_size_splits|reshape_allowzero_reordered)": "zero-size tensors cannot be "
        "stored in the IR",
    r"^test_(de)?quantizelinear(_axis)?_cpu": "uint8 quantization: tfc runs int8",
    r"^test_(de)?quantizelinear_(blocked|e4m3fn|e5m2|float4e2m1|int16|int2|int4|uint\d+)":
        "quantization types other than int8 (and blocked quantization)",
    r"^test_dequantizelinear_e4m3fn": "float8 quantization",
}

# A representative subset that also goes through tfc.compile(precision="float32") and a host build.
C_SUBSET = ("test_conv_with_strides_padding", "test_gemm_default_vector_bias",
            "test_maxpool_2d_pads", "test_averagepool_2d_pads_count_include_pad",
            "test_softmax_axis_1", "test_add_bcast", "test_matmul_3d", "test_concat_3d_axis_1",
            "test_transpose_default", "test_globalaveragepool", "test_clip", "test_relu", "test_div_bcast", "test_reduce_mean_keepdims_random",
            "test_slice", "test_split_variable_parts_2d_opset18", "test_conv_with_autopad_same")
# Standalone BatchNormalization (not after a conv) has no C kernel: fold-batchnorm folds it into
# the producing conv only, so its cases run on the interpreter alone.


def _bake(model: onnx.ModelProto, inputs: dict[str, np.ndarray], names: set[str]) -> onnx.ModelProto:
    """A copy of the model with the named graph inputs turned into initializers."""
    baked = onnx.ModelProto()
    baked.CopyFrom(model)
    keep = [vi for vi in baked.graph.input if vi.name not in names]
    del baked.graph.input[:]
    baked.graph.input.extend(keep)
    baked.graph.initializer.extend(numpy_helper.from_array(np.asarray(inputs[n]), n) for n in names)
    return baked


def import_case(model: onnx.ModelProto, inputs: list[np.ndarray]):
    """(graph, run-time inputs): compile-time operands baked in, as the front end asks."""
    names = [vi.name for vi in model.graph.input
             if vi.name not in {t.name for t in model.graph.initializer}]
    by_name = dict(zip(names, inputs))
    by_ir_name = {sanitize_name(n): n for n in names}
    baked = {n for n, x in by_name.items() if x.dtype != np.float32}
    for _ in range(len(names) + 1):
        candidate = _bake(model, by_name, baked)
        try:
            graph = import_onnx(candidate)
        except UnsupportedOpError as e:
            wanted = re.search(r"\(input \d+, %(\w+)\) is computed at run time", str(e))
            if not wanted or wanted.group(1) not in by_ir_name:
                raise
            baked.add(by_ir_name[wanted.group(1)])
            continue
        return graph, candidate, [by_name[n] for n in names if n not in baked]
    raise AssertionError("baking inputs did not converge")


class TfcRep(BackendRep):
    def __init__(self, model: onnx.ModelProto, compile_c: bool, workdir):
        self.model, self.compile_c, self.workdir = model, compile_c, workdir

    def run(self, inputs, **kwargs):
        graph, model, runtime_inputs = import_case(self.model, list(inputs))
        if not self.compile_c:
            return interp.run(graph, runtime_inputs)
        import tfc

        artifact = tfc.compile(model, precision="float32", name="conformance")
        outdir = self.workdir / graph.name
        artifact.write(outdir)
        return tfc.run(outdir, runtime_inputs, on="host")


class TfcBackend(Backend):
    compile_c = False
    workdir = None

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        super().prepare(model, device, **kwargs)
        return TfcRep(model, cls.compile_c, cls.workdir)


class TfcCBackend(TfcBackend):
    compile_c = True


def _node_tests(backend, include: str):
    """BackendTest's node cases whose name matches `include`; excluded ones skip with a reason."""
    runner = backend_test_module.BackendTest(backend, __name__)
    case = runner.test_cases["OnnxBackendNodeModelTest"]
    for name in [n for n in vars(case) if n.startswith("test_")]:
        if not re.search(include, name):
            delattr(case, name)  # not an op tfc supports: not collected at all
            continue
        reason = next((why for pattern, why in EXCLUDED.items() if re.search(pattern, name)), None)
        if reason is not None:
            setattr(case, name, unittest.skip(f"excluded: {reason}")(getattr(case, name)))
    return case


OnnxBackendNodeModelTest = _node_tests(TfcBackend, rf"^test_({'|'.join(SUPPORTED_OPS)})(_.*)?_cpu$")


@pytest.mark.needs("gcc", "make")
class OnnxBackendNodeModelTestC(_node_tests(TfcCBackend, rf"^({'|'.join(C_SUBSET)})_cpu$")):
    """The C subset: tfc.compile(precision="float32") + host build + run."""

    @pytest.fixture(autouse=True)
    def _workdir(self, tmp_path):
        TfcCBackend.workdir = tmp_path


# -- LayerNormalization: ONNX's cases also ask for Mean and InvStdDev, which tfc does not compute
# (there is no sqrt/reciprocal op in the IR), so they run here with the model pruned to Y.

def _layernorm_cases():
    from onnx.backend.test.loader import load_node_model_tests

    return sorted((c for c in load_node_model_tests()
                   if c.name.startswith("test_layer_normalization") and "expanded" not in c.name),
                  key=lambda c: c.name)


@pytest.mark.parametrize("case", _layernorm_cases(), ids=lambda c: c.name)
def test_layer_normalization_output_y(case, tmp_path):
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    del model.graph.output[1:]
    del model.graph.node[0].output[1:]
    compile_c = case.name == "test_layer_normalization_3d_axis_negative_1_epsilon"
    for inputs, outputs in case.data_sets:
        rep = TfcRep(model, compile_c, tmp_path)
        got = rep.run([np.asarray(x) for x in inputs])[0]
        np.testing.assert_allclose(got, outputs[0], rtol=case.rtol, atol=max(case.atol, 1e-6))
