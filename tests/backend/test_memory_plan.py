"""memory-plan: hand-made cases for views, ping-pong reuse and the graph I/O rules, checked with
an independent liveness computation."""

from __future__ import annotations

from tfc.ir.core import Builder, Graph
from tfc.ir.types import TensorType
from tfc.passes.memory_plan import MemoryPlanPass, arena_buffers, arena_size, live_bytes_lower_bound

ALIGN = 16


def independent_liveness(graph: Graph) -> dict[int, tuple[int, int]]:
    """id(root value) -> (first, last step), computed without the pass's helpers: a reshape that
    is not a graph output shares its operand's memory."""
    root: dict[int, int] = {}
    live: dict[int, list[int]] = {}
    for step, op in enumerate(graph.ops):
        for v in op.operands:
            r = root.get(id(v))
            if r is not None:
                live[r][1] = max(live[r][1], step)
        if op.name == "const":
            continue
        if op.name == "reshape" and not graph.is_output(op.result):
            if id(op.operands[0]) in root:
                root[id(op.result)] = root[id(op.operands[0])]
            continue
        for res in op.results:
            if not graph.is_output(res):
                root[id(res)] = id(res)
                live[id(res)] = [step, step]
    return {k: tuple(v) for k, v in live.items()}


def check_plan(graph: Graph) -> None:
    """The memory-plan checker: every assertion is an invariant the emitted C relies on."""
    live = independent_liveness(graph)
    placed = {}
    for op in graph.ops:
        if op.name == "const":
            assert "arena_offset" not in op.attrs
            continue
        offsets = op.attrs["arena_offset"]
        assert len(offsets) == len(op.results)
        for res, off in zip(op.results, offsets):
            if graph.is_output(res):
                assert off == -1, f"output %{res.name} must be external"
            elif id(res) in live:
                assert off >= 0 and off % ALIGN == 0
                placed[id(res)] = (off, res.type.nbytes, *live[id(res)])
    items = list(placed.values())
    for i, (o1, n1, s1, e1) in enumerate(items):
        for o2, n2, s2, e2 in items[i + 1:]:
            if s1 <= e2 and s2 <= e1 and n1 and n2:
                assert o1 + n1 <= o2 or o2 + n2 <= o1, "two live buffers overlap"


# Random DAGs (safety, the lower bound, idempotence, with and without in-place execution) are
# property-tested in tests/unit/test_memory_plan_props.py; these are the hand-made cases.


def test_chain_reuses_memory_and_views_alias():
    g = Graph("chain")
    x = g.add_input(TensorType((1, 64), "f32"), "x")
    b = Builder(g)
    a = b.op("relu", [x], name_hint="a")
    r = b.op("reshape", [a], shape=[64], name_hint="r")
    c = b.op("relu", [r], name_hint="c")
    d = b.op("relu", [c], name_hint="d")
    e = b.op("relu", [d], name_hint="e")
    g.outputs = [e]
    MemoryPlanPass(in_place=False).run(g)
    check_plan(g)
    offs = {op.results[0].name: op.attrs["arena_offset"][0] for op in g.ops}
    assert offs["r"] == offs["a"]  # the view shares its operand's buffer
    assert offs["e"] == -1  # written straight to the caller's output
    assert offs["c"] != offs["a"] and offs["d"] == offs["a"]  # a ping-pongs with c
    assert arena_size(g) == 2 * 256 == live_bytes_lower_bound(arena_buffers(g, in_place=False))


def test_output_reshape_is_a_copy_and_output_read_later_stays_external():
    g = Graph("io")
    x = g.add_input(TensorType((1, 8), "f32"), "x")
    b = Builder(g)
    a = b.op("relu", [x], name_hint="a")
    r = b.op("reshape", [a], shape=[8], name_hint="r")
    c = b.op("relu", [a], name_hint="c")
    g.outputs = [r, a, c]
    MemoryPlanPass(in_place=False).run(g)
    check_plan(g)
    assert all(op.attrs["arena_offset"] == [-1] for op in g.ops)
    assert arena_size(g) == 0
