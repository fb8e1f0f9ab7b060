"""Sliding-window machinery shared by the float and integer interpreters.

Everything here works in one canonical layout, NCHW activations and OIHW weights; `to_nchw` /
`from_nchw` adapt the other layout at the edges. Outputs of `conv_accumulate` are channel-last
(N, OH, OW, O) so per-output-channel requantization parameters broadcast along the last axis.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def to_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    return x if layout == "nchw" else x.transpose(0, 3, 1, 2)


def from_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    return x if layout == "nchw" else x.transpose(0, 2, 3, 1)


def weights_to_oihw(w: np.ndarray, layout: str) -> np.ndarray:
    """nhwc graphs carry OHWI weights (depthwise: [C, kh, kw, 1], i.e. OHWI with I = 1)."""
    return w if layout == "nchw" else w.transpose(0, 3, 1, 2)


def spatial_params(op) -> tuple[list[int], list[int], list[int]]:
    """(strides, pads [top, left, bottom, right], dilations) with ONNX defaults."""
    return (list(op.attr("strides", [1, 1])), list(op.attr("pads", [0, 0, 0, 0])),
            list(op.attr("dilations", [1, 1])))


def out_hw(op) -> tuple[int, int]:
    """The output height and width, read from the result type (shape inference owns the rule)."""
    shape = op.results[0].type.shape
    return (shape[2], shape[3]) if op.attr("layout", "nchw") == "nchw" else (shape[1], shape[2])


def windows(x: np.ndarray, kernel, strides, pads, dilations, out_size, pad_value) -> np.ndarray:
    """All windows of an NCHW tensor: shape (N, C, OH, OW, KH, KW).

    Padding cells hold `pad_value`. Ceil-mode pooling may need windows that run past the end
    padding; those extra cells hold `pad_value` too (callers that count cells use `window_counts`).
    """
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    oh, ow = out_size
    top, left, bottom, right = pads
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    _, _, h, w = x.shape
    bottom = max(bottom, (oh - 1) * sh + span_h - h - top)
    right = max(right, (ow - 1) * sw + span_w - w - left)
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    view = sliding_window_view(padded, (span_h, span_w), axis=(2, 3))
    return view[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]


def window_counts(in_hw, kernel, strides, pads, dilations, out_size, include_pad: bool) -> np.ndarray:
    """The divisor of average pooling per output position, shape (OH, OW).

    Counted cells are the real input cells, plus the explicit padding when `include_pad`; the
    cells ceil mode adds past the end padding never count (as in onnxruntime).
    """
    h, w = in_hw
    top, left, bottom, right = pads
    if include_pad:
        counted = np.ones((1, 1, h + top + bottom, w + left + right), dtype=np.int64)
        cells = windows(counted, kernel, strides, [0, 0, 0, 0], dilations, out_size, 0)
    else:
        counted = np.ones((1, 1, h, w), dtype=np.int64)
        cells = windows(counted, kernel, strides, pads, dilations, out_size, 0)
    return cells.sum(axis=(-2, -1))[0, 0]


def conv_accumulate(x: np.ndarray, w: np.ndarray, group: int, strides, pads, dilations,
                    out_size) -> np.ndarray:
    """sum over (ci, kh, kw) of x * w for NCHW x and OIHW w, channel-last result (N, OH, OW, O).

    The padding is 0, so integer callers subtract the input zero point before calling. The
    arithmetic is done in the arrays' dtype: float32 (like onnxruntime) or int64 (exact).
    """
    n, c, _, _ = x.shape
    o, cg, kh, kw = w.shape
    cols = windows(x, (kh, kw), strides, pads, dilations, out_size, 0)
    oh, ow = out_size
    cols = cols.reshape(n, group, cg, oh, ow, kh, kw)
    wg = w.reshape(group, o // group, cg, kh, kw)
    out = np.einsum("ngchwij,gocij->nhwgo", cols, wg, optimize=True)
    return out.reshape(n, oh, ow, o)
