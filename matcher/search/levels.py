"""Bounds on nested cells: ``B x B`` cells of positions, re-bounded on halves down to ``s x s``.

The pyramid search (:mod:`matcher.search.pyramid`) first bounds every cell of
``B x B`` positions (:func:`matcher.search.bounds.stats_bounds`), then only
inside the cells whose bound reaches the bar bounds the four cells of half the
size they hold, and so on down to the finest size, whose surviving cells are
scored at full resolution (successive elimination across levels). Smaller
blocks leave less detail to Cauchy-Schwarz and a tighter energy core, so the
bounds tighten as the cells shrink; a cell is only ever bounded if every cell
holding it may reach the bar, and it is skipped only by its own bound, so no
window that reaches the bar is lost.

The block statistics are computed once, for the finest blocks
(:func:`matcher.search.block_stats.block_stats`), and summed two by two for the
coarser ones (:func:`matcher.search.block_stats.pool_stats`): every level's grid is
nested in the next coarser one, and a cell's blocks start at its own block.
"""

import cv2
import numpy as np
from scipy import ndimage

from ..scores.engine import num_threads, run_parallel
from .block_stats import block_stats, pool_stats
from .bounds import BoundParts, bound_from_parts, bound_parts, template_terms

__all__ = ["Levels", "level_sizes", "pruning_levels", "detail_share", "window_energy_min", "clusters", "GLOBAL_BLOCK",
           "PARALLEL_CELLS", "COARSE_DETAIL"]

_MERGE = 4  # cells to bound within 2 _MERGE of each other are bounded in one box (fewer calls)
GLOBAL_BLOCK = 8
"""Levels with blocks at least this large get their block statistics for the whole image at once."""
COARSE_DETAIL = 0.7
"""A coarser level is bounded first only if its blocks leave less than this share of the template's norm in
detail (:func:`detail_share`) for each unit of the bar: the bound adds about that share wherever the image's own
detail is as large as its energy, so a larger one prunes little (the bench's board, 0.66 at 8 px for a bar of 0.8:
34% of the 8 px cells left, the 4 px level bounded whole anyway; its other 8 px levels 0.23-0.56 for bars near 1:
0.1-3% left)."""
PARALLEL_CELLS = 1 << 15
"""Rectangles of at least twice this many cells are bounded in bands of rows, one per engine thread
(:func:`matcher.scores.engine.num_threads`)."""


