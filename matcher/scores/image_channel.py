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

from .correlate import (OPENCV_DIRECT_TAPS, FFTCorrelator, blocked_dft_wins, correlate_dft, correlate_direct,
                        fft_error_bound, fft_workers)
from .error_model import EPS64, EXACT_FLOAT64, float64_coefficients
from .workspace import lend

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
        self._integers_checked = small_integers
        self._sums = {}
        self._planes64 = {}
        self._spectra = {}

    def promote_integers(self):
        """Sum float data that holds only small integers (``|v| <= 65535``: an 8- or 16-bit image converted
        to float, say) as integer data: exact box sums of the raw values, without split sums. Checked once
        (it reads the channel twice); returns whether the sums are exact."""
        if not self._integers_checked:
            self._integers_checked = True
            src = self._src
            if src.dtype.kind == "f" and self.magnitude <= 65535 and np.array_equal(src, np.rint(src)):
                self.exact, self.offset, self._sums = True, 0.0, {}
        return self.exact

    def exact_for(self, n):
        """Whether the window terms of an ``n``-pixel template stay exact (below 2**52)."""
        return not self.exact or (n * n + 4 * n) * self.magnitude**2 < EXACT_FLOAT64

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
            src = self._summed()
            if self.split:
                self._sums = {key: split_sums(np.asarray(src, dtype=np.float64), shape, sum_peak(self), first)}
                return self._sums[key]
            kw = dict(anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
            # OpenCV sums 8- and 16-bit data (and squares of 8-bit data) in int32
            top = float(np.iinfo(src.dtype).max) if src.dtype.kind in "iu" else 0.0
            s1 = None
            if first:
                wide = src.astype(np.float64) if h * w * top >= 2**31 else src
                s1 = cv2.boxFilter(wide, cv2.CV_64F, (w, h), dst=self._lent("s1", np.float64), **kw)
            if src.dtype == np.uint8 and h * w * top * top >= 2**31:
                src = src.astype(np.uint16)
            s2 = cv2.sqrBoxFilter(src, cv2.CV_64F, (w, h), dst=self._lent("s2", np.float64), **kw)
            self._sums = {key: (s1, s2)}
        return self._sums[key]

    def variances(self, shape):
        """Split-sum window terms for ncc's denominator: ``(S1, V, err1, err_v, rel_v)`` (:func:`split_variances`),
        with ``V = n sum(P^2) - sum(P)^2`` free of the cancellation between its two terms. Only the last
        window shape is kept."""
        key = (shape, "variances")
        if key not in self._sums:
            self._sums = {key: split_variances(np.asarray(self._summed(), dtype=np.float64), shape, sum_peak(self),
                                               self._split_buffer)}
        return self._sums[key]

    def _summed(self):
        """The values the window sums add up: the channel minus its offset (in float64 where shifted)."""
        return self._src if self.offset == 0.0 else np.subtract(self._src, self.offset, dtype=np.float64)

    def _split_buffer(self, name, dtype):
        """A working array of the band's shape for :func:`split_variances`, or None: the channel's own for
        its results, one for every channel for the rest (they die before the next channel's are made)."""
        if name in ("s1", "var"):
            return self._lent("split/" + name, dtype)
        return lend("split/" + name, self._src.shape, dtype)

    def sum_errors(self, n):
        """Bounds on the errors of :meth:`sums` for an ``n``-pixel window: ``(sum, sum of squares, rel)``.

        The sum of squares errs by at most ``err2 + rel |S2|`` in each window:
        split sums round their total once (``rel``), the rest is their
        remainders' running sums; plain running sums carry all their error
        in ``err2`` (``rel`` 0).
        """
        m = sum_peak(self)
        if self.exact and n * m * m < EXACT_FLOAT64:  # integer sums below 2**52
            return 0.0, 0.0, 0.0
        steps = 2.0 * (self.plane.shape[0] + self.plane.shape[1] + 2) * EPS64
        if self.split:  # running sums of remainders only, then one rounding of the total
            tail1, tail2 = split_tails(m, n)
            return steps * n * tail1 + 2.0 * EPS64 * n * m, (steps + 2.0 * EPS64) * n * tail2, 2.0 * EPS64
        return steps * n * m, steps * n * m * m, 0.0

    def plane32(self, centred):
        """The channel in float32, centred or raw: exact for small integers, one rounding otherwise."""
        if centred not in self._planes:
            if centred:
                plane = cv2.subtract(self._src, self.centre, dst=self._lent("plane1", np.float32), dtype=cv2.CV_32F)
            elif self._src.dtype == np.float32:
                plane = self._src  # float32 already: no copy
            else:
                plane = self._lent("plane0", np.float32)
                if plane is None:
                    plane = self._src.astype(np.float32)
                else:
                    np.copyto(plane, self._src, casting="unsafe")
            self._planes[centred] = plane
        return self._planes[centred]

    def correlate(self, kernel, out_shape, direct, centred):
        """Float32 correlation of the (centred or raw) channel with ``kernel``, valid part."""
        k32 = kernel.astype(np.float32)
        plane = self.plane32(centred)
        if direct:
            full = cv2.filter2D(plane, cv2.CV_32F, k32, dst=self._lent("x", np.float32), anchor=(0, 0),
                                borderType=cv2.BORDER_CONSTANT)
            return full[: out_shape[0], : out_shape[1]]
        return cv2.matchTemplate(plane, k32, cv2.TM_CCORR, result=self._lent("x", np.float32, out_shape))

    def _lent(self, name, dtype, shape=None):
        """A working array of the band's shape (or ``shape``) for this channel, or None
        (:func:`matcher.scores.workspace.lend`: OpenCV then allocates its output itself)."""
        return lend(f"{name}/{self.index}", self._src.shape if shape is None else shape, dtype)


    def plane64(self, plane, part=None):
        """The channel in float64: "raw", "centred" (minus its centre), or the square of either
        ("raw_squared", "centred_squared"); only its rectangle ``part`` (a pair of slices), if given and the
        whole plane is not made yet (a float64 strip: the rest of a large plane is not needed)."""
        if plane in self._planes64:
            return self._planes64[plane] if part is None else self._planes64[plane][part]
        if part is not None:
            return self._make_plane64(plane, part)
        self._planes64[plane] = self._make_plane64(plane)
        return self._planes64[plane]

    def _make_plane64(self, plane, part=None):
        """:meth:`plane64` ``plane``: whole, in the band's working array of its name (the channel itself for
        "raw" float64 data), or its rectangle ``part``, in a new array."""
        src = self.plane if part is None else self.plane[part]
        if plane == "raw" and src.dtype == np.float64:
            return src
        out = None if part is not None else self._lent("plane64/" + plane, np.float64)
        if plane.endswith("_squared"):
            return np.square(self.plane64(plane.removesuffix("_squared"), part), out=out)
        return np.subtract(src, self.centre if plane == "centred" else 0.0, dtype=np.float64, out=out)

    def plane_peak(self, plane):
        """The largest magnitude in :meth:`plane64`."""
        peak = self.magnitude if plane.startswith("raw") else self.peak
        return peak * peak if plane.endswith("_squared") else peak

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
        whole = rows is None and cols is None
        if whole:
            src = self.plane64(plane)
        else:
            H, W = self.plane.shape
            a, b = rows or (0, H - h + 1)
            c0, c1 = cols or (0, W - w + 1)
            src = self.plane64(plane, (slice(a, b + h - 1), slice(c0, c1 + w - 1)))
        peak = self.plane_peak(plane)
        if algorithm == "direct":
            _, per_peak = float64_coefficients(h * w, exact=exact)
            return correlate_direct(src, kernel), float(np.sqrt(np.sum(kernel * kernel))) * per_peak * peak
        if whole and reuse:
            if plane not in self._spectra:
                self._spectra[plane] = FFTCorrelator(src, workers=fft_workers(src.size, self.workers))
            corr = self._spectra[plane]
            return corr(kernel), corr.error_bound(kernel)
        if h * w > OPENCV_DIRECT_TAPS and blocked_dft_wins((h, w), src.size):
            return correlate_dft(src, kernel), fft_error_bound(src.shape, peak, peak, kernel)
        workers = fft_workers(src.size, self.workers) if whole else 1
        corr = FFTCorrelator(src, workers=workers)
        return corr(kernel), corr.error_bound(kernel)


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


_INT_SUMS = 2.0**30  # |window sum| of the integer parts, so that n * sum(h^2) and sum(h)^2 fit in an int64
_FLOAT_SUMS = 2.0**51  # window sums of the squared integer parts stay exact in float64


def split_variances(v, shape, m, buffers=None):
    """Window sums of ``v`` and ``n sum(v^2) - sum(v)^2`` (n pixels a window), the latter without cancellation.

    ``v = h / 2^k + r`` with integers ``h`` (``k`` as large as keeps the
    window sums of ``h`` below 2**30 and those of ``h^2`` below 2**51) and
    remainders ``|r| <= 2^-k / 2``, exact in float64. Then, with
    ``H1 = sum(h)``, ``H2 = sum(h^2)``, ``R1 = sum(r)`` and
    ``X = sum(r (v + h / 2^k))`` (so that ``sum(v^2) = H2 / 4^k + X``)::

        n sum(v^2) - sum(v)^2 = (n H2 - H1^2) / 4^k + n X - 2 H1 R1 / 2^k - R1^2

    where ``n H2 - H1^2`` is computed exactly in int64: the variance of a
    smooth window, a small difference of two large sums, keeps its digits.
    Only the remainders' running sums round.

    Parameters
    ----------
    v : ndarray, shape (H, W), float64
    shape : (int, int)
        The window's (h, w).
    m : float
        ``max |v|``.
    buffers : callable, optional
        ``buffers(name, dtype)``: an array of ``v``'s shape for the working array ``name``, or None (a new
        one); the results are "s1" and "var".

    Returns
    -------
    s1 : ndarray, shape (H, W)
        ``sum(v)`` over the window anchored at each pixel (valid where the window fits).
    var : ndarray, shape (H, W)
        ``n sum(v^2) - sum(v)^2``.
    err1 : float
        Bound on the error of ``s1``.
    err_var : float
        Absolute part of the bound on the error of ``var``.
    rel_var : float
        Relative part: ``|var' - var| <= err_var + rel_var |var'|``.
    """
    hgt, wid = shape
    n = hgt * wid
    if m == 0:
        return np.zeros_like(v), np.zeros_like(v), 0.0, 0.0, 0.0

    def array(name):
        lent = None if buffers is None else buffers(name, np.float64)
        return np.empty(v.shape) if lent is None else lent

    k = math.floor(math.log2(min((_INT_SUMS / n - 0.5) / m, (math.sqrt(_FLOAT_SUMS / n) - 0.5) / m)))
    scale = 2.0**k
    kw = dict(anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
    h = np.multiply(v, scale, out=array("h"))
    np.rint(h, out=h)
    H1 = cv2.boxFilter(h, cv2.CV_64F, (wid, hgt), dst=array("s1"), **kw)  # exact integers
    H2 = cv2.sqrBoxFilter(h, cv2.CV_64F, (wid, hgt), dst=array("H2"), **kw)
    h /= scale  # exact: h 2^-k
    r = np.subtract(v, h, out=array("r"))  # exact (within half a step of v)
    R1 = cv2.boxFilter(r, cv2.CV_64F, (wid, hgt), dst=array("R1"), **kw)
    h += v
    h *= r  # r (v + h 2^-k)
    X = cv2.boxFilter(h, cv2.CV_64F, (wid, hgt), dst=array("X"), **kw)
    exact = h.view(np.int64)  # h and r are spent: their memory holds the integers
    np.copyto(exact, H2, casting="unsafe")  # integers: exact
    exact *= n
    i1 = r.view(np.int64)
    np.copyto(i1, H1, casting="unsafe")
    np.multiply(i1, i1, out=i1)
    exact -= i1  # n H2 - H1^2: exact, below 2**61
    var = array("var")
    np.copyto(var, exact, casting="unsafe")
    var /= scale * scale
    X *= n
    var += X
    np.multiply(H1, 2.0 / scale, out=H2)
    H2 *= R1  # 2 H1 R1 / 2^k
    var -= H2
    np.square(R1, out=H2)
    var -= H2
    H1 /= scale
    H1 += R1  # sum(v)
    # errors: the remainders' running sums (2 (H + W + 2) eps of n times their largest term), the roundings
    steps = 2.0 * (v.shape[0] + v.shape[1] + 2) * EPS64
    rho = 0.5 / scale
    tail = rho * (2.0 * m + rho)
    d_r1 = steps * n * rho
    d_x = (steps + 2.0 * EPS64) * n * tail
    s1_max, r1_max, x_max = n * (m + rho), n * rho + d_r1, n * tail + d_x
    err1 = d_r1 + 2.0 * EPS64 * s1_max
    err_var = (n * d_x + 2.0 * (s1_max + r1_max) * d_r1 + d_r1 * d_r1
               + 8.0 * EPS64 * (n * x_max + 2.0 * s1_max * r1_max + r1_max * r1_max))
    return H1, var, err1, err_var, 4.0 * EPS64
