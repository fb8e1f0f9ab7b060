"""memory-plan: give every activation a byte offset in one static arena.

Why: the generated C has no malloc. Each op result that lives in RAM gets a fixed place in a single
arena, chosen at compile time so that two values that are alive at the same time never share a
byte. The plan is recorded on each op as `arena_offset = [offset per result]`, so it prints, reloads
and can be checked.

Rules (the emitter relies on them):
- A value is live from the op that produces it to its last consumer, both ends included, so an
  op's inputs and outputs never overlap (no kernel has to be in-place safe).
- Graph inputs are read from the caller's input pointers and graph outputs are written straight
  into the caller's output pointers: both are external (`-1`). A graph output that later ops read
  again is read back from the caller's buffer.
- A `reshape` whose result is not a graph output is a view: it gets its operand's offset (or -1
  when the operand is external or a constant) and extends that buffer's lifetime to its own uses.
  A reshape that produces a graph output is a copy into the caller's buffer.
- Constants live in flash and get no offset (const ops carry no attribute).
- Offsets are aligned to `alignment` bytes; placement is greedy first-fit, largest buffer first.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfc.ir.core import Graph, Op, Value
from tfc.pipeline import Pass

EXTERNAL = -1


def is_view(op: Op) -> bool:
    """True when the emitter passes this op's operand pointer on instead of running a kernel."""
    return op.name == "reshape" and op.graph is not None and not op.graph.is_output(op.result)


def storage_root(v: Value) -> Value:
    """The value whose memory `v` occupies (itself unless it is the result of a view)."""
    while v.producer is not None and is_view(v.producer):
        v = v.producer.operands[0]
    return v


def align_up(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


@dataclass
class Buffer:
    """One arena allocation: a root value and the views of it, live over steps [start, end]."""

    value: Value
    nbytes: int
    start: int
    end: int
    offset: int = EXTERNAL

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.start <= other.end and other.start <= self.end


def arena_buffers(graph: Graph) -> list[Buffer]:
    """The values that need arena memory, with their live ranges (step = index in graph.ops)."""
    buffers: dict[int, Buffer] = {}
    for step, op in enumerate(graph.ops):
        for v in op.operands:
            buf = buffers.get(id(storage_root(v)))
            if buf is not None:
                buf.end = max(buf.end, step)
        if op.name == "const" or is_view(op):
            continue
        for r in op.results:
            if not graph.is_output(r):
                buffers[id(r)] = Buffer(r, r.type.nbytes, step, step)
    return list(buffers.values())


def place_first_fit(buffers: list[Buffer], alignment: int = 16) -> int:
    """Sets each buffer's offset; returns the arena size (a multiple of `alignment`)."""
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].nbytes, buffers[i].start, i))
    placed: list[Buffer] = []
    arena = 0
    for i in order:
        buf = buffers[i]
        offset = 0
        for other in sorted((p for p in placed if p.overlaps_in_time(buf)), key=lambda p: p.offset):
            if offset + buf.nbytes <= other.offset:
                break
            offset = max(offset, align_up(other.offset + other.nbytes, alignment))
        buf.offset = offset
        placed.append(buf)
        arena = max(arena, align_up(offset + buf.nbytes, alignment))
    return arena


def live_bytes_lower_bound(buffers: list[Buffer]) -> int:
    """max over steps of the bytes live at that step: no plan can use a smaller arena."""
    if not buffers:
        return 0
    last = max(b.end for b in buffers)
    return max(sum(b.nbytes for b in buffers if b.start <= step <= b.end) for step in range(last + 1))


def planned_offsets(graph: Graph) -> dict[int, int]:
    """id(value) -> arena offset as recorded by the pass (-1 external); constants are absent."""
    out: dict[int, int] = {}
    for op in graph.ops:
        offsets = op.attrs.get("arena_offset")
        if offsets is None:
            continue
        for r, off in zip(op.results, offsets):
            out[id(r)] = off
    return out


def arena_size(graph: Graph) -> int:
    """The bytes the recorded plan needs: the end of the highest buffer."""
    ends = [off + r.type.nbytes for op in graph.ops if "arena_offset" in op.attrs
            for r, off in zip(op.results, op.attrs["arena_offset"]) if off >= 0]
    return max(ends, default=0)


@dataclass
class MemoryPlanPass(Pass):
    """Assigns `arena_offset` to every non-constant op (see the module docstring)."""

    name = "memory-plan"
    alignment: int = 16

    def run(self, graph: Graph) -> bool:
        buffers = arena_buffers(graph)
        place_first_fit(buffers, self.alignment)
        offset_of = {id(b.value): b.offset for b in buffers}
        changed = False
        for op in graph.ops:
            if op.name == "const":
                continue
            offsets = [offset_of.get(id(storage_root(r)), EXTERNAL) for r in op.results]
            if op.attrs.get("arena_offset") != offsets:
                op.attrs["arena_offset"] = offsets
                changed = True
        return changed
