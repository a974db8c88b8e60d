"""Rotation- and scale-tolerant search (matcher.search.rotated) against known truth and brute force.

Truth by construction: a template is cut from a real photograph through a known
similarity (centre, angle, scale) by cubic interpolation, then given noise and a
gain/offset change; the search must recover the pose. Brute force: the engine's
masked scores of the turned template over a fine grid of angles.
"""

import math

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.color import rgb2gray

from matcher import MatcherError, find, match_template
from matcher.search.rotated import PreparedTemplate, auto_steps, find_rotated, pose_matrix, rotated_iou

PHOTOS = {
    "camera": skimage.data.camera().astype(np.float32),
    "astronaut": (rgb2gray(skimage.data.astronaut()) * 255).astype(np.float32),
    "coffee": (rgb2gray(skimage.data.coffee()) * 255).astype(np.float32),
    "chelsea": (rgb2gray(skimage.data.chelsea()) * 255).astype(np.float32),
}


def cut(image, center, angle, scale, shape):
    """The template seen through the pose: template pixel p shows image point pose(p)."""
    m = pose_matrix(center, angle, scale, shape)
    return cv2.warpAffine(image, m, (shape[1], shape[0]), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC)


def angle_error(a, b):
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _textured(image, shape, rng, margin):
    """A centre whose template is textured enough to have a defined pose (not sky, not a flat wall)."""
    h, w = image.shape
    while True:
        cy, cx = rng.uniform(margin, h - margin), rng.uniform(margin, w - margin)
        patch = image[int(cy) - shape[0] // 2: int(cy) + shape[0] // 2, int(cx) - shape[1] // 2: int(cx) + shape[1] // 2]
        if patch.std() > 25:
            return cx, cy


@pytest.mark.parametrize("seed", range(4))
def test_pose_recovered_on_warped_photographs(seed):
    """Centre within 0.1 px, angle within 0.1 degree, scale within 0.005 (the issue's targets)."""
    rng = np.random.default_rng(seed)
    name = list(PHOTOS)[seed % len(PHOTOS)]
    image = PHOTOS[name]
    shape = (56, 64)
    angle, scale = rng.uniform(-180, 180), rng.uniform(0.92, 1.08)
    cx, cy = _textured(image, shape, rng, 60)
    template = cut(image, (cx, cy), angle, scale, shape)
    template = 0.7 * template + 20 + rng.normal(0, 2.0, shape).astype(np.float32)  # gain, offset, noise
    (m,) = find_rotated(image, template, scales=(0.9, 1.1))
    assert math.hypot(m.center[0] - cx, m.center[1] - cy) <= 0.1, (name, m, cx, cy)
    assert angle_error(m.angle, angle) <= 0.1, (name, m.angle, angle)
    assert abs(m.scale - scale) <= 0.005, (name, m.scale, scale)
    assert m.score > 0.98
    # corners: the template's corner pixels under the true pose
    truth = np.array([[0, 0, 1], [63, 0, 1], [63, 55, 1], [0, 55, 1]], float) @ pose_matrix(
        (cx, cy), angle, scale, shape).T
    assert np.abs(np.array(m.corners) - truth).max() <= 0.2


def test_brute_force_over_a_fine_angle_grid():
    """The search's pose scores at least as well as the best of a 1-degree grid scored by the engine."""
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.random((140, 150)).astype(np.float32), (0, 0), 2.0)
    template = cut(image, (74.0, 69.0), 23.4, 1.0, (31, 31))
    best = (-2.0, None)
    for a in np.arange(0.0, 360.0, 1.0):
        m = pose_matrix((22.0, 22.0), float(a), 1.0, (31, 31))
        turned = cv2.warpAffine(template, m, (45, 45), flags=cv2.INTER_LINEAR)
        cover = cv2.warpAffine(np.ones((31, 31), np.float32), m, (45, 45), flags=cv2.INTER_LINEAR)
        scores = match_template(image, turned, "ncc", mask=cover >= 0.999)
        y, x = np.unravel_index(int(scores.argmax()), scores.shape)
        if scores[y, x] > best[0]:
            best = (float(scores[y, x]), (float(a), x + 22.0, y + 22.0))
    (found,) = find_rotated(image, template)
    a, x, y = best[1]
    assert angle_error(found.angle, a) <= 1.0 and math.hypot(found.center[0] - x, found.center[1] - y) <= 1.0
    assert angle_error(found.angle, 23.4) <= 0.1
    assert found.score >= best[0] - 1e-3  # the continuous optimum beats the 1-degree grid (up to interpolation)


def test_no_rotation_is_the_plain_search():
    """angles (0, 0) and scale 1 on an exact copy: the integer position, score exactly 1, the box's corners."""
    image = PHOTOS["camera"]
    template = image[200:240, 300:350].copy()
    (m,) = find_rotated(image, template, angles=(0, 0))
    assert (round(m.x, 6), round(m.y, 6), m.width, m.height) == (300, 200, 50, 40)
    assert m.score == pytest.approx(1.0, abs=1e-12) and (m.angle, m.scale) == (0.0, 1.0)
    assert np.allclose(m.corners, find(image, template)[0].corners, atol=1e-6)


