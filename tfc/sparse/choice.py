"""Choosing a weight tensor's storage and execution: dense, or brle with the smallest block size.

The block size is detected from the zero pattern: every candidate is measured (a tensor pruned in
blocks of 4 is also block-sparse for b = 2, but its stream is smaller with b = 4), unless a hint
fixes it. Sparse storage is chosen only where the stream is smaller than the dense tensor. With
`prefer="speed"` it is also chosen only where the sparse kernel is predicted to run fewer
instructions than the dense one, summed over every layer that reads the tensor: a per-kernel
linear cost model (`predicted_instructions`, coefficients fitted on the emulated Cortex-M7 by
bench/fit_sparse_costs.py into tfc/sparse/kernel_costs.py) that sees the layer's size and shape,
not only its density. `prefer="size"` keeps brle wherever it is smaller (flash is the binding
limit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfc.sparse import kernel_costs
from tfc.sparse.codec import block_sparsity, encoded_nbytes, predicted_eta, walk_rows

# Candidate block sizes per walk (DESIGN.md "Sparse storage"); depthwise blocks are kernel rows.
BLOCK_CANDIDATES = {"conv": (4, 2), "linear": (4, 2), "depthwise": ()}

PREFERENCES = ("speed", "size", "dense")


@dataclass(frozen=True)
class LayerGeometry:
    """What the cost model needs of one layer that reads a weight tensor (see `layer_geometry`).

    m: output pixels (batch x out_h x out_w) or tokens; n: output channels; k: the reduction
    (kh*kw*in_c, in_features, or kh*kw for depthwise) before any padding."""

    walk: str  # "conv", "linear" or "depthwise"
    m: int
    n: int
    k: int
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    padded: bool = False
    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)
    batch: int = 1
    pad_top_left: tuple[int, int] = (0, 0)


def layer_geometry(walk: str, x_shape, w_shape, y_shape, strides=(1, 1), pads=(0, 0, 0, 0),
                   dilations=(1, 1)) -> LayerGeometry:
    """A layer's geometry from its input, weight and output shapes (nhwc / OHWI / [out, in])."""
    if walk == "linear":
        out_features, in_features = (int(d) for d in w_shape)
        tokens = int(np.prod(x_shape)) // max(in_features, 1)
        return LayerGeometry("linear", tokens, out_features, in_features)
    batch, in_h, in_w, _ = (int(d) for d in x_shape)
    _, out_h, out_w, _ = (int(d) for d in y_shape)
    out_c, kh, kw, per_group = (int(d) for d in w_shape)
    return LayerGeometry(walk, batch * out_h * out_w, out_c, kh * kw * per_group, (kh, kw),
                         tuple(int(s) for s in strides), tuple(int(d) for d in dilations),
                         any(int(p) for p in pads), (in_h, in_w), (out_h, out_w), batch,
                         (int(pads[0]), int(pads[1])))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def dense_kernel(layer: LayerGeometry) -> str:
    """The dense kernel of tfc_gemm_s8.c / tfc_depthwise.c the M7 backend picks for `layer`."""
    if layer.walk == "linear":
        return "gemm_linear"
    if layer.walk == "conv":
        pointwise = layer.kernel == (1, 1) and layer.strides == (1, 1) and not layer.padded
        return "gemm_linear" if pointwise else "gemm_conv"
    fast = layer.kernel == (3, 3) and layer.dilations == (1, 1) and layer.strides[1] in (1, 2)
    return "dw_3x3" if fast else "dw_generic"


def sparse_kernel(layer: LayerGeometry, block: int) -> str:
    """The tfc_sparse.c / tfc_sparse_dw.c kernel (and block size) for `layer`."""
    if layer.walk == "depthwise":
        fast = layer.kernel[1] == 3 and layer.dilations[1] == 1 and layer.strides[1] in (1, 2)
        return "brle_dw3" if fast else "brle_dw_generic"
    pointwise = layer.kernel == (1, 1) and layer.strides == (1, 1) and not layer.padded
    walk = "linear" if layer.walk == "linear" or pointwise else "conv"  # sparse_lowering._as_linear
    return f"brle_{walk}_b{block}"


