"""Building Cortex-M7 ELF images with arm-none-eabi-gcc, and reading them back.

`build_model_elf(outdir)` links a compiled model (its generated C and runtime) with the startup
code and harness in `m7/` against the STM32F746 linker script. The ELF is cached next to the
sources and rebuilt only when a source, the harness or the flags change.

`read_elf(path)` is a small ELF32 reader (sections, symbols, loadable segments): enough to load an
image into the emulator and to measure flash and SRAM, without pyelftools.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tfc.backends.cortex_m7.build import _first_error, build_lock
from tfc.errors import BuildError

M7_DIR = Path(__file__).resolve().parent / "m7"
LINKER_SCRIPT = M7_DIR / "stm32f746.ld"
STARTUP_C = M7_DIR / "startup.c"
HARNESS_C = M7_DIR / "harness.c"

FLASH_BASE, FLASH_BYTES = 0x08000000, 1024 * 1024
SRAM_BASE, SRAM_BYTES = 0x20000000, 320 * 1024

CC = "arm-none-eabi-gcc"
# -fno-math-errno lets sqrtf inline as VSQRT; newlib nano provides memcpy/memset and libm.
CFLAGS = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard", "-O3", "-std=c99",
          "-fno-math-errno", "-ffunction-sections", "-fdata-sections", "-Wall")
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections")
LIBS = ("-lm",)

ELF_NAME = "model.elf"
BUILD_SUBDIR = Path("build") / "m7-elf"
C_TYPES = {"f32": "float", "i8": "int8_t", "i16": "int16_t", "i32": "int32_t", "u8": "uint8_t"}
ELEMENT_BYTES = {"f32": 4, "i8": 1, "i16": 2, "i32": 4, "u8": 1}
IO_ALIGN = 16


def toolchain_available() -> bool:
    return shutil.which(CC) is not None


def compile_elf(sources: list[Path], out: Path, *, include_dirs: list[Path] = (),
                defines: dict[str, str] | None = None, keep: tuple[str, ...] = (),
                timeout: int = 900, strict_sources: list[Path] = (),
                strict_flags: tuple[str, ...] = ()) -> Path:
    """Compiles and links `sources` plus the startup code into `out` (an ELF for the STM32F746).

    `strict_sources` are compiled apart with `strict_flags` added (e.g. the int8 model with
    -mgeneral-regs-only, while the harness keeps the FPU). `keep` names functions to keep
    although nothing calls them (sections are garbage-collected)."""
    if not toolchain_available():
        raise BuildError(f"'{CC}' is not installed; install the Arm GNU toolchain "
                         "(gcc-arm-none-eabi and libnewlib-arm-none-eabi) to run on the emulated M7")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    common = [*CFLAGS, *[f"-I{d}" for d in include_dirs],
              *[f"-D{k}={v}" for k, v in sorted((defines or {}).items())]]
    objects = []
    for src in strict_sources:
        obj = out.parent / f"{Path(src).stem}.strict.o"
        _run_cc([CC, *common, *strict_flags, "-c", str(src), "-o", str(obj)], out, timeout)
        objects.append(str(obj))
    _run_cc([CC, *common, *[str(s) for s in sources], *objects, str(STARTUP_C),
             f"-T{LINKER_SCRIPT}", *LDFLAGS, *[f"-Wl,--undefined={name}" for name in keep],
             "-o", str(out) + ".tmp", *LIBS], out, timeout)
    os.replace(str(out) + ".tmp", out)
    return out


def _run_cc(cmd: list[str], out: Path, timeout: int) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise BuildError(f"{CC} failed building {out.name}: {_first_error(proc.stderr + proc.stdout)}")


def model_m7_flags(outdir: Path) -> tuple[str, ...]:
    """The flags the generated Makefile adds to M7_CFLAGS for this model (`M7_CFLAGS += ...`),
    e.g. -DTFC_INT8_ONLY -mgeneral-regs-only for an int8-only model."""
    makefile = Path(outdir) / "Makefile"
    if not makefile.is_file():
        return ()
    return tuple(flag for line in makefile.read_text().splitlines()
                 if line.startswith("M7_CFLAGS +=") for flag in line.split("+=", 1)[1].split())


# -- the model image ------------------------------------------------------------------------------

def _io_layout(specs: list[dict]) -> tuple[list[int], int]:
    """Offsets of each tensor in tfc_m7_io (16-byte aligned) and the bytes they end at."""
    offsets, at = [], 0
    for spec in specs:
        offsets.append(at)
        nbytes = ELEMENT_BYTES[spec["dtype"]]
        for d in spec["shape"]:
            nbytes *= d
        at += -(-nbytes // IO_ALIGN) * IO_ALIGN
    return offsets, max(at, IO_ALIGN)


def _common_ctype(specs: list[dict]) -> str:
    types = {C_TYPES[s["dtype"]] for s in specs}
    return types.pop() if len(types) == 1 else "void"


def io_header(report: dict) -> str:
    """tfc_m7_io.h: what m7/harness.c needs to know about the model's inputs and outputs."""
    in_offsets, in_end = _io_layout(report["inputs"])
    out_offsets, out_bytes = _io_layout(report["outputs"])
    out_offsets = [in_end + o for o in out_offsets]
    lines = [
        "/* Generated by tfc m7_build for the emulator harness; DO NOT EDIT */",
        f"#define TFC_M7_RUN_MULTI {report['prefix']}_run_multi",
        f"#define TFC_M7_IN_T {_common_ctype(report['inputs'])}",
        f"#define TFC_M7_OUT_T {_common_ctype(report['outputs'])}",
        f"#define TFC_M7_NUM_INPUTS {len(report['inputs'])}",
        f"#define TFC_M7_NUM_OUTPUTS {len(report['outputs'])}",
        f"#define TFC_M7_INPUT_OFFSETS {{{', '.join(f'{o}u' for o in in_offsets)}}}",
        f"#define TFC_M7_OUTPUT_OFFSETS {{{', '.join(f'{o}u' for o in out_offsets)}}}",
        f"#define TFC_M7_IO_BYTES {in_end + out_bytes}u",
    ]
    return "\n".join(lines) + "\n"


