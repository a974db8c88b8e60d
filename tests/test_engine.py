"""match_template against its oracles.

- the float64 reference (``match_template_reference``), for every method x
  mask x gray/colour x precision x algorithm, on seeded random images and on
  real photographs;
- ``cv2.matchTemplate`` and ``skimage.feature.match_template`` on shapes and
  dtypes where their outputs are defined;
- known truth: hard cases (constant templates, flat windows, DC offsets,
  integer extremes), properties (hypothesis) and hand-worked examples.

Tolerances: the precision contract of ``score_contract.py`` (1e-9 of the
reference map's range for "exact", 1e-4 for "fast", plus a few ulps).
"""

import functools
import re

import cv2
import numpy as np
import pytest
import skimage.data
import skimage.feature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import score_contract as contract
from matcher import LOWER_IS_BETTER, METHODS, match_template, match_template_reference
import matcher.scores.plan as plan
from matcher.scores.reference import window_scores
from score_contract import REL, check_contract, score_range

PRECISIONS = ("exact", "fast")
ALGORITHMS = ("direct", "fft", "auto")
MASK_KINDS = ("none", "bool", "float")

# Deterministic hypothesis runs (a CI failure reproduces locally), no deadline
# (a first call may pay for imports), no example database in the work tree.
HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def allowed_error(ref, precision, factor=1.0):
    return contract.allowed_error(ref, REL[precision], factor)


def assert_matches(got, ref, method, precision, *, factor=1.0, extra=0.0):
    """``got`` satisfies the contract and is within the precision's tolerance of ``ref``."""
    contract.assert_within(got, ref, method, REL[precision], factor=factor, extra=extra, what=precision)


def best_index(scores, method):
    i = scores.argmin() if method in LOWER_IS_BETTER else scores.argmax()
    return tuple(int(v) for v in np.unravel_index(i, scores.shape))


def make_mask(kind, shape, seed):
    """None, a bool mask (~70 % used) or float weights in [0, 1] with ~20 % zeros."""
    if kind == "none":
        return None
    rng = np.random.default_rng(seed)
    if kind == "bool":
        mask = rng.random(shape) < 0.7
        mask.flat[0] = True
        return mask
    weights = rng.random(shape)
    weights[rng.random(shape) < 0.2] = 0.0
    weights.flat[0] = 1.0
    return weights


def flat_windows(image, used):
    """(H', W') bool: windows constant over the used pixels (all channels), by min == max."""
    img = image if image.ndim == 3 else image[:, :, None]
    used = np.broadcast_to(used if used.ndim == 3 else used[:, :, None], used.shape[:2] + (img.shape[2],))
    v = sliding_window_view(img, used.shape[:2], axis=(0, 1))  # (H', W', C, h, w)
    u = np.moveaxis(used, 2, 0)
    lo = np.where(u, v, np.inf).min(axis=(3, 4))
    hi = np.where(u, v, -np.inf).max(axis=(3, 4))
    return (lo == hi).all(axis=2)


def window_std(image, used):
    """(H', W') standard deviation of each window over the used pixels (2-D image)."""
    v = sliding_window_view(image.astype(np.float64), used.shape)
    n = used.sum()
    mean = np.where(used, v, 0).sum(axis=(2, 3)) / n
    return np.sqrt((np.where(used, v - mean[..., None, None], 0) ** 2).sum(axis=(2, 3)) / n)


# ---------------------------------------------------------------------------
# cases, with their (cached) reference maps
# ---------------------------------------------------------------------------


def _random_case(colour, mask_kind):
    rng = np.random.default_rng(1000 + 10 * colour + MASK_KINDS.index(mask_kind))
    shape = (40, 50, 3) if colour else (40, 50)
    image = rng.normal(100.0, 30.0, shape)
    template = image[9:16, 13:22] + rng.normal(0.0, 3.0, (7, 9) + shape[2:])
    mask_shape = (7, 9, 3) if (colour and mask_kind == "float") else (7, 9)  # also a per-channel mask
    return image, template, make_mask(mask_kind, mask_shape, seed=int(rng.integers(1 << 30)))


PHOTOS = {
    # name: (crop of the skimage image, template's top-left corner)
    "camera": (lambda: skimage.data.camera()[150:270, 180:340], (37, 71)),
    "astronaut": (lambda: skimage.data.astronaut()[30:150, 140:300], (37, 71)),
    "coins": (lambda: skimage.data.coins()[60:180, 100:260], (37, 71)),
}
PHOTO_TEMPLATE = (15, 17)


def _photo_case(name, mask_kind):
    load, (y, x) = PHOTOS[name]
    image = load()
    h, w = PHOTO_TEMPLATE
    template = image[y : y + h, x : x + w].copy()
    return image, template, make_mask(mask_kind, (h, w), seed=len(name))


@functools.lru_cache(maxsize=None)
def case(kind, variant, mask_kind):
    return _random_case(variant == "colour", mask_kind) if kind == "random" else _photo_case(variant, mask_kind)


@functools.lru_cache(maxsize=None)
def reference(kind, variant, mask_kind, method):
    image, template, mask = case(kind, variant, mask_kind)
    return match_template_reference(image, template, method, mask=mask)


# ---------------------------------------------------------------------------
# engine == reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("colour", ["gray", "colour"])
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_random_images_match_reference(method, mask_kind, colour, precision, algorithm):
    image, template, mask = case("random", colour, mask_kind)
    got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
    assert_matches(got, reference("random", colour, mask_kind, method), method, precision)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_photos_match_reference(photo, method, mask_kind, precision, algorithm):
    image, template, mask = case("photo", photo, mask_kind)
    got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
    assert_matches(got, reference("photo", photo, mask_kind, method), method, precision)


