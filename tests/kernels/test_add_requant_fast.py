"""The fast int8 add/sub and table requantize (elementwise_lowering.py, tfc_elementwise.c):
bit-exact with the interpreter over odd sizes, every broadcast fast path, extreme zero points,
scale ratios and activation ranges, on the host (ASan/UBSan) and on the emulated M7 (DSP and
portable builds). Also the integer formulation's own guarantees (int32 headroom, accuracy)."""

from __future__ import annotations

import numpy as np
import pytest

from kernel_harness import Case, i8_type, one_op_graph, random_i8, requant_pair
from m7_cases import run_cases_on_m7
from tfc.backends.cortex_m7.elementwise_lowering import add_bias
from tfc.ir.quant_math import (ADD_MAX_SHIFT, ADD_MULTIPLIER_BITS, add_int, add_multipliers,
                               multiply_by_quantized_multiplier, requantize_table)


# (a shape, b shape): same shape (the contiguous call), channel broadcast, scalar either side,
# a leading/middle broadcast (strided rows) and odd sizes around the 4-element unrolling.
SHAPES = [
    ((1,), (1,)), ((3,), (3,)), ((7,), (7,)), ((2, 13), (2, 13)), ((1, 4, 4, 16), (1, 4, 4, 16)),
    ((1, 5, 3, 6), (6,)), ((6,), (1, 5, 3, 6)), ((2, 3, 9), ()), ((), (2, 3, 9)),
    ((4, 1, 5), (4, 3, 1)), ((3, 1), (1, 7)), ((2, 1, 4), (2, 3, 4)),
]
# (s_a / s_y, s_b / s_y): the residual case, very unequal operands, a fine output, a tiny ratio.
RATIOS = [(1.0, 1.0), (0.7, 0.45), (3.1, 0.02), (0.9, 250.0), (1e-4, 0.6)]


def _add_case(rng, name: str, i: int, sa, sb) -> Case:
    ra, rb = RATIOS[i % len(RATIOS)]
    a_m, b_m, shift = add_multipliers(ra, rb)
    zps = [-128, 127, 0] if i % 3 == 0 else [int(z) for z in rng.integers(-128, 128, size=3)]
    act = [(-128, 127), (int(zps[2]), 127), (-50, 60)][i % 3]
    attrs = dict(a_zp=zps[0], b_zp=zps[1], output_zp=zps[2], a_multiplier=a_m, b_multiplier=b_m,
                 shift=shift, act_min=act[0], act_max=max(act))
    g = one_op_graph(f"{name}{i}", [i8_type(sa), i8_type(sb)],
                     lambda b, x, y: b.op(name, [x, y], **attrs))
    return Case(g, [random_i8(rng, sa), random_i8(rng, sb)], label=f"{name}{i} {sa}+{sb} {attrs}")