def test_several_turned_copies():
    rng = np.random.default_rng(5)
    part = cv2.GaussianBlur(rng.random((48, 48)).astype(np.float32), (0, 0), 1.5)
    part[20:28] += 0.5
    image = np.full((260, 300), 0.3, np.float32) + rng.normal(0, 0.01, (260, 300)).astype(np.float32)
    poses = [((70.0, 70.0), 0.0), ((200.0, 80.0), 120.0), ((140.0, 190.0), -120.0)]
    for (cx, cy), angle in poses:
        m = pose_matrix((cx, cy), angle, 1.0, part.shape)
        warped = cv2.warpAffine(part, m, (300, 260), flags=cv2.INTER_CUBIC)
        cover = cv2.warpAffine(np.ones_like(part), m, (300, 260), flags=cv2.INTER_LINEAR)
        image = np.where(cover > 0.5, warped, image)
    found = find_rotated(image, part, threshold=0.9, max_matches=None)
    assert len(found) == 3
    for (cx, cy), angle in poses:
        near = [f for f in found if math.hypot(f.center[0] - cx, f.center[1] - cy) < 1.0]
        assert len(near) == 1 and angle_error(near[0].angle, angle) < 0.5, (cx, cy, angle, found)
    # the prepared template is reusable and gives the same answer
    prepared = PreparedTemplate(part)
    again = find_rotated(image, prepared, threshold=0.9, max_matches=None)
    assert [(round(f.x, 6), round(f.y, 6)) for f in again] == [(round(f.x, 6), round(f.y, 6)) for f in found]


def test_rotated_iou():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert rotated_iou(square, square) == pytest.approx(1.0)
    assert rotated_iou(square, square + 20) == 0.0
    assert rotated_iou(square, square + [5, 0]) == pytest.approx(50 / 150)
    c = np.array([5.0, 5.0])
    turned = (square - c) @ np.array([[0.0, 1.0], [-1.0, 0.0]]) + c  # the same square turned 90 degrees
    assert rotated_iou(square, turned) == pytest.approx(1.0)
    diamond = (square - c) @ (np.array([[1, 1], [-1, 1]]) / math.sqrt(2)) + c  # turned 45: an octagon overlap
    inter = 100 - 4 * (0.5 * (10 - 5 * math.sqrt(2)) ** 2)  # corner triangles beyond |x| + |y| = 5 sqrt 2
    assert rotated_iou(square, diamond) == pytest.approx(inter / (200 - inter), rel=1e-4)


def test_find_takes_angles_and_scales():
    """find(angles=..., scales=...) is the turned search, in full-image coordinates with a region, and
    refuses what does not go with it."""
    rng = np.random.default_rng(8)
    image = cv2.GaussianBlur(rng.random((200, 220)).astype(np.float32), (0, 0), 2.0)
    template = cut(image, (120.0, 90.0), -40.0, 1.05, (41, 41))
    (want,) = find_rotated(image, template, angles=(-90, 0), scales=(1.0, 1.1))
    (got,) = find(image, template, angles=(-90, 0), scales=(1.0, 1.1))
    assert got == want and angle_error(got.angle, -40.0) < 0.1 and abs(got.scale - 1.05) < 0.005
    (cropped,) = find(image, template, angles=(-90, 0), scales=(1.0, 1.1), region=(40, 20, 160, 150))
    assert np.allclose(cropped.center, got.center, atol=0.05) and np.allclose(cropped.corners, got.corners, atol=0.1)
    with pytest.raises(MatcherError, match="needs a normalised method") as info:
        find(image, template, "ccoeff", angles=(0, 10))
    assert info.value.param == "method"
    with pytest.raises(MatcherError, match="pyramid=True cannot be added") as info:
        find(image, template, angles=(0, 10), pyramid=True)
    assert info.value.param == "pyramid"


def test_auto_steps_move_the_farthest_pixel_half_a_pixel():
    h, w = 101, 61
    a, s = auto_steps(h, w)
    r = math.hypot(30, 50)
    assert r * math.radians(a) == pytest.approx(0.5) and r * s == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"method": "ssd"}, MatcherError, r"normalised method .* got 'ssd'"),
    ({"angles": (0, 400)}, MatcherError,
     r"angles must be a pair \(low, high\) of numbers with -360 <= low <= high <= 360, spanning at most 360, "
     r"got \(0, 400\)"),
    ({"angles": (-180, 270)}, MatcherError, r"spanning at most 360, got \(-180, 270\)"),
    ({"scales": (0, 1)}, MatcherError, r"scales must be a pair \(low, high\) of numbers with 0.001 <= low"),
    ({"scales": "big"}, TypeError, r"scales must be a pair \(low, high\) of numbers"),
    ({"angle_step": -1}, MatcherError, r"angle_step must be a positive number or None, got -1"),
])
def test_bad_options(kwargs, error, message):
    image = PHOTOS["camera"][:100, :100]
    with pytest.raises(error, match=message) as info:
        find_rotated(image, image[10:40, 10:40], **kwargs)
    if error is MatcherError:
        assert info.value.param == next(iter(kwargs))
