"""The `tfc` command line: a thin argparse layer over the library.

    tfc opt FILE.tir -p canonicalize,fuse-activation [-o OUT.tir] [--split-input-file]
    tfc import MODEL.onnx [-o MODEL.tir]

Each subcommand is an `add_<name>_command(subparsers)` function that registers its parser and
sets `func`; `SUBCOMMANDS` lists them in help order. Exit codes: 0 success, 1 a user error
(a `TfcError`, printed as one line, no traceback unless `--traceback`), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from tfc.errors import ParseError, TfcError
from tfc.pipeline import (PassManager, add_ir_debug_args, instruments_from_args, parse_pipeline,
                          write_text_atomic)

SPLIT_MARKER = "// -----"
_SPLIT_LINE = re.compile(r"^//[ \t]*-----[ \t]*$", re.M)  # not \s*: it eats the newline


# -- shared helpers -------------------------------------------------------------------------------

def read_text(path: str) -> str:
    """The text of `path` (`-` is stdin); a missing file is a user error."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise TfcError(f"cannot read '{path}': {e.strerror or e}") from None


def write_output(path: str | None, text: str) -> None:
    """Writes `text` to `path` atomically, or to stdout when `path` is None or `-`."""
    if path in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise TfcError(f"cannot write '{path}': directory '{parent}' does not exist")
    write_text_atomic(path, text)


