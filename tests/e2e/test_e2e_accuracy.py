"""Whole models through `tfc.compile` + `tfc.run` on the host: exactness and accuracy.

- int8 C output == the tfc IR interpreter on the final graph, bit for bit;
- float32 C output == onnxruntime within 1e-4;
- int8 vs onnxruntime float: top-1 agreement >= 95% on the 100 committed test inputs (and the SQNR
  of the logits, printed per model: run with `-s` to see it).
"""

from __future__ import annotations

import numpy as np
import pytest

import tfc
from e2e_util import (FLOAT_VARIANTS, INT8_VARIANTS, case_id, float_reference_path, load_samples,
                      model_path, ort_outputs, sqnr_db)
from tfc.ir import interp
from tfc.ir.quant_math import quantize_float

pytestmark = pytest.mark.slow

BIT_EXACT_SAMPLES = 8
MIN_TOP1_AGREEMENT = 0.95


def _quantize_inputs(graph, samples: np.ndarray) -> np.ndarray:
    quant = graph.inputs[0].type.quant
    assert graph.inputs[0].type.dtype == "i8" and quant is not None, "int8 graph input expected"
    return quantize_float(samples, quant.scale[0], quant.zero_point[0], np.int8)


@pytest.mark.parametrize("case", INT8_VARIANTS, ids=case_id)
def test_int8_c_matches_interpreter_bit_exactly(compiled, case):
    c = compiled.get(*case, "int8")
    xq = _quantize_inputs(c.artifact.graph, load_samples(case[0])[:BIT_EXACT_SAMPLES])
    (got,) = tfc.run(c.outdir, [xq], raw=True)
    expected = np.concatenate([interp.run(c.artifact.graph, [x])[0] for x in xq])
    assert got.dtype == np.int8
    mismatched = int(np.count_nonzero(got != expected.reshape(got.shape)))
    assert mismatched == 0, f"{mismatched} of {got.size} int8 outputs differ from the interpreter"


@pytest.mark.parametrize("case", INT8_VARIANTS, ids=case_id)
def test_int8_top1_agrees_with_onnxruntime_float(compiled, case):
    c = compiled.get(*case, "int8")
    samples = load_samples(case[0])
    (got,) = tfc.run(c.outdir, [samples])
    reference = ort_outputs(float_reference_path(*case), samples).reshape(got.shape)
    agreement = float(np.mean(got.argmax(-1) == reference.argmax(-1)))
    print(f"\n{case_id(case)}: int8 vs onnxruntime float: top-1 agreement {agreement:.2f}, "
          f"SQNR {sqnr_db(reference, got):.1f} dB")
    assert agreement >= MIN_TOP1_AGREEMENT


@pytest.mark.parametrize("case", FLOAT_VARIANTS, ids=case_id)
def test_float32_c_matches_onnxruntime(compiled, case):
    c = compiled.get(*case, "float32")
    samples = load_samples(case[0])[:10]
    (got,) = tfc.run(c.outdir, [samples])
    reference = ort_outputs(model_path(*case), samples).reshape(got.shape)
    np.testing.assert_allclose(got, reference, atol=1e-4, rtol=1e-4)
