"""The pass registry: every pass name tfc knows, mapped to where its class lives.

Imports are lazy so that `tfc opt -p canonicalize` does not import the quantizer, and so that a
pass whose module has not landed yet only fails when someone asks for it. The naming scheme is
enforced by a test: pass `fuse-activation` lives in `tfc/passes/fuse_activation.py` and is tested
in `tests/filecheck/fuse-activation/`. A pass that only makes sense for one target lives under that
backend, e.g. `m7-kernel-scratch` in `tfc/backends/cortex_m7/passes/m7_kernel_scratch.py`.

Library users add their own passes with `register_pass`:

    @register_pass
    @dataclass
    class MyPass(Pass):
        name = "my-pass"
        def run(self, graph): ...
"""

from __future__ import annotations

import difflib
import importlib

from tfc.errors import PassError

# name -> "module:Class". Keep sorted by pipeline position within each group.
PASSES: dict[str, str] = {
    # target-neutral structure
    "canonicalize": "tfc.passes.canonicalize:CanonicalizePass",
    "fold-batchnorm": "tfc.passes.fold_batchnorm:FoldBatchnormPass",
    "fuse-activation": "tfc.passes.fuse_activation:FuseActivationPass",
    "layout-nhwc": "tfc.passes.layout_nhwc:LayoutNhwcPass",
    # quantization
    "calibrate": "tfc.passes.calibrate:CalibratePass",
    "quantize": "tfc.passes.quantize:QuantizePass",
    "scaled-layernorm": "tfc.passes.scaled_layernorm:ScaledLayernormPass",
    "softmax-lut": "tfc.passes.softmax_lut:SoftmaxLutPass",
    "fold-matmul-requantize": "tfc.passes.fold_matmul_requantize:FoldMatmulRequantizePass",
    # attention layouts
    "fold-transpose-matmul": "tfc.passes.fold_transpose_matmul:FoldTransposeMatmulPass",
    # storage and memory
    "sparse-storage": "tfc.passes.sparse_storage:SparseStoragePass",
    "memory-plan": "tfc.passes.memory_plan:MemoryPlanPass",
    "verify-memory": "tfc.passes.verify_memory:VerifyMemoryPass",
    # target passes: they live under their backend (tfc/backends/<target>/passes/)
    "m7-kernel-scratch": "tfc.backends.cortex_m7.passes.m7_kernel_scratch:M7KernelScratchPass",
}

# Classes already imported or registered at run time (user passes need not be importable by name).
_LOADED: dict[str, type] = {}


def register_pass(cls: type) -> type:
    """Makes a Pass subclass available by its `name` (to `parse_pipeline`, `tfc.compile(pipeline=)`).

    Usable as a decorator. Registering a different class under a taken name is an error.
    """
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"{cls.__qualname__} has no pass name; set the class attribute `name`")
    known = _LOADED.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"pass '{name}' is already registered by {known.__module__}.{known.__qualname__}")
    if known is None and name in PASSES and PASSES[name] != f"{cls.__module__}:{cls.__qualname__}":
        raise ValueError(f"pass '{name}' is a built-in pass ({PASSES[name]}); choose another name")
    PASSES[name] = f"{cls.__module__}:{cls.__qualname__}"
    _LOADED[name] = cls
    return cls


def get_pass(name: str) -> type:
    """The Pass class registered as `name`; unknown names fail with a did-you-mean hint."""
    cls = _LOADED.get(name)
    if cls is not None:
        return cls
    target = PASSES.get(name)
    if target is None:
        raise PassError(unknown_pass_message(name))
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:  # the pass module exists but one of its imports is missing
            raise
        raise PassError(f"pass '{name}' is registered but its module {module_name} is not "
                        f"available in this build of tfc") from None
    cls = getattr(module, class_name)
    if getattr(cls, "name", None) != name:
        raise PassError(f"registry entry '{name}' points at {target}, whose name is "
                        f"'{getattr(cls, 'name', None)}'")
    _LOADED[name] = cls
    return cls


def unknown_pass_message(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(PASSES), n=1, cutoff=0.6)
    if close:
        return f"unknown pass '{name}'; did you mean '{close[0]}'?"
    return f"unknown pass '{name}'; known passes: {', '.join(sorted(PASSES))}"


__all__ = ["PASSES", "get_pass", "register_pass", "unknown_pass_message"]
