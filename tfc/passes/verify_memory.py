"""verify-memory: prove a recorded memory plan safe, or name the two buffers that collide.

Why: the generated C trusts `arena_offset`/`scratch_offset` blindly; a wrong offset silently
corrupts activations. This checker reads only the recorded plan and the graph, recomputes every
lifetime itself, and proves:
- every non-constant op has one offset per result; graph outputs are external (-1), other results
  lie in the arena at an `alignment`-aligned offset, views (reshape) share their operand's offset;
- no two buffers alive at the same step share a byte. The only sharing allowed is in-place
  execution: an op in memory_plan.IN_PLACE_OPS whose result sits exactly on an operand of the same
  byte size whose storage is last read by that op;
- kernel scratch (`scratch_bytes`) has an aligned `scratch_offset` and is live at its op's step;
- with `arena-bytes`, every buffer lies inside an arena of that many bytes.

It changes nothing; use it as `tfc opt -p memory-plan,verify-memory`. Tests run it on every plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfc.errors import VerifyError
from tfc.ir.core import Graph, Op, Value
from tfc.passes.memory_plan import EXTERNAL, IN_PLACE_OPS, is_view, storage_root
from tfc.pipeline import Pass


@dataclass(eq=False)
class Segment:
    """Bytes [offset, offset + nbytes) in use over steps [start, end]."""

    label: str
    offset: int
    nbytes: int
    start: int
    end: int
    value: Value | None = None  # the stored value (a storage root), or None for scratch
    in_place_over: Value | None = None  # the operand root this result overwrites, if in place
    scratch_of: Op | None = None


def _at(op: Op | None) -> str:
    """`path:line:col: error: ` for ops parsed from IR text (so --verify-diagnostics can match)."""
    loc = op.loc if op is not None else None
    if loc and loc.count(":") >= 2 and loc.rsplit(":", 2)[1].isdigit():
        return f"{loc}: error: "
    return ""


def _recorded_offset(op: Op, index: int) -> int:
    offsets = op.attrs.get("arena_offset")
    if not isinstance(offsets, list) or len(offsets) != len(op.results):
        raise VerifyError(f"{_at(op)}{op.where()} has no memory plan (arena_offset with one entry per "
                          "result); run memory-plan after the last pass that changes the graph")
    return offsets[index]


def live_segments(graph: Graph, alignment: int = 16) -> list[Segment]:
    """Every arena buffer of the recorded plan with its bytes and lifetime (steps = graph.ops
    indices); VerifyError when an offset is missing or malformed. Overlaps are not checked here."""
    last_use: dict[int, int] = {}
    for step, op in enumerate(graph.ops):
        for v in op.operands:
            last_use[id(storage_root(v))] = step
    offset_of: dict[int, int] = {}
    segments: list[Segment] = []
    for step, op in enumerate(graph.ops):
        if op.name == "const":
            if "arena_offset" in op.attrs:
                raise VerifyError(f"{_at(op)}{op.where()} is a constant (flash) but has an arena_offset; "
                                  "re-run memory-plan")
            continue
        for i, r in enumerate(op.results):
            off = _recorded_offset(op, i)
            if is_view(op):
                root = storage_root(r)
                want = offset_of.get(id(root), EXTERNAL)
                if off != want:
                    raise VerifyError(f"{_at(op)}{op.where()} is a view of %{root.name} but its arena_offset "
                                      f"{off} differs from {want}; re-run memory-plan")
                continue
            if graph.is_output(r):
                if off != EXTERNAL:
                    raise VerifyError(f"{_at(op)}{op.where()} produces graph output %{r.name}, which the "
                                      f"caller's buffer holds, but its arena_offset is {off}, not -1")
                continue
            if off < 0 or off % alignment:
                raise VerifyError(f"{_at(op)}{op.where()}: arena_offset {off} of %{r.name} is not a "
                                  f"non-negative multiple of {alignment}")
            offset_of[id(r)] = off
            segments.append(Segment(f"%{r.name}", off, r.type.nbytes, step,
                                     max(step, last_use.get(id(r), step)), r,
                                     _in_place_operand(op, r, off, offset_of, last_use, step)))
        scratch = op.attrs.get("scratch_bytes", 0)
        if scratch and not is_view(op):  # a view runs no kernel
            off = op.attrs.get("scratch_offset")
            if not isinstance(off, int) or off < 0 or off % alignment:
                raise VerifyError(f"{_at(op)}{op.where()} needs {scratch} scratch bytes but its scratch_offset "
                                  f"is {off}; run memory-plan")
            segments.append(Segment(f"scratch of %{op.results[0].name}", off, scratch, step, step,
                                     scratch_of=op))
    return segments


def _in_place_operand(op: Op, r: Value, off: int, offset_of: dict[int, int],
                      last_use: dict[int, int], step: int) -> Value | None:
    """The operand root `r` legally overwrites (same bytes, dies here), else None."""
    if op.name not in IN_PLACE_OPS or len(op.results) != 1:
        return None
    for v in op.operands:
        root = storage_root(v)
        if (offset_of.get(id(root)) == off and v.type.nbytes == r.type.nbytes
                and v.type.shape == r.type.shape and last_use.get(id(root)) == step):
            return root
    return None


def _in_place_pair(a: Segment, b: Segment) -> bool:
    first, second = (a, b) if a.start <= b.start else (b, a)
    return (second.in_place_over is not None and second.in_place_over is first.value
            and first.end == second.start)


def _producer(s: Segment) -> Op | None:
    return s.scratch_of if s.scratch_of is not None else s.value.producer


def check_memory_plan(graph: Graph, alignment: int = 16, arena_bytes: int = 0) -> None:
    """Raises VerifyError naming the first unsafe buffer of the recorded plan; else returns."""
    segments = sorted(live_segments(graph, alignment), key=lambda s: (s.start, s.offset))
    for s in segments:
        if arena_bytes and s.offset + s.nbytes > arena_bytes:
            raise VerifyError(f"{_at(_producer(s))}{s.label} [{s.offset}, {s.offset + s.nbytes}) lies outside the "
                              f"{arena_bytes}-byte arena; re-run memory-plan or enlarge the arena")
    active: list[Segment] = []
    for s in segments:
        active = [a for a in active if a.end >= s.start]
        for a in active:
            if (a.offset < s.offset + s.nbytes and s.offset < a.offset + a.nbytes
                    and a.nbytes and s.nbytes and not _in_place_pair(a, s)):
                step = max(a.start, s.start)
                raise VerifyError(
                    f"{_at(_producer(s))}{s.label} [{s.offset}, {s.offset + s.nbytes}) overlaps {a.label} "
                    f"[{a.offset}, {a.offset + a.nbytes}) while both are live at step {step} "
                    f"('{graph.ops[step].name}' op %{graph.ops[step].results[0].name}); "
                    "re-run memory-plan")
        active.append(s)


@dataclass
class VerifyMemoryPass(Pass):
    """Proves the recorded memory plan safe (no live overlap, aligned, inside the arena)."""

    name = "verify-memory"
    alignment: int = 16
    arena_bytes: int = 0  # 0: no size limit beyond the plan itself

    def run(self, graph: Graph) -> bool:
        check_memory_plan(graph, self.alignment, self.arena_bytes)
        return False
