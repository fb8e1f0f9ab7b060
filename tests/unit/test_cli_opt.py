"""`tfc opt` and the CLI core: exit codes, one-line errors, split input, diagnostics, dumps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tfc.cli import expected_errors, main, split_input

GOOD = """graph @g(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>) {
  %r = reshape(%x) {shape = [1, 4]} : tensor<1x4xf32>
  %y = relu(%r) : tensor<1x4xf32>
  return %y
}
"""
BAD_RESHAPE = """graph @h(%x: tensor<1x4xf32>) -> (tensor<1x5xf32>) {
  // expected-error@+1 {{cannot reshape}}
  %r = reshape(%x) {shape = [1, 5]} : tensor<1x5xf32>
  return %r
}
"""


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.tir"
    path.write_text(GOOD)
    return path


def test_opt_without_passes_round_trips(good, capsys):
    assert main(["opt", str(good)]) == 0
    assert capsys.readouterr().out == GOOD


def test_opt_runs_a_pipeline_to_a_file(good, tmp_path, capsys):
    out = tmp_path / "out.tir"
    assert main(["opt", str(good), "-p", "canonicalize", "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert "reshape" not in out.read_text() and "relu(%x)" in out.read_text()


def test_user_errors_are_one_line_and_exit_1(good, capsys):
    assert main(["opt", str(good), "-p", "canonicalze"]) == 1
    err = capsys.readouterr().err
    assert err == "tfc: error: unknown pass 'canonicalze'; did you mean 'canonicalize'?\n"
    assert main(["opt", str(good.parent / "missing.tir")]) == 1
    assert capsys.readouterr().err.startswith("tfc: error: cannot read")


def test_parse_errors_show_the_line_and_a_caret(tmp_path, capsys):
    path = tmp_path / "bad.tir"
    path.write_text(BAD_RESHAPE)
    assert main(["opt", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"{path}:3:") and "cannot reshape" in lines[0]
    assert lines[1] == "  %r = reshape(%x) {shape = [1, 5]} : tensor<1x5xf32>"
    assert set(lines[2].strip()) == {"^"}


def test_traceback_flag_reraises(good):
    with pytest.raises(Exception, match="unknown pass"):
        main(["opt", str(good), "-p", "nope", "--traceback"])


def test_usage_errors_exit_2(good, capsys):
    with pytest.raises(SystemExit) as info:
        main(["opt", str(good), "--no-such-flag"])
    assert info.value.code == 2
    assert main(["opt"]) == 2


def test_no_half_written_output_on_error(tmp_path, capsys):
    path = tmp_path / "bad.tir"
    path.write_text(BAD_RESHAPE)
    out = tmp_path / "out.tir"
    assert main(["opt", str(path), "-o", str(out)]) == 1
    assert list(tmp_path.iterdir()) == [path]


def test_split_input_keeps_line_numbers_and_joins_outputs(tmp_path, capsys):
    path = tmp_path / "split.tir"
    path.write_text(GOOD + "// -----\n" + GOOD.replace("@g", "@g2"))
    chunks = split_input(path.read_text(), True)
    assert len(chunks) == 2 and chunks[1].startswith("\n" * 5)
    assert main(["opt", str(path), "--split-input-file", "-p", "canonicalize"]) == 0
    out = capsys.readouterr().out
    assert out.count("// -----\n") == 1 and "@g2" in out.split("// -----\n")[1]


def test_expected_error_annotations():
    text = "a\n// expected-error@+2 {{x}}\nb\nc // expected-error {{y}}\n// expected-error@below {{z}}\nd\n"
    assert expected_errors(text) == [(4, "x", 2), (4, "y", 4), (6, "z", 5)]


def test_verify_diagnostics(tmp_path, capsys):
    path = tmp_path / "diag.tir"
    path.write_text(GOOD + "// -----\n" + BAD_RESHAPE)
    assert main(["opt", str(path), "--split-input-file", "--verify-diagnostics"]) == 0
    assert "@g(" in capsys.readouterr().out
    # a wrong message, and an error nobody expected, both fail
    path.write_text(BAD_RESHAPE.replace("cannot reshape", "something else"))
    assert main(["opt", str(path), "--verify-diagnostics"]) == 1
    err = capsys.readouterr().err
    assert "unexpected error" in err and "was not produced" in err
    path.write_text(GOOD.replace("return", "// expected-error@+1 {{oops}}\n  return"))
    assert main(["opt", str(path), "--verify-diagnostics"]) == 1


def test_ir_debug_flags(good, tmp_path, capsys):
    dump = tmp_path / "dump"
    assert main(["opt", str(good), "-p", "canonicalize,fuse-activation", "--print-ir-after-all",
                 "--print-ir-before", "canonicalize", "--time-passes", "--dump-ir-dir", str(dump)]) == 0
    err = capsys.readouterr().err
    assert "// -----// IR Dump Before canonicalize //----- //" in err
    assert "// -----// IR Dump After fuse-activation //----- //" in err
    assert "Total Execution Time" in err
    assert sorted(p.name for p in dump.iterdir()) == [
        "00_input.tir", "01_canonicalize.tir", "02_fuse-activation.tir"]
    # every dump is valid `tfc opt` input
    assert main(["opt", str(dump / "01_canonicalize.tir"), "-p", "fuse-activation"]) == 0
    assert main(["opt", str(good), "--print-ir-after", "canonicalise"]) == 1
    assert "did you mean 'canonicalize'" in capsys.readouterr().err


def test_list_passes(capsys):
    assert main(["opt", "--list-passes"]) == 0
    assert "layout-nhwc" in capsys.readouterr().out


def test_python_dash_m_entry_point(good):
    proc = subprocess.run([sys.executable, "-m", "tfc.cli", "opt", str(good), "-p", "canonicalize"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "relu(%x)" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "tfc.cli", "opt", str(good), "-p", "bogus"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_import_command(tmp_path, capsys):
    model = Path(__file__).resolve().parents[1] / "models" / "dscnn" / "ts17.onnx"
    out = tmp_path / "dscnn.tir"
    assert main(["import", str(model), "-o", str(out)]) == 0
    assert main(["opt", str(out), "-p", "canonicalize,fold-batchnorm,fuse-activation,layout-nhwc"]) == 0
    assert 'layout = "nhwc"' in capsys.readouterr().out
    assert main(["import", str(tmp_path / "none.onnx")]) == 1
