"""Large unmasked score maps: OpenCV correlations and row-chunk assembly (private).

``precision="fast"``: the correlation, which costs the most, runs in float32
through OpenCV: its direct filter for kernels up to 11 x 11
(``algorithm="direct"``), its blocked DFT (``cv2.matchTemplate`` with
``TM_CCORR``) above (``"fft"``). ``"exact"``: in float64 (OpenCV's direct
filter or blocked DFT, or scipy's FFT), as the algorithm asks. Window sums come
from OpenCV's box filters, exact for small integers; for ``"exact"``
normalised scores on other data, from split values (:func:`matcher.scores.image_channel.split_sums`).
The scores are assembled in row chunks that stay in cache, with reused buffers.

Every window's score gets a bound on its error (:data:`_ERROR_MODEL`,
:func:`correlation_error_bound`); windows whose bound exceeds the recompute
tolerance (:data:`matcher.scores.inputs.RECOMPUTE`: 1e-4 of the score range
for "fast", 1e-10 for "exact") are settled: chunks
with many of them get a float64 correlation over the columns that hold them,
flat (or zero) windows get their documented value, the rest are recomputed
by definition; a band with too many goes back to :mod:`matcher.scores.assembly`
(:func:`score_large_map` returns False). The tolerance follows the map's
range, re-estimated until it holds.
"""

import math

import cv2
import numpy as np

from .image_channel import BandChannel, sum_peak
from .degenerate import degenerate_at, degenerate_score
from .correlate import BLOCKED_DFT_SIDE, OPENCV_DIRECT_TAPS, FFTCorrelator, correlate_dft, correlate_direct
from ..methods import get_method
from .inputs import RECOMPUTE
from .reference import NEAR_PERFECT, centred, rescore

_EPS32 = float(np.finfo(np.float32).eps)
_EPS64 = float(np.finfo(np.float64).eps)
# Error bound of OpenCV's float32 correlation of an image c with a kernel k,
# per output: eps32 ||k|| (A sqrt(E) + B max|c|) through its blocked DFT,
# eps32 ||k|| A_DIRECT sqrt(E) through its direct filter (up to 11 x 11), E
# the sum of c^2 over the window. On photographs, random, spiky, flat (sky)
# and DC-offset images with 3-64 px kernels, the measured error reaches at
# most 4.3 eps32 ||k|| (sqrt(E) + 4 max|c|) and 4.5 eps32 ||k|| sqrt(E)
# (direct) for the centred image with zero-mean kernels (ncc, ccoeff), and
# 5.3 and 15.4 for the raw image with raw kernels (the other methods). The
# constants leave a margin of 2 (tests/test_large_maps.py pins it), which
# also covers rounding the kernel and the image to float32.
_ERROR_MODEL = {  # plane: (A, B, A_DIRECT)
    "centred": (9.0, 36.0, 10.0),
    "raw": (11.0, 44.0, 32.0),
}
_CHUNK = 1 << 17  # output values per chunk of rows
_SMALLEST = 1e-30  # squared denominators below this are treated as degenerate (float32 keeps ~1e-38)
_RANGE32 = 2.0**40  # centred magnitudes float32 handles with room for n * magnitude^2
_NOMINAL_RANGE = {"ncc": 2.0, "ccorr_normed": 2.0, "ssd_normed": 1.0}


def correlation_error_bound(kernel_norm, window_energy, peak, *, plane="centred", direct=False):
    """Bound on the error of one float32 correlation output (see ``_ERROR_MODEL``).

    ``plane`` is "centred" (the image minus its mean, with a zero-mean kernel)
    or "raw"; ``direct`` says OpenCV's direct filter computed it (else its DFT).
    """
    local, per_peak = _error_coefficients(plane, direct)
    return kernel_norm * (local * np.sqrt(window_energy) + per_peak * peak)


def _error_coefficients(plane, direct):
    """``(local, per_peak)``: the float32 bound is ``||k|| (local sqrt(E) + per_peak max|c|)``."""
    a, b, a_direct = _ERROR_MODEL[plane]
    return (a_direct * _EPS32, 0.0) if direct else (a * _EPS32, b * _EPS32)


