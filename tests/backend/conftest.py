"""Backend test fixtures: compiled artifacts are written once per content hash per session, so
identical compiles share one build directory (and make finds it up to date)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def outdir_for(tmp_path_factory):
    root = tmp_path_factory.mktemp("builds")

    def write(artifact):
        return artifact.write(root / artifact.digest[:16])

    return write
