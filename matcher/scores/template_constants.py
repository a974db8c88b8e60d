"""The template's side of the one assembly (private): the kernels each channel is correlated with, and constants.

:func:`template_constants` is a pure function of the problem's template,
weights and method and of the image channels' centres: it returns a frozen
:class:`TemplateConstants` that :mod:`matcher.scores.assembly` (the
correlations, the error bounds) and :mod:`matcher.scores.chunk_scores` (the
scores of each row chunk) read, instead of a dozen attributes set on the
assembly.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..methods import get_method
from .error_model import sum_magnitude_bound
from .reference import centred

__all__ = ["TemplateConstants", "template_constants"]


@dataclass(frozen=True)
class TemplateConstants:
    """What the assembly needs of the template, per channel ``c`` where a tuple.

    ``kernels[c]`` is correlated with channel ``c`` shifted by
    ``plane_shifts[c]`` (its centre for ncc and ccoeff; see
    :func:`template_constants`); ``planes[c]`` names that plane ("centred" or
    "raw") and ``peaks[c]`` its largest magnitude.
    """

    n: int
    """Template pixels per channel."""
    sw: tuple
    """Weight sums ``sum(M)`` (``n`` without a mask)."""
    den_scale: float
    """ncc's denominators are kept times this (the common weight sum, else 1)."""
    den_factors: tuple
    """Each channel's variance is multiplied by this before the channels are summed."""
    kernels: tuple
    """The kernels, float64 arrays of the template's shape (unit norm for ncc and ccorr_normed in float32)."""
    t_total: float
    """The template's energy as the scores use it: ``sum(T'^2 M^2)`` (zero-mean) or ``sum((T M)^2)``."""
    t_sq: float
    """ssd's template energy, of the template shifted as the image plane is."""
    norms: tuple
    """``||kernels[c]||_2``."""
    residuals: tuple
    """A bound on ``|sum(kernels[c])|`` of an unmasked zero-mean kernel (0 otherwise)."""
    corrections: tuple | None
    """Masked zero-mean methods: ``sum(kernels[c]) / sw[c]``, the weighted mean's share of the numerator."""
    shift: float
    """ccorr and ccorr_normed of a shifted image: the shift's share, ``sum_c plane_shifts[c] sum(kernels[c])``."""
    plane_shifts: tuple
    """The value each channel is shifted by before it is correlated."""
    planes: tuple
    """"centred" or "raw": the plane each channel is correlated as."""
    peaks: tuple
    """The largest magnitude of each correlated plane."""
    raw_shifts: tuple
    """The offsets the window terms sum from (the denominators' energies)."""
    num_shifts: tuple
    """``raw_shifts - plane_shifts``: ssd's numerator energy is of the plane shifted by this."""
    constant: float | None
    """The score of every window when the template alone decides it (a constant template's ncc), else None."""
    template_degenerate: bool
    """ssd_normed with an all-zero template: every window is degenerate."""


