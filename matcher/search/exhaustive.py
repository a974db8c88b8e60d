"""The exhaustive search: every window scored, local peaks, suppression.

The score maps come from :func:`matcher.scores.engine.match_templates`; a
match is a local peak of its map (a window scoring at least as well as its 8
neighbours, one per plateau), taken best first across all templates and
dropped if it overlaps an already taken match by more than the job's
``max_overlap`` (IoU, :func:`matcher.search.peaks.suppress`).
"""

import numpy as np

from ..scores.engine import match_templates
from .peaks import local_peaks, suppress
from .report import confirm_threshold, map_slack, matches_at

__all__ = ["search_exhaustive", "score_maps", "matches_in", "best_window", "ranked_peaks"]


def search_exhaustive(job):
    """Every window of every template of ``job`` (a :class:`~matcher.search.job.SearchJob`): matches, best first.

    Positions are in the searched image's coordinates.
    """
    return matches_in(job, score_maps(job))


def score_maps(job):
    """The score map of each of the job's templates over the searched image (1-D maps as one row)."""
    maps = match_templates(job.image, job.templates, job.method.name, masks=job.masks, precision=job.precision)
    return [m.reshape(1, -1) if m.ndim == 1 else m for m in maps]


def matches_in(job, maps):
    """The job's matches in its score maps: local peaks, the threshold, suppression, scores by definition."""
    if len(maps) == 1 and job.max_matches == 1:
        best = best_window(job, maps[0])
        if best is not None:
            return matches_at(job, *best, np.zeros(len(best[0]), np.intp))
    slack = [0.0 if job.floor is None else map_slack(m, job.precision) for m in maps]
    floor = None if job.floor is None else job.floor - max(slack)
    ys, xs, tids, goodness = ranked_peaks([job.method.goodness(m) for m in maps], floor)
    passed = confirm_threshold(job, ys, xs, tids, goodness, np.asarray(slack)[tids])
    ys, xs, tids = ys[passed], xs[passed], tids[passed]

    ih, iw = job.image_hw
    map_shapes = list(dict.fromkeys(m.shape for m in maps))  # one per window size
    kind_of = np.array([map_shapes.index(m.shape) for m in maps])
    window_sizes = [(ih - r + 1, iw - c + 1) for r, c in map_shapes]
    kept = suppress(ys, xs, kind_of[tids], window_sizes, map_shapes, job.max_overlap, job.max_matches)
    return matches_at(job, ys[kept], xs[kept], tids[kept])


def best_window(job, scores):
    """The one match of a single-template job with ``max_matches=1``, read off its map: ``(ys, xs)`` or None.

    The best peak of a map is its best window: the arg-max of the goodness
    (arg-min of an ``ssd`` map), the first in row-major order among ties,
    which is the first pixel of its plateau, as :func:`ranked_peaks` ranks
    it. With a threshold, a best window past it by more than the map's slack
    (:func:`~matcher.search.report.map_slack`) is the match and one short of
    it by more than the slack means no match (``ys`` and ``xs`` empty), as
    :func:`matches_in`'s general path decides them; a best window within the
    slack of the threshold returns None: the general path rescores the
    candidates there.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from matcher.methods import get_method
    >>> job = SimpleNamespace(method=get_method("ssd"), floor=None, precision="fast")
    >>> [a.tolist() for a in best_window(job, np.array([[3.0, 1.0, 1.0], [1.0, 2.0, 5.0]]))]
    [[0], [1]]
    """
    flat = int(scores.argmin() if job.method.lower_is_better else scores.argmax())
    y, x = divmod(flat, scores.shape[1])
    if job.floor is not None:
        best = float(job.method.goodness(scores[y, x]))
        slack = map_slack(scores, job.precision)
        if best < job.floor - slack:
            return np.zeros(0, np.intp), np.zeros(0, np.intp)
        if best < job.floor + slack:
            return None
    return np.array([y], np.intp), np.array([x], np.intp)


def ranked_peaks(goodness_maps, floor=None):
    """Local peaks of every map, ranked together best first (ties: map order, then row-major).

    Returns
    -------
    ys, xs, tids : ndarray of intp
        Positions and the index of each peak's map.
    values : ndarray of float64
        The peaks' goodness.

    Examples
    --------
    >>> a, b = np.array([[0.0, 2.0, 0.0]]), np.array([[3.0, 0.0]])
    >>> [v.tolist() for v in ranked_peaks([a, b])]
    [[0, 0], [0, 1], [1, 0], [3.0, 2.0]]
    """
    peaks = [local_peaks(g, floor) for g in goodness_maps]
    values = np.concatenate([p[2] for p in peaks])
    order = np.argsort(-values, kind="stable")
    ys = np.concatenate([p[0] for p in peaks])[order]
    xs = np.concatenate([p[1] for p in peaks])[order]
    tids = np.concatenate([np.full(len(p[0]), t, np.intp) for t, p in enumerate(peaks)])[order]
    return ys, xs, tids, values[order]
