"""The int8 matmul kernels (tfc_matmul_s8.c panel kernel, tfc_dense.c scalar strided kernel, chosen
by matmul_lowering.py) against the interpreter, with operand/result layouts (a_perm, b_perm,
y_perm). The host build runs the portable SIMD primitives under ASan/UBSan;
test_matmul_fast_m7 runs the same cases on the emulated Cortex-M7 (SMLAD)."""

from __future__ import annotations

import numpy as np
import pytest

from kernel_harness import Case, f32_type, i8_type, one_op_graph, random_f32, random_i8, requant_pair
from tfc.backends.cortex_m7 import matmul_lowering
from tfc.ir.quant_math import multiply_by_quantized_multiplier

# (a stored shape, b stored shape, a_perm, b_perm, y_perm): every remainder of the 2x2 blocks and
# of the groups of 4 along k, broadcast batches, and the attention layouts.
LAYOUTS = [
    ((3, 5), (5, 7), None, None, None),                   # odd m, k, n
    ((4, 16), (16, 6), None, None, None),
    ((1, 2, 9, 13), (1, 2, 13, 4), None, None, None),     # m > n, odd k
    ((2, 3, 18), (2, 18, 11), None, None, None),          # m < n: packed as Y^T = B^T A^T
    ((2, 3, 4), (4, 6), None, None, None),                # b broadcast over the batch
    ((2, 1, 3, 8), (1, 3, 8, 2), None, None, None),       # both broadcast
    ((1, 1), (1, 1), None, None, None),
    # attention: q, k, v as [tokens, heads, d]; Q.K^T and A.V with the heads merged back
    ((1, 10, 2, 16), (1, 12, 2, 16), [0, 2, 1, 3], [0, 2, 3, 1], None),
    ((1, 2, 10, 12), (1, 12, 2, 16), None, [0, 2, 1, 3], [0, 2, 1, 3]),
    ((1, 7, 3, 5), (1, 9, 3, 5), [0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3]),
    ((6, 5), (7, 6), [1, 0], [1, 0], [1, 0]),             # every operand transposed
    ((2, 3, 5, 4), (3, 2, 5, 6), [0, 1, 3, 2], [1, 0, 2, 3], [2, 0, 1, 3]),
]

REQUANTS = [  # (real multiplier, act_min, act_max): the kernel's three requantization modes
    (0.004, -128, 127),   # high-word form + SSAT
    (0.02, -100, 90),     # high-word form + clamp
    (0.3, -128, 127),     # shift -1: generic MBQM
    (1.7, -128, 127),     # shift 1: generic MBQM, saturating
]


def _matmul_case(rng, i, sa, sb, a_perm, b_perm, y_perm, real, lo, hi, zps) -> Case:
    m, s = requant_pair(real / np.sqrt(sa[-1]))
    attrs = dict(a_zp=zps[0], b_zp=zps[1], output_zp=zps[2], multiplier=m, shift=s,
                 act_min=lo, act_max=hi)
    for key, perm in (("a_perm", a_perm), ("b_perm", b_perm), ("y_perm", y_perm)):
        if perm is not None:
            attrs[key] = perm
    g = one_op_graph(f"matmul{i}", [i8_type(sa, zp=zps[0]), i8_type(sb, zp=zps[1])],
                     lambda b, x, y: b.op("matmul", [x, y], **attrs))
    return Case(g, [random_i8(rng, sa), random_i8(rng, sb)], label=f"matmul{i} {sa}x{sb} {attrs}")


