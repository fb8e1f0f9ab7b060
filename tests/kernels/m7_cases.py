"""Runs kernel test cases as one-op models on the emulated Cortex-M7 and checks them bit-exactly
against the interpreter; shared by the *_m7 kernel tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

import tfc
from tfc.backends.cortex_m7 import m7_build
from tfc.backends.cortex_m7.emulator import M7Emulator
from tfc.backends.cortex_m7.host_run import load_report
from tfc.ir import interp

ROOT = Path(__file__).resolve().parents[2]


def run_cases_on_m7(tmp_path: Path, cases, portable: bool, pipeline: str = "memory-plan",
                    expect_in_model_c: str | None = None) -> None:
    """Each case (with .graph, .inputs, .label) compiled, built for the M7 (-DTFC_NO_DSP when
    `portable`), run, and its output compared with the interpreter's."""
    sys.path.insert(0, str(ROOT / "bench"))
    from kernels import build_elf  # bench/kernels.py: the ELF with or without -DTFC_NO_DSP

    for i, case in enumerate(cases):
        outdir = tmp_path / f"case{i}"
        tfc.compile(case.graph, pipeline=pipeline, name="case", allow_over_budget=True).write(outdir)
        if expect_in_model_c is not None:
            assert expect_in_model_c in (outdir / "model.c").read_text(), case.label
        report = load_report(outdir)
        elf = m7_build.read_elf(build_elf(outdir, report, portable=portable))
        emulator = M7Emulator(elf)
        io = elf.symbol("tfc_m7_io")
        in_offsets, out_offsets = m7_build.io_offsets(report)
        for x, offset in zip(case.inputs, in_offsets):
            emulator.write(io + offset, x.tobytes())
        assert emulator.reset_and_run().status == 0
        want = interp.run(case.graph, case.inputs)[0]
        got = np.frombuffer(emulator.read(io + out_offsets[0], want.nbytes), np.int8).reshape(want.shape)
        assert np.array_equal(got, want), (f"{case.label}: {int((got != want).sum())} of {got.size} "
                                           "elements differ on the emulated M7")
        shutil.rmtree(outdir)
