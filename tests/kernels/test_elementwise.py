"""Elementwise kernels (broadcasting add/sub/mul, clamps, requantize, quantize/dequantize)
against the interpreter: int8 bit-exact, float32 allclose."""

from __future__ import annotations

import numpy as np
import pytest

from kernel_harness import (Case, f32_type, i8_type, one_op_graph, random_f32, random_i8,
                            requant_pair)
from tfc.ir.quant_math import add_multipliers
from tfc.ir.types import Quant, TensorType

# Shape pairs that exercise every broadcast path: equal, scalar, trailing, leading, middle, both.
BROADCASTS = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), ()),
    ((2, 3, 4), (4,)),
    ((1, 3, 1), (2, 3, 4)),
    ((2, 1, 4), (2, 3, 1)),
    ((5, 1, 3, 2), (1, 4, 1, 2)),
    ((7,), (1,)),
    ((1, 1, 6, 1, 2), (3, 1, 1, 5, 2)),
]


def _add_attrs(rng):
    """Integer add parameters (quant_math.add_multipliers) for random input/output scales."""
    s_a, s_b, s_y = (float(s) for s in rng.uniform(0.01, 0.1, size=3))
    zps = [int(z) for z in rng.integers(-20, 20, size=3)]
    a_m, b_m, shift = add_multipliers(s_a / s_y, s_b / s_y)
    lo, hi = (int(v) for v in sorted(rng.integers(-128, 128, size=2)))
    attrs = dict(a_zp=zps[0], b_zp=zps[1], output_zp=zps[2], a_multiplier=a_m, b_multiplier=b_m,
                 shift=shift, act_min=min(lo, -100), act_max=max(hi, 100))
    return attrs, (s_a, zps[0]), (s_b, zps[1])


@pytest.mark.parametrize("name", ["add", "sub", "mul"])
def test_binary_int8(kernels_host, name):
    rng = np.random.default_rng(["add", "sub", "mul"].index(name))
    cases = []
    for i, (sa, sb) in enumerate(BROADCASTS):
        if name == "mul":
            (s_a, s_b, s_y) = (float(s) for s in rng.uniform(0.02, 0.1, size=3))
            m, s = requant_pair(s_a * s_b / s_y)
            zps = [int(z) for z in rng.integers(-10, 10, size=3)]
            attrs = dict(a_zp=zps[0], b_zp=zps[1], output_zp=zps[2], multiplier=m, shift=s)
            if i % 2:
                attrs.update(act_min=-90, act_max=110)
            qa, qb = (s_a, zps[0]), (s_b, zps[1])
        else:
            attrs, qa, qb = _add_attrs(rng)
        types = [i8_type(sa, *qa), i8_type(sb, *qb)]
        g = one_op_graph(f"{name}{i}", types, lambda b, x, y: b.op(name, [x, y], **attrs))
        cases.append(Case(g, [random_i8(rng, sa), random_i8(rng, sb)]))
    kernels_host.check(cases)


@pytest.mark.parametrize("name", ["add", "sub", "mul"])
def test_binary_float(kernels_host, name):
    rng = np.random.default_rng(7)
    acts = [{}, {"act": "relu"}, {"act": "relu6"}, {"act": "clip", "act_min": -0.5, "act_max": 0.25}]
    cases = []
    for i, (sa, sb) in enumerate(BROADCASTS):
        attrs = {} if name == "mul" else acts[i % len(acts)]
        g = one_op_graph(f"{name}{i}", [f32_type(sa), f32_type(sb)],
                         lambda b, x, y: b.op(name, [x, y], **attrs))
        cases.append(Case(g, [random_f32(rng, sa), random_f32(rng, sb)]))
    kernels_host.check(cases)


def test_clip_relu_requantize(kernels_host):
    rng = np.random.default_rng(3)
    shape = (2, 5, 3)
    cases = [
        Case(one_op_graph("clip_i8", [i8_type(shape)],
                          lambda b, x: b.op("clip", [x], min=-20, max=37)), [random_i8(rng, shape)]),
        Case(one_op_graph("clip_i8_open", [i8_type(shape)],
                          lambda b, x: b.op("clip", [x], min=5)), [random_i8(rng, shape)]),
        Case(one_op_graph("clip_f32", [f32_type(shape)],
                          lambda b, x: b.op("clip", [x], min=-0.3, max=0.7)), [random_f32(rng, shape)]),
        Case(one_op_graph("clip_f32_open", [f32_type(shape)],
                          lambda b, x: b.op("clip", [x], max=0.1)), [random_f32(rng, shape)]),
        Case(one_op_graph("relu", [f32_type(shape)], lambda b, x: b.op("relu", [x])),
             [random_f32(rng, shape)]),
    ]
    for i, real in enumerate([0.3, 1.7, 0.0041, 12.5]):
        m, s = requant_pair(real)
        attrs = dict(input_zp=int(rng.integers(-30, 30)), output_zp=int(rng.integers(-30, 30)),
                     multiplier=m, shift=s)
        if i % 2:
            attrs.update(act_min=-60, act_max=90)
        g = one_op_graph(f"requant{i}", [i8_type(shape)], lambda b, x: b.op("requantize", [x], **attrs))
        cases.append(Case(g, [random_i8(rng, shape)]))
    kernels_host.check(cases)


def test_quantize_dequantize(kernels_host):
    rng = np.random.default_rng(11)
    shape = (3, 4, 5)
    cases = []
    for i, (scale, zp) in enumerate([(0.05, 0), (0.013, -7), (0.2, 100), (1.0, 0)]):
        q = Quant.per_tensor(scale, zp)
        x = random_f32(rng, shape, scale=4.0)
        x.flat[:6] = np.array([0.5, 1.5, -2.5, -0.5, 1e9, -1e9], dtype=np.float32) * scale
        g = one_op_graph(f"quantize{i}", [f32_type(shape)],
                         lambda b, v: b.op("quantize", [v], result_type=TensorType(shape, "i8", q)))
        cases.append(Case(g, [x]))
        g = one_op_graph(f"dequantize{i}", [TensorType(shape, "i8", q)],
                         lambda b, v: b.op("dequantize", [v]))
        cases.append(Case(g, [random_i8(rng, shape)]))
    per_axis = Quant(tuple(rng.uniform(0.01, 0.1, 4)), tuple(int(z) for z in rng.integers(-5, 5, 4)), 1)
    g = one_op_graph("quantize_axis", [f32_type(shape[:1] + (4,) + shape[2:])],
                     lambda b, v: b.op("quantize", [v],
                                       result_type=TensorType((3, 4, 5), "i8", per_axis)))
    cases.append(Case(g, [random_f32(rng, (3, 4, 5))]))
    g = one_op_graph("dequantize_axis", [TensorType((3, 4, 5), "i8", per_axis)],
                     lambda b, v: b.op("dequantize", [v]))
    cases.append(Case(g, [random_i8(rng, (3, 4, 5))]))
    bias_q = Quant.per_tensor(0.0003, 0)
    g = one_op_graph("dequantize_i32", [TensorType((6,), "i32", bias_q)],
                     lambda b, v: b.op("dequantize", [v]))
    cases.append(Case(g, [rng.integers(-50000, 50000, size=6).astype(np.int32)]))
    kernels_host.check(cases, rtol=0, atol=0)
