#!/usr/bin/env python3
"""Per-kernel micro-benchmark on the emulated Cortex-M7: executed instructions per MAC.

    python bench/kernels.py                # prints the table and rewrites its section of docs/benchmarks.md
    python bench/kernels.py --out -        # print only

Each layer is a one-op int8 graph (random weights and requantization) with the shapes of the
issue's CMSIS-NN anchors, compiled with `tfc.compile` and linked twice for the STM32F746: the
default build (the Cortex-M7 DSP path: SXTB16 + SMLAD) and `-DTFC_NO_DSP` (the same kernels with
the portable C primitives). Both builds run on the emulator; their outputs must equal the IR
interpreter's bit for bit. The figure is the layer's executed instructions (per-layer markers)
divided by its MACs; elementwise and pooling layers are given per output element instead.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tfc  # noqa: E402
from tfc.backends.cortex_m7 import m7_build  # noqa: E402
from tfc.backends.cortex_m7.emulator import M7Emulator, profile_dict  # noqa: E402
from tfc.backends.cortex_m7.host_run import load_report  # noqa: E402
from tfc.ir import interp  # noqa: E402
from tfc.ir.core import Builder, Graph  # noqa: E402
from tfc.ir.quant_math import add_multipliers, quantize_multiplier  # noqa: E402
from tfc.ir.types import Quant, TensorType  # noqa: E402

SECTION = "## Dense int8 kernels on the emulated Cortex-M7"
COMMAND = "python bench/kernels.py"


# -- the layers -------------------------------------------------------------------------------------

def _qtype(shape, zp=-3, scale=0.05) -> TensorType:
    return TensorType(tuple(shape), "i8", Quant.per_tensor(scale, zp))


def _requant(rng, channels: int, reduction: int) -> dict:
    pairs = [quantize_multiplier(float(r)) for r in rng.uniform(0.004, 0.02, channels) / np.sqrt(reduction)]
    return dict(input_zp=-3, output_zp=4, multiplier=[m for m, _ in pairs],
                shift=[s for _, s in pairs], act_min=-128, act_max=127)


def _weights(rng, shape) -> np.ndarray:
    return rng.integers(-127, 128, size=shape).astype(np.int8)


def conv(h, w, c, o, k, depthwise=False):
    def build(b: Builder, rng):
        x = b.graph.add_input(_qtype((1, h, w, c)), "x")
        groups, per_group = (c, 1) if depthwise else (1, c)
        wt = b.const(_weights(rng, (o, k, k, per_group)), "w")
        bias = b.const(rng.integers(-3000, 3000, o).astype(np.int32), "b")
        return b.op("conv2d", [x, wt, bias], name_hint="layer", strides=[1, 1], pads=[k // 2] * 4,
                    dilations=[1, 1], group=groups, layout="nhwc",
                    **_requant(rng, o, k * k * per_group))
    return build


def linear(tokens, k, n):
    def build(b: Builder, rng):
        x = b.graph.add_input(_qtype((1, tokens, k)), "x")
        wt = b.const(_weights(rng, (n, k)), "w")
        bias = b.const(rng.integers(-3000, 3000, n).astype(np.int32), "b")
        return b.op("linear", [x, wt, bias], name_hint="layer", **_requant(rng, n, k))
    return build


def attention_matmul(heads, m, k, n, split_heads=False):
    """[heads, m, k] @ [heads, k, n]; `split_heads`: the operands stay token-major as the
    projections wrote them ([m, heads, k] and [n, heads, k], i.e. K^T) and the result is written
    back token-major ([m, heads, n]), the multi-head split/merge read and written in place."""
    def build(b: Builder, rng):
        mult, shift = quantize_multiplier(0.01 / np.sqrt(k))
        attrs = dict(a_zp=-5, b_zp=7, output_zp=1, multiplier=mult, shift=shift,
                     act_min=-128, act_max=127)
        if split_heads:
            a = b.graph.add_input(_qtype((1, m, heads, k), zp=-5), "q")
            c = b.graph.add_input(_qtype((1, n, heads, k), zp=7), "k")
            attrs.update(a_perm=[0, 2, 1, 3], b_perm=[0, 2, 3, 1], y_perm=[0, 2, 1, 3])
        else:
            a = b.graph.add_input(_qtype((1, heads, m, k), zp=-5), "q")
            c = b.graph.add_input(_qtype((1, heads, k, n), zp=7), "kt")
        return b.op("matmul", [a, c], name_hint="layer", **attrs)
    return build


def add(h, w, c, channel_broadcast=False):
    def build(b: Builder, rng):
        a = b.graph.add_input(_qtype((1, h, w, c), zp=-5), "a")
        d = b.graph.add_input(_qtype((c,) if channel_broadcast else (1, h, w, c), zp=9), "d")
        am, bm, shift = add_multipliers(0.5 * 2.1, 0.45 * 2.1)
        return b.op("add", [a, d], name_hint="layer", a_zp=-5, b_zp=9, output_zp=2,
                    a_multiplier=am, b_multiplier=bm, shift=shift, act_min=-128, act_max=127)
    return build


def pool(h, w, c, kind):
    def build(b: Builder, rng):
        x = b.graph.add_input(_qtype((1, h, w, c)), "x")
        attrs = dict(kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], layout="nhwc")
        if kind == "maxpool2d":
            return b.op("maxpool2d", [x], name_hint="layer", **attrs)
        mult, shift = quantize_multiplier(1 / 256 * 0.9)
        return b.op("avgpool2d", [x], name_hint="layer", input_zp=-3, output_zp=0,
                    multiplier=mult, shift=shift, act_min=-128, act_max=127, **attrs)
    return build


def requantize(h, w, c):
    def build(b: Builder, rng):
        x = b.graph.add_input(_qtype((1, h, w, c)), "x")
        mult, shift = quantize_multiplier(0.7)
        return b.op("requantize", [x], name_hint="layer", input_zp=-3, output_zp=6,
                    multiplier=mult, shift=shift, act_min=-128, act_max=127)
    return build


@dataclass(frozen=True)
class Layer:
    label: str
    build: Callable
    anchor: float | None  # CMSIS-NN instructions per MAC (issue 3), None where there is none
    per: str = "MAC"      # "MAC", or "element" for layers without MACs


LAYERS = [
    Layer("conv 3x3 16x16x32->32", conv(16, 16, 32, 32, 3), 1.93),
    Layer("conv 3x3 32x32x3->16 (stem)", conv(32, 32, 3, 16, 3), 4.86),
    Layer("pointwise 1x1 16x16x64->64", conv(16, 16, 64, 64, 1), 2.03),
    Layer("depthwise 3x3 16x16x64", conv(16, 16, 64, 64, 3, depthwise=True), 8.48),
    Layer("FC 64 tokens x 64->192", linear(64, 64, 192), 2.66),
    Layer("FC 64 tokens x 192->64", linear(64, 192, 64), 2.14),
    Layer("attention matmul 4 heads 64x16 @ 16x64", attention_matmul(4, 64, 16, 64), None),
    Layer("attention Q.K^T 2 heads 64x16 @ 16x64, heads split in place",
          attention_matmul(2, 64, 16, 64, split_heads=True), None),
    Layer("attention A.V 2 heads 64x64 @ 64x16", attention_matmul(2, 64, 64, 16), None),
    Layer("matmul 128x64 @ 64x128", attention_matmul(1, 128, 64, 128), None),
    Layer("add 16x16x64", add(16, 16, 64), None, "element"),
    Layer("add 16x16x64 + [64] (channel broadcast)", add(16, 16, 64, channel_broadcast=True), None,
          "element"),
    Layer("maxpool 2x2 16x16x64", pool(16, 16, 64, "maxpool2d"), None, "element"),
    Layer("avgpool 2x2 16x16x64", pool(16, 16, 64, "avgpool2d"), None, "element"),
    Layer("requantize 16x16x64", requantize(16, 16, 64), None, "element"),
]


# -- measuring --------------------------------------------------------------------------------------

def layer_graph(layer: Layer, seed: int = 0) -> Graph:
    g = Graph("bench")
    b = Builder(g)
    g.outputs = [layer.build(b, np.random.default_rng(seed))]
    return g


def build_elf(outdir: Path, report: dict, portable: bool) -> Path:
    """The model's ELF with per-layer markers, optionally with the DSP path disabled."""
    build = outdir / "build" / ("m7-portable" if portable else "m7-dsp")
    build.mkdir(parents=True, exist_ok=True)
    (build / "tfc_m7_io.h").write_text(m7_build.io_header(report))
    sources = sorted(p for p in outdir.glob("*.c") if p.name != "harness.c")
    defines = {"TFC_PROFILE": "1", **({"TFC_NO_DSP": "1"} if portable else {})}
    return m7_build.compile_elf(sources + [m7_build.HARNESS_C], build / "model.elf",
                                include_dirs=[outdir, build], defines=defines)


