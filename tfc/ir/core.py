"""The IR core: values, ops and graphs.

A `Graph` is an ordered list of `Op`s in SSA form over typed `Value`s. All state a pass records
lives in `Op.attrs`, which the printer prints and the parser reads back: there is no side channel.
Attribute values are `bool`, `int`, `float`, `str`, lists of those, or `DenseAttr` (a constant
tensor). `Op.loc` is a debug location only (the ONNX node or the `line:col` the op was parsed
from); it is used in error messages and never changes what the graph computes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from tfc.ir.types import TensorType, dtype_of_numpy


class DenseAttr:
    """A constant tensor held as a read-only numpy array.

    In the text form a large one is a blob in the `resources` section, named after its const's
    result. Two DenseAttrs are equal when dtype, shape and bytes are equal.
    """

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        arr = np.asarray(array, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        dtype_of_numpy(arr.dtype)  # rejects dtypes the IR does not have
        arr.setflags(write=False)
        self.array = arr

    def __eq__(self, other) -> bool:
        return (isinstance(other, DenseAttr) and self.array.dtype == other.array.dtype
                and self.array.shape == other.array.shape
                and self.array.tobytes() == other.array.tobytes())

    def __hash__(self) -> int:
        return hash((self.array.dtype.str, self.array.shape, self.array.tobytes()[:64]))

    def __repr__(self) -> str:
        return f"DenseAttr(shape={self.array.shape}, dtype={self.array.dtype})"


AttrValue = Any  # bool | int | float | str | list[...] | DenseAttr

_NAME_OK = re.compile(r"[^A-Za-z0-9_]")


def sanitize_name(hint: str | None) -> str:
    """ONNX tensor names become `[A-Za-z0-9_]+` name hints that do not start with a digit."""
    s = _NAME_OK.sub("_", hint or "").strip("_")
    s = re.sub(r"_+", "_", s)
    if not s:
        return "v"
    return s if not s[0].isdigit() else "v" + s


class Value:
    """An SSA value: a graph input or an op result."""

    __slots__ = ("type", "name", "producer", "index", "uses")

    def __init__(self, type: TensorType, name: str = "v", producer: "Op | None" = None,
                 index: int = 0):
        self.type = type
        self.name = name
        self.producer = producer
        self.index = index
        self.uses: list[tuple[Op, int]] = []

    @property
    def users(self) -> list["Op"]:
        seen: list[Op] = []
        for op, _ in self.uses:
            if not any(op is s for s in seen):
                seen.append(op)
        return seen

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Op:
    __slots__ = ("name", "operands", "results", "attrs", "loc", "graph")

    def __init__(self, name: str, operands: Iterable[Value], result_types: Iterable[TensorType],
                 attrs: dict[str, AttrValue] | None = None, result_names: Iterable[str] | None = None,
                 loc: str | None = None):
        self.name = name
        self.operands: list[Value] = []
        self.attrs: dict[str, AttrValue] = dict(attrs or {})
        self.loc = loc
        self.graph: Graph | None = None
        types = list(result_types)
        names = list(result_names) if result_names is not None else [name] * len(types)
        self.results = [Value(t, sanitize_name(n), self, i) for i, (t, n) in enumerate(zip(types, names))]
        for v in operands:
            self._add_operand(v)

    # -- operands -----------------------------------------------------------------------------
    def _add_operand(self, v: Value) -> None:
        v.uses.append((self, len(self.operands)))
        self.operands.append(v)

    def set_operand(self, i: int, v: Value) -> None:
        old = self.operands[i]
        old.uses = [(o, j) for (o, j) in old.uses if not (o is self and j == i)]
        self.operands[i] = v
        v.uses.append((self, i))

    def set_operands(self, values: Iterable[Value]) -> None:
        self.drop_operands()
        for v in values:
            self._add_operand(v)

    def drop_operands(self) -> None:
        for i, v in enumerate(self.operands):
            v.uses = [(o, j) for (o, j) in v.uses if not (o is self and j == i)]
        self.operands = []

    @property
    def result(self) -> Value:
        assert len(self.results) == 1, f"'{self.name}' has {len(self.results)} results"
        return self.results[0]

    def attr(self, key: str, default: AttrValue = None) -> AttrValue:
        return self.attrs.get(key, default)

    def where(self) -> str:
        """How error messages name this op: its first result and where it came from."""
        res = f"%{self.results[0].name}" if self.results else self.name
        from_text = self.loc is not None and self.loc.rsplit(":", 2)[-1].isdigit()
        return f"'{self.name}' op {res}" + (f" ({self.loc})" if self.loc and not from_text else "")

    def __repr__(self) -> str:
        return f"<Op {self.name} -> {[r.name for r in self.results]}>"


@dataclass
class Graph:
    """An ordered SSA graph. `ops` is always in a valid execution (topological) order."""

    name: str = "model"
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)

    # -- construction ---------------------------------------------------------------------------
    def add_input(self, type: TensorType, name: str) -> Value:
        v = Value(type, self.unique_name(name))
        self.inputs.append(v)
        return v

    def _adopt(self, op: Op) -> Op:
        op.graph = self
        for r in op.results:
            r.name = self.unique_name(r.name)
        return op

    def append(self, op: Op) -> Op:
        self.ops.append(self._adopt(op))
        return op

    def insert_before(self, anchor: Op, op: Op) -> Op:
        self.ops.insert(self._index(anchor), self._adopt(op))
        return op

    def insert_after(self, anchor: Op, op: Op) -> Op:
        self.ops.insert(self._index(anchor) + 1, self._adopt(op))
        return op

    def _index(self, op: Op) -> int:
        for i, o in enumerate(self.ops):
            if o is op:
                return i
        raise ValueError(f"{op!r} is not in graph @{self.name}")

    def unique_name(self, hint: str) -> str:
        base = sanitize_name(hint)
        taken = self._names()
        if base not in taken:
            return base
        m = re.match(r"^(.*?)_(\d+)$", base)
        stem = m.group(1) if m else base
        k = int(m.group(2)) + 1 if m else 1
        while f"{stem}_{k}" in taken:
            k += 1
        return f"{stem}_{k}"

    def _names(self) -> set[str]:
        names = {v.name for v in self.inputs}
        for op in self.ops:
            names.update(r.name for r in op.results)
        return names

    # -- mutation -------------------------------------------------------------------------------
    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        for op, i in list(old.uses):
            op.set_operand(i, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def erase(self, op: Op) -> None:
        """Removes an op whose results are unused."""
        for r in op.results:
            if r.uses or any(r is o for o in self.outputs):
                raise ValueError(f"cannot erase {op.where()}: its result %{r.name} is still used")
        op.drop_operands()
        del self.ops[self._index(op)]
        op.graph = None

    def replace_op(self, op: Op, new_values: list[Value]) -> None:
        """Redirects each result of `op` to the matching new value, then erases `op`."""
        for r, n in zip(op.results, new_values):
            self.replace_all_uses_with(r, n)
        self.erase(op)

    # -- queries --------------------------------------------------------------------------------
    def walk(self, name: str | None = None) -> Iterator[Op]:
        """The ops in order (optionally of one kind); safe against erasing the current op."""
        for op in list(self.ops):
            if op.graph is self and (name is None or op.name == name):
                yield op

    def values(self) -> Iterator[Value]:
        yield from self.inputs
        for op in self.ops:
            yield from op.results

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(name)

    def is_output(self, v: Value) -> bool:
        return any(v is o for o in self.outputs)

    def topo_sort(self) -> None:
        """Restores a valid order after a pass appended ops out of place (stable where possible)."""
        ready = {id(v) for v in self.inputs}
        pending = list(self.ops)
        ordered: list[Op] = []
        while pending:
            progressed = False
            rest = []
            for op in pending:
                if all(id(v) in ready for v in op.operands):
                    ordered.append(op)
                    ready.update(id(r) for r in op.results)
                    progressed = True
                else:
                    rest.append(op)
            if not progressed:
                raise ValueError(f"graph @{self.name} has a cycle through {rest[0].where()}")
            pending = rest
        self.ops = ordered

    def clone(self) -> "Graph":
        """A deep copy: new values and ops, same names, attrs and (shared, read-only) constants."""
        g = Graph(self.name)
        vmap: dict[int, Value] = {}
        for v in self.inputs:
            nv = Value(v.type, v.name)
            g.inputs.append(nv)
            vmap[id(v)] = nv
        for op in self.ops:
            new = Op(op.name, [vmap[id(v)] for v in op.operands], [r.type for r in op.results],
                     _copy_attrs(op.attrs), [r.name for r in op.results], op.loc)
            new.graph = g
            g.ops.append(new)
            for r, nr in zip(op.results, new.results):
                nr.name = r.name
                vmap[id(r)] = nr
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g


def _copy_attrs(attrs: dict[str, AttrValue]) -> dict[str, AttrValue]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in attrs.items()}


def structural_diff(a: Graph, b: Graph) -> str | None:
    """None when the graphs compute the same thing the same way; else the first difference.

    Value names are ignored (they are hints); op order, op names, types, attributes, constants
    and the wiring are compared.
    """
    if len(a.inputs) != len(b.inputs):
        return f"input count {len(a.inputs)} != {len(b.inputs)}"
    if len(a.ops) != len(b.ops):
        return f"op count {len(a.ops)} != {len(b.ops)}"
    number: dict[int, int] = {}
    number_b: dict[int, int] = {}
    for i, (va, vb) in enumerate(zip(a.inputs, b.inputs)):
        if va.type != vb.type:
            return f"input {i}: type {va.type} != {vb.type}"
        number[id(va)] = number_b[id(vb)] = i
    k = len(a.inputs)
    for oa, ob in zip(a.ops, b.ops):
        if oa.name != ob.name:
            return f"op '{oa.name}' != '{ob.name}'"
        if [number.get(id(v)) for v in oa.operands] != [number_b.get(id(v)) for v in ob.operands]:
            return f"{oa.where()}: operands wired differently"
        if not attrs_equal(oa.attrs, ob.attrs):
            return f"{oa.where()}: attributes {oa.attrs} != {ob.attrs}"
        if [r.type for r in oa.results] != [r.type for r in ob.results]:
            return f"{oa.where()}: result types differ"
        for ra, rb in zip(oa.results, ob.results):
            number[id(ra)] = number_b[id(rb)] = k
            k += 1
    if [number.get(id(v)) for v in a.outputs] != [number_b.get(id(v)) for v in b.outputs]:
        return "outputs differ"
    return None


def structurally_equal(a: Graph, b: Graph) -> bool:
    return structural_diff(a, b) is None


def attrs_equal(a: dict[str, AttrValue], b: dict[str, AttrValue]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(_attr_equal(a[k], b[k]) for k in a)


def _attr_equal(x: AttrValue, y: AttrValue) -> bool:
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_attr_equal(p, q) for p, q in zip(x, y))
    if type(x) is not type(y):
        return False
    if isinstance(x, float):
        return x == y or (x != x and y != y)
    return x == y


class Builder:
    """Appends ops to a graph, inferring result types from the op registry.

        b = Builder(g)
        y = b.op("conv2d", [x, w, bias], strides=[1, 1], ..., name="conv1")
    """

    def __init__(self, graph: Graph, insert_before: Op | None = None, loc: str | None = None):
        self.graph = graph
        self.anchor = insert_before
        self.loc = loc

    def create(self, name: str, operands: list[Value], attrs: dict[str, AttrValue] | None = None,
               result_types: list[TensorType] | None = None, names: list[str] | str | None = None,
               loc: str | None = None) -> Op:
        from tfc.ir.ops import infer_types

        attrs = dict(attrs or {})
        if result_types is None:
            result_types = infer_types(name, [v.type for v in operands], attrs)
        if isinstance(names, str):
            names = [names] if len(result_types) == 1 else [f"{names}_{i}" for i in range(len(result_types))]
        op = Op(name, operands, result_types, attrs, names, loc or self.loc)
        if self.anchor is not None:
            self.graph.insert_before(self.anchor, op)
        else:
            self.graph.append(op)
        return op

    def op(self, name: str, operands: list[Value], *, name_hint: str | None = None,
           result_type: TensorType | None = None, **attrs: AttrValue) -> Value:
        """One-result convenience form of `create`; attrs are keyword arguments."""
        op = self.create(name, operands, attrs, [result_type] if result_type else None,
                         name_hint or name)
        return op.result

    def const(self, array: np.ndarray, name_hint: str = "cst", quant=None, **attrs) -> Value:
        arr = np.asarray(array)
        t = TensorType(arr.shape, dtype_of_numpy(arr.dtype), quant)
        op = self.create("const", [], {"value": DenseAttr(arr), **attrs}, [t], name_hint)
        return op.result


def const_value(v: Value) -> np.ndarray | None:
    """The array behind a value produced by `const`, else None."""
    if v.producer is not None and v.producer.name == "const":
        return v.producer.attrs["value"].array
    return None