# where the template was cut (unmasked or masked), these scores peak exactly there
PEAK_AT_CUT = ("ssd", "ssd_normed", "ncc", "ccorr_normed")


@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_fast_has_the_same_best_match_as_exact_on_photos(photo, method, mask_kind):
    image, template, mask = case("photo", photo, mask_kind)
    ref = reference("photo", photo, mask_kind, method)
    fast = match_template(image, template, method, mask=mask, precision="fast")
    exact = match_template(image, template, method, mask=mask, precision="exact")
    best_ref = best_index(ref, method)
    if method in PEAK_AT_CUT:
        assert best_ref == PHOTOS[photo][1]
    # the runner-up's margin decides whether "the same argmax" is well defined
    ordered = np.sort(ref.ravel())
    margin = ordered[1] - ordered[0] if method in LOWER_IS_BETTER else ordered[-1] - ordered[-2]
    if margin > 2 * allowed_error(ref, "fast"):
        assert best_index(fast, method) == best_index(exact, method) == best_ref
    else:  # a near tie: each choice must be as good as the best, within its tolerance
        for got, precision in ((exact, "exact"), (fast, "fast")):
            assert abs(ref[best_index(got, method)] - ref[best_ref]) <= 2 * allowed_error(ref, precision)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", METHODS)
def test_convolve_mode_matches_reference(method, precision):
    image, template, mask = case("random", "colour", "float")
    ref = match_template_reference(image, template, method, mask=mask, mode="convolve")
    for algorithm in ALGORITHMS:
        got = match_template(image, template, method, mask=mask, mode="convolve", precision=precision, algorithm=algorithm)
        assert_matches(got, ref, method, precision)


# ---------------------------------------------------------------------------
# parity with OpenCV and scikit-image
# ---------------------------------------------------------------------------


def _opencv_cases():
    rng = np.random.default_rng(77)
    camera = skimage.data.camera()[150:230, 180:290]
    row = rng.integers(0, 256, (1, 61)).astype(np.uint8)
    small = rng.integers(1, 256, (12, 14)).astype(np.uint8)  # no zero pixel: 1x1-template normed scores are defined
    return {
        "photo": (camera, camera[21:32, 40:53].copy()),
        "1xN": (row, row[:, 20:27].copy()),
        "1xN-1x1": (row[:, :30] // 2 + 1, row[:, 5:6] // 2 + 1),
        "template-is-image": (small, small.copy()),
        "template-is-image-noisy": (small, np.clip(small.astype(int) + rng.integers(-9, 10, small.shape), 0, 255).astype(np.uint8)),
        "1x1-template": (small, small[4:5, 7:8].copy()),
        "tall": (camera[:, :9].copy(), camera[30:45, 2:6].copy()),
    }


OPENCV_CASES = _opencv_cases()


def opencv_error(expected):
    """OpenCV computes in float32: 1e-4 of the range, and 1e-6 of the magnitude (for 1x1 outputs)."""
    return 1e-4 * score_range(expected) + 1e-6 * float(np.abs(expected).max())


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(OPENCV_CASES))
def test_parity_with_opencv(name, method, dtype, precision):
    image, template = (a.astype(dtype) for a in OPENCV_CASES[name])
    expected = cv2.matchTemplate(image, template, METHODS.index(method)).astype(np.float64)
    got = match_template(image, template, method, precision=precision)
    if method == "ncc" and template.size == 1:
        # Deviation: a 1x1 template is constant; OpenCV says 1.0 everywhere, we say 0.
        assert np.all(expected == 1.0)
        assert got.shape == expected.shape and np.all(got == 0.0)
        return
    assert_matches(got, expected, method, precision, extra=opencv_error(expected))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_parity_with_opencv_masked(algorithm, precision):
    image, template = OPENCV_CASES["photo"]
    image, template = image.astype(np.float32), template.astype(np.float32)
    mask = make_mask("float", template.shape, 4).astype(np.float32)
    for method in METHODS:
        expected = cv2.matchTemplate(image, template, METHODS.index(method), mask=mask).astype(np.float64)
        if method == "ssd_normed":
            expected = np.minimum(expected, 1.0)  # OpenCV's masked ssd_normed is not clipped (test_reference)
        got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
        if method == "ncc":
            # OpenCV's float32 ncc loses digits on low-contrast windows (std ~1.5 -> errors ~2e-4)
            defined = window_std(image, mask > 0) >= 4.0
            assert defined.mean() > 0.8
            got, expected = np.where(defined, got, 0.0), np.where(defined, expected, 0.0)
        assert_matches(got, expected, method, precision, extra=opencv_error(expected))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("source", ["camera", "coins", "random-with-flat-regions"])
def test_parity_with_skimage_ncc(source, precision):
    if source == "random-with-flat-regions":
        rng = np.random.default_rng(5)
        image = rng.normal(0, 1, (70, 90))
        image[10:40, 5:30] = 3.25
        image[45:70, 50:90] = 0.0
        template = image[30:41, 20:33].copy()  # overlaps a flat region, not flat itself
    else:
        load, _ = PHOTOS[source]
        image = load()[:90, :110]
        template = image[20:33, 40:51].copy()
    expected = skimage.feature.match_template(image.astype(np.float64), template.astype(np.float64), pad_input=False)
    got = match_template(image, template, "ncc", precision=precision)
    flat = flat_windows(image, np.ones(template.shape, bool))
    assert np.all(got[flat] == 0.0)
    if source == "random-with-flat-regions":
        assert flat.sum() > 100
    assert_matches(np.where(flat, 0.0, got), np.where(flat, 0.0, expected), "ncc", precision, extra=1e-9)


