"""find(..., pyramid=True) against the exhaustive find, the oracle.

- 240 real cases: crops (64-128 px) of skimage photographs, cut from the clean
  photo, searched in a degraded copy (brightness/contrast a*I+b, Gaussian blur,
  Gaussian noise, JPEG quality 60-90), all seeded. The pyramid's best match must
  be the exhaustive one (+-1 px, score within 1e-6) on >= 99% of them.
- the full-resolution score equals the exhaustive map's value (1e-9);
- fallback paths: small templates (0 levels), repetitive textures, max_matches=None;
- planted copies with max_matches > 1; masks, colour, region, subpixel;
- validation messages.
"""

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.color import rgb2gray

from matcher import MatcherError, match_template
from matcher.search.find import find
from matcher.search.pyramid import PyramidInfo, find_pyramid, pyramid_levels


def gray(a):
    return np.round(rgb2gray(a) * 255).astype(np.uint8) if a.ndim == 3 else a


PHOTOS = [gray(f()) for f in (skimage.data.camera, skimage.data.astronaut, skimage.data.coffee,
                              skimage.data.chelsea, skimage.data.rocket, skimage.data.coins,
                              skimage.data.immunohistochemistry, skimage.data.brick)]
N_CASES = 240


def degraded_cases(n=N_CASES, seed=0):
    """(scene, template, (x, y) where the template was cut) for n seeded cases."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = PHOTOS[i % len(PHOTOS)]
        s = rng.uniform(1.0, 1.6)
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        H, W = img.shape
        th, tw = rng.integers(64, 129, 2)
        y, x = int(rng.integers(0, H - th + 1)), int(rng.integers(0, W - tw + 1))
        tpl = img[y : y + th, x : x + tw].copy()
        scene = rng.uniform(0.7, 1.3) * img.astype(np.float64) + rng.uniform(-30, 30)
        sigma = rng.uniform(0, 2)
        if sigma > 0.3:
            scene = cv2.GaussianBlur(scene, (0, 0), sigma)
        scene += rng.normal(0, rng.uniform(2, 12), scene.shape)
        scene = np.clip(scene, 0, 255).astype(np.uint8)
        _, buf = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 91))])
        yield cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), tpl, (x, y)


def test_agrees_with_exhaustive_on_degraded_photographs():
    failures, fell_back, n = [], 0, 0
    for i, (scene, tpl, truth) in enumerate(degraded_cases()):
        (e,) = find(scene, tpl, "ncc")
        (p,), info = find_pyramid(scene, tpl, "ncc")
        n += 1
        fell_back += info.fell_back
        assert info.levels == pyramid_levels(*tpl.shape) >= 2
        if abs(e.x - p.x) > 1 or abs(e.y - p.y) > 1 or abs(e.score - p.score) > 1e-6:
            failures.append((i, (e.x, e.y, e.score), (p.x, p.y, p.score), truth, info))
        elif not info.fell_back and (e.x, e.y) == (p.x, p.y):
            assert p.score == pytest.approx(e.score, abs=1e-9)
    print(f"\npyramid vs exhaustive: {n - len(failures)}/{n} agree, {fell_back} fell back; failures: {failures}")
    assert n >= 200
    assert (n - len(failures)) / n >= 0.99, failures


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_score_is_the_exhaustive_maps_value(method):
    for scene, tpl, _ in list(degraded_cases(12, seed=1)):
        scores = match_template(scene, tpl, method, precision="exact")  # the map to the last bits
        (p,), info = find_pyramid(scene, tpl, method)
        assert p.score == pytest.approx(scores[p.y, p.x], abs=1e-9)
        if not info.fell_back:
            neighbours = scores[max(p.y - 1, 0) : p.y + 2, max(p.x - 1, 0) : p.x + 2]
            assert (neighbours >= p.score - 1e-12).all() if method == "ssd_normed" else \
                (neighbours <= p.score + 1e-12).all()  # a local peak of the full map


def test_subpixel_and_region_match_exhaustive():
    for scene, tpl, _ in list(degraded_cases(10, seed=2)):
        H, W = scene.shape
        region = (5, 7, W - 20, H - 15)
        for kw in ({"subpixel": True}, {"region": region}, {"region": region, "subpixel": True}):
            try:
                e = find(scene, tpl, "ncc", **kw)
            except MatcherError:
                continue
            p, info = find_pyramid(scene, tpl, "ncc", **kw)
            if e[0].score > 0.9:  # a clear match: the same, to the sub-pixel offset
                assert (p[0].x, p[0].y) == pytest.approx((e[0].x, e[0].y), abs=1e-9), (kw, info)
                assert p[0].score == pytest.approx(e[0].score, abs=1e-9)


def test_small_template_means_zero_levels_and_the_exhaustive_result():
    scene, tpl, _ = next(degraded_cases(1, seed=3))
    small = tpl[:24, :40]
    found, info = find_pyramid(scene, small, "ncc", max_matches=3)
    assert info.levels == 0 and info.fell_back and "too small" in info.reason
    assert found == find(scene, small, "ncc", max_matches=3)
    assert pyramid_levels(30, 500) == 0 and pyramid_levels(31, 31) == 1 and pyramid_levels(32, 32) == 1
    assert pyramid_levels(64, 100) == 2 and pyramid_levels(128, 128) == 3 and pyramid_levels(1000, 1000) == 4


def test_repetitive_texture_is_correct_or_falls_back():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:600, 0:600]
    for period in (3, 5, 7, 8, 13):
        texture = 128 + 60 * np.sin(2 * np.pi * xx / period) * np.cos(2 * np.pi * yy / (period + 1))
        scene = np.clip(texture + rng.normal(0, 8, texture.shape), 0, 255).astype(np.uint8)
        tpl = np.clip(texture[200:280, 150:230], 0, 255).astype(np.uint8)
        (e,) = find(scene, tpl, "ncc")
        (p,), info = find_pyramid(scene, tpl, "ncc")
        assert info.fell_back or (abs(p.x - e.x) <= 1 and abs(p.y - e.y) <= 1
                                  and p.score == pytest.approx(e.score, abs=1e-6)), (period, info)


def test_fallbacks_reported():
    scene, tpl, _ = next(degraded_cases(1, seed=5))
    found, info = find_pyramid(scene, tpl, "ncc", max_matches=None, threshold=0.5)
    assert info.fell_back and "max_matches=None" in info.reason
    assert found == find(scene, tpl, "ncc", max_matches=None, threshold=0.5)
    noise = np.random.default_rng(6).integers(0, 256, (400, 400)).astype(np.uint8)
    found, info = find_pyramid(noise, tpl, "ncc")  # nothing there: weak coarse evidence
    assert info.fell_back and found == find(noise, tpl, "ncc")
    found, info = find_pyramid(noise, tpl, "ncc", threshold=0.9)
    assert found == [] and info.fell_back
    assert isinstance(info, PyramidInfo)


def test_planted_copies_all_found():
    rng = np.random.default_rng(7)
    for photo, corners in ((PHOTOS[0], [(40, 30), (300, 60), (120, 350), (400, 400)]),
                           (PHOTOS[1], [(10, 200), (350, 20), (200, 380)])):
        patch = PHOTOS[2][100:180, 200:296]  # 96 x 80, from another photo
        scene = photo.copy()
        for x, y in corners:
            scene[y : y + 80, x : x + 96] = patch
        scene = np.clip(scene + rng.normal(0, 5, scene.shape), 0, 255).astype(np.uint8)
        found, info = find_pyramid(scene, patch, "ncc", max_matches=len(corners), threshold=0.8)
        assert sorted((m.x, m.y) for m in found) == sorted(corners), info
        assert not info.fell_back
        exhaustive = find(scene, patch, "ncc", max_matches=len(corners), threshold=0.8)
        assert [(m.x, m.y) for m in found] == [(m.x, m.y) for m in exhaustive]
        assert [m.score for m in found] == pytest.approx([m.score for m in exhaustive], abs=1e-9)
        assert find(scene, patch, "ncc", max_matches=len(corners), threshold=0.8, pyramid=True) == found


def test_mask_and_colour():
    rgb = skimage.data.astronaut()
    scene = cv2.GaussianBlur(rgb, (0, 0), 0.8)
    tpl = rgb[150:246, 180:260].copy()
    e = find(scene, tpl, "ncc")
    p, info = find_pyramid(scene, tpl, "ncc")
    assert (p[0].x, p[0].y) == (e[0].x, e[0].y) == (180, 150) and not info.fell_back
    assert p[0].score == pytest.approx(e[0].score, abs=1e-9)
    g = gray(rgb)
    mask = np.zeros((96, 80), bool)
    mask[10:90, 5:70] = True
    e = find(cv2.GaussianBlur(g, (0, 0), 0.8), g[150:246, 180:260], "ncc", mask=mask)
    p, info = find_pyramid(cv2.GaussianBlur(g, (0, 0), 0.8), g[150:246, 180:260], "ncc", mask=mask)
    assert (p[0].x, p[0].y) == (e[0].x, e[0].y) and p[0].score == pytest.approx(e[0].score, abs=1e-9)


def test_validation():
    scene, tpl, _ = next(degraded_cases(1, seed=8))
    with pytest.raises(TypeError, match=r"pyramid must be True or False, got 'auto'"):
        find(scene, tpl, pyramid="auto")
    with pytest.raises(TypeError, match=r"pyramid must be True or False, got 1"):
        find(scene, tpl, pyramid=1)
    with pytest.raises(MatcherError, match=r"pyramid=True needs a normalised method .*got 'ssd'"):
        find(scene, tpl, "ssd", pyramid=True)
    with pytest.raises(MatcherError, match="threshold"):
        find(scene, tpl, "ncc", threshold=2.0, pyramid=True)
    assert find(scene, tpl, pyramid=False) == find(scene, tpl)
