"""Scaled-LayerNorm and the table softmax: accuracy against float, bit-exact interpreter / host C /
emulated Cortex-M7, and executed instructions against the issue-5 anchors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfc
from tfc.backends.cortex_m7.kernels import RUNTIME_DIR
from tfc.ir import interp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from islands import (float_layernorm_reference, float_softmax_reference,  # noqa: E402
                     layernorm_island, realistic_layernorm_case, softmax_island)

# Issue 5 anchors: executed instructions on the emulated Cortex-M7.
CMSIS_SOFTMAX_256 = 34_193_478
FLOAT_LAYERNORM = {(256, 44): 208_145, (64, 192): 222_545}


def _compile(graph, tmp_path):
    art = tfc.compile(graph, name="m")
    assert [op.name for op in art.graph.ops if op.name in ("dequantize", "quantize")] == []
    return art, art.write(tmp_path / graph.name)


def _within(got, ref, lsb):
    return np.abs(got.astype(np.int32) - ref.astype(np.int32)) <= lsb


# -- accuracy (interpreter = the spec) --------------------------------------------------------------

@pytest.mark.parametrize("s_x", [0.02, 0.0625, 0.15])
def test_softmax_256x256_within_1_lsb_of_float(s_x, tmp_path):
    rng = np.random.default_rng(int(s_x * 1000))
    shape = (1, 256, 256)
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    x[0, 0] = 7  # a constant row: every probability 1/256
    art = tfc.compile(softmax_island(shape, s_x, 3), name="m")
    got = interp.run(art.graph, [x])[0]
    assert _within(got, float_softmax_reference(x, s_x, 3), 1).all()


@pytest.mark.parametrize("rows,cols", [(256, 44), (64, 192), (16, 7)])
def test_scaled_layernorm_within_1_lsb_of_float_on_99_percent(rows, cols):
    rng = np.random.default_rng(rows + cols)
    x, s_x, zp_x, gamma, beta, s_y, zp_y = realistic_layernorm_case(rng, rows, cols)
    art = tfc.compile(layernorm_island(x.shape, s_x, zp_x, gamma, beta, s_y, zp_y), name="m")
    got = interp.run(art.graph, [x])[0]
    ref = float_layernorm_reference(x, s_x, zp_x, gamma, beta, s_y, zp_y)
    assert _within(got, ref, 1).mean() >= 0.99
    assert _within(got, ref, 2).all()


# -- the C row parameters: the integer square root and (A, B) of quant_math, value for value -------

ROW_CHECK = r"""
#include <stdio.h>
#include "tfc_norm.c"
int main(void)
{
    long cols, bits, eps_q, total, sum_sq;
    while (scanf("%ld %ld %ld %ld %ld", &cols, &bits, &eps_q, &total, &sum_sq) == 5) {
        tfc_layernorm_consts k = tfc_layernorm_prepare((int32_t)cols, (int32_t)bits, (int32_t)eps_q);
        int32_t a, b;
        tfc_layernorm_row((int32_t)total, (uint32_t)sum_sq, &k, &a, &b);
        printf("%ld %ld\n", (long)a, (long)b);
    }
    return 0;
}
"""


def _row_statistics_cases(rng):
    """(C, eps_q, T, Q) of rows that reach the corners: constant rows (D = eps_q, floored at C),
    one outlier (the largest |x_norm|), full-range halves (the largest variance), random rows."""
    cases = []
    for cols in (1, 2, 3, 5, 7, 44, 192, 255, 256, 257, 1000, 4096):
        rows = [np.full(cols, v) for v in (-128, 0, 127)]
        rows.append(np.where(np.arange(cols) == 0, 127, -128))
        rows.append(np.where(np.arange(cols) % 2 == 0, 127, -128))
        rows += [rng.integers(-128, 128, size=cols) for _ in range(20)]
        rows += [rng.integers(-3, 4, size=cols) + int(rng.integers(-100, 100)) for _ in range(20)]
        for eps_q in (1, 26, 1 << 30):
            cases += [(cols, eps_q, int(r.sum()), int((r * r).sum())) for r in rows]
    return cases


def test_row_parameters_in_c_equal_quant_math(tmp_path):
    from tfc.ir.quant_math import scaled_layernorm_row, scaled_layernorm_xn_bits

    (tmp_path / "tfc_namespace.h").write_text("")
    (tmp_path / "check.c").write_text(ROW_CHECK)
    exe = tmp_path / "check"
    subprocess.run(["gcc", "-O2", "-std=c99", f"-I{tmp_path}", f"-I{RUNTIME_DIR}", "-o", str(exe),
                    str(tmp_path / "check.c"), "-lm"], check=True, capture_output=True)
    cases = _row_statistics_cases(np.random.default_rng(11))
    stdin = "".join(f"{c} {scaled_layernorm_xn_bits(c)} {e} {t} {q}\n" for c, e, t, q in cases)
    proc = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
    got = [tuple(int(v) for v in line.split()) for line in proc.stdout.splitlines()]
    want = [scaled_layernorm_row(t, q, c, e) for c, e, t, q in cases]
    assert got == want
    # A keeps its margin below 2^31 (ops.py `layernorm`).
    assert max(a for a, _ in want) <= 1 << 30


# -- bit-exact on host and emulated M7, and instruction counts ----------------------------------------

def _m7_layer_instructions(outdir, x):
    from tfc.backends.cortex_m7.emulator import run_on_m7

    outputs, profile = run_on_m7(outdir, [x], profile=True)
    return outputs[0], {layer["op"]: layer["instructions"] for layer in profile["layers"]}


@pytest.mark.slow
def test_softmax_256x256_on_m7_is_25x_fewer_instructions_than_cmsis(tmp_path):
    x = np.random.default_rng(5).integers(-128, 128, size=(1, 256, 256)).astype(np.int8)
    art, outdir = _compile(softmax_island(x.shape, 0.08, 3), tmp_path)
    want = interp.run(art.graph, [x])[0]
    np.testing.assert_array_equal(tfc.run(outdir, [x], raw=True)[0], want)
    got, counts = _m7_layer_instructions(outdir, x)
    np.testing.assert_array_equal(got, want)
    assert counts["softmax"] * 25 <= CMSIS_SOFTMAX_256, counts


@pytest.mark.slow
@pytest.mark.parametrize("rows,cols", sorted(FLOAT_LAYERNORM))
def test_scaled_layernorm_on_m7_bit_exact_and_faster_than_float(rows, cols, tmp_path):
    rng = np.random.default_rng(rows * cols)
    x, s_x, zp_x, gamma, beta, s_y, zp_y = realistic_layernorm_case(rng, rows, cols)
    x = x.reshape(1, rows, cols)
    art, outdir = _compile(layernorm_island(x.shape, s_x, zp_x, gamma, beta, s_y, zp_y), tmp_path)
    want = interp.run(art.graph, [x])[0]
    np.testing.assert_array_equal(tfc.run(outdir, [x], raw=True)[0], want)
    got, counts = _m7_layer_instructions(outdir, x)
    np.testing.assert_array_equal(got, want)
    # Measured 1.97x (256x44) and 2.51x (64x192) fewer than the float anchors (bench/transformer.py;
    # docs/transformer.md says why 256x44 stays short of 2.5x). Guard the gain we have.
    assert counts["layernorm"] * 1.5 <= FLOAT_LAYERNORM[(rows, cols)], counts


@pytest.mark.slow
@pytest.mark.needs("gcc", "arm-none-eabi-gcc", "unicorn")
def test_softmax_on_many_row_lengths_bit_exact_on_host_and_m7(tmp_path):
    """Row lengths 1 to 20 and a few more: the M7 kernel's 8-code steps, 4-code max steps and
    single-code tails; rows of one repeated value (every element ties with the maximum), a lone
    maximum and full-range random rows, at a wide and a narrow input scale."""
    from tfc.backends.cortex_m7.emulator import run_on_m7
    from tfc.ir.core import Builder, Graph
    from tfc.ir.types import Quant, TensorType
    from islands import SOFTMAX_OUT

    lengths = list(range(1, 21)) + [31, 37, 64, 100]
    g, xs, outs = Graph("smmany"), [], []
    b = Builder(g)
    for i, cols in enumerate(lengths):
        rng = np.random.default_rng(2000 + i)
        rows = [np.full(cols, v) for v in (-128, 5, 127)]
        rows.append(np.where(np.arange(cols) == cols // 2, 127, -128))
        rows += [rng.integers(-128, 128, size=cols) for _ in range(4)]
        x = np.stack(rows).astype(np.int8).reshape(1, -1, cols)
        s_x = 0.08 if i % 2 else 0.01
        v = g.add_input(TensorType(x.shape, "i8", Quant.per_tensor(s_x, 3)), f"x{i}")
        vf = b.op("dequantize", [v], name_hint=f"xf{i}", result_type=TensorType(x.shape, "f32"))
        yf = b.op("softmax", [vf], name_hint=f"yf{i}", axis=-1)
        outs.append(b.op("quantize", [yf], name_hint=f"y{i}",
                         result_type=TensorType(x.shape, "i8", SOFTMAX_OUT)))
        xs.append(x)
    g.outputs = outs
    art, outdir = _compile(g, tmp_path)
    want = interp.run(art.graph, xs)
    host = tfc.run(outdir, xs, raw=True)
    m7 = run_on_m7(outdir, xs)[0]
    for cols, w, h, m in zip(lengths, want, host, m7):
        np.testing.assert_array_equal(h, w, err_msg=f"host, cols={cols}")
        np.testing.assert_array_equal(m, w, err_msg=f"m7, cols={cols}")
