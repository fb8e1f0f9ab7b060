"""A per-instruction cycle estimate for the Cortex-M7 (documented in docs/cortex-m7.md).

Every instruction of an image is classified once, from `arm-none-eabi-objdump -d`, into a class
with a fixed cost in cycles. The emulator sums the costs of the instructions it executes (per
translated block, so the hot path stays in C). The model is deliberately simple; against a real
STM32F746 with caches on, expect the estimate to be within about ±30%:

- the M7 dual-issues many pairs of simple ALU instructions, so they cost less than a cycle;
- loads and stores are single-cycle when pipelined (TCM or cache hits); LDM/STM/PUSH/POP move
  two registers per cycle over the 64-bit bus;
- multiplies and DSP SIMD (SMLAD, SXTB16, SSAT, ...) issue one per cycle;
- branches pay an average of predicted and mispredicted costs (taken or not is not tracked);
- divides and VDIV/VSQRT pay their iterative latency.

`flash_wait_states` models running from flash with the caches off: each branch (a refetch) and
each load pays that many extra cycles. It is an upper bound, not a simulation of the ART/L1 caches.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tfc.errors import BuildError

OBJDUMP = "arm-none-eabi-objdump"
# Costs are stored as integers in hundredths of a cycle so the C hook adds integers.
COST_UNITS_PER_CYCLE = 100

CLASS_CYCLES: dict[str, float] = {
    "alu": 0.75,        # mov/add/logic/shift/compare/extend/bitfield: often dual-issued
    "it": 0.5,          # IT is mostly folded into the following instruction
    "mul": 1.0,         # MUL/MLA/SMULL/SMLAL and the 16-bit multiplies
    "dsp": 1.0,         # SMLAD/SMUAD, SXTB16, SSAT/USAT, QADD, SADD16, PKHBT, ...
    "div": 7.0,         # SDIV/UDIV: 2..12 cycles depending on the operands
    "load": 1.0,        # LDR/LDRB/LDRH/LDRD/LDREX (a load-use stall is not modelled)
    "store": 1.0,
    "branch": 1.5,      # B/Bcc/CBZ/CBNZ: predicted branches are cheap, mispredicts cost ~8
    "call": 2.0,        # BL/BLX
    "return": 3.0,      # BX/POP {pc}/LDR pc: an indirect branch refetches
    "table_branch": 4.0,  # TBB/TBH
    "fp": 1.0,          # VADD/VMUL/VFMA/VCVT/VMOV/VCMP/VLDR/VSTR ...
    "fp_long": 14.0,    # VDIV/VSQRT
    "nop": 0.5,
}
# Extra cycles per transferred register beyond the first two, for LDM/STM/PUSH/POP/VLDM/VSTM.
MULTI_REGISTER_CYCLES = 0.5

_DSP = ("smlad", "smladx", "smlsd", "smlsdx", "smlald", "smlaldx", "smlsld", "smuad", "smuadx",
        "smusd", "smusdx", "smlabb", "smlabt", "smlatb", "smlatt", "smlawb", "smlawt", "smulbb",
        "smulbt", "smultb", "smultt", "smulwb", "smulwt", "smmul", "smmulr", "smmla", "smmlar",
        "smmls", "smmlsr", "sxtb16", "sxtab16", "uxtb16", "uxtab16", "ssat", "usat", "ssat16",
        "usat16", "qadd", "qsub", "qdadd", "qdsub", "qadd8", "qadd16", "qsub8", "qsub16", "sadd8",
        "sadd16", "ssub8", "ssub16", "uadd8", "uadd16", "usub8", "usub16", "shadd8", "shadd16",
        "sel", "pkhbt", "pkhtb", "usad8", "usada8", "sasx", "ssax", "qasx", "qsax")
_MUL = ("mul", "muls", "mla", "mls", "smull", "umull", "smlal", "umlal", "umaal")
_DIV = ("sdiv", "udiv")
_BRANCH_CONDITIONS = ("eq", "ne", "cs", "cc", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge",
                      "lt", "gt", "le", "al")


@dataclass(frozen=True)
class CostModel:
    """Cycle costs per instruction class; `flash_wait_states` adds the caches-off penalty."""

    flash_wait_states: int = 0

    def cycles(self, mnemonic: str, operands: str) -> float:
        cls = classify(mnemonic, operands)
        cost = CLASS_CYCLES[cls]
        registers = _register_count(mnemonic, operands)
        if registers > 2:
            cost += MULTI_REGISTER_CYCLES * (registers - 2)
        if cls in ("branch", "call", "return", "table_branch", "load"):
            cost += self.flash_wait_states
        return cost


def _base(mnemonic: str) -> str:
    """The mnemonic without width qualifier (.w/.n) or data type (.f32, .s32 ...)."""
    return mnemonic.lower().split(".")[0]


def _register_count(mnemonic: str, operands: str) -> int:
    m = _base(mnemonic)
    if not (m.startswith(("ldm", "stm", "push", "pop", "vpush", "vpop", "vldm", "vstm"))):
        return 0
    inside = operands[operands.find("{") + 1:operands.find("}")]
    count = 0
    for part in inside.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = (re.sub(r"\D", "", x) for x in part.split("-"))
            count += int(hi) - int(lo) + 1 if lo and hi else 1
        elif part:
            count += 1
    return count


def _strip_condition(m: str, known: tuple[str, ...]) -> str:
    """`m` without an IT-block condition suffix (e.g. addeq -> add) when that gives a known name."""
    if m in known:
        return m
    for cond in _BRANCH_CONDITIONS:
        if m.endswith(cond) and m[:-2] in known:
            return m[:-2]
    return m


def classify(mnemonic: str, operands: str) -> str:
    """The cost class of one disassembled Thumb-2 instruction."""
    m = _base(mnemonic)
    ops = operands.lower()
    writes_pc = ops.startswith("pc") or ("pc}" in ops)
    if m.startswith("it") and len(m) <= 4 and set(m[1:]) <= {"t", "e"}:
        return "it"
    if m in ("nop", "yield", "wfi", "wfe", "sev", "bkpt", "dmb", "dsb", "isb"):
        return "nop"
    if m.startswith("v"):
        return "fp_long" if m.startswith(("vdiv", "vsqrt")) else "fp"
    if m in ("tbb", "tbh"):
        return "table_branch"
    if m.startswith(("bl", "blx")) and _strip_condition(m, ("bl", "blx")) in ("bl", "blx"):
        return "call"
    if _strip_condition(m, ("bx",)) == "bx" or (m.startswith(("pop", "ldm", "ldr")) and writes_pc):
        return "return"
    if m in ("cbz", "cbnz") or _strip_condition(m, ("b",)) == "b":
        return "branch"
    if m.startswith(("ldr", "ldm", "pop")):
        return "load"
    if m.startswith(("str", "stm", "push")):
        return "store"
    stripped = _strip_condition(m, _DSP + _MUL + _DIV)
    if stripped in _DIV:
        return "div"
    if stripped in _DSP or stripped.rstrip("s") in _DSP:
        return "dsp"
    if stripped in _MUL:
        return "mul"
    return "alu"


_LINE = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(\S+)\s*([^;<]*)")


def disassemble(elf_path: str | Path) -> list[tuple[int, str, str]]:
    """(address, mnemonic, operands) of every instruction in the image's code sections."""
    if shutil.which(OBJDUMP) is None:
        raise BuildError(f"'{OBJDUMP}' is not installed; install the Arm GNU toolchain")
    proc = subprocess.run([OBJDUMP, "-d", str(elf_path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{OBJDUMP} failed on {elf_path}: {proc.stderr.strip()[:200]}")
    result = []
    for line in proc.stdout.splitlines():
        m = _LINE.match(line)
        if m is None or m.group(3).startswith("."):  # .word/.short: literal pools, never executed
            continue
        result.append((int(m.group(1), 16), m.group(3), m.group(4).strip()))
    return result


def instruction_costs(elf_path: str | Path, model: CostModel = CostModel()) -> dict[int, int]:
    """address -> cost of the instruction there, in 1/COST_UNITS_PER_CYCLE cycles."""
    return {addr: round(model.cycles(mn, ops) * COST_UNITS_PER_CYCLE)
            for addr, mn, ops in disassemble(elf_path)}