def level_sizes(height, width, top_blocks=12, finest=4, largest=16):
    """Cell sizes from the coarsest to the finest: powers of two from ``B`` down to ``finest``.

    ``B`` is the largest power of two up to ``largest`` that leaves the template
    at least ``top_blocks`` blocks a side, but at least ``2 finest`` (two levels).

    Examples
    --------
    >>> level_sizes(128, 128), level_sizes(64, 120), level_sizes(300, 256), level_sizes(40, 40, finest=2)
    ([8, 4], [8, 4], [16, 8, 4], [4, 2])
    """
    top = 2 * finest
    while top * 2 <= largest and min(height, width) // (top * 2) >= top_blocks:
        top *= 2
    sizes = [top]
    while sizes[-1] > finest:
        sizes.append(sizes[-1] // 2)
    return sizes


def detail_share(terms):
    """The share of the template's norm in detail finer than the blocks, ``||eta|| / ||T||`` (0 to 1), from its
    :class:`matcher.search.bounds.TemplateTerms` (the norms over the channels).

    >>> ramp = np.add.outer(np.arange(64.0), np.arange(64.0))  # smooth: its detail shrinks with the blocks
    >>> board = np.indices((64, 64)).sum(axis=0) % 2 * 255.0  # all detail at every block size
    >>> [round(detail_share(template_terms(t, b, True)), 2) for t in (ramp, board) for b in (8, 4)]
    [0.48, 0.35, 1.0, 1.0]
    """
    return float(np.sqrt((terms.eta**2).sum() / terms.norm2.sum())) if terms.norm2.sum() > 0 else 0.0


def pruning_levels(template, sizes, centred, bar):
    """The cell sizes worth bounding (``sizes`` without the coarsest levels whose :func:`detail_share` is at
    least :data:`COARSE_DETAIL` times ``bar``, the finest always kept) and their template terms.

    ``bar`` is the least score (``ncc`` or ``ccorr_normed``) a window must reach: the threshold, or 1 without one.

    Examples
    --------
    >>> ramp = np.add.outer(np.arange(64.0), np.arange(64.0))
    >>> board = np.indices((64, 64)).sum(axis=0) % 2 * 255.0
    >>> [pruning_levels(t, [8, 4], True, bar)[0] for t, bar in ((board, 1.0), (ramp, 1.0), (ramp, 0.5))]
    [[4], [8, 4], [4]]
    """
    terms = [template_terms(template, s, centred) for s in sizes]
    drop = 0
    while drop < len(sizes) - 1 and detail_share(terms[drop]) >= COARSE_DETAIL * bar:
        drop += 1
    return list(sizes[drop:]), terms[drop:]


class Levels:
    """The nested cells of one search: per level, the bounds computed so far and which cells were split.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
    template : ndarray, shape (h, w) or (h, w, C)
    method : str
        One of :data:`matcher.search.bounds.BOUNDED_METHODS`.
    sizes : list of int
        Cell sizes, coarsest first, each half the previous (:func:`level_sizes`).
    terms : list of TemplateTerms, optional
        The template's terms for each size (:func:`matcher.search.bounds.template_terms`), if already computed.

    Attributes
    ----------
    bounds, estimate : list of ndarray of float64
        Per level, ``((H - h) // s + 1, (W - w) // s + 1)``: the bound of each
        cell (NaN until it is computed) and the guess of its best score
        (:func:`matcher.search.bounds.stats_bounds`).
    split : list of ndarray of bool
        Per level but the finest: the cells whose halves were bounded.
    norm2 : ndarray
        The template's energy per channel (0: a constant template).

    Notes
    -----
    The block statistics of the levels of at least :data:`GLOBAL_BLOCK` px are
    computed once for the whole image (the finest of them by
    :func:`matcher.search.block_stats.block_stats`, the others summed from it); finer
    levels' only for the boxes they bound. The finest level's cells also get
    the least energy of their windows, exactly (:func:`window_energy_min`).
    """

    def __init__(self, image, template, method, sizes, terms=None):
        self.centred = method == "ncc"
        self.image, self.method, self.sizes = image, method, list(sizes)
        self.tshape = template.shape[:2]
        self.terms = list(terms) if terms is not None else [template_terms(template, s, self.centred) for s in sizes]
        self.norm2 = self.terms[0].norm2
        H, W = image.shape[:2]
        h, w = self.tshape
        self.shapes = [((H - h) // s + 1, (W - w) // s + 1) for s in self.sizes]
        top = self.sizes[0]
        pooled = [s for s in self.sizes if s >= GLOBAL_BLOCK] or [top]
        base = pooled[-1]
        gy, gx = (-(-H // top) + 3) * (top // base), (-(-W // top) + 3) * (top // base)  # every level's E_q fits
        stats = [block_stats(image, base, gy, gx, self.centred, parallel=True)]  # from the caller's thread
        for _ in pooled[1:]:
            stats.append(pool_stats(*stats[-1]))
        self.stats = stats[::-1] + [None] * (len(self.sizes) - len(pooled))
        self.bounds = [np.full(shape, np.nan) for shape in self.shapes]
        self.estimate = [np.zeros(shape) for shape in self.shapes]
        self.split = [np.zeros(shape, bool) for shape in self.shapes[:-1]]
        self.live = [np.zeros(shape, bool) for shape in self.shapes]  # every cell holding it was split
        self.live[0][...] = True
        self.tight = np.zeros(self.shapes[-1], bool)  # finest cells bounded with their windows' least energy
        self.parts = [np.full(self.shapes[-1], np.nan) for _ in range(3)]  # finest: numerator, core2, ext2
        b, e = self._rectangle(0, 0, self.shapes[0][0], 0, self.shapes[0][1], energy=False)
        self.bounds[0][...], self.estimate[0][...] = b, e

    def open(self, level, bar):
        """Flat indices of the cells of ``level`` whose bound reaches ``bar``, every cell holding them split, not split yet."""
        reach = (self.bounds[level] >= bar - 1e-9) & self.live[level]  # NaN (never bounded) does not reach
        if level < len(self.split):
            reach &= ~self.split[level]
        return np.flatnonzero(reach)

    def refine(self, level, cells):
        """Bound the halves of ``cells`` (flat indices at ``level``) on the next level, one box per tile.

        A box's other cells keep their bounds too (they count once every cell holding them is split).
        """
        mask = np.zeros(self.shapes[level], bool)
        mask.flat[cells] = True
        self.split[level] |= mask
        ny, nx = self.shapes[level + 1]
        child = np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1)[:ny, :nx]
        self.live[level + 1] |= child
        need = child & np.isnan(self.bounds[level + 1])
        for y0, y1, x0, x1 in clusters(need, _MERGE):  # one box per cluster: few calls, little waste
            b, e = self._rectangle(level + 1, y0, y1, x0, x1)
            fresh = np.isnan(self.bounds[level + 1][y0:y1, x0:x1])
            self.bounds[level + 1][y0:y1, x0:x1][fresh] = b[fresh]
            self.estimate[level + 1][y0:y1, x0:x1][fresh] = e[fresh]
            if level + 2 == len(self.sizes):
                self.tight[y0:y1, x0:x1] |= fresh

    def bound_all(self, level):
        """Bound every cell of ``level`` (a whole level at once: cheaper than splitting most of the cells above it).

        The cells above count as split; a cell bounded before keeps the lower of its two bounds.
        """
        ny, nx = self.shapes[level]
        b, e = self._rectangle(level, 0, ny, 0, nx, energy=False)
        fresh = np.isnan(self.bounds[level])
        self.bounds[level] = np.where(fresh, b, np.fmin(self.bounds[level], b))
        self.estimate[level] = np.where(fresh, e, self.estimate[level])
        self.live[level][...] = True
        for above in range(level):
            self.split[above][...] = True

    def tighten(self, cells):
        """Re-bound the finest ``cells`` (flat indices) not yet bounded with their windows' least energy.

        :meth:`bound_all` leaves the energy out (over the whole image it costs
        more than the rest of the bound); here it is computed only in a box
        around each cluster of ``cells`` (:func:`window_energy_min`) and
        combined with the numerator and energy bounds kept from the cells'
        last bound (:func:`matcher.search.bounds.bound_from_parts`): every cell
        keeps the lower of its two bounds. Returns how many cells were re-bounded.
        """
        last = len(self.sizes) - 1
        cells = np.asarray(cells, np.intp)
        cells = cells[~self.tight.flat[cells] & ~np.isnan(self.bounds[last].flat[cells])]
        if cells.size == 0:
            return 0
        mask = np.zeros(self.shapes[last], bool)
        mask.flat[cells] = True
        for y0, y1, x0, x1 in clusters(mask, _MERGE):
            box = (slice(y0, y1), slice(x0, x1))
            energy = window_energy_min(self.image, self.tshape, self.sizes[last], (y0, y1, x0, x1), self.centred)
            parts = BoundParts(*(a[box] for a in self.parts), estimate=None)
            known = ~np.isnan(parts.numerator)
            with np.errstate(invalid="ignore"):
                b = bound_from_parts(parts, self.terms[last], self.method, energy)
            self.bounds[last][box] = np.where(known, np.fmin(self.bounds[last][box], b), self.bounds[last][box])
            self.tight[box] |= known
        return int(cells.size)

    def _rectangle(self, level, y0, y1, x0, x1, energy=True):
        """Bounds and estimates of the cells ``[y0, y1) x [x0, x1)`` of ``level`` (on the finest level, with
        ``energy``, from the windows' least energy); a large rectangle in bands of rows, one per thread
        (each band's cells see the statistics of their own blocks only, so the bands are independent)."""
        bands = min(num_threads(), (y1 - y0) * (x1 - x0) // PARALLEL_CELLS, y1 - y0)  # tasks: no pool inside
        if bands < 2:
            return self._band(level, y0, y1, x0, x1, energy)
        edges = [y0 + round((y1 - y0) * k / bands) for k in range(bands + 1)]
        done = run_parallel(lambda k: self._band(level, edges[k], edges[k + 1], x0, x1, energy), bands)
        return np.concatenate([b for b, _ in done]), np.concatenate([e for _, e in done])

    def _band(self, level, y0, y1, x0, x1, energy):
        """:meth:`_rectangle` in one call."""
        s, terms = self.sizes[level], self.terms[level]
        ny, nx = y1 - y0, x1 - x0
        if self.stats[level] is not None:
            M, A2 = self.stats[level]
            M, A2 = M[y0:, x0:], A2[y0:, x0:]
        else:
            crop = self.image[s * y0 : s * (y1 + terms.nb[0]), s * x0 : s * (x1 + terms.nb[1])]
            M, A2 = block_stats(crop, s, ny + terms.nb[0], nx + terms.nb[1], self.centred)
        last = level == len(self.sizes) - 1
        if energy and last:
            energy = window_energy_min(self.image, self.tshape, s, (y0, y1, x0, x1), self.centred)
        else:
            energy = None
        parts = bound_parts(M, A2, terms, ny, nx)
        if last:  # kept: a better energy bound may come later (tighten)
            for kept, a in zip(self.parts, (parts.numerator, parts.core2, parts.ext2)):
                kept[y0:y1, x0:x1] = a
        return bound_from_parts(parts, terms, self.method, energy), parts.estimate


def clusters(mask, merge=0):
    """Boxes ``(y0, y1, x0, x1)`` (ends excluded) around the 8-connected clusters of ``mask``'s cells, cells
    within ``2 merge`` of each other counting as connected (boxes may then overlap cells not in ``mask``).

    Examples
    --------
    >>> m = np.zeros((6, 8), bool); m[1, 1] = m[2, 2] = m[4, 6] = True
    >>> clusters(m), clusters(m, merge=2)
    ([(1, 3, 1, 3), (4, 5, 6, 7)], [(1, 5, 1, 7)])
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    oy, ox = max(rows[0] - merge, 0), max(cols[0] - merge, 0)  # label inside the marked box only
    sub = mask[oy : rows[-1] + merge + 1, ox : cols[-1] + merge + 1]
    near = cv2.dilate(sub.view(np.uint8), np.ones((2 * merge + 1,) * 2, np.uint8)) if merge else sub
    labels, _ = ndimage.label(near, structure=np.ones((3, 3), bool))
    boxes = []
    for sy, sx in ndimage.find_objects(labels):
        inner = sub[sy, sx]  # the box of the cluster's own cells, without the dilation's margin
        r, c = np.flatnonzero(inner.any(axis=1)), np.flatnonzero(inner.any(axis=0))
        boxes.append((int(oy + sy.start + r[0]), int(oy + sy.start + r[-1] + 1),
                      int(ox + sx.start + c[0]), int(ox + sx.start + c[-1] + 1)))
    return boxes


def window_energy_min(image, shape, s, cells, centred):
    """The least energy of the windows of each cell, from below: ``(y1 - y0, x1 - x0)`` float64.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
    shape : tuple of int
        The template's ``(h, w)``.
    s : int
        Cell size: cell ``(i, j)`` holds positions ``[s i, s i + s) x [s j, s j + s)`` of the score map.
    cells : tuple of int
        ``(y0, y1, x0, x1)``: the cells ``[y0, y1) x [x0, x1)``.
    centred : bool
        The windows' energy about their mean (``ncc``) or about 0.

    Returns
    -------
    ndarray of float64
        Per cell, at most the energy (summed over channels) of any of its
        windows inside the image: 8-bit sums are exact (integers in float64, for
        templates under about 370 000 pixels), others lose a relative ``1e-9`` of
        the windows' sum of squares for rounding.

    Examples
    --------
    >>> img = np.zeros((6, 6), np.uint8); img[0, 0] = 10
    >>> window_energy_min(img, (2, 2), 2, (0, 3, 0 ,3), False)[0]
    array([0., 0., 0.])
    """
    h, w = shape
    y0, y1, x0, x1 = cells
    H, W = image.shape[:2]
    py1, px1 = min(s * y1, H - h + 1), min(s * x1, W - w + 1)  # positions past the map are no windows
    crop = image[s * y0 : py1 + h - 1, s * x0 : px1 + w - 1]
    n = float(h * w)
    exact = crop.dtype == np.uint8 and n * n * 255.0**2 < 2.0**53  # n s2 and s1^2: integers float64 holds
    s1, s2 = _window_sums(crop, h, w)
    if centred:  # 8-bit: n s2 - s1^2 is an exact integer
        energy = s2 * n
        energy -= s1 * s1
        energy /= n
    else:
        energy = s2.copy()
    if not exact:
        energy -= 1e-9 * s2
    energy = energy[:, :, 0] if energy.shape[2] == 1 else energy.sum(axis=2)
    least = np.full((y1 - y0, x1 - x0), np.inf)
    for dy in range(s):  # the least of each cell's s x s positions (strided: cheaper than a reshaped reduction)
        for dx in range(s):
            part = energy[dy::s, dx::s]
            view = least[: part.shape[0], : part.shape[1]]
            np.minimum(view, part, out=view)
    return np.where(np.isfinite(least), np.maximum(least, 0.0), 0.0)


def _window_sums(crop, h, w):
    """Sums and sums of squares of every ``h x w`` window of ``crop``, ``(ny, nx, C)`` float64, from integral
    images (8-bit: integers, exact)."""
    f = crop if crop.dtype == np.uint8 else crop.astype(np.float64)
    Z1, Z2 = cv2.integral2(f, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    Z1, Z2 = (Z[:, :, None] if Z.ndim == 2 else Z for Z in (Z1, Z2))
    return tuple(Z[h:, w:] - Z[:-h, w:] - Z[h:, :-w] + Z[:-h, :-w] for Z in (Z1, Z2))
