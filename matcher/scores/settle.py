"""The one recompute rule: which windows are settled after the assembly, and how (private).

Every assembled score carries a bound on its error. The windows whose bound
exceeds the tolerance (the precision's share of the map's range,
:data:`matcher.scores.inputs.RECOMPUTE`) are settled:

- rows of chunks where many of them cluster get a float64 correlation
  (float32 work only: :func:`settle_over_tolerance`);
- degenerate windows (:mod:`matcher.scores.degenerate`) get their documented
  value exactly;
- the rest are recomputed by definition
  (:func:`matcher.scores.reference.rescore`).

Working in float32, too many windows to recompute one by one means the band
is assembled again in float64 (the caller's choice: these functions say so by
returning None or False); in float64 every window is settled, however many.
Near-perfect windows are recomputed too when they are few, so that an exact
copy of the template scores exactly 1 (0 for ssd_normed).
"""

import math

import cv2
import numpy as np

from .degenerate import degenerate_at, degenerate_score
from .error_model import EPS64
from .reference import NEAR_PERFECT, rescore

NOMINAL_RANGE = {"ncc": 2.0, "ccorr_normed": 2.0, "ssd_normed": 1.0}
"""The normalised methods and the width of their score range."""


def settle_normalised(job, chunks, scratch, contract, limits, algorithm):
    """Settle a normalised map (``job.out``) against ``contract`` of its range; False if float32 cannot.

    The tolerance follows the map's range, re-estimated until it holds.
    """
    out, method = job.out, job.p.method
    tolerance = contract * score_range(out, method)  # a first estimate; the loop checks it
    while True:
        if tolerance < 4.0 * job.eps and out.size > limits[1]:
            # every bound carries the assembly's own rounding (4 eps of its working precision): none could
            # be settled but by definition, one by one (a map of nearly equal scores: ccorr_normed on a
            # large DC offset); float32 refuses at once, before any float64 strip
            return False
        settled = settle_over_tolerance(job, chunks, scratch, tolerance, limits, algorithm)
        if settled is None:
            return False
        if not settled:  # nothing changed: the range is the one the tolerance came from
            break
        tighter = contract * score_range(out, method)
        if tighter >= 0.75 * tolerance:
            break
        tolerance = tighter
    ys, xs = near_perfect(out, job.bound, method == "ssd_normed", job.bound_max)
    if 0 < ys.size <= limits[1] + NEAR_PERFECT:  # beyond the usual limit: cheap, few values each
        rescore(job.p, out, ys, xs)
    return True


def near_perfect(scores, bound, lower, bound_max=math.inf):
    """Positions whose score is within its (non-zero) bound of perfect (1; 0 if ``lower``); ``bound_max``,
    if finite, is at least every bound (it saves finding the largest)."""
    b_max = bound_max
    if math.isinf(b_max):
        b_max = value_range(bound)[1] if bound.dtype == np.float32 else float(bound.max())
    rows, _ = sparse_where(scores, b_max if lower else 1.0 - b_max, lower, positions=False)
    s, b = scores[rows], bound[rows]
    near = (s <= b) if lower else (s >= 1.0 - b)
    near &= b > 0
    ry, xs = np.nonzero(near)
    return rows[ry], xs


def sparse_where(scores, limit, lower, positions=True):
    """Where ``scores <= limit`` (``>=`` unless ``lower``), looking only at rows that reach it.

    With ``positions=False``, only those rows (and None).
    """
    extreme = scores.min(axis=1) <= limit if lower else scores.max(axis=1) >= limit
    rows = np.flatnonzero(extreme)
    if not positions:
        return rows, None
    ry, xs = np.nonzero(scores[rows] <= limit if lower else scores[rows] >= limit)
    return rows[ry], xs


