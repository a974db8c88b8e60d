"""Memory-bounded search of huge images: score tiles, keep only candidate peaks.

:func:`search_tiled` (and :func:`find_tiled`) return what :func:`matcher.find` returns, without ever
holding the whole score map, nor the whole image as float64. The map of
output positions (top-left corners of windows) is cut into a grid of tiles;
each tile is scored by :func:`matcher.match_template` on the slice of the
ORIGINAL image its windows cover, plus one output row and column of margin on
every side, so that

- the "local peak" test (a window at least as good as its 8 neighbours) is
  exact for every position of the tile.

Only the tile's candidates are kept: position and map value. A plateau of
equal peaks yields one candidate, its first pixel in row-major order
(:func:`matcher.search.peaks.local_peaks`). A plateau may cross tile seams: each
tile reports the pieces of plateaus that touch its border together with their
border pixels; pieces whose border pixels are 8-neighbours across a seam are
joined (connected components of a sparse graph), and each joined plateau
keeps the earliest first pixel of its pieces, exactly the pixel the untiled
search keeps. Then the candidates are ranked (best first, ties row-major),
suppressed and limited as :func:`matcher.find` does, with
:func:`matcher.search.peaks.suppress` itself, and the chosen windows are scored by
definition, with their 3 x 3 neighbourhoods for ``subpixel``
(:func:`matcher.search.report.matches_at`), as the untiled search does: same
positions, same scores, same sub-pixel offsets.

A tile's map is computed from the tile's own slice, so its values may differ
from the untiled map's within the engine's precision; only a near tie
between two candidates can therefore be ordered differently.
"""

import math

import cv2
import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .. import deadline
from ..scores.engine import match_template
from .exhaustive import search_exhaustive
from ..options import FindOptions
from .job import make_job
from .peaks import suppress
from .report import confirm_threshold, map_slack, matches_at

__all__ = ["search_tiled", "find_tiled", "TILE_BUDGET", "BYTES_PER_PIXEL"]

TILE_BUDGET = 0.75
"""Working memory of one tile, as a fraction of the image's own size (at least ``_MIN_TILE_BYTES``)."""

BYTES_PER_PIXEL = 100
"""Peak working set of :func:`matcher.match_template` per image pixel and channel, for sizing tiles.

Measured 72-103 bytes with float64 work on masks; about 45 with float32
work on large unmasked maps; the larger figure keeps every search within the budget.
"""

_MIN_TILE_BYTES = 16 << 20
_MIN_TILE_OUTPUTS = 32  # tiles are at least this many output rows and columns
_KERNEL = np.ones((3, 3), np.uint8)
_EIGHT = np.ones((3, 3), bool)


def search_tiled(job, tile=None):
    """The matches of ``job`` (a :class:`~matcher.search.job.SearchJob` with one template), tile by tile.

    ``tile`` is ``(rows, cols)`` output positions per tile; None sizes tiles
    from the memory budget (:func:`_auto_tile`). A 1-D image, a template that
    does not fit, or one tile covering the whole map is the exhaustive search.
    """
    arr = np.asarray(job.image)
    size = job.sizes[0]
    if arr.ndim == 1 or size is None or size[0] > arr.shape[0] or size[1] > arr.shape[1]:
        return search_exhaustive(job)  # 1-D images are small; bad templates: the engine's errors
    th, tw = size
    out_h, out_w = arr.shape[0] - th + 1, arr.shape[1] - tw + 1
    rows, cols = tile or _auto_tile(arr, th, tw)
    if rows >= out_h and cols >= out_w:
        return search_exhaustive(job)
    return _tiled(job, arr, th, tw, min(rows, out_h), min(cols, out_w))


