"""The IR text form: Graph -> text (the inverse of `tfc.ir.parser`).

    graph @kws(%input: tensor<1x49x10x1xi8, q<0.5:-3>>) -> (tensor<1x12xi8, q<0.1:0>>) {
      %w1 = const {value = dense_resource<w1>} : tensor<64x10x4x1xi8, q<axis=0, [0.01, ...]:[0, ...]>>
      %conv1 = conv2d(%input, %w1, %b1) {act = "relu", pads = [1, 1, 1, 1]} : tensor<1x25x5x64xi8>
      %a, %b = split(%x) {axis = 1, sizes = [2, 2]} : tensor<1x2xf32>, tensor<1x2xf32>
      return %fc
    }
    resources {
      w1 = "0x0A0BFF..."
    }

Rules that make the text round-trip (`print(parse(t)) == t`, `parse(print(g)) ~ g`):
- attributes print in sorted key order; floats always carry a `.` or an `e` (or are nan/inf),
  using the shortest repr that reads back to the same double;
- a constant's data is inline, `dense<[...]>` (flat, row-major), when it has at most
  `INLINE_LIMIT` elements and every element reads back bit-exactly; otherwise it is
  `dense_resource<NAME>` with the raw little-endian bytes in the `resources` section, NAME being
  the const's result name;
- `elide_weights=True` prints large constants (over `INLINE_LIMIT` elements) as
  `dense_resource<__elided__>`, so the resources section is gone (but for small constants
  that cannot be inline, e.g. NaN payloads); the parser reads an elided constant back as zeros (dumps only, not reloads);
- `Op.loc` is debug information and is not printed.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from tfc.ir.types import Quant, TensorType

INLINE_LIMIT = 16
ELIDED = "__elided__"

_BARE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_BARE_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


# -- scalars and types -------------------------------------------------------------------------

def format_float(x: float) -> str:
    """Shortest text that reads back to the same double; always has `.` or `e` (or is nan/inf)."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)  # Python's repr is the shortest round-tripping form and keeps `.0`


def format_float32(x: np.floating) -> str:
    """Shortest text that reads back to the same float32 (numpy's Dragon4 `str`)."""
    text = str(np.float32(x))
    if text in ("nan", "inf", "-inf") or any(c in text for c in ".e"):
        return text
    return text + ".0"


def format_quant(q: Quant) -> str:
    if q.axis is None:
        return f"q<{format_float(q.scale[0])}:{q.zero_point[0]}>"
    scales = ", ".join(format_float(s) for s in q.scale)
    zps = ", ".join(str(z) for z in q.zero_point)
    return f"q<axis={q.axis}, [{scales}]:[{zps}]>"


def format_type(t: TensorType) -> str:
    """`tensor<1x16xi8>`, `tensor<f32>` (rank 0), `tensor<8xi8, q<0.5:-3>>`."""
    body = "x".join([str(d) for d in t.shape] + [t.dtype])
    if t.quant is not None:
        body += ", " + format_quant(t.quant)
    return f"tensor<{body}>"


