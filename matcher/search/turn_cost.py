"""What the turned and scaled search does at each level, and the estimate of its work (the service's budget).

:func:`followed` is how many coarse candidates :func:`matcher.search.rotated.find_rotated` follows
down the levels; :func:`search_cost` estimates the whole search's work from the shapes and options
alone (the service refuses a search over ``MATCHER_MAX_TURN_WORK`` with a 413 before decoding
anything). The constants are those of the search; the estimate's four weights
(:data:`CORRELATION_WORK`, :data:`POSE_WORK`, :data:`FOLLOW_WORK`, :data:`REFINE_WORK`) were fitted with
``bench/bench_turn_cost.py`` so that the seconds per unit vary as little as possible across its
searches.
"""

import math

from ..options import OPTIONS
from .poses import auto_steps
from .prepared import GRID_FACTOR, MAX_COARSE_ANGLE_STEP, MIN_COARSE
from .pyramid import pyramid_levels

__all__ = ["followed", "search_cost", "PEAKS_PER_POSE", "RADIUS", "LAST_GRID", "FOLLOWED_PER_POSE",
           "CORRELATION_WORK", "POSE_WORK", "FOLLOW_WORK", "REFINED", "REFINE_WORK"]

PEAKS_PER_POSE = 4  # local maxima kept per coarse pose
FOLLOWED_PER_POSE = 0.3  # coarse candidates followed down per coarse pose (see followed)
RADIUS = 4  # finer-level search radius (pixels of the level) around a coarser candidate's position
LAST_GRID = 1  # the finest level searched on a grid (then the continuous refinement)
# the estimate's weights, fitted with bench/bench_turn_cost.py (2026-11-30):
CORRELATION_WORK = 200  # products per position of the coarsest level at most (cv2.matchTemplate correlates by
# DFT: beyond this many template pixels a position costs about the same)
POSE_WORK = 150_000  # units of one pose scored around a candidate whatever the template's size (the fixed
# costs of its calls: a warp, a correlation, a peak; some 0.03 ms)
FOLLOW_WORK = 5  # and per level-template pixel (the window a few pixels wider than the template)
REFINED = 2  # candidates usually refined (the others score more than 0.1 below the best at level 1)
REFINE_WORK = 500  # products per template pixel of one refinement (3 to 5 cubic resamplings of 16 taps
# with the Jacobian's products, and the score by definition)


def followed(poses, max_matches):
    """How many of the coarsest level's candidates are followed down the levels.

    ``FOLLOWED_PER_POSE`` per pose of the coarsest grid (a false candidate's
    chance to outscore the part grows with the poses tried), at least four per
    match asked and at most ``max(16, 4 * max_matches)``; 32 for all matches
    (``max_matches=None``).

    Parameters
    ----------
    poses : int
        Poses of the coarsest grid.
    max_matches : int or None

    Returns
    -------
    int

    Examples
    --------
    >>> followed(56, 1), followed(5, 1), followed(5, 3), followed(5, None)
    (16, 4, 12, 32)
    """
    if max_matches is None:
        return 32
    return min(max(16, 4 * max_matches), max(4 * max_matches, math.ceil(FOLLOWED_PER_POSE * poses)))


def search_cost(image_shape, template_shape, *, angles=None, scales=None, angle_step=None, scale_step=None,
                max_matches=1):
    """Estimated work of the turned and scaled search, in pixel products (searched pixels x template pixels).

    The unit of the plain search's work (``width * height`` of the searched
    area times the template's pixels), so that one budget may cover both. With
    ``L`` the coarsest level, ``P`` its grid's poses (as
    :meth:`~matcher.search.prepared.PreparedTemplate.grid`), ``t_l`` the
    largest turned template's pixels at level ``l`` (``h w hi**2 / 4**l``) and
    ``k = min(followed(P, max_matches), 4 P)`` the candidates followed::

        P * ceil(H / 2**L) * ceil(W / 2**L) * min(t_L, CORRELATION_WORK)   (coarsest level, every position)
        + k * n * sum(POSE_WORK + FOLLOW_WORK * t_l, l = 1 .. L - 1)       (finer levels)
        + REFINED * REFINE_WORK * h * w                                    (refinement at full resolution)

    where ``n`` is 3 (angles) or 9 (angles and scales) poses around each
    candidate. The weights are measured, not counted: OpenCV correlates by DFT,
    so a coarse position costs about the same for any template beyond
    ``CORRELATION_WORK`` pixels, and a pose scored around a candidate costs
    mostly its calls (``POSE_WORK``). Times channels. Computed from the shapes and
    options alone, without building anything: cheap for any step, however
    small (``angle_step=1e-6`` gives a huge number, not a huge list).

    Parameters
    ----------
    image_shape : tuple
        ``(H, W)`` or ``(H, W, C)`` of the searched area (the region, if any).
    template_shape : tuple
        ``(h, w)`` or ``(h, w, C)``.
    angles, scales, angle_step, scale_step, max_matches
        As :func:`~matcher.search.rotated.find_rotated` (checked as it checks
        them); an absent range is not searched (angle 0, scale 1).

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
    levels = pyramid_levels(int(h * scales[0]), int(w * scales[0]), min_size=MIN_COARSE)
    full_circle = angles[1] - angles[0] >= 360.0 - 1e-9

    def count(lo, hi, step, wrap):  # len(grid_points(lo, hi, step, wrap=wrap)), without the list
        if hi <= lo:
            return 1
        n = max(1, math.ceil((hi - lo) / step - 1e-9))
        return n if wrap else n + 1

    coarse_angle = min(angle_step * GRID_FACTOR * 2**levels, MAX_COARSE_ANGLE_STEP)
    poses = (count(*angles, coarse_angle, full_circle)
             * count(*scales, scale_step * GRID_FACTOR * 2**levels, False))
    big = scales[1] ** 2  # the largest turned template's pixels, per template pixel

    def template_pixels(level):
        return h * w * big / 4**level

    H, W = (int(v) for v in image_shape[:2])
    work = poses * math.ceil(H / 2**levels) * math.ceil(W / 2**levels) * min(template_pixels(levels),
                                                                              CORRELATION_WORK)
    k = min(followed(poses, max_matches), PEAKS_PER_POSE * poses)
    around = 3 * (3 if scales[1] > scales[0] else 1)
    work += k * around * sum(POSE_WORK + FOLLOW_WORK * template_pixels(level) for level in range(LAST_GRID, levels))
    work += REFINED * REFINE_WORK * h * w
    return int(math.ceil(work * channels))
