"""The one assembly of the six scores (private): any method, masked or not, any size, float32 or float64.

:func:`assemble` scores one problem over one image band. Its two parameters
are the working precision of the correlation (``work``: OpenCV's float32
correlation for large unmasked maps in "fast" precision, float64 otherwise)
and the correlation routine (``algorithm``: direct sums or transforms). The
rest is shared:

- the **window terms** (:mod:`matcher.scores.window_terms`): box sums without
  a mask, float64 correlations with ``M`` and ``M^2`` with one (Padfield);
- the **numerator**: one correlation of the (centred) image with a
  template-derived kernel per channel;
- the **scores**, assembled in row chunks that stay in cache (:meth:`_Assembly.chunk`),
  each with a bound on its error (:mod:`matcher.scores.error_model`);
- the **recompute rule** (:mod:`matcher.scores.settle`) and the **degenerate
  windows** (:mod:`matcher.scores.degenerate`).

Working in float32, a band whose bounds cannot be settled cheaply is refused
(:func:`assemble` returns False) and the engine assembles it again in float64,
where every window is settled whatever it costs.
"""

import math

import numpy as np

from ..methods import get_method
from .chunk_scores import ChunkScores
from .degenerate import degenerate_at, degenerate_score, template_degenerate_score
from .error_model import EPS64, EXACT_FLOAT64, denominator_error, denominator_relative_error, float32_coefficients
from .image_channel import BandChannel
from .inputs import RECOMPUTE
from .reference import rescore
from .settle import NOMINAL_RANGE, settle_global, settle_normalised, value_range
from .template_constants import template_constants
from .window_terms import box_terms, masked_terms
from .workspace import empty

__all__ = ["assemble"]

_CHUNK = 1 << 17  # output values per chunk of rows
_RANGE32 = 2.0**40  # centred magnitudes float32 handles with room for n * magnitude^2
# float32 ssd correlates image and template minus the image's centre where a channel's largest magnitude
# is more than this many times its largest deviation from the centre: the raw pair's bound grows with
# (magnitude / deviation)^2 of the map's range, and passes the "fast" tolerance near 4; below it, the
# raw pair saves the centred plane and the window sums of the values (20-30% of a typical ssd map)
_SSD_CENTRED = 3.0