def dense_features(layer: LayerGeometry) -> dict[str, float]:
    """The terms of the dense kernel's cost, each counting something the kernel loops over."""
    kernel = dense_kernel(layer)
    if kernel.startswith("gemm"):
        # Two rows (pixels/tokens) share a panel; each 2x2 block of rows x channels walks the
        # reduction in groups of 4 (K padded to 4), two groups per loop trip plus an odd one.
        row_pairs, channel_pairs = _ceil_div(layer.m, 2), _ceil_div(layer.n, 2)
        groups = _ceil_div(layer.k, 4)
        features = {"call": 1.0, "row_pair": row_pairs, "panel_group": row_pairs * groups,
                    "block": row_pairs * channel_pairs,
                    "block_group": row_pairs * channel_pairs * groups}
        if kernel == "gemm_conv":  # the window gather: a call per contiguous run of taps
            runs, unaligned = window_gather(layer)
            features.update(window_run=runs, window_unaligned=unaligned)
        return features
    in_h, in_w = layer.in_hw
    channels = layer.n
    if kernel == "dw_3x3":  # 4 channels of the input transposed into planes, then output rows
        out_h, out_w = layer.out_hw
        return {"call": 1.0, "channel": channels,
                "plane_byte": layer.batch * channels * in_h * in_w,
                "output": layer.m * channels, "output_row": layer.batch * out_h * channels,
                "output_quad": layer.batch * out_h * _ceil_div(out_w, 4) * channels}
    # tfc_depthwise_s8_hwc: four channels per input word, the channels past a multiple of 4 alone.
    taps, quads, tail = layer.kernel[0] * layer.kernel[1], channels // 4, channels % 4
    return {"call": 1.0, "channel": channels, "output_quad": layer.m * quads,
            "tap_quad": layer.m * taps * quads, "tail_tap": layer.m * taps * tail,
            "output": layer.m * channels}


