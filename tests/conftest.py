"""Shared pytest configuration. Each concern keeps its own clearly marked section."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

# =================================================================================================
# FileCheck collector: every tests/filecheck/**/*.tir is one pytest item.
#
# Each `// RUN: <cmd>` line runs through bash with `%s` replaced by the file's path, `tfc` meaning
# `python -m tfc.cli` (no console script needed) and `filecheck` the PyPI FileCheck. A file may
# hold several `// -----`-separated cases; `tfc opt --split-input-file` splits them.
# =================================================================================================

FILECHECK_ROOT = Path(__file__).parent / "filecheck"
_RUN_LINE = re.compile(r"^\s*//\s*RUN:\s*(.*)$")


def run_lines(path: Path) -> list[str]:
    """The commands of a .tir file; a RUN line ending in `\\` continues on the next RUN line."""
    commands, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _RUN_LINE.match(line)
        if m:
            pending += m.group(1).rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
            else:
                commands.append(pending)
                pending = ""
    return commands


def pytest_collect_file(parent, file_path: Path):
    if file_path.suffix == ".tir" and FILECHECK_ROOT in file_path.parents:
        return FileCheckFile.from_parent(parent, path=file_path)
    return None


class FileCheckFile(pytest.File):
    def collect(self):
        yield FileCheckItem.from_parent(self, name=self.path.name)


class FileCheckItem(pytest.Item):
    def runtest(self):
        commands = run_lines(self.path)
        if not commands:
            raise FileCheckFailure(f"{self.path}: no `// RUN:` line", "")
        prelude = f'tfc() {{ {shlex.quote(sys.executable)} -m tfc.cli "$@"; }}\n'
        for command in commands:
            script = prelude + command.replace("%s", shlex.quote(str(self.path)))
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True,
                                  text=True, cwd=Path(__file__).parent.parent, timeout=300)
            if proc.returncode != 0:
                raise FileCheckFailure(command, proc.stdout + proc.stderr)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, FileCheckFailure):
            command, output = excinfo.value.args
            return f"RUN: {command}\n{output}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"filecheck: {self.path.relative_to(FILECHECK_ROOT)}"


class FileCheckFailure(Exception):
    """A RUN line exited non-zero: args are (command, its output)."""


# -- tools outside Python (see tests/tool_requirements.py) --------------------------------------

def pytest_runtest_setup(item):
    from tool_requirements import require_tools

    for mark in item.iter_markers("needs"):
        require_tools(*mark.args)