def run_layer(outdir: Path, graph: Graph, inputs: list[np.ndarray], portable: bool) -> dict:
    report = load_report(outdir)
    elf = m7_build.read_elf(build_elf(outdir, report, portable))
    emulator = M7Emulator(elf)
    io = elf.symbol("tfc_m7_io")
    in_offsets, out_offsets = m7_build.io_offsets(report)
    for x, offset in zip(inputs, in_offsets):
        emulator.write(io + offset, x.tobytes())
    counts = emulator.reset_and_run()
    want = interp.run(graph, inputs)[0]
    got = np.frombuffer(emulator.read(io + out_offsets[0], want.nbytes), want.dtype).reshape(want.shape)
    if counts.status != 0 or not np.array_equal(got, want):
        raise SystemExit(f"{outdir.name} ({'portable' if portable else 'dsp'}): the emulated output "
                         f"differs from the interpreter in {int((got != want).sum())} elements")
    layers = profile_dict(report, counts, elf)["layers"]
    (layer,) = [entry for entry in layers if entry["op"] not in ("const",)]
    return {"instructions": layer["instructions"], "macs": layer["macs"], "elements": want.size,
            "kernel": _kernel_of(outdir)}


def _kernel_of(outdir: Path) -> str:
    calls = re.findall(r"\b(tfc_\w+_(?:s8|s8_\w+))\(", (outdir / "model.c").read_text())
    return calls[0] if calls else "?"


