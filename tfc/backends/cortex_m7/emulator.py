"""`tfc run --on m7`: run a compiled model on an emulated Cortex-M7 (Unicorn) and profile it.

The image (see m7_build.py) is loaded into a Unicorn Cortex-M7 with the STM32F746 memory map. The
emulator writes the inputs into the harness's `tfc_m7_io` buffer, runs the reset handler (which
calls the harness `main`, which calls the model), and stops when the image reaches `tfc_m7_halt`.

Instructions are counted exactly by a translated-block hook written in C (compiled with the host gcc
on first use, loaded with ctypes): at each block entry it adds the block's instruction count and
estimated cost, both computed once per block from the image's code bytes (Thumb-2 widths) and the
per-instruction costs of cost_model.py. A per-instruction hook would skip instructions whose IT
condition fails, and would run 100x slower. When a block starts at `tfc_layer_mark`, the running
totals are recorded; differences between marks give per-layer counts.

Peak stack is measured by painting the free SRAM above the static data before the run and finding
the lowest byte the run changed.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfc.backends.cortex_m7 import cost_model
from tfc.backends.cortex_m7.host_run import load_report
from tfc.backends.cortex_m7.m7_build import (FLASH_BASE, FLASH_BYTES, SRAM_BASE, SRAM_BYTES,
                                             ElfImage, build_model_elf, io_offsets, read_elf)
from tfc.errors import BuildError, TfcError
from tfc.ir.types import numpy_dtype

STACK_PAINT = 0xA5
DEFAULT_TIMEOUT_S = 300
MAX_MARKS = 1 << 16

COUNTER_SOURCE = Path(__file__).resolve().parent / "m7" / "block_counter.c"


class _Counter(ctypes.Structure):
    _fields_ = [(name, ctype) for name, ctype in [
        ("instructions", ctypes.c_uint64), ("cost", ctypes.c_uint64),
        ("code", ctypes.c_void_p), ("costs", ctypes.c_void_p),
        ("block_size", ctypes.c_void_p), ("block_count", ctypes.c_void_p),
        ("block_cost", ctypes.c_void_p), ("code_base", ctypes.c_uint64),
        ("code_halfwords", ctypes.c_uint64), ("mark_address", ctypes.c_uint64),
        ("mark_instructions", ctypes.c_void_p), ("mark_cost", ctypes.c_void_p),
        ("marks", ctypes.c_uint64), ("max_marks", ctypes.c_uint64),
        ("outside_blocks", ctypes.c_uint64)]]


_counter_lib: ctypes.CDLL | None = None


def _load_counter_lib() -> ctypes.CDLL:
    """The block hook, compiled once per source version into a per-user cache directory."""
    global _counter_lib
    if _counter_lib is None:
        source = COUNTER_SOURCE.read_text()
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        cache = Path(tempfile.gettempdir()) / f"tfc-m7-{os.getuid()}"
        cache.mkdir(exist_ok=True)
        lib = cache / f"tfc_counter_{digest}.so"
        if not lib.exists():
            src = cache / f"tfc_counter_{digest}.{os.getpid()}.c"
            src.write_text(source)
            tmp = lib.with_suffix(f".{os.getpid()}.tmp")
            proc = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(tmp), str(src)],
                                  capture_output=True, text=True)
            src.unlink()
            if proc.returncode != 0:
                raise BuildError(f"cannot build the emulator's counting hook with gcc: "
                                 f"{proc.stderr.strip().splitlines()[-1:]}")
            os.replace(tmp, lib)
        _counter_lib = ctypes.CDLL(str(lib))
    return _counter_lib


@dataclass
class RunCounts:
    """What one emulated run executed. `marks` are running totals at each tfc_layer_mark call."""

    status: int
    instructions: int
    cycles_estimate: int
    stack_bytes: int
    marks: list[tuple[int, int]] = field(default_factory=list)  # (instructions, cost units)


class M7Emulator:
    """One Cortex-M7 (Unicorn) with an ELF image loaded, counting what it executes."""

    def __init__(self, elf: ElfImage | str | os.PathLike,
                 model: cost_model.CostModel = cost_model.CostModel()):
        import unicorn
        from unicorn import arm_const
        from unicorn.unicorn_py3.unicorn import uclib

        self.elf = elf if isinstance(elf, ElfImage) else read_elf(elf)
        self._arm = arm_const
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(arm_const.UC_CPU_ARM_CORTEX_M7)
        self.uc.mem_map(FLASH_BASE, FLASH_BYTES, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
        self.uc.mem_map(SRAM_BASE, SRAM_BYTES, unicorn.UC_PROT_ALL)
        for seg in self.elf.segments:
            if seg.data:
                self._check_fits(seg.paddr, len(seg.data))
                self.uc.mem_write(seg.paddr, seg.data)
        self.stack_top = self.elf.symbol("_estack")
        self.stack_limit = self.elf.symbol("_stack_limit")
        self.halt = self.elf.symbol("tfc_m7_halt")
        self._install_counter(model, uclib)

    def _check_fits(self, address: int, size: int) -> None:
        inside = any(base <= address and address + size <= base + n
                     for base, n in ((FLASH_BASE, FLASH_BYTES), (SRAM_BASE, SRAM_BYTES)))
        if not inside:
            raise BuildError(f"{self.elf.path.name}: a segment at {address:#x} (+{size}) lies outside "
                             "the STM32F746 flash and SRAM")

    def _install_counter(self, model: cost_model.CostModel, uclib) -> None:
        import unicorn

        code = [s for s in self.elf.code_sections() if s.size]
        base = min(s.addr for s in code)
        end = max(s.addr + s.size for s in code)
        halfwords = (end - base + 1) // 2
        image = np.zeros(halfwords, np.uint16)
        for s in code:
            data = np.frombuffer(self.elf.section_bytes(s), np.uint8)
            image.view(np.uint8)[s.addr - base:s.addr - base + len(data)] = data
        # Instructions objdump does not decode still count: one cycle each.
        costs = np.full(halfwords, cost_model.COST_UNITS_PER_CYCLE, np.uint32)
        for address, cost in cost_model.instruction_costs(self.elf.path, model).items():
            if base <= address < end:
                costs[(address - base) // 2] = cost
        self._arrays = dict(code=image, costs=costs, block_size=np.zeros(halfwords, np.uint32),
                            block_count=np.zeros(halfwords, np.uint32),
                            block_cost=np.zeros(halfwords, np.uint32),
                            mark_instructions=np.zeros(MAX_MARKS, np.uint64),
                            mark_cost=np.zeros(MAX_MARKS, np.uint64))
        c = self.counter = _Counter()
        for name, arr in self._arrays.items():
            setattr(c, name, arr.ctypes.data)
        c.code_base, c.code_halfwords, c.max_marks = base, halfwords, MAX_MARKS
        marker = self.elf.symbols.get("tfc_layer_mark")
        c.mark_address = marker[0] & ~1 if marker else 0xFFFFFFFF
        hook_fn = ctypes.cast(_load_counter_lib().tfc_count_block, ctypes.c_void_p)
        handle = ctypes.c_size_t()
        status = uclib.uc_hook_add(self.uc._uch, ctypes.byref(handle), unicorn.UC_HOOK_BLOCK,
                                   hook_fn, ctypes.cast(ctypes.byref(c), ctypes.c_void_p),
                                   ctypes.c_uint64(1), ctypes.c_uint64(0))
        if status != unicorn.UC_ERR_OK:
            raise BuildError(f"cannot install the emulator's counting hook: {unicorn.UcError(status)}")
        self.uc.ctl_flush_tb()  # code translated before the hook existed would not be counted

    # -- memory -------------------------------------------------------------------------------
    def write(self, address: int, data: bytes) -> None:
        self.uc.mem_write(address, bytes(data))

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    # -- running ------------------------------------------------------------------------------
    def reset_and_run(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunCounts:
        """Runs the reset handler (and so main) until the image reaches tfc_m7_halt."""
        return self._run(self.elf.symbol("tfc_m7_reset"), (), timeout_s)

    def call(self, function: str, *args: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunCounts:
        """Calls a C function with up to four integer arguments; `status` is its return value.

        .data/.bss are not initialised by this (the reset handler does that): call functions that
        need no initialised globals, or run reset_and_run first."""
        if len(args) > 4:
            raise ValueError("call() passes at most four arguments (in r0-r3)")
        return self._run(self.elf.symbol(function), args, timeout_s)

    def _run(self, entry: int, args: tuple[int, ...], timeout_s: float) -> RunCounts:
        import unicorn

        arm = self._arm
        self.write(self.stack_limit, bytes([STACK_PAINT]) * (self.stack_top - self.stack_limit))
        c = self.counter
        c.instructions = c.cost = c.marks = c.outside_blocks = 0
        for i, value in enumerate(args):
            self.uc.reg_write(arm.UC_ARM_REG_R0 + i, value & 0xFFFFFFFF)
        self.uc.reg_write(arm.UC_ARM_REG_SP, self.stack_top)
        self.uc.reg_write(arm.UC_ARM_REG_LR, self.halt | 1)
        try:
            self.uc.emu_start(entry | 1, self.halt, timeout=int(timeout_s * 1e6))
        except unicorn.UcError as e:
            pc = self.uc.reg_read(arm.UC_ARM_REG_PC)
            raise TfcError(f"the emulated Cortex-M7 faulted at pc={pc:#010x} (in "
                           f"{self.function_at(pc)}): {e}; check the generated C for out-of-bounds "
                           "accesses (build it with `make host-asan`)") from None
        pc = self.uc.reg_read(arm.UC_ARM_REG_PC)
        if pc != self.halt:
            raise TfcError(f"the emulated Cortex-M7 stopped at pc={pc:#010x} (in {self.function_at(pc)})"
                           f" before returning, after {timeout_s:g} s; the program hangs or is too "
                           "slow to emulate")
        if c.outside_blocks:
            raise TfcError(f"{c.outside_blocks} blocks ran outside the image's code sections; "
                           "instruction counts would be wrong")
        if c.marks > MAX_MARKS:
            raise TfcError(f"the image called tfc_layer_mark {c.marks} times (at most {MAX_MARKS})")
        marks = [(int(self._arrays["mark_instructions"][i]), int(self._arrays["mark_cost"][i]))
                 for i in range(c.marks)]
        status = self.uc.reg_read(arm.UC_ARM_REG_R0)
        return RunCounts(status=status - (1 << 32) if status >= 1 << 31 else status,
                         instructions=int(c.instructions),
                         cycles_estimate=_cycles(int(c.cost)),
                         stack_bytes=self._stack_used(), marks=marks)

    def _stack_used(self) -> int:
        painted = np.frombuffer(self.read(self.stack_limit, self.stack_top - self.stack_limit), np.uint8)
        touched = np.flatnonzero(painted != STACK_PAINT)
        return int(len(painted) - touched[0]) if touched.size else 0

    def function_at(self, address: int) -> str:
        best = None
        for name, (value, size) in self.elf.symbols.items():
            start = value & ~1
            if start <= address < start + max(size, 1) and (best is None or start > best[1]):
                best = (name, start)
        return best[0] if best else "an unknown function"


def _cycles(cost_units: int) -> int:
    return (cost_units + cost_model.COST_UNITS_PER_CYCLE // 2) // cost_model.COST_UNITS_PER_CYCLE


# -- running compiled models -------------------------------------------------------------------------

def _layer_profile(report: dict, counts: RunCounts) -> list[dict]:
    """Per-layer counts from the markers: [begin, one per model.c step..., end].

    The run function's prologue goes to the first layer, its epilogue and the output copies (steps
    after the last layer) to the last, so the layers sum to the run's total exactly."""
    layers = report["layers"]
    marks = counts.marks
    steps = len(marks) - 2
    if steps < len(layers):
        raise TfcError(f"model.c marks {max(steps, 0)} steps but report.json lists {len(layers)} "
                       "layers; recompile the model with this version of tfc")
    bounds = [marks[0]] + marks[2:1 + len(layers)] + [marks[-1]]
    result = []
    for layer, (lo, hi) in zip(layers, zip(bounds, bounds[1:])):
        result.append({"name": layer["name"], "op": layer["op"], "instructions": hi[0] - lo[0],
                       "cycles_estimate": _cycles(hi[1] - lo[1]), "macs": layer["macs"]})
    return result


