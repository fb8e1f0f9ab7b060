"""A missing external tool skips a test on a developer's machine but fails it under CI."""

import pytest

from tool_requirements import missing_tools, require_tools


def test_present_tools_pass_and_missing_ones_are_named():
    require_tools("gcc")
    assert missing_tools("gcc", "no-such-tool-tfc") == ["no-such-tool-tfc"]


def test_missing_tool_skips_without_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-tfc"):
        require_tools("no-such-tool-tfc")


def test_missing_tool_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="broken set-up step"):
        require_tools("no-such-tool-tfc")