# ---------------------------------------------------------------------------
# hard cases
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
def test_constant_template_ncc_is_exactly_zero(mask_kind, precision, algorithm):
    rng = np.random.default_rng(8)
    image = rng.normal(10000.0, 1.0, (50, 60))
    template = np.full((12, 9), 10000.5)
    mask = make_mask(mask_kind, template.shape, 9)
    if mask is not None:
        template[mask == 0] = 3.0  # constant only where the mask is > 0
    got = match_template(image, template, "ncc", mask=mask, precision=precision, algorithm=algorithm)
    assert got.shape == (39, 52)
    assert np.all(got == 0.0)
    got = match_template(image, template, "ccoeff", mask=mask, precision=precision, algorithm=algorithm)
    assert_matches(got, np.zeros((39, 52)), "ccoeff", precision)


def _image_with_flat_regions(colour=False):
    rng = np.random.default_rng(12)
    shape = (70, 80, 3) if colour else (70, 80)
    image = rng.normal(128.0, 40.0, shape)
    image[5:30, 4:34] = 77.0  # flat
    image[40:70, 50:80] = 0.0  # flat and zero
    image[35:60, 2:25] = 10000.25  # flat on a DC offset
    return image


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("colour", ["gray", "colour"])
def test_flat_regions(colour, mask_kind, precision, algorithm):
    image = _image_with_flat_regions(colour == "colour")
    template = image[26:36, 28:37].copy()  # straddles flat and textured pixels
    mask = make_mask(mask_kind, template.shape[:2], 13)
    used = np.ones(template.shape[:2], bool) if mask is None else mask > 0
    flat = flat_windows(image, used)
    assert flat.sum() > 300
    for method in METHODS:
        ref = match_template_reference(image, template, method, mask=mask)
        got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
        assert_matches(got, ref, method, precision)
        if method == "ncc":
            assert np.all(got[flat] == 0.0), f"ncc on flat windows: {np.unique(got[flat])[:5]}"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_windows_flat_only_on_the_used_pixels_of_a_scattered_mask(precision, algorithm):
    """A checkerboard mask: windows at even offsets see only the constant pixels -> ncc exactly 0."""
    rng = np.random.default_rng(14)
    image = rng.normal(500.0, 50.0, (40, 44))
    yy, xx = np.mgrid[:40, :44]
    image[(yy + xx) % 2 == 0] = 123.5
    r, c = np.mgrid[:6, :7]
    mask = (r + c) % 2 == 0
    template = rng.normal(500.0, 50.0, (6, 7))
    flat = flat_windows(image, mask)
    assert flat.sum() > 500 and (~flat).sum() > 500
    for method in METHODS:
        ref = match_template_reference(image, template, method, mask=mask)
        got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
        assert_matches(got, ref, method, precision)
        if method == "ncc":
            assert np.all(got[flat] == 0.0)
    # float weights (0.3 on the checkerboard): the weighted mean of a constant need not round to it
    weights = np.where(mask, 0.3, 0.0)
    got = match_template(image, template, "ncc", mask=weights, precision=precision, algorithm=algorithm)
    assert np.all(got[flat] == 0.0)
    assert_matches(got, match_template_reference(image, template, "ncc", mask=weights), "ncc", precision)


def _template_equal_to_image_cases():
    rng = np.random.default_rng(21)
    return {
        "normal": rng.normal(0.0, 1.0, (8, 5)),
        "dc-offset-colour": 1e4 + rng.uniform(-1.0, 1.0, (7, 9, 3)),
        "high-dynamic-range": rng.choice([0.0, 1.0, -3.5, 1e6], (12, 10)),
        "uint16-full-range": rng.integers(0, 65536, (9, 9)).astype(np.uint16),
    }


TEMPLATE_IS_IMAGE = _template_equal_to_image_cases()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", sorted(TEMPLATE_IS_IMAGE))
def test_template_equal_to_image(name, precision, algorithm):
    """One window, a perfect match: ssd 0, ssd_normed 0, ncc 1, ccorr_normed 1 (the map's range is 0, so
    the tolerance is absolute: 1e-9 / 1e-4)."""
    image = TEMPLATE_IS_IMAGE[name]
    for method in METHODS:
        got = match_template(image, image, method, precision=precision, algorithm=algorithm)
        assert got.shape == (1, 1)
        ref = match_template_reference(image, image, method)
        assert_matches(got, ref, method, precision)
        if method in ("ssd", "ssd_normed"):
            assert ref[0, 0] == 0.0
        elif method in ("ncc", "ccorr_normed"):
            assert ref[0, 0] == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("mask_kind", ["bool", "float"])
def test_masked_match_next_to_bright_pixels_it_never_uses(mask_kind, precision, algorithm):
    """A bright column (1e6) that no used mask pixel ever covers must not cost accuracy elsewhere.

    The mask ignores the template's first column, so image column 0 (the bright one) is never
    under a used pixel: every score only involves values ~N(0, 10), and so does the map's range.
    """
    rng = np.random.default_rng(22)
    image = rng.normal(0.0, 10.0, (40, 50))
    image[:, 0] = 1e6
    template = image[10:16, 20:27].copy()
    mask = np.ones(template.shape, bool)
    mask[:, 0] = False
    if mask_kind == "float":
        mask = mask * rng.uniform(0.2, 1.0, template.shape)
    for method in METHODS:
        ref = match_template_reference(image, template, method, mask=mask)
        got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
        assert_matches(got, ref, method, precision)


