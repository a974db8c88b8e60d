"""find(..., pyramid=True) against the exhaustive find and the float64 definition, the oracles.

- the cell bounds (matcher.search.bounds) hold for every window, against the
  definition (matcher.scores.reference), for the three normalised methods, gray,
  colour, 8-bit and float images, several block sizes;
- 240 real cases: crops (64-128 px) of skimage photographs, cut from the clean
  photo, searched in a degraded copy, all seeded: the pyramid's best match is the
  exhaustive one on every case (or a tie within the engine's error);
- near-duplicates: a template planted once among 8 copies that differ only in
  fine detail (a +-checkerboard, scores 0.985 ... 0.845) placed where they win at
  coarse resolution (the code before the bounds returned one of them); a mosaic of
  repeated, differently degraded tiles; a board of many parts searched for every
  match above a threshold (the same set as the exhaustive search);
- the full-resolution score equals the exhaustive map's value; fallback paths;
  planted copies with max_matches > 1; masks, colour, region, subpixel; validation.
"""

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.color import rgb2gray

from matcher import MatcherError, match_template
from matcher.scores.reference import match_template_reference
from matcher.search.bounds import cell_bounds, template_terms
from matcher.search.find import find
from matcher.search.pyramid import PyramidInfo, find_pyramid, pyramid_levels


def gray(a):
    return np.round(rgb2gray(a) * 255).astype(np.uint8) if a.ndim == 3 else a


PHOTOS = [gray(f()) for f in (skimage.data.camera, skimage.data.astronaut, skimage.data.coffee,
                              skimage.data.chelsea, skimage.data.rocket, skimage.data.coins,
                              skimage.data.immunohistochemistry, skimage.data.brick)]
N_CASES = 240
TIE = 2e-4  # two scores closer than the engine's "fast" error (1e-4 of the range 2) may rank either way


def same_best(e, p):
    """The pyramid's best match is the exhaustive one: the same window, or an exactly scored tie."""
    if (e.x, e.y) == (p.x, p.y):
        return abs(e.score - p.score) <= 1e-9
    return abs(e.score - p.score) <= TIE


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


def decoy_scene(seed, size=64):
    """A 600 x 800 photo with a template planted once and 8 copies differing only by a +-checkerboard.

    The copies score 0.985, 0.965, ..., 0.845 against the template at full
    resolution but exactly 1 on any 2x-reduced level (the checkerboard averages
    out), and sit at positions that are multiples of 4 (so their reduced windows
    are the reduced template); the exact copy sits off that grid.
    """
    rng = np.random.default_rng(seed)
    back = cv2.resize(PHOTOS[7].astype(np.float64), (800, 600), interpolation=cv2.INTER_CUBIC)
    y, x = (int(v) for v in rng.integers(50, 400, 2))
    tpl = PHOTOS[1][y : y + size, x : x + size].astype(np.float64)
    yy, xx = np.mgrid[0:size, 0:size]
    board = np.where((yy + xx) % 2 == 0, 1.0, -1.0)
    energy = ((tpl - tpl.mean()) ** 2).sum()
    spots = [(r, c) for r in range(3) for c in range(3)]
    rng.shuffle(spots)
    img = back.copy()
    for i, (r, c) in enumerate(spots):
        py, px = 40 + r * 190 + 4 * int(rng.integers(0, 10)), 48 + c * 248 + 4 * int(rng.integers(0, 15))
        if i == 0:
            py, px = py + int(rng.integers(1, 4)), px + int(rng.integers(1, 4))
            img[py : py + size, px : px + size] = tpl
            truth = (px, py)
        else:
            target = 0.985 - (i - 1) * 0.02  # ncc(T, T + a B) = |T| / sqrt(|T|^2 + a^2 n)
            img[py : py + size, px : px + size] = tpl + np.sqrt(energy * (1 / target**2 - 1) / board.size) * board
    img = np.clip(np.round(img + rng.normal(0, 2, img.shape)), 0, 255).astype(np.uint8)
    return img, np.clip(np.round(tpl), 0, 255).astype(np.uint8), truth


def board_scene(seed, parts=16):
    """A PCB-like board: a textured substrate, traces, ``parts`` LEDs (each lit and shaded differently) and
    resistors; the LED template is a clean LED. Returns (image, template, LED corners)."""
    rng = np.random.default_rng(seed)
    H, W = 620, 820
    img = 60 + cv2.GaussianBlur(rng.normal(0, 25, (H, W)), (0, 0), 1.5)
    for _ in range(40):  # traces
        y, x = (int(v) for v in rng.integers(0, (H, W)))
        cv2.line(img, (x, y), (x + int(rng.integers(-300, 300)), y), 150, int(rng.integers(2, 5)))
    led = np.full((51, 70), 40.0)
    cv2.rectangle(led, (3, 3), (66, 47), 200, 2)
    cv2.ellipse(led, (35, 25), (18, 14), 0, 0, 360, 235, -1)
    cv2.circle(led, (35, 25), 6, 120, -1)
    cv2.line(led, (10, 10), (20, 10), 90, 2)
    res = np.full((51, 70), 70.0)
    cv2.rectangle(res, (5, 15), (64, 35), 180, -1)
    corners = []
    for k in range(parts + 8):
        r, c = divmod(k, 6)
        y, x = 15 + r * 150 + int(rng.integers(0, 60)), 15 + c * 135 + int(rng.integers(0, 50))
        if k < parts:
            img[y : y + 51, x : x + 70] = rng.uniform(0.8, 1.2) * led + rng.uniform(-15, 15)
            corners.append((x, y))
        else:
            img[y : y + 51, x : x + 70] = res
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    return img, led.astype(np.uint8), corners


