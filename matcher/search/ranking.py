"""Full-resolution scores for the pyramid search (:mod:`matcher.search.pyramid`): ranking maps and exact peaks.

The cells the bounds cannot rule out are ranked in float32 (or by numpy
products in float64 for few positions), and each promising local peak is
climbed on the exact scores, computed by definition
(:func:`matcher.scores.reference.window_scores`).
"""

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import deadline
from ..scores.engine import num_threads, run_parallel
from ..scores.inputs import channels_first
from ..scores.reference import window_scores
from .peaks import NEIGHBOURS_X, NEIGHBOURS_Y

__all__ = ["ranking_scores", "direct_scores", "match_in_bands", "ExactScores", "DIRECT_POSITIONS",
           "DIRECT_MIN_VALUES", "MAX_CLIMB", "EXACT_VALUES"]

MAX_CLIMB = 8
"""Full-resolution re-centring steps per candidate."""
EXACT_VALUES = 1 << 18
"""Windows scored by definition are gathered (float64) in batches of at most this many values."""
DIRECT_POSITIONS = 16
"""Boxes of at most this many positions are ranked by numpy products, if the template has at least
:data:`DIRECT_MIN_VALUES` values; OpenCV's float32 transforms cost about the same for any small box, ``40 + 0.016 n``
µs for an ``n``-pixel template, the products ``55 + 0.006 n`` plus ``0.3 n`` ns a position (2-core Xeon,
2026-12-01): break-even at about 16 positions for 64 px templates, 30 for 128-256 px, none under 48 px."""
DIRECT_MIN_VALUES = 2048
"""Templates with fewer values (pixels times channels) rank every box with OpenCV."""
_PARALLEL_OUTPUTS = 1 << 16  # ranking maps at least this large are scored in bands, one per thread

_CV_METHODS = {"ncc": cv2.TM_CCOEFF_NORMED, "ccorr_normed": cv2.TM_CCORR_NORMED, "ssd_normed": cv2.TM_SQDIFF_NORMED}


def ranking_scores(img, tpl, method, sign, y0, y1, x0, x1):
    """Goodness (``sign`` times the score) of positions y0..y1 x x0..x1 (inclusive), for ranking only:
    ``cv2.matchTemplate`` in float32, or :func:`direct_scores` for few positions.

    For ncc both sides are centred first (the score does not change; float32 keeps more digits).
    """
    th, tw = tpl.shape[:2]
    if (y1 - y0 + 1) * (x1 - x0 + 1) <= DIRECT_POSITIONS and tpl.size >= DIRECT_MIN_VALUES:
        return sign * direct_scores(img[y0 : y1 + th, x0 : x1 + tw], tpl, method)
    crop = np.ascontiguousarray(img[y0 : y1 + th, x0 : x1 + tw], dtype=np.float32)
    t = np.ascontiguousarray(tpl, dtype=np.float32)
    if crop.ndim == 3 and crop.shape[2] == 1:
        crop, t = crop[:, :, 0], t[:, :, 0]
    if method == "ncc":
        axes = (0, 1)
        crop = crop - crop.mean(axis=axes, dtype=np.float64).astype(np.float32)
        t = t - t.mean(axis=axes, dtype=np.float64).astype(np.float32)
    g = match_in_bands(crop, t, _CV_METHODS[method]).astype(np.float64)
    np.nan_to_num(g, copy=False, nan=0.0 if method != "ssd_normed" else 1.0)
    return sign * g