def _dc_offset_image(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return (10000.0 + rng.uniform(-1.0, 1.0, shape)).astype(dtype)


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dc_offset(dtype, precision, algorithm):
    image = _dc_offset_image((90, 110), dtype, 15)
    y0, x0 = 41, 63
    template = image[y0 : y0 + 16, x0 : x0 + 16].copy()
    for mask_kind in ("none", "float"):
        mask = make_mask(mask_kind, template.shape, 16)
        for method in METHODS:
            ref = match_template_reference(image, template, method, mask=mask)
            got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
            assert_matches(got, ref, method, precision)
            if method in ("ssd", "ssd_normed", "ncc"):
                assert best_index(got, method) == (y0, x0), method


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ncc", "ssd"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_dc_offset_large_image(precision, method):
    """2048 x 2048 float64 at 10000 +- 1, a 32 x 32 template cut from it; the reference on 400 sampled windows."""
    image = _dc_offset_image((2048, 2048), np.float64, 17)
    y0, x0 = 1234, 567
    template = image[y0 : y0 + 32, x0 : x0 + 32].copy()
    got = match_template(image, template, method, precision=precision)
    assert got.shape == (2017, 2017)
    check_contract(got, method)
    assert best_index(got, method) == (y0, x0)
    rng = np.random.default_rng(18)
    ys = np.concatenate([[y0, 0, 2016], rng.integers(0, 2017, 400)])
    xs = np.concatenate([[x0, 2016, 0], rng.integers(0, 2017, 400)])
    windows = np.stack([image[y : y + 32, x : x + 32] for y, x in zip(ys, xs)])[:, None]  # (K, 1, 32, 32)
    ref = window_scores(windows, template[None], None, method)
    # the sampled range is at most the full map's: this tolerance is, if anything, a little strict
    assert_matches(got[ys, xs], ref, method, precision)
    assert ref[0] == pytest.approx(1.0 if method == "ncc" else 0.0, abs=1e-12)


def _integer_cases():
    rng = np.random.default_rng(19)
    u16 = rng.integers(65000, 65536, (50, 60)).astype(np.uint16)
    i64 = rng.integers(-(2**31), 2**31, (40, 50), dtype=np.int64)
    i32 = rng.integers(2**31 - 2000, 2**31 - 1, (40, 50)).astype(np.int32)
    b = rng.random((40, 50)) < 0.5
    u8 = rng.integers(0, 256, (40, 50)).astype(np.uint8)
    return {
        "uint16-near-65535": (u16, u16[10:25, 20:33].copy()),
        "uint16-template-far-from-image": (u16, np.full((9, 9), 3, np.uint16) + (np.arange(81) % 7).reshape(9, 9).astype(np.uint16)),
        "int64-large": (i64, i64[5:17, 8:19].copy()),
        "int32-near-max": (i32, i32[3:13, 30:41].copy()),
        "bool": (b, b[7:15, 9:20].copy()),
        "uint8-wraparound": (u8, (255 - u8[2:12, 3:14]).astype(np.uint8)),
    }


INTEGER_CASES = _integer_cases()


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("mask_kind", ["none", "bool"])
@pytest.mark.parametrize("name", sorted(INTEGER_CASES))
def test_integer_inputs_do_not_overflow(name, mask_kind, precision, algorithm):
    image, template = INTEGER_CASES[name]
    mask = make_mask(mask_kind, template.shape, 20)
    for method in METHODS:
        ref = match_template_reference(image, template, method, mask=mask)
        got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
        assert_matches(got, ref, method, precision)
    if "wraparound" not in name and "far" not in name:
        ssd = match_template(image, template, "ssd", mask=mask, precision=precision, algorithm=algorithm)
        assert ssd.min() == pytest.approx(0.0, abs=allowed_error(ssd, precision))


def test_bool_image_known_values():
    image = np.array([[True, False, True, True], [False, False, True, False]])
    template = np.array([[True, True], [True, False]])
    for precision in PRECISIONS:
        ccorr = match_template(image, template, "ccorr", precision=precision)
        np.testing.assert_allclose(ccorr, [[1, 1, 3]], atol=1e-9)
        ssd = match_template(image, template, "ssd", precision=precision)
        np.testing.assert_allclose(ssd, [[2, 3, 0]], atol=1e-9)


# ---------------------------------------------------------------------------
# properties (hypothesis)
# ---------------------------------------------------------------------------


@st.composite
def problems(draw, *, min_side=1, max_side=10, values=None, allow_mask=True):
    C = draw(st.sampled_from([0, 0, 1, 3]))  # 0 = a 2-D image
    H, W = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    h, w = draw(st.integers(1, H)), draw(st.integers(1, W))
    if values is None:
        values = st.integers(0, 6).map(float)
    extra = (C,) if C else ()
    n_img, n_tpl = H * W * max(C, 1), h * w * max(C, 1)
    image = np.array(draw(st.lists(values, min_size=n_img, max_size=n_img))).reshape((H, W) + extra)
    template = np.array(draw(st.lists(values, min_size=n_tpl, max_size=n_tpl))).reshape((h, w) + extra)
    mask = None
    if allow_mask and draw(st.booleans()):
        weights = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=h * w, max_size=h * w))
        mask = np.array(weights).reshape(h, w)
        mask.flat[draw(st.integers(0, h * w - 1))] = 1.0
    return image, template, mask


@HYPOTHESIS
@given(problem=problems(), method=st.sampled_from(METHODS), precision=st.sampled_from(PRECISIONS),
       algorithm=st.sampled_from(ALGORITHMS))