def assemble(p, algorithm, out, *, work="float64", precision="fast", channels=None, workers=1):
    """Score problem ``p`` (an image band) into ``out``; False if float32 cannot vouch for it.

    Parameters
    ----------
    p : Problem
        A validated problem (:func:`matcher.scores.inputs.prepare`) on one band.
    algorithm : {"direct", "fft"}
        The correlation routine.
    out : ndarray of float64, shape ``p.out_shape``
    work : {"float32", "float64"}, keyword-only
        The correlation's precision; "float32" needs an unmasked problem.
    precision : {"fast", "exact"}, keyword-only
        Its tolerance (:data:`matcher.scores.inputs.RECOMPUTE`).
    channels : dict, keyword-only
        Keeps the per-channel work on this band (:class:`BandChannel`) for the next template.
    workers : int, keyword-only
        Threads for the transforms.

    Returns
    -------
    bool
        True when ``out`` holds the scores; False (float32 only) when the band
        must be assembled again in float64.
    """
    C = p.template.shape[0]
    cache = {} if channels is None else channels
    for c in range(C):
        if c not in cache:
            cache[c] = BandChannel(c, p.image[c], p.integer_valued, workers=workers)
    float64 = work == "float64"
    for c in range(C):  # float64 normalised scores: sums as good as float64 allows (exact for small integers)
        if float64:
            cache[c].promote_integers()
        cache[c].split = float64 and p.method in NOMINAL_RANGE and not cache[c].exact
    job = _Assembly(p, [cache[c] for c in range(C)], out, work, algorithm)
    if not job.feasible:
        return False
    if job.consts.constant is not None:
        out[...] = job.consts.constant
        return True
    rows = max(1, min(out.shape[0], _CHUNK // max(out.shape[1], 1)))
    scratch = _Scratch(rows, out.shape[1])
    chunks = [(a, min(out.shape[0], a + rows)) for a in range(0, out.shape[0], rows)]
    if job.consts.template_degenerate:
        job.settle_degenerate_template(chunks, scratch)
        return True
    contract = RECOMPUTE[precision][work]  # of the score range
    job.contract = contract
    if float64:
        x, err = job.correlate64(algorithm)
        model = (0.0, err + job.extra_error)
    else:
        x, model = job.correlate32(algorithm == "direct")
    if p.method in ("ccorr", "ccoeff"):
        extremes = job.finish_unnormalised(x)
        return settle_global(job, out, job.global_bound(model), contract, extremes, float64)
    job.x, job.model = x, model  # kept for refine_denominators
    for a, b in chunks:
        job.chunk(a, b, x[a:b], model, scratch)
    if not job.normalised:
        return settle_global(job, out, job.global_bound(model), contract, None, float64)
    # Recomputing a window by definition costs 5-20 ns per value; a float64
    # strip ~15 ns per position; assembling the band again in float64 ~20-40 ns.
    limits = (None, math.inf) if float64 else (1.0, 256 + 2 * out.size // (job.n * C))
    return settle_normalised(job, chunks, scratch, contract, limits, algorithm)


class _Scratch:
    """Reusable row-chunk buffers."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self._bufs = {}

    def get(self, name, k, dtype=np.float64, width=None):
        key = (name, np.dtype(dtype))
        if key not in self._bufs:
            self._bufs[key] = empty(f"chunk/{name}/{key[1].char}", (self.rows, self.cols), dtype)
        return self._bufs[key][:k, :width]


class _Assembly(ChunkScores):
    """One problem on one band: the template's constants, the window terms and the row-chunk assembly."""

    def __init__(self, p, channels, out, work, algorithm):
        self.p, self.channels, self.out = p, channels, out
        self.float64 = work == "float64"
        self.work = np.float64 if self.float64 else np.float32
        self.eps = float(np.finfo(self.work).eps)
        method = p.method
        self.masked = p.weights is not None
        if self.masked and not self.float64:
            raise ValueError("masked problems are assembled in float64")
        self.normalised = method in NOMINAL_RANGE
        self.zero_mean = get_method(method).zero_mean
        # ncc and ccoeff correlate the centred image with a zero-mean kernel (the
        # centre cancels, and errors shrink with it); in float64 the others
        # correlate the image minus its terms' offset (ssd with the template
        # shifted alike, ccorr plus the shift's share: see plane_shifts); in
        # float32 the raw image, whose error stays relative to the window's energy;
        # except ssd on a large DC offset (:data:`_SSD_CENTRED`), whose one bound for
        # the band grows with it: image and template are both centred (ssd does not change).
        ssd_centred = method == "ssd" and any(ch.magnitude > _SSD_CENTRED * ch.peak for ch in channels)
        self.centred = self.zero_mean or self.float64 or ssd_centred
        self.consts = template_constants(p, channels, float64=self.float64, centred_plane=self.centred)
        self.n = self.consts.n  # template pixels per channel
        self.feasible = self.float64 or self._fits_float32(channels)
        if self.feasible and self.consts.constant is None:  # else assemble() is done without them
            self._prepare_terms(algorithm)

    def _prepare_terms(self, algorithm):
        """The window terms, the denominators' error and the buffers the chunks fill."""
        method, out, C = self.p.method, self.out, len(self.channels)
        self.terms = self._window_terms(algorithm)
        self.exact_den = all(t.exact for t in self.terms) if self.terms else False
        self.err_den = 0.0
        # a relative error rho of the denominator moves a score in [-1, 1] by at most rho
        self.den_rel = denominator_relative_error(self.terms, method) if self.normalised else 0.0
        if self.normalised and not self.exact_den:
            self.err_den = denominator_error(self.terms, method) * max(self.consts.den_factors)
        self.zeros_exact = self.exact_den or (self.normalised and self._integral_den()
                                              and self.err_den * (1.0 + self.den_rel) + self.den_rel < 0.25)
        self.bound = empty("bound", out.shape, self.work) if self.normalised else None
        self.bound_max = 0.0  # at least every value of self.bound (inf: not tracked)
        self.contract = math.inf  # of the score range: set by assemble() before the chunks
        # one unmasked channel's raw energy is its window sums themselves: no copy
        self.den_view = (C == 1 and method in ("ccorr_normed", "ssd_normed") and not self.masked
                         and self.consts.raw_shifts[0] == 0.0)
        self.den = None
        if self.normalised:
            if self.den_view:
                self.den = self.terms[0].s2[: out.shape[0], : out.shape[1]]
            else:
                self.den = empty("den", out.shape, np.float64)

    def _fits_float32(self, channels):
        """Whether float32 holds the centred values and the products without overflow or underflow."""
        if not all(ch.peak == 0 or 1.0 / _RANGE32 < ch.peak < _RANGE32 for ch in channels):
            return False
        if self.p.method == "ssd_normed" and not 1e-20 < self.consts.t_total < 1e20:
            return False
        largest = self.n * sum((ch.peak + abs(ch.centre)) ** 2 for ch in channels) * max(self.consts.t_total, 1.0)
        return largest < 1e30

    def _window_terms(self, algorithm):
        """Each channel's :class:`matcher.scores.window_terms.WindowTerms`, as far as the method needs them."""
        method = self.p.method
        need_s1 = method == "ncc" or (method == "ccoeff" and self.masked)
        need_s2 = method in ("ncc", "ccorr_normed", "ssd", "ssd_normed")
        need_a2 = method == "ncc" or (method in ("ccorr_normed", "ssd_normed") and any(self.consts.raw_shifts)) or (
            method in ("ssd", "ssd_normed") and any(self.consts.num_shifts))
        if not (need_s1 or need_s2 or need_a2):
            return []
        _, h, w = self.p.template.shape
        if not self.masked:
            return [box_terms(ch, (h, w), need_s1 or need_a2, variance=method == "ncc" and ch.split)
                    for ch in self.channels]
        return [masked_terms(ch, self.p.weights[c], algorithm, need_s1, need_a2, need_s2, centred=o != 0.0)
                for c, (ch, o) in enumerate(zip(self.channels, self.consts.raw_shifts))]

    # -- correlations ----------------------------------------------------------

    def correlate32(self, direct):
        """OpenCV's float32 correlation of every channel, summed; and its error model ``(local, absolute)``."""
        out_shape = self.out.shape
        x = None
        for ch, k in zip(self.channels, self.consts.kernels):
            xc = ch.correlate(k, out_shape, direct, self.centred)
            x = xc if x is None else x.__iadd__(xc)
        # zero-mean kernels on the centred plane; raw kernels on the raw plane; ssd's template minus the
        # image's centre on the centred plane (a channel centred on 0 is raw): the largest constants
        pairs = {"centred"} if self.zero_mean else {"shifted" if g else "raw" for g in self.consts.plane_shifts}
        local, per_peak = (max(c) for c in zip(*(float32_coefficients(pair, direct) for pair in pairs)))
        return x, (local, per_peak * sum(nm * pk for nm, pk in zip(self.consts.norms, self.consts.peaks)))

    def correlate64(self, algorithm, rows=None, cols=None):
        """Float64 correlation of every channel (output ``rows``, ``cols``, default all), summed; and its bound."""
        x, err = None, 0.0
        for ch, k, pk, plane in zip(self.channels, self.consts.kernels, self.consts.peaks, self.consts.planes):
            exact = (self.p.integer_valued and algorithm == "direct" and np.array_equal(k, np.round(k))
                     and self.n * pk * float(np.abs(k).max()) < EXACT_FLOAT64)
            xc, e = ch.correlate64(k, algorithm, plane=plane, rows=rows, cols=cols, exact=exact,
                                   reuse=self.masked or len(self.channels) > 1)
            x = xc if x is None else x.__iadd__(xc)
            err += e
        return x, err

    @property
    def extra_error(self):
        """Errors of the numerator beyond its correlation: the masked mean's share, the centre's share."""
        extra, k = 0.0, self.consts
        if k.corrections is not None:
            extra += sum(abs(r) * (t.err1 + 4.0 * EPS64 * t.sw * t.peak) for r, t in zip(k.corrections, self.terms))
        if k.shift:
            extra += 4.0 * EPS64 * (abs(k.shift) + sum(nm * pk * math.sqrt(self.n) for nm, pk in
                                                       zip(k.norms, [ch.magnitude for ch in self.channels])))
        return extra

    # -- assembly ----------------------------------------------------------------

    def finish_unnormalised(self, x):
        """ccorr and ccoeff: the correlation is the score (plus the shift's share, minus the masked mean's).
        Returns the scores' (minimum, maximum)."""
        out = self.out
        if not self.consts.shift and self.consts.corrections is None:
            lo, hi = value_range(x)  # on float32 x: half the bytes to read
            np.copyto(out, x)
            return lo, hi
        np.copyto(out, x)
        if self.consts.shift:
            out += self.consts.shift
        if self.consts.corrections is not None:
            for r, t, ch in zip(self.consts.corrections, self.terms, self.channels):
                out -= r * (t.s1 - t.sw * (ch.centre - t.offset))
        return value_range(out)

    def global_bound(self, model):
        """One bound for every ssd, ccorr or ccoeff score of the band."""
        local, absolute = model
        root_n, k = math.sqrt(self.n), self.consts
        e = sum(nm * pk * local * root_n for nm, pk in zip(k.norms, k.peaks)) + absolute
        e += sum(r * pk for r, pk in zip(k.residuals, k.peaks))  # a kernel's residual sum times |window mean|
        if self.p.method == "ssd":
            e = 2.0 * e + self._energy_error(self.consts.num_shifts)
        return e

    def may_vanish(self, den):
        """Which of the denominators ``den`` (any shape) may be zero: those that are, where they are exact;
        those within their error of zero otherwise: candidates of degeneracy (for :func:`degenerate_at`),
        or, where :attr:`zeros_exact`, exactly the zero ones."""
        return den == 0 if self.exact_den else den <= self.err_den

    def _integral_den(self):
        """Whether every denominator is an integer in exact arithmetic: an integer image, binary weights
        (or none), integer offsets and one weight sum for every channel. One whose error is under 1/2 is
        then within it of zero exactly when it is zero (a transform's masked sums of a black background:
        they round to about 1e-8, and were each tested or recomputed by definition)."""
        return (self.p.integer_valued and all(t.binary and float(t.offset).is_integer() for t in self.terms)
                and all(f == 1.0 for f in self.consts.den_factors))

    @property
    def can_refine_denominators(self):
        """Whether :meth:`refine_denominators` applies: float32 unmasked ncc on plain sums of float data."""
        return (self.p.method == "ncc" and not self.float64 and not self.masked and self.terms
                and all(t.var is None and not t.exact for t in self.terms))

    def refine_denominators(self, chunks, scratch):
        """Assemble the band again from the same correlation, the window variances now from split sums.

        Plain window sums of float data bound ``sw s2 - s1^2`` by the largest
        window's magnitude, so smooth or dark windows (a variance that is a
        small difference of two large sums) fail their bounds; split variances
        (:func:`matcher.scores.image_channel.split_variances`) keep those
        digits, for about twice the cost of the plain sums: only bands whose
        plain bounds flag many windows pay it.
        """
        _, h, w = self.p.template.shape
        self.terms = [box_terms(ch, (h, w), True, variance=True) for ch in self.channels]
        self.exact_den = self.zeros_exact = False
        self.err_den = denominator_error(self.terms, "ncc") * max(self.consts.den_factors)
        self.den_rel = denominator_relative_error(self.terms, "ncc")
        for a, b in chunks:
            self.chunk(a, b, self.x[a:b], self.model, scratch)

    def settle_degenerate_template(self, chunks, scratch):
        """ssd_normed with an all-zero template: 1 wherever the window is not zero too, 0 where it is."""
        p, out = self.p, self.out
        out[...] = template_degenerate_score(p.method)
        ys, xs = [], []
        for a, b in chunks:
            def buf(name, dtype=np.float64, a=a, b=b):
                return scratch.get(name, b - a, dtype, out.shape[1])

            den = self._energies(slice(a, b), slice(0, out.shape[1]), buf, self.consts.raw_shifts, "den")
            y, x = np.nonzero(self.may_vanish(den))
            ys.append(y + a)
            xs.append(x)
        ys, xs = np.concatenate(ys), np.concatenate(xs)
        if not self.zeros_exact:
            confirmed = degenerate_at(p, ys, xs)
            if self.masked:  # a window zero on the used pixels only: by definition
                rescore(p, out, ys[~confirmed], xs[~confirmed])
            ys, xs = ys[confirmed], xs[confirmed]
        out[ys, xs] = degenerate_score(p.method, template_degenerate=True)
