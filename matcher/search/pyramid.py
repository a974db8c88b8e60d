"""Coarse-to-fine search with a proof: :func:`matcher.find` with ``pyramid=True``.

The exhaustive search scores every window at full resolution. This search
first bounds, for every cell of ``b x b`` positions (``b = 2**levels``), how
well any window of the cell can score (:func:`matcher.search.bounds.cell_bounds`:
``O(H W)`` block sums and one correlation at ``1/b`` of the resolution), then
scores at full resolution only the cells whose bound reaches the answer, best
bound first. A cell is skipped only when its bound proves that none of its
windows can be reported, so the result is the exhaustive search's.

Rules (the constants below):

- **Blocks.** ``b = 2**L``: ``L`` the largest number of halvings (at most
  :data:`MAX_LEVELS`) that leaves the template at least :data:`BOUND_BLOCKS`
  blocks a side, but at least 2 (blocks of 4 px) when that leaves
  :data:`MIN_COARSE_SIZE` (:func:`pyramid_levels`): finer blocks give tighter
  bounds, coarser ones cheaper. ``L = 0`` (a template side under 31 px) means
  the exhaustive search.
- **Cells.** While the bar is unknown, the cells that may reach it are taken
  in rounds, the best guesses first (the coarse score at the cell's corner;
  ``max(8, 4 * max_matches)`` cells, then four times as many each round); once
  it is known, every cell whose bound reaches it. A round's cells are grouped
  into rectangles (8-connected) and ranked there (products in numpy for small
  rectangles, ``cv2.matchTemplate`` in float32, centred for ``ncc``, for large
  ones); every local peak within :data:`SLACK` of the bar is climbed to a
  local peak of the exact scores (by definition, float64), best first. The bar
  is the ``max_matches``-th exact score after suppression, or the threshold,
  whichever is higher (the threshold alone with ``max_matches=None``). The
  search stops when every cell whose bound reaches the bar is scored and every
  candidate within :data:`SLACK` of it climbed.
- **Why it is the exhaustive answer.** Every window scoring at least the bar
  lies in a scored cell, so every local peak of the full score map at or
  above the bar was climbed to (its ranking score is within :data:`SLACK` of
  its exact one); the greedy suppression over the peaks above the
  ``max_matches``-th kept score only ever looks at those. Candidates nearly
  tied are ranked by their exact scores (the exhaustive search ranks by its
  map, within its error of them: such near-ties may come out in another order).
- **Fallback** to the exhaustive search (``fell_back=True``, ``reason`` says
  which): no coarse level (``levels=0``); a 1-D image; a mask (no bound yet);
  ``max_matches=None`` without a threshold (every peak is wanted); a constant
  template; or more cells than :data:`MAX_SCORED` of them (at least
  :data:`MIN_SCORED`) would have to be scored (most of the texture's energy
  is in detail finer than ``b``, where the bound assumes the worst: scattered
  cells would cost more than the exhaustive search).

Only the normalised methods (:data:`matcher.methods.NORMALIZED_METHODS`) are
supported: the other scores grow with the template's area and the image's
energy. Others raise :class:`matcher.MatcherError`.
"""

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from .. import deadline
from ..errors import MatcherError
from ..methods import NORMALIZED_METHODS
from ..options import FindOptions
from ..scores.engine import num_threads, thread_pool
from ..scores.inputs import as_array, channels_first
from ..scores.reference import window_scores
from .exhaustive import search_exhaustive
from .job import make_job
from .levels import Levels, level_sizes
from .peaks import local_peaks, suppress
from .report import matches_at

__all__ = ["find_pyramid", "search_pyramid", "PyramidInfo", "pyramid_levels", "pyr_down", "MIN_COARSE_SIZE",
           "MAX_LEVELS", "MAX_SCORED", "MIN_SCORED", "MAX_SPLIT", "MIN_SPLIT", "TOP_BLOCKS", "FINE_4", "SLACK"]

