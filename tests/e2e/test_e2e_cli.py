"""The `tfc` command line as a user runs it (`python -m tfc.cli` in a subprocess).

The main job (compile the bundled example, run it, read the report), IR dumps that `tfc opt`
reloads and replays, and the user errors: exit code 1, one `tfc: error:` line, no traceback, no
output directory left behind.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tfc
from e2e_util import EXAMPLE, model_path, tfc_cli

pytestmark = pytest.mark.slow

REPORT_FIELDS = {"model", "target", "precision", "flash_bytes", "weights_bytes", "code_bytes",
                 "arena_bytes", "arena_lower_bound_bytes", "sram_bytes", "budget", "fits",
                 "layers"}
LAYER_FIELDS = {"name", "op", "macs", "storage", "block", "sparsity", "weight_bytes",
                "arena_offset", "out_bytes"}
OUTDIR_FILES = {"model.h", "model.c", "weights.c", "Makefile", "report.json", "report.md",
                "model.tir"}


@pytest.fixture(scope="module")
def example_build(tmp_path_factory):
    """`tfc compile` of the bundled example with every pass's IR dumped."""
    root = tmp_path_factory.mktemp("cli")
    outdir, dumps = root / "hybrid", root / "dumps"
    proc = tfc_cli("compile", str(EXAMPLE / "model.onnx"), "--target", "stm32f746",
                   "--calib", str(EXAMPLE / "calib.npz"), "-o", str(outdir),
                   "--dump-ir-dir", str(dumps))
    assert proc.returncode == 0, proc.stderr
    return outdir, dumps


def test_compile_writes_the_promised_outdir(example_build):
    outdir, _ = example_build
    assert OUTDIR_FILES <= {p.name for p in outdir.iterdir()}
    report = json.loads((outdir / "report.json").read_text())
    assert REPORT_FIELDS <= set(report)
    assert report["target"] == "stm32f746" and report["precision"] == "int8"
    assert report["fits"] is True
    assert report["arena_bytes"] >= report["arena_lower_bound_bytes"] > 0
    assert report["layers"] and all(LAYER_FIELDS <= set(layer) for layer in report["layers"])
    header = (outdir / "model.h").read_text()
    assert "int tfc_model_run(const int8_t *input, int8_t *output)" in header.replace("  ", " ")
    assert "TFC_MODEL_ARENA_SIZE" in header.upper()


def test_run_matches_the_library(example_build, tmp_path):
    outdir, _ = example_build
    y_path = tmp_path / "y.npy"
    proc = tfc_cli("run", str(outdir), "--input", str(EXAMPLE / "input.npy"), "-o", str(y_path))
    assert proc.returncode == 0, proc.stderr
    (expected,) = tfc.run(outdir, [np.load(EXAMPLE / "input.npy")])
    np.testing.assert_array_equal(np.load(y_path), expected)


def test_ir_dumps_reload_and_replay_with_tfc_opt(example_build, tmp_path):
    """Each dump is valid `tfc opt` input, and running pass k on dump k-1 gives dump k."""
    _, dumps = example_build
    files = sorted(dumps.glob("*.tir"))
    assert files[0].name == "00_input.tir"
    assert any(f.name.endswith("_memory-plan.tir") for f in files), [f.name for f in files]
    for before, after in zip(files, files[1:]):
        pass_name = after.stem.split("_", 1)[1]
        # calibrate's samples are not part of the IR: hand them over as the pass option.
        pipeline = (f"calibrate{{data={EXAMPLE / 'calib.npz'}}}" if pass_name == "calibrate"
                    else pass_name)
        source = before
        proc = tfc_cli("opt", str(source), "-p", pipeline)
        assert proc.returncode == 0, f"{source.name} -p '{pipeline}': {proc.stderr}"
        assert proc.stdout == after.read_text(), f"{source.name} -p '{pipeline}' != {after.name}"


# -- user errors ----------------------------------------------------------------------------------

def _tiny_model(path, op_type="Relu", input_dims=(1, 4)):
    node = helper.make_node(op_type, ["x"], ["y"], name=f"the_{op_type.lower()}")
    graph = helper.make_graph([node], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, input_dims)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _truncated(path):
    data = model_path("hybrid", "ts17").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


COMPILE_ERRORS = {
    # case: (make the model, extra args, words the message must contain)
    "truncated-onnx": (_truncated, (), ()),
    "unsupported-op": (lambda p: _tiny_model(p, "Hardmax"), ("--precision", "float32"),
                       ("Hardmax",)),
    "dynamic-input": (lambda p: _tiny_model(p, "Relu", ("N", 4)), ("--precision", "float32"),
                      ("x",)),
    "float-int8-without-calib": (lambda p: EXAMPLE / "model.onnx", (), ("--calib",)),
}


def _assert_one_line_user_error(proc, words=()):
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {proc.stderr}"
    assert lines[0].startswith("tfc: error: ")
    for word in words:
        assert word in lines[0], f"'{word}' not named in: {lines[0]}"


@pytest.mark.parametrize("case", sorted(COMPILE_ERRORS))
def test_compile_user_error_is_one_line_and_leaves_no_output(case, tmp_path):
    make_model, extra, words = COMPILE_ERRORS[case]
    model = make_model(tmp_path / "model.onnx")
    workdir = tmp_path / "work"
    workdir.mkdir()
    proc = tfc_cli("compile", str(model), "--target", "stm32f746", "-o", str(workdir / "out"),
                   *extra)
    _assert_one_line_user_error(proc, words)
    assert list(workdir.iterdir()) == [], "a failed compile left files behind"


def test_bad_ir_text_points_at_line_and_column(tmp_path):
    bad = tmp_path / "bad.tir"
    bad.write_text("graph @g(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>) {\n"
                   "  %y = relu(%x) : tensor<1x4xf32>\n"
                   "  %z = relu(%nope) : tensor<1x4xf32>\n"
                   "  return %z\n"
                   "}\n")
    proc = tfc_cli("opt", str(bad), "-p", "canonicalize")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    head, *rest = proc.stderr.rstrip("\n").splitlines()
    assert head.startswith(f"{bad}:3:") and "error:" in head and "nope" in head, head
    # an optional source line with a caret under the culprit
    assert rest == [] or (len(rest) == 2 and "%nope" in rest[0] and rest[1].strip().startswith("^"))
