"""Softmax and Scaled-LayerNorm on the emulated Cortex-M7 against the issue-5 anchors.

    python bench/transformer.py

Builds single-op int8 models (int8 -> dequantize -> float op -> quantize, rewritten by the
softmax-lut and scaled-layernorm passes), runs one sample with `run_on_m7(profile=True)` and prints
the executed instructions of the op next to the anchor. (The per-op-type "Fig. 12" breakdown of the
hybrid model is not implemented yet.)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "transformer"))

import tfc  # noqa: E402
from islands import layernorm_island, realistic_layernorm_case, softmax_island  # noqa: E402
from tfc.backends.cortex_m7.emulator import run_on_m7  # noqa: E402

ANCHORS = [  # (op, rows, cols, anchor label, anchor instructions)
    ("softmax", 64, 64, "arm_softmax_s8", 2_164_952),
    ("softmax", 256, 256, "arm_softmax_s8", 34_193_478),
    ("layernorm", 256, 44, "float32 LayerNorm", 208_145),
    ("layernorm", 64, 192, "float32 LayerNorm", 222_545),
]


def measure(op: str, rows: int, cols: int, workdir: Path) -> int:
    rng = np.random.default_rng(rows * cols)
    if op == "softmax":
        graph = softmax_island((1, rows, cols), 0.08, 3)
        x = rng.integers(-128, 128, size=(1, rows, cols)).astype(np.int8)
    else:
        x, s_x, zp_x, gamma, beta, s_y, zp_y = realistic_layernorm_case(rng, rows, cols)
        x = x.reshape(1, rows, cols)
        graph = layernorm_island(x.shape, s_x, zp_x, gamma, beta, s_y, zp_y)
    outdir = tfc.compile(graph, name="m").write(workdir / f"{op}_{rows}x{cols}")
    _, profile = run_on_m7(outdir, [x], profile=True)
    return sum(layer["instructions"] for layer in profile["layers"] if layer["op"] == op)


def main() -> None:
    print("| op | shape | tfc instructions | per element | anchor | anchor instructions | ratio |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for op, rows, cols, label, anchor in ANCHORS:
            n = measure(op, rows, cols, Path(tmp))
            print(f"| {op} | {rows}x{cols} | {n:,} | {n / (rows * cols):.1f} | {label} | "
                  f"{anchor:,} | {anchor / n:.1f}x |")


if __name__ == "__main__":
    main()