MIN_COARSE_SIZE = 16
"""Smallest template side, in blocks, a level may leave."""
TOP_BLOCKS = 12
"""The coarsest cells' blocks must leave the template at least this many blocks a side."""
FINE_4 = 64
"""Templates at least this large a side end on cells of 4 x 4 positions, smaller ones on 2 x 2."""
MAX_LEVELS = 4
"""At most this many halvings (blocks of at most 16 x 16)."""
MAX_SCORED = 0.01
"""Fall back to the exhaustive search when the bounds leave more than this fraction of the cells to score
(or :data:`MIN_SCORED` cells, if more): scoring scattered cells costs more per window than the exhaustive search."""
MIN_SCORED = 1024
"""Cells the search may always score (small images: a few matches' neighbourhoods are a large fraction)."""
MAX_SPLIT = 0.05
"""Fall back when more than this fraction of a coarser level's cells (or :data:`MIN_SPLIT`, if more) would have to
be split: their halves would cost more to bound than the exhaustive search."""
MIN_SPLIT = 1024
"""Cells of a coarser level the search may always split."""
SLACK = 1e-3
"""Local peaks of the float32 ranking maps within this of the bar are climbed and scored exactly."""
_MERGE = 0  # cells within this many of each other are scored in one rectangle (fewer, larger calls)
_MAX_CLIMB = 8  # full-resolution re-centring steps per candidate
_DIRECT_VALUES = 1 << 21  # boxes of at most this many window values are ranked by numpy products
_PARALLEL_OUTPUTS = 1 << 16  # ranking maps at least this large are scored in bands, one per thread


@dataclass(frozen=True)
class PyramidInfo:
    """How :func:`find_pyramid` found its matches.

    ``levels``: halvings used (blocks of ``2**levels``; 0: exhaustive only);
    ``candidates``: cells scored at full resolution; ``fell_back``: the
    exhaustive search produced the result; ``reason``: why it fell back ("" when
    it did not); ``cells``: cells in all.
    """

    levels: int
    candidates: int
    fell_back: bool
    reason: str = ""
    cells: int = 0


def pyramid_levels(height, width, min_size=MIN_COARSE_SIZE, max_levels=MAX_LEVELS):
    """Halvings (``cv2.pyrDown``: ``n -> (n + 1) // 2``) keeping both sides ``>= min_size``.

    >>> pyramid_levels(64, 64), pyramid_levels(30, 200), pyramid_levels(128, 100)
    (2, 0, 2)
    """
    levels = 0
    while levels < max_levels:
        height, width = (height + 1) // 2, (width + 1) // 2
        if height < min_size or width < min_size:
            break
        levels += 1
    return levels


def find_pyramid(image, template, method="ncc", *, threshold=None, max_matches=1, max_overlap=0.3,
                 region=None, subpixel=False, mask=None, precision="fast"):
    """:func:`matcher.find` by the bounded coarse-to-fine search: ``(matches, info)``.

    Arguments and the list of matches are as in :func:`matcher.find` (the
    exhaustive search's matches, see the module docstring); ``info`` is a
    :class:`PyramidInfo` saying which path was taken.

    Raises
    ------
    MatcherError
        As :func:`matcher.find`; a method that is not normalised.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = cv2.GaussianBlur(rng.random((200, 240)), (0, 0), 2.0)
    >>> found, info = find_pyramid(image, image[50:114, 70:134].copy())
    >>> (found[0].x, found[0].y, round(found[0].score, 6)), info.fell_back
    ((70, 50, 1.0), False)
    """
    options = FindOptions.check(method=method, threshold=threshold, max_matches=max_matches,
                                max_overlap=max_overlap, region=region, subpixel=subpixel, precision=precision)
    job = make_job(image, [template], [mask], [None], options)
    found, info = search_pyramid(job)
    return job.to_image(found), info


