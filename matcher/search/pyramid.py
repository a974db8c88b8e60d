"""Coarse-to-fine search: :func:`matcher.find` with ``pyramid=True``.

The exhaustive search scores every window at full resolution. The pyramid
search scores every window only on a Gaussian-reduced copy of image and
template, keeps several candidates, and follows them down, scoring only small
windows around each at every finer level; at full resolution each survivor is
scored exactly by the engine. When the coarse evidence cannot be trusted it
falls back to the exhaustive search, and says so (:class:`PyramidInfo`).

Rules (the constants below):

- **Levels.** ``cv2.pyrDown`` halves each side (rounding up). ``L`` is the
  largest number of halvings, at most :data:`MAX_LEVELS`, that keeps the
  coarse template at least :data:`MIN_COARSE_SIZE` pixels in both dimensions
  (a prototype missed the true location whenever it was smaller). ``L = 0``
  (a template side under 31 px) means the exhaustive search.
- **Candidates.** ``K = max(8, 4 * max_matches)`` local peaks of the coarse
  score map (:func:`matcher.search.peaks.local_peaks`), best first. At every finer
  level each is moved to the best window within +-:data:`RADIUS` px of twice
  its coarser position (at full resolution +-``2**(L+1) + 2`` px, re-centred
  while the best lies on the square's edge: periodic texture aliases at the
  coarse levels); the best ``K`` distinct positions go on. Unmasked, these
  searches use ``cv2.matchTemplate`` in float32 (centred for ``ncc``), the
  coarse level included; masked, the engine. They only rank.
- **Scores.** Each full-resolution survivor is then moved uphill on the exact
  scores (:func:`matcher.scores.reference.window_scores`, by definition, float64)
  until it beats its 8 neighbours, so it is a local peak of the full score
  map; its score is the exhaustive map's value (to ~1e-12) and its 3 x 3
  neighbourhood feeds sub-pixel refinement exactly as in :func:`matcher.find`.
  Threshold, suppression (:func:`matcher.search.peaks.suppress`) and ``max_matches``
  then apply as in :func:`matcher.find`.
- **Fallback** to the exhaustive search (``fell_back=True``, ``reason`` says
  which) when: no coarse level is possible (``levels=0``); ``max_matches`` is
  None (all peaks are wanted: only the exhaustive map has them); the image is
  1-D; for ``ncc``, the best coarse score is below :data:`MIN_NCC` or the best
  full-resolution one below :data:`MIN_FINE_NCC`; the best score drops by more
  than :data:`MAX_DROP` from the coarse level to full resolution (the
  template's detail is mostly noise); the top candidates are nearly tied with
  many others: at the coarse level, the best peak *not* kept (the ``K+1``-th)
  is within :data:`TIE_FRACTION` of the spread ``best - median`` of all coarse
  peaks from the best, or at full resolution the best candidate that did not
  make the list (after suppression) is within :data:`FINE_TIE` of the last one
  that did; or fewer than ``max_matches`` matches survive threshold and
  suppression (the exhaustive search would return more, or confirm that there
  are none).

Only the normalised methods (:data:`matcher.methods.NORMALIZED_METHODS`) are
supported: the other scores grow with the template's area and the image's
energy, so the coarse ranking says little about the fine one. Others raise
:class:`matcher.MatcherError`.
"""

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import MatcherError
from ..methods import NORMALIZED_METHODS
from ..scores.engine import match_template, num_threads, thread_pool
from ..scores.inputs import as_array, channels_first, mask_weights
from ..scores.reference import window_scores
from .exhaustive import search_exhaustive
from ..options import FindOptions
from .job import make_job
from .peaks import local_peaks, suppress
from .report import matches_at

__all__ = ["find_pyramid", "search_pyramid", "PyramidInfo", "pyramid_levels", "pyr_down", "MIN_COARSE_SIZE", "MAX_LEVELS"]

