"""Assembling every window's score from correlations and window sums, in float64 (private).

This is the general path: masks, maps under 65536 positions, and the bands
:mod:`matcher.scores.chunked_assembly` (the large unmasked maps) hands back.

:class:`ImageSide` holds the work on one image (band) that every template
shares: the centred channels, their FFT spectra, window sums and extremes.
:func:`score_map` combines them with one template into a score map:

- numerator and denominator sums per channel (:func:`_channel_terms`), each
  with a bound on its rounding error (0 where integer arithmetic is exact);
- degenerate windows (flat for ncc, all zero for the other normalised
  methods) found exactly and given their documented value;
- the windows whose error bound exceeds the tolerance recomputed by
  definition with :func:`matcher.scores.reference.window_scores`.
"""

import numpy as np

from .degenerate import degenerate_at, degenerate_score, template_degenerate_score
from .correlate import BLOCKED_DFT_SIDE, OPENCV_DIRECT_TAPS, FFTCorrelator, correlate_dft, correlate_direct, fft_error_bound
from .reference import NEAR_PERFECT, centred, rescore
from .window_sums import pairwise_error_scale, window_extremes, window_sums, window_sums_of_squares

_EPS = np.finfo(np.float64).eps
_EXACT_INTEGER = 2.0**52  # integer sums below this are exact in float64
_NEAR_PERFECT_VALUES = 1 << 22  # near-perfect windows are recomputed if they hold up to this many values in all


class ImageSide:
    """The work on one image that every template matched against it shares."""

    def __init__(self, image, integer_valued, algorithm, *, workers):
        self.image = image
        self.integer_valued = integer_valued
        self.algorithm = algorithm
        self.workers = workers
        self.centre = [float(np.round(c.mean(dtype=np.float64)) if integer_valued else c.mean(dtype=np.float64)) for c in image]
        self.centred = [np.subtract(c, g, dtype=np.float64) for c, g in zip(image, self.centre)]
        self._cache = {}

    def forget(self, shape):
        """Drop the cached window sums of templates of ``shape``, and all window extremes."""
        for key in [k for k in self._cache if k[0] == "extremes" or (k[0] == "sums" and k[2] == shape)]:
            del self._cache[key]

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def correlate(self, c, kernel, *, squared=False, once=False):
        """Correlate centred channel ``c`` (or its square) with ``kernel``: (values, error bound).

        ``once`` says no other kernel will be correlated with this plane, so
        for mid-sized kernels OpenCV's blocked DFT beats a reusable spectrum.
        """
        norm = float(np.sqrt(np.sum(kernel * kernel)))  # not BLAS: no thread wake-ups
        # one unmasked kernel of more taps than OpenCV sums directly, up to BLOCKED_DFT_SIDE: its blocked DFT
        if self.algorithm == "fft" and once and kernel.size > OPENCV_DIRECT_TAPS and max(kernel.shape) <= BLOCKED_DFT_SIDE:
            plane = self._plane(c, squared)
            peak = self._cached(("peak", c, squared), lambda: float(np.abs(plane).max()))
            return correlate_dft(plane, kernel), fft_error_bound(plane.shape, peak, norm)
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


def score_map(side, p, tolerance):
    """Score map of one validated problem on a prepared image."""
    method, weights = p.method, p.weights
    C, h, w = p.template.shape
    out_shape = p.out_shape
    num = den = None
    err_num = err_den = t_den = 0.0
    normalised = method in ("ncc", "ccorr_normed", "ssd_normed")
    exact_den = True
    for c in range(C):
        terms = _channel_terms(side, c, p.template[c], None if weights is None else weights[c], method)
        num = _accumulate(num, terms.num)
        err_num = err_num + terms.err_num
        if normalised:
            den = _accumulate(den, terms.den)
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
    if exact_den:
        degenerate = den == 0
    else:
        ys, xs = np.nonzero(den <= err_den)
        degenerate = np.zeros(out_shape, bool)
        degenerate[ys, xs] = degenerate_at(p, ys, xs, lambda c, box, offset: side.extremes(c, box, out_shape, offset))
    scores, recheck = _normalise(method, num, err_num, den, err_den, t_den, tolerance)
    recheck &= ~degenerate
    if t_den == 0:  # a constant (ncc) or all-zero template: every window has its documented score
        scores[...] = template_degenerate_score(method)
        scores[degenerate] = degenerate_score(method, template_degenerate=True)
        return scores
    scores[degenerate] = degenerate_score(method)
    _recompute(scores, recheck, p)
    _recompute_near_perfect(scores, p, tolerance)
    return scores


def _recompute_near_perfect(scores, p, tolerance):
    """Recompute by definition the windows within ``tolerance`` of a perfect score, when they are few.

    Their scores are already within the tolerance; recomputed, an exact copy
    of the template scores exactly 1 (0 for ssd_normed), as :func:`matcher.find` reports it.
    """
    near = scores <= tolerance if p.method == "ssd_normed" else scores >= 1.0 - tolerance
    ys, xs = np.nonzero(near)
    if 0 < ys.size <= NEAR_PERFECT and ys.size * p.template.size <= _NEAR_PERFECT_VALUES:
        rescore(p, scores, ys, xs)


def _accumulate(total, term):
    """``total + term``, in place after the first channel (``term`` may be a cached array: never modified)."""
    if total is None:
        return np.array(term, dtype=np.float64, copy=True)
    total += term
    return total


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
        t_dev = np.zeros_like(T) if used.min() == used.max() else centred(T, M)
        kernel = m2 * t_dev
        x, err_x = side.correlate(c, kernel, once=M is None)
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
        x, err_x = side.correlate(c, kernel, once=M is None)
        shift = g * float(kernel.sum())
        return _Terms(x + shift, err_x + 4.0 * _EPS * (np.abs(x) + abs(shift)), energy, err_energy, t_norm, exact)
    t_g = T - g  # ssd is unchanged when image and template shift together
    kernel = m2 * t_g
    x, err_x = side.correlate(c, kernel, once=M is None)
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
    positive = denom > 0
    scores = num  # the numerator is ours to overwrite (see _accumulate)
    np.divide(num, denom, out=scores, where=positive)
    scores[~positive] = 0.0
    np.clip(scores, 0.0 if method == "ssd_normed" else -1.0, 1.0, out=scores)
    # err > tol  <=>  err_num + |score| * err_den * d / (2 den) > tol * d
    if np.ndim(err_num) == 0 and not np.any(err_den):  # exact sums: one comparison
        recheck = denom < err_num / tolerance
        recheck |= den <= 0
        return scores, recheck
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
    rescore(p, scores, *np.nonzero(recheck))
