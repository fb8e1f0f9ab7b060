"""Float ops of the interpreter against onnx.reference on single-node ONNX models."""

from __future__ import annotations

import time

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from tfc.errors import TfcError, UnsupportedOpError
from tfc.ir import interp
from tfc.ir.core import Builder, Graph
from tfc.ir.ops import OPS
from tfc.ir.types import Quant, TensorType, dtype_of_numpy

RNG = np.random.default_rng(1234)
OPSET = 21


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def onnx_eval(op_type, inputs, n_outputs=1, **attrs):
    """Runs one ONNX node on float32/int inputs with the reference evaluator."""
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for n, a in zip(names, inputs) if a is not None]
    graph_outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs]
    model = helper.make_model(helper.make_graph([node], "g", graph_inputs, graph_outputs),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    feeds = {n: a for n, a in zip(names, inputs) if a is not None}
    return ReferenceEvaluator(model).run(None, feeds)


def tfc_eval(op_name, inputs, result_types=None, **attrs):
    """Runs one tfc op whose operands are all graph inputs."""
    g = Graph("single")
    operands = [g.add_input(TensorType(a.shape, dtype_of_numpy(a.dtype)), f"in{i}")
                for i, a in enumerate(inputs)]
    op = Builder(g).create(op_name, operands, attrs, result_types)
    g.outputs = list(op.results)
    return interp.run(g, inputs)


def close(got, want, atol=1e-5, rtol=1e-5):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)


# -- convolution ------------------------------------------------------------------------------

CONV_CASES = [
    # (N, C, H, W, O, group, kernel, strides, pads, dilations, bias)
    (1, 3, 9, 9, 4, 1, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], True),
    (2, 4, 8, 7, 6, 2, (3, 2), [2, 1], [0, 1, 2, 0], [1, 1], False),
    (1, 6, 10, 10, 6, 6, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], True),   # depthwise
    (1, 4, 11, 9, 8, 4, (3, 3), [2, 2], [1, 0, 1, 2], [1, 1], True),    # depthwise x2 multiplier
    (1, 3, 12, 12, 5, 1, (3, 3), [1, 2], [2, 2, 2, 2], [2, 3], True),   # dilated
    (1, 8, 5, 5, 4, 1, (1, 1), [1, 1], [0, 0, 0, 0], [1, 1], True),     # pointwise
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"g{c[5]}k{c[6]}s{c[7]}p{c[8]}d{c[9]}")
def test_conv2d_matches_onnx(case):
    n, c, h, w, o, group, kernel, strides, pads, dilations, with_bias = case
    x, wt = randn(n, c, h, w), randn(o, c // group, *kernel)
    bias = randn(o) if with_bias else None
    want = onnx_eval("Conv", [x, wt, bias], group=group, strides=strides, pads=pads,
                     dilations=dilations)[0]
    got = tfc_eval("conv2d", [x, wt] + ([bias] if with_bias else []), group=group,
                   strides=strides, pads=pads, dilations=dilations)[0]
    close(got, want, atol=1e-4)


@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[3]], ids=["grouped", "depthwise"])
def test_conv2d_nhwc_is_the_transposed_nchw(case):
    n, c, h, w, o, group, kernel, strides, pads, dilations, _ = case
    x, wt, bias = randn(n, c, h, w), randn(o, c // group, *kernel), randn(o)
    attrs = dict(group=group, strides=strides, pads=pads, dilations=dilations, act="relu")
    nchw = tfc_eval("conv2d", [x, wt, bias], **attrs)[0]
    nhwc = tfc_eval("conv2d", [x.transpose(0, 2, 3, 1).copy(), wt.transpose(0, 2, 3, 1).copy(), bias],
                    layout="nhwc", **attrs)[0]
    close(nhwc, nchw.transpose(0, 2, 3, 1))
    assert (nchw >= 0).all() and (nchw > 0).any()


@pytest.mark.parametrize("act,onnx_clip", [("relu", (0.0, None)), ("relu6", (0.0, 6.0)),
                                           ("clip", (-0.5, 0.75))])
def test_fused_activation_is_conv_then_clip(act, onnx_clip):
    x, wt, bias = randn(1, 2, 6, 6) * 3, randn(3, 2, 3, 3), randn(3)
    plain = onnx_eval("Conv", [x, wt, bias], pads=[1, 1, 1, 1])[0]
    lo, hi = onnx_clip
    want = np.clip(plain, lo, np.inf if hi is None else hi)
    extra = {"act_min": lo, "act_max": hi} if act == "clip" else {}
    got = tfc_eval("conv2d", [x, wt, bias], pads=[1, 1, 1, 1], act=act, **extra)[0]
    close(got, want, atol=1e-4)


def test_conv2d_32x32x32_is_fast():
    x, wt, bias = randn(1, 32, 32, 32), randn(32, 32, 3, 3), randn(32)
    start = time.perf_counter()
    tfc_eval("conv2d", [x, wt, bias], pads=[1, 1, 1, 1])
    assert time.perf_counter() - start < 2.0


# -- pooling ----------------------------------------------------------------------------------

POOL_CASES = [
    # (kernel, strides, pads, ceil_mode, dilations)
    ((2, 2), [2, 2], [0, 0, 0, 0], 0, [1, 1]),
    ((3, 3), [2, 2], [1, 1, 1, 1], 0, [1, 1]),
    ((3, 3), [2, 2], [1, 1, 1, 1], 1, [1, 1]),
    ((3, 2), [2, 3], [0, 1, 1, 0], 1, [1, 1]),
    ((2, 2), [1, 1], [1, 1, 0, 0], 0, [2, 2]),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"k{c[0]}s{c[1]}p{c[2]}ceil{c[3]}d{c[4]}")
def test_maxpool2d_matches_onnx(case):
    kernel, strides, pads, ceil, dilations = case
    x = randn(2, 3, 9, 8) - 3.0  # all negative enough that a padding zero would win
    want = onnx_eval("MaxPool", [x], kernel_shape=list(kernel), strides=strides, pads=pads,
                     ceil_mode=ceil, dilations=dilations)[0]
    got = tfc_eval("maxpool2d", [x], kernel=list(kernel), strides=strides, pads=pads,
                   ceil_mode=bool(ceil), dilations=dilations)[0]
    close(got, want)


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", [c for c in POOL_CASES if c[4] == [1, 1]],
                         ids=lambda c: f"k{c[0]}s{c[1]}p{c[2]}ceil{c[3]}")
