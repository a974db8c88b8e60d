"""Peaks of score maps: candidates, non-maximum suppression, sub-pixel refinement.

The three steps behind :func:`matcher.find`, on "goodness" maps (higher is
better; callers negate ``ssd`` maps). Everything works on numpy arrays; only
the greedy suppression loop is Python, and it visits candidate peaks (not
pixels), stopping as soon as it has enough matches.

- :func:`local_peaks`: pixels that equal the maximum of their 3 x 3
  neighbourhood and reach a floor, one per plateau, best first.
- :func:`suppress`: greedy suppression by intersection over union (IoU) of the
  matched windows, across windows of several sizes.
- :func:`refine`: a quadratic fitted to the 3 x 3 neighbourhood of each peak.
"""

import cv2
import numpy as np
from scipy import ndimage

__all__ = ["local_peaks", "suppress", "refine", "iou", "NEIGHBOURS_Y", "NEIGHBOURS_X"]

NEIGHBOURS_Y, NEIGHBOURS_X = (a.ravel() for a in np.mgrid[-1:2, -1:2])
"""Offsets of a position's 3 x 3 neighbourhood, row-major (the position itself is index 4)."""

_FIRST_CHUNK = 256  # candidates checked per vectorised look-up; doubles up to _MAX_CHUNK
_MAX_CHUNK = 1 << 16
_KERNEL = np.ones((3, 3), np.uint8)


def local_peaks(goodness, floor=None):
    """Candidate peaks of a 2-D map, best first.

    A candidate is a pixel equal to the maximum of its 3 x 3 neighbourhood
    (clipped at the border) and, if ``floor`` is given, ``>= floor``. Adjacent
    candidates necessarily have equal values (each is >= the other), so the
    8-connected groups of candidates are plateaus; each plateau yields one
    candidate, its first pixel in row-major order (the one ``np.argmax``
    returns). Ties in value are ordered row-major.

    Parameters
    ----------
    goodness : ndarray, shape (H, W)
        Higher is better; finite.
    floor : float, optional
        Smallest value kept (inclusive).

    Returns
    -------
    ys, xs : ndarray of intp
        Positions, best first.
    values : ndarray of float64
        ``goodness[ys, xs]``.

    Examples
    --------
    >>> g = np.array([[0, 5, 5, 0, 1], [0, 0, 0, 0, 3]], float)
    >>> ys, xs, values = local_peaks(g)
    >>> ys.tolist(), xs.tolist(), values.tolist()
    ([0, 1], [1, 4], [5.0, 3.0])
    """
    goodness = np.ascontiguousarray(goodness, dtype=np.float64)
    peak = goodness >= cv2.dilate(goodness, _KERNEL)  # border: outside counts as -inf
    if floor is not None:
        peak &= goodness >= floor
    flat = np.flatnonzero(peak)  # row-major
    if flat.size > 1 and _touching(peak, flat):
        labels, _ = ndimage.label(peak, structure=np.ones((3, 3), bool))
        _, first = np.unique(labels.ravel()[flat], return_index=True)
        flat = flat[np.sort(first)]
    values = goodness.ravel()[flat]
    order = np.argsort(-values, kind="stable")
    ys, xs = np.divmod(flat[order], goodness.shape[1])
    return ys, xs, values[order]


def _touching(peak, flat):
    """Whether any two candidates are 8-neighbours (looking right and down only)."""
    H, W = peak.shape
    cells = peak.ravel()  # a view: no padded copy of the map
    xs = flat % W
    if cells[flat[xs < W - 1] + 1].any():  # right
        return True
    below, bx = flat[flat < (H - 1) * W] + W, xs[flat < (H - 1) * W]
    return bool(cells[below].any() or cells[below[bx > 0] - 1].any() or cells[below[bx < W - 1] + 1].any())


