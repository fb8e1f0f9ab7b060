"""Building generated code: `make` in an output directory, and measuring flash for the M7.

`measure_flash` links the model the way a user's firmware does (public API as roots,
--gc-sections), so code_bytes counts only the kernels and library code the model reaches.

Builds of one directory are serialized with a file lock, so parallel test workers (or two `tfc run`
calls) never race on the same files; make itself skips what is up to date.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tfc.errors import BuildError

M7_CC = "arm-none-eabi-gcc"
M7_NM = "arm-none-eabi-nm"
# A user links the model into firmware that brings its own start-up code: newlib-nano for what the
# kernels call (memcpy, libgcc helpers), libm for the float path, unreferenced sections dropped.
M7_LINK_FLAGS = ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections"]
M7_LINK_LIBS = ["-lm"]
# Without one section per function and object, --gc-sections could only drop whole files.
M7_SECTION_FLAGS = ["-ffunction-sections", "-fdata-sections"]
MODEL_UNIT, MODEL_HEADER, WEIGHTS_UNIT = "model.c", "model.h", "weights.c"
HOST_ONLY_UNITS = {"harness.c"}  # the stdin/stdout harness of `make host-asan`, not on the device


@contextmanager
def build_lock(outdir: Path):
    with open(Path(outdir) / ".tfc-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        # ld names the missing symbol without the word "error"; collect2's summary says nothing.
        if ("error" in ln.lower() or "undefined reference" in ln) and not ln.startswith("collect2"):
            return ln
    for ln in lines:
        if "error" in ln.lower():
            return ln
    return lines[-1] if lines else "no output"


def make(outdir: str | os.PathLike, goal: str, timeout: int = 900) -> None:
    """Runs `make GOAL` in OUTDIR; a failure is a one-line BuildError quoting the first error."""
    outdir = Path(outdir)
    if not (outdir / "Makefile").is_file():
        raise BuildError(f"{outdir} has no Makefile; compile a model into it first with `tfc compile`")
    if shutil.which("make") is None:
        raise BuildError("'make' is not installed; install make and gcc (see scripts/bootstrap.sh)")
    with build_lock(outdir):
        proc = subprocess.run(["make", "-s", goal], cwd=outdir, capture_output=True, text=True,
                              timeout=timeout)
    if proc.returncode != 0:
        raise BuildError(f"'make {goal}' failed in {outdir}: {_first_error(proc.stderr + proc.stdout)}")


def m7_toolchain_available() -> bool:
    return shutil.which(M7_CC) is not None and shutil.which(M7_NM) is not None


# -- flash of the linked model ----------------------------------------------------------------------

@dataclass(frozen=True)
class FlashMeasurement:
    """What a `--gc-sections` link of the model's public C API puts in flash.

    `image_bytes` = text + rodata + exidx + .data initial values of the linked image;
    `weights_bytes` = the part of it that comes from weights.c; `code_bytes` = the rest (the model,
    the runtime kernels it reaches, the library code they pull in, alignment padding)."""

    image_bytes: int
    weights_bytes: int
    roots: tuple[str, ...]

    @property
    def code_bytes(self) -> int:
        return self.image_bytes - self.weights_bytes


def makefile_m7_flags(makefile: str) -> list[str]:
    """The M7_CFLAGS the generated Makefile compiles with (its `:=` line and every `+=` after it)."""
    flags: list[str] | None = None
    for line in makefile.replace("\\\n", " ").splitlines():
        match = re.match(r"M7_CFLAGS\s*(:=|\+=)(.*)$", line)
        if match:
            assign, values = match.groups()
            flags = ([] if assign == ":=" else flags or []) + values.split()
    if flags is None:
        raise BuildError("the generated Makefile sets no M7_CFLAGS; recompile the model with `tfc compile`")
    return flags + [f for f in M7_SECTION_FLAGS if f not in flags]


# An input section line of a GNU ld map: " .rodata.x  0xADDR  0xSIZE  file.o" (long names wrap).
_MAP_INPUT_SECTION = re.compile(r"^ (\.\S+)\s+0x([0-9a-fA-F]+)[ \t]+0x([0-9a-fA-F]+)[ \t]+(\S+)[ \t]*$",
                                re.M)


def _linked_bytes_from(map_text: str, obj: str, flash_ranges: list[tuple[int, int]]) -> int:
    """Bytes of `obj`'s input sections that the link placed in flash-occupying output sections."""
    memory_map = map_text.split("Linker script and memory map", 1)[-1]  # skips the discarded list
    total = 0
    for match in _MAP_INPUT_SECTION.finditer(memory_map):
        addr, size = int(match.group(2), 16), int(match.group(3), 16)
        if match.group(4) == obj and size and any(lo <= addr < hi for lo, hi in flash_ranges):
            total += size
    return total


