"""tfc: an ahead-of-time compiler for sparse INT8 transformer/CNN hybrids on microcontrollers.

    import tfc
    art = tfc.compile("model.onnx", calib="calib.npz")      # -> Artifact (.graph, .report, .sources)
    art.write("build/model")
    outputs = tfc.run("build/model", [x])                    # float in, float out (host build)
"""

__version__ = "0.1.0"

from tfc import ir  # noqa: E402
from tfc.backends import TARGETS  # noqa: E402
from tfc.driver import Artifact  # noqa: E402


def compile(model, target: str = "stm32f746", *, calib=None, precision: str = "int8", pipeline=None,
            name: str = "tfc_model", instruments=(), allow_over_budget: bool = False,
            measure_code: bool = False, keep_float_layernorm: bool = False) -> Artifact:
    """Compiles a model for a target; nothing is written until `Artifact.write(outdir)`.

    model: a path to an .onnx (or .tir) file, an onnx.ModelProto, or a tfc.ir.Graph.
    calib: a .npz path or a dict input name -> samples, for the `calibrate` pass (int8 of a float
      model). precision: "int8" or "float32". pipeline: pass names / pipeline text / Pass objects
      replacing the target's default. name: the C prefix of every generated symbol.
    instruments: pipeline instruments (IR printing, dumps, timing). allow_over_budget: return the
      artifact even when it does not fit the target (else BudgetError). measure_code: measure code
      size with arm-none-eabi-gcc (when installed) instead of estimating it.
    keep_float_layernorm: int8 only; keep LayerNorm as a float32 island (dequantize -> float32
      LayerNorm kernel -> quantize) instead of Scaled-LayerNorm, to measure what that costs.
    """
    from tfc.driver import compile_model

    return compile_model(model, target, calib=calib, precision=precision, pipeline=pipeline,
                         name=name, instruments=instruments, allow_over_budget=allow_over_budget,
                         measure_code=measure_code, keep_float_layernorm=keep_float_layernorm)


def run(outdir, inputs, on: str = "host", raw: bool = False, profile: bool = False):
    """Runs a compiled OUTDIR on `inputs` (a list/dict of arrays as the ONNX model takes them).

    on: "host" (gcc shared library) or "m7" (emulated Cortex-M7); with on="m7", `profile` writes
    OUTDIR/profile.json (instructions and estimated cycles, per layer)."""
    from tfc.backends.cortex_m7.host_run import run as run_outdir

    return run_outdir(outdir, inputs, on=on, raw=raw, profile=profile)


def validate(model, outdir, data=None, on: str = "host", samples: int | None = None, seed: int = 0):
    """Compares a compiled OUTDIR with onnxruntime running `model` on the same inputs.

    Returns a `tfc.validation.ValidationReport`: per output top-1 agreement, max abs error and SQNR;
    per layer the SQNR of tfc's dequantized activations against onnxruntime's, and the first layer
    whose SQNR drops steeply (`.first_suspect`). data: .npz path or dict input name -> samples
    (default: random normal samples drawn with `seed`); on: "host", "m7" or "interp"."""
    from tfc.validation import validate as validate_outdir

    return validate_outdir(model, outdir, data=data, on=on, samples=samples, seed=seed)


def import_onnx(path_or_model, name=None):
    """ONNX model -> tfc IR graph (the front end alone)."""
    from frontends import import_onnx as _import_onnx

    return _import_onnx(path_or_model, name)


def __getattr__(attr):
    if attr == "PassManager":  # lazy: keeps `import tfc` light
        from tfc.pipeline import PassManager

        return PassManager
    raise AttributeError(f"module 'tfc' has no attribute '{attr}'")


__all__ = ["__version__", "compile", "run", "validate", "import_onnx", "Artifact", "TARGETS", "PassManager", "ir"]
