"""Golden generated C for tiny models: the emitter's output must not change by accident.

After an intended change, run `python scripts/update_golden.py` and review the diff.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("update_golden", ROOT / "scripts" / "update_golden.py")
update_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(update_golden)


def test_there_are_golden_cases():
    assert len(update_golden.cases()) >= 2


@pytest.mark.parametrize("case_dir", update_golden.cases(), ids=lambda p: p.name)
def test_generated_c_matches_golden(case_dir):
    for name, text in update_golden.generate(case_dir).items():
        golden = (case_dir / name).read_text()
        if text != golden:
            diff = "".join(difflib.unified_diff(golden.splitlines(True), text.splitlines(True),
                                                f"golden/{case_dir.name}/{name}", "generated", n=2))
            pytest.fail(f"{case_dir.name}/{name} differs from its golden "
                        f"(run scripts/update_golden.py if intended):\n{diff[:4000]}")