def cell_max(scores, b):
    """The best of each b x b cell of a goodness map (cells past the map's edge padded with -inf)."""
    H, W = scores.shape
    ny, nx = (H - 1) // b + 1, (W - 1) // b + 1
    padded = np.full((ny * b, nx * b), -np.inf)
    padded[:H, :W] = scores
    return padded.reshape(ny, b, nx, b).max(axis=(1, 3))


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_bounds_hold_for_every_window(method):
    rng = np.random.default_rng(10)
    checked = informative = 0
    for trial in range(12):
        H, W = (int(v) for v in rng.integers(70, 130, 2))
        h, w = (int(v) for v in rng.integers(17, 60, 2))
        shape = (H, W) if trial % 3 else (H, W, 3)
        img = np.clip(cv2.GaussianBlur(rng.normal(128, 60, shape), (0, 0), float(rng.uniform(0.7, 3))), 0, 255)
        img = [img.astype(np.uint8), img.astype(np.float32), img * 1e-3 + 7.0][trial % 3]
        y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        tpl = img[y : y + h, x : x + w].copy()
        if trial % 4 == 1:
            tpl = (tpl * 0.6 + rng.normal(0, 5, tpl.shape)).astype(img.dtype)
        truth = match_template_reference(img, tpl, method)
        goodness = -truth if method == "ssd_normed" else truth
        for b in (2, 4, 8):
            if h // b < 3 or w // b < 3:
                continue
            bound, _ = cell_bounds(img, template_terms(tpl, b, method == "ncc"), method)
            best = cell_max(goodness, b)
            assert bound.shape == best.shape
            assert (best <= bound + 1e-9).all(), (trial, b, float((best - bound).max()))
            checked += 1
            informative += bool((bound < goodness.max() - 0.05).any())
    assert checked >= 20
    if method == "ncc":  # the bounds prune something (ccorr_normed, ssd_normed: scores bunch near the best)
        assert informative >= checked // 2


def test_agrees_with_exhaustive_on_degraded_photographs():
    failures, fell_back, n = [], 0, 0
    for i, (scene, tpl, truth) in enumerate(degraded_cases()):
        (e,) = find(scene, tpl, "ncc")
        (p,), info = find_pyramid(scene, tpl, "ncc")
        n += 1
        fell_back += info.fell_back
        if not same_best(e, p):
            failures.append((i, (e.x, e.y, e.score), (p.x, p.y, p.score), truth, info))
    print(f"\npyramid vs exhaustive: {n - len(failures)}/{n} agree, {fell_back} fell back; failures: {failures}")
    assert n == N_CASES and not failures
    assert fell_back <= n // 2  # the bounded path answers most of them


def test_decoys_that_win_at_coarse_resolution_are_never_returned():
    for seed in range(5):
        img, tpl, truth = decoy_scene(seed)
        (e,) = find(img, tpl, "ncc")
        (p,), info = find_pyramid(img, tpl, "ncc")
        assert (e.x, e.y) == truth
        assert (p.x, p.y) == truth and p.score == pytest.approx(e.score, abs=1e-9), (seed, info)
        assert not info.fell_back, info
        top = find(img, tpl, "ncc", max_matches=4)
        assert find_pyramid(img, tpl, "ncc", max_matches=4)[0] == top  # the best decoys, in order


def test_every_part_above_the_threshold_on_a_board():
    for seed in range(3):
        img, led, corners = board_scene(seed)
        e = find(img, led, "ncc", threshold=0.8, max_matches=None)
        p, info = find_pyramid(img, led, "ncc", threshold=0.8, max_matches=None)
        assert sorted((m.x, m.y) for m in e) == sorted(corners)
        assert [(m.x, m.y) for m in p] == [(m.x, m.y) for m in e], info
        assert [m.score for m in p] == pytest.approx([m.score for m in e], abs=1e-9)


def test_every_copy_above_the_threshold_by_the_bounds():
    rng = np.random.default_rng(12)
    patch = PHOTOS[2][100:180, 200:296]  # 96 x 80
    for photo in PHOTOS[:3]:
        scene = photo.astype(np.float64)
        corners = [(int(x), int(y)) for x, y in zip(rng.integers(0, 100, 5) * 4 + rng.integers(0, 4, 5),
                                                    rng.integers(0, 30, 5) * 10 + rng.integers(0, 4, 5))]
        for k, (x, y) in enumerate(corners):
            scene[y : y + 80, x : x + 96] = rng.uniform(0.8, 1.2) * patch + rng.uniform(-20, 20)
        scene = np.clip(scene + rng.normal(0, 3, scene.shape), 0, 255).astype(np.uint8)
        for threshold in (0.8, 0.95):
            e = find(scene, patch, "ncc", threshold=threshold, max_matches=None, max_overlap=0.0)
            p, info = find_pyramid(scene, patch, "ncc", threshold=threshold, max_matches=None, max_overlap=0.0)
            assert [(m.x, m.y) for m in p] == [(m.x, m.y) for m in e], info
            assert [m.score for m in p] == pytest.approx([m.score for m in e], abs=1e-9)
            assert not info.fell_back, info


