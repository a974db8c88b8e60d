"""The turned search's continuous refinement and its narrow ranges, against truth by construction and brute force.

The refinement (forward-compositional Gauss-Newton, :mod:`matcher.search.pose_refine`) must reach the true
pose whichever parameters are free, with a mask and in colour, and stop at a maximum of the score by
definition (a local brute-force grid of poses scored by :func:`pose_score` does not beat it). Narrow ranges
follow fewer coarse candidates (:func:`matcher.search.rotated.followed`): the search must still return the
best pose of the range, as a brute-force loop of the engine's masked scores over a fine angle grid finds it,
among distractors turned just outside the range.
"""

import itertools
import math

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.color import rgb2gray

from matcher import match_template
from matcher.search.pose_refine import pose_score, refine_pose
from matcher.search.rotated import PreparedTemplate, find_rotated, followed, pose_matrix, search_cost

CAMERA = skimage.data.camera().astype(np.float32)
ASTRONAUT = (rgb2gray(skimage.data.astronaut()) * 255).astype(np.float32)


def cut(image, center, angle, scale, shape):
    """The template seen through the pose: template pixel p shows image point pose(p) (cubic)."""
    m = pose_matrix(center, angle, scale, shape)
    return cv2.warpAffine(image, m, (shape[1], shape[0]), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC)


def angle_error(a, b):
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _noisy(template, seed):
    rng = np.random.default_rng(seed)
    return (0.7 * template + 20 + rng.normal(0, 2.0, template.shape)).astype(np.float32)


TRUTH = (281.3, 242.6, 33.3, 1.037)  # a textured place of the camera photograph


@pytest.mark.parametrize("fixed", ["angle", "scale", "both", "none"])
def test_refinement_reaches_the_truth_whichever_parameters_are_free(fixed):
    """A range of one value fixes that parameter: it stays exactly as asked, and the free ones reach the truth
    from a start 1.2 px, 0.5 degree and 0.01 off."""
    cx, cy, angle, scale = TRUTH
    template = _noisy(cut(CAMERA, (cx, cy), angle, scale, (56, 64)), 1)
    angles = (angle, angle) if fixed in ("angle", "both") else (angle - 20, angle + 20)
    scales = (scale, scale) if fixed in ("scale", "both") else (0.9, 1.1)
    prepared = PreparedTemplate(template, angles=angles, scales=scales)
    start = (cx + 0.9, cy - 0.8, angle + 0.5, scale - 0.01)
    score, x, y, a, corners, s = refine_pose(prepared, CAMERA, start)
    assert math.hypot(x - cx, y - cy) <= 0.1 and angle_error(a, angle) <= 0.1 and abs(s - scale) <= 0.005
    if fixed in ("angle", "both"):
        assert a == angle
    if fixed in ("scale", "both"):
        assert s == scale
    assert score == pose_score(prepared, CAMERA, (x, y, a, s)) > pose_score(prepared, CAMERA, start)


