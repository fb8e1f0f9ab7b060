"""The emulator on hand-written C: results, exact instruction counts, markers, stack, sizes."""

from __future__ import annotations

import math
import subprocess

import pytest

from tfc.backends.cortex_m7 import cost_model
from tfc.backends.cortex_m7.emulator import M7Emulator
from tfc.backends.cortex_m7.m7_build import read_elf
from tfc.errors import TfcError

# sum_loop(n) executes 1 + 3n + 2 instructions: movs; n x (adds, subs, bne); mov; bx.
# pick(x) executes 5 whatever x is: the IT block's skipped instruction still counts.
HAND_WRITTEN = r"""
#include <stdint.h>

__attribute__((naked, noinline, used)) int sum_loop(int n)
{
    __asm volatile(
        "movs r1, #0\n"
        "1: adds r1, r1, r0\n"
        "subs r0, r0, #1\n"
        "bne 1b\n"
        "mov r0, r1\n"
        "bx lr\n");
}

__attribute__((naked, noinline, used)) int pick(int x)
{
    __asm volatile(
        "cmp r0, #0\n"
        "ite eq\n"
        "moveq r0, #7\n"
        "movne r0, #9\n"
        "bx lr\n");
}

__attribute__((noinline, used)) int stack_user(int n)
{
    volatile uint8_t buffer[1024];
    for (int i = 0; i < 1024; ++i) {
        buffer[i] = (uint8_t)(i + n);
    }
    int total = 0;
    for (int i = 0; i < 1024; ++i) {
        total += buffer[i];
    }
    return total;
}

__attribute__((noinline, used)) int read_unmapped(void)
{
    return *(volatile int *)0x60000000;
}

void tfc_layer_mark(int index);
static const int8_t weights[8] = {1, -2, 3, -4, 5, -6, 7, -8};
int32_t bias = 100;  /* .data: set up by the reset handler */

int main(void)
{
    int32_t acc = bias;
    tfc_layer_mark(0);
    for (int i = 0; i < 8; ++i) {
        acc += weights[i] * (i + 1);
    }
    tfc_layer_mark(1);
    acc += sum_loop(4);
    tfc_layer_mark(2);
    return acc;
}
"""
KEEP = ("sum_loop", "pick", "stack_user", "read_unmapped")


@pytest.fixture(scope="module")
def emulator(build_c):
    return M7Emulator(build_c(HAND_WRITTEN, keep=KEEP))


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_tiny_loop_result_and_exact_instruction_count(emulator, n):
    run = emulator.call("sum_loop", n)
    assert run.status == n * (n + 1) // 2
    assert run.instructions == 1 + 3 * n + 2


@pytest.mark.parametrize("x,want", [(0, 7), (5, 9)])
def test_it_block_counts_the_skipped_instruction(emulator, x, want):
    run = emulator.call("pick", x)
    assert run.status == want
    assert run.instructions == 5


def test_reset_runs_main_with_initialised_data_and_records_markers(emulator):
    run = emulator.reset_and_run()
    assert run.status == 100 + sum(w * (i + 1) for i, w in enumerate([1, -2, 3, -4, 5, -6, 7, -8])) + 10
    assert len(run.marks) == 3
    counts = [m[0] for m in run.marks]
    assert counts == sorted(counts) and counts[-1] <= run.instructions
    # Between marks 1 and 2: the call of sum_loop(4) (15 instructions) plus the marker and call glue.
    between = counts[2] - counts[1]
    assert 15 <= between <= 15 + 8


def test_stack_high_water_mark(emulator):
    run = emulator.call("stack_user", 3)
    assert run.status == sum((i + 3) & 0xFF for i in range(1024))
    assert 1024 <= run.stack_bytes <= 1024 + 64
    assert emulator.call("sum_loop", 3).stack_bytes == 0  # repainted for every run


def test_fault_is_a_one_line_error_naming_the_function(emulator):
    with pytest.raises(TfcError, match=r"faulted at pc=.*read_unmapped") as info:
        emulator.call("read_unmapped")
    assert "\n" not in str(info.value)


def test_cycle_estimate_follows_the_cost_model(emulator):
    n = 100
    run = emulator.call("sum_loop", n)
    c = cost_model.CLASS_CYCLES
    want = c["alu"] * (2 + 2 * n) + c["branch"] * n + c["return"]
    assert run.cycles_estimate == math.floor(want + 0.5)  # totals round half up
    slow = M7Emulator(emulator.elf, cost_model.CostModel(flash_wait_states=2)).call("sum_loop", n)
    assert slow.cycles_estimate == math.floor(want + 2 * (n + 1) + 0.5)


def test_memory_usage_matches_arm_none_eabi_size(emulator):
    elf = read_elf(emulator.elf.path)
    flash, sram = elf.memory_usage()
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf.path)], capture_output=True,
                         text=True, check=True).stdout
    sizes = {f[0]: int(f[1]) for f in (line.split() for line in out.splitlines()) if len(f) == 3
             and f[1].isdigit()}
    assert sram == sizes[".data"] + sizes[".bss"] + sizes.get(".noinit", 0)
    assert flash == sum(sizes.get(s, 0) for s in (".isr_vector", ".text", ".rodata", ".ARM.exidx",
                                                  ".ARM.extab", ".data"))
    assert sizes[".data"] >= 4 and flash > sizes[".text"]
