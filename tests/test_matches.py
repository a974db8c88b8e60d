"""find and find_many against known truth and independent oracles.

- planted targets: copies of a patch pasted at known positions into real
  photographs and synthetic images; the positions are the truth;
- ``skimage.feature.peak_local_max`` on the engine's score map, and a naive
  greedy IoU loop over its peaks (``greedy``, below);
- ``samples/truth.json``: the 24 coins;
- sub-pixel: photographs shifted by known fractional offsets (Fourier shift and
  Lanczos resampling), the offsets are the truth;
- find_many against separate find calls.

Where ``peak_local_max`` and ``find`` differ by design: peak_local_max keeps
pixels strictly above ``threshold_abs`` (find: at or past the threshold, as a
user who asks for score >= 0.8 means), and its ``min_distance`` suppression is
a Chebyshev distance between peak pixels, the same for every template size,
while find suppresses by the overlap (IoU) of the matched windows, which scales
with the template and is what "the same object twice" means. So the tests
compare candidate sets with suppression off (``max_overlap=1``), and the
suppressed result with a greedy IoU loop over peak_local_max's peaks.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import skimage.feature
from scipy import ndimage
from skimage.color import rgb2gray

from matcher import LOWER_IS_BETTER, METHODS, MatcherError, TemplateTooLargeError, load_image, match_template
from matcher.search.find import Match, find, find_many
from matcher.search.tiled import find_tiled

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NORMED_ON_PHOTOS = ("ncc", "ccorr_normed", "ssd_normed", "ssd")


# ---------------------------------------------------------------------------
# helpers and oracles
# ---------------------------------------------------------------------------


def gray(rgb):
    return np.round(rgb2gray(rgb) * 255).astype(np.uint8)


CAMERA = skimage.data.camera()
ASTRONAUT = gray(skimage.data.astronaut())


def plant(background, patch, corners):
    """Paste ``patch`` with its top-left at each (x, y)."""
    image = background.copy()
    h, w = patch.shape[:2]
    for x, y in corners:
        image[y : y + h, x : x + w] = patch
    return image


def box_iou(a, b):
    """IoU of (x, y, w, h) boxes from interval overlaps (the same formula is checked
    against pixel counting in tests/test_peaks.py)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def greedy(peaks, scores, box, max_overlap, limit=None):
    """Textbook greedy NMS over (y, x) peaks: best first, drop IoU > max_overlap."""
    h, w = box
    kept = []
    for y, x in sorted(peaks, key=lambda p: (-scores[p], p)):
        if all(box_iou((x, y, w, h), (kx, ky, w, h)) <= max_overlap for ky, kx in kept):
            kept.append((y, x))
            if len(kept) == limit:
                break
    return kept


def better_first(method, matches):
    s = [m.score for m in matches]
    return all(a <= b for a, b in zip(s, s[1:])) if method in LOWER_IS_BETTER else all(a >= b for a, b in zip(s, s[1:]))


def assert_separated(matches, max_overlap):
    for i, a in enumerate(matches):
        for b in matches[:i]:
            assert box_iou(a.box, b.box) <= max_overlap + 1e-12, (a, b)


def synthetic_scene():
    """A zero-mean textured patch on a near-zero background, planted 7 times.

    On a zero-mean background every one of the six scores peaks at the planted
    copies: a window partly on a copy and partly on the background (or on a
    touching copy in the same row: a cyclic shift of the patch) has at most the
    patch's energy, with equality only at the copy (Cauchy-Schwarz).
    """
    rng = np.random.default_rng(11)
    patch = ASTRONAUT[200:224, 230:250].astype(float)  # 24 x 20 (h x w), textured
    patch -= patch.mean()
    background = rng.normal(0, 0.5, (130, 170))
    corners = [(0, 0), (30, 50), (50, 50), (70, 50),  # a corner, and three touching in a row
               (150, 106), (110, 10), (120, 80)]  # the opposite corner and two more
    return plant(background, patch, corners), patch, corners


# ---------------------------------------------------------------------------
# planted targets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_all_planted_targets_in_a_synthetic_image(method):
    image, patch, corners = synthetic_scene()
    found = find(image, patch, method, max_matches=len(corners))
    assert sorted((m.x, m.y) for m in found) == sorted(corners)
    assert better_first(method, found)
    assert_separated(found, 0.3)
    assert all((m.width, m.height, m.label, m.method) == (20, 24, None, method) for m in found)
    # a threshold between the copies' score and the rest finds exactly them
    energy = float((patch**2).sum())
    threshold = {"ssd": 0.01 * energy, "ssd_normed": 0.01, "ccorr": 0.9 * energy, "ccoeff": 0.9 * energy,
                 "ccorr_normed": 0.9, "ncc": 0.9}[method]
    found = find(image, patch, method, threshold=threshold, max_matches=None)
    assert sorted((m.x, m.y) for m in found) == sorted(corners)


