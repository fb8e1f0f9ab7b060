"""Sparse kernels (tfc_sparse.c) on the encoded stream: bit-exact with the interpreter on the host
(portable path) and on the emulated Cortex-M7 (SXTB16/SMLAD path), for every walk, block size,
sparsity and gap length, including gaps over 255 blocks and all-zero rows."""

from __future__ import annotations


import numpy as np
import pytest

from sparse_util import (Layer, assert_bit_exact, compile_layers, conv_layer, depthwise_layer,
                         layers_graph, linear_layer, random_inputs)


def _long_gap_linear(rng) -> Layer:
    """A [6, 2048] weight matrix: rows 1, 2 and 4 all zero, gaps of ~1000 blocks (> 255)."""
    layer = linear_layer(rng, 3, 2048, 6, sparsity=0.0, block=4)
    w = np.zeros_like(layer.weights)
    w[0, :8] = layer.weights[0, :8]
    w[3, 1000:1004] = layer.weights[3, 1000:1004]
    w[5, -4:] = layer.weights[5, -4:]
    return Layer("linear", layer.x_shape, w, layer.bias, layer.attrs)


def _with_requant(layer: Layer, *, shift: int | None = None, relu: bool = False,
                  output_zp: int | None = None) -> Layer:
    """The layer with other requantization: a fixed shift (>= -1 takes the kernels' generic
    tfc_requantize, below it the short SMMLA form), an activation range narrower than int8
    (the clamping form), or another output zero point."""
    attrs = dict(layer.attrs)
    if shift is not None:
        attrs["shift"] = [shift] * len(attrs["shift"])
    if output_zp is not None:
        attrs["output_zp"] = output_zp
    if relu:
        attrs["act_min"], attrs["act_max"] = attrs["output_zp"], 100
    return Layer(layer.kind, layer.x_shape, layer.weights, layer.bias, attrs)


def _requant_cases(rng) -> list[Layer]:
    layers = []
    for block in (2, 4):
        conv = conv_layer(rng, 5, 6, 8, 6, sparsity=0.5, block=block)
        linear = linear_layer(rng, 6, 16, 12, sparsity=0.5, block=block)
        layers += [_with_requant(conv, relu=True), _with_requant(linear, relu=True),
                   _with_requant(conv, shift=-1), _with_requant(linear, shift=0, relu=True),
                   _with_requant(conv, shift=-26, output_zp=-100),  # |2^24 + zp * 2^25| > 2^30: generic
                   _with_requant(linear, shift=-12, output_zp=127)]
    # A pruned-away output channel with a large multiplier (shift >= -1) beside short ones.
    pruned = linear_layer(rng, 5, 16, 6, sparsity=0.3, block=4)
    pruned.weights[2] = 0
    pruned.attrs["shift"][2] = 1
    layers.append(pruned)
    return layers


def _depthwise(rng, h, w, c, k=3, strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), batch=1,
               sparsity=0.5, **requant) -> Layer:
    """A depthwise layer of any geometry (pads: top, left, bottom, right), other requantization
    as for _with_requant."""
    layer = depthwise_layer(rng, h, w, c, k=k, sparsity=sparsity)
    attrs = dict(layer.attrs, strides=list(strides), pads=list(pads), dilations=list(dilations))
    layer = Layer("depthwise", (batch, h, w, c), layer.weights, layer.bias, attrs)
    return _with_requant(layer, **requant) if requant else layer


def _pruned_channels(rng) -> Layer:
    """Whole channels pruned away, one with a shift (>= -1) no high-word entry takes: its output
    is the constant the compiler stores in its place."""
    layer = _depthwise(rng, 5, 6, 8, sparsity=0.3)
    layer.weights[[1, 2, 6]] = 0
    layer.attrs["shift"][2] = 1
    layer.attrs["multiplier"][2] = 1 << 30
    return layer


def _long_gap_depthwise(rng) -> Layer:
    """200 channels, only 0, 120 and 199 kept: gaps of 357 and 236 blocks (fillers)."""
    layer = _depthwise(rng, 3, 4, 200, sparsity=0.0)
    keep = np.zeros(200, bool)
    keep[[0, 120, 199]] = True
    layer.weights[~keep] = 0
    return layer


