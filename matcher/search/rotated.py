"""Rotation- and scale-tolerant search: find a template turned and resized.

:class:`~matcher.search.prepared.PreparedTemplate` holds what depends only on
the template (its Gaussian pyramid, masks, the pose grid of every level);
:func:`find_rotated` searches an image with it, coarse to fine, always by
warping the *image* into the template's frame under a pose (so the template's
own pixels, and only they, are compared: the score's definition) and scoring
with OpenCV's ``matchTemplate`` (float32, for ranking only):

1. **Coarse level.** For every pose of the coarsest grid (angle and scale
   steps ``2 * 2**L`` times the fine ones, HALCON's ``'auto'`` rule at that
   level [1]_ [3]_) the whole reduced image is turned into the template's
   frame and matched at every position; the best local peaks of all poses, apart from
   one another, become candidates: :func:`~matcher.search.turn_cost.followed`
   many, in proportion to the coarse poses (a narrow range tries few poses,
   so few false candidates can outscore the part: 4 for one match, up to 16).
2. **Finer levels, down to level 1.** Each candidate is re-searched around its
   position, at its angle and scale and one step either side (the steps halve
   with every level), by warping a small window of the level's image; while
   the best of these is not the middle pose the neighbourhood moves there (a
   ridge of poses scoring alike, a scale change compensated by a shift, is
   followed). The best pose goes on with a sub-pixel position (a parabola
   through the peak). After one neighbourhood, candidates far below the
   level's best stop; those that converge onto a better one are dropped.
   Nearly flat windows (which OpenCV's unmasked ``ncc`` scores up to 1 by
   rounding) score 0, as by the definition. At level 1 the best pose's angle
   and scale move to the vertex of the parabola through its neighbours' scores.
3. **Full resolution, continuous.** The best few candidates' centre, angle and
   scale are refined jointly (:func:`~matcher.search.pose_refine.refine_pose`:
   forward-compositional Gauss-Newton on the normalised residual, the image
   resampled by cubic interpolation at the template's pixels, one resampling
   per iteration [2]_), so neither the angle nor the
   position is biased by a grid; the reported score is the method's score by
   definition (:func:`matcher.scores.reference.window_scores`) at the pose.

The score of a pose is the method's score of the template against the image
seen through the pose, over the template's own pixels (and its mask, if any):
pixels outside the turned template do not count. At angle 0 and scale 1 on
an integer position it is exactly :func:`matcher.match_template`'s score.

Conventions: ``angle`` in degrees, counter-clockwise as the image is
displayed (the convention of ``cv2.getRotationMatrix2D``); ``scale`` the
factor from template to image; ``center`` the image point where the
template's centre ``((w - 1) / 2, (h - 1) / 2)`` lies; ``corners`` the image
points of the template's corner pixels (0, 0), (w-1, 0), (w-1, h-1), (0, h-1).

References
----------
.. [1] MVTec, HALCON operator reference, ``create_ncc_model`` (``AngleStep``
   ``'auto'``, ``NumLevels``) and ``find_ncc_model``.
.. [2] S. Baker, I. Matthews, "Lucas-Kanade 20 years on: a unifying
   framework", IJCV 56(3), 2004 (joint refinement of a warp's parameters,
   the forward compositional algorithm).
.. [3] C. Steger, "Similarity measures for occlusion, clutter, and
   illumination invariant object recognition", DAGM 2001, LNCS 2191 (the
   model's pyramid of turned templates, candidates followed level by level);
   the open source Fastest_Image_Pattern_Matching (BSD-2) does the same for NCC.
"""

import math

import cv2
import numpy as np

from .. import deadline
from ..errors import MatcherError
from ..options import OPTIONS
from ..scores.inputs import as_array
from .match import Match
from .pose_refine import refine_pose
from .poses import auto_steps, level_matrix, pose_matrix, rotated_iou
from .prepared import PreparedTemplate
from .pyramid import pyr_down
from .turn_cost import LAST_GRID, PEAKS_PER_POSE, RADIUS, followed, search_cost

__all__ = ["PreparedTemplate", "find_rotated", "search_rotated", "turned_template", "auto_steps", "pose_matrix",
           "rotated_iou", "search_cost", "coarse_candidates", "followed"]

