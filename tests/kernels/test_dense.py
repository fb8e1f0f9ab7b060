"""conv2d (any groups, strides, pads, dilations), linear and matmul kernels against the
interpreter: int8 bit-exact, float32 allclose."""

from __future__ import annotations

import numpy as np
import pytest

from kernel_harness import (Case, f32_type, i8_type, one_op_graph, random_f32, random_i8,
                            requant_pair)

FLOAT_ACTS = [{}, {"act": "relu"}, {"act": "relu6"}, {"act": "clip", "act_min": -1.0, "act_max": 0.5}]


def _channel_requant(rng, channels: int, reduction: int, per_tensor: bool = False) -> dict:
    """Per-channel multipliers that keep random accumulators mostly inside int8."""
    reals = rng.uniform(0.003, 0.015, size=1 if per_tensor else channels) / np.sqrt(reduction)
    pairs = [requant_pair(r) for r in reals]
    return dict(input_zp=int(rng.integers(-20, 20)), output_zp=int(rng.integers(-10, 10)),
                multiplier=[m for m, _ in pairs], shift=[s for _, s in pairs])


def _conv_geometries(rng, count: int):
    """Random small conv shapes, covering plain, grouped and depthwise."""
    out = []
    while len(out) < count:
        kind = ["plain", "depthwise", "grouped"][len(out) % 3]
        n = int(rng.integers(1, 3))
        h, w = (int(v) for v in rng.integers(3, 8, size=2))
        c = int(rng.integers(1, 6))
        if kind == "plain":
            groups, o = 1, int(rng.integers(1, 7))
        elif kind == "depthwise":
            groups, o = c, c * int(rng.integers(1, 3))
        else:
            groups = 2
            c, o = 2 * c, 2 * int(rng.integers(1, 4))
        kh, kw = (int(v) for v in rng.integers(1, 4, size=2))
        strides = [int(v) for v in rng.integers(1, 3, size=2)]
        dilations = [int(v) for v in rng.integers(1, 3, size=2)]
        pads = [int(v) for v in rng.integers(0, 3, size=4)]
        span_h, span_w = dilations[0] * (kh - 1) + 1, dilations[1] * (kw - 1) + 1
        if h + pads[0] + pads[2] < span_h or w + pads[1] + pads[3] < span_w:
            continue
        out.append(dict(n=n, h=h, w=w, c=c, o=o, groups=groups, kh=kh, kw=kw,
                        attrs=dict(strides=strides, pads=pads, dilations=dilations, group=groups,
                                   layout="nhwc")))
    return out


def test_conv2d_int8(kernels_host):
    rng = np.random.default_rng(1)
    cases = []
    for i, geo in enumerate(_conv_geometries(rng, 12)):
        in_per_group = geo["c"] // geo["groups"]
        w = random_i8(rng, (geo["o"], geo["kh"], geo["kw"], in_per_group))
        w[w == -128] = -127  # symmetric weights
        bias = rng.integers(-3000, 3000, size=geo["o"]).astype(np.int32)
        attrs = dict(geo["attrs"], **_channel_requant(rng, geo["o"], geo["kh"] * geo["kw"] * in_per_group,
                                                      per_tensor=i % 4 == 3))
        if i % 2:
            attrs.update(act_min=int(attrs["output_zp"]), act_max=127)
        else:
            attrs.update(act_min=-128, act_max=127)
        with_bias = i % 3 != 2
        shape = (geo["n"], geo["h"], geo["w"], geo["c"])

        def build(b, x, w=w, bias=bias, attrs=attrs, with_bias=with_bias):
            operands = [x, b.const(w, "w")] + ([b.const(bias, "bias")] if with_bias else [])
            return b.op("conv2d", operands, **attrs)

        g = one_op_graph(f"conv{i}", [i8_type(shape, zp=attrs["input_zp"])], build)
        cases.append(Case(g, [random_i8(rng, shape)]))
    kernels_host.check(cases)


