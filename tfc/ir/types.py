"""Types of IR values: shape, dtype and optional quantization.

Text forms (see `tir.lark`):
    tensor<1x16x16x8xi8>
    tensor<1x16xi8, q<0.0235:-3>>                       per-tensor scale:zero_point
    tensor<16x3x3x3xi8, q<axis=0, [0.01, 0.02, ...]:[0, 0, ...]>>   per-axis
    tensor<f32>                                          a scalar (rank 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = ("f32", "i8", "i16", "i32", "u8")

_NUMPY = {"f32": np.float32, "i8": np.int8, "i16": np.int16, "i32": np.int32, "u8": np.uint8}


def numpy_dtype(dtype: str) -> np.dtype:
    return np.dtype(_NUMPY[dtype])


def row_major_strides(shape) -> list[int]:
    """Element strides of a contiguous (C order) tensor of `shape`."""
    out, step = [], 1
    for d in reversed(shape):
        out.append(step)
        step *= d
    return out[::-1]


def dtype_of_numpy(dt: np.dtype) -> str:
    for name, np_type in _NUMPY.items():
        if np.dtype(np_type) == np.dtype(dt):
            return name
    raise ValueError(f"numpy dtype {dt} has no tfc dtype; known: {', '.join(DTYPES)}")


@dataclass(frozen=True)
class Quant:
    """Affine quantization: real = scale * (q - zero_point).

    `axis` is None for per-tensor parameters (one scale, one zero point); otherwise scale and
    zero_point have one entry per index of that axis.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        object.__setattr__(self, "zero_point", tuple(int(z) for z in self.zero_point))
        if len(self.scale) != len(self.zero_point):
            raise ValueError("quant: scale and zero_point lengths differ")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("quant: per-tensor quantization takes exactly one scale")

    @staticmethod
    def per_tensor(scale: float, zero_point: int) -> "Quant":
        return Quant((float(scale),), (int(zero_point),), None)

    @property
    def is_per_tensor(self) -> bool:
        return self.axis is None

    @property
    def s(self) -> float:
        """The scale of a per-tensor quantization."""
        assert self.axis is None, "per-axis quantization has no single scale"
        return self.scale[0]

    @property
    def zp(self) -> int:
        """The zero point of a per-tensor quantization."""
        assert self.axis is None, "per-axis quantization has no single zero point"
        return self.zero_point[0]


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype '{self.dtype}'; known: {', '.join(DTYPES)}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def itemsize(self) -> int:
        return numpy_dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def np_dtype(self) -> np.dtype:
        return numpy_dtype(self.dtype)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(tuple(shape), self.dtype, self.quant)

    def with_dtype(self, dtype: str, quant: Quant | None = None) -> "TensorType":
        return TensorType(self.shape, dtype, quant)

    def with_quant(self, quant: Quant | None) -> "TensorType":
        return TensorType(self.shape, self.dtype, quant)

    def __str__(self) -> str:  # the text form; the printer uses the same function
        from tfc.ir.printer import format_type

        return format_type(self)