def find_tiled(image, template, method="ncc", *, threshold=None, max_matches=1, max_overlap=0.3,
               region=None, subpixel=False, mask=None, precision="fast", tile=None):
    """:func:`matcher.find`, scoring the image tile by tile: same matches, bounded memory.

    Parameters are :func:`matcher.find`'s (without ``pyramid``), plus:

    tile : int or (rows, cols), optional, keyword-only
        Output positions per tile (an int: square tiles). Default: from a
        memory budget of ``TILE_BUDGET`` times the image's size, at least
        ``_MIN_TILE_OUTPUTS`` by ``_MIN_TILE_OUTPUTS`` positions. One tile
        covering the whole map is the untiled search.

    Returns
    -------
    list of Match
        As :func:`matcher.find`.

    Examples
    --------
    >>> image = np.zeros((6, 9))
    >>> image[1:3, 1:3] = image[3:5, 6:8] = [[1, 2], [3, 4]]
    >>> found = find_tiled(image, [[1, 2], [3, 4]], "ssd", threshold=0.5, max_matches=None, tile=2)
    >>> [(m.x, m.y, m.score) for m in found]
    [(1, 1, 0.0), (6, 3, 0.0)]
    """
    options = FindOptions.check(method=method, threshold=threshold, max_matches=max_matches,
                                max_overlap=max_overlap, region=region, subpixel=subpixel, precision=precision)
    tile = _check_tile(tile)
    job = make_job(image, [template], [mask], [None], options)
    return job.to_image(search_tiled(job, tile))


def _check_tile(tile):
    if tile is None:
        return None
    if isinstance(tile, (int, np.integer)) and not isinstance(tile, (bool, np.bool_)):
        tile = (tile, tile)
    if (not isinstance(tile, (tuple, list)) or len(tile) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in tile)):
        raise TypeError(f"tile must be a positive integer or a pair (rows, cols) of them, got {tile!r}")
    if min(tile) < 1:
        from ..errors import MatcherError

        raise MatcherError(f"tile must be a positive integer or a pair (rows, cols) of them, got {tile!r}")
    return int(tile[0]), int(tile[1])


def _auto_tile(arr, th, tw):
    """Square-ish tiles whose image slice fits the memory budget."""
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    budget = max(TILE_BUDGET * arr.size * arr.itemsize, _MIN_TILE_BYTES)
    area = budget / (BYTES_PER_PIXEL * channels)  # image pixels per tile
    # (rows + th + 1) * (cols + tw + 1) = area, with rows - cols = tw - th (a square image slice)
    side = math.sqrt(area)
    rows = max(_MIN_TILE_OUTPUTS, int(side) - th - 1)
    cols = max(_MIN_TILE_OUTPUTS, int(side) - tw - 1)
    return rows, cols


