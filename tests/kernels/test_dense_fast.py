"""The fast dense int8 kernels (tfc_gemm_s8.c, chosen by dense_lowering.py) against the interpreter.

On the host they run the portable C versions of the SIMD primitives; tests/kernels/test_dense_m7.py
runs the same cases on the emulated Cortex-M7, where the DSP instructions compute them. The shapes
cover every remainder the kernels handle: odd row and channel counts (the 2x2 blocks), reductions
that are not a multiple of 4 (panel padding), padding on every side, strides, dilations, batch,
channel counts that are not a multiple of 4 (the depthwise tail), and extreme zero points.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernel_harness import Case, HarnessContext, i8_type, one_op_graph, random_i8, requant_pair
from tfc.backends.cortex_m7 import dense_lowering, kernels

LINEAR_SHAPES = [  # (rows, in_features, out_features)
    (1, 1, 1), (3, 5, 2), (4, 64, 6), (5, 67, 5), (2, 3, 7), (7, 192, 9)]
CONV_SHAPES = [  # (n, h, w, c, o, k, stride, pads, dilation)
    (1, 8, 8, 3, 16, 3, 1, [1, 1, 1, 1], 1),   # the stem: K = 27
    (1, 9, 9, 3, 5, 3, 2, [1, 1, 0, 1], 1),    # strided stem, odd pixels and channels
    (1, 6, 7, 8, 5, 3, 1, [1, 1, 1, 1], 1),
    (2, 5, 5, 4, 4, 3, 2, [0, 1, 2, 0], 1),
    (1, 7, 6, 5, 3, 3, 1, [2, 2, 2, 2], 2),
    (1, 5, 5, 6, 7, 1, 1, [0, 0, 0, 0], 1),    # pointwise -> linear over pixels
    (1, 6, 6, 8, 4, 1, 2, [0, 0, 0, 0], 1),    # strided 1x1 -> conv
    (1, 4, 9, 2, 3, 2, 1, [1, 0, 0, 1], 1),
]
DEPTHWISE_SHAPES = [  # (n, h, w, c, k, stride, pads, dilation)
    (1, 6, 6, 4, 3, 1, [1, 1, 1, 1], 1), (1, 7, 5, 6, 3, 2, [1, 0, 1, 2], 1),
    (2, 5, 6, 9, 3, 1, [0, 0, 0, 0], 1), (1, 8, 8, 5, 5, 1, [2, 2, 2, 2], 1),
    (1, 7, 7, 8, 3, 1, [2, 2, 2, 2], 2), (1, 3, 3, 1, 3, 1, [1, 1, 1, 1], 1)]


def _quant_attrs(rng, channels: int, reduction: int, zp: int, per_tensor: bool, relu: bool) -> dict:
    reals = rng.uniform(0.004, 0.02, size=1 if per_tensor else channels) / np.sqrt(reduction)
    pairs = [requant_pair(float(r)) for r in reals]
    out_zp = int(rng.integers(-10, 10))
    return dict(input_zp=zp, output_zp=out_zp, multiplier=[m for m, _ in pairs],
                shift=[s for _, s in pairs], act_min=out_zp if relu else -128, act_max=127)


def _weights(rng, shape) -> np.ndarray:
    w = random_i8(rng, shape)
    w[w == -128] = -127
    return w


def linear_case(rng, rows, k, n, i, with_bias=True) -> Case:
    zp = [-128, 127, 0, 5][i % 4]
    attrs = _quant_attrs(rng, n, k, zp, per_tensor=i % 3 == 2, relu=i % 2 == 1)
    w = _weights(rng, (n, k))
    bias = rng.integers(-5000, 5000, size=n).astype(np.int32)

    def build(b, x):
        operands = [x, b.const(w, "w")] + ([b.const(bias, "b")] if with_bias else [])
        return b.op("linear", operands, **attrs)

    g = one_op_graph(f"linear{i}", [i8_type((1, rows, k), zp=zp)], build)
    return Case(g, [random_i8(rng, (1, rows, k))], label=f"linear {rows}x{k}->{n}")


def conv_case(rng, shape, i, depthwise=False) -> Case:
    if depthwise:
        n, h, w_, c, k, stride, pads, dilation = shape
        o, groups, per_group = c, c, 1
    else:
        n, h, w_, c, o, k, stride, pads, dilation = shape
        groups, per_group = 1, c
    zp = [-128, 127, -3, 12][i % 4]
    attrs = dict(strides=[stride, stride], pads=pads, dilations=[dilation, dilation], group=groups,
                 layout="nhwc", **_quant_attrs(rng, o, k * k * per_group, zp, per_tensor=i % 3 == 2,
                                               relu=i % 2 == 0))
    w = _weights(rng, (o, k, k, per_group))
    bias = rng.integers(-5000, 5000, size=o).astype(np.int32)
    with_bias = i % 4 != 3

    def build(b, x):
        operands = [x, b.const(w, "w")] + ([b.const(bias, "b")] if with_bias else [])
        return b.op("conv2d", operands, **attrs)

    g = one_op_graph(f"{'dw' if depthwise else 'conv'}{i}", [i8_type((n, h, w_, c), zp=zp)], build)
    return Case(g, [random_i8(rng, (n, h, w_, c))], label=f"{'depthwise' if depthwise else 'conv'} {shape}")


def all_cases(seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = [linear_case(rng, *shape, i, with_bias=i != 2) for i, shape in enumerate(LINEAR_SHAPES)]
    cases += [conv_case(rng, shape, i) for i, shape in enumerate(CONV_SHAPES)]
    cases += [conv_case(rng, shape, i, depthwise=True) for i, shape in enumerate(DEPTHWISE_SHAPES)]
    return cases


def kernel_names(case: Case) -> list[str]:
    ctx = HarnessContext("probe", data={id(v): a for v, a in zip(case.graph.inputs, case.inputs)})
    return [call.fn for op in case.graph.ops for call in kernels.lower_op(op, ctx)]


def test_every_case_takes_a_fast_kernel():
    fast = {"tfc_linear_s8_packed", "tfc_conv2d_s8_packed", "tfc_depthwise_s8_hwc", "tfc_depthwise_s8_3x3"}
    for case in all_cases():
        assert set(kernel_names(case)) & fast, case.label
    pointwise = next(c for c in all_cases() if "(1, 5, 5, 6, 7, 1, 1" in c.label)
    assert "tfc_linear_s8_packed" in kernel_names(pointwise)


def test_fast_kernels_bit_exact_on_host(kernels_host):
    kernels_host.check(all_cases())


@pytest.mark.parametrize("multiplier, shift", [(-(1 << 31), -1), (1 << 30, -32), (1 << 30, 31)])
def test_requant_outside_the_fast_range_keeps_the_generic_kernel(multiplier, shift):
    rng = np.random.default_rng(3)
    case = linear_case(rng, 2, 8, 4, 0)
    op = next(op for op in case.graph.ops if op.name == "linear")
    op.attrs["multiplier"], op.attrs["shift"] = [multiplier] * 4, [shift] * 4
    assert kernel_names(case) == ["tfc_linear_s8"]


@pytest.mark.parametrize("shift", [-31, -20, 0, 1])
def test_requant_edges_bit_exact(kernels_host, shift):
    rng = np.random.default_rng(40 + shift)
    case = linear_case(rng, 3, 12, 4, 1)
    op = next(op for op in case.graph.ops if op.name == "linear")
    op.attrs["shift"] = [shift] * 4
    op.attrs["multiplier"] = [(1 << 31) - 1, 1 << 30, -(1 << 30), -((1 << 31) - 1)]
    assert kernel_names(case) == ["tfc_linear_s8_packed"]
    kernels_host.check([case])


def test_pack_gemm_weights_layout():
    w = np.arange(3 * 5, dtype=np.int8).reshape(3, 5)  # 3 channels, K = 5 -> K4 = 8, 2 pairs
    packed = dense_lowering.pack_gemm_weights(w).reshape(2, 2, 2, 4)  # pair, group, channel, lane
    np.testing.assert_array_equal(packed[0, 0, 0], w[0, :4])
    np.testing.assert_array_equal(packed[0, 0, 1], w[1, :4])
    np.testing.assert_array_equal(packed[0, 1, 0], [w[0, 4], 0, 0, 0])
    np.testing.assert_array_equal(packed[1, 0, 0], w[2, :4])
    assert not packed[1, :, 1].any()  # the padding channel


def test_fold_zero_point_wraps_like_int32():
    w = np.full((2, 3, 3, 1), 127, np.int8)
    folded = dense_lowering.fold_zero_point(np.array([(1 << 31) - 1, 0], np.int32), w, -128)
    want = (np.array([(1 << 31) - 1, 0], np.int64) + 128 * 127 * 9 + (1 << 31)) % (1 << 32) - (1 << 31)
    np.testing.assert_array_equal(folded, want)
