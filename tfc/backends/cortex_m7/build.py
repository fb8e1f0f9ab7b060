"""Building generated code: `make` in an output directory, and measuring code size for the M7.

Builds of one directory are serialized with a file lock, so parallel test workers (or two `tfc run`
calls) never race on the same files; make itself skips what is up to date.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tfc.errors import BuildError

M7_CC = "arm-none-eabi-gcc"
M7_SIZE = "arm-none-eabi-size"
M7_FLAGS = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard", "-O3", "-std=c99",
            "-ffunction-sections", "-fdata-sections"]
# Files that are not part of the model's code on the device.
NOT_DEVICE_CODE = {"weights.c", "harness.c"}


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
    return shutil.which(M7_CC) is not None and shutil.which(M7_SIZE) is not None


_measured: dict[str, int] = {}


def measure_code_bytes(sources: dict[str, str]) -> int:
    """Bytes of code (+ read-only and initialized data) of every translation unit but the weights,
    compiled for the Cortex-M7 and summed from `arm-none-eabi-size`. Cached by source content."""
    units = sorted(n for n in sources if n.endswith(".c") and n not in NOT_DEVICE_CODE)
    key = hashlib.sha256("".join(n + sources[n] for n in sorted(sources)
                                 if n not in NOT_DEVICE_CODE).encode()).hexdigest()
    if key in _measured:
        return _measured[key]
    with tempfile.TemporaryDirectory(prefix="tfc-size-") as tmp:
        for name, text in sources.items():
            (Path(tmp) / name).write_text(text)
        objects = []
        for unit in units:
            obj = unit[:-2] + ".o"
            proc = subprocess.run([M7_CC, *M7_FLAGS, "-c", unit, "-o", obj], cwd=tmp,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(f"{M7_CC} failed on {unit}: {_first_error(proc.stderr)}")
            objects.append(obj)
        proc = subprocess.run([M7_SIZE, *objects], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"{M7_SIZE} failed: {_first_error(proc.stderr)}")
    total = 0
    for line in proc.stdout.splitlines()[1:]:  # text data bss dec hex filename
        fields = line.split()
        total += int(fields[0]) + int(fields[1])
    _measured[key] = total
    return total
