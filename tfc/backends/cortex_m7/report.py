"""report.json / report.md: what the compiled model costs in flash and SRAM, layer by layer.

The ◆ fields are a contract (DESIGN.md); fields beyond them are free to add. Layer names are the
op's first result name, the same name that heads the op's block in model.c.
"""

from __future__ import annotations

import numpy as np

from tfc.backends.cortex_m7.lower import ARENA_ALIGN, LoweredModel
from tfc.backends.cortex_m7.sparse_lowering import sparse_layer_fields
from tfc.backends.cortex_m7.target import Target
from tfc.errors import BudgetError
from tfc.ir.core import Graph, Op, Value
from tfc.passes.memory_plan import lower_bound_bytes, storage_root

# Code size estimate used when arm-none-eabi-gcc is not measured: model glue and library helpers,
# plus a per-kernel-function and per-call cost. Rough (kernels range from 1 to 6 KiB at -O3; within
# about 50% of the linked measure on the test models), and labelled as such in the report.
CODE_BASE_BYTES = 2048
CODE_PER_KERNEL_BYTES = 2800
CODE_PER_CALL_BYTES = 48


def estimate_code_bytes(m: LoweredModel) -> int:
    calls = sum(len(s.statements) for s in m.steps)
    return CODE_BASE_BYTES + CODE_PER_KERNEL_BYTES * len(m.kernel_functions) + CODE_PER_CALL_BYTES * calls


def _const_operand(v: Value) -> np.ndarray | None:
    root = storage_root(v)
    if root.producer is not None and root.producer.name == "const":
        return root.producer.attrs["value"].array
    return None


def layer_macs(op: Op) -> int:
    """Multiply-accumulates of one op (0 for ops that do not multiply-accumulate)."""
    out = op.results[0].type
    if op.name == "conv2d":
        w = op.operands[1].type
        return out.numel * (w.numel // w.shape[0])
    if op.name == "linear":
        return out.numel * op.operands[1].type.shape[1]
    if op.name == "matmul":  # the contraction runs along A's last dim as read through a_perm
        a_perm = op.attr("a_perm", None)
        return out.numel * op.operands[0].type.shape[a_perm[-1] if a_perm else -1]
    return 0


def _layer(op: Op) -> dict:
    weights = [a for a in (_const_operand(v) for v in op.operands) if a is not None]
    main = op.operands[1] if op.name in ("conv2d", "linear") and len(op.operands) > 1 else None
    storage = block = sparsity = None
    weight_bytes = int(sum(a.nbytes for a in weights))
    sparse_fields: dict = {}
    if main is not None and _const_operand(main) is not None:
        const = storage_root(main).producer
        storage = "sparse" if const.attrs.get("storage") == "brle" else "dense"
        block = const.attrs.get("block") if storage == "sparse" else None
        w = const.attrs["value"].array
        sparsity = round(float(np.count_nonzero(w == 0)) / max(1, w.size), 4)
        sparse_fields = sparse_layer_fields(op, const)
        if storage == "sparse":  # the flash the stream takes, and the block sparsity eta uses
            sparsity = const.attrs.get("sparsity", sparsity)
            weight_bytes += sparse_fields["stored_weight_bytes"] - int(w.nbytes)
    offsets = op.attrs.get("arena_offset") or [-1]
    return {"name": op.results[0].name, "op": op.name, "macs": layer_macs(op), "storage": storage,
            "block": block, "sparsity": sparsity, "weight_bytes": weight_bytes, **sparse_fields,
            "arena_offset": offsets[0] if offsets[0] >= 0 else None,
            "out_bytes": int(sum(r.type.nbytes for r in op.results)),
            "scratch_offset": op.attrs.get("scratch_offset"),
            "scratch_bytes": int(op.attrs.get("scratch_bytes", 0))}


def _io(io) -> dict:
    return {"name": io.name, "shape": list(io.shape), "dtype": io.dtype, "scale": io.scale,
            "zero_point": io.zero_point}


def build_report(graph: Graph, m: LoweredModel, target: Target, *, code_bytes: int | None,
                 version: str) -> dict:
    """The report dict; `code_bytes` is the measured code size, or None to estimate it."""
    io_bytes = sum(io.nbytes for io in m.inputs + m.outputs)
    code_estimate = estimate_code_bytes(m)
    flash = m.weights_bytes + (code_bytes if code_bytes is not None else code_estimate)
    sram = m.arena_bytes + io_bytes
    # Max over steps of the live bytes (in place where ops allow it, 16-byte aligned sizes).
    lower_bound = lower_bound_bytes(graph, ARENA_ALIGN)
    return {
        "model": m.model, "target": target.name, "precision": m.precision,
        "prefix": m.prefix, "tfc_version": version,
        "flash_bytes": flash, "flash_method": "measured" if code_bytes is not None else "estimate",
        "weights_bytes": m.weights_bytes, "code_bytes": code_bytes,
        "code_bytes_estimate": code_estimate,
        "arena_bytes": m.arena_bytes, "arena_lower_bound_bytes": lower_bound,
        "arena_ratio": round(m.arena_bytes / lower_bound, 4) if lower_bound else None,
        # Scratch the plan placed (shared between layers: the largest layer's need) and scratch a
        # kernel asked for without declaring it, which sits after the planned arena.
        "planned_scratch_bytes": max((int(op.attrs.get("scratch_bytes", 0)) for op in graph.ops),
                                     default=0),
        "scratch_bytes": m.scratch_bytes, "io_bytes": io_bytes, "sram_bytes": sram,
        "budget": {"flash_bytes": target.flash_bytes, "sram_bytes": target.sram_bytes},
        "fits": flash <= target.flash_bytes and sram <= target.sram_bytes,
        "inputs": [_io(io) for io in m.inputs], "outputs": [_io(io) for io in m.outputs],
        "layers": [_layer(op) for op in graph.ops if op.name != "const"],
    }


def _largest(layers: list[dict], key: str, n: int = 3) -> str:
    top = sorted(layers, key=lambda layer: (-layer[key], layer["name"]))[:n]
    return ", ".join(f"{layer['name']} ({layer[key]} B)" for layer in top if layer[key] > 0) or "none"


def check_budget(report: dict) -> None:
    """Raises BudgetError naming the largest layers when the model does not fit its target."""
    if report["fits"]:
        return
    budget = report["budget"]
    problems = []
    if report["flash_bytes"] > budget["flash_bytes"]:
        problems.append(f"flash {report['flash_bytes']} B > {budget['flash_bytes']} B "
                        f"(largest weights: {_largest(report['layers'], 'weight_bytes')})")
    if report["sram_bytes"] > budget["sram_bytes"]:
        problems.append(f"SRAM {report['sram_bytes']} B > {budget['sram_bytes']} B "
                        f"(largest activations: {_largest(report['layers'], 'out_bytes')})")
    raise BudgetError(f"model '{report['model']}' does not fit {report['target']}: "
                      f"{'; '.join(problems)}; shrink or sparsify the model, or pass "
                      "--allow-over-budget to write it anyway")