_CV_METHODS = {"ncc": cv2.TM_CCOEFF_NORMED, "ccorr_normed": cv2.TM_CCORR_NORMED, "ssd_normed": cv2.TM_SQDIFF_NORMED}
_REFINE_WITHIN = 0.1  # candidates scoring more than this below the best at level 1 are not refined
_KEEP_WITHIN = 0.2  # below full resolution, candidates scoring more than this below the level's best are dropped
_FLAT = 1e-4  # a window whose variance is below this fraction of the template's is flat
_CLIMBS = 6  # largest number of moves of a finer level's pose neighbourhood


def find_rotated(image, template, method="ncc", *, angles=(-180.0, 180.0), scales=(1.0, 1.0), angle_step=None,
                 scale_step=None, threshold=None, max_matches=1, max_overlap=0.3, mask=None):
    """Find ``template`` turned by an angle in ``angles`` and scaled by a factor in ``scales``.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
    template : array_like or PreparedTemplate
        A :class:`PreparedTemplate` is reused as it is (``method``, ``mask``,
        ``angles``, ``scales`` and the steps are then its own).
    threshold : float, optional
        Keep matches scoring at least this (at most, for ``ssd_normed``).
    max_matches : int or None
        At most this many, best first.
    max_overlap : float in [0, 1]
        Largest IoU between two matches' turned boxes.
    Other parameters
        As :class:`PreparedTemplate`.

    Returns
    -------
    list of Match
        Best first, each with ``angle``, ``scale``, ``corners`` and ``center``
        (sub-pixel); ``x, y, width, height`` is the turned box's axis-aligned
        bounding box.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> image = cv2.GaussianBlur(rng.random((160, 160)), (0, 0), 2)
    >>> m = pose_matrix((80.0, 75.0), 30.0, 1.0, (41, 41))
    >>> template = cv2.warpAffine(image, m, (41, 41), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC)
    >>> (found,) = find_rotated(image, template, angles=(0, 90))
    >>> round(found.angle), [round(v) for v in found.center], found.score > 0.99
    (30, [80, 75], True)
    """
    prepared = template if isinstance(template, PreparedTemplate) else PreparedTemplate(
        template, method, mask=mask, angles=angles, scales=scales, angle_step=angle_step, scale_step=scale_step)
    img = as_array("image", image)
    if img.ndim not in (2, 3) or (img.ndim == 3) != (prepared.template.ndim == 3):
        raise MatcherError(f"image and template must both be gray (H, W) or both colour (H, W, C), got "
                           f"{img.shape} and {prepared.template.shape}", param="image")
    method = prepared.method
    threshold = OPTIONS["threshold"].check(threshold, method=method.name)  # the spec's checks, as find's
    max_matches = OPTIONS["max_matches"].check(max_matches)
    max_overlap = OPTIONS["max_overlap"].check(max_overlap)
    images = [img if img.dtype == np.float32 else img.astype(np.float32)]  # read only
    for _ in range(prepared.levels):
        images.append(pyr_down(images[-1]))
    k = followed(len(prepared.grid(prepared.levels)), max_matches)
    cands = coarse_candidates(prepared, images[-1], k)
    for level in range(prepared.levels - 1, LAST_GRID - 1, -1):
        if level == 0 and cands and max_matches is not None:  # only those that may still be among the best
            keep = max(2, 2 * max_matches)
            cands = [c for c in cands[:keep] if c[0] >= cands[0][0] - _REFINE_WITHIN]
        within = None if max_matches is None else (_KEEP_WITHIN if level else _REFINE_WITHIN)
        cands = _distinct(_finer(prepared, images[level], level, cands, within), prepared, level)
        if level and cands and max_matches is not None:  # the others cannot catch up with the best
            best = cands[0][0]
            cands = [c for c in cands if c[0] >= best - _KEEP_WITHIN]
    if cands and max_matches is not None:  # only those that may still be among the best are refined
        keep = max(2, 2 * max_matches)
        cands = [c for c in cands[:keep] if c[0] >= cands[0][0] - _REFINE_WITHIN]
    refined = []
    for c in cands:
        deadline.check()  # between refined candidates
        refined.append(refine_pose(prepared, images[0], c[1:]))
    refined = _unique(refined, prepared)
    floor = None if threshold is None else method.goodness(float(threshold))
    if floor is not None:
        refined = [r for r in refined if method.goodness(r[0]) >= floor]
    refined.sort(key=lambda r: -method.goodness(r[0]))
    kept = []
    for r in refined:
        if all(rotated_iou(r[4], q[4]) <= max_overlap for q in kept):
            kept.append(r)
            if max_matches is not None and len(kept) == max_matches:
                break
    return [_match(r, prepared) for r in kept]