@pytest.mark.parametrize("method", NORMED_ON_PHOTOS)
def test_planted_targets_in_a_photograph(method):
    # ccorr and ccoeff are left out: on a photograph their maxima follow brightness
    # and contrast, not the template (which is why the normalised scores exist)
    patch = ASTRONAUT[180:220, 170:202]  # 40 x 32, the astronaut's face
    corners = [(0, 100), (300, 200), (332, 200), (300, 240), (480, 472), (120, 0)]  # edges, a touching cluster
    image = plant(CAMERA, patch, corners)
    found = find(image, patch, method, max_matches=None, threshold={"ncc": 0.95, "ccorr_normed": 0.9999,
                                                                     "ssd_normed": 1e-4, "ssd": 0.5}[method],
                 precision="exact")
    assert sorted((m.x, m.y) for m in found) == sorted(corners)
    assert better_first(method, found)
    top = find(image, patch, method, max_matches=len(corners))
    assert sorted((m.x, m.y) for m in top) == sorted(corners)


def test_colour_targets():
    chelsea = skimage.data.chelsea()  # 300 x 451 x 3
    patch = skimage.data.coffee()[150:180, 250:290]
    corners = [(10, 10), (50, 10), (400, 260), (200, 120)]
    image = plant(chelsea, patch, corners)
    found = find(image, patch, "ncc", threshold=0.99, max_matches=None)
    assert sorted((m.x, m.y) for m in found) == sorted(corners)
    assert all(m.score == pytest.approx(1.0, abs=1e-6) for m in found)


def test_best_window_and_ties():
    image, patch, corners = synthetic_scene()
    scores = match_template(image, patch, "ssd")
    (m,) = find(image, patch, "ssd")
    assert (m.y, m.x) == np.unravel_index(scores.argmin(), scores.shape)
    # max_matches=k is a prefix of max_matches=None (early stopping changes nothing)
    everything = find(image, patch, "ncc", max_matches=None)
    for k in (1, 3, 7, 20):
        assert find(image, patch, "ncc", max_matches=k) == everything[:k]
    # equal scores: row-major order (a constant image: one plateau, the first window)
    (m,) = find(np.full((8, 9), 3.0), np.full((2, 2), 3.0), "ssd")
    assert (m.x, m.y, m.score) == (0, 0, 0.0)


def test_thresholds_admitting_everything_or_nothing():
    image = CAMERA[100:260, 200:400]
    template = CAMERA[150:180, 260:300]
    scores = match_template(image, template, "ncc")
    peaks = set(zip(*np.nonzero(scores == ndimage.maximum_filter(scores, 3, mode="nearest"))))
    everything = find(image, template, "ncc", threshold=-1.0, max_matches=None, max_overlap=1.0)
    assert {(m.y, m.x) for m in everything} == peaks  # every local peak, no plateau on a photograph
    assert find(image, template, "ncc", threshold=None, max_matches=None, max_overlap=1.0) == everything
    assert find(image, template, "ncc", threshold=float(scores.max()), max_overlap=1.0) == everything[:1]
    # a template from another photograph: nothing reaches 0.9, or just above its best score
    stranger = ASTRONAUT[180:210, 170:210]
    best = float(match_template(image, stranger, "ncc").max())
    assert best < 0.9
    assert find(image, stranger, "ncc", threshold=0.9, max_matches=None) == []
    assert find(image, stranger, "ncc", threshold=best + 1e-6) == []
    assert len(find(image, stranger, "ncc", threshold=best - 1e-6)) == 1


def test_ssd_threshold_is_an_upper_bound():
    image, patch, corners = synthetic_scene()
    scores = match_template(image, patch, "ssd")
    for threshold in (0.5 * float(np.median(scores)), float(np.median(scores)), float(scores.max())):
        found = find(image, patch, "ssd", threshold=threshold, max_matches=None, max_overlap=1.0)
        assert found and all(m.score <= threshold for m in found)
        assert better_first("ssd", found)
        # every local minimum at or below the threshold, and nothing else
        minima = (scores == ndimage.minimum_filter(scores, 3, mode="nearest")) & (scores <= threshold)
        assert {(m.y, m.x) for m in found} == set(zip(*np.nonzero(minima)))
    exact = find(image, patch, "ssd_normed", threshold=0.0, max_matches=None, precision="exact")
    assert exact and all(m.score == 0.0 and (m.x, m.y) in corners for m in exact)