def _tiled(job, arr, th, tw, rows, cols):
    template, mask, method, max_matches, max_overlap = (job.templates[0], job.masks[0], job.method,
                                                         job.max_matches, job.max_overlap)
    out_h, out_w = arr.shape[0] - th + 1, arr.shape[1] - tw + 1
    slack = 0.0  # the largest map error among the tiles
    # With no suppression to skip candidates, only the `limit` best can be returned
    limit = max_matches if max_matches is not None and (max_matches == 1 or max_overlap >= 1.0) else None

    closed = []  # per tile: (flat, value)
    pieces = []  # per tile: (flat, value) of plateau pieces touching the tile's border
    border = []  # per tile: (global flat of border peak pixels, global piece id)
    n_pieces = 0
    for r0 in range(0, out_h, rows):
        r1 = min(r0 + rows, out_h)
        m0, m1 = max(r0 - 1, 0), min(r1 + 1, out_h)
        for c0 in range(0, out_w, cols):
            deadline.check()  # between tiles (matcher.deadline)
            c1 = min(c0 + cols, out_w)
            n0, n1 = max(c0 - 1, 0), min(c1 + 1, out_w)
            if arr.ndim == 2:
                part = arr[m0 : m1 + th - 1, n0 : n1 + tw - 1]
            else:
                part = arr[m0 : m1 + th - 1, n0 : n1 + tw - 1, :]
            scores = match_template(part, template, method.name, mask=mask, precision=job.precision)
            good = method.goodness(scores)
            tile_slack = 0.0 if job.floor is None else map_slack(scores, job.precision)
            slack = max(slack, tile_slack)
            a, b = r0 - m0, c0 - n0
            peak = (good >= cv2.dilate(good, _KERNEL))[a : a + r1 - r0, b : b + c1 - c0]
            inner = good[a : a + r1 - r0, b : b + c1 - c0]
            if job.floor is not None:
                peak &= inner >= job.floor - tile_slack
            flat = np.flatnonzero(peak)
            if flat.size == 0:
                continue
            R, C = peak.shape
            ly, lx = np.divmod(flat, C)
            if flat.size > 1 and _touching(peak, ly, lx):
                labels, _ = ndimage.label(peak, structure=_EIGHT)
                comp = labels.ravel()[flat]
                del labels
                _, first = np.unique(comp, return_index=True)  # first pixel of each, row-major
                comp = np.searchsorted(np.unique(comp), comp)  # 0 .. n-1
            else:
                first = np.arange(flat.size)
                comp = first
            on_edge = (ly == 0) | (ly == R - 1) | (lx == 0) | (lx == C - 1)
            is_open = np.zeros(first.size, bool)
            is_open[comp[on_edge]] = True
            fy, fx = ly[first], lx[first]
            data = (fy + r0) * out_w + (fx + c0), inner[fy, fx].copy()
            c_flat, c_val = (d[~is_open] for d in data)
            if limit is not None and c_flat.size > limit:
                keep = np.lexsort((c_flat, -c_val))[:limit]
                c_flat, c_val = c_flat[keep], c_val[keep]
            closed.append((c_flat, c_val))
            if is_open.any():
                ids = np.full(first.size, -1, np.intp)
                ids[is_open] = n_pieces + np.arange(int(is_open.sum()))
                n_pieces += int(is_open.sum())
                pieces.append(tuple(d[is_open] for d in data))
                border.append(((ly[on_edge] + r0) * out_w + (lx[on_edge] + c0), ids[comp[on_edge]]))
            del scores, good, peak

    parts = closed + ([_join(pieces, border, n_pieces, out_w)] if n_pieces else [])
    flat = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.intp)
    value = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    order = np.lexsort((flat, -value))  # best first, ties row-major: local_peaks' order
    ys, xs = np.divmod(flat[order], out_w)
    tids = np.zeros(len(ys), np.intp)
    passed = confirm_threshold(job, ys, xs, tids, value[order], slack)
    ys, xs, tids = ys[passed], xs[passed], tids[passed]
    kept = suppress(ys, xs, tids, [(th, tw)], [(out_h, out_w)], max_overlap, max_matches)
    # scores (and sub-pixel neighbourhoods) by definition, as the untiled search reports them
    return matches_at(job, ys[kept], xs[kept], tids[kept])


def _touching(peak, ly, lx):
    """Whether any two peak pixels are 8-neighbours (looking right and down only)."""
    padded = np.pad(peak, 1)
    ys, xs = ly + 1, lx + 1
    return bool(padded[ys, xs + 1].any() or padded[ys + 1, xs - 1].any()
                or padded[ys + 1, xs].any() or padded[ys + 1, xs + 1].any())


def _join(pieces, border, n_pieces, out_w):
    """One candidate per plateau from the pieces that touch tile borders: each plateau's first pixel."""
    p_flat = np.concatenate([p[0] for p in pieces])
    p_val = np.concatenate([p[1] for p in pieces])
    keys = np.concatenate([b[0] for b in border])
    ids = np.concatenate([b[1] for b in border])
    order = np.argsort(keys, kind="stable")
    keys, ids = keys[order], ids[order]
    y, x = np.divmod(keys, out_w)
    src, dst = [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # every 8-neighbour pair once
        ny, nx = y + dy, x + dx
        ok = (nx >= 0) & (nx < out_w)
        target = ny * out_w + nx
        at = np.searchsorted(keys, target)
        hit = ok & (at < len(keys))
        hit[hit] = keys[at[hit]] == target[hit]
        src.append(ids[hit])
        dst.append(ids[at[hit]])
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n_pieces, n_pieces))
    _, group = connected_components(graph, directed=False)
    first = np.lexsort((p_flat, group))  # by plateau, then row-major
    starts = np.flatnonzero(np.r_[True, group[first][1:] != group[first][:-1]])
    pick = first[starts]
    return p_flat[pick], p_val[pick]
