"""--keep-float-layernorm: the int8 hybrid with LayerNorm kept as a float32 island, against the
default Scaled-LayerNorm build, both measured by `tfc validate` against onnxruntime float."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfc
from tfc.ir import interp

MODELS = Path(__file__).resolve().parents[1] / "models" / "hybrid"
MODEL, CALIB, INPUTS = MODELS / "ts17.onnx", MODELS / "calib.npz", MODELS / "inputs.npz"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("keep_float_ln")
    out = {}
    for keep in (False, True):
        art = tfc.compile(MODEL, calib=CALIB, name="hybrid", keep_float_layernorm=keep)
        out[keep] = (art, art.write(root / ("float_ln" if keep else "scaled_ln")))
    return out


def _layernorm_dtypes(art) -> set[str]:
    return {op.results[0].type.dtype for op in art.graph.ops if op.name == "layernorm"}


def test_the_flag_keeps_layernorm_float_and_nothing_else(builds):
    scaled, kept = builds[False][0], builds[True][0]
    assert _layernorm_dtypes(scaled) == {"i8"}
    assert _layernorm_dtypes(kept) == {"f32"}
    float_ops = {op.name for op in kept.graph.ops
                 if any(v.type.dtype == "f32" for v in op.results) and op.name != "const"}
    # layout-nhwc may move a transpose into the island: data movement, no arithmetic.
    assert float_ops - {"transpose", "reshape"} == {"dequantize", "layernorm"}
    # A float island calls float kernels: the build must keep the FPU (no TFC_INT8_ONLY).
    assert "TFC_INT8_ONLY" not in (builds[True][1] / "Makefile").read_text()


def test_float_layernorm_build_is_bit_exact_between_interpreter_and_host(builds):
    art, outdir = builds[True]
    x = np.random.default_rng(5).integers(-128, 128, size=art.graph.inputs[0].type.shape)
    x = x.astype(np.int8)
    np.testing.assert_array_equal(tfc.run(outdir, [x], raw=True)[0], interp.run(art.graph, [x])[0])


def test_accuracy_scaled_vs_float_layernorm_against_onnxruntime(builds):
    metrics = {}
    for keep, (_, outdir) in builds.items():
        out = tfc.validate(MODEL, outdir, data=INPUTS, on="host").outputs[0]
        metrics["float LayerNorm" if keep else "Scaled-LayerNorm"] = out
    for label, m in metrics.items():
        print(f"{label}: SQNR {m.sqnr_db:.2f} dB, top-1 agreement {m.top1_agreement:.3f} "
              f"vs onnxruntime float ({INPUTS.name})")
    for m in metrics.values():
        assert m.sqnr_db > 25.0 and m.top1_agreement >= 0.9
    # The integer LayerNorm may not cost more than a little accuracy over the float one.
    scaled, kept = metrics["Scaled-LayerNorm"], metrics["float LayerNorm"]
    assert scaled.sqnr_db > kept.sqnr_db - 3.0
    assert scaled.top1_agreement >= kept.top1_agreement - 0.03


def test_cli_flag(tmp_path):
    outdir = tmp_path / "cli_float_ln"
    subprocess.run([sys.executable, "-c", "import sys; from tfc.cli import main; sys.exit(main())",
                    "compile", str(MODEL), "--calib", str(CALIB),
                    "--keep-float-layernorm", "--no-measure-code", "-o", str(outdir)],
                   check=True, capture_output=True, text=True)
    assert "layernorm_f32(" in (outdir / "model.c").read_text()
