"""Numerical checks of the structural passes: interp(before) == interp(after), and idempotence.

Each pass runs on graphs built with the Builder (float and int8) and on the test models; the
interpreter is the oracle. Running a pass a second time must change nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfc.ir.core import Builder, Graph, structural_diff
from tfc.ir.interp import run
from tfc.ir.quant_math import quantize_multiplier
from tfc.ir.types import Quant, TensorType
from tfc.pipeline import PassManager

MODELS = Path(__file__).resolve().parents[1] / "models"
STRUCTURAL = ["canonicalize", "fold-batchnorm", "fuse-activation", "layout-nhwc"]


def float_cnn(seed: int) -> Graph:
    """conv -> batchnorm -> relu -> conv -> clip, residual add, bias add, pooling, flatten, linear."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    g = Graph(f"cnn{seed}")
    x = g.add_input(TensorType((1, 3, 8, 8), "f32"), "x")
    b = Builder(g)
    c = b.op("conv2d", [b.op("transpose", [b.op("transpose", [x], perm=[0, 2, 3, 1])], perm=[0, 3, 1, 2]),
                        b.const(f32(4, 3, 3, 3))], pads=[1, 1, 1, 1], name_hint="conv1")
    bn = b.op("batchnorm", [c, b.const(f32(4)), b.const(f32(4)), b.const(f32(4)),
                            b.const(np.abs(f32(4)) + 0.1)], epsilon=1e-5)
    y = b.op("relu", [bn])
    dw = b.op("conv2d", [y, b.const(f32(4, 1, 3, 3))], pads=[1, 1, 1, 1], group=4)
    dw = b.op("add", [dw, b.const(f32(1, 4, 1, 1))], name_hint="dw_bias")
    y2 = b.op("clip", [dw], min=0.0, max=6.0)
    s = b.op("add", [y2, y], name_hint="residual")
    s = b.op("mul", [s, b.const(f32(4, 1, 1))], name_hint="scale")
    p = b.op("avgpool2d", [s], kernel=[2, 2], strides=[2, 2])
    p = b.op("maxpool2d", [p], kernel=[2, 2], strides=[2, 2])
    standalone = b.op("batchnorm", [p, b.const(f32(4)), b.const(f32(4)), b.const(f32(4)),
                                    b.const(np.abs(f32(4)) + 0.1)], epsilon=1e-3)
    flat = b.op("reshape", [b.op("reshape", [standalone], shape=[1, 4, 4])], shape=[1, 16])
    lin = b.op("linear", [flat, b.const(f32(5, 16))])
    out = b.op("clip", [b.op("add", [b.const(f32(5)), lin])], min=-0.5, max=0.5)
    g.outputs = [out, b.op("global_avgpool", [y])]
    return g


def int8_cnn(seed: int) -> Graph:
    """int8 conv (per-channel weights) -> requantize -> add -> conv: layout-nhwc must be exact."""
    rng = np.random.default_rng(seed)
    g = Graph(f"int8_{seed}")
    q_in = Quant.per_tensor(0.05, 3)
    x = g.add_input(TensorType((1, 4, 6, 6), "i8", q_in), "x")
    b = Builder(g)

    def conv(v, cout, out_q, name):
        cin = v.type.shape[1]
        w = rng.integers(-127, 128, size=(cout, cin, 3, 3)).astype(np.int8)
        w_q = Quant(tuple(rng.uniform(0.005, 0.02, cout)), (0,) * cout, 0)
        mult_shift = [quantize_multiplier(v.type.quant.s * s / out_q.s) for s in w_q.scale]
        return b.op("conv2d", [v, b.const(w, quant=w_q), b.const(rng.integers(-500, 500, cout).astype(np.int32))],
                    pads=[1, 1, 1, 1], input_zp=v.type.quant.zp, output_zp=out_q.zp,
                    multiplier=[m for m, _ in mult_shift], shift=[s for _, s in mult_shift],
                    act_min=out_q.zp, act_max=127, name_hint=name,
                    result_type=TensorType((1, cout, 6, 6), "i8", out_q))

    q1, q2 = Quant.per_tensor(0.1, -5), Quant.per_tensor(0.2, 0)
    c1 = conv(x, 8, q1, "conv1")
    m, s = quantize_multiplier(q1.s / q2.s)
    r = b.op("requantize", [c1], input_zp=q1.zp, output_zp=q2.zp, multiplier=m, shift=s,
             act_min=-128, act_max=127, result_type=TensorType((1, 8, 6, 6), "i8", q2))
    c2 = conv(r, 8, q2, "conv2")
    add = b.op("add", [r, c2], a_zp=0, b_zp=0, output_zp=0, a_multiplier=1 << 19,
               b_multiplier=1 << 19, shift=20, act_min=-128, act_max=127,
               result_type=TensorType((1, 8, 6, 6), "i8", q2))
    g.outputs = [b.op("maxpool2d", [add], kernel=[2, 2], strides=[2, 2])]
    return g