def test_property_convolve_is_correlate_with_flipped_template(problem, method, precision, algorithm):
    image, template, mask = problem
    conv = match_template(image, template, method, mask=mask, mode="convolve", precision=precision, algorithm=algorithm)
    flipped_mask = None if mask is None else np.flip(mask, (0, 1))
    corr = match_template(image, np.flip(template, (0, 1)), method, mask=flipped_mask, precision=precision,
                          algorithm=algorithm)
    ref = match_template_reference(image, np.flip(template, (0, 1)), method, mask=flipped_mask)
    assert_matches(conv, ref, method, precision)
    np.testing.assert_array_less(np.abs(conv - corr), 2 * allowed_error(ref, precision) + 1e-300)


@HYPOTHESIS
@given(problem=problems(min_side=2, max_side=12, values=st.integers(0, 20).map(float)),
       a=st.floats(0.05, 20.0), b=st.floats(-1e4, 1e4), algorithm=st.sampled_from(ALGORITHMS))
def test_property_ncc_is_invariant_to_affine_image_changes(problem, a, b, algorithm):
    image, template, mask = problem
    base = match_template(image, template, "ncc", mask=mask, precision="exact", algorithm=algorithm)
    moved = match_template(a * image + b, template, "ncc", mask=mask, precision="exact", algorithm=algorithm)
    np.testing.assert_allclose(moved, base, rtol=0, atol=1e-6)
    fast = match_template(a * image + b, template, "ncc", mask=mask, precision="fast", algorithm=algorithm)
    np.testing.assert_allclose(fast, base, rtol=0, atol=2 * 1e-4 * score_range(base) + 1e-9)


@HYPOTHESIS
@given(problem=problems(min_side=2, max_side=12, values=st.sampled_from([0.0, 1.0, 2.5, 1e4])),
       precision=st.sampled_from(PRECISIONS), algorithm=st.sampled_from(ALGORITHMS))
def test_property_flat_windows_score_zero(problem, precision, algorithm):
    image, template, mask = problem
    used = np.ones(template.shape[:2], bool) if mask is None else mask > 0
    flat = flat_windows(image, used)
    got = match_template(image, template, "ncc", mask=mask, precision=precision, algorithm=algorithm)
    check_contract(got, "ncc")
    assert np.all(got[flat] == 0.0)


@HYPOTHESIS
@given(problem=problems(values=st.floats(-1e6, 1e6, allow_subnormal=False) | st.sampled_from([0.0, 1e6 + 0.5])),
       offset=st.sampled_from([0.0, 1e4, -3e7]), precision=st.sampled_from(PRECISIONS),
       algorithm=st.sampled_from(ALGORITHMS))
def test_property_scores_are_finite_and_in_range(problem, offset, precision, algorithm):
    image, template, mask = problem
    for method in METHODS:
        got = match_template(image + offset, template + offset, method, mask=mask, precision=precision,
                             algorithm=algorithm)
        check_contract(got, method)  # finite; ssd >= 0; ncc, ccorr_normed in [-1, 1]; ssd_normed in [0, 1]


# ---------------------------------------------------------------------------
# worked examples
# ---------------------------------------------------------------------------

SIGNAL = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_worked_example_1d_search(precision, algorithm):
    ssd = match_template(SIGNAL, [3, 4, 5], "ssd", precision=precision, algorithm=algorithm)
    assert ssd.shape == (12,)
    assert int(ssd.argmin()) == 6
    assert ssd[6] == pytest.approx(0.0, abs=1e-9)
    # by hand: (3-0)^2 + (4-0)^2 + (5-0)^2 = 50 at offset 0; at offset 5: (3-2)^2 + (4-3)^2 + (5-4)^2 = 3
    assert ssd[0] == pytest.approx(50.0, abs=1e-7)
    assert ssd[5] == pytest.approx(3.0, abs=1e-7)
    ncc = match_template(SIGNAL, [3, 4, 5], "ncc", precision=precision, algorithm=algorithm)
    assert ncc.shape == (12,)
    assert ncc[6] == pytest.approx(1.0, abs=1e-9)
    # [0, 1, 2], [1, 2, 3], [2, 3, 4] and [4, 5, 6] are linear copies of [3, 4, 5] too: ncc 1 there
    np.testing.assert_allclose(ncc[3:8], 1.0, rtol=0, atol=1e-9)
    assert np.all(ncc[[0, 1, 11]] == 0.0)  # windows [0, 0, 0] are flat
    # offset 2, window [0, 0, 1]: deviations (-1/3, -1/3, 2/3) vs (-1, 0, 1) -> (1/3 + 2/3) / sqrt(2/3 * 2) = sqrt(3)/2
    assert ncc[2] == pytest.approx(np.sqrt(3) / 2, abs=1e-9)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_worked_example_1d_convolution(precision, algorithm):
    kernel = [1, 0.9, 0.8, 0.7]
    conv = match_template(SIGNAL, kernel, "ccorr", mode="convolve", precision=precision, algorithm=algorithm)
    assert conv.shape == (11,)
    # offset 2: window [0, 0, 1, 2] . reversed kernel [0.7, 0.8, 0.9, 1] = 0.9 + 2 = 2.9
    assert conv[2] == pytest.approx(2.9, abs=1e-9)
    assert conv[0] == pytest.approx(0.0, abs=1e-9)
    assert conv[1] == pytest.approx(1.0, abs=1e-9)  # [0, 0, 0, 1] . [0.7, 0.8, 0.9, 1]
    np.testing.assert_allclose(conv, np.convolve(SIGNAL, kernel, mode="valid"), rtol=0, atol=1e-9)
    corr = match_template(SIGNAL, kernel[::-1], "ccorr", precision=precision, algorithm=algorithm)
    np.testing.assert_allclose(corr, conv, rtol=0, atol=1e-9)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_worked_example_2d(precision, algorithm):
    image = np.arange(1, 19).reshape(3, 6)
    ssd = match_template(image, [[5, 6], [11, 12]], "ssd", precision=precision, algorithm=algorithm)
    assert ssd.shape == (2, 5)
    assert best_index(ssd, "ssd") == (0, 4)  # y = 0, x = 4
    assert ssd[0, 4] == pytest.approx(0.0, abs=1e-9)
    # every window is the template shifted by d = 6y + x - 4 in value: ssd = 4 d^2
    y, x = np.mgrid[:2, :5]
    np.testing.assert_allclose(ssd, 4.0 * (6 * y + x - 4) ** 2, rtol=0, atol=1e-8)

    one = match_template([[1, 20], [0, 5]], [[2, 20], [0, 5]], "ssd", precision=precision, algorithm=algorithm)
    assert one.shape == (1, 1)
    assert one[0, 0] == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------- bands
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mask_kind", ["none", "bool"])
def test_parallel_bands_agree_with_the_reference(monkeypatch, method, mask_kind):
    """Large maps are scored in horizontal bands on several threads; seams must not show."""
    import matcher.scores.engine as engine

    monkeypatch.setattr(plan, "MIN_BAND_OUTPUTS", 1)
    monkeypatch.setattr(engine, "_CORES", 3)
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (61, 40, 3)).astype(np.uint8)
    image[20:35] = 90  # a flat band across a seam
    template = image[18:27, 5:12].copy()
    mask = None if mask_kind == "none" else rng.random((9, 7)) > 0.3
    assert len(engine._band_bounds([engine.prepare(image, template, method, mask=mask)])) == 4
    got = match_template(image, template, method, mask=mask, precision="exact")
    ref = match_template_reference(image, template, method, mask=mask)
    scale = max(float(np.ptp(ref)), 1.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * scale + 16 * np.finfo(float).eps * np.abs(ref).max())


