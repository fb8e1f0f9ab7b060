"""Small graphs for the backend tests, built with the IR Builder (nhwc, int8 or float32)."""

from __future__ import annotations

import numpy as np

from tfc.ir.core import Builder, Graph, Value
from tfc.ir.quant_math import quantize_multiplier
from tfc.ir.types import Quant, TensorType


def qtype(shape, scale, zp) -> TensorType:
    return TensorType(tuple(shape), "i8", Quant.per_tensor(scale, zp))


def int8_conv(b: Builder, x: Value, cout: int, k: int, rng, *, pads=None, groups=1, relu=False,
              out_scale=0.05, out_zp=-3, name="conv") -> Value:
    n, h, wd, cin = x.type.shape
    s_x, zp_x = x.type.quant.s, x.type.quant.zp
    pads = pads if pads is not None else [k // 2] * 4
    weights = rng.integers(-127, 128, size=(cout, k, k, cin // groups)).astype(np.int8)
    s_w = rng.uniform(0.002, 0.01, size=cout)
    w = b.const(weights, f"{name}_w", quant=Quant(tuple(s_w), (0,) * cout, 0))
    bias = b.const(rng.integers(-2000, 2000, size=cout).astype(np.int32), f"{name}_b",
                   quant=Quant(tuple(s_x * s_w), (0,) * cout, 0))
    pairs = [quantize_multiplier(s_x * sw / out_scale) for sw in s_w]
    oh = h + pads[0] + pads[2] - k + 1
    ow = wd + pads[1] + pads[3] - k + 1
    return b.op("conv2d", [x, w, bias], name_hint=name, result_type=qtype((n, oh, ow, cout), out_scale, out_zp),
                strides=[1, 1], pads=pads, dilations=[1, 1], group=groups, layout="nhwc",
                input_zp=zp_x, output_zp=out_zp, multiplier=[m for m, _ in pairs],
                shift=[s for _, s in pairs], act_min=out_zp if relu else -128, act_max=127)


def int8_linear(b: Builder, x: Value, nout: int, rng, *, out_scale=0.1, out_zp=5, name="fc") -> Value:
    k = x.type.shape[-1]
    s_x, zp_x = x.type.quant.s, x.type.quant.zp
    s_w = rng.uniform(0.002, 0.01, size=nout)
    w = b.const(rng.integers(-127, 128, size=(nout, k)).astype(np.int8), f"{name}_w",
                quant=Quant(tuple(s_w), (0,) * nout, 0))
    pairs = [quantize_multiplier(s_x * sw / out_scale) for sw in s_w]
    return b.op("linear", [x, w], name_hint=name,
                result_type=qtype(x.type.shape[:-1] + (nout,), out_scale, out_zp),
                input_zp=zp_x, output_zp=out_zp, multiplier=[m for m, _ in pairs],
                shift=[s for _, s in pairs], act_min=-128, act_max=127)


def int8_convnet(seed: int = 0) -> Graph:
    """conv(relu) -> depthwise conv -> reshape (a view) -> linear, int8, nhwc."""
    rng = np.random.default_rng(seed)
    g = Graph("convnet")
    x = g.add_input(qtype((1, 6, 6, 3), 0.03, -7), "input")
    b = Builder(g)
    c1 = int8_conv(b, x, 8, 3, rng, relu=True, name="conv1")
    c2 = int8_conv(b, c1, 8, 3, rng, groups=8, pads=[0, 0, 0, 0], out_scale=0.08, out_zp=2, name="dw")
    flat = b.op("reshape", [c2], shape=[1, 4 * 4 * 8], name_hint="flat",
                result_type=c2.type.with_shape((1, 4 * 4 * 8)))
    g.outputs = [int8_linear(b, flat, 10, rng, name="logits")]
    return g


def float_convnet(seed: int = 0) -> Graph:
    """conv+relu -> maxpool -> reshape -> linear, float32, nhwc."""
    rng = np.random.default_rng(seed)
    g = Graph("fconvnet")
    x = g.add_input(TensorType((1, 8, 8, 3), "f32"), "input")
    b = Builder(g)
    w = b.const(rng.normal(size=(6, 3, 3, 3)).astype(np.float32), "conv_w")
    bias = b.const(rng.normal(size=(6,)).astype(np.float32), "conv_b")
    y = b.op("conv2d", [x, w, bias], strides=[1, 1], pads=[1, 1, 1, 1], layout="nhwc", act="relu",
             name_hint="conv")
    p = b.op("maxpool2d", [y], kernel=[2, 2], strides=[2, 2], layout="nhwc", name_hint="pool")
    flat = b.op("reshape", [p], shape=[1, 96], name_hint="flat")
    w2 = b.const(rng.normal(size=(4, 96)).astype(np.float32), "fc_w")
    g.outputs = [b.op("linear", [flat, w2], name_hint="fc")]
    return g


def float_multi_io() -> Graph:
    """Two inputs, four outputs: an output read again later, an output that is an input, the same
    value returned twice, and a reshape that produces an output (a copy, not a view)."""
    rng = np.random.default_rng(1)
    g = Graph("multi")
    a = g.add_input(TensorType((2, 4), "f32"), "a")
    c = g.add_input(TensorType((2, 4), "f32"), "c")
    b = Builder(g)
    s = b.op("add", [a, c], name_hint="s")
    k = b.const(rng.normal(size=(2, 4)).astype(np.float32), "k")
    t = b.op("mul", [s, k], name_hint="t")  # reads output %s back
    r = b.op("reshape", [t], shape=[8], name_hint="r")
    g.outputs = [s, r, c, s]
    return g
