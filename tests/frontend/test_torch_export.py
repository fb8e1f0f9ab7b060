"""Tiny torch models exported the ways users export them, imported and checked against ORT."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx_testutil import import_and_check, make_model, op_names

N = helper.make_node

import torch


class TinyHybrid(torch.nn.Module):
    """Conv stem + BN + ReLU, tokens, LayerNorm, one attention head, pooled classifier."""

    def __init__(self, channels: int = 8, classes: int = 4):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(channels)
        self.dw = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.ln = torch.nn.LayerNorm(channels)
        self.qkv = torch.nn.Linear(channels, 3 * channels)
        self.head = torch.nn.Linear(channels, classes)
        self.scale = channels ** -0.5

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.nn.functional.relu6(self.dw(x))
        t = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        q, k, v = self.qkv(self.ln(t)).chunk(3, dim=-1)
        attn = torch.softmax(q @ k.transpose(1, 2) * self.scale, dim=-1)
        t = t + attn @ v
        pooled = t.mean(dim=1)
        return self.head(pooled.reshape(pooled.shape[0], -1))


def _export(tmp_path, opset: int, dynamo: bool, **kw):
    torch.manual_seed(0)
    model = TinyHybrid().eval()
    with torch.no_grad():  # non-trivial BN statistics
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f"hybrid_{opset}.onnx"
    torch.onnx.export(model, (torch.randn(2, 3, 8, 8),), str(path), opset_version=opset,
                      dynamo=dynamo, **kw)
    return path


def test_torchscript_opset13_folds_decomposed_layernorm(tmp_path, caplog):
    path = _export(tmp_path, 13, dynamo=False)
    node_types = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "LayerNormalization" not in node_types and "Pow" in node_types  # really decomposed
    with caplog.at_level(logging.DEBUG, logger="tfc.frontend"):
        graph = import_and_check(path, rtol=1e-4, atol=1e-5)
    ops = op_names(graph)
    assert ops.count("layernorm") == 1
    assert {"conv2d", "linear", "matmul", "softmax", "reduce_mean"} <= set(ops)
    assert "folded 9 nodes" in caplog.text


def test_torchscript_opset17(tmp_path):
    graph = import_and_check(_export(tmp_path, 17, dynamo=False), rtol=1e-4, atol=1e-5)
    assert op_names(graph).count("layernorm") == 1


def test_dynamo_export_with_external_data(tmp_path):
    path = _export(tmp_path, 18, dynamo=True, external_data=True)
    assert any(p.suffix == ".data" for p in tmp_path.iterdir())
    graph = import_and_check(path, rtol=1e-4, atol=1e-5)
    assert "conv2d" in op_names(graph)


def test_decomposed_layernorm_mismatch_is_logged(tmp_path, caplog):
    """A ReduceMean -> Sub that is not a LayerNorm stays as it is and says why."""
    nodes = [N("ReduceMean", ["x"], ["m"], axes=[-1]), N("Sub", ["x", "m"], ["d"]),
             N("Mul", ["d", "d"], ["y"])]
    model = make_model(nodes, {"x": [2, 5]}, ["y"], opset=13)
    with caplog.at_level(logging.DEBUG, logger="tfc.frontend"):
        graph = import_and_check(model)
    assert "layernorm" not in op_names(graph)
    assert "does not match" in caplog.text and "must feed exactly a Pow" in caplog.text


def test_decomposed_layernorm_with_mul_square_and_no_affine():
    nodes = [N("ReduceMean", ["x"], ["m"], axes=[2]), N("Sub", ["x", "m"], ["d"]),
             N("Mul", ["d", "d"], ["sq"]), N("ReduceMean", ["sq"], ["var"], axes=[2]),
             N("Add", ["eps", "var"], ["ve"]), N("Sqrt", ["ve"], ["std"]),
             N("Div", ["d", "std"], ["y"])]
    model = make_model(nodes, {"x": [2, 3, 6]}, ["y"], {"eps": np.float32(1e-3)}, opset=13)
    graph = import_and_check(model)
    assert [n for n in op_names(graph) if n != "const"] == ["layernorm"]
    assert graph.ops[-1].attrs["epsilon"] == pytest.approx(1e-3)