def test_match_templates_equals_separate_calls_for_mixed_shapes_and_masks():
    """Shared image-side work (sums, extremes, spectra) never leaks between templates."""
    from matcher.scores.engine import match_templates

    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (70, 80)).astype(np.uint8)
    image[30:50, 10:60] = 17
    templates = [image[5:14, 3:10], image[40:47, 20:33], image[2:11, 50:57], image[30:39, 12:19]]
    masks = [None, rng.random((7, 13)) > 0.4, None, np.pad(np.ones((3, 3), bool), ((1, 5), (2, 2)))]
    for method in METHODS:
        together = match_templates(image, templates, method, masks=masks, precision="exact")
        for t, m, got in zip(templates, masks, together):
            ref = match_template_reference(image, t, method, mask=m)
            scale = max(float(np.ptp(ref)), 1.0)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * scale + 16 * np.finfo(float).eps * np.abs(ref).max())


def test_thread_pool_is_kept_and_follows_set_num_threads():
    """The engine's threads outlive a call (starting them costs as much as a small map); a new size
    or a new process gets a new pool. One thread means one band (the same scores within the fast
    contract); a new pool of the same size, the same scores bit for bit."""
    import os

    import matcher.scores.engine as engine

    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (700, 700)).astype(np.uint8)
    template = image[300:316, 200:216].copy()
    first = match_template(image, template, "ncc")
    pool = engine.thread_pool()
    assert engine.thread_pool() is pool
    previous = engine.set_num_threads(1)
    try:
        single = engine.thread_pool()
        assert single is not pool and single._max_workers == 1
        assert_matches(match_template(image, template, "ncc"), first, "ncc", "fast")
    finally:
        engine.set_num_threads(previous)
    assert engine.thread_pool()._max_workers == previous
    engine._POOL = (engine._POOL[0], engine._POOL[1], os.getpid() + 1)  # as if made by the parent before a fork
    assert engine.thread_pool() is not pool
    np.testing.assert_array_equal(match_template(image, template, "ncc"), first)


def test_run_parallel_runs_the_first_task_here_and_waits_for_all_before_raising():
    """Task 0 runs in the calling thread (awake, its caches warm) and the rest on the pool; the results
    come in task order; when a task fails, every task has finished before the error propagates (none
    keeps writing into the caller's arrays after it returned)."""
    import threading
    import time

    import matcher.scores.engine as engine

    previous = engine.set_num_threads(2)
    try:
        threads = {}

        def record(k):
            threads[k] = threading.get_ident()
            return k * 10

        assert engine.run_parallel(record, 4) == [0, 10, 20, 30]
        assert threads[0] == threading.get_ident()
        assert all(threads[k] != threading.get_ident() for k in (1, 2, 3))
        assert engine.run_parallel(record, 1) == [0] and engine.run_parallel(record, 0) == []

        finished = []

        def failing(k):
            if k == 0:
                raise ValueError("task 0 failed")
            time.sleep(0.05)
            finished.append(k)

        with pytest.raises(ValueError, match="task 0 failed"):
            engine.run_parallel(failing, 3)
        assert sorted(finished) == [1, 2]

        def failing_later(k):
            if k == 2:
                raise KeyError(k)
            return k

        with pytest.raises(KeyError):
            engine.run_parallel(failing_later, 3)
    finally:
        engine.set_num_threads(previous)


def test_set_num_threads_controls_bands_and_rejects_bad_values(monkeypatch):
    import matcher.scores.engine as engine
    from matcher import set_num_threads

    monkeypatch.setattr(plan, "MIN_BAND_OUTPUTS", 1)
    image = np.random.default_rng(3).random((80, 30))
    problem = engine.prepare(image, image[:5, :5], "ncc")
    previous = set_num_threads(1)
    try:
        assert len(engine._band_bounds([problem])) == 2
        assert set_num_threads(4) == 1
        assert len(engine._band_bounds([problem])) == 5
        for bad in (0, -2, 1.5, True, "2"):
            with pytest.raises(ValueError, match=re.escape(f"n must be a positive integer or None, got {bad!r}")):
                set_num_threads(bad)
    finally:
        set_num_threads(previous)