def sparse_features(layer: LayerGeometry, block: int, records: int,
                    nonempty_rows: int) -> dict[str, float]:
    """The terms of the sparse kernel's cost; `records` counts fillers (they are walked too)."""
    if layer.walk == "depthwise":
        in_h, in_w = layer.in_hw
        out_h, out_w = layer.out_hw
        # Per channel: decode its kept kernel rows, widen the input rows they read into the
        # plane, then one sweep per kept row over the outputs (pairs of them on the fast path).
        return {"call": 1.0, "channel": layer.n, "record": records,
                "widened": layer.batch * nonempty_rows * in_h * in_w,
                "record_output": layer.batch * records * out_h * _ceil_div(out_w, 2),
                "output": layer.m * nonempty_rows,
                "empty_output": layer.m * (layer.n - nonempty_rows)}
    # One pass over the whole stream per group of pixels/tokens (tfc_sparse.c): groups of 8
    # while more than 4 are left, then one of 4 (each group first gathers its windows into the
    # patch); fewer than 4 pixels run one at a time, widened into all 4 slots.
    if sparse_kernel(layer, block).startswith("brle_linear"):
        narrow, wide = group_passes(layer.m)
        runs, unaligned = layer.m, layer.m * layer.k * (layer.k % 4 != 0)
    else:  # the conv kernel walks each image of the batch on its own
        narrow, wide = (layer.batch * n for n in group_passes(layer.m // max(layer.batch, 1)))
        runs, unaligned = window_gather(layer)
    per_window = (4 * narrow + 8 * wide) / max(layer.m, 1)
    # Each call first counts every row's records into its row table (one walk over the stream).
    return {"call": 1.0, "row": layer.n, "record": records,
            "pass": narrow, "pass_row": narrow * layer.n,
            "pass_record": narrow * records, "pass_patch": 4 * narrow * layer.k,
            "wide_pass": wide, "wide_pass_row": wide * layer.n, "wide_pass_record": wide * records,
            "wide_pass_patch": 8 * wide * layer.k, "window_run": runs * per_window,
            "window_unaligned": unaligned * per_window}


def group_passes(pixels: int) -> tuple[int, int]:
    """(passes over 4 pixels, passes over 8) of tfc_sparse.c's group walk over `pixels`."""
    if pixels < 4:
        return pixels, 0
    narrow = wide = p = 0
    while p < pixels:
        group = 8 if pixels - p > 4 and pixels >= 8 else 4
        first = p if p + group <= pixels else pixels - group
        narrow, wide = (narrow, wide + 1) if group == 8 else (narrow + 1, wide)
        p = first + group
    return narrow, wide


def window_gather(layer: LayerGeometry) -> tuple[int, int]:
    """(contiguous runs, taps in runs not whole words) the conv window gathers of all output
    pixels copy: a kernel row inside the image is one run, a row across the left or right edge
    one run per tap, a row above or below the image one run of padding (tfc_gemm_s8.c
    panel_pack_window, tfc_sparse.c brle_conv_patch)."""
    (in_h, in_w), (out_h, out_w) = layer.in_hw, layer.out_hw
    (kh, kw), (stride_h, stride_w), (dil_h, dil_w) = layer.kernel, layer.strides, layer.dilations
    in_c = layer.k // (kh * kw)
    pad_top, pad_left = layer.pad_top_left
    iw0 = np.arange(out_w) * stride_w - pad_left
    whole = (iw0 >= 0) & (iw0 + (kw - 1) * dil_w < in_w) & ((dil_w == 1) | (kw == 1))
    ih = (np.arange(out_h)[:, None] * stride_h - pad_top + np.arange(kh)[None, :] * dil_h)
    inside = (ih >= 0) & (ih < in_h)  # [out_h, kh]
    rows_inside = inside.sum(axis=1)  # per output row
    runs_per_pixel = ((kh - rows_inside)[:, None]
                      + rows_inside[:, None] * np.where(whole, 1, kw)[None, :])
    row_len = kw * in_c
    unaligned_row = row_len % 4 != 0
    unaligned_tap = in_c % 4 != 0
    unaligned = (kh * row_len * unaligned_row * whole.sum() * out_h
                 + kh * row_len * unaligned_tap * (~whole).sum() * out_h)
    return int(runs_per_pixel.sum()) * layer.batch, int(unaligned) * layer.batch


def predicted_instructions(kernel: str, features: dict[str, float]) -> int:
    """Executed instructions of `kernel` on the emulated M7 the fitted model predicts."""
    coefficients = kernel_costs.COEFFICIENTS[kernel]
    return int(round(sum(coefficients[name] * value for name, value in features.items())))


def predicted_dense(layer: LayerGeometry) -> int:
    return predicted_instructions(dense_kernel(layer), dense_features(layer))


def predicted_sparse(layer: LayerGeometry, block: int, records: int, nonempty_rows: int) -> int:
    return predicted_instructions(sparse_kernel(layer, block),
                                  sparse_features(layer, block, records, nonempty_rows))


@dataclass(frozen=True)
class StorageChoice:
    storage: str  # "dense" or "brle"
    block: int | None
    sparsity: float  # ρ: fraction of all-zero blocks at `block` (element sparsity when dense)
    eta: float | None  # predicted dense/sparse ratio
    ratio: float | None  # measured dense/sparse ratio
    nbytes: int  # bytes in flash with this storage
    reason: str  # why, for reports and --debug output
    # Summed over the layers that read the tensor (None when no layer was given or no stream).
    predicted_dense_instructions: int | None = None
    predicted_sparse_instructions: int | None = None


PREDICTION_ATTRS = ("predicted_dense_instructions", "predicted_sparse_instructions")


def prediction_fields(attrs: dict) -> dict:
    """The cost model's predictions the sparse-storage pass recorded on a const (report.json)."""
    return {key: int(attrs[key]) for key in PREDICTION_ATTRS if key in attrs}


def element_sparsity(weights: np.ndarray) -> float:
    w = np.asarray(weights)
    return float(np.count_nonzero(w == 0)) / max(1, w.size)


def candidate_blocks(weights: np.ndarray, walk: str) -> tuple[int, ...]:
    if walk == "depthwise":
        return (int(np.asarray(weights).shape[2]),)  # one block per kernel row: b = kw
    return BLOCK_CANDIDATES[walk]


def stream_counts(rows: np.ndarray, block: int) -> tuple[int, int]:
    """(records incl. fillers, rows holding a non-zero weight) of a [rows, length] tensor."""
    records = encoded_nbytes(rows, block) // (1 + block)
    return records, int(np.count_nonzero(np.asarray(rows).any(axis=1)))


def choose_storage(weights: np.ndarray, walk: str, *, block_hint: int | None = None,
                   prefer: str = "speed", layers: tuple[LayerGeometry, ...] = ()) -> StorageChoice:
    """Dense or brle for one int8 weight tensor walked as `walk` (see codec.walk_rows).

    `layers` are the layers that read it (`layer_geometry`); with prefer="speed" the tensor is
    stored brle only where the cost model predicts fewer instructions summed over them (without
    layers it stays dense under "speed")."""
    if prefer not in PREFERENCES:
        raise ValueError(f"unknown preference '{prefer}'; known: {', '.join(PREFERENCES)}")
    w = np.asarray(weights)
    dense_bytes = int(w.nbytes)
    dense = StorageChoice("dense", None, round(element_sparsity(w), 4), None, None, dense_bytes, "")
    if prefer == "dense" or w.dtype != np.int8:
        return _with(dense, "sparse storage is off" if prefer == "dense" else "not int8")
    rows = walk_rows(w, walk)
    blocks = (block_hint,) if block_hint else candidate_blocks(w, walk)
    best = None
    for b in blocks:
        nbytes = encoded_nbytes(rows, b)
        if best is None or nbytes < best[1]:
            best = (b, nbytes)
    if best is None:
        return _with(dense, "no block size applies")
    b, nbytes = best
    rho = block_sparsity(rows, b)
    eta = predicted_eta(rho, b)
    predictions = {}
    if layers and all(kernel in kernel_costs.COEFFICIENTS for layer in layers
                      for kernel in (dense_kernel(layer), sparse_kernel(layer, b))):
        records, nonempty = stream_counts(rows, b)
        predictions = dict(
            predicted_dense_instructions=sum(predicted_dense(layer) for layer in layers),
            predicted_sparse_instructions=sum(predicted_sparse(layer, b, records, nonempty)
                                              for layer in layers))
    sparse = StorageChoice("brle", b, round(rho, 4), round(min(eta, 1e9), 4),
                           round(dense_bytes / max(nbytes, 1), 4), nbytes, "", **predictions)
    if nbytes >= dense_bytes:
        return _with(dense, f"brle (b={b}) would take {nbytes} B >= {dense_bytes} B dense")
    if prefer == "speed":
        if not predictions:  # a kernel that bench/fit_sparse_costs.py has not fitted yet
            return _with(dense, "no layer with a fitted cost model reads it: kept dense")
        dense_cost = predictions["predicted_dense_instructions"]
        sparse_cost = predictions["predicted_sparse_instructions"]
        if sparse_cost >= dense_cost:
            return _with(dense, f"brle b={b} is predicted slower: {sparse_cost} >= {dense_cost} "
                                "instructions dense", **predictions)
        return _with(sparse, f"brle b={b}: {nbytes} B < {dense_bytes} B dense, predicted "
                             f"{sparse_cost} < {dense_cost} instructions dense")
    return _with(sparse, f"brle b={b}: {nbytes} B < {dense_bytes} B dense")


def _with(choice: StorageChoice, reason: str, **predictions) -> StorageChoice:
    fields = dict(choice.__dict__, reason=reason)
    fields.update(predictions)
    return StorageChoice(**fields)
