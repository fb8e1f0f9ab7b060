"""The int8 matmul kernels on the emulated Cortex-M7 (SMLAD path) and with -DTFC_NO_DSP: every
case of test_matmul_fast.py, compiled as a model, bit-exact with the interpreter."""

from __future__ import annotations

import pytest

from m7_cases import run_cases_on_m7
from test_matmul_fast import all_cases

pytestmark = [pytest.mark.slow, pytest.mark.needs("arm-none-eabi-gcc", "unicorn")]


@pytest.mark.parametrize("portable", [False, True], ids=["dsp", "portable"])
def test_matmul_kernels_bit_exact_on_m7(tmp_path, portable):
    run_cases_on_m7(tmp_path, all_cases(seed=7), portable, pipeline="m7-kernel-scratch,memory-plan",
                    expect_in_model_c="tfc_matmul_s8_panel")
