"""Fixtures of the emulated Cortex-M7 tests: skip without the Arm toolchain or Unicorn, and build
small hand-written C images once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tool_requirements import require_tools

from tfc.backends.cortex_m7 import m7_build



@pytest.fixture(autouse=True)
def _m7_tools():
    require_tools("arm-none-eabi-gcc", "gcc", "unicorn")


@pytest.fixture(scope="session")
def build_c(tmp_path_factory):
    """build_c(text, keep=()) -> an ELF built from one C file with the tfc startup code."""
    root = tmp_path_factory.mktemp("m7c")
    count = [0]

    def build(text: str, keep: tuple[str, ...] = ()) -> Path:
        count[0] += 1
        src = root / f"case{count[0]}.c"
        src.write_text(text)
        return m7_build.compile_elf([src], root / f"case{count[0]}.elf", keep=keep)

    return build
