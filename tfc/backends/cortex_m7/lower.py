"""IR -> plain dataclasses that the C templates only loop over.

Every number the generated C needs is computed here (offsets, sizes, symbols, kernel arguments);
the templates in `templates/` only lay text out. The per-op kernel calls come from
`kernels.lower_op(op, ctx)`; this module provides `ctx` (`EmitContext`): where each value's data
lives, and the constant arrays that go to weights.c.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfc.errors import TfcError
from tfc.ir.core import Graph, Op, Value, sanitize_name
from tfc.ir.types import dtype_of_numpy
from tfc.backends.cortex_m7.arena_guard import NO_GUARD, ArenaGuards, StepGuard, guard_tables
from tfc.backends.cortex_m7.memory_svg import memory_svg
from tfc.passes.memory_plan import EXTERNAL, align_up, arena_size, is_view, planned_offsets, storage_root

ARENA_ALIGN = 16

C_TYPES = {"f32": "float", "i8": "int8_t", "i16": "int16_t", "i32": "int32_t", "u8": "uint8_t"}


@dataclass(frozen=True)
class TensorIO:
    """One graph input or output as the C API exposes it."""

    name: str
    index: int
    ctype: str
    shape: tuple[int, ...]
    numel: int
    nbytes: int
    dtype: str
    scale: float | None
    zero_point: int | None


@dataclass(frozen=True)
class WeightArray:
    """One `const` array in weights.c (flash)."""

    symbol: str
    ctype: str
    values: np.ndarray  # flat

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


@dataclass
class Step:
    """The C statements for one IR op, headed by a comment naming the layer."""

    layer: str
    op: str
    comment: str
    statements: list[str]
    guard: StepGuard = NO_GUARD  # guarded-arena mode: regions it may touch / must keep


@dataclass
class LoweredModel:
    prefix: str
    model: str
    precision: str
    inputs: list[TensorIO]
    outputs: list[TensorIO]
    steps: list[Step]
    weights: list[WeightArray]
    arena_bytes: int  # planned activations + kernel scratch
    planned_arena_bytes: int  # the memory-plan part alone
    scratch_bytes: int
    kernel_functions: list[str] = field(default_factory=list)  # distinct runtime calls, sorted
    memory_svg: str = ""  # the plan as a picture (memory.svg)

    @property
    def guard_tables(self):
        """(regions, per-step (touch_begin, touch_end, keep_end)) for model_guard.h."""
        return guard_tables([s.guard for s in self.steps])

    @property
    def integer_only(self) -> bool:
        """No float kernel and no float I/O: the C builds with TFC_INT8_ONLY and, on the M7,
        -mgeneral-regs-only, so the compiler cannot touch an FPU register."""
        return (not any("f32" in fn for fn in self.kernel_functions)
                and all(io.ctype != "float" for io in self.inputs + self.outputs))

    @property
    def in_ctype(self) -> str:
        """The element type of the `inputs` arrays of run_multi (void when inputs differ)."""
        return _common_ctype(self.inputs)

    @property
    def out_ctype(self) -> str:
        return _common_ctype(self.outputs)

    @property
    def weights_bytes(self) -> int:
        return sum(w.nbytes for w in self.weights)


def _common_ctype(ios: list[TensorIO]) -> str:
    types = {io.ctype for io in ios}
    return types.pop() if len(types) == 1 else "void"


class EmitContext:
    """What `kernels.lower_op` asks the emitter: pointers to values, constant arrays, scratch."""

    def __init__(self, graph: Graph, prefix: str):
        self.graph = graph
        self.prefix = prefix
        self.offsets = planned_offsets(graph)
        self.planned_bytes = align_up(arena_size(graph), ARENA_ALIGN)
        self.scratch_bytes = 0
        self.current_op: Op | None = None  # the op being lowered (its planned scratch)
        self.weights: list[WeightArray] = []
        self._symbols: set[str] = set()
        self._by_content: dict[tuple, str] = {}
        self._const_symbol: dict[int, str] = {}
        self._input_index = {id(v): i for i, v in enumerate(graph.inputs)}
        self._output_index: dict[int, int] = {}
        for j, v in enumerate(graph.outputs):
            self._output_index.setdefault(id(v), j)

    # -- the ctx protocol ---------------------------------------------------------------------
    def buf(self, value: Value) -> str:
        """A C expression for the pointer to `value`'s data, typed by its dtype."""
        root = storage_root(value)
        ctype = C_TYPES[value.type.dtype]
        if id(root) in self._input_index:
            return f"in{self._input_index[id(root)]}"
        if root.producer is not None and root.producer.name == "const":
            return self._const(root)
        if id(root) in self._output_index:
            return f"out{self._output_index[id(root)]}"
        offset = self.offsets.get(id(root))
        if offset is None or offset == EXTERNAL:
            where = root.producer.where() if root.producer else f"%{root.name}"
            raise TfcError(f"{where} has no arena_offset; run the memory-plan pass last in the pipeline")
        return f"(({ctype} *)(arena + {offset}))"

    def const_array(self, hint: str, array: np.ndarray) -> str:
        """Adds a constant array to weights.c (identical arrays are stored once); its symbol."""
        arr = np.ascontiguousarray(array)
        dtype = dtype_of_numpy(arr.dtype)
        key = (dtype, arr.tobytes())
        if key in self._by_content:
            return self._by_content[key]
        symbol = self._unique_symbol(f"{self.prefix}_w_{sanitize_name(hint)}")
        self.weights.append(WeightArray(symbol, C_TYPES[dtype], arr.reshape(-1)))
        self._by_content[key] = symbol
        return symbol

    def scratch(self, nbytes: int, ctype: str = "int8_t") -> str:
        """A pointer to `nbytes` of scratch memory valid during the current kernel call only.

        The memory plan places scratch the op declared (`scratch_bytes`, from
        `kernels.scratch_bytes`) among the activations; undeclared scratch sits after the planned
        activations, so it never overlaps a live value either.
        """
        op = self.current_op
        if op is not None and "scratch_offset" in op.attrs and int(nbytes) <= op.attrs["scratch_bytes"]:
            return f"(({ctype} *)(arena + {op.attrs['scratch_offset']}))"
        self.scratch_bytes = max(self.scratch_bytes, align_up(int(nbytes), ARENA_ALIGN))
        return f"(({ctype} *)(arena + {self.planned_bytes}))"

    # -- helpers --------------------------------------------------------------------------------
    def _const(self, v: Value) -> str:
        if id(v) not in self._const_symbol:
            self._const_symbol[id(v)] = self.const_array(v.name, v.producer.attrs["value"].array)
        return self._const_symbol[id(v)]

    def _unique_symbol(self, base: str) -> str:
        symbol, k = base, 1
        while symbol in self._symbols:
            symbol = f"{base}_{k}"
            k += 1
        self._symbols.add(symbol)
        return symbol


