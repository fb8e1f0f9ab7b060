"""memory-plan: give every activation and kernel scratch buffer a byte offset in one static arena.

Why: the generated C has no malloc, and SRAM decides which models fit. Every op result that lives
in RAM gets a fixed place in a single arena, chosen at compile time so that two buffers alive at
the same step never share a byte, and so that the arena comes close to the lower bound: the most
bytes that must be live together at any one step. The plan is recorded on each op as
`arena_offset = [offset per result]` (and `scratch_offset` for kernel scratch), so it prints,
reloads and can be checked by `verify-memory`.

Buffers and lifetimes (the emitter and the checker rely on these rules):
- A value is live from the op that produces it to its last consumer, both ends included, so an
  op's inputs and outputs never overlap unless the op runs in place (below).
- Graph inputs are read from the caller's input pointers and graph outputs are written straight
  into the caller's output pointers: both are external (`-1`).
- A `reshape` (Reshape, Flatten, Squeeze, Unsqueeze) whose result is not a graph output is a view:
  it shares its operand's bytes and extends that buffer's lifetime to its own uses.
- In place: an op in `IN_PLACE_OPS` whose result has the same shape and byte size as an operand
  whose buffer dies at this op writes its result over that operand (same offset). The kernels of
  these ops read element i before they write element i, so this is safe. The buffer lives on.
- Kernel scratch: an op with a `scratch_bytes = n` attribute (written by the backend's
  `m7-kernel-scratch` pass, or by hand in the IR) gets n bytes live at its own step only,
  recorded as `scratch_offset`. Scratch of different layers shares the same bytes.
- Constants live in flash and get no offset.

Placement tries several strategies and keeps the smallest arena (ties: the first):
- head-tail (paper III-D): buffers in order of their first step; each goes to the end of the arena
  opposite to the buffer its producer reads, aiming at an arena of exactly the lower bound. On a
  chain this alternates head and tail and the arena is max over layers of in + out + scratch.
  Values that stay alive across a residual or attention branch keep their place and the branch
  packs around them.
- greedy by size (largest first) and greedy by conflict (most bytes live alongside first),
  lowest-fit: the classic liveness packers, better on some wide DAGs.
Offsets and sizes are rounded up to `alignment` bytes (default 16: SIMD kernels load words).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tfc.ir.core import Graph, Op, Value
from tfc.pipeline import Pass

EXTERNAL = -1

# Ops whose result may overwrite an operand of the same shape and byte size: elementwise maps, and
# row-wise normalizations that finish reading a row element before writing it.
IN_PLACE_OPS = frozenset({"relu", "clip", "requantize", "add", "sub", "mul", "layernorm", "softmax"})



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


def align_down(n: int, alignment: int) -> int:
    return (n // alignment) * alignment


@dataclass(eq=False)
class Buffer:
    """One arena allocation live over steps [start, end] (step = index in graph.ops).

    A value buffer holds its root value, the views of it and the results computed in place over
    it (`members`, in order); a scratch buffer belongs to one op (`scratch_of`).
    """

    nbytes: int
    start: int
    end: int
    members: list[Value] = field(default_factory=list)
    scratch_of: Op | None = None
    source: "Buffer | None" = None  # the buffer its producer reads (head-tail puts it opposite)
    offset: int = EXTERNAL

    @property
    def value(self) -> Value | None:
        return self.members[0] if self.members else None

    @property
    def label(self) -> str:
        if self.scratch_of is not None:
            return f"scratch of %{self.scratch_of.results[0].name}"
        return "%" + self.members[0].name

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.start <= other.end and other.start <= self.end


def _last_uses(graph: Graph) -> dict[int, int]:
    """id(storage root) -> the last step that reads it (through any view)."""
    last: dict[int, int] = {}
    for step, op in enumerate(graph.ops):
        for v in op.operands:
            last[id(storage_root(v))] = step
    return last


def _in_place_host(op: Op, step: int, buffer_of: dict[int, Buffer], last_use: dict[int, int]
                   ) -> Buffer | None:
    """The operand buffer `op`'s result may overwrite, if any (see IN_PLACE_OPS)."""
    if op.name not in IN_PLACE_OPS or len(op.results) != 1:
        return None
    result = op.results[0]
    for v in op.operands:
        root = storage_root(v)
        host = buffer_of.get(id(root))
        if (host is not None and host.scratch_of is None and v.type.shape == result.type.shape
                and v.type.nbytes == result.type.nbytes and last_use.get(id(root)) == step):
            return host
    return None


