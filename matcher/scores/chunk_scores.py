"""How a row chunk's scores and their error bounds are formed from its correlation and window terms (private).

:class:`ChunkScores` is the part of the one assembly
(:mod:`matcher.scores.assembly`) that turns a chunk of rows of the
correlation into scores: ssd is ``energy - 2 x + t_sq``; the normalised
scores divide the numerator by ``D``, the square root of the window's
variance (ncc) or energy (ccorr_normed, ssd_normed) times the template's,
and each gets a bound on its error, ``alpha + beta / D (+ kappa / D^2)``
(:meth:`ChunkScores._normalise`), or one bound for the chunk where every
window's is far inside the tolerance (:meth:`ChunkScores._uniform_bound`).
The assembly supplies the state these methods read, listed on the class:
the template's constants (a frozen
:class:`matcher.scores.template_constants.TemplateConstants`), the band's
channels and window terms, the error terms and the output arrays.
"""

import math

import numpy as np

from .error_model import EPS64, EXACT_FLOAT64
from .settle import value_range

__all__ = ["ChunkScores", "SMALLEST_SQUARED_DENOMINATOR"]

SMALLEST_SQUARED_DENOMINATOR = 1e-30
"""Squared denominators below this are treated as degenerate (float32 keeps ~1e-38)."""


