"""Instruction classification of the Cortex-M7 cost model."""

from __future__ import annotations

import pytest

from tfc.backends.cortex_m7.cost_model import CLASS_CYCLES, CostModel, classify


@pytest.mark.parametrize("mnemonic,operands,cls", [
    ("adds", "r1, r1, r0", "alu"), ("add.w", "r3, r3, r2, lsl #2", "alu"), ("sxtb", "r0, r0", "alu"),
    ("bls.n", "8000130 <f+0x10>", "branch"), ("blt", "80001 <x>", "branch"), ("cbz", "r0, 8000 <x>", "branch"),
    ("bne.w", "8000 <x>", "branch"), ("bl", "8000 <memcpy>", "call"), ("blx", "r3", "call"),
    ("bx", "lr", "return"), ("pop", "{r4, r5, pc}", "return"), ("ldr.w", "pc, [sp], #4", "return"),
    ("ldr", "r0, [r1, #4]", "load"), ("ldrsb.w", "r2, [r3], #1", "load"), ("ldrd", "r0, r1, [r2]", "load"),
    ("str", "r0, [r1]", "store"), ("push", "{r4, r5, r6, lr}", "store"),
    ("smlad", "r0, r1, r2, r0", "dsp"), ("sxtb16", "r0, r1, ror #8", "dsp"), ("ssat", "r0, #8, r0", "dsp"),
    ("mul", "r0, r1", "mul"), ("smull", "r0, r1, r2, r3", "mul"), ("mla", "r0, r1, r2, r3", "mul"),
    ("sdiv", "r0, r0, r1", "div"), ("itt", "eq", "it"), ("ite", "ne", "it"),
    ("vmla.f32", "s0, s1, s2", "fp"), ("vldr", "s0, [r0]", "fp"), ("vdiv.f32", "s0, s1, s2", "fp_long"),
    ("vsqrt.f32", "s0, s0", "fp_long"), ("nop", "", "nop"),
])
def test_classify(mnemonic, operands, cls):
    assert classify(mnemonic, operands) == cls


def test_multi_register_transfers_cost_more():
    model = CostModel()
    two = model.cycles("push", "{r4, lr}")
    six = model.cycles("push", "{r4, r5, r6, r7, r8, lr}")
    ranged = model.cycles("vpush", "{s16-s21}")
    assert two == CLASS_CYCLES["store"]
    assert six == pytest.approx(two + 4 * 0.5)
    assert ranged == pytest.approx(CLASS_CYCLES["fp"] + 4 * 0.5)


def test_wait_states_charge_loads_and_branches_only():
    slow = CostModel(flash_wait_states=3)
    assert slow.cycles("ldr", "r0, [r1]") == CLASS_CYCLES["load"] + 3
    assert slow.cycles("b.n", "8000 <x>") == CLASS_CYCLES["branch"] + 3
    assert slow.cycles("adds", "r0, r0, r1") == CLASS_CYCLES["alu"]
