/* Startup for tfc's Cortex-M7 images: vector table and reset handler.
 *
 * The reset handler sets up .data and .bss, calls main(), and parks in tfc_m7_halt(), where the
 * emulator stops. It does not touch the System Control Space (0xE000E000..): the emulator has no
 * SCS, and Unicorn runs hard-float code without CPACR. A real board must enable CP10/CP11 in
 * CPACR before main() when it runs the float32 kernels. */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

int main(void);
void tfc_m7_reset(void);
void tfc_m7_halt(int status);
void tfc_m7_fault(void);
void tfc_layer_mark(int index);

/* Markers the emulator watches: the running instruction count is recorded at each call. They must
 * stay real calls, so they are noinline and hold a volatile asm that the optimiser cannot drop. */
__attribute__((noinline, used)) void tfc_layer_mark(int index)
{
    __asm volatile("" : : "r"(index) : "memory");
}

__attribute__((noinline, used)) void tfc_m7_halt(int status)
{
    for (;;) {
        __asm volatile("" : : "r"(status) : "memory");
    }
}

__attribute__((noinline, used)) void tfc_m7_fault(void)
{
    for (;;) {
        __asm volatile("" : : : "memory");
    }
}

__attribute__((noreturn, used)) void tfc_m7_reset(void)
{
    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata; ++dst) {
        *dst = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss; ++dst) {
        *dst = 0u;
    }
    tfc_m7_halt(main());
    for (;;) {
    }
}

/* Initial stack pointer, reset, then the core exceptions (NMI .. SysTick). */
__attribute__((section(".isr_vector"), used)) void (*const tfc_m7_vectors[16])(void) = {
    (void (*)(void))(&_estack), tfc_m7_reset, tfc_m7_fault, tfc_m7_fault, tfc_m7_fault,
    tfc_m7_fault, tfc_m7_fault, 0, 0, 0, 0, tfc_m7_fault, tfc_m7_fault, 0, tfc_m7_fault,
    tfc_m7_fault,
};
