"""Layer normalization (float, and integer Scaled-LayerNorm) and softmax (float, and the
table-driven integer form) against the interpreter."""

from __future__ import annotations

import numpy as np

from kernel_harness import Case, f32_type, i8_type, one_op_graph, random_f32, random_i8
from tfc.ir.quant_math import (scaled_layernorm_eps_q, scaled_layernorm_params,
                               softmax_exp_lut, softmax_params)

SHAPES = [(1, 8), (3, 16), (2, 5, 24), (2, 2, 3, 7), (4, 1)]


def _scaled_layernorm_attrs(rng, cols: int, s_x: float, zp_x: int) -> dict:
    """The attributes the scaled-layernorm pass derives from gamma, beta and the scales."""
    s_y, zp_y, eps = float(rng.uniform(0.01, 0.05)), int(rng.integers(-10, 10)), 1e-5
    gamma = rng.uniform(-1.5, 1.5, size=cols)
    beta = rng.uniform(-0.5, 0.5, size=cols)
    multiplier, bias = scaled_layernorm_params(gamma, beta, s_y, zp_y)
    return dict(eps_q=scaled_layernorm_eps_q(eps, cols, s_x), multiplier=multiplier, bias=bias,
                act_min=-128, act_max=127)


def test_layernorm_int8(kernels_host):
    rng = np.random.default_rng(31)
    cases = []
    for i, shape in enumerate(SHAPES):
        s_x, zp_x = float(rng.uniform(0.02, 0.1)), int(rng.integers(-20, 20))
        attrs = _scaled_layernorm_attrs(rng, shape[-1], s_x, zp_x)
        if i == 1:
            attrs.update(act_min=-100, act_max=100)
        x = random_i8(rng, shape)
        x.reshape(-1, shape[-1])[0] = zp_x + 3  # a constant row: D is eps_q alone
        g = one_op_graph(f"ln{i}", [i8_type(shape, s_x, zp_x)],
                         lambda b, v, a=attrs: b.op("layernorm", [v], axis=-1, **a))
        cases.append(Case(g, [x]))
    kernels_host.check(cases)


def test_layernorm_int8_row_loop_shapes(kernels_host):
    """Row lengths around the M7's whole-layer loop (16 <= cols <= 256, cols % 4 == 0, full
    range), which the lowering gives a scratch of 2 * cols bytes; host C against the interpreter."""
    rng = np.random.default_rng(34)
    cases = []
    for i, shape in enumerate([(3, 16), (2, 20), (2, 2, 44), (1, 256), (2, 260), (4, 12)]):
        s_x, zp_x = float(rng.uniform(0.02, 0.1)), int(rng.integers(-20, 20))
        attrs = _scaled_layernorm_attrs(rng, shape[-1], s_x, zp_x)
        g = one_op_graph(f"lnrow{i}", [i8_type(shape, s_x, zp_x)],
                         lambda b, v, a=attrs: b.op("layernorm", [v], axis=-1, **a))
        cases.append(Case(g, [random_i8(rng, shape)]))
    kernels_host.check(cases)


def test_layernorm_float(kernels_host):
    rng = np.random.default_rng(32)
    cases = []
    for i, shape in enumerate(SHAPES[:4]):
        cols = shape[-1]
        gamma, beta = random_f32(rng, (cols,)), random_f32(rng, (cols,))
        n_params = [1, 2, 3, 3][i]

        def build(b, v, gamma=gamma, beta=beta, n_params=n_params):
            params = [b.const(gamma, "gamma"), b.const(beta, "beta")][: n_params - 1]
            return b.op("layernorm", [v] + params, axis=-1, epsilon=1e-5)

        cases.append(Case(one_op_graph(f"ln{i}", [f32_type(shape)], build),
                          [random_f32(rng, shape, scale=3.0) + 1.0]))
    kernels_host.check(cases, rtol=1e-4, atol=1e-5)


def test_softmax_int8(kernels_host):
    rng = np.random.default_rng(33)
    cases = []
    for i, shape in enumerate(SHAPES):
        s_x = float(rng.uniform(0.02, 0.2))
        s_y, zp_y = 1.0 / 256.0, -128
        if i == 2:
            s_y, zp_y = 1.0 / 255.0, -100
        m, s = softmax_params(s_y)
        lut = softmax_exp_lut(s_x)
        x = random_i8(rng, shape)
        if i == 0:
            x[0, :] = [127, -128, 127, 0, -128, 5, 127, 126]  # widest table reach, ties at max

        def build(b, v, lut=lut, m=m, s=s, zp_y=zp_y):
            return b.op("softmax", [v, b.const(lut, "lut")], axis=-1, output_zp=zp_y,
                        multiplier=m, shift=s)

        cases.append(Case(one_op_graph(f"softmax{i}", [i8_type(shape, s_x)], build), [x]))
    kernels_host.check(cases)


def test_softmax_float(kernels_host):
    rng = np.random.default_rng(34)
    cases = [Case(one_op_graph(f"softmax{i}", [f32_type(shape)],
                               lambda b, v: b.op("softmax", [v], axis=-1)),
                  [random_f32(rng, shape, scale=4.0)])
             for i, shape in enumerate(SHAPES)]
    kernels_host.check(cases, rtol=1e-5, atol=1e-7)
