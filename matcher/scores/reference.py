"""The definition of the scores: a plain float64 sliding-window implementation.

This module is the oracle. It is written to be read, not to be fast: every
window is cut out of the image and scored by the formulas below, with
two-pass means and no running sums. The fast engine (:mod:`matcher.scores.engine`)
must agree with it, and reuses :func:`window_scores` to recompute the few
windows whose fast score could be inaccurate.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..methods import LOWER_IS_BETTER
from .inputs import magnitude_shift, prepare, result_shift, scale_back

__all__ = ["match_template_reference", "window_scores", "centred", "used_extremes", "gather_windows", "rescore", "scores_at"]

_BATCH_VALUES = 1 << 22  # pixel values per batch of gathered windows
_FEW_WINDOWS = 16  # up to this many are cut out one by one
NEAR_PERFECT = 1 << 12
"""Up to this many windows within their error bound of a perfect score are recomputed by definition
(both assemblies), so that an exact copy of the template scores exactly 1 (0 for ssd_normed)."""


def window_scores(windows, template, weights, method):
    """Score a batch of windows against one template, by definition.

    Parameters
    ----------
    windows : ndarray, shape (K, C, h, w), float64
        K image windows, channel first.
    template : ndarray, shape (C, h, w), float64
    weights : ndarray, shape (C, h, w), float64, or None
        Mask weights ``M`` in [0, 1]; None means all ones.
    method : str
        One of :data:`matcher.METHODS`.

    Returns
    -------
    ndarray, shape (K,), float64

    Notes
    -----
    With ``M`` the weights (1 without a mask), sums run over pixels and channels:

    - ssd:           ``sum(((T - I) * M)**2)``
    - ssd_normed:    ``min(1, ssd / sqrt(sum((T*M)**2) * sum((I*M)**2)))``;
      0 when both norms are 0, 1 when only one is (OpenCV's unmasked
      TM_SQDIFF_NORMED saturates at 1 too)
    - ccorr:         ``sum(T * I * M**2)``
    - ccorr_normed:  ``ccorr / sqrt(sum((T*M)**2) * sum((I*M)**2))``; 0 when a norm is 0
    - ccoeff:        ``sum(T' * I')`` with ``T' = M * (T - mean_M(T))``,
      ``I' = M * (I - mean_M(I))`` and ``mean_M(X) = sum(M*X) / sum(M)`` per channel
    - ncc:           ``ccoeff / sqrt(sum(T'**2) * sum(I'**2))``; 0 when the
      template or the window is constant over the pixels with ``M > 0``

    Values of any finite magnitude are scored: windows and template of
    extreme magnitude are scaled by powers of two first (exact), and the
    scores scaled back.

    Raises
    ------
    MatcherError
        An ssd, ccorr or ccoeff score beyond float64's range.
    """
    w_mag, t_mag = _largest(windows), _largest(template)
    w_shift, t_shift = magnitude_shift(w_mag), magnitude_shift(t_mag)
    if method in LOWER_IS_BETTER:  # the ssd family subtracts T - I: one common factor
        w_shift = t_shift = magnitude_shift(max(w_mag, t_mag))
    if w_shift:
        windows = np.ldexp(windows, -w_shift)
    if t_shift:
        template = np.ldexp(template, -t_shift)
    scores = _scores(windows, template, weights, method)
    return scale_back(scores, result_shift(method, w_shift, t_shift), method) if w_shift or t_shift else scores


# The reductions below call the ufuncs' reduce directly: the same sums, minima and maxima as the
# arrays' methods (``a.sum()``, ``a.min()``), without their wrappers (a few microseconds each, which
# is most of the cost of scoring the one or nine windows a search reports).
_sum, _min, _max, _all = np.add.reduce, np.minimum.reduce, np.maximum.reduce, np.logical_and.reduce


def _largest(a):
    return max(float(_max(a, axis=None)), -float(_min(a, axis=None))) if a.size else 0.0


def _scores(windows, template, weights, method):
    """:func:`window_scores` on values of moderate magnitude."""
    axes = (1, 2, 3)
    T = template[None]
    M = None if weights is None else weights[None]

    def weighted(x):  # x M; without a mask (M = 1) x itself, the same values
        return x if M is None else x * M

    if method in ("ssd", "ssd_normed", "ccorr", "ccorr_normed"):
        def ssd():
            return _sum(weighted(T - windows) ** 2, axis=axes)

        def ccorr():
            return _sum(weighted(weighted(T * windows)), axis=axes)

        if method in ("ssd", "ccorr"):
            return ssd() if method == "ssd" else ccorr()
        t_norm2 = _sum(weighted(T) ** 2, axis=None)
        w_norm2 = _sum(weighted(windows) ** 2, axis=axes)
        denom = np.sqrt(t_norm2 * w_norm2)
        num = ssd() if method == "ssd_normed" else ccorr()
        positive = denom > 0
        ratio = np.divide(num, denom, where=positive, out=np.zeros_like(num))
        if method == "ssd_normed":
            zero_pair = (t_norm2 == 0) & (w_norm2 == 0)
            return np.where(positive, np.minimum(ratio, 1.0), np.where(zero_pair, 0.0, 1.0))
        return np.where(positive, np.minimum(np.maximum(ratio, -1.0), 1.0), 0.0)
    # ccoeff and ncc: weighted means per channel, subtracted in a second pass.
    if M is None:
        t_dev, w_dev = centred(T), centred(windows)
    else:
        t_dev, w_dev = M * centred(T, M), M * centred(windows, M)
    num = _sum(t_dev * w_dev, axis=axes)
    if method == "ccoeff":
        return num
    used = None if M is None else np.broadcast_to(M > 0, windows.shape)
    flat_window = _all(np.equal(*used_extremes(windows, used)), axis=1)
    flat_template = _all(np.equal(*used_extremes(T, None if M is None else used[:1])), axis=None)
    denom = np.sqrt(_sum(t_dev**2, axis=None) * _sum(w_dev**2, axis=axes))
    valid = ~(flat_window | flat_template) & (denom > 0)
    score = np.divide(num, denom, where=valid, out=np.zeros_like(num))
    return np.minimum(np.maximum(score, -1.0), 1.0, out=score)


def centred(values, weights=None):
    """``values`` minus their (weighted) mean over the last two axes, without rounding at the values' magnitude.

    ``mean_M(X) = sum(M X) / sum(M)``; ``weights`` broadcasts against
    ``values`` (None: all ones). One used value (the first with ``M > 0``) is
    subtracted first: exact (Sterbenz) wherever the values are within a
    factor of 2 of it, so a DC offset of 1e12 costs nothing, where the
    products ``M X`` at the offset's magnitude would round by ``1e12 eps``
    (with fractional weights that error does not cancel). The mean of the
    differences then rounds at the scale of the deviations only.

    Parameters
    ----------
    values : ndarray, shape (..., h, w), float64
    weights : ndarray broadcastable to ``values``, or None

    Returns
    -------
    ndarray, shape of ``values``, float64

    Examples
    --------
    >>> centred(np.array([[1e12 + 1.0, 1e12 + 2.0, 1e12 + 6.0]])).tolist()
    [[-2.0, -1.0, 3.0]]
    """
    flat = values.reshape(values.shape[:-2] + (-1,))
    if weights is None:
        pivot = flat[..., :1]
    else:
        used = np.broadcast_to(weights > 0, values.shape).reshape(flat.shape)
        pivot = np.take_along_axis(flat, used.argmax(axis=-1)[..., None], axis=-1)
    d = values - pivot[..., None]
    if weights is None:  # the mean as numpy's mean computes it: the sum over the count
        return d - _sum(d, axis=(-2, -1), keepdims=True) / (values.shape[-2] * values.shape[-1])
    return d - _sum(weights * d, axis=(-2, -1), keepdims=True) / _sum(weights, axis=(-2, -1), keepdims=True)


def gather_windows(p, ys, xs):
    """Yield ``(ys, xs, windows)`` batches of problem ``p``'s windows at (ys, xs), shaped ``(K, C, h, w)`` float64."""
    C, h, w = p.template.shape
    if 0 < ys.size <= _FEW_WINDOWS:  # cut out one by one: cheaper than setting up a view for a few
        windows = np.stack([p.image[:, y : y + h, x : x + w] for y, x in zip(ys.tolist(), xs.tolist())])
        yield ys, xs, windows.astype(np.float64, copy=False)
        return
    view = sliding_window_view(p.image, (h, w), axis=(1, 2))  # (C, H', W', h, w)
    batch = max(1, _BATCH_VALUES // (C * h * w))
    for start in range(0, ys.size, batch):
        y, x = ys[start : start + batch], xs[start : start + batch]
        yield y, x, np.ascontiguousarray(view[:, y, x].transpose(1, 0, 2, 3), dtype=np.float64)


def rescore(p, scores, ys, xs):
    """Overwrite ``scores[ys, xs]`` with problem ``p``'s scores there, by definition."""
    for y, x, windows in gather_windows(p, ys, xs):
        scores[y, x] = window_scores(windows, p.template, p.weights, p.method)


def scores_at(image, template, method, ys, xs, *, mask=None):
    """The scores of the windows whose top-left corners are at (ys, xs), by definition, float64.

    For a few positions of a large image: only those windows are read.
    """
    ys, xs = np.asarray(ys, np.intp).ravel(), np.asarray(xs, np.intp).ravel()
    if ys.size == 0:
        return np.zeros(0)
    img = np.asarray(image)
    tpl_shape = np.shape(template)
    h, w = (1, tpl_shape[0]) if img.ndim == 1 else tpl_shape[:2]
    rows = img[None] if img.ndim == 1 else img
    first = rows[ys[0] : ys[0] + h, xs[0] : xs[0] + w]
    p = prepare(first[0] if img.ndim == 1 else first, template, method, mask=mask, scale=False)
    windows = np.stack([rows[y : y + h, x : x + w] for y, x in zip(ys.tolist(), xs.tolist())])  # (K, h, w[, C])
    windows = windows.reshape(windows.shape[:3] + (-1,)).transpose(0, 3, 1, 2)  # (K, C, h, w)
    return window_scores(np.ascontiguousarray(windows, dtype=np.float64), p.template, p.weights, p.method)


def used_extremes(windows, used):
    """(K, C) minima and maxima of each channel of each window over the ``used`` pixels.

    A window is flat exactly when its minimum equals its maximum there, so the
    test is exact; a variance computed from sums never is. ``used`` None: every pixel.
    """
    if used is None or np.all(used):
        return _min(windows, axis=(2, 3)), _max(windows, axis=(2, 3))
    lo = _min(np.where(used, windows, np.inf), axis=(2, 3))
    hi = _max(np.where(used, windows, -np.inf), axis=(2, 3))
    return lo, hi


def match_template_reference(image, template, method="ncc", *, mask=None, mode="correlate"):
    """Score every window by definition, in float64 (slow; the tests' oracle).

    Takes the same arguments and raises the same errors as
    :func:`matcher.match_template`; see :func:`window_scores` for the formulas.

    Returns
    -------
    ndarray, shape (H - h + 1, W - w + 1), or (N - n + 1,) for 1-D input

    Examples
    --------
    >>> match_template_reference([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0], [3, 4, 5], "ssd").argmin()
    np.int64(6)
    """
    p = prepare(image, template, method, mask=mask, mode=mode, scale=False)  # window_scores scales what it must
    C, h, w = p.template.shape
    out = np.empty(p.out_shape)
    for y in range(out.shape[0]):
        band = p.image[:, y : y + h, :]  # (C, h, W)
        windows = sliding_window_view(band, w, axis=2)  # (C, h, W', w)
        windows = np.ascontiguousarray(windows.transpose(2, 0, 1, 3), dtype=np.float64)  # (W', C, h, w)
        out[y] = window_scores(windows, p.template, p.weights, p.method)
    return out[0] if p.one_d else out
