"""memory-plan + verify-memory: properties on random DAGs and chains, and the checker's teeth.

Every plan made here is proved safe by verify-memory's checker, which recomputes lifetimes from
the recorded offsets on its own (it shares only `is_view`/`storage_root` with the planner).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfc.errors import VerifyError
from tfc.ir.core import Builder, Graph
from tfc.ir.types import TensorType
from tfc.passes.memory_plan import (Buffer, MemoryPlanPass, align_up, arena_buffers, arena_size,
                                    live_bytes_lower_bound, lower_bound_bytes, plan_buffers)
from tfc.passes.verify_memory import VerifyMemoryPass, check_memory_plan

ALIGN = 16


def plan(graph: Graph, **options) -> None:
    MemoryPlanPass(**options).run(graph)
    check_memory_plan(graph, ALIGN)


def _linear(b: Builder, x, out_features: int):
    w = b.const(np.ones((out_features, x.type.shape[-1]), np.float32), "w")
    return b.op("linear", [x, w])


@st.composite
def random_dags(draw):
    """f32 DAGs mixing in-place ops (relu, add), views (reshape), size changes (linear),
    out-of-place movement (transpose), multi-result ops (split), concat, and kernel scratch."""
    g = Graph("dag")
    b = Builder(g)
    values = [g.add_input(TensorType((1, 4 * draw(st.integers(1, 8))), "f32"), f"in{i}")
              for i in range(draw(st.integers(1, 2)))]
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["relu", "reshape", "add", "linear", "transpose", "split",
                                     "concat", "const_add"]))
        x = draw(st.sampled_from(values))
        n = x.type.numel
        if kind == "relu":
            values.append(b.op("relu", [x]))
        elif kind == "reshape":
            values.append(b.op("reshape", [x], shape=[n] if x.type.rank == 2 else [1, n]))
        elif kind == "add":
            same = [v for v in values if v.type.shape == x.type.shape]
            values.append(b.op("add", [x, draw(st.sampled_from(same))]))
        elif kind == "const_add":
            values.append(b.op("add", [x, b.const(np.ones(x.type.shape, np.float32), "k")]))
        elif kind == "linear" and x.type.rank == 2 and x.type.shape[0] == 1:
            values.append(_linear(b, x, 4 * draw(st.integers(1, 8))))
        elif kind == "transpose" and x.type.rank == 2:
            values.append(b.op("transpose", [x], perm=[1, 0]))
        elif kind == "split" and x.type.rank == 2 and x.type.shape[1] % 2 == 0:
            half = x.type.shape[1] // 2
            op = b.create("split", [x], {"axis": 1, "sizes": [half, half]}, names="part")
            values.extend(op.results)
        elif kind == "concat" and x.type.rank == 2:
            rows = [v for v in values if v.type.rank == 2 and v.type.shape[0] == x.type.shape[0]]
            values.append(b.op("concat", [x, draw(st.sampled_from(rows))], axis=1))
        else:
            continue
        producer = values[-1].producer
        if producer is not None and draw(st.booleans()) and draw(st.booleans()):
            producer.attrs["scratch_bytes"] = draw(st.integers(1, 200))
    produced = [v for v in values if v.producer is not None]
    g.outputs = [draw(st.sampled_from(produced or values)) for _ in range(draw(st.integers(1, 3)))]
    return g


@settings(max_examples=80, deadline=None)
@given(random_dags(), st.booleans())
def test_plans_of_random_dags_are_safe_bounded_and_idempotent(graph, in_place):
    plan(graph, in_place=in_place)
    bound = live_bytes_lower_bound(arena_buffers(graph, in_place), ALIGN)
    assert align_up(arena_size(graph), ALIGN) >= bound
    assert MemoryPlanPass(in_place=in_place).run(graph) is False  # idempotent


@st.composite
def random_chains(draw):
    """Pure chains: each op reads only the previous value (sizes change, some ops run in place,
    some reshape, some need scratch)."""
    g = Graph("chain")
    b = Builder(g)
    x = g.add_input(TensorType((1, 4 * draw(st.integers(1, 16))), "f32"), "x")
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["linear", "linear", "relu", "reshape", "transpose"]))
        if kind == "linear":
            x = _linear(b, x if x.type.rank == 2 else b.op("reshape", [x], shape=[1, x.type.numel]),
                        4 * draw(st.integers(1, 16)))
        elif kind == "relu":
            x = b.op("relu", [x])
        elif kind == "reshape":
            x = b.op("reshape", [x], shape=[x.type.numel] if x.type.rank == 2 else [1, x.type.numel])
        elif x.type.rank == 2:
            x = b.op("transpose", [x], perm=[1, 0])
        if x.producer.name != "reshape" and draw(st.booleans()):
            x.producer.attrs["scratch_bytes"] = draw(st.integers(1, 300))
    g.outputs = [x]
    return g


@settings(max_examples=80, deadline=None)
@given(random_chains(), st.booleans())
def test_a_pure_chain_reaches_the_lower_bound_exactly(graph, in_place):
    plan(graph, in_place=in_place)
    assert align_up(arena_size(graph), ALIGN) == live_bytes_lower_bound(arena_buffers(graph, in_place),
                                                                       ALIGN)


@st.composite
def random_buffers(draw):
    """Abstract lifetimes, as the placement sees them: any intervals, any sizes."""
    count = draw(st.integers(1, 25))
    out = []
    for _ in range(count):
        start = draw(st.integers(0, 20))
        out.append(Buffer(draw(st.integers(1, 500)), start, start + draw(st.integers(0, 8))))
    return out


@settings(max_examples=150, deadline=None)
@given(random_buffers())
def test_placement_never_overlaps_live_buffers(buffers):
    arena = plan_buffers(buffers, ALIGN)
    assert arena >= live_bytes_lower_bound(buffers, ALIGN)
    for i, a in enumerate(buffers):
        assert a.offset % ALIGN == 0 and a.offset + a.nbytes <= arena
        for other in buffers[i + 1:]:
            if a.overlaps_in_time(other):
                assert a.offset + a.nbytes <= other.offset or other.offset + other.nbytes <= a.offset


def _residual_graph() -> Graph:
    """x -> a -> (b -> c) + a -> y: %a must stay put across the branch."""
    g = Graph("res")
    b = Builder(g)
    x = g.add_input(TensorType((1, 32), "f32"), "x")
    a = _linear(b, x, 32)
    h = b.op("relu", [_linear(b, a, 64)], name_hint="h")
    c = _linear(b, h, 32)
    g.outputs = [_linear(b, b.op("add", [a, c], name_hint="s"), 8)]
    return g


def test_residual_branch_packs_around_the_long_lived_value():
    g = _residual_graph()
    plan(g)
    def offset(v):
        return v.producer.attrs["arena_offset"][0]

    add = g.value("s").producer
    a, c = add.operands
    assert offset(add.result) in (offset(a), offset(c))  # in place: both operands die there
    h = g.value("h")
    assert offset(h) == offset(h.producer.operands[0])  # relu in place over its linear
    # peak: %a (kept for the add) + %h + the linear reading %h
    assert align_up(arena_size(g), ALIGN) == lower_bound_bytes(g) == 128 + 256 + 128


def test_in_place_lowers_the_bound_and_the_arena():
    with_in_place, without = _residual_graph(), _residual_graph()
    plan(with_in_place)
    plan(without, in_place=False)
    assert arena_size(with_in_place) < arena_size(without)
    assert lower_bound_bytes(with_in_place) < live_bytes_lower_bound(arena_buffers(without, False), ALIGN)


def test_scratch_is_planned_shared_and_reported_in_the_ir():
    g = Graph("scr")
    b = Builder(g)
    x = g.add_input(TensorType((1, 64), "f32"), "x")
    y = _linear(b, _linear(b, x, 64), 64)
    g.outputs = [_linear(b, y, 4)]
    for op in g.ops:
        if op.name == "linear":
            op.attrs["scratch_bytes"] = 100  # what a backend's scratch pass records
    MemoryPlanPass().run(g)
    check_memory_plan(g)
    linears = [op for op in g.ops if op.name == "linear"]
    assert all(op.attrs["scratch_bytes"] == 100 for op in linears)
    # the middle layer's input, output and scratch are live together: in + out + scratch
    assert align_up(arena_size(g), ALIGN) == 256 + 256 + 112 == lower_bound_bytes(g)
    # scratch is shared over time: the three layers' scratch costs the arena one scratch's bytes
    assert arena_size(g) < 256 + 256 + 3 * 112


def test_verify_memory_rejects_a_corrupted_plan():
    g = _residual_graph()
    plan(g)
    VerifyMemoryPass().run(g)
    h = g.value("h").producer
    a_offset = g.ops[g.ops.index(g.value("s").producer.operands[0].producer)].attrs["arena_offset"]
    h.attrs["arena_offset"] = list(a_offset)  # on top of %a, which the add still needs
    with pytest.raises(VerifyError, match=r"overlaps .* while both are live at step \d+"):
        VerifyMemoryPass().run(g)


def test_verify_memory_checks_the_arena_size():
    g = _residual_graph()
    plan(g)
    VerifyMemoryPass(arena_bytes=arena_size(g)).run(g)
    with pytest.raises(VerifyError, match="lies outside the 128-byte arena"):
        VerifyMemoryPass(arena_bytes=128).run(g)