def profile_dict(report: dict, counts: RunCounts, elf: ElfImage) -> dict:
    """The ◆ profile.json contract (DESIGN.md), plus a few extra fields."""
    (begin_i, begin_c), (end_i, end_c) = counts.marks[0], counts.marks[-1]
    flash, sram = elf.memory_usage()
    layers = _layer_profile(report, counts)
    macs = sum(layer["macs"] for layer in layers)
    cycles = _cycles(end_c - begin_c)
    return {"instructions": end_i - begin_i, "cycles_estimate": cycles,
            "stack_bytes": counts.stack_bytes, "flash_bytes": flash, "sram_bytes": sram,
            "fits": flash <= report["budget"]["flash_bytes"]
            and sram + counts.stack_bytes <= report["budget"]["sram_bytes"],
            "macs": macs, "macs_per_cycle": round(macs / cycles, 4) if cycles else None,
            "cost_model": "cortex-m7 per-instruction classes, ±30% (docs/cortex-m7.md)",
            "layers": layers}


class ModelOnM7:
    """A compiled OUTDIR built for and loaded into the emulator, ready to run samples."""

    def __init__(self, outdir: str | os.PathLike):
        self.outdir = Path(outdir)
        self.report = load_report(self.outdir)
        self.elf = read_elf(build_model_elf(self.outdir, self.report))
        self.emulator = M7Emulator(self.elf)
        self.io = self.elf.symbol("tfc_m7_io")
        self.in_offsets, self.out_offsets = io_offsets(self.report)
        self.last_counts: RunCounts | None = None

    def run_raw(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One sample: device-typed inputs of the exact input shapes -> device-typed outputs."""
        specs = self.report["inputs"]
        if len(inputs) != len(specs):
            raise TfcError(f"the model takes {len(specs)} inputs, got {len(inputs)}")
        for x, spec, offset in zip(inputs, specs, self.in_offsets):
            x = np.asarray(x)
            if list(x.shape) != list(spec["shape"]) or x.dtype != numpy_dtype(spec["dtype"]):
                raise TfcError(f"input '{spec['name']}' must be {spec['dtype']}{spec['shape']}, "
                               f"got {x.dtype}{list(x.shape)}")
            self.emulator.write(self.io + offset, np.ascontiguousarray(x).tobytes())
        counts = self.emulator.reset_and_run()
        if counts.status != 0:
            raise TfcError(f"{self.report['prefix']}_run_multi returned {counts.status} on the "
                           "emulated Cortex-M7")
        self.last_counts = counts
        outputs = []
        for spec, offset in zip(self.report["outputs"], self.out_offsets):
            dtype = numpy_dtype(spec["dtype"])
            n = int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(dtype).itemsize
            data = self.emulator.read(self.io + offset, n)
            outputs.append(np.frombuffer(data, dtype).reshape(spec["shape"]).copy())
        return outputs

    def profile(self) -> dict:
        if self.last_counts is None:
            raise TfcError("run a sample before asking for its profile")
        return profile_dict(self.report, self.last_counts, self.elf)


def run_on_m7(outdir: str | os.PathLike, raw_inputs: list[np.ndarray],
              profile: bool = False) -> tuple[list[np.ndarray], dict | None]:
    """Runs one sample of raw (device-typed) inputs on the emulated M7.

    Returns the raw outputs, and with `profile` the profile dict, also written to
    OUTDIR/profile.json."""
    model = ModelOnM7(outdir)
    outputs = model.run_raw(list(raw_inputs))
    if not profile:
        return outputs, None
    result = model.profile()
    write_profile(outdir, result)
    return outputs, result


def write_profile(outdir: str | os.PathLike, profile: dict) -> Path:
    path = Path(outdir) / "profile.json"
    path.write_text(json.dumps(profile, indent=2) + "\n")
    return path
