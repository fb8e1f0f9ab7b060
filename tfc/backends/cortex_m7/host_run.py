"""`tfc run --on host`: build the generated C as a shared library and call it through ctypes.

Inputs arrive as the ONNX model takes them (float, NCHW); they are quantized with the model's own
input parameters (from report.json) and the outputs dequantized, unless `raw`. A leading batch
axis (a stack of samples) runs the model once per sample.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tfc.backends.cortex_m7.build import make
from tfc.errors import TfcError
from tfc.ir.quant_math import dequantize_int, quantize_float
from tfc.ir.types import numpy_dtype

_loaded: dict[str, ctypes.CDLL] = {}


def load_report(outdir: str | os.PathLike) -> dict:
    path = Path(outdir) / "report.json"
    if not path.is_file():
        raise TfcError(f"{outdir} is not a tfc output directory (no report.json); "
                       "create it with `tfc compile MODEL.onnx -o DIR`")
    return json.loads(path.read_text())


def load_host_library(outdir: str | os.PathLike, prefix: str) -> ctypes.CDLL:
    """Builds lib<prefix>.so if needed and loads a content-addressed copy of it.

    The copy makes a rebuilt library load fresh (dlopen caches by path) in the same process.
    """
    make(outdir, "host")
    built = Path(outdir) / f"lib{prefix}.so"
    digest = hashlib.sha256(built.read_bytes()).hexdigest()[:20]
    if digest not in _loaded:
        cache = Path(tempfile.gettempdir()) / f"tfc-host-{os.getuid()}"
        cache.mkdir(exist_ok=True)
        copy = cache / f"lib{prefix}-{digest}.so"
        if not copy.exists():
            tmp = copy.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(built, tmp)
            os.replace(tmp, copy)
        lib = ctypes.CDLL(str(copy))
        fn = getattr(lib, f"{prefix}_run_multi")
        fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]
        fn.restype = ctypes.c_int
        _loaded[digest] = lib
    return _loaded[digest]


def _by_position(inputs, specs: list[dict]) -> list[np.ndarray]:
    if isinstance(inputs, dict):
        missing = [s["name"] for s in specs if s["name"] not in inputs]
        if missing:
            raise TfcError(f"no value given for model input '{missing[0]}'; "
                           f"inputs are {[s['name'] for s in specs]}")
        return [np.asarray(inputs[s["name"]]) for s in specs]
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    inputs = [np.asarray(x) for x in inputs]
    if len(inputs) != len(specs):
        raise TfcError(f"the model takes {len(specs)} inputs ({[s['name'] for s in specs]}), "
                       f"got {len(inputs)}")
    return inputs


def _samples(x: np.ndarray, spec: dict) -> np.ndarray:
    """x as an array of samples, each of the input's exact shape."""
    shape = tuple(spec["shape"])
    if x.shape == shape:
        return x[None]
    if x.ndim == len(shape) and shape and shape[0] == 1 and x.shape[1:] == shape[1:]:
        return x.reshape((x.shape[0],) + shape)
    if x.shape[1:] == shape:
        return x
    raise TfcError(f"input '{spec['name']}' must have shape {list(shape)} (or a stack of them), "
                   f"got {list(x.shape)}")


def _to_device(x: np.ndarray, spec: dict, raw: bool) -> np.ndarray:
    dtype = numpy_dtype(spec["dtype"])
    if raw or spec["scale"] is None:
        if raw and np.issubdtype(dtype, np.integer) and np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(dtype)
            if x.size and (x.min() < info.min or x.max() > info.max):
                raise TfcError(f"raw input '{spec['name']}' has values outside {spec['dtype']}")
        return np.ascontiguousarray(x, dtype=dtype)
    return np.ascontiguousarray(quantize_float(x, spec["scale"], spec["zero_point"], dtype))


def _host_executor(outdir: str | os.PathLike, report: dict):
    """A function running one sample (device-typed inputs -> outputs) in the host library."""
    lib = load_host_library(outdir, report["prefix"])
    run_multi = getattr(lib, f"{report['prefix']}_run_multi")

    def execute(args: list[np.ndarray]) -> list[np.ndarray]:
        outs = [np.zeros(spec["shape"], numpy_dtype(spec["dtype"])) for spec in report["outputs"]]
        in_ptrs = (ctypes.c_void_p * len(args))(*[a.ctypes.data for a in args])
        out_ptrs = (ctypes.c_void_p * len(outs))(*[o.ctypes.data for o in outs])
        rc = run_multi(in_ptrs, out_ptrs)
        if rc != 0:
            raise TfcError(f"{report['prefix']}_run_multi returned {rc}")
        return outs

    return execute


def run_on_host(outdir: str | os.PathLike, inputs, raw: bool = False, execute=None) -> list[np.ndarray]:
    """Runs every sample through `execute` (default: the host library; the M7 emulator passes its
    own), quantizing inputs and dequantizing outputs unless `raw`."""
    report = load_report(outdir)
    if execute is None:
        execute = _host_executor(outdir, report)
    in_specs, out_specs = report["inputs"], report["outputs"]
    samples = [_samples(x, s) for x, s in zip(_by_position(inputs, in_specs), in_specs)]
    counts = {len(s) for s in samples}
    if len(counts) != 1:
        raise TfcError(f"inputs hold different numbers of samples: {[len(s) for s in samples]}")
    n = counts.pop()
    results: list[list[np.ndarray]] = [[] for _ in out_specs]
    for k in range(n):
        args = [_to_device(s[k], spec, raw) for s, spec in zip(samples, in_specs)]
        outs = execute(args)
        for j, (o, spec) in enumerate(zip(outs, out_specs)):
            if not raw and spec["scale"] is not None:
                o = dequantize_int(o, spec["scale"], spec["zero_point"])
            results[j].append(o)
    given = _by_position(inputs, in_specs)
    if all(x.shape == tuple(spec["shape"]) for x, spec in zip(given, in_specs)):
        return [r[0] for r in results]
    # Samples stacked on a new axis come back stacked; samples concatenated along a batch axis
    # of size 1 come back concatenated.
    stacked = any(x.ndim == len(spec["shape"]) + 1 for x, spec in zip(given, in_specs))
    return [np.stack(r) if stacked or tuple(spec["shape"])[:1] != (1,) else np.concatenate(r)
            for r, spec in zip(results, out_specs)]


def run(outdir: str | os.PathLike, inputs, on: str = "host", raw: bool = False,
        profile: bool = False) -> list[np.ndarray]:
    """Runs a compiled model (see module docstring); returns one array per model output.

    on="m7" runs on the emulated Cortex-M7; `profile` then writes OUTDIR/profile.json (the counts
    of the first sample)."""
    if on == "m7":
        from tfc.backends.cortex_m7.emulator import ModelOnM7, write_profile

        model = ModelOnM7(outdir)
        first: list[dict] = []

        def execute(args: list[np.ndarray]) -> list[np.ndarray]:
            outs = model.run_raw(args)
            if profile and not first:
                first.append(model.profile())
            return outs

        outputs = run_on_host(outdir, inputs, raw, execute=execute)
        if first:
            write_profile(outdir, first[0])
        return outputs
    if on != "host":
        raise TfcError(f"unknown run target '{on}'; use 'host' or 'm7'")
    if profile:
        raise TfcError("profile=True measures the emulated Cortex-M7; pass on='m7'")
    return run_on_host(outdir, inputs, raw)
