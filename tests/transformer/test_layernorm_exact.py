"""Scaled-LayerNorm bit for bit: interpreter (the spec), host C and the emulated Cortex-M7, on odd
row lengths (the M7 kernel's 8-code, 4-code and single-code paths) and on extreme rows: constant
rows (variance 0, D = eps_q), full-range rows, and one outlier per row (the largest |x_norm|, where
the int16 x_norm * 2^s has the least headroom)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tfc
from tfc.ir import interp
from tfc.ir.quant_math import scaled_layernorm_row, scaled_layernorm_xn_bits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from islands import layernorm_island  # noqa: E402

ROW_LENGTHS = [1, 3, 5, 44, 192, 255]


def _extreme_rows(rng, cols: int) -> np.ndarray:
    """Constant, full-range and one-outlier rows, then random ones."""
    index = np.arange(cols)
    rows = [np.full(cols, v) for v in (-128, 7, 127)]
    rows.append(np.where(index % 2 == 0, 127, -128))  # the largest variance
    rows.append(np.where(index == cols // 2, 127, -128))  # one outlier, sqrt(C - 1) deviations
    rows.append(np.where(index == 0, -128, 127))
    rows.append(np.where(index == cols - 1, 3, 2))  # the smallest nonzero variance
    rows += [rng.integers(-128, 128, size=cols) for _ in range(5)]
    return np.stack(rows).astype(np.int8)


def _case(cols: int):
    rng = np.random.default_rng(cols)
    x = _extreme_rows(rng, cols).reshape(1, -1, cols)
    gamma = rng.uniform(-6.0, 6.0, size=cols).astype(np.float32)
    gamma[0], gamma[-1] = 0.0, -5.0  # a zero gamma, and a large one that saturates both ends
    beta = rng.uniform(-1.0, 1.0, size=cols).astype(np.float32)
    # s_y = 1/32: the outliers' outputs run far past the int8 range and saturate.
    graph = layernorm_island(x.shape, 0.05, -3, gamma, beta, 1.0 / 32.0, 5, name=f"ln{cols}")
    art = tfc.compile(graph, name="m")
    return art, x


@pytest.mark.parametrize("cols", ROW_LENGTHS)
def test_x_norm_stays_inside_int16_on_extreme_rows(cols):
    """|x_norm * 2^s| < 2^15 is what lets SMLAWB read it as int16: check it on the extreme rows."""
    rng = np.random.default_rng(cols)
    for eps_q in (1, 1 << 30):
        for row in _extreme_rows(rng, cols).astype(np.int64):
            a, b = scaled_layernorm_row(int(row.sum()), int((row * row).sum()), cols, eps_q)
            xn = b + ((a * row) >> 16)
            assert np.abs(xn).max() < 1 << 15, (cols, scaled_layernorm_xn_bits(cols))


@pytest.mark.needs("gcc")
@pytest.mark.parametrize("cols", ROW_LENGTHS)
def test_host_c_equals_interpreter(cols, tmp_path):
    art, x = _case(cols)
    want = interp.run(art.graph, [x])[0]
    assert cols == 1 or ((want == 127).any() and (want == -128).any())  # saturation
    outdir = art.write(tmp_path / f"ln{cols}")
    np.testing.assert_array_equal(tfc.run(outdir, [x], raw=True)[0], want)


@pytest.mark.slow
@pytest.mark.needs("arm-none-eabi-gcc", "unicorn")
@pytest.mark.parametrize("cols", ROW_LENGTHS)
def test_emulated_m7_equals_interpreter(cols, tmp_path):
    from tfc.backends.cortex_m7.emulator import run_on_m7

    art, x = _case(cols)
    want = interp.run(art.graph, [x])[0]
    outdir = art.write(tmp_path / f"ln{cols}")
    np.testing.assert_array_equal(run_on_m7(outdir, [x])[0][0], want)