MIN_COARSE_SIZE = 16
"""Smallest coarse template side (pixels) a level may leave."""
MAX_LEVELS = 4
"""At most this many halvings."""
RADIUS = 4
"""Search radius (pixels, at each finer level) around twice a coarser position."""
MIN_NCC = 0.5
"""For ``ncc``: a best coarse score below this means fall back."""
MIN_FINE_NCC = 0.7
"""For ``ncc``: a best full-resolution score below this means fall back (a weak match may not be the best)."""
TIE_FRACTION = 0.02
"""Fall back when the best dropped coarse peak is within this fraction of (best - median peak) of the best."""
FINE_TIE = 0.01
"""Fall back when the best candidate that did not make the list (after suppression) is within this of the last one that did."""
MAX_DROP = 0.2
"""Fall back when the best full-resolution score is worse than the best coarse one by more than this."""
KEEP_WITHIN = 0.25
"""At levels above full resolution, candidates scoring more than this below the level's best are dropped."""
CLIMB_MARGIN = 0.05
"""With ``max_matches=1``, full-resolution candidates more than ``FINE_TIE`` + this below the best (in float32
scores, whose errors are ~1e-5) are not climbed exactly: they can neither win nor tie."""
_MAX_CLIMB = 8  # full-resolution re-centring steps per candidate
_PARALLEL_OUTPUTS = 1 << 16  # coarse maps at least this large are scored in bands, one per thread


@dataclass(frozen=True)
class PyramidInfo:
    """How :func:`find_pyramid` found its matches.

    ``levels``: halvings used (0: exhaustive only); ``candidates``: coarse
    candidates kept (``K``); ``fell_back``: the exhaustive search produced the
    result; ``reason``: why it fell back ("" when it did not).
    """

    levels: int
    candidates: int
    fell_back: bool
    reason: str = ""


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
    """:func:`matcher.find` by coarse-to-fine search: ``(matches, info)``.

    Arguments and the list of matches are as in :func:`matcher.find` (the same
    matches as the exhaustive search in all but rare cases, see the module
    docstring); ``info`` is a :class:`PyramidInfo` saying which path was taken.

    Raises
    ------
    MatcherError
        As :func:`matcher.find`; a method that is not normalised.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((200, 240))
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
    """The coarse-to-fine search of ``job`` (one template): ``(matches, info)``, in the searched image's coordinates.

    The steps: build the levels (:func:`_levels`), score every window of the
    coarsest (:func:`_coarse_candidates`), follow the candidates down
    (:func:`_descend`), climb each to a local peak of the exact scores and
    decide (:func:`_finish`). Any step may give up, with its reason: then the
    exhaustive search answers.
    """
    method = job.method
    if not method.normalised:
        raise MatcherError(f"pyramid=True needs a normalised method {NORMALIZED_METHODS}, got {method.name!r}",
                           param="method")
    arr, tpl = as_array("image", job.image), as_array("template", job.templates[0])
    if arr.ndim == 1 or tpl.ndim == 1:
        return _exhaustive(job, 0, 0, "1-D image or template")
    size = job.sizes[0]
    levels = pyramid_levels(*size)
    if levels == 0:
        return _exhaustive(job, 0, 0, f"template {size[1]}x{size[0]} too small: a coarse level would be under "
                                      f"{MIN_COARSE_SIZE} px")
    if job.max_matches is None:
        return _exhaustive(job, levels, 0, "max_matches=None asks for every peak")
    if tpl.shape[0] > arr.shape[0] or tpl.shape[1] > arr.shape[1] or arr.ndim != tpl.ndim:
        return _exhaustive(job, 0, 0, "shapes the engine rejects")  # the engine raises the documented error
    k = max(8, 4 * job.max_matches)
    stack = _levels(arr, tpl, job.masks[0], levels)
    if isinstance(stack, str):
        return _exhaustive(job, levels, k, stack)
    sign = -1.0 if method.lower_is_better else 1.0
    search = _Search(stack, method.name, sign, fast=job.masks[0] is None)
    cands, best = _coarse_candidates(search, k)
    if isinstance(cands, str):
        return _exhaustive(job, levels, k, cands)
    cands = _descend(search, cands, k, job.max_matches)
    outcome = _finish(job, search, cands, best)
    if isinstance(outcome, str):
        return _exhaustive(job, levels, k, outcome)
    return outcome, PyramidInfo(levels, k, False, "")


def _exhaustive(job, levels, k, reason):
    return search_exhaustive(job), PyramidInfo(levels, k, True, reason)


def _levels(arr, tpl, mask, levels):
    """Levels 0..L as (images, templates, masks): Gaussian-reduced float32 copies, level 0 the caller's arrays.

    Returns a reason (str) instead when a level is unusable.
    """
    imgs, tpls, masks = [arr], [tpl], [mask]
    img32, tpl32 = _reduce_first(arr), _reduce_first(tpl)
    msk32 = None if mask is None else np.clip(pyr_down(_mask32(mask)), 0.0, 1.0)
    for lev in range(1, levels + 1):
        if lev > 1:
            img32, tpl32 = pyr_down(img32), pyr_down(tpl32)
            msk32 = None if msk32 is None else np.clip(pyr_down(msk32), 0.0, 1.0)
        if msk32 is not None and not (msk32.reshape(msk32.shape[0], msk32.shape[1], -1) > 0).any(axis=(0, 1)).all():
            return "the reduced mask selects no pixel"
        imgs.append(img32)
        tpls.append(tpl32)
        masks.append(msk32)
    if tpls[-1].shape[0] > imgs[-1].shape[0] or tpls[-1].shape[1] > imgs[-1].shape[1]:
        return "the coarse template does not fit the coarse image"
    return imgs, tpls, masks


class _Search:
    """The pyramid's levels and how to score a block of positions at one of them (goodness: higher is better)."""

    def __init__(self, stack, method, sign, *, fast):
        self.imgs, self.tpls, self.masks = stack
        self.method, self.sign = method, sign
        self.score = _opencv_scores if fast else _engine_scores  # OpenCV's float32 unmasked; the engine masked

    @property
    def levels(self):
        return len(self.imgs) - 1

    def block(self, lev, y0, y1, x0, x1):
        """Goodness of positions y0..y1 x x0..x1 (inclusive) at level ``lev``."""
        return self.score(self.imgs[lev], self.tpls[lev], self.masks[lev], self.method, self.sign, y0, y1, x0, x1)

    def near(self, lev, centres, radius, climb=False):
        """:func:`_best_near_all` at level ``lev``."""
        return _best_near_all(self.score, self.imgs[lev], self.tpls[lev], self.masks[lev], self.method, self.sign,
                              centres, radius, climb=climb)


