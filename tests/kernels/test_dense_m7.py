"""The fast dense int8 kernels on the emulated Cortex-M7, where the DSP path (SXTB16, SMLAD,
SMLABB/SMLATT) computes them: every case of test_dense_fast.py, bit-exact with the interpreter,
plus the same model built with -DTFC_NO_DSP (the portable primitives on the M7)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import tfc
from tfc.backends.cortex_m7 import m7_build
from tfc.backends.cortex_m7.emulator import M7Emulator
from tfc.backends.cortex_m7.host_run import load_report
from tfc.ir import interp

from test_dense_fast import all_cases

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = [pytest.mark.slow, pytest.mark.needs("arm-none-eabi-gcc", "unicorn")]


@pytest.mark.parametrize("portable", [False, True], ids=["dsp", "portable"])
def test_fast_kernels_bit_exact_on_m7(tmp_path, portable):
    from kernels import build_elf  # bench/kernels.py: the ELF with or without -DTFC_NO_DSP

    for i, case in enumerate(all_cases(seed=5)):
        outdir = tmp_path / f"case{i}"
        tfc.compile(case.graph, pipeline="memory-plan", name="case", allow_over_budget=True).write(outdir)
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
