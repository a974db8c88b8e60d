"""Poses of a turned, scaled template: the affine map, its corners, overlap of turned boxes, default steps.

Conventions (those of :mod:`matcher.search.rotated`): ``angle`` in degrees,
counter-clockwise as the image is displayed (``cv2.getRotationMatrix2D``);
``scale`` the factor from template to image; ``center`` the image point where
the template's centre ``((w - 1) / 2, (h - 1) / 2)`` lies.
"""

import math

import cv2
import numpy as np

__all__ = ["auto_steps", "pose_matrix", "level_matrix", "template_corners", "rotated_iou", "grid_points"]


def auto_steps(height, width):
    """Default ``(angle_step, scale_step)``: the template's farthest pixel moves by half a pixel.

    The farthest pixel is ``r`` pixels from the centre; turning by ``0.5 / r``
    radians or scaling by ``1 + 0.5 / r`` moves it by half a pixel (HALCON's
    ``'auto'`` steps follow the same idea [1]_).

    References
    ----------
    .. [1] MVTec, HALCON operator reference, ``create_ncc_model``: parameter
       ``AngleStep`` ``'auto'``.

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
    return level_matrix(center, angle, scale, ((w - 1) / 2.0, (h - 1) / 2.0))


def level_matrix(center, angle, scale, template_center, shift=(0.0, 0.0)):
    """The pose's 2 x 3 map from template to image coordinates with the template's centre given.

    At pyramid level ``l`` (``cv2.pyrDown``: pixel ``i`` of a level is pixel
    ``2 i`` of the finer one) the level-0 centre ``((w - 1) / 2, (h - 1) / 2)``
    of the template lies at that over ``2**l``, as does the image point
    ``center``. ``shift`` moves the template's origin: the map then takes
    ``(u, v)`` to the image point of template point ``(u, v) + shift``.

    >>> np.round(level_matrix((5.0, 10.0), 90.0, 2.0, (1.0, 0.5), shift=(-1, 0)), 6).tolist()
    [[0.0, 2.0, 4.0], [-2.0, 0.0, 14.0]]
    """
    a, b = scale * math.cos(math.radians(angle)), scale * math.sin(math.radians(angle))
    u, v = shift[0] - template_center[0], shift[1] - template_center[1]
    cx, cy = center
    return np.array([[a, b, cx + a * u + b * v], [-b, a, cy - b * u + a * v]])


def template_corners(matrix, template_shape):
    """Image points of the template's corner pixels (0, 0), (w-1, 0), (w-1, h-1), (0, h-1): a (4, 2) array."""
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


def grid_points(lo, hi, step, *, wrap):
    """Grid points from lo to hi with at most ``step`` between them (``wrap``: the full circle, without
    repeating lo + 360).

    >>> grid_points(0, 10, 4, wrap=False), grid_points(-180, 180, 100, wrap=True)
    ([0.0, 3.3333333333333335, 6.666666666666667, 10.0], [-180.0, -90.0, 0.0, 90.0])
    """
    if hi <= lo:
        return [lo]
    n = max(1, int(math.ceil((hi - lo) / step - 1e-9)))
    if wrap:
        return [lo + (hi - lo) * i / n for i in range(n)]
    return [lo + (hi - lo) * i / n for i in range(n + 1)]