def _run_tool(cmd: list[str], cwd: str, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{cmd[0]} failed on {what}: {_first_error(proc.stderr + proc.stdout)}")
    return proc.stdout


def _api_roots(tmp: str, model_obj: str, header: str) -> list[str]:
    """The functions and tables model.c defines (external linkage) that model.h declares: the
    public C API, which is all a user's program can reach."""
    defined = _run_tool([M7_NM, "--defined-only", "--extern-only", model_obj], tmp, model_obj)
    names = [line.split()[-1] for line in defined.splitlines() if line.strip()]
    roots = sorted(n for n in names if re.search(rf"\b{re.escape(n)}\b", header))
    if not roots:
        raise BuildError(f"{MODEL_HEADER} declares nothing that {MODEL_UNIT} defines; recompile the "
                         "model with `tfc compile`")
    return roots


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
_measured: dict[str, FlashMeasurement] = {}
_objects: dict[str, bytes] = {}  # object files by what they are compiled from, across measures
_MAX_CACHED_OBJECTS = 256


def _object_key(unit: str, sources: dict[str, str], flags: list[str]) -> str:
    """What an object depends on: the flags, the unit and the headers it includes (transitively),
    so a measure with a changed model.c or kernel recompiles only that unit."""
    digest = hashlib.sha256(json.dumps(flags).encode())
    seen, todo = {unit}, [unit]
    while todo:
        for header in _INCLUDE.findall(sources[todo.pop()]):
            if header in sources and header not in seen:
                seen.add(header)
                todo.append(header)
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return digest.hexdigest()


def _compile_object(tmp: str, unit: str, sources: dict[str, str], flags: list[str]) -> str:
    obj = unit[:-2] + ".o"
    key = _object_key(unit, sources, flags)
    if key not in _objects:
        _run_tool([M7_CC, *flags, "-c", unit, "-o", obj], tmp, unit)
        if len(_objects) >= _MAX_CACHED_OBJECTS:
            _objects.clear()
        _objects[key] = (Path(tmp) / obj).read_bytes()
    else:
        (Path(tmp) / obj).write_bytes(_objects[key])
    return obj


def measure_flash(sources: dict[str, str], only: tuple[str, ...] | None = None) -> FlashMeasurement:
    """Links the model for the Cortex-M7 as a user's firmware would and measures its flash.

    Every device unit is compiled with the generated Makefile's own M7_CFLAGS (one section per
    function and object), then linked with --gc-sections, newlib-nano and no start files, keeping
    only the public API of model.h as roots (or the entry points named in `only`, e.g. what one
    firmware calls): a kernel the model never calls costs nothing. weights.c is linked too (so the
    code that reads it links) and its bytes are split off exactly from the link map. Cached by
    source content."""
    for required in (MODEL_UNIT, MODEL_HEADER, WEIGHTS_UNIT, "Makefile"):
        if required not in sources:
            raise BuildError(f"cannot measure flash: the generated sources have no {required}")
    flags = makefile_m7_flags(sources["Makefile"])
    device_files = sorted(n for n in sources if n.endswith((".c", ".h")) and n not in HOST_ONLY_UNITS)
    digest = hashlib.sha256(json.dumps([flags, M7_LINK_FLAGS, M7_LINK_LIBS, only]).encode())
    for name in device_files:
        digest.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    key = digest.hexdigest()
    if key in _measured:
        return _measured[key]
    from tfc.backends.cortex_m7.m7_build import SHF_ALLOC, read_elf  # m7_build imports this module

    with tempfile.TemporaryDirectory(prefix="tfc-size-") as tmp:
        for name in device_files:
            (Path(tmp) / name).write_text(sources[name])
        objects = [_compile_object(tmp, unit, sources, flags)
                   for unit in device_files if unit.endswith(".c")]
        roots = _api_roots(tmp, MODEL_UNIT[:-2] + ".o", sources[MODEL_HEADER])
        if only is not None:
            unknown = sorted(set(only) - set(roots))
            if unknown or not only:
                raise BuildError(f"'{', '.join(unknown)}' is not part of the model's C API; measure "
                                 f"some of: {', '.join(roots)}")
            roots = sorted(only)
        _run_tool([M7_CC, *flags, *M7_LINK_FLAGS, f"-Wl,--entry={roots[0]}",
                   *[f"-Wl,--undefined={r}" for r in roots], "-Wl,-Map=image.map",
                   "-o", "image.elf", *objects, *M7_LINK_LIBS], tmp, "the linked model image")
        elf = read_elf(Path(tmp) / "image.elf")
        in_flash = [s for s in elf.sections if s.flags & SHF_ALLOC and s.occupies_file and s.size]
        weights = _linked_bytes_from((Path(tmp) / "image.map").read_text(), WEIGHTS_UNIT[:-2] + ".o",
                                     [(s.addr, s.addr + s.size) for s in in_flash])
    result = FlashMeasurement(sum(s.size for s in in_flash), weights, tuple(roots))
    _measured[key] = result
    return result


def measure_code_bytes(sources: dict[str, str]) -> int:
    """Flash bytes of the model's linked code on the M7, weights excluded (see `measure_flash`)."""
    return measure_flash(sources).code_bytes
