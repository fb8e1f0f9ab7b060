"""The NAS exporter's block-size hint (ONNX initializer metadata `tfc.sparse.block`) reaches the
sparse-storage pass through the front end and every pass that rewrites a weight (batchnorm folding,
quantization, the nhwc layout), on a real TorchScript export and on an ORT QDQ model."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import tfc
from frontends import import_onnx
from tfc import sparse
from tfc.errors import FrontendError

MODELS = Path(__file__).resolve().parent.parent / "models" / "hybrid"


def _with_hint(model: onnx.ModelProto, block: str) -> tuple[onnx.ModelProto, set[str]]:
    """`model` with the hint on every Conv/MatMul/Gemm weight that is not depthwise."""
    hinted = onnx.ModelProto()
    hinted.CopyFrom(model)
    inits = {t.name: t for t in hinted.graph.initializer}
    names = set()
    for node in hinted.graph.node:
        if node.op_type in ("Conv", "MatMul", "Gemm") and len(node.input) > 1:
            weight = inits.get(node.input[1])
            if node.op_type == "DequantizeLinear" or weight is None:
                continue
            if node.op_type == "Conv" and weight.dims[1] == 1:
                continue  # depthwise blocks always run along the kernel width
            weight.metadata_props.add(key=sparse.BLOCK_HINT_KEY, value=block)
            names.add(weight.name)
    return hinted, names


def _sparse_blocks(model) -> list[int]:
    art = tfc.compile(model, calib=str(MODELS / "calib.npz"))
    return [layer["block"] for layer in art.report["layers"]
            if layer["storage"] == "sparse" and layer["op"] in ("conv2d", "linear")
            and layer["block"] != 3]


@pytest.fixture(scope="module")
def pruned():
    return sparse.prune_onnx(onnx.load(MODELS / "ts17.onnx"), 0.8, block=4, hint=False)


def test_without_hint_the_pass_detects_block_4(pruned):
    blocks = _sparse_blocks(pruned)
    assert len(blocks) >= 6 and set(blocks) == {4}


def test_hint_fixes_block_through_every_weight_rewrite(pruned):
    hinted, names = _with_hint(pruned, "2")
    assert len(names) >= 6
    blocks = _sparse_blocks(hinted)
    assert len(blocks) >= 6 and set(blocks) == {2}


def test_hint_survives_import_as_const_attribute(pruned):
    hinted, _ = _with_hint(pruned, "2")
    graph = import_onnx(hinted)
    hinted_consts = [op for op in graph.walk("const") if op.attrs.get("block") == 2]
    assert len(hinted_consts) >= 6


def test_bad_hint_is_a_one_line_error_naming_the_initializer(pruned):
    hinted, names = _with_hint(pruned, "8")
    with pytest.raises(FrontendError, match=r"initializer '.+' has metadata tfc\.sparse\.block="
                       r"'8'; the block size must be one of 2, 4") as info:
        import_onnx(hinted)
    assert "\n" not in str(info.value)


def test_prune_onnx_writes_the_hint_it_pruned_with():
    model = onnx.load(MODELS / "ts17.onnx")
    pruned = sparse.prune_onnx(model, 0.8, block=2)
    hinted = {t.name for t in pruned.graph.initializer
              if any(p.key == sparse.BLOCK_HINT_KEY and p.value == "2" for p in t.metadata_props)}
    assert len(hinted) >= 6
    blocks = _sparse_blocks(pruned)
    assert len(blocks) >= 6 and set(blocks) == {2}
