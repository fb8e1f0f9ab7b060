"""Dense int8 depthwise conv2d (runtime/tfc_depthwise.c, chosen by depthwise_lowering.py) against
the interpreter, on the host (portable C, ASan + UBSan) and on the emulated Cortex-M7 (the asm
DSP path, and the portable C built for the M7).

The 3x3 kernel's cases cover what its planes and groups of four outputs must get right: stride 1
and 2 (and stride_h != stride_w), padding on every side (asymmetric, larger than the kernel
reach), widths whose last group is partial, channel counts that are not a multiple of 4 (the
byte-wise transpose), batch, bands of output rows (images larger than the scratch budget, with
the rows below the image in a later band), activation ranges narrower than int8 (the clamp path),
all-zero-weight channels, and extreme zero points. Other geometries (5x5, dilation, stride 3)
and requantization outside the high-word table take tfc_depthwise_s8_hwc.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernel_harness import Case, HarnessContext, i8_type, one_op_graph, random_i8
from m7_cases import run_cases_on_m7
from test_dense_fast import _quant_attrs, _weights
from tfc.backends.cortex_m7 import depthwise_lowering, kernels

# (n, h, w, c, (kh, kw), (stride_h, stride_w), pads [top, left, bottom, right], dilation)
SHAPES = [
    (1, 16, 16, 64, (3, 3), (1, 1), [1, 1, 1, 1], 1),   # the bench layer
    (1, 16, 16, 64, (3, 3), (2, 2), [1, 1, 1, 1], 1),   # the hybrid's stride-2 layer
    (1, 8, 8, 96, (3, 3), (1, 1), [1, 1, 1, 1], 1),     # the hybrid's stride-1 layer
    (1, 9, 11, 7, (3, 3), (2, 2), [1, 2, 0, 1], 1),
    (1, 7, 13, 5, (3, 3), (1, 1), [0, 1, 2, 0], 1),
    (2, 6, 5, 13, (3, 3), (1, 2), [1, 1, 1, 1], 1),
    (1, 10, 6, 4, (3, 3), (2, 1), [1, 0, 1, 0], 1),
    (1, 5, 7, 1, (3, 3), (1, 1), [2, 2, 2, 2], 1),      # one channel: a plain conv2d
    (1, 5, 7, 2, (3, 3), (1, 1), [2, 2, 2, 2], 1),
    (1, 4, 4, 8, (3, 3), (1, 1), [0, 0, 0, 0], 1),
    (1, 25, 5, 12, (3, 3), (1, 1), [1, 1, 1, 1], 1),    # dscnn-like: 5 wide, a 1-output tail
    (1, 40, 40, 8, (3, 3), (1, 1), [1, 1, 1, 1], 1),    # several bands
    (1, 41, 38, 6, (3, 3), (2, 2), [1, 0, 2, 1], 1),    # several bands, stride 2
    (1, 8, 8, 8, (5, 5), (1, 1), [2, 2, 2, 2], 1),      # tfc_depthwise_s8_hwc
    (1, 9, 9, 6, (3, 3), (1, 1), [2, 2, 2, 2], 2),      # dilation: hwc
    (1, 10, 10, 4, (3, 3), (3, 3), [1, 1, 1, 1], 1),    # stride 3: hwc
]
ZERO_POINTS = [-128, 127, -3, 12]


def depthwise_case(rng, shape, i, relu6=False, zero_channels=()) -> Case:
    n, h, w_, c, (kh, kw), strides, pads, dilation = shape
    zp = ZERO_POINTS[i % 4]
    attrs = dict(strides=list(strides), pads=pads, dilations=[dilation, dilation], group=c,
                 layout="nhwc", **_quant_attrs(rng, c, kh * kw, zp, per_tensor=i % 3 == 2,
                                               relu=i % 2 == 0))
    if relu6:  # a range narrower than int8 on both sides
        attrs["act_min"], attrs["act_max"] = attrs["output_zp"], attrs["output_zp"] + 40
    w = _weights(rng, (c, kh, kw, 1))
    w[list(zero_channels)] = 0
    bias = rng.integers(-5000, 5000, size=c).astype(np.int32)

    def build(b, x):
        operands = [x, b.const(w, "w")] + ([b.const(bias, "b")] if i % 5 != 4 else [])
        return b.op("conv2d", operands, **attrs)

    g = one_op_graph(f"dw{i}", [i8_type((n, h, w_, c), zp=zp)], build)
    return Case(g, [random_i8(rng, (n, h, w_, c))], label=f"depthwise {shape}")


def cases(seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    out = [depthwise_case(rng, shape, i) for i, shape in enumerate(SHAPES)]
    out.append(depthwise_case(rng, SHAPES[3], 1, relu6=True))
    out.append(depthwise_case(rng, SHAPES[1], 2, relu6=True))
    out.append(depthwise_case(rng, SHAPES[4], 3, zero_channels=(0, 3)))
    return out


def kernel_name(case: Case) -> str:
    ctx = HarnessContext("probe", data={id(v): a for v, a in zip(case.graph.inputs, case.inputs)})
    (call,) = [call for op in case.graph.ops for call in kernels.lower_op(op, ctx)]
    return call.fn


def conv_op(case: Case):
    return next(op for op in case.graph.ops if op.name == "conv2d")


def test_kernel_choice():
    names = {c.label: kernel_name(c) for c in cases()}
    for shape in SHAPES:
        label = f"depthwise {shape}"
        if shape[3] == 1:  # one channel: group == 1, a plain conv2d
            assert names[label] == "tfc_conv2d_s8_packed", label
            continue
        fast = shape[4] == (3, 3) and shape[7] == 1 and shape[5][1] in (1, 2)
        assert names[label] == ("tfc_depthwise_s8_3x3" if fast else "tfc_depthwise_s8_hwc"), label


def test_bands_split_large_images():
    big = next(c for c in cases() if "(1, 40, 40, 8" in c.label)
    op = conv_op(big)
    _, band = depthwise_lowering.plane_geometry(op)
    assert 1 <= band < op.result.type.shape[1]
    assert depthwise_lowering.scratch_bytes(op) <= depthwise_lowering.PLANE_BUDGET_BYTES
    small = conv_op(cases()[0])
    assert depthwise_lowering.plane_geometry(small)[1] == small.result.type.shape[1]


def test_requant_outside_the_table_takes_the_hwc_kernel(kernels_host):
    rng = np.random.default_rng(7)
    case = depthwise_case(rng, SHAPES[3], 1)
    op = conv_op(case)
    op.attrs["shift"] = [0] * op.operands[1].type.shape[0]  # k = -1 - shift < 1: no table
    assert not depthwise_lowering.is_3x3_fast(op)
    assert kernel_name(case) == "tfc_depthwise_s8_hwc"
    kernels_host.check([case])


def test_depthwise_bit_exact_on_host(kernels_host):
    kernels_host.check(cases())


def test_records_3x3_layout():
    w = np.arange(2 * 9, dtype=np.int8).reshape(2, 3, 3, 1) - 9
    folded = np.array([7, -8], np.int32)
    table = np.array([[1 << 30, 5, 3], [1 << 29, -6, 4]], np.int32)
    rec = depthwise_lowering.records_3x3(w, folded, table)
    assert rec.shape == (2, 10) and rec.dtype == np.int32
    halves = rec[:, :6].view(np.int16).reshape(2, 3, 2, 2)  # channel, row, word, half
    np.testing.assert_array_equal(halves[:, :, 0, 0], w[:, :, 0, 0])
    np.testing.assert_array_equal(halves[:, :, 0, 1], w[:, :, 2, 0])
    np.testing.assert_array_equal(halves[:, :, 1, 0], w[:, :, 1, 0])
    np.testing.assert_array_equal(rec[:, 6], folded)
    np.testing.assert_array_equal(rec[:, 7:], table)


@pytest.mark.slow
@pytest.mark.needs("arm-none-eabi-gcc", "unicorn")
@pytest.mark.parametrize("portable", [False, True], ids=["dsp", "portable"])
def test_depthwise_bit_exact_on_m7(tmp_path, portable):
    run_cases_on_m7(tmp_path, cases(seed=3), portable)