def iou(a, b):
    """Intersection over union of two boxes ``(x, y, width, height)``.

    >>> iou((0, 0, 4, 4), (2, 0, 4, 4))
    0.3333333333333333
    """
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def suppress(ys, xs, kinds, boxes, map_shapes, max_overlap, limit=None):
    """Greedy non-maximum suppression by IoU, in one pass over sorted candidates.

    Walks the candidates in order (best first) and keeps one unless its window
    overlaps an already kept window by more than ``max_overlap`` (IoU). Every
    kept window "claims" the positions it would suppress: for each window
    size, a boolean map of the positions claimed so far, updated with a
    precomputed stamp per pair of sizes, so that checking a candidate costs one
    look-up whatever the number of kept windows.

    Parameters
    ----------
    ys, xs : ndarray of int
        Top-left corners of the candidates' windows, best first.
    kinds : ndarray of int
        ``boxes[kinds[i]]`` is candidate ``i``'s window size.
    boxes : sequence of (height, width)
        The distinct window sizes.
    map_shapes : sequence of (rows, cols)
        ``map_shapes[k]`` bounds the positions of windows of size ``boxes[k]``.
    max_overlap : float in [0, 1]
        Largest IoU allowed between two kept windows.
    limit : int, optional
        Stop after this many kept windows.

    Returns
    -------
    ndarray of intp
        Indices of the kept candidates, in order.

    Examples
    --------
    >>> ys, xs = np.array([0, 0, 0]), np.array([0, 1, 4])
    >>> suppress(ys, xs, np.zeros(3, int), [(4, 4)], [(4, 8)], 0.3).tolist()
    [0, 2]
    """
    n = len(ys)
    limit = n if limit is None else min(limit, n)
    if max_overlap >= 1.0 or limit <= 1:  # IoU never exceeds 1: nothing is suppressed
        return np.arange(limit)
    claimed = [np.zeros(s, bool) for s in map_shapes]
    stamps = {}
    present = np.unique(kinds).tolist()
    kept = []
    start, chunk = 0, _FIRST_CHUNK
    while start < n and len(kept) < limit:
        stop = min(n, start + chunk)
        cy, cx, ck = ys[start:stop], xs[start:stop], kinds[start:stop]
        free = np.ones(stop - start, bool)
        for k in present:  # drop the candidates already claimed, vectorised
            sel = ck == k
            free[sel] = ~claimed[k][cy[sel], cx[sel]]
        for i in (np.flatnonzero(free) + start).tolist():
            y, x, a = int(ys[i]), int(xs[i]), int(kinds[i])
            if claimed[a][y, x]:
                continue
            kept.append(i)
            if len(kept) == limit:
                break
            for b in present:
                if (a, b) not in stamps:
                    stamps[a, b] = _stamp(boxes[a], boxes[b], max_overlap)
                _apply(claimed[b], stamps[a, b], y - boxes[b][0] + 1, x - boxes[b][1] + 1)
        start, chunk = stop, min(2 * chunk, _MAX_CHUNK)
    return np.array(kept, dtype=np.intp)


def _stamp(box_a, box_b, max_overlap):
    """Offsets (dy, dx) of a size-b window from a size-a one at which IoU > max_overlap.

    Element ``[dy + hb - 1, dx + wb - 1]``, for dy in ``-(hb-1) .. ha-1``.
    """
    (ha, wa), (hb, wb) = box_a, box_b

    def overlap(a, b):
        d = np.arange(-(b - 1), a)
        return np.minimum(a, d + b) - np.maximum(0, d)

    inter = np.outer(overlap(ha, hb), overlap(wa, wb)).astype(np.float64)
    return inter / (ha * wa + hb * wb - inter) > max_overlap


def _apply(claimed, stamp, top, left):
    """``claimed[top:, left:] |= stamp``, clipped to ``claimed``."""
    H, W = claimed.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + stamp.shape[0], H), min(left + stamp.shape[1], W)
    if y0 < y1 and x0 < x1:
        claimed[y0:y1, x0:x1] |= stamp[y0 - top : y1 - top, x0 - left : x1 - left]


