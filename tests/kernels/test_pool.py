"""Pooling (max, average with/without counted padding, ceil mode, dilations), global average
pooling and reduce_mean over any axes, against the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from kernel_harness import (Case, f32_type, i8_type, one_op_graph, random_f32, random_i8,
                            requant_pair)
from tfc.ir.quant_math import MEAN_EXTRA_BITS


def _pool_windows(rng, count: int):
    out = []
    while len(out) < count:
        h, w = (int(v) for v in rng.integers(2, 9, size=2))
        kernel = [int(v) for v in rng.integers(1, 4, size=2)]
        strides = [int(v) for v in rng.integers(1, 3, size=2)]
        dilations = [1, 1] if len(out) % 3 else [int(v) for v in rng.integers(1, 3, size=2)]
        pads = [int(min(v, k - 1)) for v, k in zip(rng.integers(0, 2, size=4), kernel * 2)]
        span = [d * (k - 1) + 1 for d, k in zip(dilations, kernel)]
        if h + pads[0] + pads[2] < span[0] or w + pads[1] + pads[3] < span[1]:
            continue
        out.append(dict(shape=(int(rng.integers(1, 3)), h, w, int(rng.integers(1, 5))),
                        attrs=dict(kernel=kernel, strides=strides, pads=pads, dilations=dilations,
                                   ceil_mode=len(out) % 2 == 1, layout="nhwc")))
    return out


def _mean_requant(rng) -> dict:
    # s_x / (2^8 s_y): the kernels divide the sum at 2^8 finer resolution (MEAN_EXTRA_BITS).
    m, s = requant_pair(float(rng.uniform(0.6, 1.6)) / (1 << MEAN_EXTRA_BITS))
    return dict(input_zp=int(rng.integers(-20, 20)), output_zp=int(rng.integers(-20, 20)),
                multiplier=m, shift=s, act_min=-128, act_max=127)


@pytest.mark.parametrize("dtype", ["i8", "f32"])
def test_maxpool2d(kernels_host, dtype):
    rng = np.random.default_rng(21)
    cases = []
    for i, win in enumerate(_pool_windows(rng, 8)):
        x_type = i8_type(win["shape"]) if dtype == "i8" else f32_type(win["shape"])
        x = random_i8(rng, win["shape"]) if dtype == "i8" else random_f32(rng, win["shape"])
        g = one_op_graph(f"maxpool{i}", [x_type],
                         lambda b, v, a=win["attrs"]: b.op("maxpool2d", [v], **a))
        cases.append(Case(g, [x]))
    kernels_host.check(cases)


@pytest.mark.parametrize("dtype", ["i8", "f32"])
def test_avgpool2d(kernels_host, dtype):
    rng = np.random.default_rng(22)
    cases = []
    for i, win in enumerate(_pool_windows(rng, 10)):
        attrs = dict(win["attrs"], count_include_pad=i % 4 >= 2)
        if dtype == "i8":
            attrs.update(_mean_requant(rng))
            x_type, x = i8_type(win["shape"]), random_i8(rng, win["shape"])
        else:
            x_type, x = f32_type(win["shape"]), random_f32(rng, win["shape"])
        g = one_op_graph(f"avgpool{i}", [x_type], lambda b, v, a=attrs: b.op("avgpool2d", [v], **a))
        cases.append(Case(g, [x]))
    kernels_host.check(cases)


REDUCTIONS = [
    ((2, 5, 4, 3), [1, 2], True),   # spatial mean in nhwc
    ((2, 7, 6), [1], False),        # mean over tokens
    ((2, 7, 6), [-1], True),
    ((3, 4, 5, 2), [0, 2], True),   # non-contiguous axes
    ((3, 4, 5, 2), [1, 3], False),
    ((4, 6), [0, 1], False),        # everything
    ((2, 1, 3, 1, 4), [1, 3, 4], True),
    # column means (tfc_reduce_mean_columns_s8): 8-, 4- and 1-channel steps, one token, rows > 256
    ((1, 64, 32), [1], False),      # the pooled head: mean over tokens
    ((3, 9, 13), [1], True),        # odd C = 8 + 4 + 1, batched
    ((1, 1, 7), [1], False),        # T = 1
    ((2, 3, 4, 6), [1, 2], False),  # spatial mean in nhwc, C = 4 + 2
    ((1, 300, 12), [-2], False),    # the int16 lanes flushed every 256 rows
]


def column_mean_cases(seed: int = 24) -> list[Case]:
    """Column means whose int16 lanes meet their extremes (every input -128 or 127, 256 and 300
    rows), and random ones with odd channel counts."""
    rng = np.random.default_rng(seed)
    cases = []
    for i, (shape, fill) in enumerate([((1, 256, 12), -128), ((1, 300, 8), 127), ((2, 257, 5), -128),
                                       ((1, 5, 11), None), ((1, 1, 4), None)]):
        attrs = dict(axes=[1], keepdims=False, **_mean_requant(rng))
        x = random_i8(rng, shape) if fill is None else np.full(shape, fill, np.int8)
        g = one_op_graph(f"colmean{i}", [i8_type(shape)],
                         lambda b, v, a=attrs: b.op("reduce_mean", [v], **a))
        cases.append(Case(g, [x], label=f"column mean {shape} fill {fill}"))
    return cases


def test_column_means_take_the_simd_kernel():
    from tfc.backends.cortex_m7.elementwise_lowering import _column_form

    assert _column_form([32], [1], [64], [32]) == (1, 64, 32)        # [1, 64, 32] over tokens
    assert _column_form([2, 3], [60, 1], [20], [3]) == (2, 20, 3)    # nhwc spatial mean
    assert _column_form([2], [7], [6], [1]) is None                  # mean over the last axis
    assert _column_form([4, 5], [20, 1], [2], [5]) is None           # rows of a strided slice


def test_column_means_at_lane_extremes(kernels_host):
    kernels_host.check(column_mean_cases())


@pytest.mark.parametrize("dtype", ["i8", "f32"])
def test_reduce_mean_and_global_pool(kernels_host, dtype):
    rng = np.random.default_rng(23)
    cases = []
    for i, (shape, axes, keep) in enumerate(REDUCTIONS):
        attrs = dict(axes=axes, keepdims=keep)
        if dtype == "i8":
            attrs.update(_mean_requant(rng))
        x_type = i8_type(shape) if dtype == "i8" else f32_type(shape)
        x = random_i8(rng, shape) if dtype == "i8" else random_f32(rng, shape)
        g = one_op_graph(f"mean{i}", [x_type], lambda b, v, a=attrs: b.op("reduce_mean", [v], **a))
        cases.append(Case(g, [x]))
    for i, (shape, layout) in enumerate([((2, 3, 4, 5), "nhwc"), ((1, 6, 7, 3), "nhwc"),
                                         ((2, 3, 4, 5), "nchw")]):
        attrs = dict(layout=layout, **(_mean_requant(rng) if dtype == "i8" else {}))
        x_type = i8_type(shape) if dtype == "i8" else f32_type(shape)
        x = random_i8(rng, shape) if dtype == "i8" else random_f32(rng, shape)
        g = one_op_graph(f"gap{i}", [x_type], lambda b, v, a=attrs: b.op("global_avgpool", [v], **a))
        cases.append(Case(g, [x]))
    kernels_host.check(cases)