def all_cases(seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for i, (sa, sb, ap, bp, yp) in enumerate(LAYOUTS):
        real, lo, hi = REQUANTS[i % len(REQUANTS)]
        zps = [int(z) for z in rng.integers(-128, 128, size=3)]
        cases.append(_matmul_case(rng, i, sa, sb, ap, bp, yp, real, lo, hi, zps))
    # extreme zero points (|x - zp| = 255) and every requantization mode on one attention shape
    for j, (real, lo, hi) in enumerate(REQUANTS):
        cases.append(_matmul_case(rng, 100 + j, (1, 9, 2, 20), (1, 5, 2, 20), [0, 2, 1, 3],
                                  [0, 2, 3, 1], [0, 2, 1, 3], real, lo, hi, [-128, 127, -7]))
    # short reductions in every requantization mode: the unrolled k = 16 / 32 / 64 loops and the
    # generic one (k = 12, 5), odd m and n, unit output column stride (m >= n: not swapped)
    for j, k in enumerate((16, 32, 64, 12, 5)):
        for r, (real, lo, hi) in enumerate(REQUANTS):
            zps = [int(z) for z in rng.integers(-128, 128, size=3)]
            cases.append(_matmul_case(rng, 200 + 10 * j + r, (1, 9, 2, k), (1, 7, 2, k),
                                      [0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3], real, lo, hi, zps))
    return cases


def test_panel_kernel_bit_exact(kernels_host):
    kernels_host.check(all_cases())


def test_scalar_strided_kernel_bit_exact(kernels_host, monkeypatch):
    """Matmuls whose panel would not fit the scratch limit take tfc_matmul_s8 (no scratch)."""
    monkeypatch.setattr(matmul_lowering, "MAX_PANEL_BYTES", 0)
    cases = all_cases(seed=1)
    calls = {call.fn for case in cases for op in case.graph.ops
             for call in matmul_lowering.lower_matmul(op, _NullContext())}
    assert calls == {"tfc_matmul_s8"}
    kernels_host.check(cases)


def test_float_matmul_with_layouts(kernels_host):
    rng = np.random.default_rng(2)
    cases = []
    for i, (sa, sb, ap, bp, yp) in enumerate(LAYOUTS):
        attrs = {k: p for k, p in (("a_perm", ap), ("b_perm", bp), ("y_perm", yp)) if p is not None}
        g = one_op_graph(f"fmatmul{i}", [f32_type(sa), f32_type(sb)],
                         lambda b, x, y, attrs=attrs: b.op("matmul", [x, y], **attrs))
        cases.append(Case(g, [random_f32(rng, sa), random_f32(rng, sb)]))
    kernels_host.check(cases)


def test_panel_chosen_and_smaller_operand_packed():
    case = _matmul_case(np.random.default_rng(3), 0, (2, 3, 18), (2, 18, 11), None, None, None,
                        0.004, -128, 127, [1, 2, 3])
    (op,) = [op for op in case.graph.ops if op.name == "matmul"]
    layout = matmul_lowering.matmul_layout(op)
    assert layout["swapped"] and (layout["m"], layout["n"]) == (11, 3)
    # two B column pairs (int16 columns of k4 = 20 plus two int32 start values) and two A rows
    assert matmul_lowering.matmul_scratch_bytes(op) == 2 * (4 * 20 + 8) + 4 * 20
    (call,) = matmul_lowering.lower_matmul(op, _NullContext())
    assert call.fn == "tfc_matmul_s8_panel"


@pytest.mark.parametrize("k", [1, 16, 64, 4096])
def test_fast_requant_equals_mbqm(k):
    """The kernel's high-word requantization (output_zp folded in) against MBQM, where it applies."""
    rng = np.random.default_rng(k)
    bound = k * 255 * 255
    acc = np.concatenate([rng.integers(-bound, bound + 1, 4000), np.arange(-600, 600)])
    applied = 0
    for real in np.geomspace(1e-7, 0.24, 40):
        multiplier, shift = requant_pair(real)
        for zp in (-128, -1, 0, 77, 127):
            fast = matmul_lowering.fast_requant(multiplier, shift, zp, k)
            if fast is None:
                continue
            applied += 1
            rounding_high, post_shift = fast
            got = (((acc * multiplier) >> 32) + rounding_high) >> post_shift
            want = multiply_by_quantized_multiplier(acc, multiplier, shift) + zp
            assert np.array_equal(got, want), (real, zp)
    assert applied > 100
    assert matmul_lowering.fast_requant(*requant_pair(0.3), 0, k) is None  # shift -1: generic


class _NullContext:
    def buf(self, value) -> str:
        return value.name

    def const_array(self, hint, array) -> str:
        return hint

    def scratch(self, nbytes, ctype="int8_t") -> str:
        return f"(({ctype} *)scratch)"
