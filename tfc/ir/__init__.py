"""The tfc IR: types, values, ops, graphs, their text form and the reference interpreter."""

from tfc.ir.core import Builder, DenseAttr, Graph, Op, Value, const_value, structural_diff, structurally_equal
from tfc.ir.ops import OPS, verify_graph, verify_op
from tfc.ir.types import DTYPES, Quant, TensorType
from tfc.ir.parser import parse, parse_file
from tfc.ir.printer import format_type, print_graph

__all__ = ["Builder", "DenseAttr", "Graph", "Op", "Value", "const_value", "structural_diff",
           "structurally_equal", "OPS", "verify_graph", "verify_op", "DTYPES", "Quant", "TensorType",
           "parse", "parse_file", "print_graph", "format_type"]