def refine(goodness, ys, xs):
    """Sub-pixel positions of peaks: a quadratic fitted around each, clamped to +-0.5.

    Where the 3 x 3 neighbourhood lies inside the map, a 2-D quadratic
    ``c0 + c1 x + c2 y + c3 x^2 + c4 x y + c5 y^2`` is fitted to its 9 values
    by least squares and its stationary point taken, when that is a maximum
    (negative definite Hessian). Unlike one parabola per axis, the fit follows
    peaks elongated along a diagonal (edges, textures); on photographs shifted
    by known fractions of a pixel it has about half the error of the per-axis
    parabolas (``tests/test_matches.py::test_subpixel_accuracy_on_shifted_photographs``). Otherwise (at the border of the
    map along one axis, or a saddle) each axis gets the parabola through its 3
    samples, ``(g[-1] - g[1]) / (2 (g[-1] - 2 g[0] + g[1]))``, when those
    are inside the map and curve downwards, else no offset. Offsets are clamped
    to ``[-0.5, 0.5]`` per axis, so a refined position stays within half a
    pixel of its integer peak.

    Parameters
    ----------
    goodness : ndarray, shape (H, W)
        Higher is better.
    ys, xs : ndarray of int
        Integer peak positions.

    Returns
    -------
    fy, fx : ndarray of float64
        Refined positions.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:5, 0:5]
    >>> g = -((xx - 2.25) ** 2) - 2 * (yy - 1.9) ** 2 + 0.5 * (xx - 2.25) * (yy - 1.9)
    >>> fy, fx = refine(g, np.array([2]), np.array([2]))
    >>> round(float(fy[0]), 6), round(float(fx[0]), 6)
    (1.9, 2.25)
    """
    g = np.asarray(goodness, dtype=np.float64)
    ys, xs = np.asarray(ys, np.intp), np.asarray(xs, np.intp)
    H, W = g.shape
    inner_y = (ys > 0) & (ys < H - 1)
    inner_x = (xs > 0) & (xs < W - 1)
    oy = np.zeros(ys.shape)
    ox = np.zeros(xs.shape)
    sy, sx = np.flatnonzero(inner_y), np.flatnonzero(inner_x)
    oy[sy] = _parabola(g[ys[sy] - 1, xs[sy]], g[ys[sy], xs[sy]], g[ys[sy] + 1, xs[sy]])
    ox[sx] = _parabola(g[ys[sx], xs[sx] - 1], g[ys[sx], xs[sx]], g[ys[sx], xs[sx] + 1])
    both = np.flatnonzero(inner_y & inner_x)
    if both.size:
        p = g[ys[both, None, None] + NEIGHBOURS_Y.reshape(3, 3), xs[both, None, None] + NEIGHBOURS_X.reshape(3, 3)]
        cols, rows = p.sum(axis=1), p.sum(axis=2)  # (n, 3): sums at dx = -1, 0, 1 and at dy = -1, 0, 1
        # Least-squares coefficients on the 3 x 3 grid, in closed form (differences: exactly 0 on flat data)
        c1, c2 = (cols[:, 2] - cols[:, 0]) / 6.0, (rows[:, 2] - rows[:, 0]) / 6.0
        c3 = (cols[:, 0] - 2.0 * cols[:, 1] + cols[:, 2]) / 6.0
        c5 = (rows[:, 0] - 2.0 * rows[:, 1] + rows[:, 2]) / 6.0
        c4 = (p[:, 2, 2] - p[:, 2, 0] - p[:, 0, 2] + p[:, 0, 0]) / 4.0
        det = 4.0 * c3 * c5 - c4 * c4
        ok = (c3 < 0) & (det > 0)
        safe = np.where(ok, det, 1.0)
        ox[both[ok]] = ((c4 * c2 - 2.0 * c5 * c1) / safe)[ok]
        oy[both[ok]] = ((c4 * c1 - 2.0 * c3 * c2) / safe)[ok]
    return ys + np.clip(oy, -0.5, 0.5), xs + np.clip(ox, -0.5, 0.5)


def _parabola(before, at, after):
    """Vertex offset of the parabola through (-1, before), (0, at), (1, after); 0 unless it curves down."""
    curve = before - 2.0 * at + after
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(curve < 0, (before - after) / (2.0 * np.where(curve < 0, curve, -1.0)), 0.0)


def refine_patches(patches, ys, xs, out_shape):
    """:func:`refine` on each peak's own 3 x 3 neighbourhood, NaN outside the map: (fy, fx).

    ``patches`` is ``(K, 3, 3)`` goodness (higher is better) centred on the
    peaks at (ys, xs) of a map of ``out_shape``; the result is what
    :func:`refine` gives on the whole map with those values, bit for bit.
    """
    out_h, out_w = out_shape
    fy, fx = ys.astype(np.float64), xs.astype(np.float64)
    for i in range(len(ys)):
        y, x = int(ys[i]), int(xs[i])
        r = slice(0 if y > 0 else 1, 3 if y < out_h - 1 else 2)
        c = slice(0 if x > 0 else 1, 3 if x < out_w - 1 else 2)
        ry, rx = refine(patches[i, r, c], np.array([1 - r.start]), np.array([1 - c.start]))
        fy[i], fx[i] = y + (ry[0] - (1 - r.start)), x + (rx[0] - (1 - c.start))
    return fy, fx