def search_pyramid(job):
    """The bounded coarse-to-fine search of ``job`` (one template): ``(matches, info)``, in the searched image's coordinates.

    Bounds every cell (:func:`matcher.search.bounds.cell_bounds`), scores cells
    best bound first until none left can reach the bar (:class:`_Cells`), then
    suppresses and reports. Any step may give up, with its reason: then the
    exhaustive search answers.
    """
    method = job.method
    if not method.normalised:
        raise MatcherError(f"pyramid=True needs a normalised method {NORMALIZED_METHODS}, got {method.name!r}",
                           param="method")
    arr, tpl = as_array("image", job.image), as_array("template", job.templates[0])
    reason, sizes = _unsupported(job, arr, tpl)
    levels = int(np.log2(sizes[0])) if sizes else 0
    if reason:
        return _exhaustive(job, levels, reason)
    nested = Levels(arr, tpl, method.name, sizes)
    if not nested.norm2.sum() > 0:
        return _exhaustive(job, levels, "constant template: every window scores the same")
    cells = _Cells(job, arr, tpl, nested)
    outcome = cells.search()
    if isinstance(outcome, str):
        return _exhaustive(job, levels, outcome, cells)
    return outcome, PyramidInfo(levels, cells.scored_count, False, "", cells.scored.size)


def _unsupported(job, arr, tpl):
    """Why the bounded search cannot serve ``job`` ("" if it can), and the levels it would use."""
    if arr.ndim == 1 or tpl.ndim == 1:
        return "1-D image or template", 0
    size = job.sizes[0]
    if pyramid_levels(*size) == 0:
        return (f"template {size[1]}x{size[0]} too small: a coarse level would be under "
                f"{MIN_COARSE_SIZE} px"), []
    if tpl.shape[0] > arr.shape[0] or tpl.shape[1] > arr.shape[1] or arr.ndim != tpl.ndim:
        return "shapes the engine rejects", []  # the engine raises the documented error
    finest = 2 if min(size) < FINE_4 else 4
    sizes = level_sizes(*size, top_blocks=TOP_BLOCKS, finest=finest, largest=2**MAX_LEVELS)
    if job.masks[0] is not None:
        return "a mask: no bound for masked scores", sizes
    if job.max_matches is None and job.floor is None:
        return "max_matches=None without a threshold asks for every peak", sizes
    return "", sizes


def _exhaustive(job, levels, reason, cells=None):
    scored = 0 if cells is None else cells.scored_count
    total = 0 if cells is None else cells.scored.size
    return search_exhaustive(job), PyramidInfo(levels, scored, True, reason, total)


