"""The pass pipelines of the Cortex-M7 backend: recipes to read top to bottom.

Each entry is a pass name from `tfc.passes.PASSES`; `-p` on the command line replaces the whole
recipe.
"""

INT8_PIPELINE = (
    # Tidy the imported graph (dead ops, identity reshapes, constant subgraphs) so patterns match.
    "canonicalize",
    # BatchNorm after a conv is free: fold it into the conv's weights and bias.
    "fold-batchnorm",
    # Relu/Relu6/Clip and bias adds become attributes of their producer: one kernel, one requant.
    "fuse-activation",
    # Float models: measure activation ranges on the calibration data and insert Q/DQ pairs.
    "calibrate",
    # Q/DQ graph -> integer ops carrying multipliers, shifts and clamps (no float at run time).
    "quantize",
    # The float islands that remain: LayerNorm -> integer Scaled-LayerNorm (INT16 x_norm * 2^7),
    "scaled-layernorm",
    # and Softmax -> a 256-entry exp table computed here, stored in flash.
    "softmax-lut",
    # Quantization leaves redundant requantizes and dead float constants behind.
    "canonicalize",
    # Kernels walk NHWC (channels innermost, so blocks run along input channels); weights to OHWI.
    "layout-nhwc",
    # Cancel the transposes the layout change made meet each other.
    "canonicalize",
    # Attention: the 1/sqrt(d) requantize after Q.K^T joins the matmul's own requantization, and
    # the multi-head split/merge transposes become the matmuls' strides (no copies, no buffers).
    "fold-matmul-requantize",
    "fold-transpose-matmul",
    # Pruned weights: dense or block run-length storage per tensor, whichever is smaller and faster.
    "sparse-storage",
    # The kernels this backend will call say how much scratch each needs (as IR attributes),
    "m7-kernel-scratch",
    # then every activation and scratch area gets its place in the one static arena, and the
    # plan is proved safe.
    "memory-plan",
    "verify-memory",
)

FLOAT32_PIPELINE = (
    # Same structural clean-up as the int8 path, without quantization: a float32 reference build.
    "canonicalize",
    "fold-batchnorm",
    "fuse-activation",
    "layout-nhwc",
    "canonicalize",
    "fold-transpose-matmul",
    "m7-kernel-scratch",
    "memory-plan",
    "verify-memory",
)

PIPELINES = {"int8": INT8_PIPELINE, "float32": FLOAT32_PIPELINE}