class _Scratch:
    """Reusable row-chunk buffers."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self._bufs = {}

    def get(self, name, k, dtype=np.float64, width=None):
        key = (name, np.dtype(dtype))
        if key not in self._bufs:
            self._bufs[key] = np.empty((self.rows, self.cols), dtype)
        return self._bufs[key][:k, :width]


def score_large_map(p, algorithm, out, *, channels=None, precision="fast"):
    """Score problem ``p`` (an image band) into ``out``; False if the other path must do it.

    ``out`` is a float64 array of ``p.out_shape``. ``channels`` is a dict
    that keeps the per-channel work on this band for the next template.
    ``precision="exact"`` correlates and assembles in float64, with window
    sums exact for small integers and split (:func:`matcher.scores.image_channel.split_sums`) otherwise.
    """
    C, h, w = p.template.shape
    cache = {} if channels is None else channels
    for c in range(C):
        if c not in cache:
            cache[c] = BandChannel(c, p.image[c], p.integer_valued)
    exact = precision == "exact"
    for c in range(C):  # "exact" normalised scores: sums as good as float64 allows (exact for small integers)
        cache[c].split = exact and p.method in _NOMINAL_RANGE and not cache[c].exact
    job = _Assembly(p, [cache[c] for c in range(C)], out, np.float64 if exact else np.float32)
    if not job.feasible:
        return False
    if job.constant is not None:
        out[...] = job.constant
        return True
    contract = RECOMPUTE[precision]["float64" if exact else "float32"]  # of the score range
    if exact:
        x, model = job.correlate64(0, out.shape[0], algorithm)
    else:
        x = job.correlate32(algorithm == "direct")
        model = _error_coefficients("centred" if job.centred else "raw", algorithm == "direct")
    rows = max(1, min(out.shape[0], _CHUNK // max(out.shape[1], 1)))
    scratch = _Scratch(rows, out.shape[1])
    chunks = [(a, min(out.shape[0], a + rows)) for a in range(0, out.shape[0], rows)]
    if p.method in ("ccorr", "ccoeff"):  # the centred correlation (plus the centre's share for ccorr)
        lo, hi, _, _ = cv2.minMaxLoc(x)
        np.copyto(out, x)
        return _check_global(p, out, job, model, contract, (lo, hi))
    for a, b in chunks:
        job.chunk(a, b, x[a:b], model, scratch)
    if not job.normalised:
        return _check_global(p, out, job, model, contract)
    # Windows whose bound exceeds the tolerance are settled (strips refined in
    # float64, degenerate windows set, the rest recomputed by definition);
    # then every score is within the tolerance, the map's range is known to
    # that precision, and the tolerance follows it (1e-4 of the range).
    # Recomputing a window by definition costs 5-20 ns per value; a float64
    # strip ~15 ns per position (none in "exact": already float64); the
    # general path ~40 ns ("fast") to ~80 ns ("exact") per position and channel.
    per_window = job.n * C
    limits = (None if exact else 1.0, 256 + (4 if exact else 2) * out.size // per_window)
    tolerance = contract * _range(out, p.method)  # a first estimate; the loop checks it
    while True:
        settled = _settle_over_tolerance(job, chunks, scratch, tolerance, limits, algorithm)
        if settled is None:
            return False
        if not settled:  # nothing changed: the range is the one the tolerance came from
            break
        tighter = contract * _range(out, p.method)
        if tighter >= 0.75 * tolerance:
            break
        tolerance = tighter
    # Near-perfect matches are recomputed too, when they are few: an exact
    # copy of the template then scores exactly 1 (0 for ssd_normed).
    ys, xs = _near_perfect(out, job.bound, p.method == "ssd_normed")
    if 0 < ys.size <= limits[1] + NEAR_PERFECT:  # beyond the usual limit: cheap, few values each
        rescore(p, out, ys, xs)
    return True


def _near_perfect(scores, bound, lower):
    """Positions whose score is within its (non-zero) bound of perfect (1; 0 if ``lower``)."""
    b_max = float(cv2.minMaxLoc(bound)[1])
    rows, xs = _sparse_where(scores, b_max if lower else 1.0 - b_max, lower, positions=False)
    s, b = scores[rows], bound[rows]
    near = (s <= b) if lower else (s >= 1.0 - b)
    near &= b > 0
    ry, xs = np.nonzero(near)
    return rows[ry], xs


def _sparse_where(scores, limit, lower, positions=True):
    """Where ``scores <= limit`` (``>=`` unless ``lower``), looking only at rows that reach it.

    With ``positions=False``, only those rows (and None).
    """
    extreme = scores.min(axis=1) <= limit if lower else scores.max(axis=1) >= limit
    rows = np.flatnonzero(extreme)
    if not positions:
        return rows, None
    ry, xs = np.nonzero(scores[rows] <= limit if lower else scores[rows] >= limit)
    return rows[ry], xs


def _settle_over_tolerance(job, chunks, scratch, tolerance, limits, algorithm):
    """Settle every window whose bound exceeds ``tolerance``.

    Returns how many windows changed, or None if too many remain to recompute one by one.
    """
    _, h, w = job.p.template.shape
    boxes = []  # (first row, end row, first column, end column) of chunks worth a float64 correlation
    if limits[0] is not None:
        for a, b in chunks:
            over = job.bound[a:b] > tolerance
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
        x64, model64 = job.correlate64(a, b, algorithm, c0, c1)
        for a2, b2 in chunks:
            if a <= a2 < b:
                job.chunk(a2, b2, x64[a2 - a : b2 - a], model64, scratch, (c0, c1))
    flagged = job.bound > tolerance
    count = int(np.count_nonzero(flagged))
    if count == 0:
        return sum(b - a for a, b, _, _ in strips)
    if not _settle_flagged(job, flagged, limits[1]):
        return None
    job.bound[flagged] = 0.0  # settled: exact values
    return count


def _range(scores, method):
    """The score range the tolerance is relative to: the map's, at most the method's nominal one."""
    lo, hi, _, _ = cv2.minMaxLoc(scores)
    return min(max(hi - lo, 1e-12), _NOMINAL_RANGE[method])


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


class _Assembly:
    """One problem on one band: the template's constants and the row-chunk assembly of the scores."""

    def __init__(self, p, channels, out, work):
        self.p, self.channels, self.out, self.work = p, channels, out, work
        self.eps = float(np.finfo(work).eps)
        method = p.method
        C, h, w = p.template.shape
        self.n = n = h * w
        # float32 must hold the centred values and scale * den without overflow or underflow
        self.feasible = all(ch.peak == 0 or 1.0 / _RANGE32 < ch.peak < _RANGE32 for ch in channels)
        # exact window sums, and denominators exact too (all terms below 2**52)
        self.exact_den = all(ch.exact and ch.exact_for(n) for ch in channels)
        self.normalised = method in _NOMINAL_RANGE
        self.constant = None
        T = p.template
        if method in ("ncc", "ccoeff"):
            self.kernels = [np.zeros_like(t) if t.min() == t.max() else centred(t) for t in T]
            self.t_total = float(sum((k * k).sum() for k in self.kernels))
            if method == "ncc" and self.t_total == 0:
                self.constant = 0.0  # constant template: no evidence anywhere
        else:  # ssd and ccorr families: the raw template
            self.kernels = list(T)
            self.t_total = float((T * T).sum())
            if method == "ccorr_normed" and self.t_total == 0:
                self.constant = 0.0
            if method == "ssd_normed" and self.t_total == 0:
                self.feasible = False  # rare; the float64 path has the zero-window logic
        if method in ("ncc", "ccorr_normed") and self.t_total > 0:
            # their scores do not change with the template's scale: a unit
            # kernel keeps float32 far from underflow and overflow
            unit = 1.0 / np.sqrt(self.t_total)
            self.kernels = [k * unit for k in self.kernels]
            self.t_total = 1.0
        if method == "ssd_normed" and not 1e-20 < self.t_total < 1e20:
            self.feasible = False  # float32 could underflow or overflow: the general path
        self.norms = [float(np.sqrt((k * k).sum())) for k in self.kernels]
        # A centred kernel sums to a few rounding errors, not to 0: its sum s
        # adds s * (the window's mean of the centred channel) to the correlation.
        zero_mean = get_method(method).zero_mean
        self.residuals = [abs(math.fsum(k.ravel())) if zero_mean else 0.0 for k in self.kernels]
        # ncc and ccoeff correlate the centred image with a zero-mean kernel (the
        # centre cancels, and float32 errors shrink with it); the others the raw
        # image, whose error stays relative to the window's own energy.
        self.centred = method in ("ncc", "ccoeff")
        self.peaks = [ch.peak if self.centred else ch.magnitude for ch in channels]
        self.t_sq = float(sum((k * k).sum() for k in self.kernels)) if method in ("ssd", "ssd_normed") else 0.0
        largest = n * sum((ch.peak + abs(ch.centre)) ** 2 for ch in channels) * max(self.t_total, 1.0)
        self.feasible = self.feasible and largest < 1e30
        self.bound = np.empty(out.shape, work) if self.normalised else None
        # one channel's raw energy is the window sums themselves: no copy
        self.err_den = 0.0 if self.exact_den or not self.normalised else _denominator_error(channels, method, n)
        self.den_view = C == 1 and method in ("ccorr_normed", "ssd_normed") and channels[0].offset == 0.0
        self.den = np.empty(out.shape, np.float64) if self.normalised and not self.den_view else None

    def correlate32(self, direct):
        out_shape = self.out.shape
        x = self.channels[0].correlate(self.kernels[0], out_shape, direct, self.centred)
        for ch, k in zip(self.channels[1:], self.kernels[1:]):
            x += ch.correlate(k, out_shape, direct, self.centred)
        return x

    def correlate64(self, a, b, algorithm, c0=0, c1=None):
        """Float64 correlation for output rows a:b, columns c0:c1, and its error model (the bound's coefficients).

        ``algorithm`` is obeyed: "direct" sums products (OpenCV's filter in
        pieces of < 50 taps), "fft" uses OpenCV's blocked DFT for kernels of
        50 taps up to 256 px a side, scipy's FFT otherwise.
        """
        _, h, w = self.p.template.shape
        taps = h * w
        x = None
        for ch, k in zip(self.channels, self.kernels):
            centre = ch.centre if self.centred else 0.0
            c1 = self.out.shape[1] if c1 is None else c1
            strip = np.subtract(self.p.image[ch.index, a : b + h - 1, c0 : c1 + w - 1], centre, dtype=np.float64)
            if algorithm == "direct":
                xc = correlate_direct(strip, k)
            elif taps > OPENCV_DIRECT_TAPS and max(h, w) <= BLOCKED_DFT_SIDE:
                xc = correlate_dft(strip, k)
            else:
                xc = FFTCorrelator(strip, workers=1)(k)
            x = xc if x is None else x + xc
        if algorithm == "direct":  # taps products summed: taps eps |k| |c| <= taps^1.5 eps ||k|| max|c|
            factor = taps * np.sqrt(taps) + 64.0
        else:  # the transforms' error grows with log2 of the grid, relative to the image's magnitude
            factor = 4.0 * np.log2(max(float((b - a + h - 1) * (self.out.shape[1] + w - 1)), 2.0)) + 64.0
        return x, (0.0, _EPS64 * factor)

    def chunk(self, a, b, xs, model, scratch, cols=None):
        """Assemble output rows a:b (columns ``cols = (c0, c1)``, default all) from correlation ``xs``.

        The denominators come from the window sums (:meth:`_ncc_denominators`
        or :meth:`_energies`); ssd is ``energy - 2 x + t_sq``; the normalised
        scores and their bounds are :meth:`_normalise`'s.
        """
        method = self.p.method
        c0, c1 = cols or (0, self.out.shape[1])
        rows, columns = slice(a, b), slice(c0, c1)
        o = self.out[rows, columns]

        def buf(name, dtype=np.float64):
            return scratch.get(name, b - a, dtype, c1 - c0)

        if method == "ncc":
            den, q = self._ncc_denominators(rows, columns, buf)
        else:
            den, q = self._energies(rows, columns, buf), None
        if method == "ssd" or method == "ssd_normed":  # energy - 2 x + t_sq
            np.multiply(xs, -2.0, out=o)
            o += den
            o += self.t_sq
            np.maximum(o, 0.0, out=o)
            if method == "ssd":
                return
        if self.den_view:  # one channel's raw energy: the window sums themselves
            _, h, w = self.p.template.shape
            self.den = self.channels[0].sums((h, w), False)[1][: self.out.shape[0], : self.out.shape[1]]
        elif method != "ncc":
            self.den[rows, columns] = den
        self._normalise(o, xs, den, q, model, self.bound[rows, columns], buf)

    def _ncc_denominators(self, rows, columns, buf):
        """``n`` times the window variances summed over channels (into ``self.den``), and ``q``:
        the sum over channels of ``||k_c|| |window sum of c_c|`` for the bound."""
        n, channels = self.n, self.channels
        _, h, w = self.p.template.shape
        single = len(channels) == 1
        den = self.den[rows, columns]
        q = buf("q", self.work)
        for c, ch in enumerate(channels):
            S1, S2 = ch.sums((h, w), True)
            s1, s2 = S1[rows, columns], S2[rows, columns]
            part = den if c == 0 else buf("tmp")
            term = buf("term")
            np.multiply(s1, s1, out=term)
            np.multiply(s2, float(n), out=part)
            part -= term  # n den_c = n s2 - s1^2: shift invariant, exact for exact integers
            if c:
                den += part
            qc = q if c == 0 else buf("r", self.work)
            np.subtract(s1, n * (ch.centre - ch.offset), out=qc, casting="unsafe")
            np.abs(qc, out=qc)
            if not single:  # one channel: its norm goes into the bound's coefficient
                qc *= self.norms[c]
                if c:
                    q += qc
        return den, q

    def _energies(self, rows, columns, buf):
        """The raw window energies ``sum(I^2)`` summed over channels (a view of the window sums for one
        channel without offset)."""
        n, channels = self.n, self.channels
        _, h, w = self.p.template.shape
        den = None
        for c, ch in enumerate(channels):
            S1, S2 = ch.sums((h, w), ch.offset != 0.0)
            energy = S2[rows, columns]  # raw window energy = s2 + 2 offset s1 + n offset^2
            if ch.offset != 0.0:
                energy = buf("term")
                np.multiply(S1[rows, columns], 2.0 * ch.offset, out=energy)
                energy += S2[rows, columns]
                energy += n * ch.offset * ch.offset
            if len(channels) == 1:
                den = energy
            else:
                den = buf("den") if den is None else den
                _add(den, energy, c)
        return den

    def _normalise(self, o, xs, den, q, model, e, buf):
        """Normalised scores into ``o`` and their error bounds into ``e``.

        The bound of a normalised score ``num / D`` is ``E / D`` with ``E`` the
        correlation's bound (:func:`correlation_error_bound`); by Cauchy-Schwarz
        its window-energy part is at most ``A eps32 D`` plus terms in the
        window's mean (ncc) or the centre (others), so ``E / D <= alpha + beta / D``
        (``+ kappa / D^2`` for the denominator's own error).
        """
        method, n = self.p.method, self.n
        local, peak = model
        scale = self.t_total / n if method == "ncc" else self.t_total
        # D = sqrt(scale den) in float32; scores num / D; bounds alpha + beta / D
        dd = buf("dd", self.work)
        np.multiply(den, scale, out=dd, casting="unsafe")
        degenerate = buf("small", bool)
        np.less(dd, _SMALLEST, out=degenerate)  # (near) zero denominators: flagged below, settled later
        np.maximum(dd, _SMALLEST, out=dd)
        np.sqrt(dd, out=dd)
        coef = 2.0 if method == "ssd_normed" else 1.0
        alpha = coef * local + 4.0 * self.eps  # and the arithmetic of the assembly
        beta = coef * peak * sum(nm * pk for nm, pk in zip(self.norms, self.peaks))
        if method == "ncc":
            # the kernels' residual sums: sum_c |s_c| |window sum_c| / n <= q max_c |s_c| / (n ||k_c||)
            if len(self.channels) == 1:
                coef_q = local / float(np.sqrt(n)) * self.norms[0] + self.residuals[0] / n
            else:
                coef_q = local / float(np.sqrt(n)) + max(r / (n * nm) for r, nm in zip(self.residuals, self.norms)
                                                         if nm > 0)
            np.multiply(q, coef_q, out=e)
            e += beta
        else:
            if method == "ssd_normed":
                beta += sum(ch.sum_errors(n)[1] for ch in self.channels)  # the numerator's window energy
            e[...] = beta
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.divide(e, dd, out=e)
            e += alpha
            if self.err_den:  # the denominator's error: |score| err_den / (2 den) <= kappa / D^2
                d2 = buf("d2", self.work)
                np.square(dd, out=d2)
                np.divide(self.err_den * scale / 2.0, d2, out=d2)
                e += d2
            if method == "ssd_normed":
                np.divide(o, dd, out=dd, casting="unsafe")
            else:  # ncc, ccorr_normed: the correlation over D
                np.divide(xs, dd, out=dd)
        np.copyto(e, np.inf, where=degenerate)
        np.clip(dd, 0.0 if method == "ssd_normed" else -1.0, 1.0, out=dd)
        o[...] = dd


