"""Scores from float32 correlations: ``precision="fast"`` without a mask (private).

The correlation, which costs the most, runs in float32 through OpenCV: its
direct filter for kernels up to 11 x 11 (``algorithm="direct"``), its blocked
DFT (``cv2.matchTemplate`` with ``TM_CCORR``) above (``"fft"``). Window sums
come from float64 integral images, exact for integer data. The scores are
assembled in row chunks that stay in cache, with preallocated buffers.

Every window's score gets a bound on its error (:func:`correlation_error_bound`);
windows whose bound exceeds half the fast contract (``1e-4`` of the score
range) are recomputed by definition, flat (or zero) windows get their
documented value, and a band with too many such windows is handed back to the
float64 path (:func:`score_map_fast` returns False).
"""

import cv2
import numpy as np

from .correlate import _OPENCV_DIRECT_TAPS, correlate_dft, correlate_direct
from .reference import rescore
from .window_sums import window_extremes

_EPS32 = float(np.finfo(np.float32).eps)
_EPS64 = float(np.finfo(np.float64).eps)
_EXACT = 2.0**52
# Error bound of OpenCV's float32 correlation (direct or blocked DFT) of an
# image c with a kernel k, per output: eps32 * ||k|| * (A * sqrt(sum of c^2
# over the window) + B * max|c|). Measured maxima on photographs, random,
# spiky, flat and DC-offset images (3-512 px kernels) stay below 4.5 of
# eps32 * ||k|| * (sqrt(window energy) + 4 max|c|); A and B leave 2.7x of
# margin, which also covers rounding the kernel and the image to float32.
_A = 12.0
_B = 48.0
# The direct filter's error is local: below 6.4 eps32 * ||k|| * sqrt(window
# energy) in the same measurements (kernels up to 11 x 11).
_A_DIRECT = 20.0
_CONTRACT = 1e-4  # of the score range: windows whose bound exceeds it are recomputed
_DIRECT_SIDE = 11  # OpenCV's float32 filter2D sums directly up to 11 x 11
_CHUNK = 1 << 17  # output values per chunk of rows
_MIN_OUTPUTS = 1 << 16  # smaller maps are scored in float64
_RANGE32 = 2.0**40  # centred magnitudes float32 handles with room for n * magnitude^2
_NOMINAL_RANGE = {"ncc": 2.0, "ccorr_normed": 2.0, "ssd_normed": 1.0}
_OPENCV_DEPTHS = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def supported(p, algorithm):
    """Whether the float32 path should score problem ``p`` with ``algorithm`` as asked.

    Small maps stay on the float64 path: they are cheap there, and exact to
    the last bits.
    """
    _, h, w = p.template.shape
    if p.weights is not None or p.out_shape[0] * p.out_shape[1] < _MIN_OUTPUTS:
        return False
    return algorithm == "fft" or max(h, w) <= _DIRECT_SIDE


def correlation_error_bound(kernel_norm, window_energy, peak):
    """Bound on the error of one float32 correlation output (see the module's constants)."""
    return _EPS32 * kernel_norm * (_A * np.sqrt(window_energy) + _B * peak)


