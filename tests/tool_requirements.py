"""What a test needs outside Python: gcc, make, arm-none-eabi-gcc, and the unicorn emulator.

`scripts/bootstrap.sh` installs all of them, so under CI (`CI` set) a missing one is a broken install
step and fails the test instead of hiding behind a skip. On a developer's machine without them the
test skips and says how to get them.

    @pytest.mark.needs("arm-none-eabi-gcc")      # a test or a class
    pytestmark = pytest.mark.needs("gcc", "unicorn")   # a module
    require_tools("gcc")                          # inside a fixture
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

PYTHON_MODULES = {"unicorn"}


def missing_tools(*tools: str) -> list[str]:
    return [t for t in tools
            if (importlib.util.find_spec(t) is None if t in PYTHON_MODULES else shutil.which(t) is None)]


def require_tools(*tools: str) -> None:
    missing = missing_tools(*tools)
    if not missing:
        return
    message = f"needs {', '.join(missing)}: run scripts/bootstrap.sh to install them"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI installs them, so this is a broken set-up step)", pytrace=False)
    pytest.skip(message)
