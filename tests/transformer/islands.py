"""Single-op int8 models around the float islands (LayerNorm, Softmax), built the way a QDQ model
arrives (int8 -> dequantize -> float op -> quantize -> int8), so that the scaled-layernorm and
softmax-lut passes do the rewriting. Shared by tests/transformer and bench/transformer.py."""

from __future__ import annotations

import numpy as np

from tfc.ir.core import Builder, Graph
from tfc.ir.quant_math import dequantize_int, quantize_float
from tfc.ir.types import Quant, TensorType

# Softmax outputs use the fixed TFLite quantization: probabilities on the full int8 range.
SOFTMAX_OUT = Quant.per_tensor(1.0 / 256.0, -128)


def layernorm_island(shape, s_x: float, zp_x: int, gamma, beta, s_y: float, zp_y: int,
                     eps: float = 1e-5, name: str = "ln") -> Graph:
    """x:i8 -> dequantize -> layernorm(gamma, beta) over the last axis -> quantize -> y:i8."""
    g = Graph(name)
    x = g.add_input(TensorType(tuple(shape), "i8", Quant.per_tensor(s_x, zp_x)), "x")
    b = Builder(g)
    xf = b.op("dequantize", [x], name_hint="xf", result_type=TensorType(tuple(shape), "f32"))
    gam = b.const(np.asarray(gamma, np.float32), "gamma")
    bet = b.const(np.asarray(beta, np.float32), "beta")
    yf = b.op("layernorm", [xf, gam, bet], name_hint="yf", axis=-1, epsilon=float(eps))
    y = b.op("quantize", [yf], name_hint="y",
             result_type=TensorType(tuple(shape), "i8", Quant.per_tensor(s_y, zp_y)))
    g.outputs = [y]
    return g


def softmax_island(shape, s_x: float, zp_x: int, out: Quant = SOFTMAX_OUT,
                   name: str = "softmax") -> Graph:
    """x:i8 -> dequantize -> softmax over the last axis -> quantize -> y:i8."""
    g = Graph(name)
    x = g.add_input(TensorType(tuple(shape), "i8", Quant.per_tensor(s_x, zp_x)), "x")
    b = Builder(g)
    xf = b.op("dequantize", [x], name_hint="xf", result_type=TensorType(tuple(shape), "f32"))
    yf = b.op("softmax", [xf], name_hint="yf", axis=-1)
    y = b.op("quantize", [yf], name_hint="y", result_type=TensorType(tuple(shape), "i8", out))
    g.outputs = [y]
    return g


def float_layernorm_reference(x_q, s_x, zp_x, gamma, beta, s_y, zp_y, eps=1e-5) -> np.ndarray:
    """Float64 LayerNorm of the dequantized input, then the same quantization as the output."""
    x = dequantize_int(x_q, s_x, zp_x).astype(np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * np.asarray(gamma, np.float64) + np.asarray(beta, np.float64)
    return quantize_float(y.astype(np.float32), s_y, zp_y)


def float_softmax_reference(x_q, s_x, zp_x, out: Quant = SOFTMAX_OUT) -> np.ndarray:
    x = dequantize_int(x_q, s_x, zp_x).astype(np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return quantize_float((e / e.sum(axis=-1, keepdims=True)).astype(np.float32), out.s, out.zp)


def realistic_layernorm_case(rng, rows: int, cols: int):
    """Transformer-like LayerNorm inputs: per-channel offsets and spreads, a few outlier channels,
    quantized with a calibrated int8 scale; gamma around 1, beta small; output scale from the
    float result's range. Returns (x_q, s_x, zp_x, gamma, beta, s_y, zp_y)."""
    offsets = rng.normal(0.0, 0.5, size=cols)
    spreads = rng.uniform(0.5, 1.5, size=cols)
    spreads[rng.choice(cols, size=max(1, cols // 16), replace=False)] *= 4.0  # outlier channels
    x = offsets + spreads * rng.standard_normal((rows, cols))
    s_x, zp_x = _range_quant(x.min(), x.max())
    x_q = quantize_float(x.astype(np.float32), s_x, zp_x)
    gamma = rng.normal(1.0, 0.3, size=cols).astype(np.float32)
    beta = rng.normal(0.0, 0.2, size=cols).astype(np.float32)
    xd = dequantize_int(x_q, s_x, zp_x).astype(np.float64)
    yn = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
    y = yn * gamma + beta
    s_y, zp_y = _range_quant(y.min(), y.max())
    return x_q, s_x, zp_x, gamma, beta, s_y, zp_y


def _range_quant(lo: float, hi: float) -> tuple[float, int]:
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = float(np.float32((hi - lo) / 255.0))
    return scale, int(np.clip(round(-128 - lo / scale), -128, 127))