def arena_buffers(graph: Graph, in_place: bool = True) -> list[Buffer]:
    """The buffers that need arena memory, with their lifetimes, in order of first step.

    Scratch comes from each op's `scratch_bytes` attribute.
    """
    last_use = _last_uses(graph)
    buffer_of: dict[int, Buffer] = {}  # id(value) -> its buffer, for roots and in-place results
    buffers: list[Buffer] = []
    for step, op in enumerate(graph.ops):
        sources = []
        for v in op.operands:
            buf = buffer_of.get(id(storage_root(v)))
            if buf is not None:
                buf.end = max(buf.end, step)
                sources.append(buf)
        if op.name == "const" or is_view(op):
            continue
        main_source = max(sources, key=lambda b: b.nbytes, default=None)
        for r in op.results:
            if graph.is_output(r):
                continue
            host = _in_place_host(op, step, buffer_of, last_use) if in_place else None
            if host is not None:
                host.members.append(r)
                buffer_of[id(r)] = host
                continue
            buf = Buffer(r.type.nbytes, step, step, [r], source=main_source)
            buffer_of[id(r)] = buf
            buffers.append(buf)
        scratch = int(op.attrs.get("scratch_bytes", 0))
        if scratch > 0:
            outputs = [buffer_of[id(r)] for r in op.results if id(r) in buffer_of]
            buffers.append(Buffer(scratch, step, step, scratch_of=op,
                                  source=outputs[0] if outputs else main_source))
    return buffers


def live_bytes_lower_bound(buffers: list[Buffer], alignment: int = 1) -> int:
    """max over steps of the bytes live at that step: no plan can use a smaller arena.

    With `alignment`, each buffer counts as its size rounded up to it (offsets are aligned, so a
    buffer below another always costs its rounded size).
    """
    if not buffers:
        return 0
    events: dict[int, int] = {}
    for b in buffers:
        size = align_up(b.nbytes, alignment)
        events[b.start] = events.get(b.start, 0) + size
        events[b.end + 1] = events.get(b.end + 1, 0) - size
    live = peak = 0
    for step in sorted(events):
        live += events[step]
        peak = max(peak, live)
    return peak


# -- placement -------------------------------------------------------------------------------------

def _busy(buf: Buffer, placed: list[Buffer], offsets: dict[int, int], alignment: int
          ) -> list[tuple[int, int]]:
    """[begin, end) byte ranges taken by placed buffers alive together with `buf`, sorted."""
    return sorted((offsets[id(p)], offsets[id(p)] + align_up(p.nbytes, alignment))
                  for p in placed if p.overlaps_in_time(buf))


def _lowest_fit(size: int, busy: list[tuple[int, int]]) -> int:
    offset = 0
    for begin, end in busy:
        if offset + size <= begin:
            break
        offset = max(offset, end)
    return offset


def _highest_fit(size: int, busy: list[tuple[int, int]], limit: int, alignment: int) -> int | None:
    """The highest aligned offset where `size` bytes fit below `limit`, or None."""
    top = limit
    for begin, end in sorted(busy, key=lambda r: -r[1]):
        if end <= top - size:
            break
        top = min(top, begin)
    offset = align_down(top - size, alignment)
    if offset < 0:
        return None
    return offset if all(offset + size <= b or e <= offset for b, e in busy) else None


def place_head_tail(buffers: list[Buffer], alignment: int, target: int) -> dict[int, int]:
    """Head-tail alternation aiming at an arena of `target` bytes (may exceed it when it must)."""
    order = sorted(range(len(buffers)), key=lambda i: (buffers[i].start, buffers[i].scratch_of is not None,
                                                      -buffers[i].nbytes, i))
    offsets: dict[int, int] = {}
    placed: list[Buffer] = []
    for i in order:
        buf = buffers[i]
        size = align_up(buf.nbytes, alignment)
        busy = _busy(buf, placed, offsets, alignment)
        anchor = buf.source if buf.source is not None and id(buf.source) in offsets else None
        at_head = anchor is not None and _sits_at_head(offsets[id(anchor)], anchor.nbytes, target)
        offset = _highest_fit(size, busy, target, alignment) if at_head else None
        if offset is None:
            offset = _lowest_fit(size, busy)
        offsets[id(buf)] = offset
        placed.append(buf)
    return offsets


