"""Sparse execution chosen by the fitted per-layer cost model (tfc.sparse.choice, kernel_costs):
small layers stay dense under prefer=speed, large pruned ones go sparse, shared consts sum over
their readers, the pass records both predictions, and the model holds on held-out layers
measured fresh on the emulated Cortex-M7."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tfc import sparse
from tfc.ir.core import Builder, Graph
from tfc.ir.printer import print_graph
from tfc.ir.types import Quant, TensorType
from tfc.passes.sparse_storage import SparseStoragePass
from tfc.sparse import choice, kernel_costs
from tfc.sparse.layers import compile_layers, conv_layer, layers_graph, linear_layer

ROOT = Path(__file__).resolve().parents[2]


def _classifier(sparsity: float = 0.7):
    """The example hybrid's classifier: linear 32 -> 10 on one token, block-pruned (b = 4)."""
    layer = linear_layer(np.random.default_rng(0), 1, 32, 10, sparsity=sparsity, block=4)
    return layer.weights, choice.layer_geometry("linear", (1, 32), (10, 32), (1, 10))


def _conv16(sparsity: float):
    """The bench's conv 3x3 16x16x32 -> 32, block-pruned (b = 4)."""
    layer = conv_layer(np.random.default_rng(1), 16, 16, 32, 32, sparsity=sparsity, block=4)
    geometry = choice.layer_geometry("conv", (1, 16, 16, 32), layer.weights.shape, (1, 16, 16, 32),
                                     (1, 1), (1, 1, 1, 1))
    return layer.weights, geometry


def test_every_kernel_the_choice_can_name_has_fitted_coefficients():
    kernels = {"gemm_linear", "gemm_conv", "dw_3x3", "dw_generic", "brle_linear_b2",
               "brle_linear_b4", "brle_conv_b2", "brle_conv_b4", "brle_dw3", "brle_dw_generic"}
    assert kernels <= set(kernel_costs.COEFFICIENTS)
    for kernel, terms in kernel_costs.COEFFICIENTS.items():
        assert all(value >= 0 for value in terms.values()), kernel


def test_classifier_stays_dense_for_speed_and_goes_sparse_for_size():
    w, geometry = _classifier()
    speed = sparse.choose_storage(w, "linear", prefer="speed", layers=(geometry,))
    assert speed.storage == "dense"
    assert speed.predicted_sparse_instructions >= speed.predicted_dense_instructions
    assert "predicted slower" in speed.reason
    size = sparse.choose_storage(w, "linear", prefer="size", layers=(geometry,))
    assert (size.storage, size.block) == ("brle", 4) and size.nbytes < w.nbytes


def _one_token(sparsity: float):
    """linear 192 -> 64 on one token: the sparse kernel fills all 4 slots of its pixel group
    with that token, so it pays 4x per record and wins only when most blocks are gone."""
    layer = linear_layer(np.random.default_rng(3), 1, 192, 64, sparsity=sparsity, block=4)
    return layer.weights, choice.layer_geometry("linear", (1, 192), (64, 192), (1, 64))


def test_large_pruned_layer_goes_sparse_and_lightly_pruned_stays_dense():
    w70, geometry = _conv16(0.7)
    heavy = sparse.choose_storage(w70, "conv", prefer="speed", layers=(geometry,))
    assert heavy.storage == "brle"
    assert heavy.predicted_sparse_instructions < heavy.predicted_dense_instructions
    w30, geometry = _one_token(0.3)
    light = sparse.choose_storage(w30, "linear", prefer="speed", layers=(geometry,))
    assert light.storage == "dense"
    # Still smaller as brle at b = 4 (density 0.7 < 0.8): flash-bound builds keep it sparse.
    assert sparse.choose_storage(w30, "linear", prefer="size", layers=(geometry,)).storage == "brle"
    w90, geometry = _one_token(0.9)
    assert sparse.choose_storage(w90, "linear", prefer="speed", layers=(geometry,)).storage == "brle"


def test_speed_without_layers_stays_dense():
    w70, _ = _conv16(0.7)
    assert sparse.choose_storage(w70, "conv", prefer="speed").storage == "dense"
    assert sparse.choose_storage(w70, "conv", prefer="size").storage == "brle"


def _shared_linear_graph(tokens_a: int, tokens_b: int, w: np.ndarray) -> Graph:
    """Two linear layers reading the same weight const, on `tokens_a` and `tokens_b` tokens."""
    g = Graph("shared")
    b = Builder(g)
    weights = b.const(w, "w", Quant((0.01,) * w.shape[0], (0,) * w.shape[0], 0))
    outputs = []
    for i, tokens in enumerate((tokens_a, tokens_b)):
        x = g.add_input(TensorType((1, tokens, w.shape[1]), "i8", Quant.per_tensor(0.05, 0)), f"x{i}")
        y = b.op("linear", [x, weights], name_hint=f"y{i}", input_zp=0, output_zp=0,
                 multiplier=[1 << 30] * w.shape[0], shift=[-8] * w.shape[0], act_min=-128,
                 act_max=127)
        y.type = y.type.with_quant(Quant.per_tensor(0.1, 0))
        outputs.append(y)
    g.outputs = outputs
    return g


