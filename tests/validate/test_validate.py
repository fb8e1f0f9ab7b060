"""`tfc validate`: per-output and per-layer accuracy of a compiled model against onnxruntime.

Most cases take the per-layer values from the IR interpreter (`on="interp"`, no C build); the
slow cases run the host build, which must agree with the interpreter bit for bit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import tfc
from tfc.backends.cortex_m7.pipeline import INT8_PIPELINE
from tfc.errors import TfcError
from tfc.ir.core import Graph
from tfc.ir.quant_math import quantize_multiplier
from tfc.pipeline import Pass
from tfc.validation import SUSPECT_DROP_DB, SUSPECT_SQNR_DB, sqnr_db

MODELS = Path(__file__).resolve().parents[1] / "models"
SAMPLES = 8


def model_path(family: str, variant: str) -> Path:
    return MODELS / family / f"{variant}.onnx"


def compile_to(tmp_path: Path, family: str, variant: str, pipeline=None) -> Path:
    artifact = tfc.compile(model_path(family, variant), calib=MODELS / family / "calib.npz",
                           pipeline=pipeline)
    return artifact.write(tmp_path / f"{family}-{variant}")


@dataclass
class WrongScalePass(Pass):
    """Test only: multiplies the requantization scale of one op by `factor` (a quantization bug)."""

    name = "test-wrong-scale"
    layer: str = ""
    factor: float = 2.0

    def run(self, graph: Graph) -> bool:
        op = next(op for op in graph.ops if op.results[0].name == self.layer)
        pairs = [quantize_multiplier(m * 2.0 ** (s - 31) * self.factor)
                 for m, s in zip(op.attrs["multiplier"], op.attrs["shift"])]
        op.attrs["multiplier"] = [m for m, _ in pairs]
        op.attrs["shift"] = [s for _, s in pairs]
        return True


def broken_pipeline(layer: str, factor: float) -> list:
    """The int8 pipeline with the wrong scale injected just before memory planning."""
    names = list(INT8_PIPELINE)
    at = names.index("memory-plan")
    return [*names[:at], WrongScalePass(layer=layer, factor=factor), *names[at:]]


@pytest.fixture(scope="module")
def resnet8(tmp_path_factory) -> Path:
    return compile_to(tmp_path_factory.mktemp("validate"), "resnet8", "ts17")


def test_sqnr_is_signal_over_error_power():
    ref = np.array([3.0, -4.0])
    assert sqnr_db(ref, ref * 0.9) == pytest.approx(20.0)  # error = 10% of the amplitude
    assert sqnr_db(ref, ref) is None  # exact: no finite ratio


def test_resnet8_reports_per_layer_sqnr(resnet8):
    report = tfc.validate(model_path("resnet8", "ts17"), resnet8,
                          data=MODELS / "resnet8" / "inputs.npz", samples=SAMPLES, on="interp")
    assert report.samples == SAMPLES and report.build_matches_interpreter is None
    (logits,) = report.outputs
    assert logits.top1_agreement >= 0.85 and logits.sqnr_db > 25

    compared = [layer for layer in report.layers if layer.compared]
    convs = [layer for layer in report.layers if layer.op == "conv2d"]
    assert len(compared) >= 0.9 * len(report.layers)
    assert len(convs) >= 7 and all(layer.compared for layer in convs)
    # nhwc activations compared against nchw onnxruntime tensors: a wrong layout gives ~0 dB
    assert all(layer.shape[-1] != layer.shape[1] for layer in convs[:3])
    assert min(layer.sqnr_db for layer in convs) > 25
    assert report.first_suspect is None
    # fused conv + relu: the conv's value is compared with the Relu's output, not the Conv's
    stem = next(layer for layer in report.layers if layer.name == "stem_stem_0_Conv_output_0")
    assert stem.onnx_tensor == "/stem/stem.2/Relu_output_0"

    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["first_suspect"] is None and len(data["layers"]) == len(report.layers)
    assert {"name", "op", "sqnr_db", "drop_db", "onnx_tensor"} <= set(data["layers"][0])


@pytest.mark.parametrize("family, variant, layer, factor", [
    ("resnet8", "ts17", "stacks_stacks_1_body_body_0_body_0_0_Conv_output_0", 2.0),
    ("resnet8", "ts17", "stacks_stacks_1_body_body_0_body_0_0_Conv_output_0", 0.6),
    ("resnet8", "ts17", "stacks_stacks_2_body_body_1_body_1_0_Conv_output_0", 0.5),
    ("dscnn", "ts17", "blocks_blocks_1_blocks_1_1_blocks_1_1_0_Conv_output_0", 1.7),
])
def test_a_wrong_scale_is_pointed_to(tmp_path, family, variant, layer, factor):
    outdir = compile_to(tmp_path, family, variant, broken_pipeline(layer, factor))
    report = tfc.validate(model_path(family, variant), outdir,
                          data=MODELS / family / "inputs.npz", samples=SAMPLES, on="interp")
    suspect = report.first_suspect
    assert suspect is not None and suspect.name == layer, report.format_table()
    assert suspect.sqnr_db < SUSPECT_SQNR_DB and suspect.drop_db >= SUSPECT_DROP_DB
    before = report.layers[:report.layers.index(suspect)]
    assert all(layer.sqnr_db > 25 for layer in before if layer.compared)
    assert f"suspect: %{layer}" in report.format_table()


def test_layer_matching_across_exporters(tmp_path):
    """ts13 keeps BatchNorm (folded by tfc); QDQ activations are compared after their Q/DQ pair;
    the hybrid's attention matmuls absorbed ONNX's head transposes and compare as the tensors of
    the layout they write (the Div after Q.Kt, the Transpose after A.V)."""
    ts13 = tfc.validate(model_path("dscnn", "ts13"), compile_to(tmp_path, "dscnn", "ts13"),
                        samples=4, on="interp")
    stem = next(layer for layer in ts13.layers if layer.name == "stem_stem_0_Conv_output_0")
    assert stem.onnx_tensor == "/stem/stem.2/Relu_output_0" and stem.sqnr_db > 25

    hybrid = tfc.validate(model_path("hybrid", "ts17"), compile_to(tmp_path, "hybrid", "ts17"),
                          data=MODELS / "hybrid" / "inputs.npz", samples=4, on="interp")
    matmuls = [layer for layer in hybrid.layers if layer.op == "matmul"]
    assert [layer.onnx_tensor for layer in matmuls] == ["/block/attn/Div_output_0",
                                                        "/block/attn/Transpose_3_output_0"]
    assert all(layer.compared and layer.sqnr_db > 20 for layer in matmuls)
    assert sum(layer.compared for layer in hybrid.layers) >= len(hybrid.layers) - 1
    assert hybrid.first_suspect is None


def test_default_inputs_are_seeded_random(resnet8):
    a = tfc.validate(model_path("resnet8", "ts17"), resnet8, samples=2, on="interp")
    b = tfc.validate(model_path("resnet8", "ts17"), resnet8, samples=2, on="interp")
    assert "random normal" in a.inputs_from and a.to_dict() == b.to_dict()


@pytest.mark.parametrize("make_args, message", [
    (lambda d: {"outdir": d.parent / "nowhere"}, "not a tfc output directory"),
    (lambda d: {"model": d / "missing.onnx"}, "does not exist"),
    (lambda d: {"data": {"x": np.zeros((2, 1, 3, 32, 32), np.float32)}}, "no array for model input 'input'"),
    (lambda d: {"data": {"input": np.zeros((2, 3, 16, 16), np.float32)}}, "data for input 'input' has shape"),
    (lambda d: {"on": "board"}, "unknown validation target 'board'"),
])
def test_user_errors_are_one_line(resnet8, make_args, message):
    args = {"model": model_path("resnet8", "ts17"), "outdir": resnet8, "on": "interp"}
    args.update(make_args(resnet8))
    with pytest.raises(TfcError, match=message) as e:
        tfc.validate(**args)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_cli_on_host_build_points_to_the_broken_layer(tmp_path):
    layer = "stacks_stacks_1_body_body_0_body_0_0_Conv_output_0"
    outdir = compile_to(tmp_path, "resnet8", "ts17", broken_pipeline(layer, 2.0))
    out_json = tmp_path / "v.json"
    run = subprocess.run([sys.executable, "-m", "tfc.cli", "validate",
                          str(model_path("resnet8", "ts17")), str(outdir),
                          "--data", str(MODELS / "resnet8" / "inputs.npz"), "--samples", "4",
                          "--json", str(out_json)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "SQNR" in run.stdout and f"suspect: %{layer}" in run.stdout
    data = json.loads(out_json.read_text())
    assert data["on"] == "host" and data["build_matches_interpreter"] is True
    assert data["first_suspect"] == layer
    assert data["outputs"][0]["name"] == "logits" and data["samples"] == 4


@pytest.mark.slow
def test_cli_default_json_and_usage_error(resnet8):
    run = subprocess.run([sys.executable, "-m", "tfc.cli", "validate",
                          str(model_path("resnet8", "ts17")), str(resnet8), "--samples", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    data = json.loads((resnet8 / "validate.json").read_text())
    assert data["build_matches_interpreter"] is True and data["first_suspect"] is None
    bad = subprocess.run([sys.executable, "-m", "tfc.cli", "validate",
                          str(model_path("resnet8", "ts17")), str(resnet8), "--samples", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--samples must be at least 1" in bad.stderr
