#!/usr/bin/env python3
"""Fits the per-kernel instruction cost model that sparse-storage{prefer=speed} decides by.

    python bench/fit_sparse_costs.py            # measure, fit, print the table and the errors
    python bench/fit_sparse_costs.py --write    # ... and regenerate tfc/sparse/kernel_costs.py

A grid of single int8 layers (tfc.sparse.layers: the hybrid's small shapes, K = 16..192, one
token to 256 pixels, and the bench's anchor shapes) is compiled dense and brle (b = 2 and 4 at
several block sparsities; depthwise b = 3), many layers per graph, and run on the emulated
Cortex-M7; each layer's executed instructions are fitted per kernel by non-negative least squares
on the relative error, over the terms of tfc.sparse.choice.dense_features / sparse_features.
Re-run it with --write whenever a kernel in runtime/ changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfc import sparse  # noqa: E402
from tfc.sparse import choice  # noqa: E402
from tfc.sparse.layers import (compile_layers, conv_layer, depthwise_layer,  # noqa: E402
                               layers_graph, linear_layer, random_inputs)

OUTPUT = ROOT / "tfc" / "sparse" / "kernel_costs.py"
LAYERS_PER_GRAPH = 16

# (kind, arguments of tfc.sparse.layers.<kind>_layer after rng). linear: tokens, in, out;
# conv: h, w, c, o, k, stride, pad; depthwise: h, w, c, k, stride.
FIT_SHAPES = [
    ("linear", (1, 32, 10)), ("linear", (1, 64, 10)), ("linear", (1, 96, 32)),
    ("linear", (1, 192, 64)), ("linear", (2, 64, 48)), ("linear", (3, 32, 24)),
    ("linear", (64, 32, 32)), ("linear", (64, 32, 64)), ("linear", (64, 64, 32)),
    ("linear", (64, 16, 24)), ("linear", (64, 24, 96)), ("linear", (64, 64, 192)),
    ("linear", (64, 192, 64)), ("linear", (16, 96, 96)), ("linear", (256, 16, 16)),
    ("linear", (7, 48, 40)),
    ("conv", (32, 32, 3, 16, 3, 2, 1)), ("conv", (16, 16, 3, 8, 3, 1, 1)),
    ("conv", (16, 16, 32, 32, 3, 1, 1)), ("conv", (8, 8, 16, 32, 3, 1, 1)),
    ("conv", (16, 16, 8, 16, 3, 2, 1)), ("conv", (8, 8, 64, 48, 3, 1, 1)),
    ("conv", (6, 6, 24, 10, 3, 1, 0)), ("conv", (9, 9, 16, 24, 5, 2, 2)),
    ("conv", (16, 16, 16, 64, 1, 1, 0)), ("conv", (8, 8, 64, 24, 1, 1, 0)),
    ("conv", (8, 8, 24, 96, 1, 1, 0)), ("conv", (8, 8, 96, 32, 1, 1, 0)),
    ("conv", (16, 16, 64, 64, 1, 1, 0)), ("conv", (4, 4, 32, 10, 1, 1, 0)),
    ("conv", (1, 3, 40, 16, 1, 1, 0)),
    ("depthwise", (16, 16, 64, 3, 2)), ("depthwise", (8, 8, 96, 3, 1)),
    ("depthwise", (16, 16, 64, 3, 1)), ("depthwise", (32, 32, 16, 3, 1)),
    ("depthwise", (12, 12, 24, 3, 2)), ("depthwise", (4, 4, 40, 3, 1)),
    ("depthwise", (8, 8, 32, 5, 1)), ("depthwise", (12, 12, 16, 5, 2)),
    ("depthwise", (8, 8, 64, 3, 2)), ("depthwise", (16, 16, 32, 3, 1)),
    ("depthwise", (24, 24, 8, 3, 1)), ("depthwise", (6, 6, 128, 3, 1)),
    ("depthwise", (32, 32, 32, 3, 2)), ("depthwise", (20, 20, 20, 3, 1)),
    ("depthwise", (10, 10, 24, 5, 1)), ("depthwise", (6, 6, 64, 5, 1)),
    ("depthwise", (16, 16, 8, 5, 2)), ("depthwise", (9, 9, 16, 3, 3)),
    ("depthwise", (7, 7, 24, 7, 1)), ("depthwise", (12, 12, 32, 3, 3)),
    ("conv", (12, 12, 8, 24, 3, 1, 1)), ("conv", (16, 16, 24, 16, 3, 2, 1)),
    ("conv", (24, 24, 3, 8, 3, 1, 1)), ("conv", (10, 10, 32, 16, 3, 1, 0)),
    ("conv", (8, 8, 48, 64, 3, 2, 1)), ("conv", (16, 16, 4, 12, 5, 1, 2)),
    ("conv", (12, 12, 64, 16, 1, 1, 0)),
]
FIT_SPARSITIES = (0.4, 0.6, 0.8, 0.95)
FIT_BLOCKS = (2, 4)


def build_layer(rng, kind: str, args, sparsity: float, block: int):
    if kind == "linear":
        return linear_layer(rng, *args, sparsity=sparsity, block=block)
    if kind == "conv":
        h, w, c, o, k, stride, pad = args
        return conv_layer(rng, h, w, c, o, k=k, stride=stride, pad=pad, sparsity=sparsity,
                          block=block)
    h, w, c, k, stride = args
    return depthwise_layer(rng, h, w, c, k=k, stride=stride, pad=k // 2, sparsity=sparsity)


def geometry_of(graph, index: int) -> choice.LayerGeometry:
    op = graph.outputs[index].producer
    walk = {"linear": "linear"}.get(op.name) or ("conv" if op.attr("group", 1) == 1 else "depthwise")
    return choice.layer_geometry(walk, op.operands[0].type.shape, op.operands[1].type.shape,
                                 op.result.type.shape, op.attr("strides", [1, 1]),
                                 op.attr("pads", [0, 0, 0, 0]), op.attr("dilations", [1, 1]))


def measure_graph(layers, prefer: str, block: int, outdir: Path) -> list[dict]:
    """One sample per layer: kernel, features and the instructions it executed on the M7."""
    import tfc

    graph = layers_graph(layers, "fit")
    art = compile_layers(graph, outdir, prefer=prefer, block=block)
    tfc.run(outdir, random_inputs(np.random.default_rng(1), graph), on="m7", raw=True,
            profile=True)
    executed = {layer["name"]: layer["instructions"]
                for layer in json.loads((outdir / "profile.json").read_text())["layers"]}
    storage = {layer["name"]: layer["storage"] for layer in art.report["layers"]}
    samples = []
    for i, layer in enumerate(layers):
        name = graph.outputs[i].name
        geometry = geometry_of(graph, i)
        sample = dict(geometry=asdict(geometry), instructions=executed[name],
                      shape=f"{layer.kind} {geometry.m}x{geometry.k}->{geometry.n}")
        if storage[name] == "sparse":
            walk_rows = sparse.walk_rows(layer.weights, geometry.walk)
            b = layer.weights.shape[2] if geometry.walk == "depthwise" else block
            records, nonempty = choice.stream_counts(walk_rows, b)
            sample.update(stream=dict(block=int(b), records=records, nonempty_rows=nonempty))
        elif prefer != "dense":
            continue  # brle was not smaller: the pass kept it dense
        samples.append(with_features(sample))
    return samples


def with_features(sample: dict) -> dict:
    """The sample with the kernel that ran and the terms its cost model counts."""
    geometry = choice.LayerGeometry(**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in sample["geometry"].items()})
    stream = sample.get("stream")
    if stream is None:
        kernel, features = choice.dense_kernel(geometry), choice.dense_features(geometry)
    else:
        kernel = choice.sparse_kernel(geometry, stream["block"])
        features = choice.sparse_features(geometry, stream["block"], stream["records"],
                                          stream["nonempty_rows"])
    return dict(sample, kernel=kernel, features=features)


def fit_grid(shapes, sparsities, blocks, workdir: Path, seed: int = 0, log=print) -> list[dict]:
    """Measures dense and brle runs of `shapes`; the samples of every layer."""
    rng = np.random.default_rng(seed)
    runs = [("dense", 4, 0.0, shapes)]
    runs += [("size", b, s, [sh for sh in shapes if sh[0] != "depthwise"])
             for b in blocks for s in sparsities]
    runs += [("size", 3, s, [sh for sh in shapes if sh[0] == "depthwise"]) for s in sparsities]
    samples = []
    for prefer, block, sparsity, run_shapes in runs:
        for start in range(0, len(run_shapes), LAYERS_PER_GRAPH):
            chunk = run_shapes[start:start + LAYERS_PER_GRAPH]
            layers = [build_layer(rng, kind, args, sparsity, block) for kind, args in chunk]
            outdir = workdir / f"{prefer}_b{block}_{int(sparsity * 100)}_{start}"
            t0 = time.time()
            samples += measure_graph(layers, prefer, 0 if block == 3 else block, outdir)
            log(f"  measured {len(chunk)} layers ({prefer}, b={block}, rho={sparsity}) "
                f"in {time.time() - t0:.1f} s")
    return samples


def fit(samples: list[dict]) -> dict[str, dict]:
    """kernel -> {"coefficients", "worst", "mean", "samples"}: NNLS on relative error."""
    by_kernel: dict[str, list[dict]] = {}
    for sample in samples:
        by_kernel.setdefault(sample["kernel"], []).append(sample)
    out = {}
    for kernel in sorted(by_kernel):
        rows = by_kernel[kernel]
        terms = list(rows[0]["features"])
        a = np.array([[r["features"][t] for t in terms] for r in rows], dtype=np.float64)
        y = np.array([r["instructions"] for r in rows], dtype=np.float64)
        scale = a.max(axis=0)
        scale[scale == 0] = 1.0
        coef, _ = nnls((a / scale) / y[:, None], np.ones(len(y)))
        coef = coef / scale
        errors = np.abs(a @ coef - y) / y
        out[kernel] = dict(coefficients={t: float(c) for t, c in zip(terms, coef)},
                           worst=float(errors.max()), mean=float(errors.mean()),
                           samples=len(rows), worst_shape=rows[int(errors.argmax())]["shape"])
    return out


def table(fitted: dict[str, dict]) -> str:
    lines = ["| kernel | layers | worst rel. error | mean | coefficients (instructions per term) |",
             "|---|---:|---:|---:|---|"]
    for kernel, f in fitted.items():
        terms = ", ".join(f"{t} {c:.3g}" for t, c in f["coefficients"].items())
        lines.append(f"| {kernel} | {f['samples']} | {f['worst']:.1%} ({f['worst_shape']}) | "
                     f"{f['mean']:.1%} | {terms} |")
    return "\n".join(lines)


def render_module(fitted: dict[str, dict]) -> str:
    lines = ['"""Fitted instruction costs of the dense and sparse int8 kernels on the emulated Cortex-M7.',
             "",
             "Generated by `python bench/fit_sparse_costs.py --write` (do not edit by hand; re-run it",
             "when a kernel in tfc/backends/cortex_m7/runtime changes). Each kernel's executed",
             "instructions = sum of coefficient x term, the terms being what",
             "tfc.sparse.choice.dense_features / sparse_features count for a layer. FIT_ERRORS holds",
             "the worst and mean relative error of the fit over the measured grid.",
             '"""', "", "COEFFICIENTS = {"]
    for kernel, f in fitted.items():
        lines.append(f'    "{kernel}": {{')
        for term, c in f["coefficients"].items():
            lines.append(f'        "{term}": {c:.4f},')
        lines.append("    },")
    lines += ["}", "", "# kernel: (measured layers, worst relative error, mean relative error)",
              "FIT_ERRORS = {"]
    for kernel, f in fitted.items():
        lines.append(f'    "{kernel}": ({f["samples"]}, {f["worst"]:.4f}, {f["mean"]:.4f}),')
    lines += ["}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"regenerate {OUTPUT.relative_to(ROOT)}")
    parser.add_argument("--samples-json", type=Path, help="also dump the measured samples here")
    parser.add_argument("--from-samples", type=Path,
                        help="refit samples dumped by --samples-json instead of measuring")
    args = parser.parse_args()
    t0 = time.time()
    if args.from_samples:
        samples = [with_features(s) for s in json.loads(args.from_samples.read_text())]
    else:
        with tempfile.TemporaryDirectory(prefix="tfc-fit-costs-") as tmp:
            samples = fit_grid(FIT_SHAPES, FIT_SPARSITIES, FIT_BLOCKS, Path(tmp))
    if args.samples_json:
        args.samples_json.write_text(json.dumps(samples, indent=1))
    fitted = fit(samples)
    print(f"\n{len(samples)} layers measured in {time.time() - t0:.0f} s\n")
    print(table(fitted))
    if args.write:
        OUTPUT.write_text(render_module(fitted))
        print(f"\nwrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
