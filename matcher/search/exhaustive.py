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

__all__ = ["search_exhaustive", "score_maps", "matches_in", "ranked_peaks"]


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