def _add(total, term, c):
    if c == 0:
        total[...] = term
    else:
        total += term


def _check_global(p, out, job, model, contract, extremes=None):
    """Non-normalised scores: one bound for the band, against the contract on its range.

    ssd windows within the bound of 0 (exact copies of the template, mostly)
    are recomputed by definition, so that they score 0 exactly.
    """
    n, method, local, peak = job.n, p.method, model[0], model[1]
    e = sum(nm * pk * (local * np.sqrt(n) + peak) for nm, pk in zip(job.norms, job.peaks))
    e += sum(r * pk for r, pk in zip(job.residuals, job.peaks))  # a kernel's residual sum times |window mean|
    lo, hi = extremes or cv2.minMaxLoc(out)[:2]
    if method == "ssd":
        e = 2.0 * e + sum(ch.sum_errors(n)[1] for ch in job.channels) + 8.0 * _EPS64 * hi
    elif method == "ccorr":
        e += 4.0 * _EPS64 * max(abs(lo), abs(hi))
    if e > contract * (hi - lo):
        return False
    if method != "ssd" or lo > e:
        return True
    # Windows within the bound of 0 are recomputed when they are few (exact copies, mostly)
    ys, xs = _sparse_where(out, e, lower=True)
    if ys.size <= NEAR_PERFECT + out.size * 2 // (n * len(job.channels)):
        rescore(p, out, ys, xs)
    return True