def _sits_at_head(offset: int, nbytes: int, target: int) -> bool:
    return offset <= target - (offset + nbytes)


def place_greedy(buffers: list[Buffer], alignment: int, key) -> dict[int, int]:
    """Lowest-fit placement in the order given by `key(index)` (smallest key first)."""
    offsets: dict[int, int] = {}
    placed: list[Buffer] = []
    for i in sorted(range(len(buffers)), key=key):
        buf = buffers[i]
        offsets[id(buf)] = _lowest_fit(align_up(buf.nbytes, alignment),
                                       _busy(buf, placed, offsets, alignment))
        placed.append(buf)
    return offsets


def _arena_of(buffers: list[Buffer], offsets: dict[int, int], alignment: int) -> int:
    return max((offsets[id(b)] + align_up(b.nbytes, alignment) for b in buffers), default=0)


def plan_buffers(buffers: list[Buffer], alignment: int = 16) -> int:
    """Sets every buffer's offset with the best strategy; returns the arena size (aligned)."""
    bound = live_bytes_lower_bound(buffers, alignment)
    conflict = [sum(align_up(o.nbytes, alignment) for o in buffers if o.overlaps_in_time(b))
                for b in buffers]
    candidates = [place_head_tail(buffers, alignment, bound)]
    first_try = _arena_of(buffers, candidates[0], alignment)
    if first_try > bound:  # aim the tail at the arena the first try needed, and in between
        for target in sorted({align_up((bound + first_try) // 2, alignment), first_try}):
            candidates.append(place_head_tail(buffers, alignment, target))
        candidates.append(place_greedy(buffers, alignment,
                                       lambda i: (-buffers[i].nbytes, buffers[i].start, i)))
        candidates.append(place_greedy(buffers, alignment, lambda i: (-conflict[i], -buffers[i].nbytes, i)))
    best = min(candidates, key=lambda offs: _arena_of(buffers, offs, alignment))
    for b in buffers:
        b.offset = best[id(b)]
    return _arena_of(buffers, best, alignment)


# Kept for callers of the first planner: first-fit, largest first.
def place_first_fit(buffers: list[Buffer], alignment: int = 16) -> int:
    offsets = place_greedy(buffers, alignment, lambda i: (-buffers[i].nbytes, buffers[i].start, i))
    for b in buffers:
        b.offset = offsets[id(b)]
    return _arena_of(buffers, offsets, alignment)


# -- reading a recorded plan ------------------------------------------------------------------------

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
    """The bytes the recorded plan needs: the end of the highest buffer or scratch area."""
    ends = [off + r.type.nbytes for op in graph.ops if "arena_offset" in op.attrs
            for r, off in zip(op.results, op.attrs["arena_offset"]) if off >= 0]
    ends += [op.attrs["scratch_offset"] + op.attrs.get("scratch_bytes", 0) for op in graph.ops
             if "scratch_offset" in op.attrs]
    return max(ends, default=0)


def lower_bound_bytes(graph: Graph, alignment: int = 16) -> int:
    """`arena_lower_bound_bytes`: max over steps of the (aligned) bytes that must be live."""
    return live_bytes_lower_bound(arena_buffers(graph), alignment)


@dataclass
class MemoryPlanPass(Pass):
    """Assigns `arena_offset` (and `scratch_offset`) to every non-constant op: a head-tail arena."""

    name = "memory-plan"
    alignment: int = 16
    in_place: bool = True

    def run(self, graph: Graph) -> bool:
        changed = False
        buffers = arena_buffers(graph, self.in_place)
        plan_buffers(buffers, self.alignment)
        offset_of = {id(m): b.offset for b in buffers for m in b.members}
        scratch_offset = {id(b.scratch_of): b.offset for b in buffers if b.scratch_of is not None}
        for op in graph.ops:
            if op.name == "const":
                continue
            offsets = [offset_of.get(id(storage_root(r)), EXTERNAL) for r in op.results]
            changed |= _set_attr(op, "arena_offset", offsets)
            changed |= _set_attr(op, "scratch_offset", scratch_offset.get(id(op)))
        return changed


def _set_attr(op: Op, key: str, value) -> bool:
    """Sets (or, for None, removes) an attribute; True when that changed it."""
    if value is None:
        return op.attrs.pop(key, None) is not None
    if op.attrs.get(key) == value:
        return False
    op.attrs[key] = value
    return True
