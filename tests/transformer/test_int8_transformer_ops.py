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


# -- the C square root: exact on its whole domain -----------------------------------------------------

ISQRT_CHECK = r"""
#include <stdio.h>
#include "tfc_norm.c"
int main(void)
{
    /* Every perfect square k^2 in [2^30, 2^32) and its neighbours, plus both ends. */
    for (uint64_t k = 32768; k <= 65536; ++k) {
        for (int64_t delta = -1; delta <= 1; ++delta) {
            uint64_t n = k * k + delta;
            if (n < (1ull << 30) || n >= (1ull << 32)) continue;
            uint64_t s = tfc_isqrt_normalized((uint32_t)n);
            if (s * s > n || (s + 1) * (s + 1) <= n) { printf("bad %llu\n", (unsigned long long)n); return 1; }
        }
    }
    return 0;
}
"""


def test_isqrt_normalized_is_exact_around_every_square(tmp_path):
    (tmp_path / "tfc_namespace.h").write_text("")
    (tmp_path / "check.c").write_text(ISQRT_CHECK)
    exe = tmp_path / "check"
    subprocess.run(["gcc", "-O2", "-std=c99", f"-I{tmp_path}", f"-I{RUNTIME_DIR}", "-o", str(exe),
                    str(tmp_path / "check.c"), "-lm"], check=True, capture_output=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


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
    # Measured 1.57x (256x44) and 1.81x (64x192) fewer than the float anchors; the 2.5x
    # is not reached (docs/transformer.md says why). Guard the gain we have.
    assert counts["layernorm"] * 1.5 <= FLOAT_LAYERNORM[(rows, cols)], counts
