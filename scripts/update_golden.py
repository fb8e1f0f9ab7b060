#!/usr/bin/env python3
"""Regenerates the golden generated C under tests/golden/<case>/ (see tests/backend/test_golden.py).

Each case directory holds `input.tir` (a tiny model) and `case.json` (precision, pipeline, C
prefix). Run this after an intended change to the emitter, the templates or the kernel calls, and
review the diff: a refactor should leave the goldens unchanged.

    python scripts/update_golden.py            # rewrite every case
    python scripts/update_golden.py --check    # exit 1 if any golden is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"
GOLDEN_FILES = ("model.c", "model.h", "weights.c")  # the runtime copy is tested by tests/kernels


def generate(case_dir: Path) -> dict[str, str]:
    """The golden files of one case, as the current compiler generates them."""
    import tfc

    case = json.loads((case_dir / "case.json").read_text())
    art = tfc.compile(case_dir / "input.tir", precision=case["precision"],
                      pipeline=case["pipeline"], name=case["name"])
    return {name: art.sources[name] for name in GOLDEN_FILES}


def cases() -> list[Path]:
    return sorted(p.parent for p in GOLDEN_DIR.glob("*/case.json"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report stale goldens instead of writing")
    args = ap.parse_args(argv)
    stale = []
    for case_dir in cases():
        for name, text in generate(case_dir).items():
            path = case_dir / name
            if path.is_file() and path.read_text() == text:
                continue
            stale.append(path)
            if not args.check:
                path.write_text(text)
    verb = "stale" if args.check else "updated"
    for path in stale:
        print(f"{verb}: {path.relative_to(GOLDEN_DIR.parent.parent)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