def random_inputs(g: Graph, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for v in g.inputs:
        if v.type.dtype == "f32":
            arrays.append(rng.standard_normal(v.type.shape).astype(np.float32))
        else:
            arrays.append(rng.integers(-128, 128, v.type.shape).astype(np.int8))
    return arrays


def check_pass(g: Graph, pipeline: str, seeds=(0, 1)) -> PassManager:
    inputs = [random_inputs(g, s) for s in seeds]
    expected = [run(g, xs) for xs in inputs]
    manager = PassManager(pipeline, roundtrip_each=True)
    manager.run(g)
    for xs, want in zip(inputs, expected):
        for got, ref in zip(run(g, xs), want):
            if ref.dtype.kind == "f":
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
            else:
                np.testing.assert_array_equal(got, ref)
    snapshot = g.clone()
    again = PassManager(pipeline, roundtrip_each=True)
    again.run(g)
    assert not any(again.changed), f"{pipeline} is not idempotent: {again.changed}"
    assert structural_diff(snapshot, g) is None
    return manager


@pytest.mark.parametrize("name", STRUCTURAL)
@pytest.mark.parametrize("seed", [0, 1])
def test_each_pass_preserves_float_semantics(name, seed):
    manager = check_pass(float_cnn(seed), name)
    assert manager.changed == [True]


def test_float_pipeline_result():
    g = float_cnn(2)
    check_pass(g, ",".join(STRUCTURAL) + ",canonicalize")
    kinds = [op.name for op in g.ops]
    assert "batchnorm" not in kinds and "relu" not in kinds
    assert all(op.attr("layout") == "nhwc" for op in g.ops if op.name in ("conv2d", "maxpool2d"))
    # only boundary transposes remain: the input, and the flatten / global-pool outputs
    assert kinds.count("transpose") <= 3


@pytest.mark.parametrize("name", ["canonicalize", "layout-nhwc", "fuse-activation"])
def test_int8_graph_is_bit_exact(name):
    g = int8_cnn(0)
    manager = check_pass(g, name)
    if name == "layout-nhwc":
        assert manager.changed == [True]
        assert [op.name for op in g.ops].count("transpose") == 2  # in and out only
        [w] = [v for v in g.values() if v.producer is not None and v.producer.name == "const"
               and v.type.quant is not None and v.type.quant.axis is not None][:1]
        assert w.type.shape[1:3] == (3, 3) and w.type.quant.axis == 0  # OHWI, axis O
    if name == "fuse-activation":
        assert manager.changed == [False]  # integer graphs are the quantizer's business


@pytest.mark.parametrize("model", ["dscnn", "resnet8", "mbv2", "hybrid"])
def test_models_float_pipeline(model):
    import frontends

    g = frontends.import_onnx(str(MODELS / model / "ts17.onnx"))
    check_pass(g, "canonicalize,fold-batchnorm,fuse-activation,layout-nhwc,canonicalize", seeds=(0,))
    kinds = [op.name for op in g.ops]
    assert "relu" not in kinds and "batchnorm" not in kinds
    convs = [op for op in g.ops if op.name == "conv2d"]
    assert convs and all(op.attr("layout") == "nhwc" for op in convs)
    # transposes between consecutive convs cancel: no conv feeds a transpose feeding a conv
    for op in g.ops:
        if op.name == "transpose" and op.operands[0].producer is not None:
            assert not (op.operands[0].producer.name == "conv2d"
                        and any(u.name == "conv2d" for u in op.result.users))
