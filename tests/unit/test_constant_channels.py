"""Pruned (all-zero) output channels: their requantization is made canonical so that a whole
layer keeps the kernels' high-word requantization, and their constant output is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from tfc.ir import interp, quant_math
from tfc.ir.core import const_value
from tfc.ir.core import Builder, Graph
from tfc.ir.types import TensorType
from tfc.passes.quant_rules import (CONSTANT_CHANNEL_MULTIPLIER, CONSTANT_CHANNEL_SHIFT,
                                    canonical_constant_channels, symmetric_per_channel)
from test_quantize import calibrate_and_lower, run_int8, samples_for, sqnr_db


def _output(acc, multiplier, shift, zp):
    return np.clip(quant_math.multiply_by_quantized_multiplier(acc, multiplier, shift) + zp,
                   -128, 127)


def test_constant_channel_output_is_unchanged():
    rng = np.random.default_rng(3)
    channels = 400
    weights = rng.integers(-127, 128, size=(channels, 3, 3, 3)).astype(np.int8)
    weights[::2] = 0
    bias = rng.integers(-2**31, 2**31, size=channels, dtype=np.int64).astype(np.int32)
    bias[::3] = rng.integers(-3000, 3000, size=len(bias[::3]))
    pairs = [quant_math.quantize_multiplier(float(r)) for r in 10.0 ** rng.uniform(-6, 1.5, channels)]
    multiplier, shift = [m for m, _ in pairs], [s for _, s in pairs]
    new_bias, new_m, new_s = canonical_constant_channels(weights, bias, multiplier, shift)
    for c in range(channels):
        if c % 2:
            assert (new_bias[c], new_m[c], new_s[c]) == (bias[c], multiplier[c], shift[c])
            continue
        assert (new_m[c], new_s[c]) == (CONSTANT_CHANNEL_MULTIPLIER, CONSTANT_CHANNEL_SHIFT)
        for zp in (-128, -5, 0, 127):
            assert _output(new_bias[c], new_m[c], new_s[c], zp) == \
                _output(bias[c], multiplier[c], shift[c], zp)
    # the canonical pair takes the two-instruction high-word requantization
    assert quant_math.high_word_requant(new_m[::2], new_s[::2], -7) is not None


def test_no_bias_and_no_constant_channel():
    w = np.ones((2, 4), np.int8)
    assert canonical_constant_channels(w, None, [1 << 30, 1 << 30], [3, 4]) == \
        (None, [1 << 30, 1 << 30], [3, 4])
    w[1] = 0
    assert canonical_constant_channels(w, None, [1 << 30, 1 << 30], [3, 4])[1:] == \
        ([1 << 30, CONSTANT_CHANNEL_MULTIPLIER], [3, CONSTANT_CHANNEL_SHIFT])


def test_zero_channel_borrows_the_widest_scale():
    w = np.zeros((3, 2), np.float32)
    w[0] = [0.5, -1.27]
    w[2] = [0.1, 0.2]
    _, quant = symmetric_per_channel(w)
    assert quant.scale[1] == pytest.approx(1.27 / 127)


def pruned_conv_model(rng):
    """A conv whose every other output channel is pruned, then a depthwise conv with a pruned channel."""
    g = Graph("pruned")
    x = g.add_input(TensorType((1, 3, 8, 8), "f32"), "input")
    b = Builder(g)
    w = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    w[1::2] = 0
    c = b.op("conv2d", [x, b.const(w, "w1"), b.const(rng.standard_normal(8).astype(np.float32), "b1")],
             name_hint="conv1", strides=[1, 1], pads=[1, 1, 1, 1])
    dw = (rng.standard_normal((8, 1, 3, 3)) * 0.4).astype(np.float32)
    dw[3] = 0
    d = b.op("conv2d", [c, b.const(dw, "wdw"), b.const(np.full(8, 0.5, np.float32), "bdw")],
             name_hint="dw", strides=[1, 1], pads=[1, 1, 1, 1], group=8)
    g.outputs = [d]
    return g


def test_pruned_channels_keep_their_output_and_get_canonical_requant():
    rng = np.random.default_rng(5)
    g = pruned_conv_model(rng)
    samples = samples_for(g, rng)
    q = calibrate_and_lower(g, samples)
    convs = [op for op in q.ops if op.name == "conv2d"]
    assert len(convs) == 2
    for op, pruned in zip(convs, ([1, 3, 5, 7], [3])):
        w = const_value(op.operands[1])
        assert not w[pruned].any()
        for c in pruned:
            assert (op.attrs["multiplier"][c], op.attrs["shift"][c]) == \
                (CONSTANT_CHANNEL_MULTIPLIER, CONSTANT_CHANNEL_SHIFT)
        assert quant_math.high_word_requant(op.attrs["multiplier"], op.attrs["shift"],
                                            op.attrs["output_zp"]) is not None
    x = samples["input"][0]
    ref = interp.run(g, [x])[0]
    got = run_int8(q, [x])[0]
    db = sqnr_db(ref, got)
    print(f"pruned conv + depthwise: SQNR {db:.1f} dB")
    assert db > 30
