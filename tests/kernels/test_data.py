"""Data movement kernels (transpose up to rank 6, reshape, concat, slice with any steps, split)
for int8, int32 and float32 tensors: results must equal the interpreter's exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kernel_harness import Case, one_op_graph
from tfc.ir.types import TensorType

DTYPES = {"i8": np.int8, "i32": np.int32, "f32": np.float32}


def _data(rng, shape, dtype: str) -> np.ndarray:
    return rng.integers(-1000, 1000, size=shape).astype(DTYPES[dtype]) if dtype != "i8" else \
        rng.integers(-128, 128, size=shape).astype(np.int8)


@pytest.mark.parametrize("dtype", ["i8", "i32", "f32"])
def test_transpose(kernels_host, dtype):
    rng = np.random.default_rng(41)
    shapes = [(3, 4), (2, 3, 4), (1, 2, 3, 4), (2, 1, 3, 2, 2), (2, 3, 1, 2, 2, 3)]
    # NCHW -> NHWC of a few channels (a merged rank-2 gather walked by column), and its inverse
    layouts = [((1, 3, 5, 7), (0, 2, 3, 1)), ((1, 5, 7, 3), (0, 3, 1, 2)), ((2, 3, 4, 5), (0, 2, 3, 1))]
    cases = []
    for shape, perm in layouts:
        g = one_op_graph(f"layout_{'x'.join(map(str, shape))}_{'_'.join(map(str, perm))}",
                         [TensorType(shape, dtype)],
                         lambda b, x, perm=perm: b.op("transpose", [x], perm=list(perm)))
        cases.append(Case(g, [_data(rng, shape, dtype)]))
    for shape in shapes:
        perms = list(itertools.permutations(range(len(shape))))
        for k in rng.choice(len(perms), size=min(3, len(perms)), replace=False):
            perm = list(perms[int(k)])
            g = one_op_graph(f"transpose_{'_'.join(map(str, perm))}", [TensorType(shape, dtype)],
                             lambda b, x, perm=perm: b.op("transpose", [x], perm=perm))
            cases.append(Case(g, [_data(rng, shape, dtype)]))
    kernels_host.check(cases, rtol=0, atol=0)


def test_reshape_concat_split(kernels_host):
    rng = np.random.default_rng(42)
    cases = []
    for dtype in ("i8", "f32"):
        g = one_op_graph(f"reshape_{dtype}", [TensorType((2, 3, 4), dtype)],
                         lambda b, x: b.op("reshape", [x], shape=[4, 6]))
        cases.append(Case(g, [_data(rng, (2, 3, 4), dtype)]))
        for axis in (0, 1, 2, -1):
            shapes = [[2, 3, 4] for _ in range(3)]
            for i, s in enumerate(shapes):
                s[axis] = i + 1
            const = _data(rng, shapes[2], dtype)

            def concat(b, x, y, axis=axis, const=const):
                return b.op("concat", [x, y, b.const(const, "c")], axis=axis)

            g = one_op_graph(f"concat{axis}_{dtype}", [TensorType(s, dtype) for s in shapes[:2]], concat)
            cases.append(Case(g, [_data(rng, s, dtype) for s in shapes[:2]]))
            sizes = [1, 2, 3] if axis in (1, 2, -1) else [2, 1, 3]
            shape = [2, 6, 6] if axis != 0 else [6, 2, 3]
            g = one_op_graph(f"split{axis}_{dtype}", [TensorType(shape, dtype)],
                             lambda b, x, axis=axis, sizes=sizes: b.create(
                                 "split", [x], {"axis": axis, "sizes": sizes}, names="part").results)
            cases.append(Case(g, [_data(rng, shape, dtype)]))
    kernels_host.check(cases, rtol=0, atol=0)


SLICES = [
    dict(starts=[1], ends=[3], axes=[0]),
    dict(starts=[0, 1], ends=[100, -1], axes=[1, 2]),
    dict(starts=[-1], ends=[-100], axes=[2], steps=[-1]),          # full reverse
    dict(starts=[4, 0], ends=[0, 5], axes=[1, 2], steps=[-2, 2]),
    dict(starts=[0, 1, 2], ends=[2, 4, 5], axes=[0, 1, 2], steps=[1, 2, 3]),
    dict(starts=[2], ends=[2], axes=[1]),                           # empty
    dict(starts=[-2, 3], ends=[-5, 100], axes=[-1, 1], steps=[-1, 1]),
]


@pytest.mark.parametrize("dtype", ["i8", "f32"])
def test_slice(kernels_host, dtype):
    rng = np.random.default_rng(43)
    shape = (3, 5, 6)
    cases = []
    for i, attrs in enumerate(SLICES):
        g = one_op_graph(f"slice{i}", [TensorType(shape, dtype)],
                         lambda b, x, a=attrs: b.op("slice", [x], **a))
        cases.append(Case(g, [_data(rng, shape, dtype)]))
    kernels_host.check(cases, rtol=0, atol=0)