@pytest.mark.parametrize("shape", [(5, 10), (8, 8), (31, 17), (64, 64)])
def test_blocked_dft_correlation_is_within_its_bound(shape):
    """OpenCV's blocked DFT path against exact integer correlation (direct sums of integers are exact)."""
    from matcher.scores.correlate import correlate_dft, correlate_direct, fft_error_bound

    rng = np.random.default_rng(5)
    image = (rng.integers(0, 256, (300, 280)) - 128).astype(float)
    image[:, :40] += 5000.0  # a bright block: the bound must hold where the block is far from the mean
    kernel = rng.integers(-50, 50, shape).astype(float)
    exact = correlate_direct(image, kernel)
    got = correlate_dft(image, kernel)
    peak = float(np.abs(image).max())
    bound = fft_error_bound(image.shape, peak, peak, kernel)  # its blocks' RMS is at most the peak
    assert np.abs(got - exact).max() <= bound
    assert np.abs(got - exact).max() > 0 or shape == (5, 10)  # it really is a transform, not direct sums


def test_blocked_dft_refuses_small_kernels():
    from matcher.scores.correlate import correlate_dft

    with pytest.raises(ValueError, match=re.escape("correlate_dft needs a kernel of more than 49 taps, got 7x7")):
        correlate_dft(np.zeros((20, 20)), np.ones((7, 7)))




# ---------------------------------------------------------------- exact scores of smooth float photographs

@pytest.fixture
def rescored(monkeypatch):
    """How many windows the engine recomputes by definition (results unchanged)."""
    import matcher.scores.assembly as assembly_module
    import matcher.scores.reference as reference_module
    import matcher.scores.settle as settle_module

    count = [0]
    real = reference_module.rescore

    def counting(p, scores, ys, xs):
        count[0] += len(ys)
        return real(p, scores, ys, xs)

    monkeypatch.setattr(settle_module, "rescore", counting)
    monkeypatch.setattr(assembly_module, "rescore", counting)
    return count


def _smooth_photo(dtype):
    """camera() at 512 x 512, as float data: in [0, 1], or the integers 0-255 as float32."""
    pixels = cv2.resize(skimage.data.camera(), (512, 512), interpolation=cv2.INTER_AREA)
    return pixels / 255.0 if dtype == "unit" else pixels.astype(np.float32)


@pytest.mark.parametrize("dtype", ["unit", "integers"])
def test_exact_ncc_of_a_smooth_float_photo_recomputes_few_windows(rescored, dtype):
    """The sky of a photograph in [0, 1] has windows whose variance is a tiny difference of two large
    window sums: from plain sums their bounds failed "exact" and 619 windows were recomputed by definition
    here (20-26 s at 2048², against 0.1 s for OpenCV). Split variances (and exact sums for float images
    of integers) keep those digits: a few recomputations, and the scores still within 1e-9 of the range."""
    from matcher.scores.reference import scores_at

    image = _smooth_photo(dtype)
    template = image[170:202, 256:288].copy()
    got = match_template(image, template, "ncc", precision="exact")
    assert rescored[0] <= 8, rescored[0]
    rng = np.random.default_rng(0)
    ys = np.concatenate([rng.integers(0, got.shape[0], 300), rng.integers(0, 120, 300)])  # the sky: rows 0-120
    xs = rng.integers(0, got.shape[1], 600)
    want = scores_at(image, template, "ncc", ys, xs)
    np.testing.assert_allclose(got[ys, xs], want, rtol=0, atol=1e-9 * score_range(got))


def test_a_float_image_of_integers_scores_as_its_integer_image():
    image = _smooth_photo("integers")
    template = image[170:202, 256:288].copy()
    as_float = match_template(image, template, "ncc", precision="exact")
    as_uint8 = match_template(image.astype(np.uint8), template.astype(np.uint8), "ncc", precision="exact")
    np.testing.assert_allclose(as_float, as_uint8, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["ccorr_normed", "ssd_normed"])
def test_exact_energies_of_dark_windows_are_bounded_relative_to_themselves(rescored, method):
    """A colour photograph in [0, 1] with a black background: the window energies there are tiny. Their
    split sums round once relative to each window (not to the largest window), so "exact" no longer
    recomputes them one by one (4115 windows here before; 17,000 and 2 s at 1024²). What is left is
    the transforms' own rounding: their bound grows with the largest window's output, not this one's
    (at most 214 windows here)."""
    from matcher.scores.reference import scores_at

    image = cv2.resize(skimage.data.astronaut(), (512, 512), interpolation=cv2.INTER_AREA) / 255.0
    template = image[170:202, 256:288].copy()
    got = match_template(image, template, method, precision="exact")
    assert rescored[0] <= 300, rescored[0]
    rng = np.random.default_rng(1)
    ys, xs = rng.integers(0, got.shape[0], 600), rng.integers(0, got.shape[1], 600)
    dark = np.argwhere(image[: got.shape[0], : got.shape[1]].max(axis=2) < 0.05)[:300]  # the background
    ys, xs = np.concatenate([ys, dark[:, 0]]), np.concatenate([xs, dark[:, 1]])
    want = scores_at(image, template, method, ys, xs)
    np.testing.assert_allclose(got[ys, xs], want, rtol=0, atol=1e-9 * score_range(got))


