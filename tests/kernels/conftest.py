"""Fixtures of the runtime kernel tests (the harness itself is in kernel_harness.py)."""

from __future__ import annotations

import os
import shutil

import pytest

from kernel_harness import HostKernels


@pytest.fixture(scope="session")
def kernels_host(tmp_path_factory) -> HostKernels:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the host kernel tests need a C compiler")
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return HostKernels(tmp_path_factory.mktemp("kernels"))
