"""The pass registry: names, lazy imports, user passes, and the one naming scheme."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tfc.errors import PassError
from tfc.passes import PASSES, get_pass, register_pass, unknown_pass_message
from tfc.pipeline import Pass, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@pytest.mark.parametrize("name", sorted(PASSES))
def test_name_file_and_test_dir_agree(name):
    assert KEBAB.match(name), f"pass name '{name}' is not kebab-case"
    module, _, _ = PASSES[name].partition(":")
    snake = name.replace("-", "_")
    target_pass = re.fullmatch(r"tfc\.backends\.(\w+)\.passes\.(\w+)", module)
    if target_pass:
        assert target_pass.group(2) == snake, \
            f"pass '{name}' must live in tfc/backends/{target_pass.group(1)}/passes/{snake}.py"
    else:
        if not module.startswith("tfc.passes."):
            pytest.skip(f"{name} is a user pass")
        assert module == f"tfc.passes.{snake}", f"pass '{name}' must live in tfc/passes/{snake}.py"
    assert get_pass(name).name == name
    assert (ROOT / "tests" / "filecheck" / name).is_dir(), f"tests/filecheck/{name}/ is missing"


def test_every_pass_module_in_the_package_is_registered():
    modules = {p.stem for p in (ROOT / "tfc" / "passes").glob("*.py") if p.stem != "__init__"}
    registered = {PASSES[n].partition(":")[0].rsplit(".", 1)[-1] for n in PASSES}
    helpers = {m for m in modules - registered
               if not any(isinstance(v, type) and issubclass(v, Pass) and v is not Pass and v.name
                          for v in vars(importlib.import_module(f"tfc.passes.{m}")).values())}
    assert modules - registered - helpers == set(), "a pass module is missing from PASSES"


def test_unknown_pass_suggests_the_closest_name():
    with pytest.raises(PassError, match=r"^unknown pass 'fuse-activaton'; did you mean 'fuse-activation'\?$"):
        get_pass("fuse-activaton")
    assert "known passes:" in unknown_pass_message("zzzz")


def test_registry_is_lazy():
    import sys

    assert "tfc.passes.layout_nhwc" in PASSES["layout-nhwc"]
    get_pass("canonicalize")
    assert "tfc.passes.canonicalize" in sys.modules


def test_register_user_pass_and_use_it_in_a_pipeline():
    @dataclass
    class CountOps(Pass):
        """Counts ops (a user pass defined in a test)."""

        name = "test-count-ops"
        limit: int = 3

    try:
        assert register_pass(CountOps) is CountOps
        register_pass(CountOps)  # the same class again is fine
        [p] = parse_pipeline("test-count-ops{limit=7}")
        assert isinstance(p, CountOps) and p.limit == 7

        @dataclass
        class Other(Pass):
            name = "test-count-ops"

        with pytest.raises(ValueError, match="already registered"):
            register_pass(Other)
    finally:
        PASSES.pop("test-count-ops", None)
        from tfc import passes

        passes._LOADED.pop("test-count-ops", None)


def test_cannot_shadow_a_builtin_or_register_a_nameless_pass():
    @dataclass
    class Shadow(Pass):
        name = "canonicalize"

    with pytest.raises(ValueError, match="already registered|built-in"):
        register_pass(Shadow)

    class Nameless(Pass):
        pass

    with pytest.raises(ValueError, match="no pass name"):
        register_pass(Nameless)