# ---------------------------------------------------------------------------
# peak_local_max and greedy IoU suppression
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ncc", "ssd", "ccorr_normed"])
def test_agrees_with_peak_local_max(method):
    image = ASTRONAUT[::2, ::2]  # 256 x 256
    template = ASTRONAUT[60:92, 300:340][::2, ::2]
    scores = match_template(image, template, method)
    good = -scores if method in LOWER_IS_BETTER else scores
    level = float(np.quantile(good, 0.9))
    threshold = -level if method in LOWER_IS_BETTER else level
    ref = skimage.feature.peak_local_max(good, min_distance=1, threshold_abs=level, exclude_border=False)
    ref = {tuple(p) for p in ref.tolist()}
    assert len(ref) > 20
    candidates = find(image, template, method, threshold=threshold, max_matches=None, max_overlap=1.0)
    assert {(m.y, m.x) for m in candidates} == ref
    for max_overlap in (0.0, 0.3, 0.7):
        found = find(image, template, method, threshold=threshold, max_matches=None, max_overlap=max_overlap)
        expected = greedy(ref, {p: good[p] for p in ref}, template.shape, max_overlap)
        assert [(m.y, m.x) for m in found] == expected
        assert_separated(found, max_overlap)


def test_counts_the_coins():
    truth = json.loads((SAMPLES / "truth.json").read_text())
    coins = next(e for e in truth if e["image"] == "coins.png")["matches"]
    image = load_image(SAMPLES / "coins.png").pixels
    coin = load_image(SAMPLES / "coins_coin.png").pixels
    for threshold in (0.3, 0.45, 0.55):  # the coins score 0.58 to 1, the next peak 0.11
        found = find(image, coin, "ncc", threshold=threshold, max_matches=None)
        assert len(found) == 24
        matched = set()
        for m in found:  # each match is one coin, each coin matched once
            near = [i for i, c in enumerate(coins) if abs(c["x"] - m.x) <= 3 and abs(c["y"] - m.y) <= 3]
            assert len(near) == 1, m
            matched.add(near[0])
        assert len(matched) == 24
        assert found[0].box == (270, 233, 62, 62)


# ---------------------------------------------------------------------------
# sub-pixel
# ---------------------------------------------------------------------------


def _min_eigenvalue(patch):
    """Shi-Tomasi: smallest eigenvalue of the gradient structure tensor (mean over the patch)."""
    gy, gx = np.gradient(patch)
    tensor = [[(gx * gx).mean(), (gx * gy).mean()], [(gx * gy).mean(), (gy * gy).mean()]]
    return float(np.linalg.eigvalsh(tensor)[0])


def _shifted(image, dy, dx, how):
    if how == "fourier":
        return np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(image), (dy, dx))).real
    H, W = image.shape
    return cv2.warpAffine(image, np.float64([[1, 0, dx], [0, 1, dy]]), (W, H),
                          flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)


def _parabola_per_axis(scores, y, x):
    """The alternative refinement, one parabola per axis: the baseline the 2-D fit must beat."""
    out = []
    for a, b, c in ((scores[y - 1, x], scores[y, x], scores[y + 1, x]), (scores[y, x - 1], scores[y, x], scores[y, x + 1])):
        d = a - 2 * b + c
        out.append(0.0 if d >= 0 else float(np.clip((a - c) / (2 * d), -0.5, 0.5)))
    return out


