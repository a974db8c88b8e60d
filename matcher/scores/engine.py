"""The matching engine: every window's score, exact and guarded.

Scores are assembled from three kinds of pieces:

- one correlation of the image with a template-derived kernel (direct or
  FFT), plus two more with the weights for a mask;
- window sums of the image and of its square (box filters);
- exact window minima and maxima, which say where a window is flat or zero.

One assembly (:mod:`matcher.scores.assembly`) combines them for every map,
in cache-sized row chunks; the plan (:func:`matcher.scores.plan.choose_plan`)
says in which precision the correlation runs: float32 through OpenCV for
unmasked maps of 4096 positions and more in ``precision="fast"``, float64
otherwise (and for a band whose float32 bounds cannot be settled cheaply:
the assembly then runs again in float64). The image is centred
where that helps (its mean subtracted; an integer for integer data so that
sums stay exact), so errors do not grow with a large DC offset, which is what
breaks OpenCV's float32 path. Every score gets a bound on its rounding
error; the windows whose bound exceeds the precision's tolerance are
recomputed (in float64, or by definition with
:func:`matcher.scores.reference.window_scores`). Hence ``precision="exact"`` agrees
with the float64 reference to 1e-9 of the score range on every input,
``"fast"`` to 1e-4, and neither returns a score for a flat window other than
its documented value.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from .inputs import PRECISIONS, check_choice, prepare, prepare_image, scale_back
from .plan import band_bounds, choose_plan
from .. import deadline
from ..errors import MatcherError
from .assembly import assemble
from .workspace import empty, session

__all__ = ["match_template", "match_templates", "set_num_threads", "num_threads", "thread_pool", "run_parallel"]

_USABLE_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_CORES = _USABLE_CORES  # threads for bands and FFTs; set_num_threads changes it
_POOL = None  # (executor, its size, the process that made it): see thread_pool
_POOL_LOCK = threading.Lock()
_DEADLINE_BANDS = 8  # bands of a large map scored under a deadline: it is checked before each


def match_template(image, template, method="ncc", *, mask=None, mode="correlate", precision="fast", algorithm="auto"):
    """Score every position of ``template`` over ``image``.

    With ``M`` the mask weights (all ones without a mask), ``T`` the template
    and ``I`` the image window at ``(y, x)``, sums over pixels and channels:

    ============  ==============================================================
    method        score (OpenCV constant)
    ============  ==============================================================
    ssd           ``sum(((T - I) M)^2)``  (TM_SQDIFF; lower is better)
    ssd_normed    ``min(1, ssd / sqrt(sum((T M)^2) sum((I M)^2)))`` (TM_SQDIFF_NORMED)
    ccorr         ``sum(T I M^2)`` (TM_CCORR)
    ccorr_normed  ``ccorr / sqrt(sum((T M)^2) sum((I M)^2))`` in [-1, 1] (TM_CCORR_NORMED)
    ccoeff        ``sum(T' I')``, ``X' = M (X - sum(M X) / sum(M))`` per channel (TM_CCOEFF)
    ncc           ``ccoeff / sqrt(sum(T'^2) sum(I'^2))`` in [-1, 1] (TM_CCOEFF_NORMED)
    ============  ==============================================================

    Where a denominator vanishes the score is defined, never NaN: ``ncc`` is 0
    for a constant window or template (no evidence, not a false 1.0);
    ``ccorr_normed`` is 0 when either norm is 0; ``ssd_normed`` is 0 when both
    are 0 and 1 when one is, and saturates at 1 (as OpenCV's unmasked
    TM_SQDIFF_NORMED does; OpenCV's masked one does not).

    Parameters
    ----------
    image : array_like, shape (H, W), (H, W, C) or (N,)
        bool, integer or float; C in 1..4; 1-D is a single row.
    template : array_like, shape (h, w), (h, w, C) or (n,)
        Same number of channels as ``image``; must fit inside it.
    method : str or int
        One of :data:`matcher.METHODS`, or OpenCV's ``TM_*`` constant (0-5) or name.
    mask : array_like, shape (h, w) or (h, w, C), optional, keyword-only
        bool or integer (non-zero = pixel used) or float weights in [0, 1].
    mode : {"correlate", "convolve"}, keyword-only
        ``"convolve"`` flips the template (and mask) by 180 degrees first.
    precision : {"fast", "exact"}, keyword-only
        Error tolerance against the float64 reference: 1e-4 ("fast") or 1e-9
        ("exact") of the score range. "fast" correlates in float32 where its
        error bound allows (large maps without a mask), "exact" in float64.
    algorithm : {"auto", "direct", "fft"}, keyword-only
        How to compute the correlations; ``"auto"`` asks :func:`matcher.choose_algorithm`.

    Returns
    -------
    scores : ndarray of float64, shape (H - h + 1, W - w + 1), or (N - n + 1,) for 1-D
        ``scores[y, x]`` scores the window whose top-left corner is ``(x, y)``.

    Raises
    ------
    MatcherError (a ValueError)
        Unknown method, mode, precision or algorithm; empty arrays; NaN or inf;
        template larger than the image; channel or mask shape mismatch.
    TypeError
        Non-numeric arrays.

    References
    ----------
    J. P. Lewis, "Fast Normalized Cross-Correlation", Vision Interface, 1995.
    D. Padfield, "Masked Object Registration in the Fourier Domain", IEEE TIP 21(5), 2012.

    Examples
    --------
    >>> scores = match_template([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0], [3, 4, 5], "ssd")
    >>> int(scores.argmin()), float(scores.min())
    (6, 0.0)
    """
    return match_templates(image, [template], method, masks=[mask], mode=mode, precision=precision, algorithm=algorithm)[0]


def match_templates(image, templates, method="ncc", *, masks=None, mode="correlate", precision="fast", algorithm="auto"):
    """Score several templates over one image, sharing the image-side work.

    The image is validated, centred and transformed once; window sums are
    shared by templates of equal shape. Arguments are as in
    :func:`match_template`, with ``templates`` a sequence and ``masks`` None
    or a sequence of the same length (entries may be None).

    Returns
    -------
    list of ndarray
        One score map per template, in order.

    Examples
    --------
    >>> maps = match_templates([[1, 2, 3, 4]], [[[2, 3]], [[4]]], "ssd")
    >>> [m.tolist() for m in maps]
    [[[2.0, 0.0, 2.0]], [[9.0, 4.0, 1.0, 0.0]]]
    """
    check_choice("precision", precision, PRECISIONS)
    templates = list(templates)
    if not templates:
        raise MatcherError("templates must contain at least one template, got an empty sequence", param="templates")
    masks = [None] * len(templates) if masks is None else list(masks)
    if len(masks) != len(templates):
        raise MatcherError(f"masks must have one entry per template ({len(templates)}), got {len(masks)}",
                           param="masks")
    prepared_image = prepare_image(image)
    problems = [prepare(image, t, method, mask=m, mode=mode, prepared_image=prepared_image) for t, m in zip(templates, masks)]
    plans = [choose_plan(p.image.shape[1:], p.template.shape[1:], masked=p.weights is not None,
                         precision=precision, algorithm=algorithm) for p in problems]
    results = [np.empty(p.out_shape) for p in problems]
    bounds = _band_bounds(problems)
    workers = 1 if len(bounds) > 2 else _CORES  # threads share the cores, or the FFT does
    expires = deadline.current()  # the pool's threads do not see this thread's context

    def score_band(k):
        # Band k computes output rows bounds[k]:bounds[k+1] of every map, from
        # the image rows those windows cover; the last band runs to the end.
        r0, r1 = bounds[k], bounds[k + 1]
        last = k == len(bounds) - 2
        h_max = max(p.template.shape[1] for p in problems)
        band_end = problems[0].image.shape[1] if last else r1 + h_max - 1
        channels = {}  # the band's channels: centred planes, spectra and window sums shared by the templates
        with session():  # the band's working arrays, in the memory of the thread's previous call
            for i in sorted(range(len(problems)), key=lambda i: problems[i].template.shape[1:]):
                deadline.check(expires)  # between bands and templates (matcher.deadline)
                p, plan, out = problems[i], plans[i], results[i]
                whole = r0 == 0 and band_end == p.image.shape[1]
                band = p if whole else replace(p, image=p.image[:, r0:band_end])
                rows = out.shape[0] - r0 if last else r1 - r0
                in_place = band.out_shape[0] == rows
                target = out[r0 : r0 + rows] if in_place else empty("target", band.out_shape)
                options = dict(precision=precision, channels=channels, workers=workers)
                if not assemble(band, plan.algorithm, target, work=plan.work_dtype, **options):
                    assemble(band, plan.algorithm, target, work="float64", **options)  # float32 could not vouch
                if not in_place:
                    out[r0 : r0 + rows] = target[:rows]

    run_parallel(score_band, len(bounds) - 1)
    results = [scale_back(r, p.result_shift, p.method) for r, p in zip(results, problems)]
    return [r[0] if p.one_d else r for r, p in zip(results, problems)]


def set_num_threads(n=None):
    """Set how many threads matcher's engine uses; ``None`` means every usable core.

    Large score maps are split into that many bands scored in parallel, and
    FFTs use that many workers. A server running several worker processes
    sets this to its share of the cores so that they do not oversubscribe.

    Parameters
    ----------
    n : int or None
        A positive number of threads.

    Returns
    -------
    int
        The previous setting.

    Examples
    --------
    >>> previous = set_num_threads(1)
    >>> _ = set_num_threads(previous)
    """
    global _CORES
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise MatcherError(f"n must be a positive integer or None, got {n!r}")
    previous, _CORES = _CORES, (_USABLE_CORES if n is None else int(n))
    return previous


def num_threads():
    """How many threads the engine uses now (:func:`set_num_threads`).

    >>> num_threads() >= 1
    True
    """
    return _CORES


def thread_pool():
    """The engine's threads: one pool of ``set_num_threads`` workers, kept between calls.

    Starting threads costs about a millisecond each, as much as scoring a
    small map; the pool is made again after ``set_num_threads`` changes its
    size, or in a forked child (threads do not survive a fork). Tasks
    submitted here must not wait on tasks of the same pool.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[1:] != (_CORES, os.getpid()):
            if _POOL is not None and _POOL[2] == os.getpid():
                _POOL[0].shutdown(wait=False)  # its running tasks finish; its threads then exit
            _POOL = (ThreadPoolExecutor(_CORES, thread_name_prefix="matcher"), _CORES, os.getpid())
        return _POOL[0]


def run_parallel(task, count):
    """``[task(k) for k in range(count)]``, task 0 in the calling thread and the others on :func:`thread_pool`.

    The calling thread is running (its core awake, its caches warm): it takes
    a share of the work at once rather than waiting while pool threads wake
    for every task. All tasks finish before an exception (the first task's
    first) propagates.

    >>> run_parallel(lambda k: k * k, 3)
    [0, 1, 4]
    """
    if count <= 1:
        return [task(0)] if count == 1 else []
    pool = thread_pool()
    futures = [pool.submit(task, k) for k in range(1, count)]
    try:
        first = task(0)
    finally:
        others = [f.exception() for f in futures]  # waits for each
    for error in others:
        if error is not None:
            raise error
    return [first] + [f.result() for f in futures]


def _band_bounds(problems):
    """:func:`matcher.scores.plan.band_bounds` for problems scored together; under a deadline, at least
    :data:`_DEADLINE_BANDS` bands (large maps only), so that it is checked during the map, not only before."""
    out_shape = (min(p.out_shape[0] for p in problems), min(p.out_shape[1] for p in problems))
    bands = _CORES if deadline.current() is None else max(_CORES, _DEADLINE_BANDS)
    return band_bounds(out_shape, max(p.template.shape[1] for p in problems), bands)
