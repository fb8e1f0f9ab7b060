#!/usr/bin/env python3
"""Per-model figures: the example models compiled int8 and float32, run on the emulated Cortex-M7.

    python bench/models.py [FAMILY...]      # prints the section

For each model (the committed TorchScript opset-17 exports under tests/models/) and precision it
records the compile time (`tfc.compile` alone, best of `repeat`), the sizes of report.json (flash
with code measured by arm-none-eabi-gcc, SRAM, arena and its lower bound), and one sample run on
the emulated M7 with `--profile`: executed instructions, estimated cycles, MACs. The run's output
must equal the IR interpreter's (int8 bit for bit, float32 to 1e-3), so a figure never comes from a wrong program.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tfc  # noqa: E402
from tfc.ir import interp  # noqa: E402

FAMILIES = ("resnet8", "dscnn", "mbv2", "hybrid")
PRECISIONS = ("int8", "float32")
CLOCK_HZ = 216e6  # STM32F746 maximum core clock
SECTION = "## Example models on the emulated Cortex-M7"


def raw_sample(report: dict, family: str) -> list[np.ndarray]:
    """The first test input of the family, as the device takes it (quantized for int8 builds)."""
    x = np.load(ROOT / "tests" / "models" / family / "inputs.npz")["input"][0]
    spec = report["inputs"][0]
    if spec["dtype"] == "f32":
        return [x.astype(np.float32).reshape(spec["shape"])]
    q = np.round(x / spec["scale"]) + spec["zero_point"]
    return [np.clip(q, -128, 127).astype(np.int8).reshape(spec["shape"])]


def compile_model(model, family: str, precision: str, repeat: int, workdir: Path):
    """(artifact, outdir, best compile seconds) of one model; `model` is a path or ModelProto."""
    calib = ROOT / "tests" / "models" / family / "calib.npz" if precision == "int8" else None
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        tfc.compile(model, calib=calib, precision=precision, name=family)
        times.append(time.perf_counter() - start)
    # Measuring code size builds the C with arm-none-eabi-gcc: kept out of the timed compiles.
    art = tfc.compile(model, calib=calib, precision=precision, name=family, measure_code=True)
    outdir = art.write(workdir / f"{family}_{precision}")
    return art, outdir, min(times)


def profile_on_m7(art, outdir: Path, family: str) -> dict:
    """profile.json of one bit-exact sample on the emulated M7."""
    inputs = raw_sample(art.report, family)
    got = tfc.run(outdir, inputs, on="m7", raw=True, profile=True)
    want = interp.run(art.graph, inputs)
    for g, w in zip(got, want):
        # int8 is bit-exact by contract; float32 C may round differently (libm, FMA contraction).
        same = np.array_equal(g, w) if g.dtype != np.float32 else np.allclose(g, w, rtol=1e-3, atol=1e-4)
        if not same:
            raise SystemExit(f"{outdir.name}: the emulated M7 output differs from the interpreter")
    return json.loads((Path(outdir) / "profile.json").read_text())


def measure(family: str, precision: str, repeat: int, workdir: Path) -> dict:
    model = ROOT / "tests" / "models" / family / "ts17.onnx"
    art, outdir, compile_s = compile_model(str(model), family, precision, repeat, workdir)
    profile = profile_on_m7(art, outdir, family)
    report = art.report
    return {"compile_s": compile_s, "instructions": profile["instructions"],
            "cycles": profile["cycles_estimate"], "macs": profile["macs"],
            "stack_bytes": profile["stack_bytes"],
            **{k: report[k] for k in ("flash_bytes", "sram_bytes", "arena_bytes",
                                      "arena_lower_bound_bytes")},
            "flash_method": report.get("flash_method", "?"), "fits": report["fits"]}


def _kib(n: int) -> str:
    return f"{n / 1024:.1f}"


def render(results: dict, repeat: int) -> str:
    lines = [SECTION, "",
             "One sample of `tests/models/<family>/inputs.npz` per model, run with `tfc run --on m7 "
             "--profile`; int8 outputs bit-exact with the IR interpreter, float32 within 1e-3. Latency = estimated cycles / "
             f"{CLOCK_HZ / 1e6:.0f} MHz. MAC/cycle counts the model's MACs over the estimated cycles "
             "(hardware ceiling 2; best published STM32F746 end-to-end about 0.9-1.0). Flash is "
             "weights plus code (`measured`: arm-none-eabi-gcc `-O3` text size); SRAM is the arena "
             "plus input and output buffers; arena / bound is the planner's arena over the lower "
             "bound (largest simultaneously live set; issue 4 asks for at most 1.05). Compile time "
             f"is `tfc.compile` alone, best of {repeat}. KiB = 1024 bytes.", "",
             "| model | precision | instructions | est. cycles | latency (ms) | MACs | MAC/cycle | "
             "flash (KiB) | SRAM (KiB) | stack (B) | arena (KiB) | arena bound (KiB) | "
             "arena / bound | compile (s) | fits |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for family, by_precision in results.items():
        for precision, r in by_precision.items():
            ratio = r["arena_bytes"] / r["arena_lower_bound_bytes"] if r["arena_lower_bound_bytes"] else 1.0
            lines.append(
                f"| {family} | {precision} | {r['instructions']:,} | {r['cycles']:,} | "
                f"{r['cycles'] / CLOCK_HZ * 1e3:.2f} | {r['macs']:,} | {r['macs'] / r['cycles']:.3f} | "
                f"{_kib(r['flash_bytes'])} ({r['flash_method']}) | {_kib(r['sram_bytes'])} | "
                f"{r['stack_bytes']} | {_kib(r['arena_bytes'])} | "
                f"{_kib(r['arena_lower_bound_bytes'])} | {ratio:.3f} | {r['compile_s']:.2f} | "
                f"{'yes' if r['fits'] else 'no'} |")
    both = [f for f, r in results.items() if set(PRECISIONS) <= set(r)]
    if both:
        keys = ("instructions", "cycles", "flash_bytes", "sram_bytes", "arena_bytes")
        lines += ["", "int8 / float32 ratios, same run (below 1: int8 is smaller or faster):", "",
                  "| model | instructions | est. cycles | flash | SRAM | arena |",
                  "|---|---:|---:|---:|---:|---:|"]
        for family in both:
            i8, f32 = results[family]["int8"], results[family]["float32"]
            lines.append(f"| {family} | " + " | ".join(f"{i8[k] / f32[k]:.2f}" for k in keys) + " |")
    return "\n".join(lines + [""])


def section(quick: bool = False, families=FAMILIES, workdir: Path | None = None) -> str:
    """The section's Markdown; `quick` compiles once per model instead of three times."""
    repeat = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="tfc-bench-models-") as tmp:
        work = workdir or Path(tmp)
        results = {f: {p: measure(f, p, repeat, work) for p in PRECISIONS} for f in families}
    return render(results, repeat)


if __name__ == "__main__":
    print(section(quick=True, families=sys.argv[1:] or FAMILIES))
