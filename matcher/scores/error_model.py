"""The engine's one error model: how far a correlation or a window sum can be from its exact value.

Every correlation routine returns its values with the two coefficients of a
per-output bound, ``||k|| (local sqrt(E) + per_peak max|c|)`` for kernel
``k``, plane ``c`` and window energy ``E = sum(c^2)`` over the window
(:func:`correlation_error_bound`):

- OpenCV's float32 correlation (:func:`float32_coefficients`): measured
  constants with a margin (``_FLOAT32_MODEL``);
- float64 direct sums (:func:`float64_coefficients`): 0 for exact integer
  sums, else a per-peak term that grows with the number of taps;
- transforms: :func:`matcher.scores.correlate.fft_error_bound` (the spread of their
  rounding over the grid, and each output's own);
- window sums (box filters or split sums): their own bounds, from
  :meth:`matcher.scores.image_channel.BandChannel.sum_errors`;
- denominators built from window sums: :func:`denominator_error`.

The assembly turns these into a bound for every score and recomputes the
windows whose bound exceeds the precision's tolerance.
"""

import math

import numpy as np

__all__ = ["correlation_error_bound", "float32_coefficients", "float64_coefficients", "denominator_error",
           "denominator_relative_error", "sum_magnitude_bound", "EPS32", "EPS64", "EXACT_FLOAT64"]

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
EXACT_FLOAT64 = 2.0**52
"""Integers below this (in magnitude) and their sums below it are exact in float64."""
# Error bound of OpenCV's float32 correlation of an image c with a kernel k,
# per output: eps32 ||k|| (A sqrt(E) + B max|c|) through its blocked DFT,
# eps32 ||k|| A_DIRECT sqrt(E) through its direct filter (up to 11 x 11), E
# the sum of c^2 over the window. On photographs, random, spiky, flat (sky)
# and DC-offset images with 3-64 px kernels, the measured error reaches at
# most 4.3 eps32 ||k|| (sqrt(E) + 4 max|c|) and 4.5 eps32 ||k|| sqrt(E)
# (direct) for the centred image with zero-mean kernels (ncc, ccoeff), and
# 5.3 and 15.4 for the raw image with raw kernels (the other methods), 5.8
# and 8.1 for the centred image with a raw kernel minus the image's centre
# (ssd, shifted alike). The constants leave a margin of 2
# (tests/test_large_maps.py pins it), which also covers rounding the kernel
# and the image to float32.
_FLOAT32_MODEL = {  # plane and kernel: (A, B, A_DIRECT)
    "centred": (9.0, 36.0, 10.0),
    "raw": (11.0, 44.0, 32.0),
    "shifted": (12.0, 48.0, 17.0),
}


def correlation_error_bound(kernel_norm, window_energy, peak, *, plane="centred", direct=False):
    """Bound on the error of one float32 correlation output.

    Parameters
    ----------
    kernel_norm : float
        ``||k||``, the kernel's Euclidean norm.
    window_energy : float or ndarray
        ``E``, the sum of the plane's squares over the window.
    peak : float
        The plane's largest magnitude.
    plane : {"centred", "raw", "shifted"}, keyword-only
        The image minus its mean with a zero-mean kernel, the raw image with a raw kernel, or the
        image minus its mean with a raw kernel minus the same value (ssd).
    direct : bool, keyword-only
        OpenCV's direct filter computed it (else its blocked DFT).

    Returns
    -------
    float or ndarray
        ``||k|| (local sqrt(E) + per_peak peak)``.

    Examples
    --------
    >>> float(correlation_error_bound(1.0, 0.0, 0.0))
    0.0
    """
    local, per_peak = float32_coefficients(plane, direct)
    return kernel_norm * (local * np.sqrt(window_energy) + per_peak * peak)


def float32_coefficients(plane, direct):
    """``(local, per_peak)`` of OpenCV's float32 correlation: the bound is ``||k|| (local sqrt(E) + per_peak max|c|)``.

    >>> local, per_peak = float32_coefficients("centred", direct=True)
    >>> per_peak
    0.0
    """
    a, b, a_direct = _FLOAT32_MODEL[plane]
    return (a_direct * EPS32, 0.0) if direct else (a * EPS32, b * EPS32)


