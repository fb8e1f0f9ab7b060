"""Fixtures of the runtime kernel tests (the harness itself is in kernel_harness.py)."""

from __future__ import annotations

import os

import pytest

from tool_requirements import require_tools

from kernel_harness import HostKernels


@pytest.fixture(scope="session")
def kernels_host(tmp_path_factory) -> HostKernels:
    require_tools("gcc")
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return HostKernels(tmp_path_factory.mktemp("kernels"))
