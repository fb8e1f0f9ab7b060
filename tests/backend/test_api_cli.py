"""The public API and the `tfc compile / run / targets` commands: success paths and user errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import tfc
from tfc.errors import BudgetError, TfcError
from tfc.ir.core import Builder, Graph
from tfc.ir.printer import print_graph
from tfc.ir.types import TensorType

from graphs import int8_convnet


def tfc_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tfc.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def big_activation_graph() -> Graph:
    """1 MiB float activations: more SRAM than the stm32f746 has."""
    g = Graph("big")
    x = g.add_input(TensorType((1, 128, 128, 16), "f32"), "x")
    b = Builder(g)
    g.outputs = [b.op("relu", [b.op("relu", [x], name_hint="a")], name_hint="b")]
    return g


def test_unknown_target_lists_known_ones():
    with pytest.raises(TfcError, match="unknown target 'stm32h7'; known targets: stm32f746"):
        tfc.compile(int8_convnet(), "stm32h7", pipeline="memory-plan")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "my-model"}, "is not a C identifier"),
    ({"precision": "int4"}, "unknown precision 'int4'"),
    ({"pipeline": "canonicalize"}, "run the memory-plan pass last"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    kwargs.setdefault("pipeline", "memory-plan")
    with pytest.raises(TfcError, match=message) as e:
        tfc.compile(int8_convnet(), **kwargs)
    assert "\n" not in str(e.value)


def test_over_budget_names_layers_unless_allowed():
    with pytest.raises(BudgetError, match=r"SRAM \d+ B > 327680 B .*largest activations: a \(1048576 B\)"):
        tfc.compile(big_activation_graph(), precision="float32", pipeline="memory-plan")
    art = tfc.compile(big_activation_graph(), precision="float32", pipeline="memory-plan",
                      allow_over_budget=True)
    assert art.report["fits"] is False and art.report["arena_bytes"] == 1 << 20


def test_write_replaces_directory_atomically(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    art = tfc.compile(int8_convnet(), pipeline="memory-plan")
    art.write(out)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp dirs left
    for name in ("model.c", "model.h", "weights.c", "Makefile", "report.json", "report.md",
                 "model.tir", "tfc_namespace.h", "tfc_runtime.h"):
        assert (out / name).is_file(), name
    assert (out / "model.tir").read_text() == print_graph(art.graph)


def test_run_on_m7_needs_an_output_directory(tmp_path):
    with pytest.raises(TfcError, match="no report.json"):
        tfc.run(tmp_path, [np.zeros(1)], on="m7")


def test_run_needs_an_output_directory(tmp_path):
    with pytest.raises(TfcError, match="no report.json"):
        tfc.run(tmp_path, [np.zeros(1)])


def test_cli_compile_run_targets(tmp_path):
    g = int8_convnet()
    (tmp_path / "net.tir").write_text(print_graph(g))
    proc = tfc_cli("compile", "net.tir", "-p", "memory-plan", "--no-measure-code", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "fits: yes" in proc.stdout and "flash" in proc.stdout
    out = tmp_path / "build" / "net"  # the default OUTDIR
    assert (out / "report.json").is_file()
    x = np.random.default_rng(2).normal(size=(1, 6, 6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = tfc_cli("run", out, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr
    want = tfc.run(out, [x])[0]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
    assert f"argmax {int(np.argmax(want))}" in proc.stdout
    proc = tfc_cli("targets")
    assert proc.returncode == 0 and "stm32f746" in proc.stdout and "320 KiB" in proc.stdout


def test_cli_budget_error_writes_nothing(tmp_path):
    (tmp_path / "big.tir").write_text(print_graph(big_activation_graph()))
    proc = tfc_cli("compile", tmp_path / "big.tir", "--precision", "float32", "-p", "memory-plan",
                   "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.startswith("tfc: error: model 'big' does not fit stm32f746")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    proc = tfc_cli("compile", tmp_path / "big.tir", "--precision", "float32", "-p", "memory-plan",
                   "-o", tmp_path / "out", "--allow-over-budget", "--no-measure-code")
    assert proc.returncode == 0 and "fits: NO" in proc.stdout


def test_cli_run_m7_and_profile_errors(tmp_path):
    proc = tfc_cli("run", tmp_path, "--input", "x.npy", "--on", "m7")
    assert proc.returncode == 1 and proc.stderr.startswith("tfc: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = tfc_cli("run", tmp_path, "--input", "x.npy", "--profile")
    assert proc.returncode == 1 and "--on m7" in proc.stderr
