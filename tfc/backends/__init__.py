"""Code generation targets. `TARGETS` maps a target name (the `--target` flag) to its description."""

from __future__ import annotations

from tfc.backends.cortex_m7.target import STM32F746, Target
from tfc.errors import TfcError

TARGETS: dict[str, Target] = {t.name: t for t in (STM32F746,)}


def get_target(name: str) -> Target:
    """The target called `name`; an unknown name fails listing the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise TfcError(f"unknown target '{name}'; known targets: {', '.join(sorted(TARGETS))}") from None


__all__ = ["TARGETS", "Target", "get_target"]