def direct_scores(crop, tpl, method):
    """Every position's score in ``crop``, by products with the template in float64 (few positions:
    cheaper than OpenCV's transforms, whose cost follows the template's size)."""
    h, w = tpl.shape[:2]
    c = crop.astype(np.float64)
    c = c[:, :, None] if c.ndim == 2 else c
    t = channels_first("template", tpl)  # (C, h, w)
    if method == "ncc":
        t = t - t.mean(axis=(1, 2), keepdims=True)  # then <W, t> = <W - mean, t>
    view = sliding_window_view(c, (h, w), axis=(0, 1))  # (ny, nx, C, h, w), no copy
    num = np.einsum("yxchw,chw->yx", view, t)
    Z1, Z2 = (cv2.integral(a, sdepth=cv2.CV_64F) for a in (c, c * c))
    Z1, Z2 = (Z[:, :, None] if Z.ndim == 2 else Z for Z in (Z1, Z2))
    s1, s2 = ((Z[h:, w:] - Z[:-h, w:] - Z[h:, :-w] + Z[:-h, :-w]) for Z in (Z1, Z2))
    wn2 = (np.maximum(s2 - s1**2 / (h * w), 0.0) if method == "ncc" else s2).sum(axis=2)
    tn2 = float((t**2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "ssd_normed":
            g = np.minimum((tn2 + wn2 - 2 * num) / np.sqrt(tn2 * wn2), 1.0)
            return np.where(np.isfinite(g), g, 1.0)
        return np.where(wn2 * tn2 > 0, num / np.sqrt(tn2 * wn2), 0.0)


def match_in_bands(image, templ, cv_method):
    """``cv2.matchTemplate``, split into horizontal bands on the engine's threads when the map is large
    (OpenCV's own function uses one core)."""
    rows = image.shape[0] - templ.shape[0] + 1
    cores = num_threads()  # matcher.set_num_threads sets it
    if cores < 2 or rows * (image.shape[1] - templ.shape[1] + 1) < _PARALLEL_OUTPUTS or rows < 2 * templ.shape[0]:
        return cv2.matchTemplate(image, templ, cv_method)
    bounds = [round(rows * k / cores) for k in range(cores + 1)]
    out = np.empty((rows, image.shape[1] - templ.shape[1] + 1), np.float32)

    def band(k):
        r0, r1 = bounds[k], bounds[k + 1]
        out[r0:r1] = cv2.matchTemplate(image[r0 : r1 + templ.shape[0] - 1], templ, cv_method)

    run_parallel(band, cores)
    return out


class ExactScores:
    """Full-resolution scores by definition (:func:`matcher.scores.reference.window_scores`), around positions."""

    def __init__(self, arr, tpl, method, sign):
        self.arr, self.method, self.sign = arr, method, sign
        self.h, self.w = tpl.shape[:2]
        self.tpl = channels_first("template", tpl)
        self.my, self.mx = arr.shape[0] - self.h, arr.shape[1] - self.w
        img = arr[:, :, None] if arr.ndim == 2 else arr
        self.view = sliding_window_view(img, (self.h, self.w), axis=(0, 1))  # (my + 1, mx + 1, C, h, w), no copy

    def goodness(self, ys, xs):
        """Goodness (``sign`` times the score, by definition) of the windows at (ys, xs), in batches of at
        most :data:`EXACT_VALUES` window values."""
        out = np.empty(ys.size)
        batch = max(1, EXACT_VALUES // self.tpl.size)
        for start in range(0, ys.size, batch):
            part = slice(start, start + batch)
            windows = np.ascontiguousarray(self.view[ys[part], xs[part]], dtype=np.float64)  # (K, C, h, w)
            out[part] = self.sign * window_scores(windows, self.tpl, None, self.method)
        return out

    def peaks(self, ys, xs, ranks=None, margin=0.0):
        """Climb the exact scores from each (ys[i], xs[i]) to a local peak, all at once: ``(ys, xs, goodness)``.

        Each step scores the 3 x 3 neighbourhoods (clipped to the map) of the
        starts still climbing in one batch and moves each to its best
        neighbour (the first in row-major order) if that beats it, at most
        :data:`MAX_CLIMB` steps; a window is scored once per call.

        ``ranks``, ``(n, 9)``: the ranking goodness of each start's 3 x 3
        neighbourhood, row-major (NaN: not ranked). If every ranking score is
        within ``margin / 2`` of the exact one, a neighbour ranked more than
        ``margin`` below its start cannot beat it exactly (``exact(n) <=
        rank(n) + margin / 2 < rank(c) - margin / 2 <= exact(c)``), nor a
        neighbour that does; the first step leaves such neighbours unscored.
        """
        ys, xs = np.array(ys, np.intp), np.array(xs, np.intp)
        below = None if ranks is None else np.asarray(ranks) < np.asarray(ranks)[:, 4:5] - margin  # NaN: False
        value = np.empty(ys.size)
        climbing = np.arange(ys.size)
        width = self.mx + 1
        scored_keys, scored = np.zeros(0, np.intp), np.zeros(0)  # flat positions scored so far (sorted), goodness
        for _ in range(MAX_CLIMB):
            if climbing.size == 0:
                break
            deadline.check()  # between steps
            ny = np.clip(ys[climbing, None] + NEIGHBOURS_Y, 0, self.my)  # (n, 9), row-major: the centre is column 4
            nx = np.clip(xs[climbing, None] + NEIGHBOURS_X, 0, self.mx)
            keys = ny * width + nx
            skip = np.zeros(keys.shape, bool) if below is None else below
            below = None  # the first step only: the starts' neighbourhoods were ranked
            fresh = np.setdiff1d(keys[~skip], scored_keys)
            if fresh.size:
                scored_keys = np.concatenate([scored_keys, fresh])
                scored = np.concatenate([scored, self.goodness(fresh // width, fresh % width)])
                order = np.argsort(scored_keys, kind="stable")
                scored_keys, scored = scored_keys[order], scored[order]
            g = np.where(skip, -np.inf, scored[np.minimum(np.searchsorted(scored_keys, keys), scored_keys.size - 1)])
            rows, best = np.arange(keys.shape[0]), np.argmax(g, axis=1)
            moves = g[rows, best] > g[:, 4]
            value[climbing] = np.where(moves, g[rows, best], g[:, 4])
            ys[climbing] = np.where(moves, ny[rows, best], ys[climbing])
            xs[climbing] = np.where(moves, nx[rows, best], xs[climbing])
            climbing = climbing[moves]
        return ys, xs, value
