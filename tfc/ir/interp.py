"""The reference interpreter: the executable semantics of the IR.

    outputs = run(graph, [x])                 # or run(graph, {"input": x})
    values = run_all(graph, {"input": x})     # every value by name (calibration, layer checks)

`KERNELS` maps every op name in `tfc.ir.ops.OPS` to `fn(op, operand_arrays) -> list[arrays]`.
An op whose first operand is an integer tensor runs its integer form (exact; `interp_int`), any
other runs its float form (float32, ONNX semantics; `interp_float`). Ops that only move data
(transpose, slice, ...) and the quantization converters work on any dtype and live here.
Results are cast to the dtype of the op's result type, and their shapes are checked against it.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from tfc.errors import TfcError, UnsupportedOpError, VerifyError
from tfc.ir import interp_float, interp_int, quant_math
from tfc.ir.core import Graph, Op, Value
from tfc.ir.interp_spatial import from_nchw, out_hw, spatial_params, to_nchw, windows
from tfc.ir.ops import OPS, is_integer_op
from tfc.ir.types import Quant, TensorType

Kernel = Callable[[Op, list[np.ndarray]], list[np.ndarray]]

__all__ = ["KERNELS", "run", "run_all", "run_op"]


# -- the driver ---------------------------------------------------------------------------------

def run(graph: Graph, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs, in order, for `inputs` (a list in input order, or a dict by name)."""
    env = _execute(graph, inputs)
    return [env[id(v)] for v in graph.outputs]