def _depthwise_cases(rng) -> list[Layer]:
    """Every path of tfc_sparse_dw.c: the fast stride-1/2 kernel-width-3 loops (saturating and
    clamping), the generic loop (kernel width 5, dilation_w, stride_w 3, the generic
    requantization) and the constant channels."""
    layers = [_depthwise(rng, 5, 6, 4, sparsity=rho) for rho in (0.0, 0.34, 0.67)]
    layers += [_depthwise(rng, 6, 7, 5, sparsity=rho) for rho in (0.3, 0.5, 0.7, 0.9, 1.0)]
    layers += [
        _depthwise(rng, 6, 7, 5, strides=(2, 2), sparsity=0.5),  # odd out_w
        _depthwise(rng, 9, 8, 6, strides=(2, 2), pads=(0, 1, 2, 0), sparsity=0.6),
        _depthwise(rng, 7, 9, 4, pads=(2, 0, 0, 2), sparsity=0.5),  # padding on one side each
        _depthwise(rng, 7, 5, 6, pads=(0, 0, 0, 0), batch=2, sparsity=0.4),
        _depthwise(rng, 8, 7, 4, strides=(1, 2), pads=(2, 2, 2, 2), dilations=(2, 1),
                   sparsity=0.5),
        _depthwise(rng, 8, 9, 4, pads=(2, 2, 2, 2), dilations=(2, 2), sparsity=0.5),
        _depthwise(rng, 9, 10, 3, strides=(3, 3), sparsity=0.5),
        _depthwise(rng, 7, 8, 4, k=5, pads=(2, 2, 2, 2), sparsity=0.6),
        _depthwise(rng, 6, 7, 5, sparsity=0.5, relu=True),
        _depthwise(rng, 6, 7, 5, strides=(2, 2), sparsity=0.5, relu=True),
        _depthwise(rng, 5, 6, 4, sparsity=0.5, shift=-1),  # no high-word form
        _depthwise(rng, 5, 6, 4, sparsity=0.5, shift=-12, output_zp=127),
        _pruned_channels(rng), _long_gap_depthwise(rng)]
    return layers


def _group_cases(rng) -> list[Layer]:
    """The 8-pixel groups and their tails: 5..16 tokens (tails of 1..7 after whole groups of 8,
    exactly 8 and 16, and 5..7, which take one overlapping wide group), convs of 9, 12 and 15
    pixels, rows of 20 and 44 weights (not a multiple of 8), one output row, and 1x1 convs on the
    linear kernel (stride 1, no padding; batch 2) and off it (stride 2)."""
    layers = [linear_layer(rng, tokens, 20, 6, sparsity=0.6, block=2 + 2 * (tokens % 2))
              for tokens in range(5, 17)]
    layers += [conv_layer(rng, 3, width, 12, 5, sparsity=0.6, block=4) for width in (3, 4, 5)]
    layers += [conv_layer(rng, 5, 5, 6, 1, sparsity=0.5, block=2),  # one output row
               linear_layer(rng, 9, 44, 1, sparsity=0.5, block=4),
               conv_layer(rng, 5, 6, 8, 7, k=1, pad=0, batch=2, sparsity=0.6, block=4),
               conv_layer(rng, 7, 6, 8, 7, k=1, stride=2, pad=0, sparsity=0.6, block=2),
               conv_layer(rng, 6, 6, 5, 8, batch=2, sparsity=0.7, block=4)]  # gathered windows
    return layers


def _cases(rng) -> list[Layer]:
    layers = []
    for block in (2, 4):
        for rho in (0.0, 0.5, 0.9):
            layers.append(conv_layer(rng, 6, 5, 8, 6, sparsity=rho, block=block))
        layers.append(conv_layer(rng, 7, 7, 3, 5, sparsity=0.5, block=block))  # stem: 27 per row
        layers.append(conv_layer(rng, 4, 4, 16, 8, k=1, pad=0, sparsity=0.7, block=block))
        layers.append(conv_layer(rng, 9, 8, 4, 5, stride=2, dilation=2, pad=2, batch=2,
                                 sparsity=0.6, block=block, with_bias=False))
        layers.append(conv_layer(rng, 5, 5, 6, 3, sparsity=0.6, block=block))  # in_c % 4 != 0
        layers.append(linear_layer(rng, 5, 20, 7, sparsity=0.8, block=block))  # odd tokens
        layers.append(linear_layer(rng, 4, 30, 9, sparsity=0.5, block=block))  # 30 % 4 != 0
    layers += _depthwise_cases(rng)
    layers.append(_long_gap_linear(rng))
    all_zero = conv_layer(rng, 4, 4, 8, 4, sparsity=1.0, block=4)  # bias only
    layers.append(all_zero)
    layers.append(conv_layer(rng, 1, 3, 8, 5, sparsity=0.5, block=4))  # fewer pixels than a group
    layers.append(linear_layer(rng, 1, 24, 6, sparsity=0.5, block=2))  # one token
    return layers + _requant_cases(rng) + _group_cases(rng)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    rng = np.random.default_rng(11)
    graph = layers_graph(_cases(rng), "sparse_cases")
    outdir = tmp_path_factory.mktemp("sparse") / "out"
    art = compile_layers(graph, outdir, prefer="size")
    return graph, outdir, art, random_inputs(rng, graph)


