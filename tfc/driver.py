"""Compile orchestration: model in, generated sources + report out (`tfc.compile`, `tfc compile`).

    model (path | ModelProto | Graph) -> tfc IR -> target pipeline -> memory-planned graph
      -> lower + render (C, Makefile, model.tir) -> report (flash/SRAM vs the target's budget)

Nothing touches the disk until `Artifact.write`, which writes atomically (a temporary directory
renamed into place) so a failed compile leaves no half-written output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from tfc.errors import TfcError
from tfc.ir.core import Graph

PRECISIONS = ("int8", "float32")
_C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Artifact:
    """A compiled model: the final graph, its report, and every output file as text."""

    graph: Graph
    report: dict
    sources: dict[str, str]  # filename -> text

    @property
    def digest(self) -> str:
        """A hash of all sources: equal artifacts build to the same binaries."""
        h = hashlib.sha256()
        for name in sorted(self.sources):
            h.update(name.encode() + b"\0" + self.sources[name].encode() + b"\0")
        return h.hexdigest()

    def write(self, outdir: str | os.PathLike) -> Path:
        """Writes all files into OUTDIR (replacing it as a whole); returns its path.

        An OUTDIR that already holds exactly these files is left untouched, so builds in it stay
        up to date.
        """
        outdir = Path(outdir)
        if outdir.exists() and not outdir.is_dir():
            raise TfcError(f"output path {outdir} exists and is not a directory; choose another -o")
        if outdir.is_dir() and self._is_written_to(outdir):
            return outdir
        outdir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.tmp-", dir=outdir.parent))
        try:
            for name, text in self.sources.items():
                (tmp / name).write_text(text)
            if outdir.exists():
                old = outdir.parent / f".{outdir.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(outdir, old)
                os.rename(tmp, outdir)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, outdir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return outdir

    def _is_written_to(self, outdir: Path) -> bool:
        for name, text in self.sources.items():
            path = outdir / name
            if not path.is_file() or path.read_text() != text:
                return False
        return True


def load_model(model) -> tuple[Graph, str]:
    """The model as a fresh graph, and how the generated files name where it came from."""
    if isinstance(model, Graph):
        return model.clone(), f"IR graph @{model.name}"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise TfcError(f"model file {path} does not exist")
        if path.suffix == ".tir":
            from tfc.ir.parser import parse_file

            return parse_file(str(path)), path.name
        from frontends import import_onnx

        return import_onnx(str(path)), path.name
    import onnx

    if isinstance(model, onnx.ModelProto):
        from frontends import import_onnx

        graph = import_onnx(model)
        return graph, f"ONNX model {graph.name}"
    raise TfcError(f"cannot compile a {type(model).__name__}: pass a path to an .onnx or .tir "
                   "file, an onnx.ModelProto or a tfc.ir.Graph")


def load_calibration(calib) -> dict[str, np.ndarray] | None:
    """A calibration set: an .npz path or a mapping input name -> samples (first axis)."""
    if calib is None:
        return None
    if isinstance(calib, Mapping):
        return {str(k): np.asarray(v) for k, v in calib.items()}
    path = Path(calib)
    if not path.is_file():
        raise TfcError(f"calibration file {path} does not exist; pass a .npz mapping each input "
                       "name to an array of samples")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise TfcError(f"cannot read calibration file {path} ({e}); pass a .npz written by "
                       "numpy.savez") from None


def build_passes(pipeline, precision: str, keep_float_layernorm: bool = False) -> list:
    from tfc.backends.cortex_m7.pipeline import PIPELINES
    from tfc.pipeline import Pass, parse_pipeline

    if pipeline is None:
        recipe = PIPELINES[precision]
        if keep_float_layernorm:  # LayerNorm stays a float32 island: dequantize -> f32 -> quantize
            recipe = tuple(name for name in recipe if name != "scaled-layernorm")
        return parse_pipeline(recipe)
    if isinstance(pipeline, str):
        return parse_pipeline(pipeline)
    passes = []
    for p in pipeline:
        passes.extend([p] if isinstance(p, Pass) else parse_pipeline(p))
    return passes


def compile_model(model, target: str = "stm32f746", *, calib=None, precision: str = "int8",
                  pipeline=None, name: str = "tfc_model", instruments: Iterable = (),
                  allow_over_budget: bool = False, measure_code: bool = False,
                  keep_float_layernorm: bool = False) -> Artifact:
    """See `tfc.compile`."""
    from tfc import __version__
    from tfc.backends import get_target
    from tfc.backends.cortex_m7.build import m7_toolchain_available, measure_code_bytes
    from tfc.backends.cortex_m7.emit import render_report_md, render_sources
    from tfc.backends.cortex_m7.lower import lower_graph
    from tfc.backends.cortex_m7.report import build_report, check_budget
    from tfc.ir.printer import print_graph
    from tfc.pipeline import PassManager

    tgt = get_target(target)
    if precision not in PRECISIONS:
        raise TfcError(f"unknown precision '{precision}'; use one of: {', '.join(PRECISIONS)}")
    if not _C_IDENT.match(name):
        raise TfcError(f"model name '{name}' is not a C identifier; pass --name with letters, "
                       "digits and '_' only (it prefixes every generated symbol)")
    samples = load_calibration(calib)
    graph, source = load_model(model)
    passes = build_passes(pipeline, precision, keep_float_layernorm)
    for p in passes:
        if p.name == "calibrate" and samples is not None:
            p.samples = samples
    PassManager(passes, instruments=instruments).run(graph)

    lowered = lower_graph(graph, name, precision, graph.name)
    sources = render_sources(lowered, tgt, __version__, source)
    code_bytes = measure_code_bytes(sources) if measure_code and m7_toolchain_available() else None
    report = build_report(graph, lowered, tgt, code_bytes=code_bytes, version=__version__)
    if not allow_over_budget:
        check_budget(report)
    sources["model.tir"] = print_graph(graph)
    sources["report.json"] = json.dumps(report, indent=2) + "\n"
    sources["report.md"] = render_report_md(report)
    return Artifact(graph, report, sources)