def test_refinement_of_a_masked_colour_template():
    """Pixels outside the mask (garbage here) never enter: the masked colour template's pose is recovered."""
    rng = np.random.default_rng(2)
    image = skimage.data.astronaut().astype(np.float32)
    cx, cy, angle, scale = 250.3, 180.7, -71.0, 0.96
    template = cut(image, (cx, cy), angle, scale, (61, 61))
    yy, xx = np.mgrid[0:61, 0:61]
    mask = (xx - 30) ** 2 + (yy - 30) ** 2 <= 30**2
    template[~mask] = rng.random((int((~mask).sum()), 3)) * 255
    template = (0.8 * template + 10 + rng.normal(0, 2.0, template.shape)).astype(np.float32)
    prepared = PreparedTemplate(template, mask=mask, angles=(-90, -50), scales=(0.9, 1.05))
    score, x, y, a, _, s = refine_pose(prepared, image, (cx - 1.0, cy + 0.7, angle - 0.6, scale + 0.008))
    assert math.hypot(x - cx, y - cy) <= 0.1 and angle_error(a, angle) <= 0.1 and abs(s - scale) <= 0.005
    assert score > 0.95


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_refined_pose_is_a_maximum_of_the_score_by_definition(method):
    """Brute force around the refined pose: no pose of a grid +-0.05 px, +-0.02 degree, +-0.001 in scale (81
    poses) scores better by the definition (pose_score) than the refined one, beyond rounding. (A
    refinement whose fixed point is not the score's maximum, as the inverse-compositional algorithm's with
    noise in the template, fails this.)"""
    cx, cy, angle, scale = TRUTH
    template = _noisy(cut(CAMERA, (cx, cy), angle, scale, (56, 64)), 3)
    prepared = PreparedTemplate(template, method, angles=(0, 60), scales=(0.9, 1.1))
    score, x, y, a, _, s = refine_pose(prepared, CAMERA, (cx + 0.6, cy + 0.5, angle - 0.3, scale + 0.005))
    better = (lambda u, v: u < v - 1e-6) if method == "ssd_normed" else (lambda u, v: u > v + 1e-6)
    beaten = [d for d in itertools.product((-0.05, 0, 0.05), (-0.05, 0, 0.05), (-0.02, 0, 0.02), (-0.001, 0, 0.001))
              if better(pose_score(prepared, CAMERA, (x + d[0], y + d[1], a + d[2], s + d[3])), score)]
    assert not beaten, (score, beaten[:3])


def _part(rng):
    """A smooth random 64 x 64 part with a band, and its middle 40 x 40, the template (so that the turned
    template's pixels all fall inside the pasted part: no pasted edge in the scores)."""
    part = rng.random((64, 64)).astype(np.float32)
    part[26:32] += 0.6
    part = cv2.GaussianBlur(part, (0, 0), 2.0)
    return part, part[12:52, 12:52].copy()


def _copies(part, poses, shape=(300, 420), seed=5):
    """A noisy flat background with the part pasted at each (centre, angle) pose (cubic)."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, 0.3, np.float32) + rng.normal(0, 0.01, shape).astype(np.float32)
    for (cx, cy), angle in poses:
        m = pose_matrix((cx, cy), angle, 1.0, part.shape)
        warped = cv2.warpAffine(part, m, shape[::-1], flags=cv2.INTER_CUBIC)
        cover = cv2.warpAffine(np.ones_like(part), m, shape[::-1], flags=cv2.INTER_LINEAR)
        image = np.where(cover > 0.5, warped, image)
    return image


def _brute_force(image, template, angles, step=0.5):
    """The engine's best masked ncc over an angle grid of the range at full resolution: (score, angle, cx, cy)."""
    h, w = template.shape
    best = (-2.0, None, None, None)
    for a in np.arange(angles[0], angles[1] + 1e-9, step):
        side = int(math.ceil(math.hypot(h, w))) | 1
        m = pose_matrix(((side - 1) / 2.0, (side - 1) / 2.0), float(a), 1.0, (h, w))
        turned = cv2.warpAffine(template, m, (side, side), flags=cv2.INTER_LINEAR)
        cover = cv2.warpAffine(np.ones_like(template), m, (side, side), flags=cv2.INTER_LINEAR)
        scores = match_template(image, turned, "ncc", mask=cover >= 0.999)
        y, x = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
        if scores[y, x] > best[0]:
            best = (float(scores[y, x]), float(a), x + (side - 1) / 2.0, y + (side - 1) / 2.0)
    return best