def settle_over_tolerance(job, chunks, scratch, tolerance, limits, algorithm):
    """Settle every window whose bound exceeds ``tolerance``.

    ``limits = (strip factor or None, most windows to recompute one by one)``.
    Returns how many windows changed, or None if too many remain to recompute one by one.
    """
    if job.bound_max <= tolerance:  # every bound within it (the chunks' uniform bounds): nothing to settle
        return 0
    _, h, w = job.p.template.shape
    if job.can_refine_denominators and _denominators_fail(job, tolerance) > limits[1]:
        job.refine_denominators(chunks, scratch)  # too many to settle: first, variances without cancellation
    boxes = []  # (first row, end row, first column, end column) of chunks worth a float64 correlation
    if limits[0] is not None:
        for a, b in chunks:
            over = job.bound[a:b] > tolerance
            if np.count_nonzero(over) <= 16:
                continue
            over &= ~job.may_vanish(job.den[a:b])  # not a candidate of degeneracy: those are tested for flatness
            count = np.count_nonzero(over)
            if count <= 16:
                continue
            cols = np.flatnonzero(over.any(axis=0))
            c0, c1 = int(cols[0]), int(cols[-1]) + 1
            # one by one costs ~count * taps; a float64 rectangle ~its input area
            if count * job.n > limits[0] * (b - a + h - 1) * (c1 - c0 + w - 1):
                boxes.append((a, b, c0, c1))
    strips = _strips(boxes)
    for a, b, c0, c1 in strips:
        x64, err64 = job.correlate64(algorithm, (a, b), (c0, c1))
        for a2, b2 in chunks:
            if a <= a2 < b:
                job.chunk(a2, b2, x64[a2 - a : b2 - a], (0.0, err64 + job.extra_error), scratch, (c0, c1))
    flagged = job.bound > tolerance
    count = int(np.count_nonzero(flagged))
    if count == 0:
        return sum(b - a for a, b, _, _ in strips)
    if not settle_flagged(job, flagged, limits[1]):
        return None
    job.bound[flagged] = 0.0  # settled: exact values
    return count


def _denominators_fail(job, tolerance):
    """How many windows fail their bound by the denominator's error alone (``err_den / (2 den)`` over half
    the tolerance): those float64 strips of the correlation cannot settle, split variances can.

    Windows whose denominator is within its error of zero are not counted: they are tested exactly for
    flatness (:func:`settle_flagged`), and most are flat (a black background, a saturated sky), where no
    variance can help."""
    ys, xs = np.nonzero(job.bound > tolerance)
    if ys.size == 0:
        return 0
    den = job.den[ys, xs]
    return int(np.count_nonzero((job.err_den > tolerance * den) & ~job.may_vanish(den)))


def settle_flagged(job, flagged, limit):
    """Degenerate windows among ``flagged`` get their documented value, the others are recomputed
    by definition; False if more than ``limit`` of those."""
    p, scores = job.p, job.out
    ys, xs = np.nonzero(flagged)
    if ys.size == 0:
        return True
    d = job.den[ys, xs]
    zero = np.flatnonzero(job.may_vanish(d))
    if zero.size:
        if not job.zeros_exact:  # candidates only: test them exactly
            zero = zero[degenerate_at(p, ys[zero], xs[zero])]
        scores[ys[zero], xs[zero]] = degenerate_score(p.method)  # the template is not degenerate here
        keep = np.ones(ys.size, bool)
        keep[zero] = False
        ys, xs = ys[keep], xs[keep]
    if ys.size > limit:
        return False
    rescore(p, scores, ys, xs)
    return True


def settle_global(job, out, e, contract, extremes=None, float64=False):
    """Non-normalised scores (ssd, ccorr, ccoeff): one bound ``e`` for the band, against ``contract`` of its range.

    Within it: ssd windows within the bound of 0 (exact copies of the template,
    mostly) are recomputed by definition when they are few, so that they score
    0 exactly. Beyond it: False in float32; in float64 every window is
    recomputed by definition.
    """
    p, method = job.p, job.p.method
    lo, hi = extremes or value_range(out)
    if method == "ssd":
        e = e + 8.0 * EPS64 * hi
    elif method == "ccorr":
        e = e + 4.0 * EPS64 * max(abs(lo), abs(hi))
    if e > contract * (hi - lo):
        if not float64:
            return False
        rescore(p, out, *np.nonzero(np.ones(out.shape, bool)))
        return True
    if method != "ssd" or lo > e:
        return True
    ys, xs = sparse_where(out, e, lower=True)
    if float64 or ys.size <= NEAR_PERFECT + out.size * 2 // (job.n * len(job.channels)):
        rescore(p, out, ys, xs)
    return True


def score_range(scores, method):
    """The score range the tolerance is relative to: the map's, at most the method's nominal one."""
    lo, hi = value_range(scores)
    return min(max(hi - lo, 1e-12), NOMINAL_RANGE[method])


def value_range(a):
    """``(min, max)`` of a 2-D array, whichever way is faster: OpenCV's one pass for float32, NumPy's
    two vectorised passes for float64 (twice as fast there as ``cv2.minMaxLoc``)."""
    if a.dtype == np.float32:
        lo, hi, _, _ = cv2.minMaxLoc(a)
        return lo, hi
    return float(a.min()), float(a.max())


def _strips(boxes):
    """Merge the boxes of consecutive chunks into (first row, end row, first column, end column) strips."""
    strips = []
    for a, b, c0, c1 in boxes:
        if strips and strips[-1][1] == a:
            top, _, d0, d1 = strips[-1]
            strips[-1] = (top, b, min(c0, d0), max(c1, d1))
        else:
            strips.append((a, b, c0, c1))
    return strips