def template_constants(p, channels, *, float64, centred_plane):
    """The kernels and constants of problem ``p``'s template against these image channels.

    Parameters
    ----------
    p : Problem
        A validated problem (:func:`matcher.scores.inputs.prepare`): ``template``
        and ``weights`` (None or one per channel) of shape (C, h, w).
    channels : sequence of BandChannel
        The image channels (their ``centre``, ``offset``, ``peak``, ``magnitude``).
    float64 : bool, keyword-only
        Whether the correlation is in float64 (else float32: unit kernels for
        the scores that do not depend on the template's scale).
    centred_plane : bool, keyword-only
        Whether the image is correlated minus an offset (ncc, ccoeff, float64,
        float32 ssd on a large DC offset) rather than raw.

    Returns
    -------
    TemplateConstants
    """
    method, T, M = p.method, p.template, p.weights
    C, h, w = T.shape
    n = h * w
    masked = M is not None
    zero_mean = get_method(method).zero_mean
    m2 = [None] * C if M is None else [m * m for m in M]
    sw = [float(n)] * C if M is None else [float(m.sum()) for m in M]
    den_scale = sw[0] if len(set(sw)) == 1 else 1.0
    den_factors = [den_scale / s if s > 0 else 0.0 for s in sw]
    t_sq, constant, template_degenerate = 0.0, None, False
    # the value each channel is shifted by before it is correlated: its centre for ncc and ccoeff;
    # in float64 or with a mask, the offset its window terms sum from (its centre where a DC offset
    # would cost precision, 0 otherwise: no shift, no extra pass; with a mask the centre for ncc and
    # ccoeff, whose weighted means cancel only there); 0 in unmasked float32
    offsets = [ch.centre if masked and zero_mean else ch.offset for ch in channels]
    if zero_mean or (centred_plane and not float64):  # ncc, ccoeff; float32 ssd centred
        plane_shifts = [ch.centre for ch in channels]
    else:
        plane_shifts = offsets if centred_plane else [0.0] * C
    if zero_mean:
        devs = []
        for c in range(C):
            used = T[c] if M is None else T[c][M[c] > 0]
            flat = used.size == 0 or used.min() == used.max()
            devs.append(np.zeros_like(T[c]) if flat else centred(T[c], None if M is None else M[c]))
        kernels = [d if m is None else m * d for d, m in zip(devs, m2)]
        t_total = float(sum((k * d).sum() for k, d in zip(kernels, devs)))
        if method == "ncc" and t_total == 0:
            constant = 0.0  # constant template: no evidence anywhere
    else:
        raw = [T[c] if m2[c] is None else m2[c] * T[c] for c in range(C)]
        t_total = float(sum((k * t).sum() for k, t in zip(raw, T)))  # sum((T M)^2)
        kernels = raw
        if method in ("ssd", "ssd_normed"):
            if any(plane_shifts):  # ssd is unchanged when image and template shift together
                shifted = [T[c] - plane_shifts[c] for c in range(C)]
                kernels = [s if m2[c] is None else m2[c] * s for c, s in enumerate(shifted)]
                t_sq = float(sum((k * s).sum() for k, s in zip(kernels, shifted)))
            else:
                t_sq = t_total
        if method == "ccorr_normed" and t_total == 0:
            constant = 0.0
        if method == "ssd_normed" and t_total == 0:
            template_degenerate = True
    if method in ("ncc", "ccorr_normed") and t_total > 0 and not float64:
        # their scores do not change with the template's scale: a unit
        # kernel keeps float32 far from underflow and overflow (float64
        # keeps integer kernels exact instead)
        unit = 1.0 / np.sqrt(t_total)
        kernels = [k * unit for k in kernels]
        t_total = 1.0
    norms = [float(np.sqrt((k * k).sum())) for k in kernels]
    ccorr_shifted = method in ("ccorr", "ccorr_normed") and any(plane_shifts)
    # An unmasked centred kernel sums to a few rounding errors, not to 0: its
    # sum s adds s * (the window's mean of the centred channel) to the
    # correlation, which the bound covers (a bound on |s| serves). A masked one's
    # weighted sum is subtracted (Padfield): sum(M^2 T' (I - mean_M(I))) = x - s mean_M(I).
    if zero_mean and not masked:
        sums = [sum_magnitude_bound(k) for k in kernels]
    else:
        sums = [math.fsum(k.ravel()) for k in kernels] if zero_mean or ccorr_shifted else [0.0] * C
    corrections = [s / w_ if w_ > 0 else 0.0 for s, w_ in zip(sums, sw)] if masked and zero_mean else None
    residuals = [abs(s) if zero_mean and not masked else 0.0 for s in sums]
    # ccorr of a shifted image: plus the shift's share, sum_c shift_c sum(k_c)
    shift = math.fsum(g * s for g, s in zip(plane_shifts, sums)) if ccorr_shifted else 0.0
    planes = ["centred" if g != 0.0 else "raw" for g in plane_shifts]
    peaks = [ch.peak if plane == "centred" else ch.magnitude for ch, plane in zip(channels, planes)]
    # the window energies: raw ones (denominators) and those of the plane ssd's numerator uses
    num_shifts = [o - g for o, g in zip(offsets, plane_shifts)]
    return TemplateConstants(
        n=n, sw=tuple(sw), den_scale=den_scale, den_factors=tuple(den_factors), kernels=tuple(kernels),
        t_total=t_total, t_sq=t_sq, norms=tuple(norms), residuals=tuple(residuals),
        corrections=None if corrections is None else tuple(corrections), shift=shift,
        plane_shifts=tuple(plane_shifts), planes=tuple(planes), peaks=tuple(peaks), raw_shifts=tuple(offsets),
        num_shifts=tuple(num_shifts), constant=constant, template_degenerate=template_degenerate)
