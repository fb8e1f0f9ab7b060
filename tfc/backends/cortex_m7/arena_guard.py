"""Guarded-arena mode (`make host-guarded`): per step, what a kernel may touch and what must survive.

Why: a packed arena hides two bugs from AddressSanitizer: a kernel that reads or writes past its
own buffers lands in a neighbour's bytes (still "valid" memory), and a plan that lets two live
buffers overlap corrupts one silently. Built with `-DTFC_GUARDED_ARENA` (and ASan), model.c
includes model_guard.h, which before each step
- poisons the whole arena and unpoisons only the buffers this step reads and writes (operands,
  results, scratch), so ASan reports any other access, and
- hashes every other buffer that is live across the step, and checks after the step that none
  changed: an overlap in the plan aborts with the step and the byte range.
The tables come from the recorded plan via verify-memory's `live_segments`, not from the planner.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfc.ir.core import Graph, Op, Value
from tfc.passes.memory_plan import storage_root
from tfc.passes.verify_memory import Segment, live_segments

Region = tuple[int, int]  # (offset, bytes)


@dataclass(frozen=True)
class StepGuard:
    touch: tuple[Region, ...] = ()  # unpoisoned during the step
    keep: tuple[Region, ...] = ()  # live across the step: must not change


NO_GUARD = StepGuard()


class ArenaGuards:
    """Builds the StepGuard of each lowered step from the recorded plan of `graph`."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.segments = live_segments(graph)
        self._step_of = {id(op): i for i, op in enumerate(graph.ops)}
        self._by_value = {id(s.value): s for s in self.segments if s.value is not None}
        self._by_scratch = {id(s.scratch_of): s for s in self.segments if s.scratch_of is not None}

    def _region(self, v: Value) -> Segment | None:
        return self._by_value.get(id(storage_root(v)))

    def for_op(self, op: Op) -> StepGuard:
        step = self._step_of[id(op)]
        touched = [self._region(v) for v in list(op.operands) + list(op.results)]
        touched.append(self._by_scratch.get(id(op)))
        touched_ids = {id(s) for s in touched if s is not None}
        keep = [s for s in self.segments
                if s.start <= step <= s.end and id(s) not in touched_ids and s.nbytes]
        return StepGuard(_regions(s for s in touched if s is not None), _regions(keep))

    def for_copy(self, v: Value) -> StepGuard:
        region = self._region(v)
        return StepGuard(_regions([region] if region is not None else []), ())


def _regions(segments) -> tuple[Region, ...]:
    return tuple(sorted({(s.offset, s.nbytes) for s in segments if s.nbytes}))


def guard_tables(guards: list[StepGuard]) -> tuple[list[Region], list[tuple[int, int, int]]]:
    """Flat region table, and per step (touch_begin, touch_end, keep_end) indices into it."""
    regions: list[Region] = []
    steps = []
    for g in guards:
        begin = len(regions)
        regions.extend(g.touch)
        touch_end = len(regions)
        regions.extend(g.keep)
        steps.append((begin, touch_end, len(regions)))
    return regions, steps