def test_subpixel_accuracy_on_shifted_photographs():
    """Mean error <= 0.1 px, max <= 0.25 px (Euclidean) for ncc over 24 random shifts.

    Templates are 48 x 48 crops where the image is well localised in both axes
    (Shi-Tomasi minimum eigenvalue >= 100): a template on a straight edge or a
    flat area has no defined position along it, whatever the refinement.
    coffee is not used: its fine texture is noisy and aliased, so after a
    fractional shift the peak drops to ncc ~0.9 and the integer peak itself can
    be a pixel off.
    """
    images = [CAMERA, ASTRONAUT, skimage.data.coins(), gray(skimage.data.chelsea())]
    images = [im.astype(float) for im in images]
    rng = np.random.default_rng(2024)
    t, errors, baseline = 48, [], []
    for k in range(24):
        image = images[k % 4]
        H, W = image.shape
        while True:
            y0, x0 = int(rng.integers(16, H - t - 16)), int(rng.integers(16, W - t - 16))
            template = image[y0 : y0 + t, x0 : x0 + t]
            if _min_eigenvalue(template) >= 100:
                break
        dy, dx = rng.uniform(-1, 1, 2)
        shifted = _shifted(image, dy, dx, ("fourier", "lanczos")[(k // 4) % 2])
        region = (x0 - 8, y0 - 8, t + 16, t + 16)
        (fine,) = find(shifted, template, "ncc", subpixel=True, region=region)
        (coarse,) = find(shifted, template, "ncc", region=region)
        assert isinstance(fine.x, float) and isinstance(fine.y, float)
        assert abs(fine.x - coarse.x) <= 0.5 and abs(fine.y - coarse.y) <= 0.5
        assert fine.score == coarse.score
        errors.append(np.hypot(fine.x - (x0 + dx), fine.y - (y0 + dy)))
        scores = match_template(shifted[y0 - 8 : y0 + t + 8, x0 - 8 : x0 + t + 8], template, "ncc")
        oy, ox = _parabola_per_axis(scores, coarse.y - y0 + 8, coarse.x - x0 + 8)
        baseline.append(np.hypot(coarse.x + ox - (x0 + dx), coarse.y + oy - (y0 + dy)))
    errors = np.array(errors)
    assert errors.mean() <= 0.1 and errors.max() <= 0.25, (errors.mean(), errors.max())
    assert errors.mean() < np.mean(baseline)  # the 2-D fit beats per-axis parabolas


def test_subpixel_integer_shifts_and_borders():
    image, patch, corners = synthetic_scene()
    found = find(image, patch, "ncc", max_matches=len(corners), subpixel=True)
    # exact integer copies: every refined position within 0.05 px of the copy
    got = sorted((m.x, m.y) for m in found)
    assert np.allclose(got, sorted(corners), atol=0.05)
    # peaks on the score map's border stay integer along that axis
    by_corner = {(round(m.x), round(m.y)): m for m in found}
    assert by_corner[0, 0].x == 0.0 and by_corner[0, 0].y == 0.0
    assert by_corner[150, 106].x == 150.0 and by_corner[150, 106].y == 106.0
    assert by_corner[110, 10].y == pytest.approx(10, abs=0.05)


# ---------------------------------------------------------------------------
# regions
# ---------------------------------------------------------------------------


def test_region_results_are_in_full_image_coordinates():
    patch = ASTRONAUT[180:220, 170:202]
    corners = [(40, 60), (300, 200), (420, 30)]
    image = plant(CAMERA, patch, corners)
    everywhere = find(image, patch, "ncc", threshold=0.95, max_matches=None)
    for x, y in corners:
        region = (x - 13, y - 7, 32 + 30, 40 + 21)
        (m,) = find(image, patch, "ncc", threshold=0.95, region=region)
        full = next(e for e in everywhere if (e.x, e.y) == (x, y))
        assert (m.x, m.y, m.width, m.height) == (x, y, 32, 40)
        assert m.score == pytest.approx(full.score, abs=1e-6)
        sub = find(image, patch, "ncc", region=region, subpixel=True)[0]
        assert abs(sub.x - x) <= 0.5 and abs(sub.y - y) <= 0.5
    # a region cutting one row or column off a target cannot return it; every window lies inside
    for region in ((301, 190, 50, 60), (290, 201, 50, 60), (290, 190, 41, 60), (290, 190, 50, 49)):
        x, y, w, h = region
        inside = find(image, patch, "ncc", max_matches=None, max_overlap=1.0, region=region)
        assert inside and all((m.x, m.y) != (300, 200) for m in inside)
        assert all(x <= m.x and m.x + m.width <= x + w and y <= m.y and m.y + m.height <= y + h for m in inside)
    # a region of exactly the template's size has one window
    (m,) = find(image, patch, "ncc", region=(300, 200, 32, 40))
    assert (m.x, m.y) == (300, 200)
    # a region without the target finds something else, inside the region
    (m,) = find(image, patch, "ncc", region=(100, 300, 200, 150))
    assert 100 <= m.x <= 300 - 32 and 300 <= m.y <= 450 - 40 and m.score < 0.95
    # the whole image as a region: the same as no region
    assert find(image, patch, "ncc", max_matches=5, region=(0, 0, 512, 512)) == find(image, patch, "ncc", max_matches=5)


def test_region_on_a_one_dimensional_image():
    signal = np.zeros(30)
    signal[[4, 20]] = 5.0
    (m,) = find(signal, [0, 5, 0], "ssd", region=(10, 0, 15, 1))
    assert (m.x, m.y, m.width, m.height, m.score) == (19, 0, 3, 1, 0.0)


# ---------------------------------------------------------------------------
# find_many
# ---------------------------------------------------------------------------


def _two_template_scene():
    face = ASTRONAUT[180:220, 170:202]  # 40 x 32
    rocket = ASTRONAUT[300:330, 400:450]  # 30 x 50
    image = plant(plant(CAMERA, face, [(40, 60), (300, 300)]), rocket, [(200, 40), (350, 450)])
    return image, face, rocket


def test_find_many_equals_separate_finds_without_interaction():
    image, face, rocket = _two_template_scene()
    together = find_many(image, {"face": face, "rocket": rocket}, threshold=0.95, max_matches=None)
    alone = [(label, m) for label, t in (("face", face), ("rocket", rocket))
             for m in find(image, t, threshold=0.95, max_matches=None)]
    assert sorted((m.label, m.x, m.y) for m in together) == sorted((label, m.x, m.y) for label, m in alone)
    assert len(together) == 4 and better_first("ncc", together)
    for m in together:
        twin = next(a for label, a in alone if (label, a.x, a.y) == (m.label, m.x, m.y))
        assert m.score == twin.score and (m.width, m.height) == (twin.width, twin.height)
    # a list: the labels are indices
    listed = find_many(image, [face, rocket], threshold=0.95, max_matches=None)
    assert [(m.label, m.x, m.y) for m in listed] == [({"face": 0, "rocket": 1}[m.label], m.x, m.y) for m in together]
    # max_matches counts over all templates; default 1: the single best
    assert len(find_many(image, [face, rocket])) == 1
    assert len(find_many(image, [face, rocket], threshold=0.95, max_matches=3)) == 3


def test_find_many_suppresses_across_templates():
    patch = ASTRONAUT[180:220, 170:202].astype(float)  # 40 x 32
    inner = patch[4:36, 4:28].copy()  # 32 x 24: IoU with the whole is 768/1280 = 0.6
    inner[0, 0] += 40  # slightly worse (0.992) than the whole patch at its position
    image = plant(CAMERA.astype(float), patch, [(100, 100)])
    found = find_many(image, {"whole": patch, "inner": inner}, threshold=0.95, max_matches=None)
    assert [(m.label, m.x, m.y) for m in found] == [("whole", 100, 100)]
    both = find_many(image, {"whole": patch, "inner": inner}, threshold=0.95, max_matches=None, max_overlap=0.6)
    assert [(m.label, m.x, m.y) for m in both] == [("whole", 100, 100), ("inner", 104, 104)]
    # each template alone still finds its own
    assert [(m.x, m.y) for m in find(image, inner, threshold=0.95, max_matches=None)] == [(104, 104)]
    # the better one wins whichever comes first
    found = find_many(image, {"inner": inner, "whole": patch}, threshold=0.95, max_matches=None)
    assert [(m.label, m.x, m.y) for m in found] == [("whole", 100, 100)]


@pytest.mark.parametrize("max_overlap", [0.0, 0.3, 0.6])
def test_find_many_agrees_with_a_naive_cross_template_loop(max_overlap):
    image = CAMERA[::2, ::2]  # 256 x 256
    templates = {"a": CAMERA[300:340, 100:132][::2, ::2], "b": ASTRONAUT[100:130, 200:260][::2, ::2],
                 "c": CAMERA[40:52, 400:420]}
    level = 0.3
    pool = []  # (score, template order, y, x, label): peak_local_max's peaks of every map
    for order, (label, t) in enumerate(templates.items()):
        scores = match_template(image, t, "ncc", precision="exact")  # near ties ordered as find_many's exact scores
        for y, x in skimage.feature.peak_local_max(scores, min_distance=1, threshold_abs=level,
                                                   exclude_border=False).tolist():
            pool.append((-scores[y, x], order, y, x, label))
    kept = []
    for _, _, y, x, label in sorted(pool):  # best first; ties: template order, then row-major
        h, w = templates[label].shape
        if all(box_iou((x, y, w, h), k) <= max_overlap for _, k in kept):
            kept.append((label, (x, y, w, h)))
    found = find_many(image, templates, threshold=level, max_matches=None, max_overlap=max_overlap,
                      precision="exact")
    assert [(m.label, m.box) for m in found] == kept
    assert len({m.label for m in found}) == 3 and len(found) > 10


def test_find_many_masks_and_ssd():
    image, face, rocket = _two_template_scene()
    mask = np.zeros(face.shape, bool)
    mask[5:35, 4:28] = True
    masked = find_many(image, {"face": face, "rocket": rocket}, masks={"face": mask}, threshold=0.95, max_matches=None)
    expect = find(image, face, mask=mask, threshold=0.95, max_matches=None)
    assert [(m.x, m.y, m.score) for m in masked if m.label == "face"] == [(m.x, m.y, m.score) for m in expect]
    listed = find_many(image, [face, rocket], masks=[mask, None], threshold=0.95, max_matches=None)
    assert [(m.x, m.y, m.score) for m in listed] == [(m.x, m.y, m.score) for m in masked]
    # ssd across templates of one size is allowed (and exact copies score 0)
    twin = ASTRONAUT[100:140, 100:132]
    found = find_many(plant(image, twin, [(10, 400)]), {"face": face, "twin": twin}, "ssd", threshold=0.5,
                      max_matches=None)
    assert sorted((m.label, m.x, m.y) for m in found) == [("face", 40, 60), ("face", 300, 300), ("twin", 10, 400)]


# ---------------------------------------------------------------------------
# pass-through, output types
# ---------------------------------------------------------------------------


def test_mask_and_precision_pass_through():
    image = skimage.data.coffee()
    spoon = load_image(SAMPLES / "coffee_spoon.png")
    for precision in ("fast", "exact"):
        (m,) = find(image, spoon.pixels, "ncc", mask=spoon.mask, precision=precision)
        scores = match_template(image, spoon.pixels, "ncc", mask=spoon.mask, precision=precision)
        assert (m.x, m.y) == (322, 64)
        assert m.score == scores[64, 322]


def test_to_dict_is_json_ready():
    image, patch, corners = synthetic_scene()
    for subpixel in (False, True):
        for m in find(image, patch, np.int64(5), max_matches=3, subpixel=subpixel):
            d = m.to_dict()
            assert json.loads(json.dumps(d)) == d
            assert set(d) == {"label", "x", "y", "width", "height", "score", "center", "method", "angle", "scale",
                              "corners"}
            assert (d["angle"], d["scale"]) == (0.0, 1.0)
            assert d["corners"] == [[m.x, m.y], [m.x + 19, m.y], [m.x + 19, m.y + 23], [m.x, m.y + 23]]
            assert type(d["x"]) is (float if subpixel else int) and type(d["score"]) is float
            assert type(d["width"]) is int and d["method"] == "ncc"
            assert d["center"] == {"x": m.x + 9.5, "y": m.y + 11.5}
    m = find_many(image, {"p": patch}, max_matches=1)[0]
    assert json.loads(json.dumps(m.to_dict()))["label"] == "p"
    with pytest.raises(AttributeError):
        m.x = 3  # frozen
    assert Match(1, 2, 3, 4, 0.5).center == (2.0, 3.5)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

IMAGE = np.arange(100, dtype=float).reshape(10, 10) % 7
TEMPLATE = IMAGE[2:5, 3:7]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"max_matches": 0}, MatcherError, r"max_matches must be a positive integer or None, got 0"),
    ({"max_matches": -2}, MatcherError, r"max_matches must be a positive integer or None, got -2"),
    ({"max_matches": True}, TypeError, r"max_matches must be a positive integer or None, got True \(bool\)"),
    ({"max_matches": 2.0}, TypeError, r"max_matches must be a positive integer or None, got 2.0 \(float\)"),
    ({"max_overlap": 1.5}, MatcherError, r"max_overlap must be a number in \[0, 1\].*got 1.5"),
    ({"max_overlap": -0.1}, MatcherError, r"max_overlap must be a number in \[0, 1\]"),
    ({"max_overlap": float("nan")}, MatcherError, r"max_overlap must be a number in \[0, 1\].*nan"),
    ({"max_overlap": "0.3"}, TypeError, r"max_overlap must be a number in \[0, 1\], got str"),
    ({"threshold": 1.5}, MatcherError, r"threshold for method 'ncc' \(a lower bound.*must be a number in \[-1, 1\], got 1.5"),
    ({"threshold": float("nan")}, MatcherError, r"threshold for method 'ncc'.*got nan"),
    ({"threshold": -0.1, "method": "ssd"}, MatcherError, r"threshold for method 'ssd' \(an upper bound on the score\) must be a finite number >= 0, got -0.1"),
    ({"threshold": float("inf"), "method": "ssd"}, MatcherError, r"'ssd'.*finite number >= 0, got inf"),
    ({"threshold": 1.01, "method": "ssd_normed"}, MatcherError, r"'ssd_normed'.*in \[0, 1\], got 1.01"),
    ({"threshold": -1.5, "method": "ccorr_normed"}, MatcherError, r"'ccorr_normed'.*in \[-1, 1\]"),
    ({"threshold": float("nan"), "method": "ccorr"}, MatcherError, r"'ccorr'.*must be a finite number, got nan"),
    ({"threshold": "0.5"}, TypeError, r"threshold must be a real number or None, got str"),
    ({"threshold": True}, TypeError, r"threshold must be a real number or None, got bool"),
    ({"subpixel": 1}, TypeError, r"subpixel must be True or False, got 1"),
    ({"region": (0, 0, 5)}, MatcherError, r"region must be a tuple \(x, y, width, height\) of 4 integers, got 3 values"),
    ({"region": (0, 0, 5.0, 5)}, TypeError, r"region must be a tuple \(x, y, width, height\) of 4 integers"),
    ({"region": "0,0,5,5"}, TypeError, r"region must be a tuple"),
    ({"region": 5}, TypeError, r"region must be a tuple"),
    ({"region": (0, 0, 0, 5)}, MatcherError, r"region width and height must be positive"),
    ({"region": (8, 0, 5, 5)}, MatcherError,
     r"region must lie inside the image: region \(x=8, y=0, width=5, height=5\), image 10x10, template 4x3 \(width x height\)"),
    ({"region": (-1, 0, 5, 5)}, MatcherError, r"region must lie inside the image"),
    ({"region": (0, 0, 3, 9)}, TemplateTooLargeError,
     r"region is smaller than the template: region \(x=0, y=0, width=3, height=9\), image 10x10, template 4x3"),
    ({"method": "sad"}, MatcherError, r"method must be one of"),
    ({"precision": "slow"}, MatcherError, r"precision must be one of \('fast', 'exact'\)"),
])
def test_bad_arguments(kwargs, error, message):
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "ncc")
    with pytest.raises(error, match=message):
        find(IMAGE, TEMPLATE, method, **kwargs)


