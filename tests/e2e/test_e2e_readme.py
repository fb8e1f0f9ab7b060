"""The README's two opening commands are the ones the project promises, and .ci/run runs the second.

Fast: reads files only. (The commands' effect is what tests/e2e/test_e2e_cli.py runs.)
"""

from __future__ import annotations

import os
import re

from e2e_util import REPO

FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)


def _opening_blocks() -> list[str]:
    """The fenced blocks before the README's first heading or rule after its title."""
    text = (REPO / "README.md").read_text()
    body = text.split("\n", 1)[1]
    opening = re.split(r"^(?:---|## )", body, maxsplit=1, flags=re.M)[0]
    return FENCE.findall(opening)


def test_readme_opens_with_exactly_two_commands():
    blocks = _opening_blocks()
    assert len(blocks) == 2
    for block in blocks:
        assert len(block.strip().splitlines()) == 1, f"one command per block: {block}"


def test_first_command_sets_up_compiles_runs_and_shows_the_report():
    first = _opening_blocks()[0]
    for step in ("scripts/bootstrap.sh",
                 "tfc compile examples/hybrid/model.onnx --target stm32f746 "
                 "--calib examples/hybrid/calib.npz -o build/hybrid",
                 "tfc run build/hybrid --input examples/hybrid/input.npy",
                 "build/hybrid/report.md"):
        assert step in first
    for path in ("examples/hybrid/model.onnx", "examples/hybrid/calib.npz",
                 "examples/hybrid/input.npy", "scripts/bootstrap.sh"):
        assert (REPO / path).is_file(), path


def test_ci_runs_the_readme_test_command():
    second = _opening_blocks()[1].strip()
    assert "scripts/bootstrap.sh" in second and "-m pytest" in second
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    ci_text = ci.read_text()
    for part in (p.strip() for p in second.split("&&")):
        assert part in ci_text, f"'{part}' missing from .ci/run"