class _Channel:
    """One image channel of a band: its float32 centred plane, and window sums on demand."""

    def __init__(self, index, plane, integer_valued):
        self.index, self.plane = index, plane
        small_integers = integer_valued and plane.dtype.itemsize <= 2
        mean = float(plane.mean(dtype=np.float64))
        # A centre that float32 holds exactly: integer for integer data.
        self.centre = float(np.round(mean)) if integer_valued else float(np.float32(mean))
        self._c64 = None
        if small_integers or plane.dtype == np.float32:
            # exact for small integers; one rounding of the difference for float32
            self.c32 = np.subtract(plane, self.centre, dtype=np.float32)
        else:
            self._c64 = np.subtract(plane, self.centre, dtype=np.float64)
            self.c32 = self._c64.astype(np.float32)
        lo, hi, _, _ = cv2.minMaxLoc(self.c32)
        self.peak = max(-lo, hi)
        self.magnitude = max(abs(self.centre + lo), abs(self.centre + hi))
        # Small integers: integral images of the raw values are exact (all
        # their sums stay below 2**52), and so is what exact_for allows.
        self.exact = small_integers and plane.size * self.magnitude**2 < _EXACT
        self.offset = 0.0 if self.exact else self.centre  # the sums are of plane - offset
        self._integrals = None
        self._boxes = {}

    def sums(self, a, b, shape, s1, s2):
        """Window sums of (plane - offset) and its square for output rows a:b (into s1, s2 or views)."""
        h, w = shape
        if self.exact:  # integral images of the raw values: exact
            if self._integrals is None:
                src = self.plane if self.plane.dtype in _OPENCV_DEPTHS else self.plane.astype(np.int16)
                self._integrals = cv2.integral2(src, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
            P1, P2 = self._integrals
            return _box(P1, a, b, h, w, s1), _box(P2, a, b, h, w, s2)
        if shape not in self._boxes:  # running sums: errors stay relative to a window's own values
            if self._c64 is None:
                self._c64 = np.subtract(self.plane, self.centre, dtype=np.float64)
            kw = dict(anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
            self._boxes = {shape: (cv2.boxFilter(self._c64, cv2.CV_64F, (w, h), **kw),
                                   cv2.sqrBoxFilter(self._c64, cv2.CV_64F, (w, h), **kw))}
        S1, S2 = self._boxes[shape]
        W = s1.shape[1]
        return S1[a:b, :W], S2[a:b, :W]

    def sum_errors(self, n):
        """Bounds on the errors of :meth:`sums` for an ``n``-pixel window: (sum, sum of squares)."""
        if self.exact:
            return 0.0, 0.0
        steps = 2.0 * (self.plane.shape[0] + self.plane.shape[1] + 2) * _EPS64
        return steps * n * self.peak, steps * n * self.peak * self.peak

    def exact_for(self, n):
        """Whether the window terms of an ``n``-pixel template stay exact (below 2**52)."""
        return not self.exact or (n * n + 4 * n) * self.magnitude**2 < _EXACT

    def correlate(self, kernel, out_shape, direct):
        k32 = kernel.astype(np.float32)
        if direct:
            full = cv2.filter2D(self.c32, cv2.CV_32F, k32, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
            return full[: out_shape[0], : out_shape[1]]
        return cv2.matchTemplate(self.c32, k32, cv2.TM_CCORR)


def _box(P, a, b, h, w, out):
    """Window sums of output rows a:b from integral image P, into ``out``."""
    W = out.shape[1]
    np.subtract(P[a + h : b + h, w : w + W], P[a:b, w : w + W], out=out)
    out -= P[a + h : b + h, :W]
    out += P[a:b, :W]
    return out


class _Scratch:
    """Reusable row-chunk buffers."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self._bufs = {}

    def get(self, name, k, dtype=np.float64):
        key = (name, np.dtype(dtype))
        if key not in self._bufs:
            self._bufs[key] = np.empty((self.rows, self.cols), dtype)
        return self._bufs[key][:k]


def score_map_fast(p, algorithm, out, *, channels=None):
    """Score problem ``p`` (an image band) into ``out``; False if the float64 path must do it.

    ``out`` is a float64 array of ``p.out_shape``. ``channels`` is a dict
    that keeps the per-channel work on this band for the next template.
    """
    C, h, w = p.template.shape
    cache = {} if channels is None else channels
    for c in range(C):
        if c not in cache:
            cache[c] = _Channel(c, p.image[c], p.integer_valued)
    job = _Assembly(p, [cache[c] for c in range(C)], out)
    if not job.feasible:
        return False
    if job.constant is not None:
        out[...] = job.constant
        return True
    x = job.correlate32(algorithm == "direct")
    rows = max(1, min(out.shape[0], _CHUNK // max(out.shape[1], 1)))
    scratch = _Scratch(rows, out.shape[1])
    chunks = [(a, min(out.shape[0], a + rows)) for a in range(0, out.shape[0], rows)]
    model32 = (_A_DIRECT * _EPS32, 0.0) if algorithm == "direct" else (_A * _EPS32, _B * _EPS32)
    for a, b in chunks:
        job.chunk(a, b, x[a:b], model32, scratch)
    if not job.normalised:
        return _check_global(p, out, job, model32)
    # The tolerance follows the map's range. Chunks with more uncertain windows
    # than are worth recomputing one by one get their correlation again in
    # float64, in strips of consecutive chunks.
    tolerance = _CONTRACT * _range(out, p.method)
    limit = 16 + 2 * rows * out.shape[1] // (job.n * C)
    refine = [job.bound[a:b].size - np.count_nonzero(job.bound[a:b] <= tolerance) > limit for a, b in chunks]
    for a, b in _strips(chunks, refine):
        x64, model64 = job.correlate64(a, b)
        for a2, b2 in chunks:
            if a <= a2 < b:
                job.chunk(a2, b2, x64[a2 - a : b2 - a], model64, scratch)
    return _settle(p, out, job.bound, job.den, job.channels, p.method, job.n, tolerance)


def _range(scores, method):
    """The score range the tolerance is relative to: the map's, at most the method's nominal one."""
    lo, hi, _, _ = cv2.minMaxLoc(scores)
    return min(max(hi - lo, 1e-12), _NOMINAL_RANGE[method])


def _strips(chunks, refine):
    """Merge consecutive chunks to refine into (first row, end row) strips."""
    strips = []
    for (a, b), r in zip(chunks, refine):
        if not r:
            continue
        if strips and strips[-1][1] == a:
            strips[-1] = (strips[-1][0], b)
        else:
            strips.append((a, b))
    return strips


class _Assembly:
    """One problem on one band: the template's constants and the row-chunk assembly of the scores."""

    def __init__(self, p, channels, out):
        self.p, self.channels, self.out = p, channels, out
        method = p.method
        C, h, w = p.template.shape
        self.n = n = h * w
        # float32 must hold the centred values and scale * den without overflow or underflow
        self.feasible = all(ch.exact_for(n) and (ch.peak == 0 or 1.0 / _RANGE32 < ch.peak < _RANGE32) for ch in channels)
        self.normalised = method in _NOMINAL_RANGE
        self.constant = None
        T = p.template
        if method in ("ncc", "ccoeff"):
            self.kernels = [np.zeros_like(t) if t.min() == t.max() else t - t.mean() for t in T]
            self.t_total = float(sum((k * k).sum() for k in self.kernels))
            if method == "ncc" and self.t_total == 0:
                self.constant = 0.0  # constant template: no evidence anywhere
        elif method in ("ccorr", "ccorr_normed"):
            self.kernels = list(T)
            self.t_total = float((T * T).sum())
            if method == "ccorr_normed" and self.t_total == 0:
                self.constant = 0.0
        else:  # ssd, ssd_normed: the image is centred, so the template is too
            self.kernels = [t - ch.centre for t, ch in zip(T, channels)]
            self.t_total = float((T * T).sum())
            if method == "ssd_normed" and self.t_total == 0:
                self.feasible = False  # rare; the float64 path has the zero-window logic
        self.norms = [float(np.sqrt((k * k).sum())) for k in self.kernels]
        self.shift = sum(ch.centre * float(k.sum()) for ch, k in zip(channels, self.kernels)) if method in ("ccorr", "ccorr_normed") else 0.0
        self.t_sq = float(sum((k * k).sum() for k in self.kernels)) if method in ("ssd", "ssd_normed") else 0.0
        largest = n * sum((ch.peak + abs(ch.centre)) ** 2 for ch in channels) * max(self.t_total, 1.0)
        self.feasible = self.feasible and largest < 1e30
        self.bound = np.empty(out.shape, np.float32) if self.normalised else None
        self.den = np.empty(out.shape, np.float64) if self.normalised else None

    def correlate32(self, direct):
        out_shape = self.out.shape
        x = self.channels[0].correlate(self.kernels[0], out_shape, direct)
        for ch, k in zip(self.channels[1:], self.kernels[1:]):
            x += ch.correlate(k, out_shape, direct)
        return x

    def correlate64(self, a, b):
        """Float64 correlation for output rows a:b, and its error model (coefficients of the bound)."""
        _, h, w = self.p.template.shape
        x, taps = None, h * w
        for ch, k in zip(self.channels, self.kernels):
            strip = np.subtract(self.p.image[ch.index, a : b + h - 1], ch.centre, dtype=np.float64)
            xc = correlate_direct(strip, k) if taps <= _OPENCV_DIRECT_TAPS else correlate_dft(strip, k)
            x = xc if x is None else x + xc
        grid = float((b - a + h - 1) * self.out.shape[1])
        return x, (0.0, _EPS64 * max(4.0 * np.log2(max(grid, 2.0)), 2.0 * taps, 64.0))

    def chunk(self, a, b, xs, model, scratch):
        """Assemble output rows a:b (scores, bounds, denominators) from correlation rows ``xs``."""
        method, n, channels = self.p.method, self.n, self.channels
        _, h, w = self.p.template.shape
        k_rows = b - a
        o = self.out[a:b]
        if method in ("ccorr", "ccoeff"):  # the centred correlation (plus the centre's share for ccorr)
            o[...] = xs
            if self.shift:
                o += self.shift
            return
        den = self.den[a:b] if self.normalised else None
        root = scratch.get("root", k_rows, np.float32) if self.normalised else None
        s2c_total = scratch.get("s2c", k_rows) if method in ("ssd", "ssd_normed") else None
        for c, ch in enumerate(channels):
            s1, s2 = ch.sums(a, b, (h, w), scratch.get("s1", k_rows), scratch.get("s2", k_rows))
            tmp = scratch.get("tmp", k_rows)
            d = ch.offset - ch.centre  # s2c: sum of squares of the centred values
            if d != 0.0:
                np.multiply(s1, 2.0 * d, out=tmp)
                tmp += n * d * d
                tmp += s2
                s2c = tmp
            else:
                s2c = s2
            if root is not None:
                r = scratch.get("r", k_rows, np.float32)
                np.copyto(r, s2c, casting="unsafe")
                np.sqrt(r, out=r)
                r *= np.float32(self.norms[c])
                _add(root, r, c)
            if s2c_total is not None:
                _add(s2c_total, s2c, c)
            if method == "ncc":  # n * den_c = n s2 - s1^2: shift invariant, exact for exact integers
                term = scratch.get("term", k_rows)
                np.multiply(s1, s1, out=term)
                np.multiply(s2, float(n), out=tmp)
                tmp -= term
                _add(den, tmp, c)
            elif self.normalised:  # raw window energy = s2 + 2 offset s1 + n offset^2
                energy = s2
                if ch.offset != 0.0:
                    energy = scratch.get("term", k_rows)
                    np.multiply(s1, 2.0 * ch.offset, out=energy)
                    energy += s2
                    energy += n * ch.offset * ch.offset
                _add(den, energy, c)
        if method == "ncc":
            o[...] = xs
        elif method == "ccorr_normed":
            o[...] = xs
            o += self.shift
        else:  # ssd, ssd_normed: s2c - 2 x + t_sq
            np.multiply(xs, -2.0, out=o)
            o += s2c_total
            o += self.t_sq
            np.maximum(o, 0.0, out=o)
        if not self.normalised:
            return
        # scores = num / sqrt(scale den); their bound = E / sqrt(scale den)
        scale = self.t_total / n if method == "ncc" else self.t_total
        dd = scratch.get("dd", k_rows, np.float32)
        np.multiply(den, scale, out=dd, casting="unsafe")
        np.maximum(dd, 0.0, out=dd)
        np.sqrt(dd, out=dd)
        e = self.bound[a:b]
        coef = 2.0 if method == "ssd_normed" else 1.0
        local, peak = model
        np.multiply(root, np.float32(coef * local), out=e)
        constant = coef * peak * sum(nm * ch.peak for nm, ch in zip(self.norms, channels))
        if method == "ssd_normed":
            constant += sum(ch.sum_errors(n)[1] for ch in channels)  # the numerator's window energy
        e += np.float32(constant)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(e, dd, out=e)
            np.divide(o, dd, out=o, casting="unsafe")
        np.clip(o, 0.0 if method == "ssd_normed" else -1.0, 1.0, out=o)
        return None


def _add(total, term, c):
    if c == 0:
        total[...] = term
    else:
        total += term


def _check_global(p, out, job, model):
    """Non-normalised scores: one bound for the band, against the contract on its range.

    ssd windows within the bound of 0 (exact copies of the template, mostly)
    are recomputed by definition, so that they score 0 exactly.
    """
    n, method, local, peak = job.n, p.method, model[0], model[1]
    e = sum(nm * ch.peak * (local * np.sqrt(n) + peak) for nm, ch in zip(job.norms, job.channels))
    lo, hi, _, _ = cv2.minMaxLoc(out)
    if method == "ssd":
        e = 2.0 * e + sum(ch.sum_errors(n)[1] for ch in job.channels) + 8.0 * _EPS64 * hi
    elif method == "ccorr":
        e += 4.0 * _EPS64 * max(abs(lo), abs(hi))
    if e > _CONTRACT * (hi - lo):
        return False
    if method != "ssd" or lo > e:
        return True
    ys, xs = np.nonzero(out <= e)
    if ys.size > 256 + out.size * 2 // (n * len(job.channels)):
        return False
    rescore(p, out, ys, xs)
    return True


def _settle(p, scores, bound, den, channels, method, n, tolerance):
    """Degenerate windows get their documented value; windows over the bound are recomputed."""
    exact = all(ch.exact for ch in channels)
    errors = [(ch, ch.sum_errors(n)) for ch in channels]
    if exact:
        err_den = 0.0
    elif method == "ncc":  # n s2 - s1^2 from sums of centred values
        err_den = sum(n * e2 + 2.0 * n * ch.peak * e1 + 4.0 * _EPS64 * (n * ch.peak) ** 2 for ch, (e1, e2) in errors)
    else:  # raw energy s2 + 2 g s1 + n g^2
        err_den = sum(
            e2 + 2.0 * abs(ch.offset) * e1 + 4.0 * _EPS64 * n * (ch.peak + abs(ch.offset)) ** 2
            for ch, (e1, e2) in errors
        )
    limit = 256 + scores.size * 2 // (n * len(channels))
    flagged = _flag(bound, den, err_den, tolerance)
    # Near-perfect matches are recomputed too: an exact copy of the template scores exactly 1 (0 for ssd_normed).
    if method == "ssd_normed":
        flagged |= scores <= bound
    else:
        flagged |= scores >= 1.0 - bound
    return _fix(p, scores, flagged, den, err_den, exact, channels, method, limit)


def _flag(bound, den, err_den, tolerance):
    flagged = ~(bound <= tolerance)  # NaN is flagged
    if err_den:
        flagged |= den * tolerance <= err_den  # |score| err_den / (2 den) > tolerance / 2
    return flagged


def _fix(p, scores, flagged, den, err_den, exact, channels, method, limit):
    ys, xs = np.nonzero(flagged)
    if ys.size == 0:
        return True
    d = den[ys, xs]
    zero = np.flatnonzero(d == 0 if exact else d <= err_den)
    if zero.size:
        if not exact:  # candidates only: test them exactly
            zero = zero[_degenerate(p, ys[zero], xs[zero], len(channels))]
        scores[ys[zero], xs[zero]] = 1.0 if method == "ssd_normed" else 0.0
        keep = np.ones(ys.size, bool)
        keep[zero] = False
        ys, xs = ys[keep], xs[keep]
    if ys.size > limit:
        return False
    rescore(p, scores, ys, xs)
    return True


def _degenerate(p, ys, xs, C):
    """Which of the windows at (ys, xs) are exactly flat (ncc) or exactly zero (others)."""
    _, h, w = p.template.shape
    result = np.ones(ys.size, bool)
    for c in range(C):
        lo, hi = window_extremes(p.image[c], (h, w), (p.out_shape[0], p.out_shape[1]))
        lo, hi = lo[ys, xs], hi[ys, xs]
        result &= (lo == hi) if p.method == "ncc" else ((lo == 0) & (hi == 0))
    return result
