"""The SIMD maxpool (SSUB8/SEL), the avgpool fast paths and the column means (SXTAB16) on the
emulated M7, DSP and portable builds: padded, dilated, ceil-mode and whole-2x2 windows with odd
channel counts, column sums at their int16 lane extremes, bit-exact with the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from kernel_harness import Case, i8_type, one_op_graph, random_i8
from test_add_requant_fast import run_on_m7
from test_pool import _mean_requant, _pool_windows, column_mean_cases

pytestmark = [pytest.mark.slow, pytest.mark.needs("arm-none-eabi-gcc", "unicorn")]


def pool_cases(seed: int = 4) -> list[Case]:
    rng = np.random.default_rng(seed)
    windows = _pool_windows(rng, 4) + [dict(shape=(1, 6, 6, 7), attrs=dict(
        kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], dilations=[1, 1], layout="nhwc"))]
    cases = []
    for i, win in enumerate(windows):
        x = random_i8(rng, win["shape"])
        g = one_op_graph(f"maxpool{i}", [i8_type(win["shape"])],
                         lambda b, v, a=win["attrs"]: b.op("maxpool2d", [v], **a))
        cases.append(Case(g, [x], label=f"maxpool {win}"))
        attrs = dict(win["attrs"], count_include_pad=i % 2 == 1, **_mean_requant(rng))
        g = one_op_graph(f"avgpool{i}", [i8_type(win["shape"])],
                         lambda b, v, a=attrs: b.op("avgpool2d", [v], **a))
        cases.append(Case(g, [x], label=f"avgpool {attrs}"))
    return cases + column_mean_cases()


@pytest.mark.parametrize("portable", [False, True], ids=["dsp", "portable"])
def test_pool_bit_exact_on_m7(tmp_path, portable):
    run_on_m7(tmp_path, pool_cases(), portable)