def _denominator_error(channels, method, n):
    """Bound on the error of the denominators (``n den`` for ncc, the window energy otherwise).

    Window sums may be exact (small integers) while the denominators round:
    the rounding terms cover that.
    """
    errors = [(ch, ch.sum_errors(n)) for ch in channels]
    if method == "ncc":  # n s2 - s1^2 from sums of (plane - offset)
        return sum(n * e2 + 2.0 * n * sum_peak(ch) * e1 + 4.0 * _EPS64 * (n * sum_peak(ch)) ** 2 for ch, (e1, e2) in errors)
    # raw energy s2 + 2 offset s1 + n offset^2
    return sum(
        e2 + 2.0 * abs(ch.offset) * e1 + 4.0 * _EPS64 * n * (sum_peak(ch) + abs(ch.offset)) ** 2
        for ch, (e1, e2) in errors
    )


def _settle_flagged(job, flagged, limit):
    """Degenerate windows among ``flagged`` get their documented value, the others are recomputed
    by definition; False if more than ``limit`` of those."""
    p, scores = job.p, job.out
    ys, xs = np.nonzero(flagged)
    if ys.size == 0:
        return True
    d = job.den[ys, xs]
    zero = np.flatnonzero(d == 0 if job.exact_den else d <= job.err_den)
    if zero.size:
        if not job.exact_den:  # candidates only: test them exactly
            zero = zero[degenerate_at(p, ys[zero], xs[zero])]
        scores[ys[zero], xs[zero]] = degenerate_score(p.method)  # the template is not degenerate here
        keep = np.ones(ys.size, bool)
        keep[zero] = False
        ys, xs = ys[keep], xs[keep]
    if ys.size > limit:
        return False
    rescore(p, scores, ys, xs)
    return True
