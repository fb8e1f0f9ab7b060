"""The brle codec: round trip, sizes, fillers, η agreement, and the dense/sparse choice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfc import sparse
from tfc.sparse.codec import MAX_SKIP


@st.composite
def sparse_rows(draw):
    """[rows, length] int8 with runs of zero blocks of any length (also > 255 blocks)."""
    rows = draw(st.integers(1, 6))
    length = draw(st.integers(1, 700))
    density = draw(st.sampled_from([0.0, 0.001, 0.05, 0.3, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=(rows, length)).astype(np.int8)
    w[rng.random((rows, length)) >= density] = 0
    return w


@settings(max_examples=200, deadline=None)
@given(sparse_rows(), st.integers(1, 5))
def test_decode_inverts_encode(rows, block):
    stream = sparse.encode(rows, block)
    np.testing.assert_array_equal(sparse.decode(stream), rows)
    assert stream.nbytes == stream.records * (1 + block) == sparse.encoded_nbytes(rows, block)
    records = stream.data.reshape(-1, 1 + block)
    fillers = (records[:, 0] == MAX_SKIP) & ~records[:, 1:].any(axis=1)
    n_blocks = -(-rows.shape[1] // block) * rows.shape[0]
    stored = round((1 - sparse.block_sparsity(rows, block)) * n_blocks)
    assert stream.records - int(fillers.sum()) <= stored <= stream.records


def test_long_gaps_get_filler_records():
    rows = np.zeros((2, 4 * 1000), dtype=np.int8)
    rows[0, 0] = 1  # block 0
    rows[1, -1] = -3  # block 1999: a gap of 1998 zero blocks
    stream = sparse.encode(rows, 4)
    skips = stream.data.reshape(-1, 5)[:, 0].tolist()
    assert skips == [0, 255, 255, 255, 255, 255, 255, 255, 1998 - 7 * 256]
    np.testing.assert_array_equal(sparse.decode(stream), rows)


def test_gap_of_exactly_256_blocks():
    rows = np.zeros((1, 2 * 258), dtype=np.int8)
    rows[0, [0, 2 * 257]] = 7  # blocks 0 and 257: 256 zero blocks between
    stream = sparse.encode(rows, 2)
    assert stream.data.reshape(-1, 3)[:, 0].tolist() == [0, 255, 0]
    np.testing.assert_array_equal(sparse.decode(stream), rows)


def test_all_zero_tensor_has_no_records():
    stream = sparse.encode(np.zeros((4, 16), np.int8), 4)
    assert stream.records == 0 and stream.nbytes == 0
    np.testing.assert_array_equal(sparse.decode(stream), np.zeros((4, 16), np.int8))


def test_walk_order_blocks_run_along_input_channels():
    w = np.zeros((2, 3, 3, 8), np.int8)  # OHWI
    w[1, 2, 1, 4:8] = 5  # one block of 4 input channels at kernel position (2, 1)
    rows = sparse.walk_rows(w, "conv")
    assert rows.shape == (2, 72)
    stream = sparse.encode(rows, 4)
    assert stream.records == 1
    assert stream.data[0] == 18 + (2 * 3 + 1) * 2 + 1  # row 0 (18 blocks), then (kh, kw, half)
    dw = sparse.walk_rows(np.ones((5, 3, 3, 1), np.int8), "depthwise")
    assert dw.shape == (5, 9) and sparse.encode(dw, 3).blocks_per_row == 3


@pytest.mark.parametrize("block", [2, 4])
@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7, 0.8, 0.9])
def test_measured_ratio_matches_eta_on_large_tensors(block, rho):
    rng = np.random.default_rng(int(rho * 100) + block)
    w = rng.integers(-127, 128, size=(64, 3, 3, 32)).astype(np.int8)  # 18 KB
    w[w == 0] = 1
    w = sparse.prune_blocks(w, "conv", block, rho)
    rows = sparse.walk_rows(w, "conv")
    measured = w.nbytes / sparse.encode(rows, block).nbytes
    eta = sparse.predicted_eta(sparse.block_sparsity(rows, block), block)
    assert abs(measured - eta) / eta < 0.02
    assert abs(sparse.block_sparsity(rows, block) - rho) < 0.01


def test_choice_detects_block_size_and_stays_dense_when_not_smaller():
    rng = np.random.default_rng(3)
    w = rng.integers(1, 100, size=(32, 64)).astype(np.int8)
    pruned = sparse.prune_blocks(w, "linear", 4, 0.75)
    choice = sparse.choose_storage(pruned, "linear", prefer="size")
    assert (choice.storage, choice.block) == ("brle", 4)
    assert choice.nbytes == sparse.encoded_nbytes(pruned, 4) < w.nbytes
    assert choice.ratio == pytest.approx(w.nbytes / choice.nbytes, rel=1e-3)
    pruned2 = sparse.prune_blocks(w, "linear", 2, 0.75)
    assert sparse.choose_storage(pruned2, "linear", prefer="size").block == 2
    dense = sparse.choose_storage(w, "linear", prefer="size")
    assert dense.storage == "dense" and "would take" in dense.reason
    hinted = sparse.choose_storage(pruned, "linear", block_hint=2, prefer="size")
    assert hinted.block == 2
    assert sparse.choose_storage(pruned, "linear", prefer="dense").storage == "dense"


def test_speed_preference_follows_the_cost_model_crossover():
    """On one layer (linear 64 -> 192 on one token) the speed choice flips once, from dense to
    brle, as block sparsity grows, exactly where the predicted sparse instructions drop below the
    predicted dense ones; prefer=size takes brle wherever it is smaller."""
    rng = np.random.default_rng(4)
    w = rng.integers(1, 100, size=(192, 64)).astype(np.int8)
    layer = sparse.layer_geometry("linear", (1, 64), w.shape, (1, 192))
    picks = []
    for rho in (0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95):
        pruned = sparse.prune_blocks(w, "linear", 4, rho)
        choice = sparse.choose_storage(pruned, "linear", prefer="speed", block_hint=4,
                                       layers=(layer,))
        faster = choice.predicted_sparse_instructions < choice.predicted_dense_instructions
        assert choice.storage == ("brle" if faster else "dense"), (rho, choice.reason)
        assert sparse.choose_storage(pruned, "linear", prefer="size").storage == "brle"
        picks.append(choice.storage)
    assert picks[0] == "dense" and picks[-1] == "brle"
    assert picks == sorted(picks, key=lambda s: s == "brle")  # one crossover