def test_bad_find_many_arguments():
    with pytest.raises(TypeError, match=r"templates must be a dict \{label: template\} or a list of templates, got ndarray"):
        find_many(IMAGE, np.stack([TEMPLATE, TEMPLATE]))
    with pytest.raises(MatcherError, match="templates must contain at least one template"):
        find_many(IMAGE, {})
    with pytest.raises(TypeError, match=r"template labels \(the dict's keys\) must be strings, got 3"):
        find_many(IMAGE, {3: TEMPLATE})
    with pytest.raises(MatcherError, match=r"masks has labels that are not template labels: \['b'\]"):
        find_many(IMAGE, {"a": TEMPLATE}, masks={"b": np.ones((3, 4))})
    with pytest.raises(TypeError, match=r"masks must be a dict \{label: mask\} \(or None\) when templates is a dict"):
        find_many(IMAGE, {"a": TEMPLATE}, masks=[None])
    with pytest.raises(MatcherError, match=r"masks must have one entry per template \(2\), got 1"):
        find_many(IMAGE, [TEMPLATE, TEMPLATE], masks=[None])
    with pytest.raises(MatcherError, match=r"method 'ssd' scores grow with the template's area.*4x3, 2x2"):
        find_many(IMAGE, [TEMPLATE, IMAGE[:2, :2]], "ssd")
    with pytest.raises(TemplateTooLargeError, match=r"region is smaller than the template.*templates 4x3, 6x2"):
        find_many(IMAGE, [TEMPLATE, IMAGE[:2, :6]], region=(0, 0, 5, 5))
    # engine errors come through unchanged
    with pytest.raises(TemplateTooLargeError, match="larger than image"):
        find(IMAGE, np.zeros((11, 2)))


