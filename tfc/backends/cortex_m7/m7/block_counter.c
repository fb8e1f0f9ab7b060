/* Host-side (not Cortex-M7) C: the emulator's translated-block hook, compiled with the host gcc on
 * first use and registered with uc_hook_add through ctypes (see emulator.py). */
#include <stdint.h>

typedef struct {
    uint64_t instructions;
    uint64_t cost;
    const uint16_t *code;      /* the code region, as halfwords */
    const uint32_t *costs;     /* cost of the instruction starting at each halfword */
    uint32_t *block_size;      /* per block start halfword: its size in bytes (0: not seen), */
    uint32_t *block_count;     /* its instruction count */
    uint32_t *block_cost;      /* and its summed cost */
    uint64_t code_base;
    uint64_t code_halfwords;
    uint64_t mark_address;
    uint64_t *mark_instructions;
    uint64_t *mark_cost;
    uint64_t marks;
    uint64_t max_marks;
    uint64_t outside_blocks;   /* blocks that ran outside the code region (not counted) */
} tfc_counter;

void tfc_count_block(void *uc, uint64_t address, uint32_t size, void *user)
{
    tfc_counter *c = (tfc_counter *)user;
    (void)uc;
    if (address == c->mark_address) {
        if (c->marks < c->max_marks) {
            c->mark_instructions[c->marks] = c->instructions;
            c->mark_cost[c->marks] = c->cost;
        }
        c->marks++;
    }
    uint64_t start = (address - c->code_base) >> 1;
    uint64_t end = start + (size >> 1);
    if (address < c->code_base || end > c->code_halfwords) {
        c->outside_blocks++;
        return;
    }
    if (c->block_size[start] != size) {
        /* A 32-bit Thumb-2 instruction starts with a halfword whose top five bits are
         * 0b11101, 0b11110 or 0b11111; every other halfword is a whole 16-bit instruction. */
        uint32_t count = 0, cost = 0;
        for (uint64_t i = start; i < end; i += ((c->code[i] >> 11) >= 0x1Du) ? 2u : 1u) {
            count++;
            cost += c->costs[i];
        }
        c->block_size[start] = size;
        c->block_count[start] = count;
        c->block_cost[start] = cost;
    }
    c->instructions += c->block_count[start];
    c->cost += c->block_cost[start];
}
