"""The window terms every score is assembled from, with or without a mask (private).

For one image channel ``P = I - offset`` and mask weights ``M`` (all ones
without a mask), over every window:

- ``s1 = sum(M P)``, ``a2 = sum(M^2 P)``, ``s2 = sum(M^2 P^2)``;
- ``sw = sum(M)``, ``sw2 = sum(M^2)``.

Without a mask these are box sums (``a2`` is ``s1``, ``sw = sw2 = h w``),
exact for small integers (:meth:`matcher.scores.image_channel.BandChannel.sums`).
With a mask they are float64 correlations of the centred channel (``offset``
its centre) with ``M`` and ``M^2``, as in Padfield's masked NCC; a binary
mask has ``a2 = s1``. Each comes with a bound on its error.
"""

from dataclasses import dataclass

import numpy as np

from .error_model import EPS64, EXACT_FLOAT64
from .image_channel import sum_peak


@dataclass
class WindowTerms:
    """One channel's window terms over a band (arrays of the band's output shape, or None when not needed).

    ``err1`` bounds the errors of ``s1`` and ``a2``, ``err2`` that of ``s2``;
    ``exact`` says all three are exact. ``peak`` is the largest magnitude of
    the values summed (``|P|``). ``s2`` errs by at most ``err2 + rel2 |s2|``
    in each window (split sums round their total once: ``rel2``). ``var``, when given (unmasked ncc on split
    sums), is ``sw s2 - s1^2`` computed without cancellation
    (:func:`matcher.scores.image_channel.split_variances`), with an error of at
    most ``err_var + rel_var |var|``; ``s2`` is then None.
    """

    s1: "np.ndarray | None"
    a2: "np.ndarray | None"
    s2: "np.ndarray | None"
    sw: float
    sw2: float
    offset: float
    peak: float
    err1: float
    err2: float
    exact: bool
    binary: bool
    var: "np.ndarray | None" = None
    err_var: float = 0.0
    rel_var: float = 0.0
    rel2: float = 0.0

    @property
    def err2_whole(self):
        """A bound on the error of every ``s2``, its relative part (``rel2 |s2|``) at the largest ``s2``."""
        return self.err2 + self.rel2 * self.sw2 * self.peak * self.peak


def box_terms(ch, shape, first, variance=False):
    """The terms of an unmasked ``shape`` template (box sums of ``ch``; ``s1`` only if ``first``).

    With ``variance`` (ncc), split sums with ``var`` in place of ``s2``.
    """
    h, w = shape
    n = float(h * w)
    if variance:
        s1, var, e1, e_var, rel = ch.variances(shape)
        return WindowTerms(s1, s1, None, n, n, ch.offset, sum_peak(ch), e1, 0.0, False, True, var, e_var, rel)
    s1, s2 = ch.sums(shape, first)
    e1, e2, rel2 = ch.sum_errors(h * w)
    exact = ch.exact and ch.exact_for(h * w)
    return WindowTerms(s1, s1, s2, n, n, ch.offset, sum_peak(ch), e1, e2, exact, True, rel2=rel2)


def masked_terms(ch, weights, algorithm, need_s1, need_a2, need_s2, centred=True):
    """The terms of a template with mask ``weights`` (``(h, w)`` float64 in [0, 1]) over the channel.

    Only the terms asked for are computed (the others are None): ``s1``,
    ``a2`` (``s1`` itself for a binary mask) and ``s2``. Correlations in
    float64 through ``algorithm`` (the channel keeps the spectra of its
    planes for the next template), of the centred channel (``offset`` its
    centre), or, with ``centred=False``, of the raw one (``offset`` 0: one
    plane fewer to transform for the methods that need no ``s1``, where a DC
    offset costs no precision).
    """
    m2 = weights * weights
    binary = bool(np.array_equal(weights, m2))
    taps = int(np.count_nonzero(weights))
    plane, offset = ("centred", ch.centre) if centred else ("raw", 0.0)
    peak = ch.plane_peak(plane)
    exact_ints = ch.integer_valued and binary
    s1 = a2 = s2 = None
    e1 = e2 = 0.0
    if need_s1 or (need_a2 and binary):
        exact = exact_ints and algorithm == "direct" and taps * peak < EXACT_FLOAT64
        s1, e1 = ch.correlate64(weights, algorithm, plane=plane, exact=exact)
    if need_a2:
        a2 = s1
        if not binary:
            a2, e_a2 = ch.correlate64(m2, algorithm, plane=plane)
            e1 = max(e1, e_a2)
    if need_s2:
        exact = exact_ints and algorithm == "direct" and taps * peak * peak < EXACT_FLOAT64
        s2, e2 = ch.correlate64(m2, algorithm, plane=plane + "_squared", exact=exact)
        if not exact:
            e2 += 4.0 * EPS64 * float(m2.sum()) * peak * peak  # the squares' own rounding
    exact = e1 == 0.0 and e2 == 0.0
    return WindowTerms(s1, a2, s2, float(weights.sum()), float(m2.sum()), offset, peak, e1, e2, exact, binary)