def test_avgpool2d_matches_onnx(case, include_pad):
    kernel, strides, pads, ceil, _ = case
    x = randn(1, 3, 9, 8) + 2.0
    want = onnx_eval("AveragePool", [x], kernel_shape=list(kernel), strides=strides, pads=pads,
                     ceil_mode=ceil, count_include_pad=include_pad)[0]
    got = tfc_eval("avgpool2d", [x], kernel=list(kernel), strides=strides, pads=pads,
                   ceil_mode=bool(ceil), count_include_pad=bool(include_pad))[0]
    close(got, want)


def test_pools_nhwc_are_the_transposed_nchw():
    x = randn(1, 5, 7, 6)
    attrs = dict(kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=True)
    x_nhwc = x.transpose(0, 2, 3, 1).copy()
    for name in ("maxpool2d", "avgpool2d"):
        nchw = tfc_eval(name, [x], **attrs)[0]
        nhwc = tfc_eval(name, [x_nhwc], layout="nhwc", **attrs)[0]
        close(nhwc, nchw.transpose(0, 2, 3, 1))
    close(tfc_eval("global_avgpool", [x_nhwc], layout="nhwc")[0],
          tfc_eval("global_avgpool", [x])[0].transpose(0, 2, 3, 1))


def test_global_avgpool_and_reduce_mean_match_onnx():
    x = randn(2, 4, 5, 6)
    close(tfc_eval("global_avgpool", [x])[0], onnx_eval("GlobalAveragePool", [x])[0])
    for axes, keep in (([1], 1), ([-1, 2], 0), ([0, 3], 1)):
        want = onnx_eval("ReduceMean", [x, np.array(axes, np.int64)], keepdims=keep)[0]
        got = tfc_eval("reduce_mean", [x], axes=axes, keepdims=bool(keep))[0]
        close(got, want)


# -- dense algebra and elementwise ------------------------------------------------------------

def test_linear_matches_gemm_with_transposed_weights():
    x, wt, bias = randn(5, 12), randn(7, 12), randn(7)
    want = onnx_eval("Gemm", [x, wt, bias], transB=1)[0]
    close(tfc_eval("linear", [x, wt, bias])[0], want, atol=1e-5)
    tokens = randn(2, 3, 12)  # batched over leading axes
    want3 = onnx_eval("MatMul", [tokens, wt.T.copy()])[0] + bias
    close(tfc_eval("linear", [tokens, wt, bias])[0], want3, atol=1e-5)
    close(tfc_eval("linear", [x, wt])[0], onnx_eval("Gemm", [x, wt], transB=1)[0])


