"""memory-plan on the test models: arena close to the bound, report fields, picture, guarded runs."""

from __future__ import annotations

import ctypes
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import tfc
from tfc.errors import VerifyError
from tfc.ir import interp
from tfc.ir.quant_math import quantize_float
from tfc.passes.memory_plan import lower_bound_bytes, storage_root
from tfc.passes.verify_memory import check_memory_plan, live_segments

MODELS = Path(__file__).resolve().parents[1] / "models"
FAMILIES = ("resnet8", "dscnn", "mbv2", "hybrid")
_compiled: dict[tuple, object] = {}


def compiled(family: str, precision: str = "int8", **kwargs):
    key = (family, precision)
    if key not in _compiled or kwargs:
        model = MODELS / family / ("qdq.onnx" if precision == "int8" else "ts17.onnx")
        _compiled[key] = tfc.compile(str(model), precision=precision, **kwargs)
    return _compiled[key]


@pytest.mark.parametrize("precision", ["int8", "float32"])
@pytest.mark.parametrize("family", FAMILIES)
def test_arena_is_within_5_percent_of_the_lower_bound(family, precision):
    art = compiled(family, precision)
    check_memory_plan(art.graph)
    report = art.report
    assert report["arena_lower_bound_bytes"] == lower_bound_bytes(art.graph)
    assert report["arena_bytes"] >= report["arena_lower_bound_bytes"] > 0
    assert report["arena_bytes"] / report["arena_lower_bound_bytes"] <= 1.05
    assert report["arena_ratio"] == round(report["arena_bytes"] / report["arena_lower_bound_bytes"], 4)


def test_report_gives_each_layer_its_offset_and_size():
    art = compiled("hybrid")
    ops = {op.results[0].name: op for op in art.graph.ops if op.name != "const"}
    assert [layer["name"] for layer in art.report["layers"]] == list(ops)
    for layer in art.report["layers"]:
        op = ops[layer["name"]]
        offset = op.attrs["arena_offset"][0]
        assert layer["arena_offset"] == (offset if offset >= 0 else None)
        assert layer["out_bytes"] == sum(r.type.nbytes for r in op.results)
        if layer["arena_offset"] is not None:
            assert layer["arena_offset"] + layer["out_bytes"] <= art.report["arena_bytes"]


def test_memory_svg_is_written_and_draws_every_buffer():
    art = compiled("resnet8")
    svg = ET.fromstring(art.sources["memory.svg"])
    rects = [e for e in svg.iter("{http://www.w3.org/2000/svg}rect") if e.find(
        "{http://www.w3.org/2000/svg}title") is not None]
    values = sum(1 for op in art.graph.ops for off in op.attrs.get("arena_offset", [])
                 if off >= 0 and op.name != "reshape")
    scratch = sum(1 for op in art.graph.ops if op.attrs.get("scratch_bytes"))
    assert len(rects) == values + scratch > 0
    assert f"arena {art.report['arena_bytes']} B" in art.sources["memory.svg"]
    assert compiled("resnet8").sources["memory.svg"] == tfc.compile(
        str(MODELS / "resnet8" / "qdq.onnx")).sources["memory.svg"]  # deterministic


# -- host builds: guarded arena (ASan), user-supplied arena --------------------------------------

def _quantized_input(art, family: str) -> np.ndarray:
    spec = art.report["inputs"][0]
    with np.load(MODELS / family / "inputs.npz") as data:
        x = data["input"][:1].reshape(spec["shape"])
    return quantize_float(x, spec["scale"], spec["zero_point"], np.int8)


def _guarded_run(outdir: Path, x: np.ndarray) -> subprocess.CompletedProcess:
    subprocess.run(["make", "-s", "host-guarded"], cwd=outdir, check=True, capture_output=True)
    (binary,) = outdir.glob("*_guarded")
    return subprocess.run([str(binary)], input=x.tobytes(), capture_output=True, timeout=300)


needs_gcc = pytest.mark.needs("gcc", "make")


@pytest.mark.slow
@needs_gcc
@pytest.mark.parametrize("family", ["hybrid", "resnet8"])
def test_guarded_arena_run_is_clean_and_bit_exact(family, tmp_path):
    art = compiled(family)
    outdir = art.write(tmp_path / family)
    x = _quantized_input(art, family)
    proc = _guarded_run(outdir, x)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    want = interp.run(art.graph, [x])[0]
    assert np.array_equal(np.frombuffer(proc.stdout, want.dtype).reshape(want.shape), want)


@pytest.mark.slow
@needs_gcc
def test_guarded_arena_catches_an_overlapping_plan(tmp_path):
    graph = compiled("resnet8").graph.clone()
    # Move a layer's output onto a value that a residual add still needs and that this layer
    # does not read: the kernel then silently overwrites a live buffer.
    segments = live_segments(graph)
    victim, culprit = next((a, b) for b in segments for a in segments
                           if b.value is not None and a.value is not None
                           and a.start < b.start < a.end and a.nbytes == b.nbytes
                           and all(storage_root(v) is not a.value for v in b.value.producer.operands))
    victim_offset = graph.value(victim.value.name).producer.attrs["arena_offset"][0]
    graph.value(culprit.value.name).producer.attrs["arena_offset"] = [victim_offset]
    with pytest.raises(VerifyError, match="overlaps"):
        check_memory_plan(graph)  # the static checker sees it too
    art = tfc.compile(graph, pipeline=(), name="broken")
    outdir = art.write(tmp_path / "broken")
    proc = _guarded_run(outdir, _quantized_input(compiled("resnet8"), "resnet8"))
    assert proc.returncode != 0
    assert b"tfc guarded arena: step" in proc.stderr or b"AddressSanitizer" in proc.stderr


@pytest.mark.slow
@needs_gcc
def test_user_supplied_arena_gives_the_same_outputs(tmp_path):
    art = compiled("mbv2")
    outdir = art.write(tmp_path / "mbv2")
    subprocess.run(["make", "-s", "host"], cwd=outdir, check=True, capture_output=True)
    lib = ctypes.CDLL(str(outdir / "libtfc_model.so"))
    run_with_arena = lib.tfc_model_run_with_arena
    run_with_arena.restype = ctypes.c_int
    x = _quantized_input(art, "mbv2")
    want = interp.run(art.graph, [x])[0]
    raw = np.full(art.report["arena_bytes"] + 32, 0x5A, np.uint8)  # garbage-filled, user-owned
    start = (-raw.ctypes.data) % 16
    arena = raw[start:start + art.report["arena_bytes"]]
    out = np.zeros(want.shape, want.dtype)
    assert run_with_arena(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data),
                          ctypes.c_void_p(arena.ctypes.data)) == 0
    assert np.array_equal(out, want)
    misaligned = raw[start + 1:]
    assert run_with_arena(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data),
                          ctypes.c_void_p(misaligned.ctypes.data)) == -1
