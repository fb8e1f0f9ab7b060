"""The fast dense int8 kernels on the emulated Cortex-M7, where the DSP path (SXTB16, SMLAD,
SMLABB/SMLATT) computes them: every case of test_dense_fast.py, bit-exact with the interpreter,
plus the same model built with -DTFC_NO_DSP (the portable primitives on the M7)."""

from __future__ import annotations

import pytest

from m7_cases import run_cases_on_m7
from test_dense_fast import all_cases

pytestmark = [pytest.mark.slow, pytest.mark.needs("arm-none-eabi-gcc", "unicorn")]


@pytest.mark.parametrize("portable", [False, True], ids=["dsp", "portable"])
def test_fast_kernels_bit_exact_on_m7(tmp_path, portable):
    run_cases_on_m7(tmp_path, all_cases(seed=5), portable)