def _tensor_io(v: Value, index: int) -> TensorIO:
    q = v.type.quant
    per_tensor = q is not None and q.is_per_tensor
    return TensorIO(v.name, index, C_TYPES[v.type.dtype], v.type.shape, v.type.numel, v.type.nbytes,
                    v.type.dtype, q.s if per_tensor else None, q.zp if per_tensor else None)


def _comment(op: Op) -> str:
    results = ", ".join(f"%{r.name}: {r.type}" for r in op.results)
    operands = ", ".join(f"%{v.name}" for v in op.operands)
    return f"{op.results[0].name}: {op.name}({operands}) -> {results}".replace("*/", "* /")


def _memcpy(dst: str, src: str, nbytes: int) -> str:
    return f"memcpy({dst}, {src}, {nbytes});"


def lower_graph(graph: Graph, prefix: str, precision: str, model: str) -> LoweredModel:
    """Lowers a planned graph (layout nhwc, int8 or float32) to the data the templates need."""
    from tfc.backends.cortex_m7 import kernels

    ctx = EmitContext(graph, prefix)
    steps: list[Step] = []
    step_ops: list[Op] = []
    functions: set[str] = set()
    for op in graph.ops:
        if op.name == "const":
            continue
        if op.name == "reshape":
            src = op.operands[0]
            statements = [] if is_view(op) else \
                [_memcpy(ctx.buf(op.result), ctx.buf(src), op.result.type.nbytes)]
        else:
            if "arena_offset" not in op.attrs:
                raise TfcError(f"{op.where()} has no arena_offset; run the memory-plan pass last "
                               "in the pipeline")
            statements = []
            ctx.current_op = op
            for call in kernels.lower_op(op, ctx):
                functions.add(call.fn)
                statements.append(f"{call.fn}({', '.join(call.args)});")
        comment = _comment(op) + (" (a view: no code)" if op.name == "reshape" and is_view(op) else "")
        steps.append(Step(op.results[0].name, op.name, comment, statements))
        step_ops.append(op)
    guards = ArenaGuards(graph)
    for step, op in zip(steps, step_ops):
        step.guard = guards.for_op(op)
    for step in _output_copies(graph, ctx):
        step.guard = guards.for_copy(graph.value(step.layer))
        steps.append(step)
    return LoweredModel(
        prefix=prefix, model=model, precision=precision,
        inputs=[_tensor_io(v, i) for i, v in enumerate(graph.inputs)],
        outputs=[_tensor_io(v, j) for j, v in enumerate(graph.outputs)],
        steps=steps, weights=ctx.weights,
        arena_bytes=ctx.planned_bytes + ctx.scratch_bytes,
        planned_arena_bytes=ctx.planned_bytes, scratch_bytes=ctx.scratch_bytes,
        kernel_functions=sorted(functions),
        memory_svg=memory_svg(graph, ctx.planned_bytes + ctx.scratch_bytes))


def _output_copies(graph: Graph, ctx: EmitContext) -> list[Step]:
    """Outputs no op wrote in place: a graph input, a constant, or a value returned twice."""
    steps = []
    first_index: dict[int, int] = {}
    for j, v in enumerate(graph.outputs):
        written_in_place = (v.producer is not None and v.producer.name != "const"
                            and id(v) not in first_index)
        first_index.setdefault(id(v), j)
        if written_in_place:
            continue
        steps.append(Step(v.name, "copy", f"output {j}: copy of %{v.name}",
                          [_memcpy(f"out{j}", ctx.buf(v), v.type.nbytes)]))
    return steps