def measure(layer: Layer, workdir: Path) -> dict:
    graph = layer_graph(layer)
    outdir = workdir / re.sub(r"\W+", "_", layer.label).strip("_")
    tfc.compile(graph, pipeline="memory-plan", name="bench", allow_over_budget=True).write(outdir)
    rng = np.random.default_rng(1)
    inputs = [rng.integers(-128, 128, size=v.type.shape).astype(np.int8) for v in graph.inputs]
    dsp = run_layer(outdir, graph, inputs, portable=False)
    portable = run_layer(outdir, graph, inputs, portable=True)
    units = dsp["macs"] if layer.per == "MAC" else dsp["elements"]
    return {"dsp": dsp["instructions"] / units, "portable": portable["instructions"] / units,
            "kernel": dsp["kernel"], "units": units}


def render(results: dict[str, dict], layers=None) -> str:
    layers = LAYERS if layers is None else layers
    lines = [SECTION, "",
             f"Generated by `{COMMAND}`: one-op int8 layers compiled by `tfc.compile`, run on the "
             "emulated Cortex-M7 (Unicorn, exact executed-instruction counts per layer), outputs "
             "checked bit-exact against the IR interpreter. *tfc DSP* is the default build "
             "(SXTB16/SMLAD); *tfc portable C* is the same model built with `-DTFC_NO_DSP`. "
             "*CMSIS-NN* is the issue's anchor (CMSIS-NN at -O3 on the same emulator). "
             "Ratios above 1 mean tfc executes fewer instructions.", "",
             "| layer | kernel | unit | tfc DSP | tfc portable C | CMSIS-NN anchor | "
             "portable / DSP | anchor / DSP | meets anchor |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for layer in layers:
        r = results[layer.label]
        anchor = f"{layer.anchor:.2f}" if layer.anchor else "–"
        vs_anchor = f"{layer.anchor / r['dsp']:.2f}x" if layer.anchor else "–"
        meets = ("yes" if r["dsp"] <= layer.anchor else "no") if layer.anchor else "–"
        lines.append(f"| {layer.label} | `{r['kernel']}` | instr/{layer.per} | {r['dsp']:.2f} | "
                     f"{r['portable']:.2f} | {anchor} | {r['portable'] / r['dsp']:.2f}x | "
                     f"{vs_anchor} | {meets} |")
    fc = [f"{layer.anchor / results[layer.label]['dsp']:.2f}x ({layer.label})"
          for layer in layers if layer.label.startswith("FC")]
    if fc:
        lines += ["", "Batched FC vs its CMSIS-NN anchor (target: at least 1.5x): " + ", ".join(fc) + "."]
    return "\n".join(lines + [""])


QUICK_LABELS = ("conv 3x3 16x16x32", "FC 64 tokens x 64")  # one conv, one batched FC


def section(quick: bool = False) -> str:
    """This benchmark's Markdown section (`quick`: only the layers of QUICK_LABELS)."""
    layers = [layer for layer in LAYERS if not quick or layer.label.startswith(QUICK_LABELS)]
    with tempfile.TemporaryDirectory(prefix="tfc-bench-kernels-") as tmp:
        results = {layer.label: measure(layer, Path(tmp)) for layer in layers}
    return render(results, layers)


def write_section(path: Path, section: str) -> None:
    """Replaces (or appends) this benchmark's section of docs/benchmarks.md, leaving the rest."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[nxt + 1:] if nxt >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="Markdown file whose section to rewrite ('-' to only print)")
    parser.add_argument("--only", nargs="*", default=None, help="substrings of layer labels to run")
    args = parser.parse_args(argv)
    global LAYERS
    if args.only:
        LAYERS = [layer for layer in LAYERS if any(s in layer.label for s in args.only)]
    with tempfile.TemporaryDirectory(prefix="tfc-bench-kernels-") as tmp:
        results = {layer.label: measure(layer, Path(tmp)) for layer in LAYERS}
    section = render(results)
    print(section)
    if args.out != "-":
        write_section(Path(args.out), section)
        print(f"wrote the section '{SECTION[3:]}' of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
