"""m7-kernel-scratch: record how many scratch bytes each op's Cortex-M7 kernel needs.

The memory planner is target-neutral: it places a `scratch_bytes = n` attribute's n bytes in the
arena for the op's own step, sharing them between layers. Which kernels need scratch, and how much
(the dense GEMM's repacked rows, the sparse kernels' row buffers), is this backend's knowledge, so
this pass writes it into the IR just before `memory-plan`. Keeping it an attribute, not a callback,
is what lets an IR dump replay through `tfc opt -p memory-plan` to the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfc.ir.core import Graph
from tfc.pipeline import Pass


@dataclass
class M7KernelScratchPass(Pass):
    """Sets `scratch_bytes` on every op whose Cortex-M7 kernel needs scratch (removes it elsewhere)."""

    name = "m7-kernel-scratch"

    def run(self, graph: Graph) -> bool:
        from tfc.backends.cortex_m7.kernels import scratch_bytes
        from tfc.passes.memory_plan import is_view

        changed = False
        for op in graph.ops:
            if op.name == "const" or is_view(op):
                continue
            need = int(scratch_bytes(op))
            if need > 0 and op.attrs.get("scratch_bytes") != need:
                op.attrs["scratch_bytes"] = need
                changed = True
            elif need == 0 and op.attrs.pop("scratch_bytes", None) is not None:
                changed = True
        return changed
