"""One image channel of a band, as the large-map path needs it (private).

:class:`BandChannel` holds the channel's centre, extremes, float32 planes
(centred or raw) and its window sums, computed on demand and kept for the
next template of the same shape: OpenCV's box filters, exact for small
integers, or split sums (:func:`split_sums`) when ``exact`` scores need
better than running sums of floats. :meth:`BandChannel.sum_errors` bounds
their errors.
"""

import math

import cv2
import numpy as np

from .correlate import BLOCKED_DFT_SIDE, OPENCV_DIRECT_TAPS, FFTCorrelator, correlate_dft, correlate_direct
from .error_model import float64_coefficients

_EPS64 = float(np.finfo(np.float64).eps)
_EXACT = 2.0**52
_OPENCV_DEPTHS = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


class BandChannel:
    """One image channel of a band: its float32 centred plane, and window sums on demand."""

    def __init__(self, index, plane, integer_valued, *, workers=1):
        self.index, self.plane = index, plane
        self.integer_valued, self.workers = integer_valued, workers
        small_integers = integer_valued and plane.dtype.itemsize <= 2
        if plane.dtype not in _OPENCV_DEPTHS:
            plane = plane.astype(np.int16 if small_integers else np.float64)
        self._src = plane
        mean = cv2.mean(plane)[0]
        # A centre that float32 holds exactly: integer for integer data.
        self.centre = float(np.round(mean)) if integer_valued else float(np.float32(mean))
        lo, hi, _, _ = cv2.minMaxLoc(plane)
        self.peak = max(hi - self.centre, self.centre - lo)  # largest centred magnitude
        self.magnitude = max(abs(lo), abs(hi))  # largest raw magnitude
        self._planes = {}
        # Small integers: window sums of the raw values are exact (exact_for
        # says up to which window size). Other data: sums of the raw values
        # unless a large offset would dominate them, then of the centred ones.
        self.exact = small_integers
        self.offset = 0.0 if self.exact or self.magnitude <= 4.0 * self.peak else self.centre
        self.split = False  # set for "exact" scores on data whose running sums are not exact
        self._sums = {}
        self._planes64 = {}
        self._spectra = {}

    def exact_for(self, n):
        """Whether the window terms of an ``n``-pixel template stay exact (below 2**52)."""
        return not self.exact or (n * n + 4 * n) * self.magnitude**2 < _EXACT

    def sums(self, shape, first):
        """Full-band window sums of (plane - offset) (if ``first``) and of its square: (S1 or None, S2).

        Running sums (OpenCV box filters): exact for small integers, otherwise
        with errors relative to a window's own values (:meth:`sum_errors`), or,
        with ``split`` set, far smaller ones (:func:`split_sums`). Only the
        last window shape is kept.
        """
        key = (shape, first, self.split)
        if key not in self._sums:
            h, w = shape
            src = self._src if self.offset == 0.0 else np.subtract(self._src, self.offset, dtype=np.float64)
            if self.split:
                self._sums = {key: split_sums(np.asarray(src, dtype=np.float64), shape, sum_peak(self), first)}
                return self._sums[key]
            kw = dict(anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
            # OpenCV sums 8- and 16-bit data (and squares of 8-bit data) in int32
            top = float(np.iinfo(src.dtype).max) if src.dtype.kind in "iu" else 0.0
            s1 = None
            if first:
                wide = src.astype(np.float64) if h * w * top >= 2**31 else src
                s1 = cv2.boxFilter(wide, cv2.CV_64F, (w, h), **kw)
            if src.dtype == np.uint8 and h * w * top * top >= 2**31:
                src = src.astype(np.uint16)
            self._sums = {key: (s1, cv2.sqrBoxFilter(src, cv2.CV_64F, (w, h), **kw))}
        return self._sums[key]

    def sum_errors(self, n):
        """Bounds on the errors of :meth:`sums` for an ``n``-pixel window: (sum, sum of squares)."""
        m = sum_peak(self)
        if self.exact and n * m * m < _EXACT:  # integer sums below 2**52
            return 0.0, 0.0
        steps = 2.0 * (self.plane.shape[0] + self.plane.shape[1] + 2) * _EPS64
        if self.split:  # running sums of remainders only, then one rounding of the total
            tail1, tail2 = split_tails(m, n)
            return steps * n * tail1 + 2.0 * _EPS64 * n * m, (steps + 2.0 * _EPS64) * n * tail2 + 2.0 * _EPS64 * n * m * m
        return steps * n * m, steps * n * m * m

    def plane32(self, centred):
        """The channel in float32, centred or raw: exact for small integers, one rounding otherwise."""
        if centred not in self._planes:
            if centred:
                self._planes[centred] = cv2.subtract(self._src, self.centre, dtype=cv2.CV_32F)
            else:
                self._planes[centred] = np.asarray(self._src, dtype=np.float32)
        return self._planes[centred]

    def correlate(self, kernel, out_shape, direct, centred):
        """Float32 correlation of the (centred or raw) channel with ``kernel``, valid part."""
        k32 = kernel.astype(np.float32)
        plane = self.plane32(centred)
        if direct:
            full = cv2.filter2D(plane, cv2.CV_32F, k32, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
            return full[: out_shape[0], : out_shape[1]]
        return cv2.matchTemplate(plane, k32, cv2.TM_CCORR)


    def plane64(self, plane):
        """The channel in float64: "raw", "centred" (minus its centre) or "centred_squared"."""
        if plane not in self._planes64:
            if plane == "raw":
                self._planes64[plane] = np.asarray(self.plane, dtype=np.float64)
            elif plane == "centred":
                self._planes64[plane] = np.subtract(self.plane, self.centre, dtype=np.float64)
            else:
                self._planes64[plane] = np.square(self.plane64("centred"))
        return self._planes64[plane]

    def plane_peak(self, plane):
        """The largest magnitude in :meth:`plane64`."""
        return {"raw": self.magnitude, "centred": self.peak, "centred_squared": self.peak * self.peak}[plane]

    def correlate64(self, kernel, algorithm, *, plane="centred", rows=None, cols=None, exact=False, reuse=True):
        """Float64 correlation of a plane (:meth:`plane64`) with ``kernel``, valid part: ``(values, error bound)``.

        ``rows = (a, b)`` and ``cols = (c0, c1)`` restrict it to those output
        rows and columns (default all). ``algorithm`` is obeyed: "direct" sums
        products (OpenCV's filter in pieces of < 50 taps); "fft" keeps the
        plane's spectrum for the next kernel (``reuse``, whole planes only) or
        uses OpenCV's blocked DFT for kernels of 50 taps up to 256 px a side,
        scipy's FFT otherwise. ``exact`` promises integer products and sums
        below 2**53 (the bound is then 0).
        """
        h, w = kernel.shape
        src = self.plane64(plane)
        whole = rows is None and cols is None
        if not whole:
            a, b = rows or (0, src.shape[0] - h + 1)
            c0, c1 = cols or (0, src.shape[1] - w + 1)
            src = src[a : b + h - 1, c0 : c1 + w - 1]
        norm = float(np.sqrt(np.sum(kernel * kernel)))
        peak = self.plane_peak(plane)
        if algorithm == "direct":
            local, per_peak = float64_coefficients("direct", h * w, src.size, exact=exact)
            return correlate_direct(src, kernel), norm * per_peak * peak
        if whole and reuse:
            if plane not in self._spectra:
                self._spectra[plane] = FFTCorrelator(src, workers=self.workers)
            corr = self._spectra[plane]
            return corr(kernel), corr.error_bound(norm)
        _, per_peak = float64_coefficients("fft", h * w, src.size)
        if h * w > OPENCV_DIRECT_TAPS and max(h, w) <= BLOCKED_DFT_SIDE:
            return correlate_dft(src, kernel), norm * per_peak * peak
        return FFTCorrelator(src, workers=self.workers if whole else 1)(kernel), norm * per_peak * peak


def sum_peak(ch):
    """The largest magnitude among the values a channel's window sums add up."""
    return ch.magnitude if ch.offset == 0.0 else ch.peak


def split_tails(m, n):
    """Scales of :func:`split_sums` for values up to ``m`` and ``n``-pixel windows.

    Returns the largest remainder summed for the sums (``tail1``) and the
    largest remainder term summed for the sums of squares (``tail2``).
    """
    if m == 0:
        return 0.0, 0.0
    e = math.frexp(m)[1]  # m < 2**e
    bits2 = max(1, int((52 - math.ceil(math.log2(max(n, 1)))) // 2) - 1)
    q1, q2 = 2.0 ** (25 - e), 2.0 ** (bits2 - e)
    return 0.5 / q1, (0.5 / q2) * (2.0 * m + 0.5 / q2)


def split_sums(v, shape, m, first):
    """Window sums of ``v`` (if ``first``, else None) and of ``v**2``, float64, exact but for tiny remainders.

    ``v`` is split into a multiple of a power of two, whose (scaled) box sums
    are exact integers below 2**52, and a remainder, exact in float64 and at
    most half that power of two; squares split as ``h**2 + r (v + h)``. Only
    the remainders' running sums round (:meth:`BandChannel.sum_errors`).
    """
    h, w = shape
    n = h * w
    kw = dict(anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
    if m == 0:
        return (np.zeros_like(v) if first else None), np.zeros_like(v)
    e = math.frexp(m)[1]
    bits2 = max(1, int((52 - math.ceil(math.log2(max(n, 1)))) // 2) - 1)
    q1, q2 = 2.0 ** (25 - e), 2.0 ** (bits2 - e)
    s1 = None
    whole = np.multiply(v, q1)
    if first:
        np.rint(whole, out=whole)
        s1 = cv2.boxFilter(whole, cv2.CV_64F, (w, h), **kw)
        s1 /= q1
        whole /= q1
        np.subtract(v, whole, out=whole)  # exact: within half a step of v
        s1 += cv2.boxFilter(whole, cv2.CV_64F, (w, h), **kw)
        np.multiply(v, q2, out=whole)
    else:
        whole *= q2 / q1
    np.rint(whole, out=whole)
    part = np.divide(whole, q2)
    np.square(whole, out=whole)
    s2 = cv2.boxFilter(whole, cv2.CV_64F, (w, h), **kw)
    s2 /= q2 * q2
    np.subtract(v, part, out=whole)  # the remainder r, exact
    part += v
    whole *= part  # r (v + h)
    s2 += cv2.boxFilter(whole, cv2.CV_64F, (w, h), **kw)
    return s1, s2