def run_all(graph: Graph, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every value of the graph (inputs, constants, op results) by name."""
    env = _execute(graph, inputs)
    return {v.name: env[id(v)] for v in graph.values()}


def run_op(op: Op, operands: list[np.ndarray]) -> list[np.ndarray]:
    """Executes one op on concrete operand arrays; results get the op's result dtypes."""
    kernel = KERNELS.get(op.name)
    if kernel is None:
        raise UnsupportedOpError(f"{op.where()}: the interpreter has no kernel for '{op.name}'; "
                                 f"known ops: {', '.join(sorted(KERNELS))}")
    try:
        results = kernel(op, operands)
    except KeyError as missing:  # a required attribute: the verifier would have said so too
        raise VerifyError(f"{op.where()} is missing required attribute {missing}; "
                          f"run verify_graph to check the IR") from None
    if len(results) != len(op.results):
        raise VerifyError(f"{op.where()}: interpreter produced {len(results)} results, "
                          f"the op declares {len(op.results)}")
    out = []
    for value, array in zip(op.results, results):
        array = np.asarray(array)
        if array.shape != value.type.shape:
            raise VerifyError(f"{op.where()}: interpreter computed shape {list(array.shape)} for "
                              f"%{value.name} but its type says {list(value.type.shape)}")
        # not ascontiguousarray: it turns 0-d results (full reductions, scalars) into 1-d
        out.append(np.asarray(array.astype(value.type.np_dtype, copy=False), order="C"))
    return out


def _execute(graph: Graph, inputs) -> dict[int, np.ndarray]:
    env: dict[int, np.ndarray] = {}
    for value, array in zip(graph.inputs, _bind_inputs(graph, inputs)):
        env[id(value)] = array
    for op in graph.ops:
        try:
            operands = [env[id(v)] for v in op.operands]
        except KeyError:
            missing = next(v for v in op.operands if id(v) not in env)
            raise VerifyError(f"{op.where()} uses %{missing.name} before it is defined") from None
        for value, array in zip(op.results, run_op(op, operands)):
            env[id(value)] = array
    return env


def _bind_inputs(graph: Graph, inputs) -> list[np.ndarray]:
    names = [v.name for v in graph.inputs]
    if isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise TfcError(f"graph @{graph.name} has no input '{unknown[0]}'; its inputs are: "
                           f"{', '.join(names)}")
        missing = [n for n in names if n not in inputs]
        if missing:
            raise TfcError(f"graph @{graph.name}: no array given for input %{missing[0]}")
        arrays = [inputs[n] for n in names]
    else:
        arrays = list(inputs)
        if len(arrays) != len(names):
            raise TfcError(f"graph @{graph.name} takes {len(names)} inputs "
                           f"({', '.join(names)}), got {len(arrays)} arrays")
    return [_check_input(graph, v, a) for v, a in zip(graph.inputs, arrays)]


def _check_input(graph: Graph, value: Value, array) -> np.ndarray:
    array = np.asarray(array)
    want: TensorType = value.type
    if array.shape != want.shape or array.dtype != want.np_dtype:
        raise TfcError(f"input %{value.name} of graph @{graph.name} must be {list(want.shape)} "
                       f"{want.np_dtype.name}, got {list(array.shape)} {array.dtype.name}; "
                       f"reshape or cast it (e.g. .astype(np.{want.np_dtype.name}))")
    return array


# -- dtype-generic kernels: data movement --------------------------------------------------------

def _const(op, xs):
    return [op.attrs["value"].array]


def _transpose(op, xs):
    return [np.transpose(xs[0], op.attrs["perm"])]


def _reshape(op, xs):
    return [xs[0].reshape(op.attrs["shape"])]


def _concat(op, xs):
    return [np.concatenate(xs, axis=op.attrs["axis"])]


def _slice(op, xs):
    x = xs[0]
    index = [slice(None)] * x.ndim
    steps = op.attr("steps", [1] * len(op.attrs["axes"]))
    for start, end, axis, step in zip(op.attrs["starts"], op.attrs["ends"], op.attrs["axes"], steps):
        index[axis % x.ndim] = slice(start, end, step)
    return [x[tuple(index)]]


def _split(op, xs):
    bounds = np.cumsum(op.attrs["sizes"])[:-1]
    return np.split(xs[0], bounds, axis=op.attrs["axis"])


def _maxpool2d(op, xs):
    """Padding never wins: it holds the dtype's lowest value."""
    x = xs[0]
    layout = op.attr("layout", "nchw")
    strides, pads, dilations = spatial_params(op)
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    cells = windows(to_nchw(x, layout), op.attrs["kernel"], strides, pads, dilations, out_hw(op),
                    lowest)
    return [from_nchw(cells.max(axis=(-2, -1)), layout)]


def _clip(op, xs):
    """Float bounds are reals; integer bounds are codes. A missing bound does not clamp."""
    x = xs[0]
    lo, hi = op.attr("min"), op.attr("max")
    if x.dtype.kind == "f":
        lo = -np.inf if lo is None else np.float32(lo)
        hi = np.inf if hi is None else np.float32(hi)
    else:
        info = np.iinfo(x.dtype)
        lo = info.min if lo is None else int(lo)
        hi = info.max if hi is None else int(hi)
    return [np.clip(x, lo, hi)]


# -- dtype-generic kernels: quantization converters ----------------------------------------------

def _quant_params(quant: Quant | None, rank: int, op: Op, side: str):
    """Scale and zero point arrays shaped to broadcast against a tensor of `rank`."""
    if quant is None:
        raise VerifyError(f"{op.where()}: its {side} type has no quantization parameters; "
                          f"give it q<scale:zero_point>")
    scale = np.asarray(quant.scale, dtype=np.float32)
    zero_point = np.asarray(quant.zero_point, dtype=np.int64)
    if quant.axis is None:
        return scale.reshape(()), zero_point.reshape(())
    shape = [1] * rank
    shape[quant.axis % rank] = len(quant.scale)
    return scale.reshape(shape), zero_point.reshape(shape)


def _quantize(op, xs):
    """ONNX QuantizeLinear: round(x / scale) half to even, + zero point, saturate."""
    result = op.results[0].type
    scale, zero_point = _quant_params(result.quant, result.rank, op, "result")
    info = np.iinfo(result.np_dtype)
    q = np.rint(xs[0].astype(np.float32) / scale) + zero_point
    return [np.clip(q, info.min, info.max)]


def _dequantize(op, xs):
    """ONNX DequantizeLinear: (q - zero_point) * scale in float32."""
    operand = op.operands[0].type
    scale, zero_point = _quant_params(operand.quant, operand.rank, op, "operand")
    return [(xs[0].astype(np.int64) - zero_point).astype(np.float32) * scale]


def _requantize(op, xs):
    a = op.attrs
    acc = xs[0].astype(np.int64) - a["input_zp"]
    y = quant_math.multiply_by_quantized_multiplier(acc, a["multiplier"], a["shift"]) + a["output_zp"]
    lo, hi = interp_int.act_range(op)
    return [quant_math.clamp(y, lo, hi)]


# -- the dispatch table ---------------------------------------------------------------------------

_GENERIC: dict[str, Kernel] = {
    "const": _const, "transpose": _transpose, "reshape": _reshape, "concat": _concat,
    "slice": _slice, "split": _split, "maxpool2d": _maxpool2d, "clip": _clip,
    "quantize": _quantize, "dequantize": _dequantize, "requantize": _requantize,
}


def _by_dtype(name: str) -> Kernel:
    """Runs the integer form when the first operand is an integer tensor, else the float form."""
    float_kernel = interp_float.KERNELS.get(name)
    int_kernel = interp_int.KERNELS.get(name)

    def kernel(op: Op, xs: list[np.ndarray]) -> list[np.ndarray]:
        integer = is_integer_op([v.type for v in op.operands])
        chosen = int_kernel if integer else float_kernel
        if chosen is None:
            form = "integer" if integer else "float"
            hint = ("quantization folds it into the neighbouring ops" if integer
                    else "its operands must be quantized first")
            raise UnsupportedOpError(f"{op.where()} has no {form} form ({hint})")
        return chosen(op, xs)

    kernel.__name__ = f"{name}_kernel"
    return kernel


KERNELS: dict[str, Kernel] = {
    name: _GENERIC.get(name) or _by_dtype(name) for name in OPS
}
