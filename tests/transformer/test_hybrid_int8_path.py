"""The example hybrid (CNN + transformer block) on the INT8 path: bit-exact interpreter / host /
emulated M7, and not one VFP (floating-point) instruction in the code the model runs on the M7."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tool_requirements import require_tools

import tfc
from tfc.backends.cortex_m7 import m7_build
from tfc.ir import interp

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hybrid"

pytestmark = pytest.mark.slow

# objdump --no-show-raw-insn lines: "08001234 <name>:" and " 8001234:\tldr.w\tr1, [r3]"
_FUNCTION = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    require_tools("arm-none-eabi-gcc")
    art = tfc.compile(EXAMPLE / "model.onnx", calib=EXAMPLE / "calib.npz", name="hybrid")
    return art, art.write(tmp_path_factory.mktemp("hybrid") / "hybrid")


def _functions(elf: Path) -> dict[str, list[tuple[str, str]]]:
    """function name -> its (mnemonic, operands) list, from the disassembly."""
    text = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)],
                          capture_output=True, text=True, check=True).stdout
    funcs, current = {}, None
    for line in text.splitlines():
        m = _FUNCTION.match(line)
        if m:
            current = funcs.setdefault(m.group(2), [])
            continue
        m = re.match(r"^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$", line)
        if m and current is not None:
            current.append((m.group(1), m.group(2)))
    return funcs


def _reachable(funcs, root: str) -> set[str]:
    """Functions reachable from `root` through direct calls and tail branches."""
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in seen or name not in funcs:
            continue
        seen.add(name)
        for mnemonic, operands in funcs[name]:
            if mnemonic.startswith("b"):
                m = re.search(r"<([^+>]+)(?:\+0x[0-9a-f]+)?>", operands)
                if m and m.group(1) != name:
                    todo.append(m.group(1))
    return seen


def test_hybrid_graph_is_integer_only(hybrid):
    art, _ = hybrid
    kinds = {op.name for op in art.graph.ops}
    assert {"layernorm", "softmax", "matmul"} <= kinds
    float_values = [v.name for op in art.graph.ops for v in op.results if v.type.dtype == "f32"]
    assert float_values == []


def test_hybrid_bit_exact_interpreter_host_m7(hybrid):
    from tfc.backends.cortex_m7.emulator import ModelOnM7

    art, outdir = hybrid
    rng = np.random.default_rng(3)
    model = ModelOnM7(outdir)
    shape = art.graph.inputs[0].type.shape
    for _ in range(2):
        x = rng.integers(-128, 128, size=shape).astype(np.int8)
        want = interp.run(art.graph, [x])[0]
        np.testing.assert_array_equal(tfc.run(outdir, [x], raw=True)[0], want)
        np.testing.assert_array_equal(model.run_raw([x])[0], want)


def test_no_vfp_instruction_in_the_m7_model_code(hybrid):
    from tfc.backends.cortex_m7.emulator import ModelOnM7

    _, outdir = hybrid
    elf = ModelOnM7(outdir).elf.path
    funcs = _functions(elf)
    run = "hybrid_run_multi"  # hybrid_run and the M7 harness both enter the model here
    assert run in funcs, sorted(f for f in funcs if f.startswith("hybrid"))
    code = _reachable(funcs, run)
    # The kernels the model calls are in the set (the check is not vacuous) ...
    assert {"hybrid_layernorm_s8", "hybrid_softmax_s8", "hybrid_matmul_s8_panel"} <= code
    # ... and none of them, nor anything they call, touches the FPU: the int8 model and runtime
    # are built with -mgeneral-regs-only, so not even a vldr/vmov copy may appear.
    code |= {name for name in funcs if name.startswith("hybrid_")}
    vfp = sorted({f"{name}: {mn}" for name in code for mn, _ in funcs[name] if mn.startswith("v")})
    assert vfp == []


def test_int8_model_builds_without_fpu_registers(hybrid):
    _, outdir = hybrid
    makefile = (outdir / "Makefile").read_text()
    assert "M7_CFLAGS += -DTFC_INT8_ONLY -mgeneral-regs-only" in makefile
    assert m7_build.model_m7_flags(outdir) == ("-DTFC_INT8_ONLY", "-mgeneral-regs-only")


def test_float_model_keeps_the_fpu(tmp_path):
    """A float32 build calls float kernels, so it must not get the int8-only flags."""
    art = tfc.compile(EXAMPLE / "model.onnx", precision="float32", name="hybridf")
    outdir = art.write(tmp_path / "hybridf")
    assert "TFC_INT8_ONLY" not in (outdir / "Makefile").read_text()
    assert m7_build.model_m7_flags(outdir) == ()
