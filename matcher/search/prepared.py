"""The prepared template of the turned and scaled search: everything that depends on the template only.

:class:`PreparedTemplate` is made once per template (like HALCON's model
[1]_: create once, find in many images) and reused by
:func:`matcher.search.rotated.find_rotated` across images. It holds the
template's Gaussian pyramid with its masks, the pose grid of every level
(angle and scale steps that double with each level, HALCON's ``'auto'`` step
at each level), and the template's centred, normalised pixels for the fast
ranking score :meth:`PreparedTemplate.goodness` of the continuous refinement.

References
----------
.. [1] MVTec, HALCON operator reference, ``create_ncc_model`` and
   ``find_ncc_model``.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import MatcherError
from ..methods import NORMALIZED_METHODS, get_method
from ..options import OPTIONS
from ..scores.inputs import as_array, channels_first
from .poses import auto_steps, grid_points, level_matrix
from .pyramid import pyr_down, pyramid_levels

__all__ = ["PreparedTemplate", "Pose", "CoarsePlan"]

MIN_COARSE = 12  # smallest coarse template side (pixels)
MAX_COARSE_ANGLE_STEP = 12.0  # degrees: coarser grids miss elongated templates
GRID_FACTOR = 2.0  # grid steps move the farthest pixel by a pixel of their level (twice the fine rule)
_COVERED = 0.999  # a turned template's pixel counts when the warp covers this much of it


@dataclass(frozen=True)
class Pose:
    """One turned, scaled copy of a level's template on its bounding canvas (odd sides, centre on a pixel)."""

    angle: float
    scale: float
    pixels: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class CoarsePlan:
    """The coarsest level's search of one image size: see :meth:`PreparedTemplate.coarse_plan`."""

    poses: np.ndarray
    matrices: np.ndarray
    canvases: list
    valid: list


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
        Fine steps; default :func:`~matcher.search.poses.auto_steps`.

    Attributes
    ----------
    levels : int
        Pyramid levels above full resolution (the coarsest template's sides stay >= 12).
    templates, masks : list of ndarray
        The template (float32) and its mask (float32 in [0, 1]) at levels 0 .. ``levels``.
    variances : list of float
        The template's variance per level (summed over channels).
    cv_masks : list of ndarray or None
        Per level, the binary uint8 mask for ``cv2.matchTemplate`` (None without a user mask).
    used : ndarray of bool, shape (h, w)
        The template's pixels that count (the mask's).
    reference : ndarray, shape (n, C), float64
        The used pixels' values (centred per channel for ``ncc``), and ``reference_norm`` their norm.

    Examples
    --------
    >>> prepared = PreparedTemplate(np.eye(40), angles=(-10, 10))
    >>> prepared.levels, len(prepared.grid(prepared.levels)), prepared.level_center(1)
    (1, 6, (9.75, 9.75))
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
        self.levels = pyramid_levels(int(smallest[0]), int(smallest[1]), min_size=MIN_COARSE)
        self.templates, self.masks = [self.template], [self.mask]
        for _ in range(self.levels):
            self.templates.append(pyr_down(self.templates[-1]))
            self.masks.append(np.clip(pyr_down(self.masks[-1]), 0.0, 1.0))
        self.variances = [float(t.reshape(t.shape[0], t.shape[1], -1).var(axis=(0, 1)).sum()) for t in self.templates]
        masked = not self.mask.all()
        self.cv_masks = [(m >= 0.5).astype(np.uint8) if masked else None for m in self.masks]
        self._banks = {}
        self._plans = {}
        h, w = self.shape  # the pixels' (y, x) coordinates: read-only broadcast views (np.mgrid costs 0.4 ms)
        self.pixel_grid = (np.broadcast_to(np.arange(h, dtype=np.float64)[:, None], self.shape),
                           np.broadcast_to(np.arange(w, dtype=np.float64)[None, :], self.shape))
        self.channels = channels_first("template", self.template)
        self.weights = np.broadcast_to(self.mask[None], self.channels.shape).astype(np.float64)
        # the fast score: the template's used pixels (n, C), centred per channel for ncc, and their norm
        self.used = self.mask > 0
        t = self.template[self.used].reshape(int(self.used.sum()), -1).astype(np.float64)
        self.reference = t - t.mean(axis=0) if self.method.name == "ncc" else t
        self.reference_norm = float(np.sqrt((self.reference ** 2).sum()))

    @property
    def full_circle(self):
        return self.angles[1] - self.angles[0] >= 360.0 - 1e-9

    def steps(self, level):
        """``(angle step, scale step)`` of the pose grid at ``level``: ``GRID_FACTOR * 2**level`` times the
        fine steps (the angle step at most 12 degrees at the coarsest level)."""
        a_step = self.angle_step * GRID_FACTOR * 2**level
        if level == self.levels:
            a_step = min(a_step, MAX_COARSE_ANGLE_STEP)
        return a_step, self.scale_step * GRID_FACTOR * 2**level

    def grid(self, level):
        """The poses ``[(angle, scale)]`` searched at ``level`` (:meth:`steps` apart)."""
        a_step, s_step = self.steps(level)
        return [(a, s) for a in grid_points(*self.angles, a_step, wrap=self.full_circle)
                for s in grid_points(*self.scales, s_step, wrap=False)]

    def level_center(self, level):
        """Where the template's centre ``((w - 1) / 2, (h - 1) / 2)`` lies in the level's template."""
        h, w = self.shape
        return (w - 1) / 2.0 ** (level + 1), (h - 1) / 2.0 ** (level + 1)

    def coarse_plan(self, image_shape):
        """What the coarsest level's search of an image of ``image_shape`` (at that level) needs, per
        pose of :meth:`grid`: the maps that turn the image into the template's frame, and
        where the template's window lies wholly inside the turned image. Cached per shape (an image
        series of one size reuses it).

        Returns
        -------
        CoarsePlan
            ``poses`` (P, 2) angles and scales (those whose template fits somewhere); ``matrices``
            (P, 2, 3) canvas-to-image maps (for ``cv2.warpAffine`` with ``WARP_INVERSE_MAP``);
            ``canvases`` P (width, height), each the turned image's bounding box; ``valid`` P bool
            arrays over the window positions (top-left corners) on the canvas.
        """
        key = tuple(image_shape[:2])
        plan = self._plans.get(key)
        if plan is None:  # single dict operations only: safe when threads share the prepared template
            plan = self._coarse_plan(*key)
            if len(self._plans) >= 4:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _coarse_plan(self, height, width):
        th, tw = self.templates[self.levels].shape[:2]
        corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], float)
        ones = np.ones((height, width), np.uint8)
        kernel = np.ones((th, tw), np.uint8)
        poses, matrices, canvases, valid = [], [], [], []
        for angle, scale in self.grid(self.levels):
            linear = level_matrix((0.0, 0.0), angle, scale, (0.0, 0.0))[:, :2]
            q = corners @ np.linalg.inv(linear).T  # the image's corners in the template's frame
            u0, v0 = np.floor(q.min(axis=0))
            cw, ch = int(np.ceil(q[:, 0].max()) - u0) + 1, int(np.ceil(q[:, 1].max()) - v0) + 1
            if cw < tw or ch < th:
                continue
            m = level_matrix((0.0, 0.0), angle, scale, (0.0, 0.0), shift=(u0, v0))
            inside = cv2.warpAffine(ones, m, (cw, ch), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST)
            inside = cv2.erode(inside, kernel, anchor=(0, 0), borderValue=0)[: ch - th + 1, : cw - tw + 1] > 0
            if inside.any():
                poses.append((angle, scale))
                matrices.append(m)
                canvases.append((cw, ch))
                valid.append(inside)
        return CoarsePlan(np.array(poses, float).reshape(-1, 2), np.array(matrices).reshape(-1, 2, 3), canvases, valid)

    def bank(self, level):
        """The turned, scaled copies of the level's template for :meth:`grid`'s poses (a list of :class:`Pose`)."""
        if level not in self._banks:
            self._banks[level] = [self.turned(level, a, s) for a, s in self.grid(level)]
        return self._banks[level]

    def turned(self, level, angle, scale):
        """One pose of the level's template, turned and scaled onto its bounding canvas (a :class:`Pose`)."""
        t, m = self.templates[level], self.masks[level]
        h, w = t.shape[:2]
        rad = math.radians(angle)
        bw = scale * (abs(w * math.cos(rad)) + abs(h * math.sin(rad)))
        bh = scale * (abs(w * math.sin(rad)) + abs(h * math.cos(rad)))
        # odd sides: the centre falls on a pixel, so every pose's positions share one grid of centres
        W, H = int(math.ceil(bw)) | 1, int(math.ceil(bh)) | 1
        mat = level_matrix(((W - 1) / 2.0, (H - 1) / 2.0), angle, scale, ((w - 1) / 2.0, (h - 1) / 2.0))
        pixels = cv2.warpAffine(t, mat, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        cover = cv2.warpAffine(m, mat, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return Pose(angle, scale, pixels, (cover >= _COVERED).astype(np.uint8))

    def goodness(self, seen):
        """The method's goodness (higher is better) of the template against ``seen``, the image resampled
        at the template's pixels (shape of the template): the definition's formula over the mask's pixels
        (binary weights), in float64 but without its guards for extreme magnitudes (for ranking only;
        reported scores come from :func:`matcher.scores.reference.window_scores`).

        >>> p = PreparedTemplate(np.arange(12.0).reshape(3, 4) % 5)
        >>> round(p.goodness(2 * p.template + 1), 12), round(p.goodness(np.ones((3, 4))), 12)
        (1.0, 0.0)
        """
        i = np.asarray(seen, np.float64)[self.used].reshape(self.reference.shape)
        name = self.method.name
        if name == "ncc":
            i = i - i.mean(axis=0)
        denom = self.reference_norm * float(np.sqrt((i * i).sum()))
        if name == "ssd_normed":
            num = float(((self.reference - i) ** 2).sum())
            return -min(1.0, num / denom) if denom > 0 else (0.0 if num == 0 else -1.0)
        return float((self.reference * i).sum()) / denom if denom > 0 else 0.0