def add_cases(seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [_add_case(rng, name, i, sa, sb) for name in ("add", "sub")
            for i, (sa, sb) in enumerate(SHAPES)]


def requantize_cases(seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for i, real in enumerate([0.3, 1.0, 1.7, 0.0041, 12.5, 300.0]):
        m, s = requant_pair(real)
        attrs = dict(input_zp=int(rng.integers(-128, 128)), output_zp=int(rng.integers(-128, 128)),
                     multiplier=m, shift=s, act_min=-128, act_max=127)
        if i % 2:
            attrs.update(act_min=-60, act_max=90)
        shape = (1, 256) if i == 0 else (int(rng.integers(1, 40)),)
        x = np.arange(-128, 128, dtype=np.int8).reshape(shape) if i == 0 else random_i8(rng, shape)
        g = one_op_graph(f"requant{i}", [i8_type(shape)],
                         lambda b, v, a=attrs: b.op("requantize", [v], **a))
        cases.append(Case(g, [x], label=f"requantize {real} {attrs}"))
    return cases


def test_add_sub_host(kernels_host):
    kernels_host.check(add_cases())


def test_requantize_table_host(kernels_host):
    kernels_host.check(requantize_cases())


def test_add_lowers_to_the_fast_paths():
    from tfc.backends.cortex_m7 import kernels

    class Ctx:
        def buf(self, v):
            return v.name

        def const_array(self, hint, array):
            return hint

    calls = {case.label.split()[0]: kernels.lower_op(case.graph.ops[-1], Ctx())[0].fn
             for case in add_cases()[:6]}
    assert calls["add0"] == calls["add4"] == "tfc_add_s8_contig"
    assert calls["add5"] == "tfc_add_s8"
    assert kernels.lower_op(requantize_cases()[0].graph.ops[-1], Ctx())[0].fn == "tfc_lookup_s8"


@pytest.mark.parametrize("ratios", RATIOS + [(2.0 ** 19 - 1, 1.0), (1.0, 1.0 / 3)])
def test_add_multipliers_fit_int32(ratios):
    """The folded C form never leaves int32: every partial sum at the extreme codes and zero
    points, and it equals the op's definition there."""
    a_m, b_m, shift = add_multipliers(*ratios)
    assert 1 <= shift <= ADD_MAX_SHIFT and max(abs(a_m), abs(b_m)) < 1 << ADD_MULTIPLIER_BITS
    for a_zp, b_zp, out_zp, sign in [(-128, -128, 127, 1), (127, 127, -128, -1), (0, -128, -128, -1)]:
        attrs = dict(a_zp=a_zp, b_zp=b_zp, output_zp=out_zp, a_multiplier=a_m, b_multiplier=b_m,
                     shift=shift)
        bias = add_bias(attrs, sign)
        for a in (-128, 127):
            for b in (-128, 127):
                partials = [bias, bias + a * a_m, bias + a * a_m + b * sign * b_m]
                assert all(-(1 << 31) <= p < 1 << 31 for p in partials)
                want = add_int(a, b, a_zp, b_zp, a_m, b_m, shift, sign) + out_zp
                assert partials[-1] >> shift == want


def test_add_multipliers_reject_a_huge_ratio():
    with pytest.raises(ValueError, match="too large"):
        add_multipliers(2.0 ** 21, 1.0)


@pytest.mark.parametrize("ratios", [(1.0, 1.0), (0.7131, 0.4519), (0.5, 0.5), (1.937, 0.8123)])
def test_add_is_exactly_rounded_almost_everywhere(ratios):
    """One rounding of (a - a_zp) r_a + (b - b_zp) r_b: over all 65536 input pairs the result is
    the exactly rounded real sum, except (by one) where the 21-bit multipliers move a value across
    a rounding boundary: at most 1 pair in 10^4, ties of the real sum aside."""
    a_m, b_m, shift = add_multipliers(*ratios)
    a = np.arange(-128, 128, dtype=np.int64)[:, None]
    b = np.arange(-128, 128, dtype=np.int64)[None, :]
    got = add_int(a, b, 3, -7, a_m, b_m, shift)
    real = (a - 3) * ratios[0] + (b + 7) * ratios[1]
    exact = np.floor(real + 0.5)
    tie = np.abs(real - np.floor(real) - 0.5) < 1e-9
    assert np.abs(got - exact).max() <= 1
    assert (got != exact)[~tie].mean() <= 1e-4


def test_requantize_table_is_the_op():
    m, s = requant_pair(0.37)
    table = requantize_table(-5, 9, m, s, -100, 120)
    codes = np.arange(-128, 128)
    want = np.clip(multiply_by_quantized_multiplier(codes + 5, m, s) + 9, -100, 120)
    assert np.array_equal(table[codes.astype(np.uint8)], want)


def run_on_m7(tmp_path, cases: list[Case], portable: bool) -> None:
    """Each case compiled as a model, run on the emulated M7, outputs equal to the interpreter's."""
    run_cases_on_m7(tmp_path, cases, portable)


@pytest.mark.slow
@pytest.mark.needs("arm-none-eabi-gcc", "unicorn")
@pytest.mark.parametrize("portable", [False, True], ids=["dsp", "portable"])
def test_add_requantize_bit_exact_on_m7(tmp_path, portable):
    run_on_m7(tmp_path, add_cases(seed=3)[::2] + requantize_cases(seed=3)[:3], portable)
