"""Integer ops of the interpreter: fixed-point primitives by hand, then each int8 op against
quantize(float op(dequantize(x))) with attributes derived from float scales as a quantizer would.

Tolerances are stated per test in LSB (one step of the output int8 code).
"""

from __future__ import annotations

import numpy as np
import pytest

from tfc.errors import UnsupportedOpError
from tfc.ir import interp
from tfc.ir.core import Builder, Graph
from tfc.ir.ops import infer_types
from tfc.ir.quant_math import (INT32_MAX, INT32_MIN, add_multipliers, isqrt64,
                               multiply_by_quantized_multiplier, quantize_multiplier,
                               rounding_divide, softmax_exp_lut)
from tfc.ir.types import Quant, TensorType



@pytest.fixture
def rng():
    """A fresh generator per test, so each test sees the same data however it is selected."""
    return np.random.default_rng(7)


# -- (1) fixed-point primitives, hand-computed --------------------------------------------------

@pytest.mark.parametrize("real,expected", [
    (0.5, (1 << 30, 0)), (0.25, (1 << 30, -1)), (1.0, (1 << 30, 1)), (-0.5, (-(1 << 30), 0)),
    (0.75, (3 << 29, 0)), (0.0, (0, 0)), (2.0 ** -40, (0, 0)),
])
def test_quantize_multiplier(real, expected):
    assert quantize_multiplier(real) == expected


@pytest.mark.parametrize("x,real,expected", [
    (100, 0.25, 25), (10, 0.3, 3), (3, 4.0, 12),
    (3, 1.5, 5), (-3, 1.5, -4), (7, 0.5, 4), (-7, 0.5, -3),  # ties round up: 4.5 -> 5, -4.5 -> -4
    (-9, 0.25, -2),        # -2.25
    (-10, 0.25, -2),       # -2.5 rounds up (gemmlowp's two roundings gave -3)
    (1000, 1 / 3, 333),    # one rounding of 333.33 (gemmlowp: 666.67 -> 667, 333.5 -> 334)
    (-1000, -1 / 3, 333),
    (1 << 30, 0.75, 805306368), (-(1 << 30), 0.75, -805306368),
    ((1 << 31) - 1, 8.0, (1 << 31) - 1), (-(1 << 31), 8.0, -(1 << 31)),  # saturates to int32
    (12345, 2.0 ** -20, 0), (-12345, 2.0 ** -14, -1),  # shift far right: -0.75 -> -1
])
def test_mbqm(x, real, expected):
    multiplier, shift = quantize_multiplier(real)
    assert int(multiply_by_quantized_multiplier(x, multiplier, shift)) == expected


def test_mbqm_is_the_rounded_exact_product():
    rng = np.random.default_rng(0)
    xs = rng.integers(-(1 << 31), 1 << 31, 2000)
    multipliers = rng.integers(1 << 30, 1 << 31, 2000)
    shifts = rng.integers(-31, 1, 2000)
    got = multiply_by_quantized_multiplier(xs, multipliers, shifts)
    for x, m, s, y in zip(xs.tolist(), multipliers.tolist(), shifts.tolist(), got.tolist()):
        t = 31 - s
        assert y == (x * m + (1 << (t - 1))) // (1 << t)  # Python ints: exact floor division


def test_mbqm_broadcasts_per_channel_along_the_last_axis():
    acc = np.array([[8, 8, 8], [-8, -8, -8]])
    mults, shifts = zip(*(quantize_multiplier(r) for r in (0.5, 0.25, 1.5)))
    got = multiply_by_quantized_multiplier(acc, np.array(mults), np.array(shifts))
    np.testing.assert_array_equal(got, [[4, 2, 12], [-4, -2, -12]])


@pytest.mark.parametrize("num,den,expected", [(7, 2, 4), (-7, 2, -4), (5, 3, 2), (-5, 3, -2),
                                              (4, 3, 1), (0, 5, 0), (-1, 3, 0)])
def test_rounding_divide(num, den, expected):
    assert int(rounding_divide(num, den)) == expected


