"""Compiled models on the emulated Cortex-M7: bit-exact with the host build and the interpreter,
profile.json per the contract, per-layer counts summing to the total, the ELF build cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import tfc
from tfc.backends.cortex_m7.emulator import ModelOnM7, run_on_m7
from tfc.cli import main as cli_main
from tfc.ir import interp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "backend"))
from graphs import float_convnet, int8_convnet  # noqa: E402

MODELS = ROOT / "tests" / "models"
FAMILIES = ("resnet8", "dscnn", "mbv2", "hybrid")
PROFILE_FIELDS = {"instructions": int, "cycles_estimate": int, "stack_bytes": int,
                  "flash_bytes": int, "sram_bytes": int, "layers": list}
LAYER_FIELDS = {"name": str, "op": str, "instructions": int, "cycles_estimate": int, "macs": int}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int8_convnet_outdir(tmp_path_factory):
    graph = int8_convnet()
    art = tfc.compile(graph, pipeline="memory-plan", name="convnet")
    return graph, art.write(tmp_path_factory.mktemp("m7") / "convnet")


def test_int8_convnet_bit_exact_with_host_and_interpreter(int8_convnet_outdir):
    graph, outdir = int8_convnet_outdir
    model = ModelOnM7(outdir)
    rng = np.random.default_rng(11)
    for _ in range(3):
        x = rng.integers(-128, 128, size=(1, 6, 6, 3)).astype(np.int8)
        got = model.run_raw([x])[0]
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got, interp.run(graph, [x])[0])
        np.testing.assert_array_equal(got, tfc.run(outdir, [x], raw=True)[0])


def test_profile_contract_and_layers_sum_to_total(int8_convnet_outdir):
    _, outdir = int8_convnet_outdir
    x = np.random.default_rng(12).integers(-128, 128, size=(1, 6, 6, 3)).astype(np.int8)
    _, profile = run_on_m7(outdir, [x], profile=True)
    assert json.loads((outdir / "profile.json").read_text()) == profile
    for key, kind in PROFILE_FIELDS.items():
        assert isinstance(profile[key], kind), key
    report = json.loads((outdir / "report.json").read_text())
    assert [layer["name"] for layer in profile["layers"]] == [layer["name"] for layer in report["layers"]]
    for layer, reported in zip(profile["layers"], report["layers"]):
        for key, kind in LAYER_FIELDS.items():
            assert isinstance(layer[key], kind), key
        assert layer["op"] == reported["op"] and layer["macs"] == reported["macs"]
    layers = profile["layers"]
    assert sum(layer["instructions"] for layer in layers) == profile["instructions"]
    # Per-layer cycles are rounded separately: at most half a cycle each.
    assert abs(sum(layer["cycles_estimate"] for layer in layers) - profile["cycles_estimate"]) <= len(layers)
    convs = [layer for layer in layers if layer["op"] == "conv2d"]
    assert all(layer["instructions"] > layer["macs"] for layer in convs)
    assert 0 < profile["stack_bytes"] < 8192
    assert profile["sram_bytes"] >= report["arena_bytes"]
    assert profile["flash_bytes"] >= report["weights_bytes"]


def test_float32_convnet_matches_interpreter(tmp_path):
    graph = float_convnet()
    outdir = tfc.compile(graph, precision="float32", pipeline="memory-plan").write(tmp_path / "f")
    x = np.random.default_rng(13).normal(size=(1, 8, 8, 3)).astype(np.float32)
    got = tfc.run(outdir, [x], on="m7")[0]
    np.testing.assert_allclose(got, interp.run(graph, [x])[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, tfc.run(outdir, [x])[0], rtol=1e-6, atol=1e-6)


def test_elf_is_rebuilt_only_when_sources_change(int8_convnet_outdir):
    _, outdir = int8_convnet_outdir
    elf = ModelOnM7(outdir).elf.path
    built_at = elf.stat().st_mtime_ns
    assert ModelOnM7(outdir).elf.path.stat().st_mtime_ns == built_at
    model_c = outdir / "model.c"
    original = model_c.read_text()
    try:
        model_c.write_text(original + "\n/* changed */\n")
        assert ModelOnM7(outdir).elf.path.stat().st_mtime_ns != built_at
    finally:
        model_c.write_text(original)


@pytest.mark.parametrize("family", FAMILIES)
def test_model_zoo_qdq_bit_exact_on_m7_via_cli(family, tmp_path, capsys):
    outdir = tfc.compile(MODELS / family / "qdq.onnx", name=family).write(tmp_path / family)
    with np.load(MODELS / family / "inputs.npz") as data:
        x = data["input"][:2]
    np.save(tmp_path / "x.npy", x)
    assert cli_main(["run", str(outdir), "--input", str(tmp_path / "x.npy"), "--on", "m7",
                     "--profile", "-o", str(tmp_path / "y.npy")]) == 0
    assert "m7 profile:" in capsys.readouterr().out
    on_m7 = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(on_m7, tfc.run(outdir, [x])[0])
    profile = json.loads((outdir / "profile.json").read_text())
    assert sum(layer["instructions"] for layer in profile["layers"]) == profile["instructions"]
    assert profile["instructions"] > sum(layer["macs"] for layer in profile["layers"])


def test_profile_needs_m7(int8_convnet_outdir, tmp_path, capsys):
    _, outdir = int8_convnet_outdir
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 6, 3), np.float32))
    assert cli_main(["run", str(outdir), "--input", str(tmp_path / "x.npy"), "--profile"]) == 1
    assert "--on m7" in capsys.readouterr().err