@pytest.mark.parametrize("dither, refines", [(0.0, False), (1e-4, True)])
def test_fast_ncc_refines_the_variances_of_a_dark_colour_photo_in_float32(monkeypatch, dither, refines):
    """A colour photograph in [0, 1] with a black background: from plain float sums the dark windows'
    variances failed their float32 bounds in such numbers that the band was refused and assembled again
    in float64 (2-3x the time). Where the background is exactly flat, those windows are settled by the
    exact flatness test and nothing more is needed; dithered by 1e-4 (dark but not flat windows), the
    band recomputes its variances from split sums. Either way it keeps its float32 correlation and meets
    the "fast" contract."""
    import matcher.scores.assembly as assembly_module
    import matcher.scores.engine as engine_module
    from matcher.scores.reference import scores_at

    refined, works = [], []
    real_refine, real_assemble = assembly_module._Assembly.refine_denominators, engine_module.assemble

    def refine(self, *args):
        refined.append(1)
        return real_refine(self, *args)

    def assemble(p, algorithm, out, **kwargs):
        works.append(kwargs.get("work"))
        return real_assemble(p, algorithm, out, **kwargs)

    monkeypatch.setattr(assembly_module._Assembly, "refine_denominators", refine)
    monkeypatch.setattr(engine_module, "assemble", assemble)
    image = cv2.resize(skimage.data.astronaut(), (384, 384), interpolation=cv2.INTER_AREA) / 255.0
    image += np.random.default_rng(0).random(image.shape) * dither
    template = image[170:202, 256:288].copy()
    got = match_template(image, template, "ncc")
    assert bool(refined) == refines and works == ["float32"], (refined, works)
    rng = np.random.default_rng(2)
    ys, xs = rng.integers(0, got.shape[0], 500), rng.integers(0, got.shape[1], 500)
    dark = np.argwhere(image[: got.shape[0], : got.shape[1]].max(axis=2) < 0.05)[::7][:300]
    ys, xs = np.concatenate([ys, dark[:, 0]]), np.concatenate([xs, dark[:, 1]])
    want = scores_at(image, template, "ncc", ys, xs)
    np.testing.assert_allclose(got[ys, xs], want, rtol=0, atol=1e-4 * score_range(got))


@pytest.mark.parametrize("method", ["ccorr_normed", "ssd_normed"])
def test_float32_refuses_at_once_a_map_whose_range_is_under_its_rounding(monkeypatch, method):
    """On a large DC offset ccorr_normed and ssd_normed scores are all within ~1e-5 of each other: the
    "fast" tolerance (1e-4 of that range) is below the float32 assembly's own rounding, so no window can
    be settled in float32. The band is refused before any float64 strip is correlated, then assembled in
    float64, and the scores meet the contract."""
    import matcher.scores.assembly as assembly_module
    import matcher.scores.engine as engine_module

    strips, works = [], []
    real_correlate64, real_assemble = assembly_module._Assembly.correlate64, engine_module.assemble

    def correlate64(self, algorithm, rows=None, cols=None):
        if not self.float64:
            strips.append(rows)
        return real_correlate64(self, algorithm, rows, cols)

    def assemble(p, algorithm, out, **kwargs):
        works.append((kwargs.get("work"), real_assemble(p, algorithm, out, **kwargs)))
        return works[-1][1]

    monkeypatch.setattr(assembly_module._Assembly, "correlate64", correlate64)
    monkeypatch.setattr(engine_module, "assemble", assemble)
    image = cv2.resize(skimage.data.camera(), (320, 240), interpolation=cv2.INTER_AREA).astype(np.float64) + 1e4
    template = image[100:116, 150:166].copy()
    got = match_template(image, template, method)
    assert works == [("float32", False), ("float64", True)] and strips == [], (works, strips)
    want = match_template_reference(image, template, method)
    assert score_range(want) < 1e-3  # the premise: nearly equal scores
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * score_range(want))


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_masked_windows_zero_on_the_mask_are_settled_without_recomputing(rescored, method, monkeypatch):
    """An 8-bit colour photograph with a black background and a disc mask, through transforms: the masked
    sums of windows that are black inside the disc (not in its corners) round to about 1e-8. Integer
    images with binary masks have integer denominators, so one within its error (under 1/2) of zero is
    zero: those windows get their documented value at once, where they were recomputed by definition
    one by one (515 windows, half the time of the call)."""
    import matcher.scores.settle as settle_module
    from matcher.scores.degenerate import degenerate_score

    image = cv2.resize(skimage.data.astronaut(), (320, 240), interpolation=cv2.INTER_AREA)
    t = 24
    template = image[100 : 100 + t, 150 : 150 + t].copy()
    yy, xx = np.mgrid[:t, :t]
    mask = np.hypot(yy - (t - 1) / 2, xx - (t - 1) / 2) <= t / 2
    tested = []
    real = settle_module.degenerate_at
    monkeypatch.setattr(settle_module, "degenerate_at", lambda p, ys, xs: tested.append(ys.size) or real(p, ys, xs))
    got = match_template(image, template, method, mask=mask, algorithm="fft")
    ref = match_template_reference(image, template, method, mask=mask)
    contract.assert_within(got, ref, method, REL["fast"])
    black = np.array([[not image[y : y + t, x : x + t][mask].any() for x in range(0, ref.shape[1], 3)]
                      for y in range(0, ref.shape[0], 3)])
    assert black.sum() > 20, "the case must hold windows black on the mask"
    degenerate = degenerate_score(method)
    assert np.all(got[::3, ::3][black] == degenerate)  # their documented value, exactly
    assert tested == [] and rescored[0] <= 8, (tested, rescored[0])
