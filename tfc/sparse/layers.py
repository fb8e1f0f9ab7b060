"""Single int8 layers with block-pruned weights, as IR graphs: the layers of the sparse tests and
of bench/sparse_kernels.py, compiled through sparse-storage + memory-plan only and checked
bit-exact against the interpreter on the host or the emulated M7.

    from tfc.sparse.layers import conv_layer, layers_graph, compile_layers
    rng = np.random.default_rng(0)
    graph = layers_graph([conv_layer(rng, 16, 16, 32, 32, sparsity=0.8, block=4)])
    art = compile_layers(graph, "out", prefer="size")
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tfc
from tfc import sparse
from tfc.ir import interp
from tfc.ir.core import Builder, Graph
from tfc.ir.quant_math import quantize_multiplier
from tfc.ir.types import Quant, TensorType


@dataclass
class Layer:
    """One int8 layer: op kind, input shape, weights (walk layout) and attributes."""

    kind: str  # "conv", "depthwise" or "linear"
    x_shape: tuple[int, ...]
    weights: np.ndarray
    bias: np.ndarray | None
    attrs: dict


def _requant(rng, channels: int, reduction: int) -> dict:
    reals = rng.uniform(0.004, 0.02, size=channels) / np.sqrt(max(reduction, 1))
    pairs = [quantize_multiplier(float(r)) for r in reals]
    return dict(input_zp=int(rng.integers(-20, 20)), output_zp=int(rng.integers(-10, 10)),
                multiplier=[m for m, _ in pairs], shift=[s for _, s in pairs],
                act_min=-128, act_max=127)


def random_weights(rng, shape) -> np.ndarray:
    w = rng.integers(-127, 128, size=shape).astype(np.int8)
    w[w == 0] = 1  # every zero comes from pruning, so block sparsity is exactly what we ask for
    return w


def conv_layer(rng, h, w, c, o, k=3, stride=1, pad=1, dilation=1, batch=1, sparsity=0.8, block=4,
               with_bias=True) -> Layer:
    weights = sparse.prune_blocks(random_weights(rng, (o, k, k, c)), "conv", block, sparsity)
    attrs = dict(strides=[stride, stride], pads=[pad] * 4, dilations=[dilation, dilation], group=1,
                 layout="nhwc", **_requant(rng, o, k * k * c))
    bias = rng.integers(-3000, 3000, size=o).astype(np.int32) if with_bias else None
    return Layer("conv", (batch, h, w, c), weights, bias, attrs)


def depthwise_layer(rng, h, w, c, k=3, stride=1, pad=1, sparsity=0.5) -> Layer:
    weights = sparse.prune_blocks(random_weights(rng, (c, k, k, 1)), "depthwise", k, sparsity)
    attrs = dict(strides=[stride, stride], pads=[pad] * 4, dilations=[1, 1], group=c,
                 layout="nhwc", **_requant(rng, c, k * k))
    return Layer("depthwise", (1, h, w, c), weights,
                 rng.integers(-3000, 3000, size=c).astype(np.int32), attrs)


def linear_layer(rng, tokens, features_in, features_out, sparsity=0.8, block=4) -> Layer:
    weights = sparse.prune_blocks(random_weights(rng, (features_out, features_in)), "linear", block,
                                  sparsity)
    return Layer("linear", (1, tokens, features_in), weights,
                 rng.integers(-3000, 3000, size=features_out).astype(np.int32),
                 _requant(rng, features_out, features_in))


def layers_graph(layers: list[Layer], name: str = "layers") -> Graph:
    """A graph computing every layer from its own input (one output per layer)."""
    g = Graph(name)
    b = Builder(g)
    outputs = []
    for i, layer in enumerate(layers):
        x = g.add_input(TensorType(layer.x_shape, "i8", Quant.per_tensor(0.05, layer.attrs["input_zp"])),
                        f"x{i}")
        w = b.const(layer.weights, f"w{i}",
                    Quant((0.01,) * layer.weights.shape[0], (0,) * layer.weights.shape[0], 0))
        operands = [x, w] + ([b.const(layer.bias, f"b{i}")] if layer.bias is not None else [])
        op = "linear" if layer.kind == "linear" else "conv2d"
        y = b.op(op, operands, name_hint=f"y{i}", **layer.attrs)
        y.type = y.type.with_quant(Quant.per_tensor(0.1, layer.attrs["output_zp"]))
        outputs.append(y)
    g.outputs = outputs
    return g


def random_inputs(rng, graph: Graph) -> list[np.ndarray]:
    return [rng.integers(-128, 128, size=v.type.shape).astype(np.int8) for v in graph.inputs]


def compile_layers(graph: Graph, outdir, prefer: str = "size", block: int = 0):
    """Compiles an int8 nhwc graph with only sparse-storage and memory-plan; the Artifact."""
    art = tfc.compile(graph, pipeline=[f"sparse-storage{{prefer={prefer},block={block}}}",
                                       "memory-plan"], allow_over_budget=True)
    art.write(outdir)
    return art


def assert_bit_exact(graph: Graph, outdir, inputs: list[np.ndarray], on: str = "host",
                     profile: bool = False) -> None:
    """Runs OUTDIR on `on` (with `profile`, writing its profile.json) against the interpreter."""
    got = tfc.run(outdir, inputs, on=on, raw=True, profile=profile)
    want = interp.run(graph, inputs)
    for g, w, v in zip(got, want, graph.outputs):
        if not np.array_equal(g, w):
            bad = np.argwhere(g != w)[:5].tolist()
            raise AssertionError(f"%{v.name} on {on}: {int((g != w).sum())} of {g.size} elements "
                                 f"differ, first at {bad}")
