"""The tfc IR: types, values, ops, graphs, their text form and the reference interpreter."""

from tfc.ir.core import Builder, DenseAttr, Graph, Op, Value, const_value, structural_diff, structurally_equal
from tfc.ir.ops import OPS, verify_graph, verify_op
from tfc.ir.types import DTYPES, Quant, TensorType

__all__ = ["Builder", "DenseAttr", "Graph", "Op", "Value", "const_value", "structural_diff",
           "structurally_equal", "OPS", "verify_graph", "verify_op", "DTYPES", "Quant", "TensorType"]
