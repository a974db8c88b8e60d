"""Exact minima and maxima over every template-sized window (private helper of the engine).

``window_extremes(a, (h, w), out_shape)`` gives ``a[y:y+h, x:x+w].min()`` and
``.max()`` for every window position: comparisons only, no arithmetic, so
``lo == hi`` says exactly where a window is flat (and ``lo == hi == 0`` where
it is zero). The window sums the scores need are
:meth:`matcher.scores.image_channel.BandChannel.sums` (box filters) and
:mod:`matcher.scores.window_terms`.
"""

import cv2
import numpy as np

__all__ = ["window_extremes"]

_OPENCV_SPAN = {1: 64, 2: 64, 4: 64, 8: 32}
"""Up to this box height + width (by item size), OpenCV's erosion and dilation are faster than the doubling
blocks (2-2.5x at 16 px; their cost grows with the box, the blocks' with its logarithm)."""
_OPENCV_DEPTHS = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def _sliding_extreme(a, size, axis, op):
    """``op`` (np.minimum or np.maximum) over ``size`` consecutive values along ``axis``.

    Doubling blocks (a sparse table): block ``2**j`` holds the extreme of
    ``2**j`` values; two overlapping blocks cover any window. ``log2(size)``
    passes, whatever the window size.
    """
    n_out = a.shape[axis] - size + 1
    take = lambda arr, start, stop: arr[(slice(None),) * axis + (slice(start, stop),)]  # noqa: E731
    block, span = a, 1
    while span * 2 <= size:
        block = op(take(block, 0, block.shape[axis] - span), take(block, span, block.shape[axis]))
        span *= 2
    return op(take(block, 0, n_out), take(block, size - span, size - span + n_out))


def window_extremes(a, shape, out_shape, offset=(0, 0)):
    """Minimum and maximum of ``a`` over the ``shape`` box at ``offset`` inside every window.

    Exact (comparisons only, no arithmetic), so ``lo == hi`` says exactly
    where a window is flat. ``out_shape`` is the number of window positions;
    ``offset = (r0, c0)`` places the box inside the template, for a mask whose
    non-zero pixels fill only part of it.
    """
    h, w = shape
    r0, c0 = offset
    region = a[r0 : r0 + out_shape[0] + h - 1, c0 : c0 + out_shape[1] + w - 1]
    if a.dtype in _OPENCV_DEPTHS and h + w <= _OPENCV_SPAN[a.dtype.itemsize]:
        # minima and maxima over the box anchored at its top-left corner: comparisons only, exact
        box, rows, cols = np.ones((h, w), np.uint8), slice(0, out_shape[0]), slice(0, out_shape[1])
        kw = dict(anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)  # valid windows never reach the border
        region = np.ascontiguousarray(region)
        return cv2.erode(region, box, **kw)[rows, cols], cv2.dilate(region, box, **kw)[rows, cols]
    lo = _sliding_extreme(_sliding_extreme(region, w, 1, np.minimum), h, 0, np.minimum)
    hi = _sliding_extreme(_sliding_extreme(region, w, 1, np.maximum), h, 0, np.maximum)
    return lo, hi
