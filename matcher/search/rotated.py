"""Rotation- and scale-tolerant search: find a template turned and resized.

:class:`PreparedTemplate` holds what depends only on the template (its
Gaussian pyramid and, per level, the bank of turned and scaled copies with
their masks); :func:`find_rotated` searches an image with it, coarse to fine:

1. **Coarse level.** Every pose of the coarsest bank (angle and scale steps
   ``2**L`` times the fine ones) is matched over the whole reduced image with
   OpenCV's masked ``matchTemplate`` (float32, for ranking only); the best
   local peaks of all poses, apart from one another, become candidates.
2. **Finer levels.** Each candidate is re-searched at the next finer level
   around twice its position, at its angle and scale and one step either side
   (the steps halve with every level); the best pose goes on.
3. **Full resolution, continuous.** Each survivor's centre, angle and scale
   are refined jointly (Nelder-Mead on the score by definition, the image
   resampled by cubic interpolation at the template's pixels under the pose),
   so neither the angle nor the position is biased by a grid.

The score of a pose is the method's score of the template against the image
seen through the pose, over the template's own pixels (and its mask, if any):
pixels outside the turned template do not count. At angle 0 and scale 1 on
an integer position it is exactly :func:`matcher.match_template`'s score.

Conventions: ``angle`` in degrees, counter-clockwise as the image is
displayed (the convention of ``cv2.getRotationMatrix2D``); ``scale`` the
factor from template to image; ``center`` the image point where the
template's centre ``((w - 1) / 2, (h - 1) / 2)`` lies; ``corners`` the image
points of the template's corner pixels (0, 0), (w-1, 0), (w-1, h-1), (0, h-1).
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import minimize

from .. import deadline
from ..errors import MatcherError
from ..methods import NORMALIZED_METHODS, get_method
from ..options import OPTIONS
from ..scores.inputs import as_array, channels_first
from ..scores.reference import window_scores
from .match import Match
from .pyramid import pyr_down, pyramid_levels

__all__ = ["PreparedTemplate", "find_rotated", "search_rotated", "turned_template", "auto_steps", "pose_matrix",
           "rotated_iou", "search_cost"]

_CV_METHODS = {"ncc": cv2.TM_CCOEFF_NORMED, "ccorr_normed": cv2.TM_CCORR_NORMED, "ssd_normed": cv2.TM_SQDIFF_NORMED}
_MIN_COARSE = 12  # smallest coarse template side (pixels)
_MAX_COARSE_ANGLE_STEP = 12.0  # degrees: coarser banks miss elongated templates
_COVERED = 0.999  # a turned template's pixel counts when the warp covers this much of it
_PEAKS_PER_POSE = 4
_RADIUS = 4  # finer-level search radius (pixels) around twice a coarser position (a coarse scale error shifts it)
_GRID_FACTOR = 2.0  # grid steps move the farthest pixel by a pixel of their level (twice the fine rule)
_REFINE_WITHIN = 0.1  # candidates scoring more than this below the best at full resolution are not refined
_KEEP_WITHIN = 0.2  # below full resolution, candidates scoring more than this below the level's best are dropped


def auto_steps(height, width):
    """Default ``(angle_step, scale_step)``: the template's farthest pixel moves by half a pixel.

    The farthest pixel is ``r`` pixels from the centre; turning by ``0.5 / r``
    radians or scaling by ``1 + 0.5 / r`` moves it by half a pixel (HALCON's
    ``'auto'`` steps follow the same idea).

    >>> [round(v, 4) for v in auto_steps(201, 201)]
    [0.2026, 0.0035]
    """
    r = max(math.hypot((width - 1) / 2, (height - 1) / 2), 1.0)
    return math.degrees(0.5 / r), 0.5 / r


def pose_matrix(center, angle, scale, template_shape):
    """The 2 x 3 affine map from template pixel coordinates to image coordinates for a pose.

    >>> np.round(pose_matrix((10.0, 20.0), 90.0, 2.0, (3, 5)), 6).tolist()
    [[0.0, 2.0, 8.0], [-2.0, 0.0, 24.0]]
    """
    h, w = template_shape[:2]
    a, b = scale * math.cos(math.radians(angle)), scale * math.sin(math.radians(angle))
    tcx, tcy = (w - 1) / 2.0, (h - 1) / 2.0
    cx, cy = center
    return np.array([[a, b, cx - a * tcx - b * tcy], [-b, a, cy + b * tcx - a * tcy]])


def _corners(matrix, template_shape):
    h, w = template_shape[:2]
    pts = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float)
    return pts @ matrix.T


def rotated_iou(a, b):
    """Intersection over union of two quadrilaterals given by their 4 corners (``(4, 2)`` arrays).

    >>> square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
    >>> round(rotated_iou(square, square + [1, 0]), 6)
    0.333333
    """
    ra, rb = cv2.minAreaRect(np.float32(a)), cv2.minAreaRect(np.float32(b))
    kind, region = cv2.rotatedRectangleIntersection(ra, rb)
    if kind == cv2.INTERSECT_NONE or region is None:
        return 0.0
    inter = cv2.contourArea(cv2.convexHull(region))
    union = ra[1][0] * ra[1][1] + rb[1][0] * rb[1][1] - inter
    return float(inter / union) if union > 0 else 0.0


def _turn(template, mask, angle, scale):
    """The template turned and scaled about its centre onto its bounding canvas: (pixels, binary mask)."""
    h, w = template.shape[:2]
    rad = math.radians(angle)
    bw = scale * (abs(w * math.cos(rad)) + abs(h * math.sin(rad)))
    bh = scale * (abs(w * math.sin(rad)) + abs(h * math.cos(rad)))
    # odd sides: the centre falls on a pixel, so every pose's positions share one grid of centres
    W, H = int(math.ceil(bw)) | 1, int(math.ceil(bh)) | 1
    m = pose_matrix(((W - 1) / 2.0, (H - 1) / 2.0), angle, scale, (h, w))
    pixels = cv2.warpAffine(template, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.warpAffine(mask, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return pixels, (cover >= _COVERED).astype(np.uint8)


@dataclass(frozen=True)
class _Pose:
    angle: float
    scale: float
    pixels: np.ndarray
    mask: np.ndarray


class PreparedTemplate:
    """A template prepared for rotated and scaled search: create once, search many images.

    Parameters
    ----------
    template : array_like, shape (h, w) or (h, w, C)
    method : {"ncc", "ccorr_normed", "ssd_normed"}
        A normalised method (the others grow with the turned template's area).
    mask : array_like, shape (h, w), optional, keyword-only
        Non-zero (or weight > 0.5) = the pixel belongs to the template.
    angles : (float, float), keyword-only
        Range of angles in degrees, counter-clockwise; ``(-180, 180)`` is the full circle.
    scales : (float, float), keyword-only
        Range of scale factors, ``0 < lo <= hi``.
    angle_step, scale_step : float, optional, keyword-only
        Fine steps; default :func:`auto_steps`.

    Examples
    --------
    >>> prepared = PreparedTemplate(np.eye(40), angles=(-10, 10))
    >>> prepared.levels, len(prepared.bank(prepared.levels)) > 0
    (1, True)
    """

    def __init__(self, template, method="ncc", *, mask=None, angles=(-180.0, 180.0), scales=(1.0, 1.0),
                 angle_step=None, scale_step=None):
        self.method = get_method(method)
        if not self.method.normalised:
            raise MatcherError(f"a rotated or scaled search needs a normalised method {NORMALIZED_METHODS}, "
                               f"got {self.method.name!r}", param="method")
        tpl = as_array("template", template)
        if tpl.ndim not in (2, 3):
            raise MatcherError(f"template must be 2-D (h, w) or 3-D (h, w, C), got shape {tpl.shape}",
                               param="template")
        self.template = tpl.astype(np.float32)
        self.shape = tpl.shape[:2]
        m = np.ones(self.shape, np.float32) if mask is None else as_array("mask", mask)
        if m.shape[:2] != self.shape:
            raise MatcherError(f"mask shape {m.shape} does not match the template {self.shape}", param="mask")
        if m.ndim == 3:
            m = m.max(axis=2)
        self.mask = (m > 0.5 if m.dtype.kind == "f" else m != 0).astype(np.float32)
        if not self.mask.any():
            raise MatcherError("mask selects no pixel", param="mask")
        self.angles = OPTIONS["angles"].check(angles)
        self.scales = OPTIONS["scales"].check(scales)
        auto_angle, auto_scale = auto_steps(*self.shape)
        self.angle_step = OPTIONS["angle_step"].check(angle_step) or auto_angle
        self.scale_step = OPTIONS["scale_step"].check(scale_step) or auto_scale
        smallest = (self.shape[0] * self.scales[0], self.shape[1] * self.scales[0])
        self.levels = pyramid_levels(int(smallest[0]), int(smallest[1]), min_size=_MIN_COARSE)
        self._templates, self._masks = [self.template], [self.mask]
        for _ in range(self.levels):
            self._templates.append(pyr_down(self._templates[-1]))
            self._masks.append(np.clip(pyr_down(self._masks[-1]), 0.0, 1.0))
        self._banks = {}
        self.pixel_grid = tuple(np.mgrid[0 : self.shape[0], 0 : self.shape[1]].astype(np.float64))
        self.channels = channels_first("template", self.template)
        self.weights = np.broadcast_to(self.mask[None], self.channels.shape).astype(np.float64)

    @property
    def full_circle(self):
        return self.angles[1] - self.angles[0] >= 360.0 - 1e-9

    def steps(self, level):
        """``(angle step, scale step)`` of the pose grid at ``level``: ``_GRID_FACTOR * 2**level`` times the fine steps."""
        a_step = self.angle_step * _GRID_FACTOR * 2**level
        if level == self.levels:
            a_step = min(a_step, _MAX_COARSE_ANGLE_STEP)
        return a_step, self.scale_step * _GRID_FACTOR * 2**level

    def grid(self, level):
        """The poses ``[(angle, scale)]`` searched at ``level`` (:meth:`steps` apart)."""
        a_step, s_step = self.steps(level)
        return [(a, s) for a in _points(*self.angles, a_step, wrap=self.full_circle)
                for s in _points(*self.scales, s_step, wrap=False)]

    def bank(self, level):
        """The turned, scaled copies of the level's template for :meth:`grid`'s poses."""
        if level not in self._banks:
            t, m = self._templates[level], self._masks[level]
            self._banks[level] = [_Pose(a, s, *_turn(t, m, a, s)) for a, s in self.grid(level)]
        return self._banks[level]

    def turned(self, level, angle, scale):
        """One pose of the level's template, turned and scaled."""
        return _Pose(angle, scale, *_turn(self._templates[level], self._masks[level], angle, scale))


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
    images = [img.astype(np.float32)]
    for _ in range(prepared.levels):
        images.append(pyr_down(images[-1]))
    k = 32 if max_matches is None else max(16, 4 * max_matches)
    cands = _coarse(prepared, images[-1], k)
    for level in range(prepared.levels - 1, -1, -1):
        cands = _finer(prepared, images[level], level, cands)
        if level and cands and max_matches is not None:  # the others cannot catch up with the best
            best = max(c[0] for c in cands)
            cands = [c for c in cands if c[0] >= best - _KEEP_WITHIN]
    if cands:  # only candidates that may still be among the best are refined (the refinement costs the most)
        cands.sort(key=lambda c: -c[0])
        keep = len(cands) if max_matches is None else max(2, 2 * max_matches)
        cands = [c for c in cands[:keep] if c[0] >= cands[0][0] - _REFINE_WITHIN] if max_matches else cands
    refined = _unique([_refine(prepared, img, c) for c in cands], prepared)
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


def _coarse(prepared, image, k):
    """Every pose of the coarsest bank over the whole reduced image: the best ``k`` apart, as (goodness, y, x, pose)."""
    method = prepared.method
    found = []
    for pose in prepared.bank(prepared.levels):
        th, tw = pose.pixels.shape[:2]
        if th > image.shape[0] or tw > image.shape[1]:
            continue
        g = _scores(image, pose, method)
        peak = g >= cv2.dilate(g, np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero(peak)
        if ys.size > _PEAKS_PER_POSE:
            top = np.argpartition(-g[ys, xs], _PEAKS_PER_POSE)[:_PEAKS_PER_POSE]
            ys, xs = ys[top], xs[top]
        found += [(float(g[y, x]), int(y) + (th - 1) / 2.0, int(x) + (tw - 1) / 2.0, pose.angle, pose.scale)
                  for y, x in zip(ys, xs)]
    if not found:
        raise MatcherError("the template (at every scale asked) is larger than the image", param="template")
    found.sort(key=lambda f: -f[0])
    radius = 0.5 * min(prepared.shape) * prepared.scales[0] / 2**prepared.levels
    a_step, s_step = prepared.steps(prepared.levels)

    def same(f, q):  # one object seen at neighbouring poses; a nearby pose two steps away may be another
        return (math.hypot(f[1] - q[1], f[2] - q[2]) < radius and abs(f[4] - q[4]) <= 1.5 * s_step
                and abs((f[3] - q[3] + 180.0) % 360.0 - 180.0) <= 1.5 * a_step)

    kept = []
    for f in found:
        if not any(same(f, q) for q in kept):
            kept.append(f)
            if len(kept) == k:
                break
    return kept


def _finer(prepared, image, level, cands):
    """Each candidate at ``level``: around twice its centre, its pose and one step either side; the best goes on."""
    a_step, s_step = prepared.steps(level)
    out = []
    for _, cy, cx, angle, scale in cands:
        best = None
        for da in (-a_step, 0.0, a_step):
            for ds in ((-s_step, 0.0, s_step) if prepared.scales[1] > prepared.scales[0] else (0.0,)):
                s = min(max(scale + ds, prepared.scales[0]), prepared.scales[1])
                pose = prepared.turned(level, angle + da, s)
                got = _near(image, pose, prepared.method, 2 * cy, 2 * cx)  # pyrDown keeps even pixels
                if got is not None and (best is None or got[0] > best[0]):
                    best = got + (angle + da, s)
        if best is not None:
            out.append(best)
    return out


def _near(image, pose, method, cy, cx):
    """Best goodness for ``pose`` with its centre within ``_RADIUS`` of (cy, cx): (goodness, cy, cx) or None."""
    th, tw = pose.pixels.shape[:2]
    y0 = int(round(cy - (th - 1) / 2.0)) - _RADIUS
    x0 = int(round(cx - (tw - 1) / 2.0)) - _RADIUS
    y0, x0 = max(y0, 0), max(x0, 0)
    y1 = min(y0 + th + 2 * _RADIUS, image.shape[0])
    x1 = min(x0 + tw + 2 * _RADIUS, image.shape[1])
    crop = image[y0:y1, x0:x1]
    if crop.shape[0] < th or crop.shape[1] < tw:
        return None
    g = _scores(crop, pose, method)
    iy, ix = np.unravel_index(int(np.argmax(g)), g.shape)
    return float(g[iy, ix]), y0 + iy + (th - 1) / 2.0, x0 + ix + (tw - 1) / 2.0


def _scores(image, pose, method):
    """Goodness (higher is better) of ``pose`` at every position of ``image``, by OpenCV in float32: for ranking."""
    deadline.check()  # between poses and candidates (matcher.deadline)
    g = cv2.matchTemplate(image, pose.pixels, _CV_METHODS[method.name], mask=pose.mask)
    g = np.nan_to_num(g, nan=1.0 if method.lower_is_better else 0.0, posinf=0.0, neginf=0.0)
    return -g if method.lower_is_better else g


def _score(prepared, image, params):
    """The method's score by definition of the template against the image seen through the pose ``params``."""
    cx, cy, angle, scale = params
    m = pose_matrix((cx, cy), angle, scale, prepared.shape)
    yy, xx = prepared.pixel_grid
    map_x = (m[0, 0] * xx + m[0, 1] * yy + m[0, 2]).astype(np.float32)
    map_y = (m[1, 0] * xx + m[1, 1] * yy + m[1, 2]).astype(np.float32)
    if (map_x.min() < 0 or map_y.min() < 0 or map_x.max() > image.shape[1] - 1
            or map_y.max() > image.shape[0] - 1):
        return None  # the turned template reaches outside the image
    seen = cv2.remap(image.astype(np.float32) if image.dtype != np.float32 else image, map_x, map_y,
                     cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    windows = channels_first("image", seen)[None]
    return float(window_scores(windows, prepared.channels, prepared.weights, prepared.method.name)[0])


def _refine(prepared, image, cand):
    """Centre, angle and scale refined jointly on the score by definition: (score, cx, cy, angle, corners, scale).

    Nelder-Mead over the free parameters (an angle or scale range of one value
    is fixed), in units of the fine steps (half a pixel, the angle and scale
    steps) so that one tolerance serves all; then the pose with its corner on
    the nearest whole pixel is tried too and kept if it scores at least as
    well (an exact copy lands exactly on its pixels).
    """
    deadline.check()  # between refined candidates
    _, cy, cx, angle, scale = cand
    method = prepared.method
    free = [True, True, prepared.angles[1] > prepared.angles[0], prepared.scales[1] > prepared.scales[0]]
    start = np.array([cx, cy, angle if free[2] else prepared.angles[0], scale if free[3] else prepared.scales[0]])
    unit = np.array([0.5, 0.5, prepared.angle_step, prepared.scale_step])[free]

    def pose(u):
        v = start.copy()
        v[free] += u * unit
        return tuple(float(x) for x in v)

    def cost(u):
        s = _score(prepared, image, pose(u))
        return 1e3 if s is None else -method.goodness(s)

    n = int(sum(free))
    res = minimize(cost, np.zeros(n), method="Nelder-Mead",
                   options={"initial_simplex": np.vstack([np.zeros(n), np.eye(n)]), "xatol": 0.005,
                            "fatol": 1e-10, "maxiter": 300})
    best, best_cost = (pose(res.x), res.fun) if res.fun <= cost(np.zeros(n)) else (pose(np.zeros(n)), cost(np.zeros(n)))
    h, w = prepared.shape
    cx, cy = best[0] - (w - 1) / 2.0, best[1] - (h - 1) / 2.0  # the corner pixel's position
    snapped = (round(cx) + (w - 1) / 2.0, round(cy) + (h - 1) / 2.0, best[2], best[3])
    snapped_score = _score(prepared, image, snapped)
    if snapped_score is not None and -method.goodness(snapped_score) <= best_cost:
        best = snapped
    score = _score(prepared, image, best)
    if score is None:
        score = 1.0 if method.lower_is_better else -1.0
    lo = prepared.angles[0]
    angle = (best[2] - lo) % 360.0 + lo if prepared.full_circle else best[2]
    corners = _corners(pose_matrix(best[:2], angle, best[3], prepared.shape), prepared.shape)
    return score, best[0], best[1], angle, corners, best[3]


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


def _points(lo, hi, step, *, wrap):
    """Grid points from lo to hi with at most ``step`` between them (the full circle: without repeating lo + 360)."""
    if hi <= lo:
        return [lo]
    n = max(1, int(math.ceil((hi - lo) / step - 1e-9)))
    if wrap:
        return [lo + (hi - lo) * i / n for i in range(n)]
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


_REFINED = 2  # candidates usually left to refine (the others score more than _REFINE_WITHIN below the best)
_REFINE_EVALS = 600  # score evaluations of one refinement, at most (Nelder-Mead: maxiter 300, ~2 per iteration)
_REMAP_WORK = 16  # products per template pixel of one evaluation (cubic resampling: 4 x 4 taps)


def search_cost(image_shape, template_shape, *, angles=None, scales=None, angle_step=None, scale_step=None,
                max_matches=1):
    """Estimated work of the turned and scaled search, in pixel products (searched pixels x template pixels).

    The unit of the plain search's work (``width * height`` of the searched
    area times the template's pixels), so that one budget may cover both:
    every pose of the coarsest level (as :meth:`PreparedTemplate.grid`) over
    every position of the reduced image, plus the candidates followed down
    the finer levels (3 angles, and 3 scales when a scale range is given,
    each within :data:`_RADIUS` pixels of its position) and the joint
    refinement of the two best, at full resolution. Times channels. Computed
    from the shapes and options alone, without building anything: cheap for
    any step, however small (``angle_step=1e-6`` gives a huge number, not a
    huge list).

    Parameters
    ----------
    image_shape : tuple
        ``(H, W)`` or ``(H, W, C)`` of the searched area (the region, if any).
    template_shape : tuple
        ``(h, w)`` or ``(h, w, C)``.
    angles, scales, angle_step, scale_step, max_matches
        As :func:`find_rotated` (checked as it checks them); an absent range is
        not searched (angle 0, scale 1).

    Returns
    -------
    int

    Examples
    --------
    >>> search_cost((480, 640), (60, 60), angles=(-180, 180)) > search_cost((480, 640), (60, 60), angles=(-10, 10))
    True
    >>> search_cost((480, 640, 3), (60, 60, 3), angles=(0, 90)) == 3 * search_cost((480, 640), (60, 60), angles=(0, 90))
    True
    """
    angles = OPTIONS["angles"].check((0.0, 0.0) if angles is None else angles)
    scales = OPTIONS["scales"].check((1.0, 1.0) if scales is None else scales)
    max_matches = OPTIONS["max_matches"].check(max_matches)
    h, w = (int(v) for v in template_shape[:2])
    channels = int(image_shape[2]) if len(image_shape) > 2 else 1
    auto_angle, auto_scale = auto_steps(h, w)
    angle_step = OPTIONS["angle_step"].check(angle_step) or auto_angle
    scale_step = OPTIONS["scale_step"].check(scale_step) or auto_scale
    levels = pyramid_levels(int(h * scales[0]), int(w * scales[0]), min_size=_MIN_COARSE)
    full_circle = angles[1] - angles[0] >= 360.0 - 1e-9

    def count(lo, hi, step, wrap):  # len(_points(lo, hi, step, wrap=wrap)), without the list
        if hi <= lo:
            return 1
        n = max(1, math.ceil((hi - lo) / step - 1e-9))
        return n if wrap else n + 1

    coarse_angle = min(angle_step * _GRID_FACTOR * 2**levels, _MAX_COARSE_ANGLE_STEP)
    poses = (count(*angles, coarse_angle, full_circle)
             * count(*scales, scale_step * _GRID_FACTOR * 2**levels, False))
    big = scales[1] ** 2  # the largest turned template's pixels, per template pixel

    def template_pixels(level):
        return h * w * big / 4**level

    H, W = (int(v) for v in image_shape[:2])
    work = poses * math.ceil(H / 2**levels) * math.ceil(W / 2**levels) * template_pixels(levels)
    k = 32 if max_matches is None else max(16, 4 * max_matches)
    per_candidate = 3 * (3 if scales[1] > scales[0] else 1) * (2 * _RADIUS + 1) ** 2
    work += sum(k * per_candidate * template_pixels(level) for level in range(levels))
    work += _REFINED * _REFINE_EVALS * _REMAP_WORK * h * w
    return int(math.ceil(work * channels))