class _Cells:
    """The cells of one search: their bounds, which are scored, the candidates found and their exact scores.

    Scores are goodness (higher is better). ``pool_*``: local peaks of the
    ranking maps (float32); ``exact``: climbed local peaks of the exact scores.
    """

    def __init__(self, job, arr, tpl, levels):
        self.job, self.arr, self.tpl, self.levels = job, arr, tpl, levels
        self.b = levels.sizes[-1]
        self.scored = np.zeros(levels.shapes[-1], bool)
        self.scored_count = 0
        self.sign = -1.0 if job.method.lower_is_better else 1.0
        self.map_shape = (arr.shape[0] - tpl.shape[0] + 1, arr.shape[1] - tpl.shape[1] + 1)
        self.pool_y, self.pool_x, self.pool_g = [np.zeros(0, np.intp)] * 2 + [np.zeros(0)]
        self.pool_done = np.zeros(0, bool)
        self.exact = {}
        self.exact_scores = _ExactScores(arr, tpl, job.method.name, self.sign)
        self.known = job.max_matches is None  # the bar is final but for rising: max_matches matches were kept

    def search(self):
        """Split and score cells until none left can reach the bar: the matches, or a reason to fall back.

        Each round climbs the most promising candidates, or else, level by
        level, bounds the halves of the cells that may reach the bar and scores
        the finest such cells (while ``max_matches`` are wanted, the best
        guesses first, a few more each round: the bar rises early; with
        ``max_matches=None``, whose bar is the threshold, all of them).
        """
        k, levels = self.job.max_matches, self.levels
        chunk = max(8, 4 * (k or 1))
        last = len(levels.sizes) - 1
        limits = [max(MAX_SPLIT * levels.bounds[i].size, MIN_SPLIT) for i in range(last)]
        limits.append(max(MAX_SCORED * self.scored.size, MIN_SCORED))
        done = [0] * (last + 1)  # cells split, per level; cells scored on the finest
        while True:
            deadline.check()  # between rounds of cells (matcher.deadline)
            bar = self.bar()
            if self.climb(bar):
                continue
            progress = False
            for level in range(last + 1):
                if level < last:
                    todo = levels.open(level, bar)
                else:
                    todo = np.flatnonzero(~self.scored & levels.live[last] & (levels.bounds[last] >= bar - 1e-9))
                if todo.size == 0:
                    continue
                if done[level] + todo.size <= limits[level] and (self.known or todo.size <= chunk):
                    pass  # all of them
                elif not self.known and done[level] + chunk <= limits[level]:  # the best guesses: a bar to start
                    todo = todo[np.argpartition(-levels.estimate[level].flat[todo], chunk - 1)[:chunk]]
                elif level < last:  # too many to split: bound the next level whole, as a flat search would
                    levels.bound_all(level + 1)
                    progress = True
                    continue
                else:
                    size = levels.sizes[level]
                    return (f"the bounds left {todo.size} of {levels.bounds[level].size} cells of {size}x{size} "
                            f"positions that may reach {self.sign * bar:.4f}, more than {limits[level]:.0f}: "
                            f"detail finer than {size} px dominates")
                done[level] += todo.size
                progress = True
                if level < last:
                    levels.refine(level, todo)
                else:
                    self.score(todo)
            if not progress:
                return self.report()
            chunk *= 4

    def score(self, cells):
        """Rank every position of ``cells`` (flat indices) in float32, grouped in rectangles: their local peaks join the pool."""
        mask = np.zeros(self.scored.shape, bool)
        mask.flat[cells] = True
        self.scored.flat[cells] = True
        self.scored_count += len(cells)
        near = cv2.dilate(mask.view(np.uint8), np.ones((2 * _MERGE + 1,) * 2, np.uint8)) if _MERGE else mask
        labels, _ = ndimage.label(near, structure=np.ones((3, 3), bool))
        b, (ny, nx) = self.b, self.map_shape
        floor = None if self.job.floor is None else self.job.floor - SLACK
        found = [(self.pool_y, self.pool_x, self.pool_g)]
        for sy, sx in ndimage.find_objects(labels):
            y0, y1 = sy.start * b, min(sy.stop * b, ny) - 1
            x0, x1 = sx.start * b, min(sx.stop * b, nx) - 1
            g = _ranking(self.arr, self.tpl, self.job.method.name, self.sign, y0, y1, x0, x1)
            ys, xs, vals = local_peaks(g, floor)
            found.append((ys + y0, xs + x0, vals))
        self.pool_y, self.pool_x, self.pool_g = (np.concatenate(a) for a in zip(*found))
        self.pool_done = np.concatenate([self.pool_done, np.zeros(len(self.pool_g) - len(self.pool_done), bool)])

    def climb(self, bar):
        """Climb the pool's candidates that may reach ``bar`` (with ``max_matches``, the best ``2 max_matches``): whether any was."""
        todo = np.flatnonzero(~self.pool_done & (self.pool_g >= bar - SLACK))
        if self.job.max_matches is not None:  # the best few first: the bar rises
            todo = todo[np.argsort(-self.pool_g[todo], kind="stable")[: 2 * self.job.max_matches]]
        for i in todo.tolist():
            deadline.check()  # between candidates
            py, px, local, cy, cx = self.exact_scores.peak(int(self.pool_y[i]), int(self.pool_x[i]))
            self.exact[py, px] = float(local[cy, cx])
        self.pool_done[todo] = True
        return todo.size > 0

    def ranked(self):
        """Exact local peaks reaching the threshold, best first, and those suppression keeps (indices)."""
        pos = sorted(self.exact, key=lambda p: (-self.exact[p], p))
        if self.job.floor is not None:
            pos = [p for p in pos if self.exact[p] >= self.job.floor]
        ys = np.array([p[0] for p in pos], np.intp)
        xs = np.array([p[1] for p in pos], np.intp)
        if not pos:
            return ys, xs, np.zeros(0, np.intp)
        kept = suppress(ys, xs, np.zeros(len(pos), np.intp), [self.tpl.shape[:2]], [self.map_shape],
                        self.job.max_overlap, self.job.max_matches)
        return ys, xs, kept

    def bar(self):
        """The score a window must reach to be reported: the threshold, or the ``max_matches``-th kept score."""
        floor = -np.inf if self.job.floor is None else self.job.floor
        k = self.job.max_matches
        self.known = k is None
        if k is None:
            return floor
        ys, xs, kept = self.ranked()
        self.known = len(kept) >= k
        if not self.known:
            return floor
        y, x = int(ys[kept[k - 1]]), int(xs[kept[k - 1]])
        return max(floor, self.exact[y, x])

    def report(self):
        """The matches, scored by definition (:func:`matcher.search.report.matches_at`)."""
        ys, xs, kept = self.ranked()
        found = matches_at(self.job, ys[kept], xs[kept], np.zeros(len(kept), np.intp))
        if self.job.floor is not None:  # the reported scores decide, to the last bit
            found = [m for m in found if self.job.method.goodness(m.score) >= self.job.floor]
        return found