def format_attr(value) -> str:
    """A non-dense attribute value: int, float, str (JSON-quoted), bool or list of those."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_float(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    raise ValueError(f"attribute value {value!r} of type {type(value).__name__} has no text form; "
                     "use bool, int, float, str or a list of those (DenseAttr only as const 'value')")


# -- constants ---------------------------------------------------------------------------------

def _inline_literal(array: np.ndarray) -> str | None:
    """`[1, -2, 3]` for a small constant, or None when it must go to the resources section.

    A float32 element whose text does not read back bit-exactly (a NaN with a payload) sends the
    whole constant to the resources section, which stores raw bytes.
    """
    if array.size > INLINE_LIMIT:
        return None
    flat = array.reshape(-1)
    if flat.dtype.kind == "f":
        items = [format_float32(x) for x in flat]
        reread = np.array([float(s) for s in items], dtype=np.float32)
        if reread.tobytes() != flat.astype(np.float32).tobytes():
            return None
    else:
        items = [str(int(x)) for x in flat]
    return "[" + ", ".join(items) + "]"


def little_endian_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


# -- graphs ------------------------------------------------------------------------------------

class _Namer:
    """Text names for values: the value's own name when it is valid and unique, else a fresh one.

    Passes keep names valid and unique (Graph.unique_name), so this only matters for graphs that
    are mid-rewrite or were built by hand; it keeps every dump parseable.
    """

    def __init__(self):
        self.names: dict[int, str] = {}
        self.taken: set[str] = set()

    def define(self, v) -> str:
        base = v.name if _BARE_NAME.match(v.name or "") else re.sub(r"[^A-Za-z0-9_]", "_", v.name or "") or "v"
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        self.names[id(v)] = name
        return name

    def use(self, v) -> str:
        return self.names.get(id(v)) or v.name


def _symbol(name: str) -> str:
    return "@" + (name if _BARE_SYMBOL.match(name) else json.dumps(name))


def print_graph(graph, elide_weights: bool = False) -> str:
    """The text form of `graph` (see the module docstring); ends with a newline."""
    namer = _Namer()
    args = []
    for v in graph.inputs:
        args.append(f"%{namer.define(v)}: {format_type(v.type)}")
    out_types = ", ".join(format_type(v.type) for v in graph.outputs)
    lines = [f"graph {_symbol(graph.name)}({', '.join(args)}) -> ({out_types}) {{"]
    resources: list[tuple[str, bytes]] = []
    for op in graph.ops:
        lines.append("  " + _format_op(op, namer, resources, elide_weights))
    ret = ", ".join("%" + namer.use(v) for v in graph.outputs)
    lines.append(f"  return {ret}" if ret else "  return")
    lines.append("}")
    if resources:
        lines.append("resources {")
        lines.extend(f'  {name} = "0x{blob.hex().upper()}"' for name, blob in resources)
        lines.append("}")
    return "\n".join(lines) + "\n"


def _format_op(op, namer: _Namer, resources: list, elide_weights: bool) -> str:
    operands = ", ".join("%" + namer.use(v) for v in op.operands)
    operand_text = f"({operands})" if op.operands else ""  # `const {value = ...}` reads best bare
    results = ", ".join("%" + namer.define(r) for r in op.results)
    attrs = []
    for key in sorted(op.attrs):
        value = op.attrs[key]
        if key == "value" and op.name == "const":
            text = _format_dense(op, namer, resources, elide_weights)
        else:
            text = format_attr(value)
        attrs.append(f"{key} = {text}")
    attr_text = " {" + ", ".join(attrs) + "}" if attrs else ""
    types = ", ".join(format_type(r.type) for r in op.results)
    return f"{results} = {op.name}{operand_text}{attr_text} : {types}"


def _format_dense(op, namer: _Namer, resources: list, elide_weights: bool) -> str:
    from tfc.ir.core import DenseAttr

    dense = op.attrs["value"]
    if not isinstance(dense, DenseAttr):
        raise ValueError(f"{op.where()}: attribute 'value' must be a DenseAttr, got {dense!r}")
    array = dense.array
    result_type = op.results[0].type if len(op.results) == 1 else None
    if result_type is None or np.dtype(result_type.np_dtype) != array.dtype:
        raise ValueError(f"{op.where()}: constant data of dtype {array.dtype} does not match its "
                         f"result type {result_type}; the text form takes the dtype from the type")
    literal = _inline_literal(array)
    if literal is not None:
        return f"dense<{literal}>"
    if elide_weights and array.size > INLINE_LIMIT:  # a small NaN-payload constant stays exact
        return f"dense_resource<{ELIDED}>"
    name = namer.use(op.results[0])
    resources.append((name, little_endian_bytes(array)))
    return f"dense_resource<{name}>"
