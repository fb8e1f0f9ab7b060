"""The text form round-trips: print(parse(t)) == t, and parse(print(g)) is structurally g."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfc.ir import (DTYPES, OPS, Builder, Graph, Quant, TensorType, parse, print_graph,
                    structural_diff, verify_graph)
from tfc.ir.printer import format_float, format_type

FILECHECK_ROOT = Path(__file__).parent.parent / "filecheck"


def assert_round_trips(graph: Graph) -> str:
    text = print_graph(graph)
    again = parse(text)
    diff = structural_diff(graph, again)
    assert diff is None, f"{diff}\n{text}"
    assert print_graph(again) == text
    return text


def assert_text_is_canonical(text: str) -> Graph:
    graph = parse(text)
    assert print_graph(graph) == text
    assert_round_trips(graph)
    return graph


# -- every op, float and int8 forms ---------------------------------------------------------------

FLOAT_OPS = """\
graph @float_ops(%x: tensor<1x2x4x4xf32>, %t: tensor<1x3x8xf32>) -> (tensor<1x3xf32>, tensor<1x3xf32>, tensor<1x4xf32>) {
  %w = const {value = dense<[0.5, -0.25, 1e-30, 3.4028235e+38, -1.0, 2.0, 0.0, -0.0]>} : tensor<4x2x1x1xf32>
  %b = const {value = dense<[1.0, nan, inf, -inf]>} : tensor<4xf32>
  %conv = conv2d(%x, %w, %b) {act = "relu", dilations = [1, 1], group = 1, layout = "nchw", pads = [0, 0, 0, 0], strides = [1, 1]} : tensor<1x4x4x4xf32>
  %dw = const {value = dense_resource<dw>} : tensor<4x1x3x3xf32>
  %dwc = conv2d(%conv, %dw) {act = "clip", act_max = 6.0, act_min = 0.0, group = 4, pads = [1, 1, 1, 1]} : tensor<1x4x4x4xf32>
  %g = const {value = dense<[1.0, 1.0, 1.0, 1.0]>} : tensor<4xf32>
  %be = const {value = dense<[0.0, 0.0, 0.0, 0.0]>} : tensor<4xf32>
  %m = const {value = dense<[0.1, 0.2, 0.3, 0.4]>} : tensor<4xf32>
  %v = const {value = dense<[1.0, 2.0, 3.0, 4.0]>} : tensor<4xf32>
  %bn = batchnorm(%dwc, %g, %be, %m, %v) {epsilon = 1e-05} : tensor<1x4x4x4xf32>
  %r = relu(%bn) : tensor<1x4x4x4xf32>
  %c = clip(%r) {max = 6.0, min = 0.0} : tensor<1x4x4x4xf32>
  %mp = maxpool2d(%c) {ceil_mode = false, kernel = [2, 2], strides = [2, 2]} : tensor<1x4x2x2xf32>
  %ap = avgpool2d(%c) {count_include_pad = true, kernel = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]} : tensor<1x4x2x2xf32>
  %s = add(%mp, %ap) {act = "none"} : tensor<1x4x2x2xf32>
  %d = sub(%s, %ap) : tensor<1x4x2x2xf32>
  %mu = mul(%d, %mp) : tensor<1x4x2x2xf32>
  %gp = global_avgpool(%mu) : tensor<1x4x1x1xf32>
  %rs = reshape(%gp) {shape = [1, 4]} : tensor<1x4xf32>
  %fw = const {value = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]>} : tensor<3x4xf32>
  %fc = linear(%rs, %fw) : tensor<1x3xf32>
  %tr = transpose(%t) {perm = [0, 2, 1]} : tensor<1x8x3xf32>
  %gamma = const {value = dense<[1.0, 1.5, 2.0]>} : tensor<3xf32>
  %beta = const {value = dense<[0.0, 0.5, -0.5]>} : tensor<3xf32>
  %ln = layernorm(%tr, %gamma, %beta) {axis = -1, epsilon = 1e-05} : tensor<1x8x3xf32>
  %sm = softmax(%ln) {axis = -1} : tensor<1x8x3xf32>
  %mm = matmul(%sm, %t) : tensor<1x8x8xf32>
  %rm = reduce_mean(%mm) {axes = [1], keepdims = false} : tensor<1x8xf32>
  %cat = concat(%rm, %rm) {axis = 1} : tensor<1x16xf32>
  %sl = slice(%cat) {axes = [1], ends = [16], starts = [2], steps = [2]} : tensor<1x7xf32>
  %p1, %p2 = split(%sl) {axis = 1, sizes = [3, 4]} : tensor<1x3xf32>, tensor<1x4xf32>
  %q = quantize(%p1) : tensor<1x3xi8, q<0.05:-2>>
  %dq = dequantize(%q) : tensor<1x3xf32>
  return %fc, %dq, %p2
}
resources {
  dw = "0x{dw}"
}
"""

_REQ = 'act_max = 127, act_min = -128'
INT8_OPS = """\
graph @int8_ops(%x: tensor<1x4x4x2xi8, q<0.5:-3>>, %t: tensor<1x8x4xi8, q<0.1:0>>) -> (tensor<1x3xi8, q<0.2:1>>, tensor<1x4x1xf32>, tensor<1x4x1xi8, q<0.04:0>>) {
  %w = const {value = dense<[1, 2, 3, 4, 5, -1, -128, 127]>} : tensor<4x1x1x2xi8, q<axis=0, [0.01, 0.02, 0.03, 0.04]:[0, 0, 0, 0]>>
  %b = const {value = dense<[1, -2, 3, -2147483648]>} : tensor<4xi32>
  %conv = conv2d(%x, %w, %b) {act_max = 127, act_min = 0, input_zp = -3, layout = "nhwc", multiplier = [1073741824, 1288490189, 2147483647, 1], output_zp = -128, pads = [0, 0, 0, 0], shift = [-1, 0, -31, 30], strides = [1, 1]} : tensor<1x4x4x4xi8, q<0.02:-128>>
  %mp = maxpool2d(%conv) {kernel = [2, 2], layout = "nhwc", strides = [2, 2]} : tensor<1x2x2x4xi8, q<0.02:-128>>
  %ap = avgpool2d(%conv) {R, input_zp = -128, kernel = [2, 2], layout = "nhwc", multiplier = 1073741824, output_zp = -128, shift = 1, strides = [2, 2]} : tensor<1x2x2x4xi8, q<0.02:-128>>
  %add = add(%mp, %ap) {a_multiplier = 524288, a_zp = -128, R, b_multiplier = 524288, b_zp = -128, output_zp = -128, shift = 20} : tensor<1x2x2x4xi8, q<0.04:-128>>
  %sub = sub(%mp, %ap) {a_multiplier = 524288, a_zp = -128, R, b_multiplier = 524288, b_zp = -128, output_zp = 0, shift = 20} : tensor<1x2x2x4xi8, q<0.04:0>>
  %mul = mul(%add, %sub) {a_zp = -128, R, b_zp = 0, multiplier = 1717986918, output_zp = 5, shift = -4} : tensor<1x2x2x4xi8, q<0.1:5>>
  %rq = requantize(%mul) {R, input_zp = 5, multiplier = 1073741824, output_zp = -1, shift = 2} : tensor<1x2x2x4xi8, q<0.05:-1>>
  %gp = global_avgpool(%rq) {R, input_zp = -1, layout = "nhwc", multiplier = 1073741824, output_zp = -1, shift = 1} : tensor<1x1x1x4xi8, q<0.05:-1>>
  %rs = reshape(%gp) {shape = [1, 4]} : tensor<1x4xi8, q<0.05:-1>>
  %fw = const {value = dense<[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]>} : tensor<3x4xi8, q<axis=0, [0.5, 0.25, 0.125]:[0, 0, 0]>>
  %fb = const {value = dense<[100, -100, 7]>} : tensor<3xi32>
  %fc = linear(%rs, %fw, %fb) {R, input_zp = -1, multiplier = [1073741824, 1073741824, 1073741824], output_zp = 1, shift = [0, -1, -2]} : tensor<1x3xi8, q<0.2:1>>
  %ln = layernorm(%t) {R, axis = -1, bias = [128, 384, 640, 896], eps_q = 1, multiplier = [2621440, -2621440, 2621440, 2621440]} : tensor<1x8x4xi8, q<0.05:0>>
  %lut = const {value = dense_resource<lut>} : tensor<256xi32>
  %sm = softmax(%ln, %lut) {axis = -1, multiplier = 1073741824, output_zp = -128, shift = 9} : tensor<1x8x4xi8, q<0.00390625:-128>>
  %tr = transpose(%sm) {perm = [0, 2, 1]} : tensor<1x4x8xi8, q<0.00390625:-128>>
  %mm = matmul(%sm, %tr) {a_zp = -128, R, b_zp = -128, multiplier = 1073741824, output_zp = 0, shift = -5} : tensor<1x8x8xi8, q<0.02:0>>
  %rm = reduce_mean(%mm) {R, axes = [2], input_zp = 0, keepdims = true, multiplier = 1073741824, output_zp = 0, shift = 1} : tensor<1x8x1xi8, q<0.02:0>>
  %cat = concat(%rm, %rm) {axis = 2} : tensor<1x8x2xi8, q<0.02:0>>
  %sl = slice(%cat) {axes = [1], ends = [4], starts = [0]} : tensor<1x4x2xi8, q<0.02:0>>
  %lo, %hi = split(%sl) {axis = 2, sizes = [1, 1]} : tensor<1x4x1xi8, q<0.02:0>>, tensor<1x4x1xi8, q<0.02:0>>
  %c = clip(%lo) {max = 100, min = -100} : tensor<1x4x1xi8, q<0.02:0>>
  %dq = dequantize(%c) : tensor<1x4x1xf32>
  %rq2 = requantize(%hi) {input_zp = 0, multiplier = 1073741824, output_zp = 0, shift = 0} : tensor<1x4x1xi8, q<0.04:0>>
  return %fc, %dq, %rq2
}
resources {
  lut = "0x{lut}"
}
"""


def _float_ops_text() -> str:
    dw = np.linspace(-1, 1, 36, dtype=np.float32)
    return FLOAT_OPS.replace("{dw}", dw.astype("<f4").tobytes().hex().upper())


def _int8_ops_text() -> str:
    lut = (np.arange(256, dtype=np.int64) * 8388607 % 2147483647).astype(np.int32)
    text = INT8_OPS.replace("{lut}", lut.astype("<i4").tobytes().hex().upper())
    return text.replace("{R, ", "{" + _REQ + ", ").replace(", R, ", ", " + _REQ + ", ")


@pytest.mark.parametrize("make_text", [_float_ops_text, _int8_ops_text], ids=["float", "int8"])
def test_every_op_round_trips(make_text):
    graph = assert_text_is_canonical(make_text())
    verify_graph(graph)


def test_the_op_texts_cover_every_registered_op():
    used = {op.name for op in parse(_float_ops_text()).ops} | {op.name for op in parse(_int8_ops_text()).ops}
    missing = sorted(set(OPS) - used)
    assert not missing, f"add these ops to FLOAT_OPS / INT8_OPS: {missing}"


def test_resource_data_is_little_endian_and_exact():
    graph = parse(_int8_ops_text())
    lut = next(op for op in graph.ops if op.results[0].name == "lut").attrs["value"].array
    assert lut.dtype == np.int32 and lut.shape == (256,)
    assert lut[1] == 8388607 and lut[255] == (255 * 8388607) % 2147483647


def test_common_annotation_attribute_round_trips():
    text = _float_ops_text().replace("%r = relu(%bn) :", "%r = relu(%bn) {arena_offset = [64]} :")
    graph = assert_text_is_canonical(text)
    assert graph.value("r").producer.attrs["arena_offset"] == [64]


# -- graphs built in Python ----------------------------------------------------------------------

def _small_graph() -> Graph:
    g = Graph("tiny")
    x = g.add_input(TensorType((1, 8), "f32"), "input.1")  # ONNX-style name, sanitised
    b = Builder(g)
    w = b.const(np.arange(24, dtype=np.float32).reshape(3, 8) / 7, "fc/weight")
    y = b.op("linear", [x, w], act="relu6", act_min=0.0, act_max=6.0)
    g.outputs = [b.op("clip", [y], min=-1e-300, max=1e300)]
    return g


def test_builder_graph_round_trips():
    text = assert_round_trips(_small_graph())
    assert "%fc_weight = const {value = dense_resource<fc_weight>} : tensor<3x8xf32>" in text
    assert "{act = \"relu6\", act_max = 6.0, act_min = 0.0}" in text


def test_printing_twice_is_identical():
    g = _small_graph()
    assert print_graph(g) == print_graph(g)


def test_elided_weights_read_back_as_zeros():
    text = print_graph(_small_graph(), elide_weights=True)
    assert "dense_resource<__elided__>" in text and "resources" not in text
    graph = parse(text)
    assert not graph.ops[0].attrs["value"].array.any()
    assert print_graph(graph, elide_weights=True) == text


def test_rank0_constants_and_odd_names():
    g = Graph("my-model.v2")
    x = g.add_input(TensorType((), "f32"), "x")
    b = Builder(g)
    c = b.const(np.array(2.5, dtype=np.float32), "scale")
    y = b.op("mul", [x, c])
    y.name = "0_starts_with_digit__and_double"  # set directly, as passes may do
    g.outputs = [y]
    text = assert_round_trips(g)
    assert text.startswith('graph @"my-model.v2"(%x: tensor<f32>) -> (tensor<f32>) {')
    assert "%0_starts_with_digit__and_double = mul(%x, %scale)" in text


def test_invalid_and_duplicate_names_are_renamed_in_text():
    g = _small_graph()
    g.ops[1].results[0].name = "bad.name"
    g.ops[2].results[0].name = "bad_name"
    text = assert_round_trips(g)
    assert "%bad_name = linear" in text and "%bad_name_1 = clip(%bad_name)" in text


def test_nan_payload_constant_goes_to_resources_bit_exactly():
    bits = np.array([0x7FC00001, 0xFFC00000, 0x00000001, 0x80000000], dtype=np.uint32)
    g = Graph("nans")
    g.outputs = [Builder(g).const(bits.view(np.float32), "payload")]
    text = assert_round_trips(g)
    assert "dense_resource<payload>" in text
    assert parse(text).ops[0].attrs["value"].array.view(np.uint32).tolist() == bits.tolist()


@pytest.mark.parametrize("value, text", [(1.0, "1.0"), (-0.0, "-0.0"), (1e16, "1e+16"), (5e-324, "5e-324"),
                                         (float("nan"), "nan"), (float("-inf"), "-inf"), (0.1, "0.1")])
def test_float_format(value, text):
    assert format_float(value) == text


def test_type_format():
    assert format_type(TensorType((), "f32")) == "tensor<f32>"
    assert format_type(TensorType((1, 16), "i8", Quant.per_tensor(0.5, -3))) == "tensor<1x16xi8, q<0.5:-3>>"
    per_axis = TensorType((2, 3), "i8", Quant((0.25, 1e-9), (0, 0), 0))
    assert str(per_axis) == "tensor<2x3xi8, q<axis=0, [0.25, 1e-09]:[0, 0]>>"


# -- random graphs (hypothesis) -------------------------------------------------------------------

_WEIRD_FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 1e-45, 3.4028234663852886e38])
_NAME_HINTS = st.text(alphabet="ab_.:/0123456789-", min_size=0, max_size=8)


def _quant(draw, channels: int | None = None) -> Quant:
    scale = st.floats(min_value=1e-30, max_value=1e30, allow_subnormal=False)
    zp = st.integers(-128, 127)
    if channels is None:
        return Quant.per_tensor(draw(scale), draw(zp))
    return Quant(tuple(draw(scale) for _ in range(channels)), tuple(draw(zp) for _ in range(channels)), 0)


def _array(draw, dtype: str, shape) -> np.ndarray:
    if dtype == "f32":  # arbitrary bit patterns: NaN payloads, subnormals, signed zeros
        return draw(hnp.arrays(np.uint32, shape)).view(np.float32)
    return draw(hnp.arrays(np.dtype(DTYPES_NP[dtype]), shape))


DTYPES_NP = {"f32": np.float32, "i8": np.int8, "i16": np.int16, "i32": np.int32, "u8": np.uint8}


def _int_requant(draw, per_channel: int | None = None) -> dict:
    i32 = st.integers(-(2**31), 2**31 - 1)
    attrs = {"input_zp": draw(st.integers(-128, 127)), "output_zp": draw(st.integers(-128, 127)),
             "act_min": -128, "act_max": 127}
    n = per_channel or 1
    attrs["multiplier"] = [draw(i32) for _ in range(n)]
    attrs["shift"] = [draw(st.integers(-31, 30)) for _ in range(n)]
    return attrs


@st.composite
def random_graphs(draw) -> Graph:
    g = Graph(draw(st.sampled_from(["g", "net_1", "with-dash", "dotted.name"])))
    b = Builder(g)
    integer = draw(st.booleans())
    dtype = "i8" if integer else "f32"
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=4, max_size=4)))
    quant = _quant(draw) if integer else None
    cur = g.add_input(TensorType(shape, dtype, quant), draw(_NAME_HINTS))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["add", "clip", "reshape", "transpose", "conv2d", "relu"]))
        hint = draw(_NAME_HINTS)
        out_q = _quant(draw) if integer else None
        t = cur.type
        if kind == "add":
            other = b.const(_array(draw, dtype, t.shape), draw(_NAME_HINTS), quant=out_q)
            attrs = {"act": "none"} if not integer else {
                k: draw(st.integers(-(2**31), 2**31 - 1)) for k in
                ("a_zp", "b_zp", "output_zp", "a_multiplier", "b_multiplier", "shift", "act_min",
                 "act_max")}
            cur = b.op("add", [cur, other], name_hint=hint, result_type=t.with_quant(out_q), **attrs)
        elif kind == "clip" or (kind == "relu" and integer):
            lo, hi = (draw(st.integers(-128, 127)), draw(st.integers(-128, 127))) if integer else \
                (draw(_WEIRD_FLOATS), draw(_WEIRD_FLOATS))
            cur = b.op("clip", [cur], name_hint=hint, result_type=t, min=lo, max=hi)
        elif kind == "relu":
            cur = b.op("relu", [cur], name_hint=hint)
        elif kind == "reshape":
            new_shape = draw(st.sampled_from([[t.numel], [1, t.numel], list(reversed(t.shape))]))
            cur = b.op("reshape", [cur], name_hint=hint, result_type=t.with_shape(new_shape),
                       shape=new_shape)
        elif kind == "transpose":
            perm = draw(st.permutations(range(t.rank)))
            cur = b.op("transpose", [cur], name_hint=hint, perm=list(perm),
                       result_type=TensorType(tuple(t.shape[p] for p in perm), dtype, t.quant))
        elif kind == "conv2d" and t.rank == 4:
            out_ch = draw(st.integers(1, 3))
            k = draw(st.integers(1, min(t.shape[2], t.shape[3], 2)))
            wq = _quant(draw, out_ch) if integer else None
            w = b.const(_array(draw, dtype, (out_ch, t.shape[1], k, k)), draw(_NAME_HINTS), quant=wq)
            operands = [cur, w]
            if draw(st.booleans()):
                operands.append(b.const(_array(draw, "i32" if integer else "f32", (out_ch,)), "bias"))
            attrs = _int_requant(draw, out_ch) if integer else {
                "act": "clip", "act_min": draw(_WEIRD_FLOATS), "act_max": draw(_WEIRD_FLOATS)}
            y = b.op("conv2d", operands, name_hint=hint, strides=[1, 1], pads=[0, 0, 0, 0], **attrs)
            y.type = y.type.with_quant(out_q)
            cur = y
    outputs = [cur]
    for extra in draw(st.lists(st.sampled_from(DTYPES), max_size=3)):
        extra_shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
        q = _quant(draw) if extra == "i8" and draw(st.booleans()) else None
        outputs.append(b.const(_array(draw, extra, extra_shape), draw(_NAME_HINTS), quant=q))
    g.outputs = outputs
    return g


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_random_graphs_round_trip(graph):
    verify_graph(graph)  # the generator makes valid graphs; the parser verifies them again
    text = assert_round_trips(graph)
    elided = print_graph(graph, elide_weights=True)
    assert print_graph(parse(elided), elide_weights=True) == elided
    assert text == print_graph(graph)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_every_float32_bit_pattern_survives(bits):
    g = Graph("one")
    g.outputs = [Builder(g).const(np.array([bits], dtype=np.uint32).view(np.float32), "c")]
    text = assert_round_trips(g)
    assert parse(text).ops[0].attrs["value"].array.view(np.uint32)[0] == bits


# -- every .tir file under tests/filecheck -------------------------------------------------------

def _tir_cases():
    for path in sorted(FILECHECK_ROOT.rglob("*.tir")):
        text = path.read_text(encoding="utf-8")
        if "--verify-diagnostics" in text:  # deliberately invalid IR
            continue
        for i, case in enumerate(re.split(r"^// -----.*$", text, flags=re.M)):
            if "graph @" in case or 'graph @"' in case:
                yield pytest.param(case, id=f"{path.relative_to(FILECHECK_ROOT)}#{i}")


@pytest.mark.parametrize("case", list(_tir_cases()))
def test_filecheck_inputs_round_trip(case):
    """xDSL's ROUNDTRIP: printing a parsed file, parsing and printing again changes nothing."""
    graph = parse(case, verify=False)
    text = print_graph(graph)
    again = parse(text, verify=False)
    assert structural_diff(graph, again) is None
    assert print_graph(again) == text
