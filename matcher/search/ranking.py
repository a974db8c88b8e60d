"""Full-resolution scores for the pyramid search (:mod:`matcher.search.pyramid`): ranking maps and exact peaks.

The cells the bounds cannot rule out are ranked in float32 (or by numpy
products in float64 for few positions), and each promising local peak is
climbed on the exact scores, computed by definition
(:func:`matcher.scores.reference.window_scores`).
"""

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..scores.engine import num_threads, thread_pool
from ..scores.inputs import channels_first
from ..scores.reference import window_scores

__all__ = ["ranking_scores", "direct_scores", "match_in_bands", "ExactScores", "DIRECT_VALUES", "MAX_CLIMB"]

MAX_CLIMB = 8
"""Full-resolution re-centring steps per candidate."""
DIRECT_VALUES = 1 << 21
"""Boxes of at most this many window values are ranked by numpy products."""
_PARALLEL_OUTPUTS = 1 << 16  # ranking maps at least this large are scored in bands, one per thread

_CV_METHODS = {"ncc": cv2.TM_CCOEFF_NORMED, "ccorr_normed": cv2.TM_CCORR_NORMED, "ssd_normed": cv2.TM_SQDIFF_NORMED}


def ranking_scores(img, tpl, method, sign, y0, y1, x0, x1):
    """Goodness (``sign`` times the score) of positions y0..y1 x x0..x1 (inclusive), for ranking only:
    ``cv2.matchTemplate`` in float32, or :func:`direct_scores` for few positions.

    For ncc both sides are centred first (the score does not change; float32 keeps more digits).
    """
    th, tw = tpl.shape[:2]
    if (y1 - y0 + 1) * (x1 - x0 + 1) * tpl.size <= DIRECT_VALUES:
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

    list(thread_pool().map(band, range(cores)))
    return out


class ExactScores:
    """Full-resolution scores by definition (:func:`matcher.scores.reference.window_scores`), around a position."""

    def __init__(self, arr, tpl, method, sign):
        self.arr, self.method, self.sign = arr, method, sign
        self.h, self.w = tpl.shape[:2]
        self.tpl = channels_first("template", tpl)
        self.my, self.mx = arr.shape[0] - self.h, arr.shape[1] - self.w

    def around(self, y, x):
        """Goodness of the positions within 1 of (y, x), clipped to the map; and (y, x) in that array."""
        y0, y1, x0, x1 = max(y - 1, 0), min(y + 1, self.my), max(x - 1, 0), min(x + 1, self.mx)
        crop = self.arr[y0 : y1 + self.h, x0 : x1 + self.w]
        crop = crop[:, :, None] if crop.ndim == 2 else crop
        view = sliding_window_view(crop.astype(np.float64), (self.h, self.w), axis=(0, 1))  # (ny, nx, C, h, w)
        ny, nx = view.shape[:2]
        windows = np.ascontiguousarray(view.reshape((ny * nx,) + view.shape[2:]))
        g = self.sign * window_scores(windows, self.tpl, None, self.method).reshape(ny, nx)
        return g, y - y0, x - x0

    def peak(self, y, x):
        """Climb the exact scores from (y, x) to a local peak: (y, x, its 3 x 3 goodness, y and x in it)."""
        for _ in range(MAX_CLIMB):
            g, cy, cx = self.around(y, x)
            iy, ix = np.unravel_index(int(np.argmax(g)), g.shape)
            if g[iy, ix] <= g[cy, cx]:
                break
            y, x = y + int(iy) - cy, x + int(ix) - cx
        return y, x, g, cy, cx