def float64_coefficients(taps, *, exact=False):
    """``(local, per_peak)`` of a float64 correlation by direct sums of ``taps`` products (the
    transforms' bound is :func:`matcher.scores.correlate.fft_error_bound`).

    ``exact`` says every product and partial sum is an integer below 2**53
    (integer data, direct sums): no error at all. Otherwise, direct sums of
    ``taps`` products err by at most ``taps eps |k| |c| <= taps^1.5 eps ||k|| max|c|``.

    >>> float64_coefficients(9, exact=True)
    (0.0, 0.0)
    """
    if exact:
        return 0.0, 0.0
    return 0.0, EPS64 * float(taps * np.sqrt(taps) + 64.0)


def denominator_error(terms, method):
    """Bound on the error of the denominators built from window terms, summed over channels.

    ``terms`` are the channels' :class:`matcher.scores.window_terms.WindowTerms`;
    the denominator is ``sw den`` for ncc (``sw`` times the window's weighted
    variance) and the raw window energy ``sum(M^2 I^2)`` otherwise. Window sums
    may be exact (small integers) while the denominators round: the rounding
    terms cover that. Parts relative to each window's own denominator (a split
    sum's one rounding, the split variances') are not in this bound but in
    :func:`denominator_relative_error`.
    """
    total = 0.0
    for t in terms:
        m, sw, e1, e2 = t.peak, t.sw, t.err1, t.err2
        if method == "ncc" and t.var is not None:  # computed without cancellation: its own bound
            total += t.err_var
        elif method == "ncc":  # sw s2 - 2 s1 a2 + s1^2 sw2 / sw, from sums of (plane - offset)
            total += sw * t.err2_whole + 4.0 * sw * m * e1 + 8.0 * EPS64 * (sw * m) ** 2
        elif t.offset == 0.0:  # the raw energy is s2 itself: its running error here, its rounding relative
            total += e2
        else:  # raw energy s2 + 2 offset a2 + sw2 offset^2
            total += t.err2_whole + 2.0 * abs(t.offset) * e1 + 8.0 * EPS64 * sw * (m + abs(t.offset)) ** 2
    return total


def denominator_relative_error(terms, method):
    """The part of the denominators' error relative to each one: ``|den' - den| <= E + rho |den'|``
    with ``E`` from :func:`denominator_error` and ``rho`` from here."""
    if method == "ncc":
        return max((t.rel_var for t in terms), default=0.0)
    if all(t.offset == 0.0 for t in terms):  # raw energies summed over channels, each rounding once more
        return max((t.rel2 for t in terms), default=0.0) + (len(terms) - 1) * EPS64
    return 0.0


def sum_magnitude_bound(values):
    """A bound on ``|sum(values)|`` (float64): numpy's sum plus its rounding error.

    A centred kernel sums to a few rounding errors, not to 0, and the assembly
    needs only a bound on that residual; ``math.fsum`` gives it exactly but
    costs about 30 ns a value (0.5 ms for a 128 x 128 template), this about
    1 ns. numpy sums a contiguous array pairwise (blocks of up to 128 values
    in 8 running sums of up to 16, added in a tree; blocks in a tree of depth
    ``log2(n / 128)``), so every value passes through at most ``log2(n) + 12``
    additions, each rounding by at most ``eps / 2`` of its partial sum: the
    error is below ``(log2(n) + 20) eps sum|values|`` (margin for the terms of
    second order and the rounding of ``sum|values|``).

    Parameters
    ----------
    values : ndarray of float64, any shape

    Returns
    -------
    float
        At least ``|sum(values)|`` in exact arithmetic.

    Examples
    --------
    >>> sum_magnitude_bound(np.array([0.1, 0.2, -0.3])) >= abs(math.fsum([0.1, 0.2, -0.3]))
    True
    """
    flat = np.ascontiguousarray(values, dtype=np.float64).ravel()
    depth = math.ceil(math.log2(max(flat.size, 2))) + 20
    return abs(float(np.add.reduce(flat))) + 1.01 * depth * EPS64 * float(np.add.reduce(np.abs(flat)))