def io_offsets(report: dict) -> tuple[list[int], list[int]]:
    """Byte offsets of the inputs and of the outputs in the harness's tfc_m7_io buffer."""
    in_offsets, in_end = _io_layout(report["inputs"])
    out_offsets, _ = _io_layout(report["outputs"])
    return in_offsets, [in_end + o for o in out_offsets]


def _model_sources(outdir: Path) -> list[Path]:
    """The C files of the model (model.c, weights.c, the runtime), without host-only harnesses."""
    return sorted(p for p in outdir.glob("*.c") if p.name != "harness.c")


def build_model_elf(outdir: str | os.PathLike, report: dict) -> Path:
    """OUTDIR/build/m7-elf/model.elf with per-layer markers (TFC_PROFILE); cached by content."""
    outdir = Path(outdir)
    build = outdir / BUILD_SUBDIR
    build.mkdir(parents=True, exist_ok=True)
    header = io_header(report)
    sources = _model_sources(outdir)
    inputs = (sources + sorted(outdir.glob("*.h")) + sorted(outdir.glob("Makefile"))
              + [HARNESS_C, STARTUP_C, LINKER_SCRIPT])
    digest = hashlib.sha256()
    digest.update(json.dumps([CC, CFLAGS, LDFLAGS, LIBS]).encode() + header.encode())
    for path in inputs:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    stamp, elf = build / "model.elf.sha256", build / ELF_NAME
    key = digest.hexdigest()
    with build_lock(outdir):  # two runs of one OUTDIR must not build over each other
        if elf.is_file() and stamp.is_file() and stamp.read_text() == key:
            return elf
        (build / "tfc_m7_io.h").write_text(header)
        compile_elf([HARNESS_C], elf, include_dirs=[outdir, build], defines={"TFC_PROFILE": "1"},
                    strict_sources=sources, strict_flags=model_m7_flags(outdir))
        stamp.write_text(key)
    return elf