def _coarse_candidates(search, k):
    """Every window of the coarsest level: the best ``k`` local peaks and the best goodness, or a reason."""
    img, tpl = search.imgs[-1], search.tpls[-1]
    coarse = search.block(search.levels, 0, img.shape[0] - tpl.shape[0], 0, img.shape[1] - tpl.shape[1])
    ys, xs, values = local_peaks(coarse)
    best = float(values[0])
    if search.method == "ncc" and best < MIN_NCC:
        return f"best coarse ncc {best:.3f} < {MIN_NCC}", best
    if len(values) > k:
        spread = best - float(np.median(values))
        if values[k] >= best - TIE_FRACTION * spread:
            return (f"more than {k} coarse peaks nearly tied with the best "
                    f"({float(values[k]):.4f} vs {best:.4f})"), best
    return list(zip(ys[:k].tolist(), xs[:k].tolist())), best


def _descend(search, cands, k, max_matches):
    """Follow the candidates down to full resolution: a small square around twice each position, the best ``k`` go on."""
    levels = search.levels
    for lev in range(levels - 1, -1, -1):
        radius = RADIUS if lev else 2 ** (levels + 1) + 2  # repetitive texture aliases at coarse levels
        found = {}
        for g, py, px in search.near(lev, [(2 * y, 2 * x) for y, x in cands], radius, climb=lev == 0):
            found[(py, px)] = max(found.get((py, px), -np.inf), g)
        ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))
        if lev:
            floor = ranked[0][1] - KEEP_WITHIN
        elif max_matches == 1:  # only candidates that could still win or tie are climbed exactly
            floor = ranked[0][1] - FINE_TIE - CLIMB_MARGIN
        else:
            floor = -np.inf
        cands = [p for p, g in ranked[:k] if g >= floor]
    return cands


