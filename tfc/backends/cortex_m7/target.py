"""The Cortex-M7 target description: what the board offers and what the compiler must fit into."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Target:
    """A microcontroller the backend can compile for, with its memory budgets."""

    name: str
    flash_bytes: int
    sram_bytes: int
    cpu: str
    fpu: str
    has_dsp: bool

    def describe(self) -> str:
        return (f"{self.name}: {self.cpu} ({self.fpu}{', DSP' if self.has_dsp else ''}), "
                f"flash {self.flash_bytes // KIB} KiB, SRAM {self.sram_bytes // KIB} KiB")


STM32F746 = Target("stm32f746", 1 * MIB, 320 * KIB, "cortex-m7", "fpv5-sp-d16", True)