def test_conv2d_float(kernels_host):
    rng = np.random.default_rng(2)
    cases = []
    for i, geo in enumerate(_conv_geometries(rng, 9)):
        w = random_f32(rng, (geo["o"], geo["kh"], geo["kw"], geo["c"] // geo["groups"]))
        bias = random_f32(rng, (geo["o"],))
        attrs = dict(geo["attrs"], **FLOAT_ACTS[i % len(FLOAT_ACTS)])
        shape = (geo["n"], geo["h"], geo["w"], geo["c"])
        with_bias = i % 2 == 0

        def build(b, x, w=w, bias=bias, attrs=attrs, with_bias=with_bias):
            operands = [x, b.const(w, "w")] + ([b.const(bias, "bias")] if with_bias else [])
            return b.op("conv2d", operands, **attrs)

        g = one_op_graph(f"conv{i}", [f32_type(shape)], build)
        cases.append(Case(g, [random_f32(rng, shape)]))
    kernels_host.check(cases)


@pytest.mark.parametrize("dtype", ["i8", "f32"])
def test_linear(kernels_host, dtype):
    rng = np.random.default_rng(3)
    cases = []
    for i, x_shape in enumerate([(1, 5), (3, 7), (2, 4, 16), (1, 2, 3, 9)]):
        k, n = x_shape[-1], int(rng.integers(1, 12))
        with_bias = i != 2
        if dtype == "i8":
            w = random_i8(rng, (n, k))
            bias = rng.integers(-2000, 2000, size=n).astype(np.int32)
            attrs = dict(_channel_requant(rng, n, k, per_tensor=i == 1), act_min=-128, act_max=127)
            x_type, x = i8_type(x_shape, zp=attrs["input_zp"]), random_i8(rng, x_shape)
        else:
            w, bias = random_f32(rng, (n, k)), random_f32(rng, (n,))
            attrs = FLOAT_ACTS[i]
            x_type, x = f32_type(x_shape), random_f32(rng, x_shape)

        def build(b, v, w=w, bias=bias, attrs=attrs, with_bias=with_bias):
            operands = [v, b.const(w, "w")] + ([b.const(bias, "bias")] if with_bias else [])
            return b.op("linear", operands, **attrs)

        cases.append(Case(one_op_graph(f"linear{i}", [x_type], build), [x]))
    kernels_host.check(cases)


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 2)),
    ((2, 3, 4), (4, 6)),          # b broadcast over the batch
    ((1, 3, 4), (5, 4, 2)),        # a broadcast
    ((2, 1, 3, 8), (1, 3, 8, 2)),  # both broadcast, rank 4
    ((2, 2, 1, 5), (2, 2, 5, 1)),
]


@pytest.mark.parametrize("dtype", ["i8", "f32"])
def test_matmul(kernels_host, dtype):
    rng = np.random.default_rng(4)
    cases = []
    for i, (sa, sb) in enumerate(MATMUL_SHAPES):
        if dtype == "i8":
            m, s = requant_pair(float(rng.uniform(0.003, 0.015)) / np.sqrt(sa[-1]))
            zps = [int(z) for z in rng.integers(-15, 15, size=3)]
            attrs = dict(a_zp=zps[0], b_zp=zps[1], output_zp=zps[2], multiplier=m, shift=s,
                         act_min=-128 + 10 * (i % 2), act_max=127)
            types = [i8_type(sa, zp=zps[0]), i8_type(sb, zp=zps[1])]
            inputs = [random_i8(rng, sa), random_i8(rng, sb)]
        else:
            attrs = {}
            types = [f32_type(sa), f32_type(sb)]
            inputs = [random_f32(rng, sa), random_f32(rng, sb)]
        g = one_op_graph(f"matmul{i}", types, lambda b, x, y, attrs=attrs: b.op("matmul", [x, y], **attrs))
        cases.append(Case(g, inputs))
    kernels_host.check(cases)


def test_int8_requant_edge_values(kernels_host):
    """Saturating accumulators and extreme multipliers/shifts through the shared MBQM helper."""
    rng = np.random.default_rng(5)
    cases = []
    for i, real in enumerate([0.999999, 2.0 ** -31, 1e-9, 0.5, 1.0 / 3.0, 7.9]):
        m, s = requant_pair(real)
        w = np.full((4, 8), 127, dtype=np.int8)
        w[1] = -127
        w[2] = rng.integers(-127, 128, size=8)
        attrs = dict(input_zp=-128, output_zp=-5, multiplier=[m], shift=[s], act_min=-128, act_max=127)
        g = one_op_graph(f"edge{i}", [i8_type((3, 8), zp=-128)],
                         lambda b, x, w=w, attrs=attrs: b.op("linear", [x, b.const(w, "w")], **attrs))
        x = np.array([[127] * 8, [-128] * 8, rng.integers(-128, 128, size=8)], dtype=np.int8)
        cases.append(Case(g, [x]))
    kernels_host.check(cases)