def _finish(job, search, cands, best):
    """Climb each candidate to a local peak of the exact scores, then threshold, suppress and check: matches or a reason."""
    sign, method, max_matches = search.sign, search.method, job.max_matches
    exact = _ExactScores(search.imgs[0], search.tpls[0], search.masks[0], method, sign)
    finals = {}
    for y, x in cands:
        py, px, local, cy, cx = exact.peak(y, x)
        finals.setdefault((py, px), float(local[cy, cx]))
    pos = sorted(finals, key=lambda p: (-finals[p], p))
    gs = np.array([finals[p] for p in pos])
    if method == "ncc" and gs[0] < MIN_FINE_NCC:
        return f"best full-resolution ncc {gs[0]:.3f} < {MIN_FINE_NCC}"
    if gs[0] < best - MAX_DROP:
        return f"best score dropped from {sign * best:.3f} (coarse) to {sign * gs[0]:.3f}"
    th, tw = job.sizes[0]
    ih, iw = job.image_hw
    boxes, shapes = [(th, tw)], [(ih - th + 1, iw - tw + 1)]
    everyone = suppress(np.array([p[0] for p in pos], np.intp), np.array([p[1] for p in pos], np.intp),
                        np.zeros(len(pos), np.intp), boxes, shapes, job.max_overlap, max_matches + 1)
    if len(everyone) > max_matches and gs[everyone[max_matches]] >= gs[everyone[max_matches - 1]] - FINE_TIE:
        return (f"full-resolution candidates nearly tied ({sign * gs[everyone[max_matches]]:.4f} "
                f"vs {sign * gs[everyone[max_matches - 1]]:.4f}): the best may be elsewhere")
    if job.floor is not None:
        keep = gs >= job.floor
        pos, gs = [p for p, kp in zip(pos, keep) if kp], gs[keep]
    pys = np.array([p[0] for p in pos], np.intp)
    pxs = np.array([p[1] for p in pos], np.intp)
    kept = suppress(pys, pxs, np.zeros(len(pos), np.intp), boxes, shapes, job.max_overlap, max_matches) if pos else []
    if len(kept) < max_matches:
        return f"only {len(kept)} of max_matches={max_matches} matches survived"
    found = matches_at(job, pys[kept], pxs[kept], np.zeros(len(kept), np.intp))
    if job.floor is not None:  # the reported scores decide, to the last bit
        found = [m for m in found if job.method.goodness(m.score) >= job.floor]
    return found


def _float32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _mask32(mask):
    m = as_array("mask", mask)
    return (m != 0).astype(np.float32) if m.dtype.kind in "biu" else _float32(m)


def pyr_down(a):
    """``cv2.pyrDown`` (each side halved, rounding up), keeping a trailing channel axis of length 1.

    >>> pyr_down(np.zeros((9, 8, 1), np.float32)).shape
    (5, 4, 1)
    """
    out = cv2.pyrDown(a)
    return out[:, :, None] if a.ndim == 3 and out.ndim == 2 else out


def _reduce_first(a):
    """Level 1 as float32: 8-bit data is reduced first (OpenCV's fast path; rounding is 1/2 grey level)."""
    if a.dtype == np.uint8:
        return _float32(pyr_down(a))
    return pyr_down(_float32(a.astype(np.float64) if a.dtype.kind == "b" else a))


def _window(img, tpl, cy, cx, r):
    """Rows/cols of positions within r of (cy, cx), clipped to the score map: (y0, y1, x0, x1), inclusive."""
    my, mx = img.shape[0] - tpl.shape[0], img.shape[1] - tpl.shape[1]
    y0, y1 = min(max(cy - r, 0), my), min(max(cy + r, 0), my)
    x0, x1 = min(max(cx - r, 0), mx), min(max(cx + r, 0), mx)
    return y0, y1, x0, x1


_CV_METHODS = {"ncc": cv2.TM_CCOEFF_NORMED, "ccorr_normed": cv2.TM_CCORR_NORMED, "ssd_normed": cv2.TM_SQDIFF_NORMED}


def _opencv_scores(img, tpl, mask, method, sign, y0, y1, x0, x1):
    """Goodness of positions y0..y1 x x0..x1 (inclusive) by cv2.matchTemplate (float32): for ranking only.

    For ncc both sides are centred first (the score does not change; float32 keeps more digits).
    """
    th, tw = tpl.shape[:2]
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


def _engine_scores(img, tpl, mask, method, sign, y0, y1, x0, x1):
    """As :func:`_opencv_scores`, by the engine on a crop (any mask)."""
    th, tw = tpl.shape[:2]
    return sign * match_template(img[y0 : y1 + th, x0 : x1 + tw], tpl, method, mask=mask, precision="fast")


