"""From candidate positions to reported matches, scored by definition.

Score maps may carry the engine's rounding error (up to its contract: 1e-4 of
the map's range for ``precision="fast"``, 1e-9 for ``"exact"``). What a search
reports is always computed by definition (float64, :func:`matcher.scores.reference.scores_at`),
and the threshold is applied to exactly those reported values:

- :func:`confirm_threshold`: candidates taken from a map with a slack of the
  map's error below the threshold; those within the slack of it are scored by
  definition and kept only if that score passes.
- :func:`matches_at`: :class:`~matcher.search.match.Match` objects for the
  chosen positions, each scored by definition (with its 3 x 3 neighbourhood for
  sub-pixel refinement), ranked by those scores.

So an exact copy of the template scores exactly 1 (ncc) or 0 (ssd), a match
is reported if and only if its reported score passes the threshold, and every
strategy (exhaustive, tiled, pyramid) reports the same values.
"""

import numpy as np

from ..scores.inputs import CONTRACT
from ..scores.reference import scores_at
from .match import Match
from .peaks import NEIGHBOURS_X, NEIGHBOURS_Y, refine_patches

__all__ = ["map_slack", "confirm_threshold", "matches_at"]



def map_slack(scores, precision):
    """How far a map's values may be from the scores by definition: twice the engine's contract.

    >>> map_slack(np.array([[0.0, 0.5], [1.0, -1.0]]), "fast")
    0.0004
    """
    scores = np.asarray(scores, np.float64)
    return 2.0 * CONTRACT[precision] * (float(scores.max()) - float(scores.min()))  # numpy: faster than minMaxLoc


def confirm_threshold(job, ys, xs, tids, goodness, slack):
    """Which candidates pass ``job``'s threshold by their score by definition.

    ``goodness`` are the candidates' map values turned so that higher is
    better, ``slack`` (scalar or one per candidate) the error bound of the
    maps they come from. Candidates clearly past the threshold are kept
    without rescoring.

    Returns
    -------
    ndarray of bool, shape (K,)
    """
    keep = np.ones(len(ys), bool)
    floor = job.floor
    if floor is None or len(ys) == 0:
        return keep
    near = goodness < floor + slack
    for t in np.unique(tids[near]).tolist():
        sel = np.flatnonzero(near & (tids == t))
        exact = scores_at(job.image, job.templates[t], job.method.name, ys[sel], xs[sel], mask=job.masks[t])
        keep[sel] = job.method.goodness(exact) >= floor
    return keep


def matches_at(job, ys, xs, tids):
    """:class:`Match` objects for the chosen peaks, scored by definition, best first (ties keep their order).

    ``tids[i]`` says which of the job's templates peak ``i`` belongs to.
    Positions are in the searched image's coordinates (``job.to_image``
    moves them to the full image).
    """
    method = job.method
    ih, iw = job.image_hw
    score = np.empty(ys.size)
    pos_y, pos_x = ys.astype(np.float64), xs.astype(np.float64)
    used = np.unique(tids).tolist() if len(tids) > 1 else tids.tolist()
    for t in used:
        sel = np.flatnonzero(tids == t) if len(used) > 1 else slice(None)
        template, mask = job.templates[t], job.masks[t]
        if not job.subpixel:
            score[sel] = scores_at(job.image, template, method.name, ys[sel], xs[sel], mask=mask)
            continue
        h, w = job.sizes[t]
        H, W = ih - h + 1, iw - w + 1
        yy, xx = ys[sel, None] + NEIGHBOURS_Y, xs[sel, None] + NEIGHBOURS_X  # (K, 9)
        inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        patches = np.full(yy.shape, np.nan)
        patches[inside] = scores_at(job.image, template, method.name, yy[inside], xx[inside], mask=mask)
        score[sel] = patches[:, 4]
        pos_y[sel], pos_x[sel] = refine_patches(method.goodness(patches).reshape(-1, 3, 3), ys[sel], xs[sel], (H, W))
    order = np.argsort(-method.goodness(score), kind="stable").tolist() if len(score) > 1 else range(len(score))
    matches = []
    for i in order:
        t = int(tids[i])
        h, w = job.sizes[t]
        x, y = (float(pos_x[i]), float(pos_y[i])) if job.subpixel else (int(xs[i]), int(ys[i]))
        matches.append(Match(x, y, int(w), int(h), float(score[i]), job.labels[t], method.name))
    return matches