def test_every_pruned_weight_is_stored_brle(compiled):
    graph, _, art, _ = compiled
    layers = [layer for layer in art.report["layers"] if layer["op"] in ("conv2d", "linear")]
    dense_ones = [layer["name"] for layer in layers if layer["storage"] == "dense"]
    # Unpruned weights (ρ = 0) cost more as brle, so those stay dense; all others are sparse.
    assert 2 <= len(dense_ones) <= 4
    for layer in layers:
        if layer["storage"] == "sparse":
            assert layer["execution"] == "sparse"
            assert layer["stored_weight_bytes"] < layer["dense_weight_bytes"]
            assert layer["ratio"] == pytest.approx(
                layer["dense_weight_bytes"] / max(layer["stored_weight_bytes"], 1), rel=1e-3)
    model_c = (compiled[1] / "model.c").read_text()
    # Both requantization forms are exercised: some layers prove the short one, some do not.
    assert ".short_requant = 1" in model_c and ".short_requant = 0" in model_c
    for kernel in ("tfc_conv2d_brle_s8(", "tfc_depthwise_brle_s8(", "tfc_linear_brle_s8("):
        assert kernel in model_c


def test_host_bit_exact(compiled):
    graph, outdir, _, inputs = compiled
    assert_bit_exact(graph, outdir, inputs, on="host")


@pytest.mark.slow
@pytest.mark.needs("arm-none-eabi-gcc", "unicorn")
def test_emulated_m7_bit_exact(compiled):
    graph, outdir, _, inputs = compiled
    assert_bit_exact(graph, outdir, inputs, on="m7")


def test_pruned_depthwise_channels_keep_the_high_word_table():
    """A pruned channel's own scale (here shift 1) does not push the layer onto the generic
    requantization: its table entry is (0, its constant output, 0)."""
    from tfc.backends.cortex_m7.sparse_dw_lowering import _requant_table
    from tfc.ir.quant_math import multiply_by_quantized_multiplier

    layer = _pruned_channels(np.random.default_rng(3))
    graph = layers_graph([layer])
    op = graph.outputs[0].producer
    rows = layer.weights.reshape(layer.weights.shape[0], -1)
    table = _requant_table(op, rows, layer.bias)
    assert table is not None
    constant = multiply_by_quantized_multiplier(layer.bias[2], 1 << 30, 1) + layer.attrs["output_zp"]
    assert table[2].tolist() == [0, int(np.clip(constant, -128, 127)), 0]
    assert (table[[0, 3], 2] >= 1).all()  # kept channels: their own multiplier, rounding and k


def test_row_constants_hold_the_requantization_of_each_row():
    """The compiler's per-row constants (tfc_sparse.c's brle_row less the record bytes, which a
    call counts from the stream): the folded bias, and a pruned row with a large shift as
    (0, its constant output, 0)."""
    from tfc.backends.cortex_m7.dense_lowering import fold_zero_point
    from tfc.backends.cortex_m7.sparse_lowering import row_constants
    from tfc.ir.quant_math import multiply_by_quantized_multiplier

    rng = np.random.default_rng(5)
    layer = _long_gap_linear(rng)  # rows 1, 2 and 4 all zero, holding only fillers
    layer.attrs["shift"][2] = 1
    op = layers_graph([layer]).outputs[0].producer
    folded = fold_zero_point(layer.bias, layer.weights, layer.attrs["input_zp"])
    table = row_constants(op, layer.weights, folded, short=True)
    assert table.shape == (6, 4) and table[:, 0].tolist() == folded.tolist()
    constant = multiply_by_quantized_multiplier(folded[2], layer.attrs["multiplier"][2], 1)
    assert table[2, 1:].tolist() == [0, int(np.clip(constant + layer.attrs["output_zp"], -128,
                                                         127)), 0]
    assert (table[[0, 3, 5], 3] >= 1).all()  # the others: their own multiplier, rounding and k


def test_pointwise_conv_runs_on_the_linear_kernel(tmp_path):
    """A 1x1 conv with stride 1 and no padding reads each pixel alone: the linear kernel over
    its pixels takes it (whole pixels widened, no window gather); a strided one stays a conv."""
    rng = np.random.default_rng(8)
    pointwise = conv_layer(rng, 4, 4, 16, 8, k=1, pad=0, sparsity=0.6, block=4)
    compile_layers(layers_graph([pointwise]), tmp_path / "pw", prefer="size")
    model_c = (tmp_path / "pw" / "model.c").read_text()
    assert "tfc_linear_brle_s8(" in model_c and "tfc_conv2d_brle_s8(" not in model_c
    strided = conv_layer(rng, 4, 4, 16, 8, k=1, stride=2, pad=0, sparsity=0.6, block=4)
    compile_layers(layers_graph([strided]), tmp_path / "strided", prefer="size")
    assert "tfc_conv2d_brle_s8(" in (tmp_path / "strided" / "model.c").read_text()