def test_mosaic_of_near_duplicate_tiles():
    rng = np.random.default_rng(11)
    tile = cv2.resize(PHOTOS[0], (200, 200), interpolation=cv2.INTER_AREA).astype(np.float64)
    rows = []
    for r in range(3):
        row = []
        for c in range(4):
            noisy = tile + rng.normal(0, 3, tile.shape) if (r, c) != (1, 2) else tile
            row.append(noisy)
        rows.append(np.hstack(row))
    img = np.clip(np.vstack(rows), 0, 255).astype(np.uint8)
    for size, (y, x) in ((96, (40, 60)), (128, (20, 50)), (64, (120, 100))):
        tpl = img[200 + y : 200 + y + size, 400 + x : 400 + x + size].copy()  # from the clean tile
        e = find(img, tpl, "ncc", max_matches=3)
        p, info = find_pyramid(img, tpl, "ncc", max_matches=3)
        assert (p[0].x, p[0].y) == (400 + x, 200 + y) and p[0].score == pytest.approx(1.0, abs=1e-12)
        assert [(m.x, m.y) for m in p] == [(m.x, m.y) for m in e], info
        assert [m.score for m in p] == pytest.approx([m.score for m in e], abs=1e-9)


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_score_is_the_exhaustive_maps_value(method):
    for scene, tpl, _ in list(degraded_cases(12, seed=1)):
        scores = match_template(scene, tpl, method, precision="exact")  # the map to the last bits
        (e,) = find(scene, tpl, method)
        (p,), info = find_pyramid(scene, tpl, method)
        assert p.score == pytest.approx(scores[p.y, p.x], abs=1e-9)
        assert same_best(e, p), (method, info)
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
            assert same_best(e[0], p[0]), (kw, info)
            if (p[0].x, p[0].y) != (e[0].x, e[0].y):
                continue  # a tie
            assert (p[0].x, p[0].y) == pytest.approx((e[0].x, e[0].y), abs=1e-9), (kw, info)


def test_small_template_means_zero_levels_and_the_exhaustive_result():
    scene, tpl, _ = next(degraded_cases(1, seed=3))
    small = tpl[:24, :40]
    found, info = find_pyramid(scene, small, "ncc", max_matches=3)
    assert info.levels == 0 and info.fell_back and "too small" in info.reason
    assert found == find(scene, small, "ncc", max_matches=3)
    assert pyramid_levels(30, 500) == 0 and pyramid_levels(31, 31) == 1 and pyramid_levels(32, 32) == 1
    assert pyramid_levels(64, 100) == 2 and pyramid_levels(128, 128) == 3 and pyramid_levels(1000, 1000) == 4


def test_repetitive_texture_matches_exhaustive():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:600, 0:600]
    for period in (3, 5, 7, 8, 13):
        texture = 128 + 60 * np.sin(2 * np.pi * xx / period) * np.cos(2 * np.pi * yy / (period + 1))
        scene = np.clip(texture + rng.normal(0, 8, texture.shape), 0, 255).astype(np.uint8)
        tpl = np.clip(texture[200:280, 150:230], 0, 255).astype(np.uint8)
        (e,) = find(scene, tpl, "ncc")
        (p,), info = find_pyramid(scene, tpl, "ncc")
        assert same_best(e, p), (period, info)


def test_fallbacks_reported():
    scene, tpl, _ = next(degraded_cases(1, seed=5))
    found, info = find_pyramid(scene, tpl, "ncc", max_matches=None)
    assert info.fell_back and "max_matches=None" in info.reason
    assert found == find(scene, tpl, "ncc", max_matches=None)
    found, info = find_pyramid(scene, tpl, "ncc", mask=np.ones(tpl.shape, bool))
    assert info.fell_back and "mask" in info.reason
    assert found == find(scene, tpl, "ncc", mask=np.ones(tpl.shape, bool))
    noise = np.random.default_rng(6).integers(0, 256, (400, 400)).astype(np.uint8)
    found, info = find_pyramid(noise, tpl, "ncc")  # all detail: the bounds cannot prune
    assert info.fell_back and "bounds left" in info.reason and found == find(noise, tpl, "ncc")
    found, info = find_pyramid(noise, tpl, "ncc", threshold=0.9)
    assert found == [] and isinstance(info, PyramidInfo)
    flat = np.full(tpl.shape, 7, np.uint8)
    found, info = find_pyramid(scene, flat, "ncc")
    assert info.fell_back and "constant" in info.reason and found == find(scene, flat, "ncc")


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
    assert p == e and info.fell_back


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