# --- the threshold applies to the reported scores (issue 11, contract item 3) --------------------------------


def _dc_scene(seed=0, offset=10000.0):
    """A smooth textured float image on a large DC offset, and an exact copy of one of its windows."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((300, 300))
    smooth = np.cumsum(np.cumsum(noise, axis=0), axis=1) / 50.0
    image = offset + smooth
    return image, image[120:152, 90:130].copy()


@pytest.mark.parametrize("method, threshold", [("ssd", 0.0), ("ssd_normed", 0.0), ("ncc", 1.0), ("ccorr_normed", 1.0)])
@pytest.mark.parametrize("precision", ["fast", "exact"])
def test_threshold_at_the_perfect_score_finds_an_exact_copy(method, threshold, precision):
    image, tpl = _dc_scene()
    (best,) = find(image, tpl, method, precision=precision)
    assert (best.x, best.y) == (90, 120)
    assert best.score == threshold  # scored by definition: exactly perfect
    found = find(image, tpl, method, threshold=threshold, precision=precision)
    assert [(m.x, m.y, m.score) for m in found] == [(90, 120, threshold)]


@pytest.mark.parametrize("method", ["ncc", "ssd", "ccorr_normed", "ssd_normed", "ccoeff"])
@pytest.mark.parametrize("precision", ["fast", "exact"])
def test_reported_scores_never_on_the_wrong_side_of_the_threshold(method, precision):
    """With the threshold set to each reported score in turn, that match is found again and
    every match returned passes it: the threshold and the report use the same numbers."""
    image, _ = _dc_scene(seed=3)
    tpl = image[40:56, 200:224] + np.random.default_rng(4).normal(0, 0.05, (16, 24))
    everything = find(image, tpl, method, max_matches=None, max_overlap=1.0, precision=precision)
    lower = method in LOWER_IS_BETTER
    for m in everything[:: max(1, len(everything) // 7)][:8]:
        found = find(image, tpl, method, threshold=m.score, max_matches=None, max_overlap=1.0, precision=precision)
        assert all((f.score <= m.score) if lower else (f.score >= m.score) for f in found)
        assert (m.x, m.y) in {(f.x, f.y) for f in found}, m


def test_threshold_agrees_across_strategies():
    """Exhaustive, tiled and pyramid searches apply the threshold to the same reported score."""
    image, tpl = _dc_scene(seed=5)
    for method, threshold in [("ncc", 1.0), ("ssd_normed", 0.0)]:
        want = [(m.x, m.y, m.score) for m in find(image, tpl, method, threshold=threshold)]
        tiled = [(m.x, m.y, m.score) for m in find_tiled(image, tpl, method, threshold=threshold, tile=37)]
        pyramid = [(m.x, m.y, m.score) for m in find(image, tpl, method, threshold=threshold, pyramid=True)]
        assert want == tiled == pyramid == [(90, 120, threshold)], method


def test_find_with_scores_returns_the_map_it_searched(monkeypatch):
    """The same matches as find, and the searched area's map (the region's) as match_template gives it,
    scored once; None where no whole map was computed (the pyramid)."""
    import matcher.search.exhaustive as exhaustive
    from matcher import find_with_scores

    image, patch, corners = synthetic_scene()
    calls = []
    real = exhaustive.match_templates
    monkeypatch.setattr(exhaustive, "match_templates", lambda *a, **k: calls.append(1) or real(*a, **k))
    for kwargs in ({}, {"region": (5, 3, 90, 70), "max_matches": 3}, {"method": "ssd", "threshold": 1.0}):
        calls.clear()
        found, scores = find_with_scores(image, patch, **kwargs)
        assert len(calls) == 1
        assert found == find(image, patch, **kwargs)
        x, y, w, h = kwargs.get("region", (0, 0, image.shape[1], image.shape[0]))
        want = match_template(image[y:y + h, x:x + w], patch, kwargs.get("method", "ncc"))
        np.testing.assert_array_equal(scores, want)
    big = np.tile(image, (3, 3))
    found, scores = find_with_scores(big, big[40:80, 50:90], pyramid=True)
    assert scores is None and found == find(big, big[40:80, 50:90], pyramid=True)


def test_loaded_images_bring_their_alpha_as_the_mask(tmp_path):
    """One rule for the library, the CLI and the service: a LoadedImage template's alpha channel is its
    mask (unless fully opaque, which masks nothing), and an explicit mask wins."""
    from matcher.image import LoadedImage

    image = load_image(SAMPLES / "coffee.png")
    spoon = load_image(SAMPLES / "coffee_spoon.png")
    assert spoon.mask is not None and spoon.matching_mask is spoon.mask
    want = find(image.pixels, spoon.pixels, mask=spoon.mask, max_matches=2)
    assert find(image, spoon, max_matches=2) == want
    from matcher import find_with_scores

    assert find_with_scores(image, spoon)[0] == want[:1]
    plain = find(image.pixels, spoon.pixels, max_matches=2)
    assert find(image, spoon, mask=np.ones(spoon.pixels.shape[:2], bool), max_matches=2) == plain
    opaque = LoadedImage(spoon.pixels, np.full(spoon.pixels.shape[:2], 255, np.uint8), "png")
    assert opaque.matching_mask is None and find(image, opaque, max_matches=2) == plain
    many = find_many(image, {"spoon": spoon}, max_matches=1)
    assert [(m.x, m.y, m.score) for m in many] == [(m.x, m.y, m.score) for m in want[:1]]
