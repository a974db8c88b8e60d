"""The matching engine: every window's score, exact and guarded.

Scores are assembled from three kinds of pieces, all in float64:

- one correlation of the image with a template-derived kernel (direct or
  FFT, :mod:`matcher.correlate`), plus two more with the weights for a mask;
- window sums of the image and of its square (box filters, :mod:`matcher.window_sums`);
- exact window minima and maxima, which say where a window is flat or zero.

The image is centred first (its mean subtracted; rounded to an integer for
integer data so that sums stay exact): the scores do not change, but the
rounding errors no longer grow with a large DC offset, which is what breaks
OpenCV's float32 path. Every score also gets a bound on its rounding error;
the few windows whose bound exceeds the precision's tolerance (near-flat
windows, mostly) are recomputed by definition with
:func:`matcher.reference.window_scores`. Hence ``precision="exact"`` agrees
with the float64 reference to ~1e-10 on every input, and never returns a
score for a flat window other than its documented value.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._inputs import PRECISIONS, check_choice, prepare, prepare_image
from .choose import resolve_algorithm
from .errors import MatcherError
from .correlate import FFTCorrelator, correlate_direct
from .reference import window_scores
from .window_sums import pairwise_error_scale, window_extremes, window_sums, window_sums_of_squares

__all__ = ["match_template", "match_templates", "set_num_threads"]

_EPS = np.finfo(np.float64).eps
_EXACT_INTEGER = 2.0**52  # integer sums below this are exact in float64
_TOLERANCE = {"exact": 1e-10, "fast": 1e-6}
_RECHECK_VALUES = 1 << 22  # pixel values per batch of windows recomputed by definition
_DIRECT_DEGENERATE = 1 << 12  # up to this many candidate windows are tested one by one
_MIN_BAND_OUTPUTS = 1 << 18  # maps smaller than this are scored in one piece
_USABLE_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_CORES = _USABLE_CORES  # threads for bands and FFTs; set_num_threads changes it


def match_template(image, template, method="ncc", *, mask=None, mode="correlate", precision="fast", algorithm="auto"):
    """Score every position of ``template`` over ``image``.

    With ``M`` the mask weights (all ones without a mask), ``T`` the template
    and ``I`` the image window at ``(y, x)``, sums over pixels and channels:

    ============  ==============================================================
    method        score (OpenCV constant)
    ============  ==============================================================
    ssd           ``sum(((T - I) M)^2)``  (TM_SQDIFF; lower is better)
    ssd_normed    ``min(1, ssd / sqrt(sum((T M)^2) sum((I M)^2)))`` (TM_SQDIFF_NORMED)
    ccorr         ``sum(T I M^2)`` (TM_CCORR)
    ccorr_normed  ``ccorr / sqrt(sum((T M)^2) sum((I M)^2))`` in [-1, 1] (TM_CCORR_NORMED)
    ccoeff        ``sum(T' I')``, ``X' = M (X - sum(M X) / sum(M))`` per channel (TM_CCOEFF)
    ncc           ``ccoeff / sqrt(sum(T'^2) sum(I'^2))`` in [-1, 1] (TM_CCOEFF_NORMED)
    ============  ==============================================================

    Where a denominator vanishes the score is defined, never NaN: ``ncc`` is 0
    for a constant window or template (no evidence, not a false 1.0);
    ``ccorr_normed`` is 0 when either norm is 0; ``ssd_normed`` is 0 when both
    are 0 and 1 when one is, and saturates at 1 (as OpenCV's unmasked
    TM_SQDIFF_NORMED does; OpenCV's masked one does not).

    Parameters
    ----------
    image : array_like, shape (H, W), (H, W, C) or (N,)
        bool, integer or float; C in 1..4; 1-D is a single row.
    template : array_like, shape (h, w), (h, w, C) or (n,)
        Same number of channels as ``image``; must fit inside it.
    method : str or int
        One of :data:`matcher.METHODS`, or OpenCV's ``TM_*`` constant (0-5) or name.
    mask : array_like, shape (h, w) or (h, w, C), optional, keyword-only
        bool or integer (non-zero = pixel used) or float weights in [0, 1].
    mode : {"correlate", "convolve"}, keyword-only
        ``"convolve"`` flips the template (and mask) by 180 degrees first.
    precision : {"fast", "exact"}, keyword-only
        Error tolerance against the float64 reference: 1e-4 ("fast") or 1e-9
        ("exact") of the score range. Both are float64 today; "fast" tolerates
        more before recomputing a window by definition.
    algorithm : {"auto", "direct", "fft"}, keyword-only
        How to compute the correlations; ``"auto"`` asks :func:`matcher.choose_algorithm`.

    Returns
    -------
    scores : ndarray of float64, shape (H - h + 1, W - w + 1), or (N - n + 1,) for 1-D
        ``scores[y, x]`` scores the window whose top-left corner is ``(x, y)``.

    Raises
    ------
    MatcherError (a ValueError)
        Unknown method, mode, precision or algorithm; empty arrays; NaN or inf;
        template larger than the image; channel or mask shape mismatch.
    TypeError
        Non-numeric arrays.

    References
    ----------
    J. P. Lewis, "Fast Normalized Cross-Correlation", Vision Interface, 1995.
    D. Padfield, "Masked Object Registration in the Fourier Domain", IEEE TIP 21(5), 2012.

    Examples
    --------
    >>> scores = match_template([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0], [3, 4, 5], "ssd")
    >>> int(scores.argmin()), float(scores.min())
    (6, 0.0)
    """
    return match_templates(image, [template], method, masks=[mask], mode=mode, precision=precision, algorithm=algorithm)[0]


def match_templates(image, templates, method="ncc", *, masks=None, mode="correlate", precision="fast", algorithm="auto"):
    """Score several templates over one image, sharing the image-side work.

    The image is validated, centred and transformed once; window sums are
    shared by templates of equal shape. Arguments are as in
    :func:`match_template`, with ``templates`` a sequence and ``masks`` None
    or a sequence of the same length (entries may be None).

    Returns
    -------
    list of ndarray
        One score map per template, in order.

    Examples
    --------
    >>> maps = match_templates([[1, 2, 3, 4]], [[[2, 3]], [[4]]], "ssd")
    >>> [m.tolist() for m in maps]
    [[[2.0, 0.0, 2.0]], [[9.0, 4.0, 1.0, 0.0]]]
    """
    check_choice("precision", precision, PRECISIONS)
    templates = list(templates)
    if not templates:
        raise MatcherError("templates must contain at least one template, got an empty sequence")
    masks = [None] * len(templates) if masks is None else list(masks)
    if len(masks) != len(templates):
        raise MatcherError(f"masks must have one entry per template ({len(templates)}), got {len(masks)}")
    prepared_image = prepare_image(image)
    problems = [prepare(image, t, method, mask=m, mode=mode, prepared_image=prepared_image) for t, m in zip(templates, masks)]
    algorithms = [
        resolve_algorithm(algorithm, p.image.shape[1:], p.template.shape[1:], masked=p.weights is not None)
        for p in problems
    ]
    results = [np.empty(p.out_shape) for p in problems]
    bounds = _band_bounds(problems)
    workers = 1 if len(bounds) > 2 else _CORES  # threads share the cores, or the FFT does

    def score_band(k):
        # Band k computes output rows bounds[k]:bounds[k+1] of every map, from
        # the image rows those windows cover; the last band runs to the end.
        r0, r1 = bounds[k], bounds[k + 1]
        last = k == len(bounds) - 2
        h_max = max(p.template.shape[1] for p in problems)
        band_end = problems[0].image.shape[1] if last else r1 + h_max - 1
        sides = {}
        # Templates of one shape share window sums; once a shape is done, its
        # sums are dropped (the image spectra stay for the other shapes).
        order = sorted(range(len(problems)), key=lambda i: problems[i].template.shape[1:])
        for n, i in enumerate(order):
            p, algo, out = problems[i], algorithms[i], results[i]
            band = replace(p, image=p.image[:, r0:band_end])
            if algo not in sides:
                sides[algo] = _ImageSide(band.image, p.integer_valued, algo, workers=workers)
            rows = out.shape[0] - r0 if last else r1 - r0
            out[r0 : r0 + rows] = _scores(sides[algo], band, _TOLERANCE[precision])[:rows]
            shape = p.template.shape[1:]
            if n + 1 == len(order) or problems[order[n + 1]].template.shape[1:] != shape:
                for side in sides.values():
                    side.forget(shape)

    if len(bounds) == 2:
        score_band(0)
    else:
        with ThreadPoolExecutor(len(bounds) - 1) as pool:
            list(pool.map(score_band, range(len(bounds) - 1)))
    return [r[0] if p.one_d else r for r, p in zip(results, problems)]


def set_num_threads(n=None):
    """Set how many threads matcher's engine uses; ``None`` means every usable core.

    Large score maps are split into that many bands scored in parallel, and
    FFTs use that many workers. A server running several worker processes
    sets this to its share of the cores so that they do not oversubscribe.

    Parameters
    ----------
    n : int or None
        A positive number of threads.

    Returns
    -------
    int
        The previous setting.

    Examples
    --------
    >>> previous = set_num_threads(1)
    >>> _ = set_num_threads(previous)
    """
    global _CORES
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise MatcherError(f"n must be a positive integer or None, got {n!r}")
    previous, _CORES = _CORES, (_USABLE_CORES if n is None else int(n))
    return previous


def _band_bounds(problems):
    """Output-row boundaries of the horizontal bands scored in parallel, one per core.

    Small maps are not split, and bands are never thinner than the tallest
    template (their overlap is recomputed).
    """
    out_rows = min(p.out_shape[0] for p in problems)
    h_max = max(p.template.shape[1] for p in problems)
    outputs = out_rows * min(p.out_shape[1] for p in problems)
    bands = 1 if outputs < _MIN_BAND_OUTPUTS else max(1, min(_CORES, out_rows // h_max))
    return [round(out_rows * k / bands) for k in range(bands + 1)]


class _ImageSide:
    """The work on one image that every template matched against it shares."""

    def __init__(self, image, integer_valued, algorithm, *, workers):
        self.image = image
        self.integer_valued = integer_valued
        self.algorithm = algorithm
        self.workers = workers
        self.centre = [float(np.round(c.mean()) if integer_valued else c.mean()) for c in image]
        self.centred = [c - g for c, g in zip(image, self.centre)]
        self._cache = {}

    def forget(self, shape):
        """Drop the cached window sums of templates of ``shape``, and all window extremes."""
        for key in [k for k in self._cache if k[0] == "extremes" or (k[0] == "sums" and k[2] == shape)]:
            del self._cache[key]

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def correlate(self, c, kernel, *, squared=False):
        """Correlate centred channel ``c`` (or its square) with ``kernel``: (values, error bound)."""
        norm = float(np.sqrt(np.sum(kernel * kernel)))  # not BLAS: no thread wake-ups
        if self.algorithm == "fft":
            corr = self._cached(("fft", c, squared), lambda: FFTCorrelator(self._plane(c, squared), workers=self.workers))
            return corr(kernel), corr.error_bound(norm)
        plane = self._plane(c, squared)
        peak = self._cached(("peak", c, squared), lambda: float(np.abs(plane).max()))
        taps = kernel.size
        return correlate_direct(plane, kernel), 2.0 * _EPS * taps * peak * norm

    def _plane(self, c, squared):
        if not squared:
            return self.centred[c]
        return self._cached(("square", c), lambda: np.square(self.centred[c]))

    def window_sum(self, c, shape, *, squared=False):
        """Window sums of centred channel ``c`` (or of its square): ``(sums, error bound, exact)``.

        Integer data small enough for float64 gives exact sums (bound 0).
        """

        def make():
            plane = self.centred[c]
            n = float(np.prod(shape))
            peak = float(np.abs(plane).max())
            exact = self.integer_valued and peak * peak * n * n < _EXACT_INTEGER
            if squared:
                sums = window_sums_of_squares(plane, shape, exact_integers=exact)
                return sums, (0.0 if exact else pairwise_error_scale(shape) * sums), exact
            sums = window_sums(plane, shape, exact_integers=exact)
            return sums, (0.0 if exact else pairwise_error_scale(shape) * n * peak), exact

        return self._cached(("sums", c, shape, squared), make)

    def extremes(self, c, shape, out_shape, offset):
        """Exact (min, max) of channel ``c`` over a box inside every window."""
        return self._cached(
            ("extremes", c, shape, offset, out_shape), lambda: window_extremes(self.image[c], shape, out_shape, offset)
        )


def _scores(side, p, tolerance):
    """Score map of one validated problem on a prepared image."""
    method, weights = p.method, p.weights
    C, h, w = p.template.shape
    out_shape = p.out_shape
    num = np.zeros(out_shape)
    err_num = 0.0
    normalised = method in ("ncc", "ccorr_normed", "ssd_normed")
    den, err_den, t_den, exact_den = np.zeros(out_shape), 0.0, 0.0, True
    for c in range(C):
        terms = _channel_terms(side, c, p.template[c], None if weights is None else weights[c], method)
        num += terms.num
        err_num = err_num + terms.err_num
        if normalised:
            den += terms.den
            err_den = err_den + terms.err_den
            t_den += terms.t_den
            exact_den = exact_den and terms.exact_den
    if not normalised:  # ssd, ccorr, ccoeff: tolerance relative to the score range
        if method == "ssd":
            np.maximum(num, 0.0, out=num)
        _recompute(num, np.broadcast_to(err_num > tolerance * float(np.ptp(num)), out_shape), p)
        return num
    # Degenerate windows (flat for ncc, all zero otherwise) get their documented
    # value exactly: from exact integer sums, or else among the windows whose
    # denominator is within its error bound of zero (no other can be).
    degenerate = den == 0 if exact_den else _degenerate_windows(side, p, den <= err_den)
    scores, recheck = _normalise(method, num, err_num, den, err_den, t_den, tolerance)
    recheck &= ~degenerate
    if method == "ssd_normed":
        # A zero window scores 0 against a zero template and 1 against any other.
        scores[degenerate] = 0.0 if t_den == 0 else 1.0
        if t_den == 0:
            scores[~degenerate] = 1.0
    else:
        scores[degenerate] = 0.0  # flat window (ncc) or zero window (ccorr_normed)
        if t_den == 0:  # constant (ncc) or all-zero (ccorr_normed) template
            return np.zeros(out_shape)
    _recompute(scores, recheck, p)
    return scores


def _degenerate_windows(side, p, candidates):
    """Which ``candidates`` windows are exactly flat (ncc) or exactly zero (others).

    A few candidates are gathered and tested directly, over the used pixels.
    Many (large flat areas) are tested at once with exact window minima and
    maxima over the bounding box of the used pixels: sufficient, not
    necessary; the rest are recomputed by definition.
    """
    ys, xs = np.nonzero(candidates)
    if ys.size <= max(_DIRECT_DEGENERATE, candidates.size // 64):
        degenerate = np.zeros(p.out_shape, bool)
        for y, x, windows in _gather(p, ys, xs):
            used = np.ones(windows.shape[1:], bool) if p.weights is None else p.weights > 0
            lo = np.where(used, windows, np.inf).min(axis=(2, 3))
            hi = np.where(used, windows, -np.inf).max(axis=(2, 3))
            flat = lo == hi if p.method == "ncc" else (lo == 0) & (hi == 0)
            degenerate[y, x] = flat.all(axis=1)
        return degenerate
    _, h, w = p.template.shape
    used = np.ones((h, w), bool) if p.weights is None else (p.weights > 0).any(axis=0)
    rows, cols = np.nonzero(used)
    box = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    offset = (int(rows.min()), int(cols.min()))
    degenerate = candidates.copy()
    for c in range(p.image.shape[0]):
        lo, hi = side.extremes(c, box, p.out_shape, offset)
        degenerate &= (lo == hi) if p.method == "ncc" else ((lo == 0) & (hi == 0))
    return degenerate


def _gather(p, ys, xs):
    """Yield ``(ys, xs, windows)`` batches, windows shaped ``(K, C, h, w)``."""
    C, h, w = p.template.shape
    view = sliding_window_view(p.image, (h, w), axis=(1, 2))  # (C, H', W', h, w)
    batch = max(1, _RECHECK_VALUES // (C * h * w))
    for start in range(0, ys.size, batch):
        y, x = ys[start : start + batch], xs[start : start + batch]
        yield y, x, np.ascontiguousarray(view[:, y, x].transpose(1, 0, 2, 3))


class _Terms:
    """One channel's share of a score: numerator, denominator, template term, error bounds."""

    __slots__ = ("num", "err_num", "den", "err_den", "t_den", "exact_den")

    def __init__(self, num, err_num, den=None, err_den=0.0, t_den=0.0, exact_den=False):
        self.num, self.err_num, self.den, self.err_den = num, err_num, den, err_den
        self.t_den, self.exact_den = t_den, exact_den


def _channel_terms(side, c, T, M, method):
    """Window sums ``a1 = sum(M I)``, ``a2 = sum(M^2 I)``, ``q = sum(M^2 I^2)`` and the method's terms.

    ``I`` is the centred image channel. Every array comes with a bound on its
    absolute rounding error (0 where integer arithmetic makes it exact).
    """
    g = side.centre[c]
    if M is None:
        # Only the sums the method needs: ccorr none, ccoeff sum(I), ssd sum(I^2).
        zeros = (0.0, 0.0, True)
        a1, err_a, exact_a = zeros if method in ("ccorr", "ssd") else side.window_sum(c, T.shape)
        q, err_q, exact_q = zeros if method in ("ccorr", "ccoeff") else side.window_sum(c, T.shape, squared=True)
        a2, sw, sw2, m2, exact = a1, float(T.size), float(T.size), 1.0, exact_a and exact_q
    else:
        m2 = M * M
        sw, sw2, exact = float(M.sum()), float(m2.sum()), False
        # Only the correlations the method needs: a1 for the weighted mean
        # (ncc, ccoeff), a2 and q for the window's energy (normalised methods).
        a1, err_a = side.correlate(c, M) if method in ("ncc", "ccoeff") else (0.0, 0.0)
        a2 = 0.0
        if method == "ncc" and np.array_equal(M, m2):
            a2 = a1
        elif method in ("ncc", "ccorr_normed", "ssd_normed"):
            a2, err_a2 = side.correlate(c, m2)
            err_a = np.maximum(err_a, err_a2)
        q, err_q = (0.0, 0.0) if method in ("ccorr", "ccoeff") else side.correlate(c, m2, squared=True)
    if method in ("ncc", "ccoeff"):
        used = T if M is None else T[M > 0]
        mean_t = T.mean() if M is None else float((M * T).sum() / sw)
        t_dev = np.zeros_like(T) if used.min() == used.max() else T - mean_t
        kernel = m2 * t_dev
        x, err_x = side.correlate(c, kernel)
        k_sum = float(kernel.sum())
        num = x - (k_sum / sw) * a1
        err_num = err_x + abs(k_sum) / sw * err_a
        if method == "ccoeff":
            return _Terms(num, err_num)
        t_den = float((m2 * t_dev * t_dev).sum())
        if exact:  # integer sums: sw * q - a1^2 is an exact integer
            den = q * sw
            den -= a1 * a1
            den /= sw
            return _Terms(num, err_num, den, 0.0, t_den, True)
        mean_i = a1 / sw
        den = q - (2.0 * mean_i) * a2 + (mean_i * mean_i) * sw2
        err_den = err_q + 2.0 * np.abs(mean_i) * err_a + 8.0 * _EPS * (np.abs(q) + np.abs(mean_i * a2))
        return _Terms(num, err_num, den, err_den, t_den)
    t_norm = float((m2 * T * T).sum())
    energy = q + (2.0 * g) * a2 + g * g * sw2  # sum((I M)^2) of the raw window; exact for integers
    err_energy = 0.0 if exact else err_q + 2.0 * abs(g) * err_a + 8.0 * _EPS * (q + np.abs(2.0 * g * a2) + g * g * sw2)
    if method in ("ccorr", "ccorr_normed"):
        kernel = m2 * T
        x, err_x = side.correlate(c, kernel)
        shift = g * float(kernel.sum())
        return _Terms(x + shift, err_x + 4.0 * _EPS * (np.abs(x) + abs(shift)), energy, err_energy, t_norm, exact)
    t_g = T - g  # ssd is unchanged when image and template shift together
    kernel = m2 * t_g
    x, err_x = side.correlate(c, kernel)
    t_sq = float((m2 * t_g * t_g).sum())
    num = q - 2.0 * x
    num += t_sq
    err = err_q + 2.0 * err_x + 8.0 * _EPS * (np.abs(q) + t_sq)
    return _Terms(num, err, energy, err_energy, t_norm, exact)


def _normalise(method, num, err_num, den, err_den, t_den, tolerance):
    """Normalised scores ``num / sqrt(t_den * den)`` and where their error bound exceeds ``tolerance``.

    The bound is first order: ``err_num / d + |score| * err_den / (2 den)``
    with ``d = sqrt(t_den * den)``; windows whose denominator is not clearly
    positive (``den <= err_den``) are flagged too.
    """
    denom = np.maximum(den, 0.0)
    denom *= t_den
    np.sqrt(denom, out=denom)
    scores = np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)
    np.clip(scores, 0.0 if method == "ssd_normed" else -1.0, 1.0, out=scores)
    # err > tol  <=>  err_num + |score| * err_den * d / (2 den) > tol * d
    excess = np.broadcast_to(err_num, den.shape).copy() if np.ndim(err_num) == 0 else err_num.copy()
    if np.any(err_den):
        with np.errstate(divide="ignore", invalid="ignore"):
            excess += np.abs(scores) * err_den * np.sqrt(t_den / np.maximum(den, 0.0)) / 2.0
    excess -= tolerance * denom
    recheck = excess > 0
    recheck |= den <= err_den
    return scores, recheck


def _recompute(scores, recheck, p):
    """Replace the flagged scores by their definition (two-pass, per window)."""
    ys, xs = np.nonzero(recheck)
    for y, x, windows in _gather(p, ys, xs):
        scores[y, x] = window_scores(windows, p.template, p.weights, p.method)