@pytest.mark.parametrize("shapes", [((4, 5), (5, 3)), ((2, 4, 5), (2, 5, 3)),
                                    ((2, 1, 4, 5), (3, 5, 6)), ((3, 4, 5), (5, 2))])
def test_batched_matmul_matches_onnx(shapes):
    a, b = randn(*shapes[0]), randn(*shapes[1])
    close(tfc_eval("matmul", [a, b])[0], onnx_eval("MatMul", [a, b])[0], atol=1e-5)


@pytest.mark.parametrize("name,onnx_name", [("add", "Add"), ("sub", "Sub"), ("mul", "Mul")])
def test_elementwise_broadcast_matches_onnx(name, onnx_name):
    a, b = randn(2, 3, 4, 5), randn(3, 1, 5)
    close(tfc_eval(name, [a, b])[0], onnx_eval(onnx_name, [a, b])[0])


def test_add_fused_relu6_and_relu_and_clip():
    a, b = randn(3, 4) * 5, randn(3, 4) * 5
    close(tfc_eval("add", [a, b], act="relu6")[0], np.clip(a + b, 0, 6))
    close(tfc_eval("relu", [a])[0], onnx_eval("Relu", [a])[0])
    lo, hi = np.float32(-1.5), np.float32(2.0)
    close(tfc_eval("clip", [a], min=-1.5, max=2.0)[0], onnx_eval("Clip", [a, lo, hi])[0])
    close(tfc_eval("clip", [a], min=0.0)[0], np.maximum(a, 0))