class ChunkScores:
    """The chunk-by-chunk part of the assembly: scores, denominators and bounds of output rows.

    A subclass (:class:`matcher.scores.assembly._Assembly`) sets, before the first chunk:

    - ``p`` (the problem: ``method``), ``n`` (template pixels), ``consts``
      (:class:`matcher.scores.template_constants.TemplateConstants`);
    - ``channels`` (the band's :class:`matcher.scores.image_channel.BandChannel`)
      and ``terms`` (their :class:`matcher.scores.window_terms.WindowTerms`);
    - ``work`` (the correlation's dtype) and ``eps`` (its epsilon), ``den_rel``
      and ``err_den`` (the denominators' relative and absolute errors), ``contract``
      (the tolerance, of the score range);
    - the outputs: ``out`` (scores), ``den`` (denominators, or a view of
      ``terms[0].s2`` where ``den_view``), ``bound`` (each score's error bound) and
      ``bound_max`` (at least every bound; ``inf``: not tracked), which the chunks update.
    """

    def _energy_error(self, shifts):
        """Bound on the error of :meth:`_energies` with these shifts (0 where integer sums stay exact)."""
        total = 0.0
        for t, s in zip(self.terms, shifts):
            largest = t.sw * (t.peak + abs(s)) ** 2
            exact = t.exact and largest * 4.0 < EXACT_FLOAT64 and float(s).is_integer()
            total += 0.0 if exact else t.err2_whole + 2.0 * abs(s) * t.err1 + 8.0 * EPS64 * largest
        return total

    def chunk(self, a, b, xs, model, scratch, cols=None):
        """Assemble output rows a:b (columns ``cols = (c0, c1)``, default all) from correlation ``xs``.

        The denominators come from the window terms (:meth:`_ncc_denominators`
        or :meth:`_energies`); ssd is ``energy - 2 x + t_sq``; the normalised
        scores and their bounds are :meth:`_normalise`'s.
        """
        method = self.p.method
        c0, c1 = cols or (0, self.out.shape[1])
        rows, columns = slice(a, b), slice(c0, c1)
        o = self.out[rows, columns]

        def buf(name, dtype=np.float64):
            return scratch.get(name, b - a, dtype, c1 - c0)

        q = None
        if method == "ncc":
            den, q = self._ncc_denominators(rows, columns, buf, xs)
        if method in ("ssd", "ssd_normed"):  # energy - 2 x + t_sq
            np.multiply(xs, -2.0, out=o)
            o += self._energies(rows, columns, buf, self.consts.num_shifts, "num")
            o += self.consts.t_sq
            np.maximum(o, 0.0, out=o)
            if method == "ssd":
                return
        if method != "ncc":
            den = self._energies(rows, columns, buf, self.consts.raw_shifts, "den")
            if not self.den_view:
                self.den[rows, columns] = den
        if self.consts.shift:  # ccorr_normed of the centred image
            xs += self.consts.shift
        self._normalise(o, xs, den, q, model, self.bound[rows, columns], buf)

    def _ncc_denominators(self, rows, columns, buf, xs):
        """The window variances summed over channels (times ``den_scale``, into ``self.den``), and ``q``:
        the sum over channels of ``||k_c|| |window sum of c_c|`` for the bound. A masked problem's numerator
        ``xs`` loses the weighted mean's share here."""
        channels = self.channels
        single = len(channels) == 1
        den = self.den[rows, columns]
        q = buf("q", self.work)
        for c, (ch, t) in enumerate(zip(channels, self.terms)):
            s1 = t.s1[rows, columns]
            part = den if c == 0 else buf("tmp")
            if t.var is not None:  # sw s2 - s1^2, computed without cancellation
                np.copyto(part, t.var[rows, columns])
            else:
                term = buf("term")
                np.multiply(s1, s1, out=term)
                np.multiply(t.s2[rows, columns], t.sw, out=part)
                if t.binary:
                    part -= term  # sw s2 - s1^2: shift invariant, exact for exact integers
                else:  # sw s2 - 2 s1 a2 + s1^2 sw2 / sw
                    term *= t.sw2 / t.sw if t.sw > 0 else 0.0
                    part += term
                    np.multiply(s1, t.a2[rows, columns], out=term)
                    term *= 2.0
                    part -= term
            if self.consts.den_factors[c] != 1.0:
                part *= self.consts.den_factors[c]
            if c:
                den += part
            qc = q if c == 0 else buf("r", self.work)
            np.subtract(s1, t.sw * (ch.centre - t.offset), out=qc, casting="unsafe")
            if self.consts.corrections is not None:
                xs -= self.consts.corrections[c] * qc
            np.abs(qc, out=qc)
            if not single:  # one channel: its norm goes into the bound's coefficient
                qc *= self.consts.norms[c]
                if c:
                    q += qc
        return den, q

    def _energies(self, rows, columns, buf, shifts, name):
        """Window energies ``sum(M^2 (P + shift)^2)`` summed over channels, ``P`` the plane the terms sum
        (a view of the window sums for one channel without shift)."""
        total = None
        for c, (t, s) in enumerate(zip(self.terms, shifts)):
            energy = t.s2[rows, columns]
            if s != 0.0:  # s2 + 2 shift a2 + shift^2 sw2
                energy = buf(name + "term")
                np.multiply(t.a2[rows, columns], 2.0 * s, out=energy)
                energy += t.s2[rows, columns]
                energy += t.sw2 * s * s
            if len(self.terms) == 1:
                return energy
            if total is None:
                total = buf(name)
                total[...] = energy
            else:
                total += energy
        return total

    def _normalise(self, o, xs, den, q, model, e, buf):
        """Normalised scores into ``o`` and their error bounds into ``e``.

        The bound of a normalised score ``num / D`` is ``E / D`` with ``E`` the
        correlation's bound (:func:`matcher.scores.error_model.correlation_error_bound`);
        by Cauchy-Schwarz its window-energy part is at most ``local D`` plus terms
        in the window's mean (ncc) or the centre (others), so
        ``E / D <= alpha + beta / D`` (``+ kappa / D^2`` for the denominator's own error).
        """
        method, n = self.p.method, self.n
        local, absolute = model
        scale = self.consts.t_total / self.consts.den_scale if method == "ncc" else self.consts.t_total
        # D = sqrt(scale den); scores num / D; bounds alpha + beta / D
        dd = buf("dd", self.work)
        np.multiply(den, scale, out=dd, casting="unsafe")
        smallest = float(dd.min())
        degenerate = None
        if smallest < SMALLEST_SQUARED_DENOMINATOR:  # (near) zero denominators: flagged below, settled later
            degenerate = buf("small", bool)
            np.less(dd, SMALLEST_SQUARED_DENOMINATOR, out=degenerate)
            np.maximum(dd, SMALLEST_SQUARED_DENOMINATOR, out=dd)
        np.sqrt(dd, out=dd)
        scores = buf("scores", self.work)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # ncc, ccorr_normed: the correlation over D; ssd_normed: ssd over D
            np.divide(o if method == "ssd_normed" else xs, dd, out=scores, casting="unsafe")
        np.clip(scores, 0.0 if method == "ssd_normed" else -1.0, 1.0, out=scores)
        coef = 2.0 if method == "ssd_normed" else 1.0
        alpha = coef * local + 4.0 * self.eps + self.den_rel  # and the arithmetic of the assembly
        beta = coef * absolute
        kappa = self.err_den * scale / 2.0  # the denominator's error: |score| err_den / (2 den) <= kappa / D^2
        coef_q = 0.0
        if method == "ncc":
            # the kernels' residual sums: sum_c |s_c| |window sum_c| / n <= q max_c |s_c| / (n ||k_c||)
            if len(self.channels) == 1:
                coef_q = local / float(np.sqrt(n)) * self.consts.norms[0] + self.consts.residuals[0] / n
            else:
                coef_q = local / float(np.sqrt(n)) + max(
                    (r / (n * nm) for r, nm in zip(self.consts.residuals, self.consts.norms) if nm > 0), default=0.0)
        elif method == "ssd_normed":
            beta += self._energy_error(self.consts.num_shifts)  # the numerator's window energy
        if degenerate is None and self._uniform_bound(e, scores, q, coef_q, alpha, beta, kappa,
                                                      smallest * (1.0 - 4.0 * self.eps)):
            o[...] = scores
            return
        self.bound_max = math.inf
        if method == "ncc":
            np.multiply(q, coef_q, out=e)
            e += beta
        else:
            e[...] = beta
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            np.divide(e, dd, out=e)
            e += alpha
            if kappa:
                d2 = buf("d2", self.work)
                np.square(dd, out=d2)
                np.divide(kappa, d2, out=d2)
                e += d2
        if degenerate is not None:
            np.copyto(e, np.inf, where=degenerate)
        o[...] = scores

    def _uniform_bound(self, e, scores, q, coef_q, alpha, beta, kappa, smallest):
        """One bound for every window of the chunk, when it is far inside the tolerance: True, ``e`` filled.

        The per-window bound ``(coef_q q + beta) / D + alpha + kappa / D^2``
        grows with ``q`` and shrinks with ``D``; with the chunk's largest
        ``q`` and smallest ``D^2`` (``smallest``, rounded down) it holds for
        every window. Used when it is under half the tolerance the chunk's
        own score range implies (the map's range, which sets the tolerance,
        is at least the chunk's), so that it flags no window the per-window
        bounds would not: four passes over the chunk fewer, and the settling
        checks :attr:`bound_max` instead of every bound.
        """
        lo, hi = value_range(scores)
        d_min = math.sqrt(smallest)
        bound = (coef_q * (float(q.max()) if coef_q else 0.0) + beta) / d_min + alpha + kappa / smallest
        if not bound <= 0.5 * self.contract * (hi - lo):
            return False
        e.fill(bound)
        self.bound_max = max(self.bound_max, bound)
        return True
