/* The model harness for emulated runs: reads the inputs from tfc_m7_io (written by the emulator
 * before reset), runs the model once, and leaves the outputs in tfc_m7_io for the emulator.
 * tfc_m7_io.h, generated per model by m7_build.py, names the run function, the element types and
 * where each input and output sits in tfc_m7_io. */
#include <stdint.h>

#include "model.h"
#include "tfc_m7_io.h"

void tfc_layer_mark(int index);

/* .noinit: the reset handler must not clear the inputs the emulator has written. */
__attribute__((section(".noinit"), aligned(16), used)) uint8_t tfc_m7_io[TFC_M7_IO_BYTES];

static const uint32_t input_offsets[TFC_M7_NUM_INPUTS] = TFC_M7_INPUT_OFFSETS;
static const uint32_t output_offsets[TFC_M7_NUM_OUTPUTS] = TFC_M7_OUTPUT_OFFSETS;

int main(void)
{
    const TFC_M7_IN_T *inputs[TFC_M7_NUM_INPUTS];
    TFC_M7_OUT_T *outputs[TFC_M7_NUM_OUTPUTS];
    for (int i = 0; i < TFC_M7_NUM_INPUTS; ++i) {
        inputs[i] = (const TFC_M7_IN_T *)(const void *)(tfc_m7_io + input_offsets[i]);
    }
    for (int j = 0; j < TFC_M7_NUM_OUTPUTS; ++j) {
        outputs[j] = (TFC_M7_OUT_T *)(void *)(tfc_m7_io + output_offsets[j]);
    }
    /* The run is bracketed by two markers; with TFC_PROFILE the model marks each layer too. */
    tfc_layer_mark(-1);
    int rc = TFC_M7_RUN_MULTI(inputs, outputs);
    tfc_layer_mark(-2);
    return rc;
}
