"""The generated C of whole models: Cortex-M7 build (-Werror), ASan/UBSan run, IR round trips."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import tfc
from e2e_util import FAMILIES, case_id, load_samples, model_path
from tfc.pipeline import Instrument, check_roundtrip

pytestmark = pytest.mark.slow

M7_CASES = [(f, "ts17", "int8") for f in FAMILIES] + [("hybrid", "ts17", "float32")]


def _make(outdir, goal: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", goal], cwd=outdir, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.needs("arm-none-eabi-gcc")
@pytest.mark.parametrize("case", M7_CASES, ids=case_id)
def test_generated_c_builds_for_cortex_m7(compiled, case):
    c = compiled.get(*case)
    proc = _make(c.outdir, "m7")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(c.outdir.glob("build/m7/*.a")), "make m7 produced no static library"


@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_hybrid_runs_clean_under_asan_and_ubsan(compiled, precision):
    """The harness binary under -fsanitize=address,undefined gives the same bytes as `tfc run`."""
    c = compiled.get("hybrid", "ts17", precision)
    proc = _make(c.outdir, "host-asan")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (binary,) = c.outdir.glob("*_asan")
    spec = c.artifact.report["inputs"][0]
    x = load_samples("hybrid")[0]
    if precision == "int8":
        from tfc.ir.quant_math import quantize_float

        x = quantize_float(x, spec["scale"], spec["zero_point"], np.int8)
    run = subprocess.run([str(binary)], input=x.tobytes(), capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    assert b"runtime error" not in run.stderr, run.stderr.decode(errors="replace")[-3000:]
    (expected,) = tfc.run(c.outdir, [x], raw=True)
    assert run.stdout == np.ascontiguousarray(expected).tobytes()


class RoundTripEachPass(Instrument):
    """After every pass: print -> parse -> structurally equal, and the reprint is identical."""

    def __init__(self):
        self.checked: list[str] = []

    def after_pass(self, p, graph, changed):
        check_roundtrip(graph)
        self.checked.append(p.name)


ROUNDTRIP_CASES = [(f, "ts13", "int8") for f in FAMILIES] + [("hybrid", "qdq", "int8"),
                                                             ("hybrid", "ts17", "float32")]


@pytest.mark.parametrize("case", ROUNDTRIP_CASES, ids=case_id)
def test_ir_roundtrips_after_every_pass(case):
    family, variant, precision = case
    roundtrip = RoundTripEachPass()
    calib = (model_path(family, variant).parent / "calib.npz"
             if precision == "int8" and variant != "qdq" else None)
    tfc.compile(str(model_path(family, variant)), calib=calib, precision=precision,
                instruments=[roundtrip])
    assert "memory-plan" in roundtrip.checked and len(roundtrip.checked) >= 6
