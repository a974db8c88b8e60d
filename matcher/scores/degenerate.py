"""Degenerate windows: one rule for every assembly.

A normalised score divides by the window's (and the template's) norm; where
that vanishes the score is defined, never NaN:

- **which windows**: for the zero-mean methods (``ncc``) a window that is flat
  (constant) over the used pixels in every channel; for the others
  (``ccorr_normed``, ``ssd_normed``) one that is all zero there. The test is
  exact: minima and maxima, no arithmetic (:func:`degenerate_at`);
- **their value** (:func:`degenerate_score`): ``ncc`` and ``ccorr_normed`` 0
  (no evidence, not a false 1.0); ``ssd_normed`` 0 where window and template
  are both zero, 1 where only one is (:func:`template_degenerate_score` for
  the other windows when the template itself is degenerate).

Both assemblies find their candidates (denominators within their error bound
of zero) their own way and settle them here.
"""

import numpy as np

from ..methods import get_method
from .reference import gather_windows, used_extremes
from .window_extremes import window_extremes

__all__ = ["degenerate_at", "degenerate_score", "template_degenerate_score", "is_degenerate"]

_GATHER = 64  # up to this many candidate windows are always gathered and tested one by one
_GATHER_PIXELS = 1.0
"""More are gathered while their pixels number at most this many times the image's: a gathered value costs
about what a pixel of the whole-map window extremes costs (2.6 and 3-7 ns, float32)."""


def is_degenerate(method, lo, hi):
    """Whether windows with these minima ``lo`` and maxima ``hi`` (over their used pixels) are degenerate.

    >>> is_degenerate("ncc", np.array([3, 1]), np.array([3, 2])).tolist()
    [True, False]
    >>> is_degenerate("ssd_normed", np.array([0, 0]), np.array([0, 1])).tolist()
    [True, False]
    """
    return (lo == hi) if get_method(method).zero_mean else (lo == 0) & (hi == 0)


def degenerate_score(method, template_degenerate=False):
    """The score of a degenerate window (against a degenerate template too, if ``template_degenerate``).

    >>> degenerate_score("ncc"), degenerate_score("ssd_normed"), degenerate_score("ssd_normed", True)
    (0.0, 1.0, 0.0)
    """
    if get_method(method).lower_is_better:  # ssd_normed: 0 for two zero patches, 1 where only one is zero
        return 0.0 if template_degenerate else 1.0
    return 0.0


def template_degenerate_score(method):
    """The score of every non-degenerate window when the template is degenerate (constant for
    ``ncc``, all zero otherwise).

    >>> template_degenerate_score("ncc"), template_degenerate_score("ssd_normed")
    (0.0, 1.0)
    """
    return 1.0 if get_method(method).lower_is_better else 0.0


def degenerate_at(p, ys, xs, extremes=None):
    """Exactly which of problem ``p``'s windows at ``(ys, xs)`` are degenerate: bool, shape ``(K,)``.

    A few windows are gathered and tested over the used pixels. Many (large
    flat areas) are tested with window minima and maxima over the bounding box
    of the used pixels, for the whole map at once: exact without a mask;
    with one, sufficient but not necessary (a window flat only on the used
    pixels is then left to the caller's recompute by definition).
    ``extremes(c, box, offset)`` may supply those maps (cached ones);
    default :func:`matcher.scores.window_extremes.window_extremes`.
    """
    ys, xs = np.asarray(ys, np.intp), np.asarray(xs, np.intp)
    result = np.zeros(ys.size, bool)
    if ys.size == 0:
        return result
    out_shape = p.out_shape
    _, h, w = p.template.shape
    if ys.size <= _GATHER or ys.size * h * w <= _GATHER_PIXELS * p.image.shape[1] * p.image.shape[2]:
        start = 0
        for y, _, windows in gather_windows(p, ys, xs):
            used = np.ones(windows.shape[1:], bool) if p.weights is None else p.weights > 0
            lo, hi = used_extremes(windows, used)
            result[start : start + y.size] = is_degenerate(p.method, lo, hi).all(axis=1)
            start += y.size
        return result
    used = np.ones((h, w), bool) if p.weights is None else (p.weights > 0).any(axis=0)
    rows, cols = np.nonzero(used)
    box = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    offset = (int(rows.min()), int(cols.min()))
    result[:] = True
    for c in range(p.image.shape[0]):
        if extremes is None:
            lo, hi = window_extremes(p.image[c], box, out_shape, offset)
        else:
            lo, hi = extremes(c, box, offset)
        result &= is_degenerate(p.method, lo[ys, xs], hi[ys, xs])
    return result