def test_isqrt64_is_exact_floor():
    values = np.array([0, 1, 15, 16, 17, 1 << 62, (1 << 31) ** 2 - 1, (2**31 - 1) ** 2 + 2 * (2**31 - 1)])
    np.testing.assert_array_equal(isqrt64(values),
                                  [0, 1, 3, 4, 4, 1 << 31, (1 << 31) - 1, (1 << 31) - 1])


def test_softmax_exp_lut_entries():
    lut = softmax_exp_lut(0.1)
    assert lut.shape == (256,) and lut.dtype == np.int32
    # Stored reversed: entry j is 2^16 * exp(-(255 - j) * s), read as lut[255 - max + x].
    assert lut[255] == 65536 and lut[245] == 24109 and lut[0] == 0  # 65536 * e^-25.5 ~ 6e-7
    assert softmax_exp_lut(0.01)[0] == 5117  # 65536 * e^-2.55 = 5117.2


# -- helpers: quantize like a calibrator would --------------------------------------------------

def act_quant(x: np.ndarray) -> Quant:
    """Asymmetric int8 per-tensor parameters covering x's range (and 0)."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / 255.0
    return Quant.per_tensor(scale, int(np.clip(round(-128 - lo / scale), -128, 127)))


def quantize(x, quant: Quant):
    return np.clip(np.rint(x / np.float32(quant.s)) + quant.zp, -128, 127).astype(np.int8)


def dequantize(q, quant: Quant):
    return ((q.astype(np.int32) - quant.zp) * np.float32(quant.s)).astype(np.float32)


def weight_quant(w: np.ndarray, axis: int) -> tuple[np.ndarray, Quant]:
    """Symmetric per-output-channel int8 weights."""
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
    scales = np.abs(w).max(axis=reduce_axes) / 127.0
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    return q, Quant(tuple(scales), (0,) * len(scales), axis)


def run_float(name, arrays, **attrs):
    g = Graph("float_ref")
    vals = [g.add_input(TensorType(a.shape, "f32"), f"in{i}") for i, a in enumerate(arrays)]
    g.outputs = [Builder(g).op(name, vals, **attrs)]
    return interp.run(g, arrays)[0]


def run_int(name, operands, out_quant, **attrs):
    """operands: (array, Quant|None, is_const) triples; the op's result gets out_quant."""
    g = Graph("int_op")
    b = Builder(g)
    values, feeds = [], []
    for i, (array, quant, is_const) in enumerate(operands):
        if is_const:
            values.append(b.const(array, f"c{i}", quant=quant))
        else:
            values.append(g.add_input(TensorType(array.shape, "i8", quant), f"x{i}"))
            feeds.append(array)
    shape = infer_types(name, [v.type for v in values], attrs)[0].shape
    op = b.create(name, values, attrs, [TensorType(shape, "i8", out_quant)])
    g.outputs = [op.result]
    return interp.run(g, feeds)[0]


def assert_lsb(got: np.ndarray, want: np.ndarray, lsb: int, fraction: float = 1.0):
    """At least `fraction` of the codes are within `lsb` of the reference."""
    assert got.dtype == np.int8 and got.shape == want.shape
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    within = float(np.mean(diff <= lsb))
    assert within >= fraction, f"{within:.4f} within {lsb} LSB (max diff {diff.max()})"
    assert np.unique(got).size > 8, "output collapsed to a few codes: the test would be vacuous"


def requant_attrs(real: float):
    multiplier, shift = quantize_multiplier(real)
    return {"multiplier": multiplier, "shift": shift}


# -- (2) each int8 op against quantize(float op(dequantize(x))) --------------------------------

CONV_INT_CASES = [  # (C, O, group, strides, pads, dilations, layout, act)
    (3, 8, 1, [1, 1], [1, 1, 1, 1], [1, 1], "nchw", "none"),
    (4, 6, 2, [2, 1], [0, 1, 2, 0], [1, 1], "nchw", "relu"),
    (8, 8, 8, [1, 1], [1, 1, 1, 1], [1, 1], "nhwc", "relu6"),   # depthwise
    (4, 5, 1, [1, 2], [2, 2, 2, 2], [2, 1], "nhwc", "none"),
]


def _act_bounds(act, quant):
    zero = quant.zp
    if act == "relu":
        return max(-128, zero), 127
    if act == "relu6":
        return max(-128, zero), min(127, zero + int(round(6 / quant.s)))
    return -128, 127


