"""End to end: the example hybrid pruned blockwise to 70% (numpy magnitude pruning of its ONNX
weights) compiles to a smaller flash than dense, runs bit-exact against the interpreter on the
host and on the emulated Cortex-M7 (slow); the speed ratio is measured in bench/sparse_kernels.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import tfc
from tfc import sparse
from tfc.ir import interp

MODELS = Path(__file__).resolve().parent.parent / "models" / "hybrid"
SPARSITY = 0.7


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    model = onnx.load(MODELS / "ts17.onnx")
    calib = str(MODELS / "calib.npz")
    out = {}
    for label, m in (("dense", model), ("pruned", sparse.prune_onnx(model, SPARSITY))):
        art = tfc.compile(m, calib=calib)
        outdir = tmp_path_factory.mktemp(label)
        art.write(outdir)
        out[label] = (art, outdir)
    return out


def test_pruned_model_takes_less_flash(builds):
    dense, pruned = builds["dense"][0].report, builds["pruned"][0].report
    assert pruned["weights_bytes"] < 0.75 * dense["weights_bytes"]
    assert pruned["flash_bytes"] < dense["flash_bytes"]
    sparse_layers = [layer for layer in pruned["layers"] if layer["storage"] == "sparse"]
    assert len(sparse_layers) >= 8
    for layer in sparse_layers:
        assert layer["eta"] > 1 and layer["ratio"] > 1 and layer["execution"] == "sparse"


def _raw_inputs(art) -> list[np.ndarray]:
    x = np.load(MODELS / "inputs.npz")["input"][0]
    spec = art.report["inputs"][0]
    q = np.round(x / spec["scale"]) + spec["zero_point"]
    return [np.clip(q, -128, 127).astype(np.int8).reshape(spec["shape"])]


def test_pruned_model_bit_exact_on_host(builds):
    art, outdir = builds["pruned"]
    inputs = _raw_inputs(art)
    got = tfc.run(outdir, inputs, raw=True)
    want = interp.run(art.graph, inputs)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.slow
@pytest.mark.needs("arm-none-eabi-gcc", "unicorn")
def test_pruned_and_dense_models_bit_exact_on_the_emulated_m7(builds):
    """Bit-exact on the M7 for both builds; the speed ratio is a benchmark (bench/sparse_kernels.py)."""
    instructions = {}
    for label, (art, outdir) in builds.items():
        inputs = _raw_inputs(art)
        got = tfc.run(outdir, inputs, on="m7", raw=True, profile=True)
        np.testing.assert_array_equal(got[0], interp.run(art.graph, inputs)[0])
        instructions[label] = json.loads((outdir / "profile.json").read_text())["instructions"]
    speedup = instructions["dense"] / instructions["pruned"]
    print(f"hybrid pruned to {SPARSITY:.0%}: {speedup:.2f}x fewer instructions than dense")
