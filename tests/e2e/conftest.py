"""Fixtures of the end-to-end tests (helpers live in e2e_util.py)."""

import pytest

from e2e_util import CompileCache


@pytest.fixture(scope="session")
def compiled(tmp_path_factory) -> CompileCache:
    """Every (family, variant, precision) compiled once per session, written under one directory."""
    return CompileCache(tmp_path_factory.mktemp("e2e-build"))