def _float32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def pyr_down(a):
    """``cv2.pyrDown`` (each side halved, rounding up), keeping a trailing channel axis of length 1.

    >>> pyr_down(np.zeros((9, 8, 1), np.float32)).shape
    (5, 4, 1)
    """
    out = cv2.pyrDown(a)
    return out[:, :, None] if a.ndim == 3 and out.ndim == 2 else out


_CV_METHODS = {"ncc": cv2.TM_CCOEFF_NORMED, "ccorr_normed": cv2.TM_CCORR_NORMED, "ssd_normed": cv2.TM_SQDIFF_NORMED}


def _ranking(img, tpl, method, sign, y0, y1, x0, x1):
    """Goodness of positions y0..y1 x x0..x1 (inclusive) by cv2.matchTemplate (float32): for ranking only.

    For ncc both sides are centred first (the score does not change; float32 keeps more digits).
    """
    th, tw = tpl.shape[:2]
    if (y1 - y0 + 1) * (x1 - x0 + 1) * tpl.size <= _DIRECT_VALUES:
        return sign * _direct_scores(img[y0 : y1 + th, x0 : x1 + tw], tpl, method)
    crop = _float32(img[y0 : y1 + th, x0 : x1 + tw])
    t = _float32(tpl)
    if crop.ndim == 3 and crop.shape[2] == 1:
        crop, t = crop[:, :, 0], t[:, :, 0]
    if method == "ncc":
        axes = (0, 1)
        crop = crop - crop.mean(axis=axes, dtype=np.float64).astype(np.float32)
        t = t - t.mean(axis=axes, dtype=np.float64).astype(np.float32)
    g = _match_in_bands(crop, t, _CV_METHODS[method]).astype(np.float64)
    np.nan_to_num(g, copy=False, nan=0.0 if method != "ssd_normed" else 1.0)
    return sign * g


def _direct_scores(crop, tpl, method):
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


def _match_in_bands(image, templ, cv_method):
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


class _ExactScores:
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
        for _ in range(_MAX_CLIMB):
            g, cy, cx = self.around(y, x)
            iy, ix = np.unravel_index(int(np.argmax(g)), g.shape)
            if g[iy, ix] <= g[cy, cx]:
                break
            y, x = y + int(iy) - cy, x + int(ix) - cx
        return y, x, g, cy, cx