# -- reading ELF32 little-endian images -------------------------------------------------------------

SHT_NOBITS, SHT_SYMTAB = 8, 2
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
PT_LOAD = 1


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int

    @property
    def occupies_file(self) -> bool:
        return self.type != SHT_NOBITS


@dataclass(frozen=True)
class Segment:
    """A loadable segment: `data` goes at `paddr` (its flash copy for .data)."""

    vaddr: int
    paddr: int
    data: bytes
    memsz: int


@dataclass
class ElfImage:
    path: Path
    entry: int
    sections: list[Section]
    segments: list[Segment]
    symbols: dict[str, tuple[int, int]]  # name -> (value, size); Thumb functions keep bit 0 set
    raw: bytes

    def symbol(self, name: str) -> int:
        """The address of a symbol (bit 0, the Thumb bit, cleared)."""
        if name not in self.symbols:
            raise BuildError(f"{self.path.name} has no symbol '{name}'; was it linked with the tfc "
                             "startup code (m7/startup.c)?")
        return self.symbols[name][0] & ~1

    def section_bytes(self, section: Section) -> bytes:
        return self.raw[section.offset:section.offset + section.size]

    def code_sections(self) -> list[Section]:
        return [s for s in self.sections if s.flags & SHF_EXECINSTR and s.flags & SHF_ALLOC]

    def memory_usage(self) -> tuple[int, int]:
        """(flash bytes, static SRAM bytes): allocated sections stored in flash, and those in SRAM
        (.data counts in both: its initial values sit in flash). The stack is not included."""
        flash = sram = 0
        for s in self.sections:
            if not s.flags & SHF_ALLOC or s.size == 0:
                continue
            if SRAM_BASE <= s.addr < SRAM_BASE + SRAM_BYTES:
                sram += s.size
                if s.occupies_file:
                    flash += s.size
            elif FLASH_BASE <= s.addr < FLASH_BASE + FLASH_BYTES:
                flash += s.size
        return flash, sram


def read_elf(path: str | os.PathLike) -> ElfImage:
    path = Path(path)
    raw = path.read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
        raise BuildError(f"{path} is not a 32-bit little-endian ELF file")
    (entry, phoff, shoff, _flags, _ehsize, phentsize, phnum, shentsize, shnum,
     shstrndx) = struct.unpack_from("<IIIIHHHHHH", raw, 24)
    headers = [struct.unpack_from("<IIIIIIIIII", raw, shoff + i * shentsize) for i in range(shnum)]
    names_at = headers[shstrndx][4]

    def cstr(at: int) -> str:
        return raw[at:raw.index(b"\0", at)].decode()

    sections = [Section(cstr(names_at + h[0]), h[1], h[2], h[3], h[4], h[5]) for h in headers]
    symbols: dict[str, tuple[int, int]] = {}
    for h in headers:
        if h[1] != SHT_SYMTAB:
            continue
        strtab = headers[h[6]][4]
        for at in range(h[4], h[4] + h[5], 16):
            name_off, value, size, _info, _other, _shndx = struct.unpack_from("<IIIBBH", raw, at)
            if name_off:
                symbols.setdefault(cstr(strtab + name_off), (value, size))
    segments = []
    for i in range(phnum):
        p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _f, _a = struct.unpack_from(
            "<IIIIIIII", raw, phoff + i * phentsize)
        if p_type == PT_LOAD:
            segments.append(Segment(p_vaddr, p_paddr, raw[p_offset:p_offset + p_filesz], p_memsz))
    return ElfImage(path, entry, sections, segments, symbols, raw)
