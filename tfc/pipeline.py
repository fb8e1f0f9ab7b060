"""Passes, pipelines and the pass manager.

A pass is a dataclass: its class attribute `name` is its kebab-case name, its fields are its
options, and `run(graph) -> bool` rewrites the graph in place and says whether anything changed.
A pipeline is text, `canonicalize,fuse-activation,sparse-storage{min-sparsity=0.7}`; option names
are the kebab-case spelling of the fields.

The `PassManager` runs passes in order and checks the IR between them (verification, and in tests
a print/parse round trip), so a broken invariant is blamed on the pass that broke it:

    PassError: pass 'memory-plan' failed after [canonicalize, fuse-activation]: <cause>

Instruments observe the pipeline (print or dump the IR, time the passes); they are shared by
`tfc opt` and `tfc compile` through `add_ir_debug_args` / `instruments_from_args`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import typing
from dataclasses import dataclass
from typing import ClassVar, Iterable, TextIO

from tfc.errors import PassError, TfcError
from tfc.ir.core import Graph, structural_diff
from tfc.ir.ops import verify_graph
from tfc.passes import get_pass, register_pass

__all__ = ["Pass", "PassManager", "parse_pipeline", "format_pipeline", "register_pass", "get_pass",
           "Instrument", "PrintIR", "DumpIRDir", "TimePasses", "add_ir_debug_args",
           "instruments_from_args", "write_text_atomic"]


@dataclass
class Pass:
    """Base of all passes. Subclasses set `name`, add options as dataclass fields, define `run`."""

    name: ClassVar[str] = ""

    def run(self, graph: Graph) -> bool:
        """Rewrites `graph` in place; returns True when it changed anything."""
        raise NotImplementedError(f"pass '{self.name}' does not implement run()")

    def requires(self, graph: Graph) -> None:
        """Raises PassError naming the unmet precondition (e.g. 'needs static shapes')."""

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring: what the pass does."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def option_types(cls) -> dict[str, type]:
        """Field name -> its type (resolved from the annotation) for every option of the pass."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints.get(f.name, str) for f in dataclasses.fields(cls)}

    @classmethod
    def from_options(cls, options: dict[str, str]) -> "Pass":
        """Builds the pass from kebab-case option text, converting each value to its field type."""
        types = cls.option_types()
        kwargs = {}
        for key, text in options.items():
            field_name = key.replace("-", "_")
            if field_name not in types:
                known = ", ".join(_kebab(f) for f in types) or "none"
                raise PassError(f"pass '{cls.name}' has no option '{key}'; options: {known}")
            kwargs[field_name] = _convert_option(cls.name, key, text, types[field_name])
        return cls(**kwargs)

    def __str__(self) -> str:
        """Pipeline text for this pass: its name plus the options that differ from the default."""
        opts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            if value != default:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                opts.append(f"{_kebab(f.name)}={text}")
        return self.name + ("{" + ",".join(opts) + "}" if opts else "")


def _kebab(field_name: str) -> str:
    return field_name.replace("_", "-")


def _convert_option(pass_name: str, key: str, text: str, ty) -> object:
    if typing.get_origin(ty) is typing.Union or type(ty).__name__ == "UnionType":
        args = [a for a in typing.get_args(ty) if a is not type(None)]
        if text.lower() in ("none", "") and len(args) < len(typing.get_args(ty)):
            return None
        ty = args[0] if len(args) == 1 else str
    try:
        if ty is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if ty is int:
            return int(text, 0)
        if ty is float:
            return float(text)
    except ValueError:
        raise PassError(f"pass '{pass_name}' option '{key}' expects {ty.__name__}, "
                        f"got '{text}'") from None
    return text


# -- pipeline text --------------------------------------------------------------------------------

def parse_pipeline(text: str | Iterable[str]) -> list[Pass]:
    """`"a,b{opt=1,x=y}"` (or a sequence of such pieces) -> pass instances, in order."""
    if not isinstance(text, str):
        return [p for piece in text for p in parse_pipeline(piece)]
    passes: list[Pass] = []
    for item in _split_top_level(text, text):
        name, options = _parse_item(item, text)
        passes.append(get_pass(name).from_options(options))
    return passes


def format_pipeline(passes: Iterable[Pass]) -> str:
    """The inverse of `parse_pipeline`."""
    return ",".join(str(p) for p in passes)