def _weight_const(graph: Graph):
    return next(op for op in graph.walk("const") if op.result.name == "w")


def test_shared_const_sums_the_predictions_of_every_reader():
    w = linear_layer(np.random.default_rng(2), 1, 64, 64, sparsity=0.6, block=4).weights
    graph = _shared_linear_graph(1, 64, w)
    SparseStoragePass(prefer="speed").run(graph)
    attrs = _weight_const(graph).attrs
    records, nonempty = choice.stream_counts(w, attrs.get("block", 4))
    readers = [choice.layer_geometry("linear", (1, t, 64), w.shape, (1, t, 64)) for t in (1, 64)]
    assert attrs["predicted_dense_instructions"] == sum(choice.predicted_dense(r) for r in readers)
    assert attrs["predicted_sparse_instructions"] == sum(
        choice.predicted_sparse(r, 4, records, nonempty) for r in readers)
    faster = attrs["predicted_sparse_instructions"] < attrs["predicted_dense_instructions"]
    assert attrs["storage"] == ("brle" if faster else "dense")


def test_one_token_reader_alone_keeps_a_shared_const_dense():
    w = linear_layer(np.random.default_rng(2), 1, 64, 64, sparsity=0.6, block=4).weights
    graph = _shared_linear_graph(1, 1, w)
    SparseStoragePass(prefer="speed").run(graph)
    assert _weight_const(graph).attrs["storage"] == "dense"
    SparseStoragePass(prefer="size").run(graph)
    assert _weight_const(graph).attrs["storage"] == "brle"


def _mixed_graph():
    rng = np.random.default_rng(5)
    return layers_graph([linear_layer(rng, 1, 32, 10, sparsity=0.7),
                         conv_layer(rng, 16, 16, 32, 32, sparsity=0.7),
                         linear_layer(rng, 1, 192, 64, sparsity=0.3),
                         linear_layer(rng, 64, 64, 192, sparsity=0.8, block=2)], "mixed")


def test_pass_output_is_deterministic():
    texts = []
    for _ in range(2):
        graph = _mixed_graph()
        SparseStoragePass(prefer="speed").run(graph)
        texts.append(print_graph(graph))
    assert texts[0] == texts[1]
    graph = _mixed_graph()
    SparseStoragePass(prefer="speed").run(graph)
    assert not SparseStoragePass(prefer="speed").run(graph)  # a second run changes nothing


def test_report_shows_both_predictions_per_layer(tmp_path):
    graph = _mixed_graph()
    art = compile_layers(graph, tmp_path / "out", prefer="speed")
    layers = {layer["name"]: layer for layer in art.report["layers"]}
    classifier, conv, light, _ = (layers[v.name] for v in graph.outputs)
    assert classifier["execution"] == "dense" and conv["execution"] == "sparse"
    assert light["execution"] == "dense"
    for layer in (classifier, conv):
        assert layer["predicted_dense_instructions"] > 0
        assert layer["predicted_sparse_instructions"] > 0
    assert (classifier["predicted_sparse_instructions"]
            >= classifier["predicted_dense_instructions"])
    assert conv["predicted_sparse_instructions"] < conv["predicted_dense_instructions"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "predicted_dense_instructions" in report["layers"][0]


def _fit_script():
    spec = importlib.util.spec_from_file_location("fit_sparse_costs",
                                                  ROOT / "bench" / "fit_sparse_costs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Shapes the fit never saw: other sizes, sparsities and token counts.
HELD_OUT = [("linear", (1, 48, 16)), ("linear", (32, 40, 56)), ("conv", (12, 12, 12, 20, 3, 1, 1)),
            ("conv", (10, 10, 40, 36, 1, 1, 0)), ("depthwise", (10, 10, 48, 3, 1))]
HELD_OUT_TOLERANCE = 0.15  # relative; the fit's own worst errors are in kernel_costs.FIT_ERRORS


@pytest.mark.needs("arm-none-eabi-gcc", "unicorn")
@pytest.mark.parametrize("prefer,block,sparsity", [("dense", 4, 0.0), ("size", 4, 0.7),
                                                    ("size", 2, 0.5)])
def test_cost_model_predicts_held_out_layers(tmp_path, prefer, block, sparsity):
    fit = _fit_script()
    rng = np.random.default_rng(11)
    shapes = HELD_OUT if block == 4 else [s for s in HELD_OUT if s[0] != "depthwise"]
    layers = [fit.build_layer(rng, kind, args, sparsity, block) for kind, args in shapes]
    samples = fit.measure_graph(layers, prefer, block, tmp_path / "out")
    assert len(samples) >= len(shapes) - 1  # at most the depthwise may stay dense
    for sample in samples:
        predicted = choice.predicted_instructions(sample["kernel"], sample["features"])
        error = abs(predicted - sample["instructions"]) / sample["instructions"]
        assert error < HELD_OUT_TOLERANCE, (sample["shape"], sample["kernel"], predicted,
                                            sample["instructions"])