def _common_flags() -> argparse.ArgumentParser:
    """Flags every subcommand accepts after its name (the top-level parser has them too)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show the Python traceback of an error")
    return common


# -- tfc opt ----------------------------------------------------------------------------------------

def add_opt_command(subparsers) -> None:
    p = subparsers.add_parser("opt", parents=[_common_flags()],
                              help="run passes on IR text (IR in, IR out)",
                              description="Parse IR text, run a pass pipeline, print the IR.")
    p.add_argument("file", nargs="?", metavar="FILE.tir", help="input IR ('-' for stdin)")
    p.add_argument("-p", "--pass-pipeline", metavar="PIPELINE", default="",
                   help="passes to run, e.g. 'canonicalize,sparse-storage{min-sparsity=0.7}'")
    p.add_argument("-o", "--output", metavar="OUT", help="write the IR here instead of stdout")
    p.add_argument("--split-input-file", action="store_true",
                   help=f"treat each '{SPLIT_MARKER}'-separated chunk as its own input")
    p.add_argument("--verify-diagnostics", action="store_true",
                   help="check errors against '// expected-error@+N {{msg}}' annotations")
    p.add_argument("--no-verify-each", dest="verify_each", action="store_false",
                   help="do not verify the IR after every pass")
    p.add_argument("--list-passes", action="store_true", help="list the known passes and exit")
    add_ir_debug_args(p)
    p.set_defaults(func=run_opt)


def split_input(text: str, split: bool) -> list[str]:
    """The chunks to process; each keeps its line numbers (earlier lines become blank lines)."""
    if not split:
        return [text]
    chunks, offset = [], 0
    for piece in _SPLIT_LINE.split(text):
        chunks.append("\n" * offset + piece)
        offset += piece.count("\n")
    return chunks


def run_opt(args) -> int:
    if args.list_passes:
        return list_passes()
    if args.file is None:
        raise _UsageError("opt: the following arguments are required: FILE.tir")
    text = read_text(args.file)
    passes_text = args.pass_pipeline
    parse_pipeline(passes_text)  # fail on a bad pipeline before reading any IR
    chunks = split_input(text, args.split_input_file)
    if args.verify_diagnostics:
        outputs, failures = verify_diagnostics(chunks, args.file, lambda c: _opt_chunk(c, args))
        for line in failures:
            print(line, file=sys.stderr)
        write_output(args.output, f"{SPLIT_MARKER}\n".join(o for o in outputs if o is not None))
        return 1 if failures else 0
    outputs = [_opt_chunk(chunk, args) for chunk in chunks]
    write_output(args.output, f"{SPLIT_MARKER}\n".join(outputs))
    return 0


def _opt_chunk(text: str, args) -> str:
    from tfc.ir.parser import parse
    from tfc.ir.printer import print_graph

    graph = parse(text, args.file)
    manager = PassManager(parse_pipeline(args.pass_pipeline), instruments_from_args(args),
                          verify_each=args.verify_each)
    manager.run(graph)
    return print_graph(graph)


# `// expected-error@+1 {{msg}}`, `@-2`, `@below`, `@above`, or no `@` for the annotation's own line.
_EXPECTED = re.compile(r"//\s*expected-error\s*(?:@(?P<where>[+-]\d+|below|above))?\s*\{\{(?P<msg>.*?)\}\}")
_ERROR_LINE = re.compile(r":(\d+):(\d+): error:")


def expected_errors(text: str) -> list[tuple[int, str, int]]:
    """(target line, message, annotation line) for each expected-error annotation in `text`."""
    lines = text.split("\n")
    found = []
    for index, line in enumerate(lines):
        m = _EXPECTED.search(line)
        if not m:
            continue
        where, target = m.group("where"), index
        if where in ("below", "above"):  # the nearest line that is not an annotation itself
            step = 1 if where == "below" else -1
            target += step
            while 0 <= target < len(lines) and _EXPECTED.search(lines[target]):
                target += step
        elif where:
            target += int(where)
        found.append((target + 1, m.group("msg"), index + 1))
    return found


def error_line(e: BaseException) -> int | None:
    """The source line an error points at: its own position, or one named in its causes."""
    while e is not None:
        if isinstance(e, ParseError):
            return e.line
        m = _ERROR_LINE.search(str(e))
        if m:
            return int(m.group(1))
        e = getattr(e, "cause", None) or e.__cause__
    return None


def verify_diagnostics(chunks: list[str], path: str, process) -> tuple[list[str | None], list[str]]:
    """Runs `process` on each chunk and matches its error with the chunk's annotations.

    Returns the outputs (None for a chunk that failed) and one message per mismatch: an expected
    error that did not happen, or an error nobody expected.
    """
    outputs, failures = [], []
    for chunk in chunks:
        expected = expected_errors(chunk)
        try:
            outputs.append(process(chunk))
            error = None
        except TfcError as e:
            outputs.append(None)
            error = e
        unmatched = list(expected)
        if error is not None:
            line, text = error_line(error), str(error)
            hit = next((x for x in unmatched if x[0] == line and x[1] in text), None)
            if hit is None:
                failures.append(f"{path}:{line or '?'}: error: unexpected error: {text.splitlines()[0]}")
            else:
                unmatched.remove(hit)
        for target, msg, at in unmatched:
            failures.append(f"{path}:{at}: error: expected error at line {target} was not "
                            f"produced: {{{{{msg}}}}}")
    return outputs, failures


def list_passes() -> int:
    from tfc.passes import PASSES, get_pass

    for name in sorted(PASSES):
        try:
            summary = get_pass(name).summary()
        except TfcError:
            summary = "(not available in this build)"
        print(f"  {name:<20} {summary}")
    return 0


# -- tfc import ---------------------------------------------------------------------------------

def add_import_command(subparsers) -> None:
    p = subparsers.add_parser("import", parents=[_common_flags()],
                              help="translate an ONNX model to IR text (front end only)",
                              description="Import an ONNX model and print its IR.")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("-o", "--output", metavar="MODEL.tir", help="write the IR here instead of stdout")
    p.add_argument("--name", help="graph name (default: the model file's stem)")
    p.set_defaults(func=run_import)


def run_import(args) -> int:
    try:
        from frontends import import_onnx
    except ImportError:
        raise TfcError("the ONNX frontend (frontends.import_onnx) is not available in this "
                       "installation of tfc") from None
    from tfc.ir.printer import print_graph

    if not os.path.exists(args.model):
        raise TfcError(f"cannot read '{args.model}': no such file")
    graph = import_onnx(args.model, name=args.name)
    write_output(args.output, print_graph(graph))
    return 0


# -- tfc compile / run / targets (the backend) -------------------------------------------------------

def add_compile_command(subparsers) -> None:
    from tfc.backends import TARGETS

    p = subparsers.add_parser("compile", parents=[_common_flags()],
                              help="compile an ONNX model to C for a microcontroller",
                              description="Compile a model to C sources, a Makefile and a report.")
    p.add_argument("model", metavar="MODEL.onnx", help="the model (.onnx, or .tir IR text)")
    p.add_argument("--target", default="stm32f746", metavar="TARGET",
                   help=f"the microcontroller (known: {', '.join(sorted(TARGETS))}; default stm32f746)")
    p.add_argument("-o", "--output", metavar="OUTDIR",
                   help="output directory, replaced as a whole (default: build/<model-stem>)")
    p.add_argument("--calib", metavar="CALIB.npz",
                   help="calibration samples for a float model: each input name -> samples on axis 0")
    p.add_argument("--precision", choices=("int8", "float32"), default="int8",
                   help="int8 (default) or a float32 reference build")
    p.add_argument("--keep-float-layernorm", action="store_true",
                   help="int8: keep LayerNorm as a float32 island instead of the integer "
                        "Scaled-LayerNorm (to compare their accuracy)")
    p.add_argument("--name", default="tfc_model", metavar="PREFIX",
                   help="C prefix of every generated symbol (default tfc_model)")
    p.add_argument("-p", "--pass-pipeline", metavar="PIPELINE",
                   help="replace the target's pass pipeline (it must end with memory-plan)")
    p.add_argument("--allow-over-budget", action="store_true",
                   help="write the output even when the model exceeds the target's flash or SRAM "
                        "(by default that is an error and nothing is written)")
    p.add_argument("--no-measure-code", dest="measure_code", action="store_false",
                   help="estimate code size instead of measuring it with arm-none-eabi-gcc")
    add_ir_debug_args(p)
    p.set_defaults(func=run_compile)


def run_compile(args) -> int:
    import tfc

    outdir = args.output or os.path.join("build", os.path.splitext(os.path.basename(args.model))[0])
    artifact = tfc.compile(args.model, args.target, calib=args.calib, precision=args.precision,
                           pipeline=args.pass_pipeline, name=args.name,
                           instruments=instruments_from_args(args),
                           allow_over_budget=args.allow_over_budget, measure_code=args.measure_code,
                           keep_float_layernorm=args.keep_float_layernorm)
    artifact.write(outdir)
    r = artifact.report
    code = r["code_bytes"] if r["code_bytes"] is not None else r["code_bytes_estimate"]
    print(f"compiled {r['model']} ({r['precision']}) for {r['target']} -> {outdir}")
    print(f"  flash {r['flash_bytes']} B of {r['budget']['flash_bytes']} "
          f"(weights {r['weights_bytes']} + code {code}, {r['flash_method']})")
    print(f"  SRAM  {r['sram_bytes']} B of {r['budget']['sram_bytes']} "
          f"(arena {r['arena_bytes']}, lower bound {r['arena_lower_bound_bytes']}; "
          f"inputs/outputs {r['io_bytes']})")
    print(f"  fits: {'yes' if r['fits'] else 'NO'}")
    return 0


def add_run_command(subparsers) -> None:
    p = subparsers.add_parser("run", parents=[_common_flags()],
                              help="build and run a compiled model on inputs",
                              description="Run a compiled OUTDIR. Inputs are float, as the ONNX "
                                          "model takes them (NCHW); --raw passes int8 as is.")
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--input", action="append", required=True, metavar="X.npy",
                   help="an input array (.npy; repeat in input order), or one .npz keyed by input name")
    p.add_argument("-o", "--output", metavar="Y.npy",
                   help="write the output (.npy; .npz for all outputs by name)")
    p.add_argument("--on", choices=("host", "m7"), default="host",
                   help="host (gcc shared library) or m7 (emulated Cortex-M7: arm-none-eabi-gcc + Unicorn)")
    p.add_argument("--raw", action="store_true", help="read and write the int8 tensors as they are")
    p.add_argument("--profile", action="store_true", help="write OUTDIR/profile.json (needs --on m7)")
    p.set_defaults(func=run_run)


def _load_array_file(path: str):
    import numpy as np

    if not os.path.isfile(path):
        raise TfcError(f"input file '{path}' does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TfcError(f"cannot read input '{path}' ({e}); pass a .npy or .npz file") from None
    if hasattr(data, "files"):
        with data:
            return {k: data[k] for k in data.files}
    return data


def run_run(args) -> int:
    import numpy as np

    import tfc
    from tfc.backends.cortex_m7.host_run import load_report

    if args.profile and args.on != "m7":
        raise TfcError("--profile measures the emulated Cortex-M7; add --on m7")
    loaded = [_load_array_file(p) for p in args.input]
    inputs = loaded[0] if len(loaded) == 1 and isinstance(loaded[0], dict) else loaded
    outputs = tfc.run(args.outdir, inputs, on=args.on, raw=args.raw, profile=args.profile)
    specs = load_report(args.outdir)["outputs"]
    for spec, y in zip(specs, outputs):
        top = np.argmax(y.reshape(-1, y.shape[-1]), axis=-1) if y.ndim else np.array([0])
        shown = top[0] if top.size == 1 else top.tolist()
        print(f"output %{spec['name']}: shape {list(y.shape)} {y.dtype}, argmax {shown}")
    if args.profile:
        _print_profile(os.path.join(args.outdir, "profile.json"))
    if args.output:
        if args.output.endswith(".npz"):
            np.savez(args.output, **{spec["name"]: y for spec, y in zip(specs, outputs)})
        elif len(outputs) == 1:
            np.save(args.output, outputs[0])
        else:
            raise TfcError(f"the model has {len(outputs)} outputs; write them with -o OUT.npz")
    return 0


def _print_profile(path: str) -> None:
    import json

    with open(path) as f:
        prof = json.load(f)
    print(f"m7 profile: {prof['instructions']} instructions, ~{prof['cycles_estimate']} cycles "
          f"(±30%), stack {prof['stack_bytes']} B, flash {prof['flash_bytes']} B, "
          f"SRAM {prof['sram_bytes']} B; per layer in {path}")


def add_targets_command(subparsers) -> None:
    p = subparsers.add_parser("targets", parents=[_common_flags()],
                              help="list the known targets and their memory budgets")
    p.set_defaults(func=run_targets)


def run_targets(args) -> int:
    from tfc.backends import TARGETS

    for name in sorted(TARGETS):
        print(TARGETS[name].describe())
    return 0


# -- tfc validate -----------------------------------------------------------------------------------

def add_validate_command(subparsers) -> None:
    p = subparsers.add_parser("validate", parents=[_common_flags()],
                              help="compare a compiled model with onnxruntime, per output and per layer",
                              description="Run the compiled OUTDIR and onnxruntime on the same inputs; "
                                          "report per-output top-1 agreement, max abs error and SQNR, "
                                          "and per-layer SQNR of the int8 activations.")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model OUTDIR was compiled from")
    p.add_argument("outdir", metavar="OUTDIR", help="the output of `tfc compile`")
    p.add_argument("--data", metavar="X.npz",
                   help="inputs: each input name -> samples on axis 0 (default: random normal "
                        "samples, seed 0)")
    p.add_argument("--on", choices=("host", "m7", "interp"), default="host",
                   help="where the final outputs come from: host build (default), emulated "
                        "Cortex-M7, or the IR interpreter only (no C build)")
    p.add_argument("--samples", type=int, metavar="N", help="use at most N samples")
    p.add_argument("--json", metavar="OUT.json",
                   help="write the report as JSON here (default OUTDIR/validate.json)")
    p.set_defaults(func=run_validate)


def run_validate(args) -> int:
    import tfc

    if args.samples is not None and args.samples < 1:
        raise _UsageError("validate: --samples must be at least 1")
    report = tfc.validate(args.model, args.outdir, data=args.data, on=args.on, samples=args.samples)
    json_path = args.json or os.path.join(args.outdir, "validate.json")
    report.write_json(json_path)
    sys.stdout.write(report.format_table())
    print(f"  JSON report: {json_path}")
    return 0


# -- the entry point --------------------------------------------------------------------------------

# Help order. The backend adds compile, run and targets here.
SUBCOMMANDS = [add_opt_command, add_import_command, add_compile_command, add_run_command,
               add_validate_command, add_targets_command]


class _UsageError(Exception):
    """Bad usage found after argparse (exit 2, like argparse's own errors)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfc", description="tfc: an ahead-of-time compiler for INT8 models on Cortex-M7.")
    parser.add_argument("--traceback", action="store_true",
                        help="show the Python traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_command in SUBCOMMANDS:
        add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage
    try:
        return int(args.func(args) or 0)
    except _UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"tfc: error: {e}", file=sys.stderr)
        return 2
    except TfcError as e:
        if args.traceback:
            raise
        print(format_error(e), file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of our stdout went away (`tfc opt ... | head`): that is not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def format_error(e: TfcError) -> str:
    """One line `tfc: error: ...`; a parse error adds its source line and caret (it says 'error:')."""
    if isinstance(e, ParseError):
        return e.render()
    return f"tfc: error: {e}"


if __name__ == "__main__":
    sys.exit(main())