def _split_top_level(text: str, whole: str) -> list[str]:
    """Splits on commas outside braces; empty items are errors."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise PassError(f"unbalanced '}}' at column {i + 1} of pipeline '{whole}'")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise PassError(f"missing '}}' in pipeline '{whole}'")
    items.append(text[start:])
    items = [s.strip() for s in items]
    if text.strip() and any(not s for s in items):
        raise PassError(f"empty pass name in pipeline '{whole}'; separate passes with single commas")
    return [s for s in items if s]


def _parse_item(item: str, whole: str) -> tuple[str, dict[str, str]]:
    if "{" not in item:
        return item, {}
    name, _, rest = item.partition("{")
    if not rest.endswith("}"):
        raise PassError(f"text after '}}' in '{item}' of pipeline '{whole}'")
    options: dict[str, str] = {}
    for opt in _split_top_level(rest[:-1], whole):
        key, eq, value = opt.partition("=")
        if not eq or not key.strip():
            raise PassError(f"option '{opt}' of pass '{name.strip()}' must be key=value")
        options[key.strip()] = value.strip()
    return name.strip(), options


# -- the pass manager -------------------------------------------------------------------------------

class Instrument:
    """Observes a pipeline. Every hook is optional."""

    def before_pipeline(self, graph: Graph) -> None: ...

    def before_pass(self, p: Pass, graph: Graph) -> None: ...

    def after_pass(self, p: Pass, graph: Graph, changed: bool) -> None: ...

    def after_pipeline(self, graph: Graph) -> None: ...


class PassManager:
    """Runs passes in order, verifying (and optionally round-tripping) the IR after each one.

    `passes` are Pass instances or pipeline text (`"canonicalize,fuse-activation"` or a sequence of
    names, as in the targets' pipelines). `run(graph)` rewrites the graph in place and returns it;
    `changed` then lists, per pass, whether it changed the graph.
    """

    def __init__(self, passes: Iterable[Pass | str] | str, instruments: Iterable[Instrument] = (),
                 verify_each: bool = True, roundtrip_each: bool = False):
        if isinstance(passes, str):
            passes = [passes]
        self.passes: list[Pass] = []
        for p in passes:
            self.passes.extend(parse_pipeline(p) if isinstance(p, str) else [p])
        self.instruments = list(instruments)
        self.verify_each = verify_each
        self.roundtrip_each = roundtrip_each
        self.changed: list[bool] = []

    def __repr__(self) -> str:
        return f"PassManager('{format_pipeline(self.passes)}')"

    def run(self, graph: Graph) -> Graph:
        if self.verify_each:
            verify_graph(graph)  # a bad input is the caller's error, not the first pass's
        self.changed = []
        for inst in self.instruments:
            inst.before_pipeline(graph)
        done: list[str] = []
        for p in self.passes:
            try:
                for inst in self.instruments:
                    inst.before_pass(p, graph)
                p.requires(graph)
                changed = bool(p.run(graph))
                for inst in self.instruments:
                    inst.after_pass(p, graph, changed)
                if self.verify_each:
                    verify_graph(graph)
                if self.roundtrip_each:
                    check_roundtrip(graph)
            except Exception as e:  # noqa: BLE001 - every failure is reported with its context
                raise _pass_failure(p, done, e) from e
            self.changed.append(changed)
            done.append(p.name)
        for inst in self.instruments:
            inst.after_pipeline(graph)
        return graph


def _pass_failure(p: Pass, done: list[str], cause: BaseException) -> PassError:
    if isinstance(cause, TfcError):
        text = str(cause)
    else:  # a bug in the pass: keep the exception type so the one line is still useful
        text = f"{type(cause).__name__}: {cause}"
    text = text.splitlines()[0] if text else type(cause).__name__
    prefix = f"pass '{p.name}' failed after [{', '.join(done)}]: "
    if text.startswith(prefix):  # requires() or a nested manager already said it
        text = text[len(prefix):]
    err = PassError(prefix + text)
    err.pass_name = p.name  # for tools (--verify-diagnostics) that look at the cause
    err.cause = cause
    return err


def check_roundtrip(graph: Graph) -> None:
    """print -> parse gives a structurally equal graph, and printing that again gives the same text."""
    from tfc.ir.parser import parse
    from tfc.ir.printer import print_graph

    text = print_graph(graph)
    again = parse(text, f"<after {graph.name}>")
    diff = structural_diff(graph, again)
    if diff is not None:
        raise TfcError(f"IR does not round-trip through text: {diff}")
    if print_graph(again) != text:
        raise TfcError("IR does not round-trip through text: printing the reparsed graph differs")


# -- instruments -----------------------------------------------------------------------------------

ALL = "*"


def _print_ir(graph: Graph, elide_weights: bool) -> str:
    from tfc.ir.printer import print_graph

    return print_graph(graph, elide_weights=elide_weights)


class PrintIR(Instrument):
    """MLIR-style IR dumps to a stream (stderr by default), each under a greppable header.

    `before`/`after` are sets of pass names, or ALL. With `after_change`, after-dumps are only
    written for passes that changed the graph (and for every such pass when `after` is empty).
    """

    def __init__(self, before: set[str] | str = frozenset(), after: set[str] | str = frozenset(),
                 after_change: bool = False, elide_weights: bool = False, stream: TextIO | None = None):
        self.before = before
        self.after = ALL if after_change and not after else after
        self.after_change = after_change
        self.elide_weights = elide_weights
        self.stream = stream

    def _emit(self, when: str, p: Pass, graph: Graph) -> None:
        out = self.stream or sys.stderr
        out.write(f"// -----// IR Dump {when} {p.name} //----- //\n")
        out.write(_print_ir(graph, self.elide_weights))
        out.write("\n")
        out.flush()

    def before_pass(self, p, graph):
        if self.before == ALL or p.name in self.before:
            self._emit("Before", p, graph)

    def after_pass(self, p, graph, changed):
        if (self.after == ALL or p.name in self.after) and (changed or not self.after_change):
            self._emit("After", p, graph)


class DumpIRDir(Instrument):
    """Writes `00_input.tir`, `01_<pass>.tir`, ... to a directory: each file is `tfc opt` input.

    Stale numbered dumps from an earlier run are removed first, so the directory tells one story.
    """

    def __init__(self, directory: str, elide_weights: bool = False):
        self.directory = directory
        self.elide_weights = elide_weights
        self.count = 0

    def _write(self, stem: str, graph: Graph) -> None:
        path = os.path.join(self.directory, f"{self.count:02d}_{stem}.tir")
        write_text_atomic(path, _print_ir(graph, self.elide_weights))
        self.count += 1

    def before_pipeline(self, graph):
        os.makedirs(self.directory, exist_ok=True)
        for entry in os.listdir(self.directory):
            if entry.endswith(".tir") and entry[:2].isdigit() and entry[2:3] == "_":
                os.remove(os.path.join(self.directory, entry))
        self.count = 0
        self._write("input", graph)

    def after_pass(self, p, graph, changed):
        self._write(p.name, graph)


class TimePasses(Instrument):
    """Wall time per pass; prints an MLIR-like table when the pipeline ends."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.rows: list[tuple[str, float]] = []
        self._start = 0.0

    def before_pipeline(self, graph):
        self.rows = []

    def before_pass(self, p, graph):
        self._start = time.perf_counter()

    def after_pass(self, p, graph, changed):
        self.rows.append((p.name, time.perf_counter() - self._start))

    def after_pipeline(self, graph):
        out = self.stream or sys.stderr
        total = sum(t for _, t in self.rows) or 1e-12
        rule = "===" + "-" * 66 + "==="
        out.write(f"{rule}\n{'... Pass execution timing report ...':^72}\n{rule}\n")
        out.write(f"  Total Execution Time: {total:.4f} seconds\n\n")
        out.write("  ----Wall Time----  ----Name----\n")
        for name, t in self.rows:
            out.write(f"  {t:8.4f} ({100 * t / total:5.1f}%)  {name}\n")
        out.write(f"  {total:8.4f} (100.0%)  Total\n")
        out.flush()


# -- shared command-line flags ----------------------------------------------------------------------

def add_ir_debug_args(parser) -> None:
    """Adds the IR-debugging flags that `tfc opt` and `tfc compile` share."""
    g = parser.add_argument_group("IR debugging")
    g.add_argument("--print-ir-after-all", action="store_true",
                   help="print the IR to stderr after every pass")
    g.add_argument("--print-ir-before", metavar="PASS", action="append", default=[],
                   help="print the IR before PASS (repeatable, or comma-separated)")
    g.add_argument("--print-ir-after", metavar="PASS", action="append", default=[],
                   help="print the IR after PASS (repeatable, or comma-separated)")
    g.add_argument("--print-ir-after-change", action="store_true",
                   help="print the IR after a pass only when it changed the graph")
    g.add_argument("--dump-ir-dir", metavar="DIR",
                   help="write 00_input.tir, 01_<pass>.tir, ... to DIR (each valid `tfc opt` input)")
    g.add_argument("--time-passes", action="store_true", help="print a pass timing table to stderr")
    g.add_argument("--elide-weights", action="store_true",
                   help="elide large constants in IR dumps (the dumps then no longer reload)")


def _names(values: list[str]) -> set[str]:
    from tfc.passes import PASSES, unknown_pass_message

    names = {n.strip() for v in values for n in v.split(",") if n.strip()}
    for n in sorted(names):
        if n not in PASSES:
            raise PassError(unknown_pass_message(n))
    return names


def instruments_from_args(args, stream: TextIO | None = None) -> list[Instrument]:
    """The instruments the flags of `add_ir_debug_args` ask for."""
    instruments: list[Instrument] = []
    before = _names(getattr(args, "print_ir_before", []) or [])
    after: set[str] | str = ALL if args.print_ir_after_all else _names(args.print_ir_after or [])
    if before or after or args.print_ir_after_change:
        instruments.append(PrintIR(before, after, args.print_ir_after_change,
                                   args.elide_weights, stream))
    if args.dump_ir_dir:
        instruments.append(DumpIRDir(args.dump_ir_dir, args.elide_weights))
    if args.time_passes:
        instruments.append(TimePasses(stream))
    return instruments


def write_text_atomic(path: str, text: str) -> None:
    """Writes via a temporary file in the same directory, so an error never leaves half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