def test_batchnorm_matches_onnx_in_both_layouts():
    x = randn(2, 3, 4, 5)
    scale, bias, mean = randn(3), randn(3), randn(3)
    var = np.abs(randn(3)) + 0.1
    want = onnx_eval("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-3)[0]
    close(tfc_eval("batchnorm", [x, scale, bias, mean, var], epsilon=1e-3)[0], want, atol=1e-5)
    nhwc = tfc_eval("batchnorm", [x.transpose(0, 2, 3, 1).copy(), scale, bias, mean, var],
                    epsilon=1e-3, layout="nhwc")[0]
    close(nhwc, want.transpose(0, 2, 3, 1), atol=1e-5)


def test_layernorm_matches_onnx():
    x, gamma, beta = randn(2, 6, 16) * 3 + 1, randn(16), randn(16)
    want = onnx_eval("LayerNormalization", [x, gamma, beta], 3, axis=-1, epsilon=1e-5)[0]
    close(tfc_eval("layernorm", [x, gamma, beta], axis=-1, epsilon=1e-5)[0], want, atol=1e-5)
    want_plain = onnx_eval("LayerNormalization", [x, np.ones(16, np.float32)], 3, axis=-1)[0]
    close(tfc_eval("layernorm", [x], axis=-1)[0], want_plain, atol=1e-5)


def test_softmax_matches_onnx():
    x = randn(2, 3, 10) * 4
    close(tfc_eval("softmax", [x], axis=-1)[0], onnx_eval("Softmax", [x], axis=-1)[0], atol=1e-6)


def test_normalizations_reject_other_axes():
    with pytest.raises(UnsupportedOpError, match="only axis -1"):
        tfc_eval("softmax", [randn(2, 3)], axis=0)


# -- data movement ----------------------------------------------------------------------------

def test_transpose_reshape_concat_match_onnx():
    x = randn(2, 3, 4)
    close(tfc_eval("transpose", [x], perm=[2, 0, 1])[0], onnx_eval("Transpose", [x], perm=[2, 0, 1])[0])
    close(tfc_eval("reshape", [x], shape=[6, 4])[0], x.reshape(6, 4))
    y = randn(2, 5, 4)
    close(tfc_eval("concat", [x, y, x], axis=-2)[0], onnx_eval("Concat", [x, y, x], axis=-2)[0])


SLICE_CASES = [
    # (starts, ends, axes, steps)
    ([1, 0], [3, 10], [0, 2], [1, 2]),
    ([-1], [-1000], [1], [-1]),                      # full reversal via a huge negative end
    ([5, -2], [0, 1], [2, 1], [-2, -1]),
    ([0], [np.iinfo(np.int64).max], [-1], [3]),      # end clamps
    ([-3], [-1], [2], [1]),
]


@pytest.mark.parametrize("case", SLICE_CASES, ids=str)
def test_slice_matches_onnx(case):
    starts, ends, axes, steps = case
    x = randn(4, 5, 7)
    as_i64 = [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    want = onnx_eval("Slice", [x] + as_i64)[0]
    ends_attr = [int(min(e, 2**31 - 1)) for e in ends]
    got = tfc_eval("slice", [x], starts=starts, ends=ends_attr, axes=axes, steps=steps)[0]
    close(got, want)


def test_split_matches_onnx():
    x = randn(3, 9)
    want = onnx_eval("Split", [x, np.array([2, 3, 4], np.int64)], 3, axis=1)
    got = tfc_eval("split", [x], axis=1, sizes=[2, 3, 4])
    assert len(got) == 3
    for g, w in zip(got, want):
        close(g, w)


# -- quantization converters ------------------------------------------------------------------

def test_quantize_dequantize_match_onnx_per_tensor():
    x = np.concatenate([randn(50) * 3, np.array([0.25, 0.75, -0.25, 1000.0, -1000.0], np.float32)])
    scale, zp = np.float32(0.5), np.int8(-3)
    quant = Quant.per_tensor(0.5, -3)
    q = tfc_eval("quantize", [x], [TensorType(x.shape, "i8", quant)])[0]
    np.testing.assert_array_equal(q, onnx_eval("QuantizeLinear", [x, scale, zp])[0])
    assert q.dtype == np.int8
    g = Graph("dq")
    v = g.add_input(TensorType(x.shape, "i8", quant), "q")
    g.outputs = [Builder(g).op("dequantize", [v])]
    close(interp.run(g, [q])[0], onnx_eval("DequantizeLinear", [q, scale, zp])[0], atol=0)


@pytest.mark.parametrize("axis", [0, -1])
def test_quantize_dequantize_match_onnx_per_axis(axis):
    w = randn(4, 3, 5)
    n = w.shape[axis]
    scales = (np.abs(randn(n)) + 0.05).astype(np.float32)
    quant = Quant(tuple(scales), (0,) * n, axis)
    q = tfc_eval("quantize", [w], [TensorType(w.shape, "i8", quant)])[0]
    zeros = np.zeros(n, np.int8)
    np.testing.assert_array_equal(q, onnx_eval("QuantizeLinear", [w, scales, zeros], axis=axis)[0])
    g = Graph("dq")
    v = g.add_input(TensorType(w.shape, "i8", quant), "q")
    g.outputs = [Builder(g).op("dequantize", [v])]
    close(interp.run(g, [q])[0], onnx_eval("DequantizeLinear", [q, scales, zeros], axis=axis)[0], atol=0)


# -- the driver -------------------------------------------------------------------------------

def _two_op_graph():
    g = Graph("tiny")
    x = g.add_input(TensorType((2, 3), "f32"), "x")
    b = Builder(g)
    w = b.const(randn(4, 3), "w")
    h = b.op("linear", [x, w], name_hint="fc")
    g.outputs = [b.op("relu", [h], name_hint="act")]
    return g


def test_kernels_cover_every_op():
    assert set(interp.KERNELS) == set(OPS)


def test_run_accepts_list_or_dict_and_run_all_names_every_value():
    g = _two_op_graph()
    x = randn(2, 3)
    by_list, by_dict = interp.run(g, [x])[0], interp.run(g, {"x": x})[0]
    np.testing.assert_array_equal(by_list, by_dict)
    values = interp.run_all(g, {"x": x})
    assert set(values) == {"x", "w", "fc", "act"}
    close(values["act"], np.maximum(values["fc"], 0))
    close(values["fc"], x @ values["w"].T)


@pytest.mark.parametrize("bad,match", [
    ([np.zeros((2, 4), np.float32)], r"input %x .* must be \[2, 3\] float32, got \[2, 4\]"),
    ([np.zeros((2, 3), np.float64)], r"input %x .*got \[2, 3\] float64"),
    ([], r"takes 1 inputs \(x\), got 0"),
    ({"y": np.zeros((2, 3), np.float32)}, r"has no input 'y'"),
])
def test_bad_inputs_name_the_input(bad, match):
    with pytest.raises(TfcError, match=match):
        interp.run(_two_op_graph(), bad)


def test_rank_0_results_stay_rank_0():
    x = randn(3, 4)
    got = tfc_eval("reduce_mean", [x], axes=[0, 1], keepdims=False)[0]
    assert got.shape == () and np.isclose(got, x.mean())
    assert tfc_eval("reshape", [np.float32([2.5]).reshape(1, 1)], shape=[])[0].shape == ()
