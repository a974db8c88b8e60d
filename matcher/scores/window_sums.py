"""Sums and extremes over every template-sized window (private helpers of the engine).

``window_sums(a, (h, w))[y, x] == a[y:y+h, x:x+w].sum()`` for every valid
position. Integer data goes through OpenCV's running-sum box filters, exact
in float64 (every partial sum is an integer below 2**53). Float data is
summed pairwise (blocks of 1, 2, 4, ... values), so each window sum carries
rounding from about ``log2(h) + log2(w)`` additions of its own values only,
never from the rest of its row: :func:`pairwise_error_scale` says how much.
"""

import cv2
import numpy as np

_EPS = np.finfo(np.float64).eps


def _sliding_sum(a, size, axis):
    """Sums of ``size`` consecutive values along ``axis``, by pairwise blocks."""
    n_out = a.shape[axis] - size + 1
    take = lambda arr, start, stop: arr[(slice(None),) * axis + (slice(start, stop),)]  # noqa: E731
    total, block, span, offset = None, a, 1, 0
    while True:
        if size & span:
            piece = take(block, offset, offset + n_out)
            total = piece.copy() if total is None else total + piece
            offset += span
        if span * 2 > size:
            return total
        block = take(block, 0, block.shape[axis] - span) + take(block, span, block.shape[axis])
        span *= 2


def _pairwise_window_sums(a, shape):
    h, w = shape
    return _sliding_sum(_sliding_sum(a, w, 1), h, 0)


def window_sums(a, shape, *, exact_integers=False):
    """Sum of ``a`` over every ``shape = (h, w)`` window, shape ``(H-h+1, W-w+1)``.

    ``exact_integers=True`` promises that ``a`` holds integers (small enough
    for float64), which allows OpenCV's faster running sums.
    """
    h, w = shape
    if not exact_integers:
        return _pairwise_window_sums(a, shape)
    full = cv2.boxFilter(a, cv2.CV_64F, (w, h), anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return full[: a.shape[0] - h + 1, : a.shape[1] - w + 1]


def window_sums_of_squares(a, shape, *, exact_integers=False):
    """Sum of ``a**2`` over every ``shape = (h, w)`` window."""
    h, w = shape
    if not exact_integers:
        return _pairwise_window_sums(np.square(a), shape)
    full = cv2.sqrBoxFilter(a, cv2.CV_64F, (w, h), anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return full[: a.shape[0] - h + 1, : a.shape[1] - w + 1]


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
    lo = _sliding_extreme(_sliding_extreme(region, w, 1, np.minimum), h, 0, np.minimum)
    hi = _sliding_extreme(_sliding_extreme(region, w, 1, np.maximum), h, 0, np.maximum)
    return lo, hi


def pairwise_error_scale(shape):
    """Relative error bound of a pairwise window sum over ``shape = (h, w)``.

    A pairwise sum of ``n`` values adds each one at most ``L = ceil(log2 h) +
    ceil(log2 w) + 2`` times, so its error is below ``L u sum(|a|)`` (``u``
    the unit roundoff); a factor of 2 covers squaring and second-order terms.
    The absolute bound is this scale times ``sum(|a|)`` over the window.
    """
    h, w = shape
    levels = np.ceil(np.log2(h)) + np.ceil(np.log2(w)) + 2.0
    return float(2.0 * levels * _EPS)