def _best_near(score, img, tpl, mask, method, sign, cy, cx, r, climb=False):
    """Best position within r of (cy, cx): (goodness, y, x).

    With ``climb``, re-centred (up to _MAX_CLIMB times) while the best lies on
    the square's edge (but not the score map's): the peak may lie further out.
    """
    my, mx = img.shape[0] - tpl.shape[0], img.shape[1] - tpl.shape[1]
    for _ in range(_MAX_CLIMB if climb else 1):
        y0, y1, x0, x1 = _window(img, tpl, cy, cx, r)
        g = score(img, tpl, mask, method, sign, y0, y1, x0, x1)
        iy, ix = np.unravel_index(int(np.argmax(g)), g.shape)
        py, px = y0 + int(iy), x0 + int(ix)
        edge = (py == y0 and y0 > 0) or (py == y1 and y1 < my) or (px == x0 and x0 > 0) or (px == x1 and x1 < mx)
        if not edge:
            break
        cy, cx = py, px
    return float(g[iy, ix]), py, px


def _best_near_all(score, img, tpl, mask, method, sign, centres, r, climb=False):
    """:func:`_best_near` for every centre, scoring overlapping squares once: [(goodness, y, x)].

    Squares that overlap are scored together over their bounding box when it
    is no larger than the squares apart; each centre then takes the best of
    its own square (re-searched alone when it must climb).
    """
    squares = [_window(img, tpl, cy, cx, r) for cy, cx in centres]
    groups = []  # [bounding box, member indices]
    for i, (y0, y1, x0, x1) in enumerate(squares):
        for group in groups:
            b0, b1, c0, c1 = group[0]
            box = (min(b0, y0), max(b1, y1), min(c0, x0), max(c1, x1))
            apart = _area(group[0]) + _area(squares[i])
            if y0 <= b1 and b0 <= y1 and x0 <= c1 and c0 <= x1 and _area(box) <= apart:
                group[0] = box
                group[1].append(i)
                break
        else:
            groups.append([squares[i], [i]])
    my, mx = img.shape[0] - tpl.shape[0], img.shape[1] - tpl.shape[1]
    results = [None] * len(centres)
    for (b0, b1, c0, c1), members in groups:
        g = score(img, tpl, mask, method, sign, b0, b1, c0, c1)
        for i in members:
            y0, y1, x0, x1 = squares[i]
            own = g[y0 - b0 : y1 - b0 + 1, x0 - c0 : x1 - c0 + 1]
            iy, ix = np.unravel_index(int(np.argmax(own)), own.shape)
            py, px = y0 + int(iy), x0 + int(ix)
            edge = (py == y0 and y0 > 0) or (py == y1 and y1 < my) or (px == x0 and x0 > 0) or (px == x1 and x1 < mx)
            if climb and edge:
                results[i] = _best_near(score, img, tpl, mask, method, sign, py, px, r, climb=True)
            else:
                results[i] = (float(own[iy, ix]), py, px)
    return results


def _area(box):
    y0, y1, x0, x1 = box
    return (y1 - y0 + 1) * (x1 - x0 + 1)


class _ExactScores:
    """Full-resolution scores by definition (:func:`matcher.scores.reference.window_scores`), around a position."""

    def __init__(self, arr, tpl, mask, method, sign):
        self.arr, self.method, self.sign = arr, method, sign
        self.h, self.w = tpl.shape[:2]
        self.tpl = channels_first("template", tpl)
        self.weights = None if mask is None else mask_weights(mask, self.tpl.shape, self.tpl.shape[0])
        self.my, self.mx = arr.shape[0] - self.h, arr.shape[1] - self.w

    def around(self, y, x):
        """Goodness of the positions within 1 of (y, x), clipped to the map; and (y, x) in that array."""
        y0, y1, x0, x1 = max(y - 1, 0), min(y + 1, self.my), max(x - 1, 0), min(x + 1, self.mx)
        crop = self.arr[y0 : y1 + self.h, x0 : x1 + self.w]
        crop = crop[:, :, None] if crop.ndim == 2 else crop
        view = sliding_window_view(crop.astype(np.float64), (self.h, self.w), axis=(0, 1))  # (ny, nx, C, h, w)
        ny, nx = view.shape[:2]
        windows = np.ascontiguousarray(view.reshape((ny * nx,) + view.shape[2:]))
        g = self.sign * window_scores(windows, self.tpl, self.weights, self.method).reshape(ny, nx)
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
