"""The IR text form: text -> Graph (the inverse of `tfc.ir.printer`).

The grammar lives in `tir.lark` (LALR, regex terminals). This module walks the lark tree in
document order and does every semantic check, so that each mistake in hand-written IR is reported
as one `ParseError` at its position (`path:line:col: error: msg`, `.render()` adds a caret):
undefined or redefined values, unknown ops and dtypes, malformed quantization, constants whose
data does not fit their type, unknown resources, and a `return` that disagrees with the header.

Every parsed op gets `op.loc = "path:line:col"` (the start of its line), so the verifier's errors
point at the text. `parse` runs `verify_graph` unless `verify=False`. A constant printed with
`--elide-weights` (`dense_resource<__elided__>`) reads back as zeros of its type.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from tfc.errors import ParseError, TfcError, VerifyError
from tfc.ir.core import DenseAttr, Graph, Op, Value
from tfc.ir.ops import OPS, verify_graph
from tfc.ir.printer import ELIDED
from tfc.ir.types import DTYPES, Quant, TensorType

__all__ = ["parse", "parse_file", "TextVerifyError"]


class TextVerifyError(ParseError, VerifyError):
    """A verifier error in parsed text: a VerifyError that also renders its source line."""


_LARK: Lark | None = None


def _lark() -> Lark:
    global _LARK
    if _LARK is None:
        _LARK = Lark.open("tir.lark", rel_to=__file__, parser="lalr", propagate_positions=True,
                          maybe_placeholders=True)
    return _LARK


def parse(text: str, path: str = "<string>", *, verify: bool = True) -> Graph:
    """The graph written in `text`; `path` only names the source in error messages."""
    reader = _Reader(text, path)
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as e:
        raise reader.syntax_error(e) from None
    graph = reader.read(tree)
    if verify:
        try:
            verify_graph(graph)
        except VerifyError as e:
            raise reader.located_verify_error(e) from None
    return graph


def parse_file(path: str | Path, *, verify: bool = True) -> Graph:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise TfcError(f"{path}: cannot read IR file ({e.strerror or e}); check the path") from None
    return parse(text, str(path), verify=verify)


# -- syntax errors -----------------------------------------------------------------------------

_TERMINAL_WORDS = {
    "VALUE": "a value like %x", "NAME": "a name", "SHAPE_DTYPE": "dims and dtype like 1x16xi8",
    "INT": "an integer", "FLOAT": "a float", "STRING": "a string", "HEX": 'a hex string "0x..."',
    "SYMBOL": "a graph name like @model", "$END": "end of input",
}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return name
    return f"'{pattern.value}'" if pattern.type == "str" else name


def _describe_expected(names) -> str:
    words = sorted({_describe_terminal(n) for n in names})
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


# -- the tree walk -----------------------------------------------------------------------------

_POSITION = re.compile(r"^(\d+):(\d+): error: (.*)$", re.S)


class _Reader:
    def __init__(self, text: str, path: str):
        self.path = path
        self.lines = text.splitlines()
        self.scope: dict[str, tuple[Value, Token]] = {}
        self.resources: dict[str, bytes] = {}

    # -- errors --------------------------------------------------------------------------------
    def error(self, line: int, col: int, msg: str, width: int = 1, cls=ParseError) -> ParseError:
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return cls(self.path, line, col, msg, source, width)

    def error_at(self, tok: Token, msg: str) -> ParseError:
        return self.error(tok.line, tok.column, msg, len(str(tok)))

    def syntax_error(self, e: UnexpectedInput) -> ParseError:
        # `accepts` (what can really come next) is sharper than the LALR state's `expected` set
        expected = _describe_expected(getattr(e, "accepts", None) or getattr(e, "expected", ()))
        if isinstance(e, UnexpectedToken) and e.token.type == "$END":
            line = max(len(self.lines), 1)
            col = len(self.lines[-1]) + 1 if self.lines else 1
            return self.error(line, col, f"unexpected end of input; expected {expected}")
        if isinstance(e, UnexpectedToken):
            got = str(e.token)
            got = got if len(got) <= 24 else got[:21] + "..."
            return self.error(e.line, e.column, f"expected {expected}, got '{got}'", len(str(e.token)))
        if isinstance(e, UnexpectedCharacters):
            msg = f"unexpected character {e.char!r}"
            if e.allowed:
                msg += f"; expected {_describe_expected(e.allowed)}"
            return self.error(e.line, e.column, msg)
        return self.error(getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1, f"syntax error ({e})")

    def located_verify_error(self, e: VerifyError) -> VerifyError:
        """The verifier's `path:line:col: error: msg` as a TextVerifyError that can show a caret."""
        text = str(e)
        prefix = f"{self.path}:"
        match = _POSITION.match(text[len(prefix):]) if text.startswith(prefix) else None
        if match is None:
            return e
        line, col = int(match.group(1)), int(match.group(2))
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        width = len(re.match(r"[^\s=,]*", source[col - 1:]).group(0)) if source else 1
        return self.error(line, col, match.group(3), width, TextVerifyError)

    # -- values ----------------------------------------------------------------------------------
    def define(self, tok: Token, type: TensorType, value: Value | None = None) -> Value:
        name = str(tok)[1:]
        if name in self.scope:
            first = self.scope[name][1]
            raise self.error_at(tok, f"%{name} is already defined at {first.line}:{first.column}")
        value = value or Value(type, name)
        value.name = name
        self.scope[name] = (value, tok)
        return value

    def use(self, tok: Token) -> Value:
        name = str(tok)[1:]
        if name not in self.scope:
            raise self.error_at(tok, f"use of undefined value %{name}")
        return self.scope[name][0]

    # -- graph -------------------------------------------------------------------------------------
    def read(self, tree: Tree) -> Graph:
        graph_tree = tree.children[0]
        resources_tree = tree.children[1] if len(tree.children) > 1 else None
        if resources_tree is not None:  # first, so constants can take their data as they go
            self.read_resources(resources_tree)
        symbol, *rest = graph_tree.children
        name = str(symbol)[1:]
        graph = Graph(json.loads(name) if name.startswith('"') else name)
        header_types: list[TensorType] = []
        for child in rest:
            if not isinstance(child, Tree):
                continue
            if child.data == "arg":
                tok, type_tree = child.children
                graph.inputs.append(self.define(tok, self.read_type(type_tree)))
            elif child.data == "type":
                header_types.append(self.read_type(child))
            elif child.data == "op":
                op = self.read_op(child)
                op.graph = graph
                graph.ops.append(op)
            elif child.data == "return_stmt":
                graph.outputs = self.read_return(child, header_types)
        return graph

    def read_return(self, tree: Tree, header_types: list[TensorType]) -> list[Value]:
        toks = _operand_tokens(tree.children[0])
        values = [self.use(t) for t in toks]
        if len(values) != len(header_types):
            where = toks[0] if toks else None
            msg = (f"return has {len(values)} value(s) but the graph header declares "
                   f"{len(header_types)} result type(s)")
            if where is None:
                raise self.error(tree.meta.line, tree.meta.column, msg, len("return"))
            raise self.error_at(where, msg)
        for tok, value, declared in zip(toks, values, header_types):
            if value.type != declared:
                raise self.error_at(tok, f"%{value.name} has type {value.type} but the graph header "
                                         f"declares {declared}")
        return values

    def read_op(self, tree: Tree) -> Op:
        names_tree, name_tok, operand_group, attrs_tree, *type_trees = tree.children
        operands_tree = operand_group.children[0] if operand_group is not None else None
        op_name = str(name_tok)
        if op_name not in OPS:
            raise self.error_at(name_tok, f"unknown op '{op_name}'; known ops: {', '.join(sorted(OPS))}")
        result_toks = list(names_tree.children)
        types = [self.read_type(t) for t in type_trees if t is not None]
        if len(types) != len(result_toks):
            raise self.error_at(name_tok, f"'{op_name}' has {len(result_toks)} result name(s) but "
                                          f"{len(types)} result type(s)")
        operands = [self.use(t) for t in _operand_tokens(operands_tree)]
        first = result_toks[0]
        op = Op(op_name, operands, types, {}, loc=f"{self.path}:{first.line}:{first.column}")
        op.attrs = self.read_attrs(attrs_tree, op)
        for tok, result in zip(result_toks, op.results):
            self.define(tok, result.type, result)
        return op

    # -- attributes ------------------------------------------------------------------------------
    def read_attrs(self, tree: Tree | None, op: Op) -> dict:
        attrs: dict = {}
        if tree is None:
            return attrs
        for attr in tree.children:
            if attr is None:
                continue
            key_tok, value = attr.children
            key = str(key_tok)
            if key in attrs:
                raise self.error_at(key_tok, f"attribute '{key}' is given twice")
            if isinstance(value, Tree) and value.data in ("dense", "dense_resource"):
                if op.name != "const" or key != "value":
                    raise self.error_at(key_tok, f"'{key}' holds {value.data}<...>, which is only "
                                                 "allowed as the 'value' of a const")
                if len(op.results) != 1:
                    raise self.error_at(key_tok, "a const must have exactly one result")
                attrs[key] = self.read_dense(value, op)
            else:
                attrs[key] = self.read_scalar_or_list(value)
        return attrs

    def read_scalar_or_list(self, node):
        if isinstance(node, Tree):
            if node.data != "list":
                raise self.error(node.meta.line, node.meta.column,
                                 f"{node.data}<...> is only allowed as the 'value' of a const")
            return [self.read_scalar_or_list(c) for c in node.children if c is not None]
        kind = node.type
        if kind == "INT":
            return int(node)
        if kind == "FLOAT":
            return float(node)
        if kind == "STRING":
            try:
                return json.loads(str(node))
            except json.JSONDecodeError as e:
                raise self.error_at(node, f"bad string literal ({e.msg}); use JSON escapes") from None
        return kind == "TRUE"

    def read_dense(self, node: Tree, op: Op):
        type = op.results[0].type
        if node.data == "dense_resource":
            tok = node.children[0]
            if str(tok) == ELIDED:
                return DenseAttr(np.zeros(type.shape, type.np_dtype))
            return self.resource_array(tok, type)
        items = [c for c in node.children[0].children if c is not None]
        for item in items:
            if isinstance(item, Tree):
                raise self.error(item.meta.line, item.meta.column,
                                 "dense<...> takes a flat list of numbers (row-major)")
        if len(items) != type.numel:
            tok = items[0] if items else None
            msg = f"dense<...> has {len(items)} element(s) but {type} needs {type.numel}"
            raise self.error_at(tok, msg) if tok else self.error(node.meta.line, node.meta.column, msg)
        return DenseAttr(self.dense_array(items, type).reshape(type.shape))

    def dense_array(self, items: list[Token], type: TensorType) -> np.ndarray:
        if type.dtype == "f32":
            for tok in items:
                if tok.type not in ("INT", "FLOAT"):
                    raise self.error_at(tok, f"dense<...> of f32 holds numbers, got {tok}")
            return np.array([float(t) for t in items], dtype=np.float32)
        info = np.iinfo(type.np_dtype)
        values = []
        for tok in items:
            if tok.type != "INT":
                raise self.error_at(tok, f"dense<...> of {type.dtype} holds integers, got {tok}")
            v = int(tok)
            if not info.min <= v <= info.max:
                raise self.error_at(tok, f"{v} does not fit {type.dtype} [{info.min}, {info.max}]")
            values.append(v)
        return np.array(values, dtype=type.np_dtype)

    # -- resources -------------------------------------------------------------------------------
    def read_resources(self, tree: Tree) -> None:
        for entry in tree.children:
            name_tok, hex_tok = entry.children
            name = str(name_tok)
            if name in self.resources:
                raise self.error_at(name_tok, f"resource '{name}' is defined twice")
            digits = str(hex_tok)[3:-1]
            if len(digits) % 2:
                raise self.error_at(hex_tok, f"resource '{name}' has an odd number of hex digits")
            self.resources[name] = bytes.fromhex(digits)

    def resource_array(self, tok: Token, type: TensorType) -> DenseAttr:
        name = str(tok)
        if name not in self.resources:
            known = ", ".join(sorted(self.resources)) or "none"
            raise self.error_at(tok, f"unknown resource '{name}' (known: {known}); add it to the "
                                     "resources section")
        blob = self.resources[name]
        if len(blob) != type.nbytes:
            raise self.error_at(tok, f"resource '{name}' has {len(blob)} bytes but {type} needs "
                                     f"{type.nbytes}")
        little = np.frombuffer(blob, dtype=type.np_dtype.newbyteorder("<"))
        array = little.astype(type.np_dtype).reshape(type.shape)
        return DenseAttr(array)

    # -- types -----------------------------------------------------------------------------------
    def read_type(self, tree: Tree) -> TensorType:
        word, quant_tree = tree.children
        *dims, dtype = str(word).split("x")
        col = word.column
        shape = []
        for d in dims:
            if not d.isdigit():
                raise self.error(word.line, col, f"bad dimension '{d}'; a tensor type reads like "
                                                  "1x16xi8 (static dims, then the dtype)", len(d) or 1)
            shape.append(int(d))
            col += len(d) + 1
        if dtype not in DTYPES:
            raise self.error(word.line, col, f"unknown dtype '{dtype}'; known: {', '.join(DTYPES)}",
                             len(dtype) or 1)
        quant = self.read_quant(quant_tree, shape) if quant_tree is not None else None
        return TensorType(tuple(shape), dtype, quant)

    def read_quant(self, tree: Tree, shape: list[int]) -> Quant:
        if tree.data == "quant_tensor":
            scale, zp = tree.children
            return Quant.per_tensor(float(scale), int(zp))
        axis_tok, scales_tree, zps_tree = tree.children
        scales = [float(t) for t in scales_tree.children if t is not None]
        zps = [int(t) for t in zps_tree.children if t is not None]
        axis = int(axis_tok)
        if not 0 <= axis < len(shape):
            raise self.error_at(axis_tok, f"quantization axis {axis} is out of range for rank {len(shape)}")
        if len(scales) != shape[axis] or len(zps) != shape[axis]:
            raise self.error_at(axis_tok, f"per-axis quantization along axis {axis} needs {shape[axis]} "
                                          f"scales and zero points, got {len(scales)} and {len(zps)}")
        return Quant(tuple(scales), tuple(zps), axis)


def _operand_tokens(tree: Tree | None) -> list[Token]:
    return [] if tree is None else list(tree.children)