def search_rotated(job):
    """The turned and scaled search of ``job`` (a :class:`~matcher.search.job.SearchJob` whose
    ``turn`` is ``(angles, scales, angle_step, scale_step)``): matches in the searched image's
    coordinates. An absent range is not searched: angle 0, scale 1."""
    prepared = turned_template(job.templates[0], job.method.name, job.turn, mask=job.masks[0])
    return find_rotated(job.image, prepared, threshold=job.threshold, max_matches=job.max_matches,
                        max_overlap=job.max_overlap)


def turned_template(template, method, turn, *, mask=None):
    """The :class:`PreparedTemplate` :func:`matcher.find` searches with for ``turn = (angles, scales,
    angle_step, scale_step)`` (checked options; an absent range is not searched: angle 0, scale 1).

    A :class:`PreparedTemplate` is returned as it is. Pass the result to
    :func:`matcher.find` as the template to search many images with one
    preparation (``matcher batch`` does).
    """
    if isinstance(template, PreparedTemplate):
        return template
    angles, scales, angle_step, scale_step = turn
    return PreparedTemplate(template, method, mask=mask, angles=angles or (0.0, 0.0), scales=scales or (1.0, 1.0),
                            angle_step=angle_step, scale_step=scale_step)


def coarse_candidates(prepared, image, k):
    """Every pose of the coarsest grid over the whole reduced ``image``: the best ``k`` apart.

    For each pose the image is turned into the template's frame (one canvas
    for all poses, :meth:`PreparedTemplate.coarse_plan`), the level's
    template matched at every position whose window the turned image covers,
    and the best ``PEAKS_PER_POSE`` local maxima kept.

    Returns
    -------
    list of (goodness, cx, cy, angle, scale)
        Best first; ``(cx, cy)`` the template centre's position in full-resolution image coordinates.
    """
    level = prepared.levels
    tpl, cv_mask = prepared.templates[level], prepared.cv_masks[level]
    plan = prepared.coarse_plan(image.shape)
    if not len(plan.poses):
        raise MatcherError("the template (at every scale asked) is larger than the image", param="template")
    flags = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
    kernel = np.ones((3, 3), np.uint8)
    guard = cv_mask is None and prepared.method.name == "ncc"
    values = np.full((len(plan.poses), PEAKS_PER_POSE), -np.inf)
    ys = np.zeros(values.shape, int)
    xs = np.zeros(values.shape, int)
    for i, (m, canvas, valid) in enumerate(zip(plan.matrices, plan.canvases, plan.valid)):
        deadline.check()  # between poses (matcher.deadline)
        turned = cv2.warpAffine(image, m, canvas, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        g = _goodness_map(turned, tpl, cv_mask, prepared.method)
        g[~valid] = -np.inf
        g[g < cv2.dilate(g, kernel)] = -np.inf  # local maxima only
        flat = g.reshape(-1)
        n = min(PEAKS_PER_POSE, flat.size)
        top = np.argpartition(-flat, n - 1)[:n] if n < flat.size else np.arange(n)
        values[i, :n] = flat[top]
        ys[i, :n], xs[i, :n] = np.divmod(top, g.shape[1])

    pose, j = np.nonzero(np.isfinite(values))
    ys, xs = ys[pose, j], xs[pose, j]
    tcx, tcy = prepared.level_center(level)
    m = plan.matrices[pose]
    cx = (m[:, 0, 0] * (xs + tcx) + m[:, 0, 1] * (ys + tcy) + m[:, 0, 2]) * 2.0**level
    cy = (m[:, 1, 0] * (xs + tcx) + m[:, 1, 1] * (ys + tcy) + m[:, 1, 2]) * 2.0**level
    found = [(float(v), float(x), float(y), float(a), float(s), (int(p), int(y0), int(x0))) for v, x, y, a, s, p, y0, x0
             in zip(values[pose, j], cx, cy, plan.poses[pose, 0], plan.poses[pose, 1], pose, ys, xs)]
    found.sort(key=lambda f: -f[0])
    radius = 0.5 * min(prepared.shape) * prepared.scales[0]
    a_step, s_step = prepared.steps(level)

    def same(f, q):  # one object seen at neighbouring poses; a nearby pose two steps away may be another
        return (math.hypot(f[1] - q[1], f[2] - q[2]) < radius and abs(f[4] - q[4]) <= 1.5 * s_step
                and abs((f[3] - q[3] + 180.0) % 360.0 - 180.0) <= 1.5 * a_step)

    def flat(f):  # checked only for the candidates kept: the rare flat window costs one more warp
        i, y, x = f[5]
        turned = cv2.warpAffine(image, plan.matrices[i], plan.canvases[i], flags=flags, borderMode=cv2.BORDER_REPLICATE)
        return _flat(turned, y, x, tpl.shape, prepared.variances[level])

    kept = []
    for f in found:
        if not any(same(f, q) for q in kept) and not (guard and flat(f)):
            kept.append(f[:5])
            if len(kept) == k:
                break
    return kept


def _finer(prepared, image, level, cands, within=None):
    """Each candidate at ``level``: around its centre, its pose and one step either side; while the best is
    not the middle one, around that again (a ridge of poses scoring alike is followed, up to ``_CLIMBS``
    moves). Only candidates within ``within`` of the best after the first round go on climbing (all
    when None). The best pose of each goes on."""
    climbs = [_Climb(prepared, image, level, c) for c in cands]
    for c in climbs:
        c.round()
    if within is not None and climbs:
        top = max(c.best[0] for c in climbs)
        climbs = [c for c in climbs if c.best[0] >= top - within]
    for c in climbs:
        for _ in range(_CLIMBS - 1):
            if not c.round():
                break
    return [c.vertex() if level == LAST_GRID else c.best for c in climbs]


class _Climb:
    """A candidate's neighbourhood of poses at one level, moved towards its best."""

    def __init__(self, prepared, image, level, cand):
        self.prepared, self.image, self.level = prepared, image, level
        _, self.cx, self.cy, self.angle, self.scale = cand
        self.steps = prepared.steps(level)
        self.seen = {}
        self.centre = (0, 0)
        self.best = None

    def round(self):
        """Score the 3 x 3 (or 3) poses around the centre; False when the best is the centre (done)."""
        lo, hi = self.prepared.scales
        a_lo, a_hi = self.prepared.angles
        for da in (-1, 0, 1):
            for ds in ((-1, 0, 1) if hi > lo else (0,)):
                key = (self.centre[0] + da, self.centre[1] + ds)
                s = self.scale + key[1] * self.steps[1]
                a = self.angle + key[0] * self.steps[0]
                if key in self.seen or not lo - 1e-9 <= s <= hi + 1e-9 or not (
                        self.prepared.full_circle or a_lo - 1e-9 <= a <= a_hi + 1e-9):
                    continue
                at = self.best if self.best is not None else (None, self.cx, self.cy)
                self.seen[key] = _near(self.prepared, self.image, self.level, at[1], at[2], a, s) + (a, s)
        top = max(self.seen, key=lambda k: self.seen[k][0])
        self.best = self.seen[top]
        moved = top != self.centre
        self.centre = top
        return moved

    def vertex(self):
        """The best pose with its angle and scale moved to the vertex of the parabola through its score and
        its neighbours' one step either side (where both were scored): a closer start for the refinement."""
        g, cx, cy, angle, scale = self.best
        i, j = self.centre
        for axis, step in ((0, self.steps[0]), (1, self.steps[1])):
            lo, hi = ((i - 1, j), (i + 1, j)) if axis == 0 else ((i, j - 1), (i, j + 1))
            if lo in self.seen and hi in self.seen:
                shift = _vertex(self.seen[lo][0], g, self.seen[hi][0]) * step
                if axis == 0:
                    angle += shift
                else:
                    scale += shift
        return g, cx, cy, angle, scale


def _near(prepared, image, level, cx, cy, angle, scale, radius=RADIUS):
    """Best goodness of a pose with its centre within ``RADIUS`` level pixels of (cx, cy) (full-resolution
    coordinates), the image warped into the template's frame: (goodness, cx, cy), sub-pixel."""
    deadline.check()  # between candidates
    tpl = prepared.templates[level]
    th, tw = tpl.shape[:2]
    tcx, tcy = prepared.level_center(level)
    factor = 2.0**level
    r = radius
    m = level_matrix((cx / factor, cy / factor), angle, scale, (tcx, tcy), shift=(-r, -r))
    seen = cv2.warpAffine(image, m, (tw + 2 * r, th + 2 * r), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    g = _goodness_map(seen, tpl, prepared.cv_masks[level], prepared.method)
    iy, ix = np.unravel_index(int(np.argmax(g)), g.shape)
    if (prepared.cv_masks[level] is None and prepared.method.name == "ncc"
            and _flat(seen, iy, ix, tpl.shape, prepared.variances[level])):
        return 0.0, cx, cy
    dx = _vertex(g[iy, ix - 1], g[iy, ix], g[iy, ix + 1]) if 0 < ix < g.shape[1] - 1 else 0.0
    dy = _vertex(g[iy - 1, ix], g[iy, ix], g[iy + 1, ix]) if 0 < iy < g.shape[0] - 1 else 0.0
    x, y = m @ (ix + dx + tcx, iy + dy + tcy, 1.0)
    return float(g[iy, ix]), x * factor, y * factor


def _vertex(left, mid, right):
    """Offset in [-0.5, 0.5] of the parabola's vertex through three equally spaced values (0 if flat)."""
    curv = left - 2.0 * mid + right
    return min(max(float(0.5 * (left - right) / curv), -0.5), 0.5) if curv < 0 else 0.0


def _goodness_map(seen, template, cv_mask, method):
    """Goodness (higher is better) of ``template`` at every position of ``seen``, by OpenCV in float32: for ranking."""
    g = cv2.matchTemplate(seen, template, _CV_METHODS[method.name], mask=cv_mask)
    if cv_mask is not None:  # masked scores can be NaN or infinite over flat windows
        g = np.nan_to_num(g, nan=1.0 if method.lower_is_better else 0.0, posinf=0.0, neginf=0.0)
    return -g if method.lower_is_better else g


def _flat(seen, y, x, shape, t_var):
    """Whether the window of ``shape`` at (y, x) of ``seen`` is nearly flat: OpenCV's unmasked ``ncc`` scores
    such windows up to +-1 by rounding, where the definition scores them 0 (float64 here)."""
    mean, std = cv2.meanStdDev(seen[y : y + shape[0], x : x + shape[1]])  # accumulated in float64
    var = float((std * std).sum())
    return var <= max(_FLAT * t_var, 1e-5 * float((mean * mean).sum()))


def _distinct(cands, prepared, level):
    """Best first, without those that converged within a level pixel and a step of a better one."""
    a_step, s_step = prepared.steps(level)
    near = 2.0**level
    out = []
    for c in sorted(cands, key=lambda c: -c[0]):
        if not any(math.hypot(c[1] - q[1], c[2] - q[2]) <= near and abs(c[4] - q[4]) <= s_step
                   and abs((c[3] - q[3] + 180.0) % 360.0 - 180.0) <= a_step for q in out):
            out.append(c)
    return out


def _unique(refined, prepared):
    """Drop refinements that converged to the same pose (within a tenth of a pixel and of a step)."""
    out = []
    for r in sorted(refined, key=lambda r: -prepared.method.goodness(r[0])):
        if not any(abs(r[1] - q[1]) < 0.1 and abs(r[2] - q[2]) < 0.1
                   and abs((r[3] - q[3] + 180) % 360 - 180) < prepared.angle_step for q in out):
            out.append(r)
    return out


def _match(r, prepared):
    score, cx, cy, angle, corners, scale = r
    lo = corners.min(axis=0)
    hi = corners.max(axis=0)
    width, height = (int(math.ceil(e - 1e-3)) + 1 for e in hi - lo)  # a thousandth of a pixel is noise
    x, y = cx - (width - 1) / 2.0, cy - (height - 1) / 2.0
    return Match(float(x), float(y), width, height, float(score), None, prepared.method.name,
                 angle=float(angle), scale=float(scale), corners=tuple((float(a), float(b)) for a, b in corners))
