"""The C fixed-point helpers (tfc_fixedpoint.h) against tfc.ir.quant_math, value by value,
including the edge cases: INT32_MIN operands, saturation, every shift, ties, big square roots."""

from __future__ import annotations

import math

import numpy as np

from tfc.ir import quant_math

INT32_MIN, INT32_MAX = quant_math.INT32_MIN, quant_math.INT32_MAX


def _c_array(name: str, ctype: str, values) -> str:
    return f"static const {ctype} {name}[] = {{{', '.join(str(int(v)) + ('LL' if ctype == 'int64_t' else '') for v in values)}}};\n"


def _requant_inputs(rng):
    xs = [0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MIN + 1, 1 << 20, -(1 << 20), 12345, -12345]
    multipliers = [INT32_MIN, INT32_MAX, 1 << 30, -(1 << 30), 1518500250, -1518500250, 0, 1]
    triples = []
    for x in xs:
        for m in multipliers:
            for shift in (-31, -20, -1, 0, 1, 5):
                triples.append((x, m, shift))
    for _ in range(3000):
        shift = int(rng.integers(-31, 8))
        bound = INT32_MAX >> max(shift, 0)  # the quantizer keeps x << shift inside int32
        triples.append((int(rng.integers(-bound, bound)), int(rng.integers(INT32_MIN, INT32_MAX)), shift))
    for real in rng.uniform(1e-6, 4.0, size=200):
        m, s = quant_math.quantize_multiplier(float(real))
        triples.append((int(rng.integers(-(1 << 24), 1 << 24)), m, s))
    return np.array(triples, dtype=np.int64)


def test_requantize_matches_mbqm(kernels_host):
    rng = np.random.default_rng(51)
    t = _requant_inputs(rng)
    source = ('#include <stdio.h>\n#include "tfc_runtime.h"\n'
              + _c_array("xs", "int32_t", t[:, 0]) + _c_array("ms", "int32_t", t[:, 1])
              + _c_array("ss", "int32_t", t[:, 2])
              + "int main(void) {\n  for (size_t i = 0; i < sizeof xs / sizeof xs[0]; ++i) {\n"
              "    int32_t y = tfc_requantize(xs[i], ms[i], ss[i]);\n"
              "    fwrite(&y, sizeof y, 1, stdout);\n  }\n  return 0;\n}\n")
    got = np.frombuffer(kernels_host.run_program(source), dtype=np.int32)
    want = quant_math.multiply_by_quantized_multiplier(t[:, 0], t[:, 1], t[:, 2])
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} mismatches, e.g. (x, m, shift) = {t[bad[0]].tolist()}: " \
                          f"got {got[bad[0]]}, want {want[bad[0]]}"


def test_rounding_divide_and_isqrt(kernels_host):
    rng = np.random.default_rng(52)
    nums = np.concatenate([np.arange(-20, 21), rng.integers(-(1 << 40), 1 << 40, size=500)])
    dens = np.concatenate([np.full(41, 4), rng.integers(1, 1 << 20, size=500)])
    dens[::7] = 2  # exact halves: ties round away from zero
    roots = np.concatenate([np.arange(0, 300), [(1 << 62) - 1, (1 << 62), (1 << 63) - 1],
                            [k * k for k in (3037000499, 123456789)],
                            [k * k - 1 for k in (3037000499, 123456789)],
                            rng.integers(0, 1 << 62, size=500)])
    source = ('#include <stdio.h>\n#include "tfc_runtime.h"\n'
              + _c_array("nums", "int64_t", nums) + _c_array("dens", "int64_t", dens)
              + _c_array("roots", "int64_t", roots)
              + "int main(void) {\n"
              "  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; ++i) {\n"
              "    int64_t q = tfc_rounding_divide(nums[i], dens[i]);\n"
              "    fwrite(&q, sizeof q, 1, stdout);\n  }\n"
              "  for (size_t i = 0; i < sizeof roots / sizeof roots[0]; ++i) {\n"
              "    int64_t r = tfc_isqrt64(roots[i]);\n"
              "    fwrite(&r, sizeof r, 1, stdout);\n  }\n  return 0;\n}\n")
    got = np.frombuffer(kernels_host.run_program(source), dtype=np.int64)
    np.testing.assert_array_equal(got[:len(nums)], quant_math.rounding_divide(nums, dens))
    np.testing.assert_array_equal(got[len(nums):], [math.isqrt(int(v)) for v in roots])


def test_high_word_requantize_matches_mbqm_plus_zero_point(kernels_host):
    """The fast kernels' two-instruction form, on every shift it accepts and extreme inputs."""
    rng = np.random.default_rng(53)
    shifts = np.repeat(np.arange(-2 - quant_math.HIGH_WORD_MAX_K + 1, -1), 150)
    multipliers = rng.integers(1 << 30, 1 << 31, shifts.size)
    multipliers[::5] = -multipliers[::5]
    xs = rng.integers(INT32_MIN, INT32_MAX, shifts.size, endpoint=True)
    xs[::7] = INT32_MIN
    xs[1::7] = INT32_MAX
    zps = rng.integers(-128, 128, shifts.size)
    params = np.concatenate([quant_math.high_word_requant(m, s, zp)
                             for m, s, zp in zip(multipliers, shifts, zps)])
    assert quant_math.high_word_requant([1 << 30], [-1], 0) is None  # k = 0 takes the slow path
    source = ('#include <stdio.h>\n#include "tfc_runtime.h"\n#include "tfc_internal.h"\n'
              + _c_array("xs", "int32_t", xs) + _c_array("ps", "int32_t", params.reshape(-1))
              + "int main(void) {\n  for (size_t i = 0; i < sizeof xs / sizeof xs[0]; ++i) {\n"
              "    int32_t y = tfc_requantize_high(xs[i], ps[3 * i], ps[3 * i + 1], ps[3 * i + 2]);\n"
              "    fwrite(&y, sizeof y, 1, stdout);\n  }\n  return 0;\n}\n")
    got = np.frombuffer(kernels_host.run_program(source), dtype=np.int32)
    want = quant_math.multiply_by_quantized_multiplier(xs, multipliers, shifts) + zps
    np.testing.assert_array_equal(got, want)