@pytest.mark.parametrize("case", CONV_INT_CASES, ids=lambda c: f"g{c[2]}-{c[6]}-{c[7]}")
def test_conv2d_int8_within_1_lsb(case, rng):
    c, o, group, strides, pads, dilations, layout, act = case
    x = rng.standard_normal((1, c, 9, 9)).astype(np.float32)
    w = (rng.standard_normal((o, c // group, 3, 3)) * 0.3).astype(np.float32)
    bias = (rng.standard_normal(o) * 0.5).astype(np.float32)
    qx_params = act_quant(x)
    qx = quantize(x, qx_params)
    qw, w_params = weight_quant(w, 0)
    bias_scales = qx_params.s * np.asarray(w_params.scale)
    qbias = np.rint(bias / bias_scales).astype(np.int32)
    spatial = dict(group=group, strides=strides, pads=pads, dilations=dilations)
    y = run_float("conv2d", [dequantize(qx, qx_params), qw.astype(np.float32) *
                             np.asarray(w_params.scale, np.float32)[:, None, None, None],
                             (qbias * bias_scales).astype(np.float32)], act=act, **spatial)
    out_q = act_quant(y if act == "none" else np.maximum(y, 0) * 1.1)
    act_min, act_max = _act_bounds(act, out_q)
    mults, shifts = zip(*(quantize_multiplier(qx_params.s * s / out_q.s) for s in w_params.scale))
    if layout == "nhwc":
        qx, qw, y = (a.transpose(0, 2, 3, 1).copy() for a in (qx, qw, y))
    got = run_int("conv2d", [(qx, qx_params, False), (qw, w_params, True), (qbias, None, True)],
                  out_q, layout=layout, input_zp=qx_params.zp, output_zp=out_q.zp,
                  multiplier=list(mults), shift=list(shifts), act_min=act_min, act_max=act_max,
                  **spatial)
    want = np.clip(quantize(y, out_q), act_min, act_max)
    assert_lsb(got, want, lsb=1)                   # every code within 1 LSB
    assert_lsb(got, want, lsb=0, fraction=0.97)    # and nearly all exact


def test_conv2d_int8_hand_case():
    """1x1 conv, 2 channels in, 1 out: acc = bias + sum (x - zp) * w, then MBQM(acc, 0.5)."""
    x = np.array([[[[3, 5]], [[1, -1]]]], np.int8)          # [1, 2, 1, 2], input_zp = 1
    w = np.array([[[[2]], [[-3]]]], np.int8)                # [1, 2, 1, 1]
    bias = np.array([4], np.int32)
    q = Quant.per_tensor(1.0, 0)
    got = run_int("conv2d", [(x, q, False), (w, None, True), (bias, None, True)], q,
                  input_zp=1, output_zp=-2, multiplier=[1 << 30], shift=[0], act_min=-128, act_max=127)
    # position 0: 4 + (3-1)*2 + (1-1)*-3 = 8 -> 4 - 2 = 2; position 1: 4 + 8 + 6 = 18 -> 9 - 2 = 7
    np.testing.assert_array_equal(got, [[[[2, 7]]]])


def test_linear_int8_within_1_lsb(rng):
    x = rng.standard_normal((4, 6, 32)).astype(np.float32)
    w = (rng.standard_normal((16, 32)) * 0.2).astype(np.float32)
    bias = (rng.standard_normal(16) * 0.3).astype(np.float32)
    xq_p = act_quant(x)
    qx, (qw, w_p) = quantize(x, xq_p), weight_quant(w, 0)
    bias_scales = xq_p.s * np.asarray(w_p.scale)
    qbias = np.rint(bias / bias_scales).astype(np.int32)
    y = run_float("linear", [dequantize(qx, xq_p),
                             qw.astype(np.float32) * np.asarray(w_p.scale, np.float32)[:, None],
                             (qbias * bias_scales).astype(np.float32)])
    out_q = act_quant(y)
    mults, shifts = zip(*(quantize_multiplier(xq_p.s * s / out_q.s) for s in w_p.scale))
    got = run_int("linear", [(qx, xq_p, False), (qw, w_p, True), (qbias, None, True)], out_q,
                  input_zp=xq_p.zp, output_zp=out_q.zp, multiplier=list(mults), shift=list(shifts),
                  act_min=-128, act_max=127)
    assert_lsb(got, quantize(y, out_q), lsb=1)


def test_matmul_int8_within_1_lsb(rng):
    a = rng.standard_normal((2, 8, 16)).astype(np.float32)
    b = rng.standard_normal((2, 16, 8)).astype(np.float32) + 0.5
    qa_p, qb_p = act_quant(a), act_quant(b)
    qa, qb = quantize(a, qa_p), quantize(b, qb_p)
    y = run_float("matmul", [dequantize(qa, qa_p), dequantize(qb, qb_p)])
    out_q = act_quant(y)
    got = run_int("matmul", [(qa, qa_p, False), (qb, qb_p, False)], out_q, a_zp=qa_p.zp,
                  b_zp=qb_p.zp, output_zp=out_q.zp, act_min=-128, act_max=127,
                  **requant_attrs(qa_p.s * qb_p.s / out_q.s))
    assert_lsb(got, quantize(y, out_q), lsb=1)


def _add_attrs(sa, sb, sy):
    am, bm, shift = add_multipliers(sa / sy, sb / sy)
    return dict(a_multiplier=am, b_multiplier=bm, shift=shift)


@pytest.mark.parametrize("name", ["add", "sub"])
def test_add_sub_int8_within_1_lsb(name, rng):
    a = rng.standard_normal((2, 4, 6, 8)).astype(np.float32)
    b = (rng.standard_normal((1, 6, 8)) * 3).astype(np.float32)  # broadcast, other scale
    qa_p, qb_p = act_quant(a), act_quant(b)
    qa, qb = quantize(a, qa_p), quantize(b, qb_p)
    y = run_float(name, [dequantize(qa, qa_p), dequantize(qb, qb_p)], act="relu")
    out_q = act_quant(y * 1.2)
    got = run_int(name, [(qa, qa_p, False), (qb, qb_p, False)], out_q, a_zp=qa_p.zp, b_zp=qb_p.zp,
                  output_zp=out_q.zp, act_min=out_q.zp, act_max=127,
                  **_add_attrs(qa_p.s, qb_p.s, out_q.s))
    assert_lsb(got, quantize(y, out_q), lsb=1)


def test_mul_int8_within_1_lsb(rng):
    a, b = rng.standard_normal((3, 40)).astype(np.float32), rng.standard_normal((40,)).astype(np.float32)
    qa_p, qb_p = act_quant(a), act_quant(b)
    qa, qb = quantize(a, qa_p), quantize(b, qb_p)
    y = run_float("mul", [dequantize(qa, qa_p), dequantize(qb, qb_p)])
    out_q = act_quant(y)
    got = run_int("mul", [(qa, qa_p, False), (qb, qb_p, False)], out_q, a_zp=qa_p.zp, b_zp=qb_p.zp,
                  output_zp=out_q.zp, **requant_attrs(qa_p.s * qb_p.s / out_q.s))
    assert_lsb(got, quantize(y, out_q), lsb=1)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("out_scale_ratio", [1.0, 0.3])
def test_avgpool2d_int8_within_1_lsb(layout, include_pad, out_scale_ratio, rng):
    """The mean is divided at 2^8 times the input resolution, so even an output scale finer than
    the input's (ratio 0.3) stays within 1 LSB: only the final requantization rounds."""
    x = rng.standard_normal((1, 6, 9, 9)).astype(np.float32)
    xq_p = act_quant(x)
    qx = quantize(x, xq_p)
    attrs = dict(kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=True,
                 count_include_pad=include_pad)
    y = run_float("avgpool2d", [dequantize(qx, xq_p)], **attrs)
    out_q = Quant.per_tensor(xq_p.s * out_scale_ratio, xq_p.zp - 3)
    if layout == "nhwc":
        qx, y = qx.transpose(0, 2, 3, 1).copy(), y.transpose(0, 2, 3, 1)
    got = run_int("avgpool2d", [(qx, xq_p, False)], out_q, layout=layout, input_zp=xq_p.zp,
                  output_zp=out_q.zp, act_min=-128, act_max=127,
                  **requant_attrs(xq_p.s / (256 * out_q.s)), **attrs)
    assert_lsb(got, quantize(y, out_q), lsb=1)
    assert_lsb(got, quantize(y, out_q), lsb=0, fraction=0.85)


def test_global_avgpool_and_reduce_mean_int8_within_1_lsb(rng):
    x = (rng.standard_normal((2, 40, 5, 5)) + rng.standard_normal((1, 40, 1, 1)) * 2).astype(np.float32)
    xq_p = act_quant(x)
    qx = quantize(x, xq_p)
    for name, attrs in (("global_avgpool", {}), ("reduce_mean", {"axes": [-1, 2], "keepdims": False})):
        y = run_float(name, [dequantize(qx, xq_p)], **attrs)
        out_q = act_quant(y)
        got = run_int(name, [(qx, xq_p, False)], out_q, input_zp=xq_p.zp, output_zp=out_q.zp,
                      act_min=-128, act_max=127, **requant_attrs(xq_p.s / (256 * out_q.s)), **attrs)
        assert_lsb(got, quantize(y, out_q), lsb=1)


def test_requantize_int8_within_1_lsb(rng):
    x = rng.standard_normal((500,)).astype(np.float32)
    xq_p = act_quant(x)
    qx = quantize(x, xq_p)
    out_q = Quant.per_tensor(xq_p.s * 1.37, 5)
    got = run_int("requantize", [(qx, xq_p, False)], out_q, input_zp=xq_p.zp, output_zp=out_q.zp,
                  **requant_attrs(xq_p.s / out_q.s))
    assert_lsb(got, quantize(dequantize(qx, xq_p), out_q), lsb=1)
    assert_lsb(got, quantize(dequantize(qx, xq_p), out_q), lsb=0, fraction=0.99)


def test_generic_ops_on_int8_move_codes_unchanged(rng):
    q = Quant.per_tensor(0.1, 3)
    x = rng.integers(-128, 128, (2, 3, 5, 4)).astype(np.int8)
    pooled = run_int("maxpool2d", [(x, q, False)], q, kernel=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1])
    want = np.full((2, 3, 3, 3), -128, np.int8)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-128)
    for i in range(3):
        for j in range(3):
            want[:, :, i, j] = padded[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(2, 3))
    np.testing.assert_array_equal(pooled, want)
    clipped = run_int("clip", [(x, q, False)], q, min=3, max=60)
    np.testing.assert_array_equal(clipped, np.clip(x, 3, 60))
    np.testing.assert_array_equal(run_int("transpose", [(x, q, False)], q, perm=[0, 2, 3, 1]),
                                  x.transpose(0, 2, 3, 1))


def test_ops_without_integer_form_say_so():
    q = Quant.per_tensor(0.1, 0)
    with pytest.raises(UnsupportedOpError, match="'relu' op .* has no integer form"):
        run_int("relu", [(np.zeros((2, 2), np.int8), q, False)], q)


# -- layernorm and softmax ------------------------------------------------------------------------

def scaled_layernorm_attrs(in_q: Quant, out_q: Quant, gamma, beta, eps):
    """The attributes the scaled-layernorm pass derives, written out from the ops.py docstring."""
    from tfc.ir.quant_math import scaled_layernorm_eps_q, scaled_layernorm_params

    multiplier, bias = scaled_layernorm_params(gamma, beta, out_q.s, out_q.zp)
    return dict(eps_q=scaled_layernorm_eps_q(eps, len(gamma), in_q.s), multiplier=multiplier,
                bias=bias, act_min=-128, act_max=127)


def test_layernorm_int8_hand_cases():
    from tfc.ir.quant_math import scaled_layernorm_params

    q = Quant.per_tensor(1.0, 0)
    # gamma = 32, s_y = 1: y = 32 * (C*x - T) / sqrt(D) + beta, with D = C*Q - T^2 + eps_q.
    mult, bias = scaled_layernorm_params([32.0, 32.0], [0.0, 5.0], 1.0, 0)
    # C = 2, x = [9, 11]: D = 2*202 - 400 + 1 = 5; x_norm = [-2, 2] / sqrt(5), carried as the
    # INT16 x_norm * 2^13 = [-7327, 7327]; y = 32 * x_norm + [0, 5] = [-28.62, 33.62]
    got = run_int("layernorm", [(np.array([[9, 11]], np.int8), q, False)], q, eps_q=1,
                  multiplier=mult, bias=bias, act_min=-128, act_max=127)
    np.testing.assert_array_equal(got, [[-29, 34]])
    # C = 3, x = [-3, -2, 2]: T = -3, Q = 17, D = 51 - 9 + 2 = 44;
    # y = 32 * (3x + 3) / sqrt(44) = [-28.9, -14.5, 43.4], clamped to act_max = 40
    mult, bias = scaled_layernorm_params([32.0] * 3, [0.0] * 3, 1.0, 0)
    got = run_int("layernorm", [(np.array([[-3, -2, 2]], np.int8), q, False)], q, eps_q=2,
                  multiplier=mult, bias=bias, act_min=-128, act_max=40)
    np.testing.assert_array_equal(got, [[-29, -14, 40]])


@pytest.mark.parametrize("channels", [16, 64, 96])
def test_layernorm_int8_within_1_lsb_of_float(channels, rng):
    x = (rng.standard_normal((8, 12, channels)) * 2 + rng.standard_normal((8, 12, 1))).astype(np.float32)
    gamma = (rng.standard_normal(channels) * 0.5 + 1).astype(np.float32)
    gamma[::7] *= -1  # negative gammas take negative multipliers
    beta = (rng.standard_normal(channels) * 0.3).astype(np.float32)
    eps = 1e-5
    in_q = act_quant(x)
    qx = quantize(x, in_q)
    y = run_float("layernorm", [dequantize(qx, in_q), gamma, beta], axis=-1, epsilon=eps)
    out_q = act_quant(y)
    got = run_int("layernorm", [(qx, in_q, False)], out_q, axis=-1,
                  **scaled_layernorm_attrs(in_q, out_q, gamma, beta, eps))
    assert_lsb(got, quantize(y, out_q), lsb=1, fraction=0.99)
    assert_lsb(got, quantize(y, out_q), lsb=2)


def softmax_attrs(out_q: Quant):
    from tfc.ir.quant_math import softmax_params

    multiplier, shift = softmax_params(out_q.s)
    return dict(output_zp=out_q.zp, multiplier=multiplier, shift=shift)


def test_softmax_int8_hand_cases():
    out_q = Quant.per_tensor(1 / 256, -128)
    lut = softmax_exp_lut(1.0)
    x = np.array([[0, 0], [127, -128], [5, 5]], np.int8)
    got = run_int("softmax", [(x, Quant.per_tensor(1.0, 0), False), (lut, None, True)], out_q,
                  **softmax_attrs(out_q))
    # p = 0.5 -> 0.5 * 256 - 128 = 0; p = 1 saturates to 127; p = lut[255] / 65536 = 0 -> -128
    np.testing.assert_array_equal(got, [[0, 0], [127, -128], [0, 0]])


@pytest.mark.parametrize("in_scale", [0.02, 0.1, 0.5])
def test_softmax_int8_within_1_lsb_of_float(in_scale, rng):
    in_q = Quant.per_tensor(in_scale, 10)
    qx = rng.integers(-128, 128, (16, 4, 50)).astype(np.int8)
    out_q = Quant.per_tensor(1 / 256, -128)
    y = run_float("softmax", [dequantize(qx, in_q)], axis=-1)
    got = run_int("softmax", [(qx, in_q, False), (softmax_exp_lut(in_scale), None, True)], out_q,
                  axis=-1, **softmax_attrs(out_q))
    assert_lsb(got, quantize(y, out_q), lsb=1)


def test_missing_integer_attribute_names_the_op_and_attribute():
    from tfc.errors import VerifyError

    q = Quant.per_tensor(0.1, 0)
    with pytest.raises(VerifyError, match=r"'requantize' op %requantize is missing required attribute 'multiplier'"):
        run_int("requantize", [(np.zeros((2, 2), np.int8), q, False)], q, input_zp=0, output_zp=0,
                shift=0)
