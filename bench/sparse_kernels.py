#!/usr/bin/env python3
"""Sparse vs dense kernels on the emulated Cortex-M7: executed instructions per layer.

    python bench/sparse_kernels.py                  # the table over sparsity 0.3..0.9, b in {2, 4}
    python bench/sparse_kernels.py --sparsity 0.8 --block 4

The layers are those of the issue's anchors: conv 3x3 16x16x32->32, pointwise 1x1 16x16x32->32,
linear 128->128 over 16 tokens, and depthwise 3x3 16x16x32 (b = 3). Weights are random int8 pruned
in blocks by magnitude (tfc.sparse.prune_blocks) to the given block sparsity. The same layers are
compiled twice: weights stored dense (tfc's dense kernels) and brle (tfc_sparse.c); the outputs
of both are checked bit-exact against the interpreter, and the instructions each layer executed
on the emulated M7 are compared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "sparse"))

import tfc  # noqa: E402
from sparse_util import (assert_bit_exact, compile_layers, conv_layer, depthwise_layer,  # noqa: E402
                         layers_graph, linear_layer, random_inputs)

LAYERS = ("conv3x3", "pointwise", "linear", "depthwise")


def make_layers(sparsity: float, block: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [conv_layer(rng, 16, 16, 32, 32, sparsity=sparsity, block=block),
            conv_layer(rng, 16, 16, 32, 32, k=1, pad=0, sparsity=sparsity, block=block),
            linear_layer(rng, 16, 128, 128, sparsity=sparsity, block=block),
            depthwise_layer(rng, 16, 16, 32, sparsity=sparsity)]


def layer_instructions(sparsity: float, block: int, prefer: str, workdir: Path) -> dict:
    """layer kind -> {"instructions", "macs", "weight_bytes"} of one emulated run."""
    graph = layers_graph(make_layers(sparsity, block), "bench")
    outdir = workdir / f"{prefer}_{block}_{int(sparsity * 100)}"
    art = compile_layers(graph, outdir, prefer=prefer, block=block)
    inputs = random_inputs(np.random.default_rng(1), graph)
    assert_bit_exact(graph, outdir, inputs, on="host")
    assert_bit_exact(graph, outdir, inputs, on="m7")
    tfc.run(outdir, inputs, on="m7", raw=True, profile=True)
    import json

    profile = json.loads((outdir / "profile.json").read_text())
    by_name = {layer["name"]: layer for layer in profile["layers"]}
    report = {layer["name"]: layer for layer in art.report["layers"]}
    out = {}
    for kind, v in zip(LAYERS, graph.outputs):
        out[kind] = dict(instructions=by_name[v.name]["instructions"], macs=by_name[v.name]["macs"],
                         weight_bytes=report[v.name]["weight_bytes"],
                         storage=report[v.name]["storage"])
    return out


def table(sparsities, blocks, workdir: Path) -> str:
    dense = layer_instructions(0.0, 4, "dense", workdir)
    lines = ["| layer | dense instr/MAC | b | " + " | ".join(f"ρ={s:.1f}" for s in sparsities) + " |",
             "|---|---|---|" + "---|" * len(sparsities)]
    results = {(b, s): layer_instructions(s, b, "size", workdir) for b in blocks for s in sparsities}
    for kind in LAYERS:
        base = dense[kind]
        for b in (blocks if kind != "depthwise" else blocks[:1]):
            cells = [f"{results[(b, s)][kind]['instructions'] / base['instructions']:.3f}"
                     for s in sparsities]
            label = "3 (kernel row)" if kind == "depthwise" else str(b)
            lines.append(f"| {kind} | {base['instructions'] / base['macs']:.2f} | {label} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, nargs="*",
                        default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--block", type=int, nargs="*", default=[2, 4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("Sparse / dense executed instructions on the emulated Cortex-M7 (lower is better)\n")
        print(table(args.sparsity, args.block, Path(tmp)))


if __name__ == "__main__":
    main()
