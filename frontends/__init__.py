"""Front ends: model formats -> tfc IR. They import the IR only and know no target."""

from frontends.onnx_import import import_onnx

__all__ = ["import_onnx"]