@pytest.mark.parametrize("angles, inside", [((-10, 10), 3.0), ((15, 45), 31.0), ((-60, -40), -52.0)])
def test_narrow_range_finds_the_best_pose_of_the_range(angles, inside):
    """Seven copies of a part turned 3, 31, -52 degrees and by angles just outside each range: a narrow
    search (few coarse poses, four candidates followed) returns the copy whose angle lies in the range, at
    least as good as the brute-force loop's best of the range (0.5 degree grid) and where it is."""
    rng = np.random.default_rng(11)
    part, template = _part(rng)
    turns = [3.0, 31.0, -52.0, 14.0, -15.0, 50.0, -64.0]
    centres = [(60.0, 60.0), (180.0, 60.0), (300.0, 60.0), (60.0, 200.0), (180.0, 200.0), (300.0, 200.0),
               (380.0, 140.0)]
    image = _copies(part, list(zip(centres, turns)))
    prepared = PreparedTemplate(template, angles=angles)
    assert followed(len(prepared.grid(prepared.levels)), 1) == 4
    (m,) = find_rotated(image, prepared)
    score, a, x, y = _brute_force(image, template, angles)
    cx, cy = centres[turns.index(inside)]
    assert angle_error(m.angle, inside) <= 0.1 and math.hypot(m.center[0] - cx, m.center[1] - cy) <= 0.1
    assert angle_error(a, inside) <= 0.5 and math.hypot(x - cx, y - cy) <= 1.0  # the oracle agrees
    assert m.score >= score - 1e-3


def test_several_matches_in_a_narrow_range():
    """max_matches=3 over a range holding three of the copies: all three, none from outside the range."""
    rng = np.random.default_rng(12)
    part, template = _part(rng)
    poses = [((60.0, 60.0), 2.0), ((180.0, 60.0), 8.0), ((300.0, 60.0), -6.0), ((60.0, 200.0), 40.0),
             ((180.0, 200.0), -45.0), ((300.0, 200.0), 90.0)]
    image = _copies(part, poses)
    found = find_rotated(image, template, angles=(-10, 10), max_matches=3, threshold=0.9)
    assert len(found) == 3
    for (cx, cy), angle in poses[:3]:
        near = [f for f in found if math.hypot(f.center[0] - cx, f.center[1] - cy) < 0.2]
        assert len(near) == 1 and angle_error(near[0].angle, angle) < 0.1, (cx, cy, angle, found)


def test_followed_candidates_grow_with_the_coarse_poses():
    assert [followed(p, 1) for p in (1, 5, 14, 40, 56, 168)] == [4, 4, 5, 12, 16, 16]
    assert followed(5, 3) == 12 and followed(168, 5) == 20 and followed(3, None) == 32


def test_search_cost_follows_the_range():
    """Narrower ranges are estimated cheaper (strictly: fewer coarse poses, fewer candidates followed), a full
    circle with scales dearer; the refinement, the same for all, is a part (as measured, bench_rotated's
    200 x 200 part costs 1.5 to 2 times as much over the full circle as over +-10 degrees)."""
    costs = [search_cost((480, 640), (200, 200), angles=r) for r in ((-5, 5), (-10, 10), (-30, 30), (-180, 180))]
    assert all(a < b for a, b in zip(costs, costs[1:])) and costs[-1] > 1.4 * costs[1]
    assert search_cost((480, 640), (200, 200), angles=(-180, 180), scales=(0.9, 1.1)) > costs[-1]


def test_refinement_next_to_the_image_edge():
    """A part whose template reaches within a pixel of the image's edge is still refined to its pose (the
    resampled patch's margin for the derivatives replicates the edge; only the template's pixels must lie
    inside)."""
    cx, cy, angle, scale = 20.3, 240.2, 0.4, 1.0  # the left column at x = 0.8 (a quarter pixel more at a corner)
    template = _noisy(cut(CAMERA, (cx, cy), angle, scale, (40, 40)), 4)
    prepared = PreparedTemplate(template, angles=(-10, 10))
    score, x, y, a, _, s = refine_pose(prepared, CAMERA, (cx + 0.6, cy - 0.3, angle + 0.3, scale))
    assert math.hypot(x - cx, y - cy) <= 0.1 and angle_error(a, angle) <= 0.1, (x, y, a)
