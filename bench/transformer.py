"""Softmax and Scaled-LayerNorm on the emulated Cortex-M7 against the issue-5 anchors.

    python bench/transformer.py

Builds single-op int8 models (int8 -> dequantize -> float op -> quantize, rewritten by the
softmax-lut and scaled-layernorm passes), runs one sample with `run_on_m7(profile=True)` and prints
the executed instructions of the op next to the anchor. `section()` adds the paper's "Fig. 12"
style per-op-type instruction shares of the example hybrid model, before and after the passes.
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


SECTION = "## Transformer ops on the emulated Cortex-M7 (issue 5)"


def anchors_table(workdir: Path) -> str:
    lines = ["| op | shape | tfc instructions | per element | anchor | anchor instructions | "
             "anchor / tfc | issue 5 asks |", "|---|---|---:|---:|---|---:|---:|---|"]
    for op, rows, cols, label, anchor in ANCHORS:
        n = measure(op, rows, cols, workdir)
        goal = "≥ 25x" if (op, rows) == ("softmax", 256) else ("≥ 2.5x" if op == "layernorm" else "–")
        lines.append(f"| {op} | {rows}x{cols} | {n:,} | {n / (rows * cols):.1f} | `{label}` | "
                     f"{anchor:,} | {anchor / n:.1f}x | {goal} |")
    return "\n".join(lines)


# "before" runs the int8 pipeline without the two transformer passes: LayerNorm and Softmax stay
# float32 islands (dequantize -> float op -> quantize) inside the int8 graph, as in the paper.
TRANSFORMER_PASSES = ("scaled-layernorm", "softmax-lut")


def op_type_shares(workdir: Path) -> str:
    """Per-op-type shares of the hybrid's executed instructions before and after the passes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from models import profile_on_m7

    from tfc.backends.cortex_m7.pipeline import INT8_PIPELINE

    hybrid = Path(__file__).resolve().parents[1] / "tests" / "models" / "hybrid"
    islands = ",".join(name for name in INT8_PIPELINE if name not in TRANSFORMER_PASSES)
    by_op, totals = {}, {}
    for label, pipeline in (("before", islands), ("after", None)):
        art = tfc.compile(str(hybrid / "ts17.onnx"), calib=str(hybrid / "calib.npz"),
                          pipeline=pipeline, name="hybrid")
        outdir = art.write(workdir / f"hybrid_{label}")
        profile = profile_on_m7(art, outdir, "hybrid")
        totals[label] = profile["instructions"]
        for layer in profile["layers"]:
            by_op.setdefault(layer["op"], {}).setdefault(label, 0)
            by_op[layer["op"]][label] += layer["instructions"]
    lines = ["| op type | before: instructions | before: share | after: instructions | "
             "after: share | before / after |", "|---|---:|---:|---:|---:|---:|"]
    order = sorted(by_op, key=lambda op: (-by_op[op].get("before", 0), op))
    for op in order:
        b, a = by_op[op].get("before", 0), by_op[op].get("after", 0)
        lines.append(f"| {op} | {b:,} | {b / totals['before']:.1%} | {a:,} | "
                     f"{a / totals['after']:.1%} | {f'{b / a:.1f}x' if a and b else '–'} |")
    lines.append(f"| **total** | {totals['before']:,} | 100% | {totals['after']:,} | 100% | "
                 f"{totals['before'] / totals['after']:.2f}x |")
    return "\n".join(lines)


def section(quick: bool = False) -> str:
    del quick  # four single-op models and two builds of one small model: fast enough either way
    with tempfile.TemporaryDirectory(prefix="tfc-bench-transformer-") as tmp:
        anchors = anchors_table(Path(tmp))
        shares = op_type_shares(Path(tmp))
    return "\n".join([
        SECTION, "",
        "Generated from `bench/transformer.py`. Single-op int8 models (int8 -> dequantize -> float "
        "op -> quantize, rewritten by the softmax-lut and scaled-layernorm passes), one sample each; "
        "the anchors are issue 5's CMSIS-NN `arm_softmax_s8` and a plain float32 LayerNorm in C at "
        "-O3 on the same emulator. Ratios above 1 mean tfc executes fewer instructions.", "",
        anchors, "", "### Per-op-type instruction shares of the hybrid model (\"Fig. 12\")", "",
        "*Before*: the int8 build without the scaled-layernorm and softmax-lut passes, so LayerNorm "
        "and Softmax run as float32 islands (dequantize -> float op -> quantize; the conversions "
        "have rows of their own) inside the int8 graph; *after*: the default int8 build. Shares are of "
        "the model's total executed instructions on the emulated M7 for one sample, both bit-exact "
        "with the interpreter.", "",
        shares, ""])


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
