"""Scaled-LayerNorm bit for bit: interpreter (the spec), host C and the emulated Cortex-M7, on odd
row lengths (the M7 kernel's 8-code, 4-code and single-code paths) and on extreme rows: constant
rows (variance 0, D = eps_q), full-range rows, and one outlier per row (the largest |x_norm|, where
the int16 x_norm * 2^s has the least headroom). One model of many row lengths covers every entry
of the M7's whole-layer loop (16 <= cols <= 256, cols % 4 == 0: leading words 0-3, an odd word
or not) and the paths around it (short rows, rows that are not word-aligned, long rows, a large
epsilon)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tfc
from tfc.ir import interp
from tfc.ir.core import Builder, Graph
from tfc.ir.quant_math import scaled_layernorm_row, scaled_layernorm_xn_bits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from islands import layernorm_island  # noqa: E402

ROW_LENGTHS = [1, 3, 5, 44, 192, 255]
# 1..20, then cols/4 % 4 = 0..3 with an odd and an even word count, both ends of the M7 loop
# (16, 256), rows that are not word-aligned (45, 47) and a row past it (260).
MANY_ROW_LENGTHS = list(range(1, 21)) + [24, 28, 36, 44, 45, 47, 52, 60, 68, 128, 192, 252, 256, 260]


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


def _many_lengths_case():
    """One graph with a LayerNorm island per row length in MANY_ROW_LENGTHS, plus one with an
    epsilon so large that eps_q leaves the M7 loop's range; each on the extreme rows."""
    from tfc.ir.types import Quant, TensorType

    g = Graph("lnmany")
    b = Builder(g)
    inputs, outputs = [], []
    for i, cols in enumerate(MANY_ROW_LENGTHS + [44]):
        rng = np.random.default_rng(1000 + i)
        x = _extreme_rows(rng, cols).reshape(1, -1, cols)
        gamma = rng.uniform(-6.0, 6.0, size=cols).astype(np.float32)
        beta = rng.uniform(-1.0, 1.0, size=cols).astype(np.float32)
        eps = 1e4 if i == len(MANY_ROW_LENGTHS) else 1e-5
        v = g.add_input(TensorType(x.shape, "i8", Quant.per_tensor(0.05, -3)), f"x{i}")
        vf = b.op("dequantize", [v], name_hint=f"xf{i}", result_type=TensorType(x.shape, "f32"))
        yf = b.op("layernorm", [vf, b.const(gamma, f"gamma{i}"), b.const(beta, f"beta{i}")],
                  name_hint=f"yf{i}", axis=-1, epsilon=eps)
        outputs.append(b.op("quantize", [yf], name_hint=f"y{i}", result_type=TensorType(
            x.shape, "i8", Quant.per_tensor(1.0 / 32.0, 5))))
        inputs.append(x)
    g.outputs = outputs
    return tfc.compile(g, name="m"), inputs


@pytest.mark.needs("gcc")
def test_host_c_equals_interpreter_on_many_row_lengths(tmp_path):
    art, xs = _many_lengths_case()
    want = interp.run(art.graph, xs)
    got = tfc.run(art.write(tmp_path / "lnmany"), xs, raw=True)
    for cols, w, y in zip(MANY_ROW_LENGTHS + [44], want, got):
        np.testing.assert_array_equal(y, w, err_msg=f"cols={cols}")


@pytest.mark.slow
@pytest.mark.needs("arm-none-eabi-gcc", "unicorn")
def test_emulated_m7_equals_interpreter_on_many_row_lengths(tmp_path):
    from tfc.backends.cortex_m7.emulator import run_on_m7

    art, xs = _many_lengths_case()
    want = interp.run(art.graph, xs)
    got = run_on_m7(art.write(tmp_path / "lnmany"), xs)[0]
    for cols, w, y in zip(MANY_ROW_LENGTHS + [44], want, got):
        np.testing.assert_array_equal(y, w, err_msg=f"cols={cols}")
