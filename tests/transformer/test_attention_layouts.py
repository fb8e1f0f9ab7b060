"""fold-transpose-matmul and fold-matmul-requantize keep the interpreter's results: the matmul
layouts (a_perm, b_perm, y_perm) compute exactly what the transposes did, and a label-only
requantize folds away bit-exactly. Also: the layouts survive print/parse, and bad ones are
rejected by the verifier."""

from __future__ import annotations

import numpy as np
import pytest

from tfc.errors import VerifyError
from tfc.ir import interp, parse, print_graph
from tfc.ir.core import Builder, Graph
from tfc.ir.ops import verify_graph
from tfc.ir.types import Quant, TensorType
from tfc.pipeline import PassManager

TOKENS, HEADS, D = 6, 2, 4


def _attention(dtype: str) -> Graph:
    g = Graph("attention")
    b = Builder(g)

    def t(shape, zp=0, scale=0.05):
        return TensorType(shape, dtype, Quant.per_tensor(scale, zp) if dtype == "i8" else None)

    q, k, v = (g.add_input(t((1, TOKENS, HEADS * D), zp), n) for n, zp in (("q", 3), ("k", -2), ("v", 1)))
    split = [b.op("transpose", [b.op("reshape", [x], shape=[1, TOKENS, HEADS, D])], perm=perm)
             for x, perm in ((q, [0, 2, 1, 3]), (k, [0, 2, 3, 1]), (v, [0, 2, 1, 3]))]
    i8 = dtype == "i8"
    scores = b.op("matmul", split[:2], **(dict(a_zp=3, b_zp=-2, output_zp=-5, multiplier=1287641027,
                                               shift=-8, act_min=-128, act_max=127) if i8 else {}))
    if i8:  # the 1/sqrt(d) Div as quantize leaves it: an integer identity that relabels the scale
        scores = b.op("requantize", [scores], input_zp=-5, output_zp=-5, multiplier=1 << 30, shift=1,
                      act_min=-128, act_max=127)
    out = b.op("matmul", [scores, split[2]], **(dict(a_zp=-5, b_zp=1, output_zp=2, multiplier=1238155128,
                                                     shift=-9, act_min=-128, act_max=127) if i8 else {}))
    merged = b.op("transpose", [out], perm=[0, 2, 1, 3])
    g.outputs = [b.op("reshape", [merged], shape=[1, TOKENS, HEADS * D])]
    verify_graph(g)
    return g


def _inputs(dtype: str, rng) -> list[np.ndarray]:
    shape = (1, TOKENS, HEADS * D)
    if dtype == "i8":
        return [rng.integers(-128, 128, size=shape).astype(np.int8) for _ in range(3)]
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]


@pytest.mark.parametrize("dtype", ["i8", "f32"])
def test_folds_keep_the_interpreter_results(dtype):
    rng = np.random.default_rng(0)
    g = _attention(dtype)
    inputs = _inputs(dtype, rng)
    before = interp.run(g, inputs)[0]
    PassManager("fold-matmul-requantize,fold-transpose-matmul").run(g)
    assert [op.name for op in g.ops].count("transpose") == 0
    assert "requantize" not in [op.name for op in g.ops]
    np.testing.assert_array_equal(interp.run(g, inputs)[0], before)
    again = parse(print_graph(g))
    np.testing.assert_array_equal(interp.run(again, inputs)[0], before)


def test_layout_attributes_are_verified():
    g = Graph("bad")
    a = g.add_input(TensorType((2, 3), "f32"), "a")
    c = g.add_input(TensorType((2, 4), "f32"), "c")
    with pytest.raises(VerifyError, match="a_perm"):
        Builder(g).op("matmul", [a, c], a_perm=[0, 0])
    with pytest.raises(VerifyError, match="contraction"):
        Builder(g).op("matmul", [a, c], b_perm=[1, 0])
    y = Builder(g).op("matmul", [a, c], a_perm=[1, 0], y_perm=[1, 0])
    assert y.type.shape == (4, 3)
