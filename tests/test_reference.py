"""The reference implementation against independent oracles.

``matcher.scores.reference`` is the oracle of every other test, so it is checked
here against two things it shares no code with:

- a plain Python double loop written from the formulas (``brute_force``),
  on small hand-made and hypothesis-generated cases, degenerate ones included;
- ``cv2.matchTemplate`` on float32 data, for all six methods, with and without
  masks (float and uint8), gray and colour, wherever OpenCV's output is
  defined. The documented deviations from OpenCV are tested as deviations.
"""

import math

import cv2
import numpy as np
import pytest
import skimage.data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.scores.reference import match_template_reference, window_scores

METHODS = ("ssd", "ssd_normed", "ccorr", "ccorr_normed", "ccoeff", "ncc")

# Deterministic hypothesis runs (a CI failure reproduces locally), no deadline
# (a first call may pay for imports), no example database in the work tree.
HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# An independent oracle: the definitions, one window and one pixel at a time.
# ---------------------------------------------------------------------------


def brute_force(image, template, method, mask=None):
    """Score every window with plain Python loops over pixels (no numpy arithmetic).

    ``image`` (H, W) or (H, W, C); ``template`` (h, w) or (h, w, C);
    ``mask`` None, (h, w) or (h, w, C) weights (non-zero integers count as 1).
    """
    img = np.asarray(image, dtype=float)
    tpl = np.asarray(template, dtype=float)
    if img.ndim == 2:
        img = img[:, :, None]
    if tpl.ndim == 2:
        tpl = tpl[:, :, None]
    H, W, C = img.shape
    h, w, _ = tpl.shape
    if mask is None:
        weights = np.ones((h, w, C))
    else:
        m = np.asarray(mask)
        m = (m != 0).astype(float) if m.dtype.kind in "biu" else m.astype(float)
        if m.ndim == 2:
            m = np.repeat(m[:, :, None], C, axis=2)
        weights = m
    I, T, M = img.tolist(), tpl.tolist(), weights.tolist()
    out = []
    for y in range(H - h + 1):
        row = []
        for x in range(W - w + 1):
            ssd = ccorr = t_norm2 = w_norm2 = 0.0
            ccoeff = t_dev2 = w_dev2 = 0.0
            window_flat = template_flat = True
            for c in range(C):
                sum_m = sum_mt = sum_mi = 0.0
                used_t, used_i = [], []
                for r in range(h):
                    for s in range(w):
                        m, t, i = M[r][s][c], T[r][s][c], I[y + r][x + s][c]
                        ssd += ((t - i) * m) ** 2
                        ccorr += t * i * m * m
                        t_norm2 += (t * m) ** 2
                        w_norm2 += (i * m) ** 2
                        sum_m += m
                        sum_mt += m * t
                        sum_mi += m * i
                        if m > 0:
                            used_t.append(t)
                            used_i.append(i)
                mean_t, mean_i = sum_mt / sum_m, sum_mi / sum_m
                window_flat = window_flat and min(used_i) == max(used_i)
                template_flat = template_flat and min(used_t) == max(used_t)
                for r in range(h):
                    for s in range(w):
                        m, t, i = M[r][s][c], T[r][s][c], I[y + r][x + s][c]
                        td, wd = m * (t - mean_t), m * (i - mean_i)
                        ccoeff += td * wd
                        t_dev2 += td * td
                        w_dev2 += wd * wd
            denom = math.sqrt(t_norm2 * w_norm2)
            if method == "ssd":
                v = ssd
            elif method == "ccorr":
                v = ccorr
            elif method == "ssd_normed":
                if denom > 0:
                    v = min(1.0, ssd / denom)
                else:
                    v = 0.0 if (t_norm2 == 0 and w_norm2 == 0) else 1.0
            elif method == "ccorr_normed":
                v = max(-1.0, min(1.0, ccorr / denom)) if denom > 0 else 0.0
            elif method == "ccoeff":
                v = ccoeff
            else:  # ncc
                d = math.sqrt(t_dev2 * w_dev2)
                v = 0.0 if (window_flat or template_flat or d == 0) else max(-1.0, min(1.0, ccoeff / d))
            row.append(v)
        out.append(row)
    return np.array(out)


def assert_close(got, expected, rel, *, abs_=0.0):
    """Max abs difference <= rel * range(expected) (1 if the range is 0) + abs_."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert np.isfinite(got).all()
    scale = float(expected.max() - expected.min()) if expected.size else 0.0
    scale = scale if scale > 0 else 1.0
    err = np.abs(got - expected)
    worst = np.unravel_index(err.argmax(), err.shape)
    assert err.max() <= rel * scale + abs_, (
        f"max error {err.max():.3g} at {worst} (got {got[worst]!r}, expected {expected[worst]!r}), "
        f"allowed {rel:g} x range {scale:.6g}"
    )


# ---------------------------------------------------------------------------
# Reference == brute force (tight: both are float64 by definition)
# ---------------------------------------------------------------------------

BRUTE_REL = 1e-12


def _small_cases():
    rng = np.random.default_rng(20240601)
    gray = rng.integers(0, 5, (6, 7)).astype(float)
    gray[3:6, 0:4] = 2.0  # a flat region: ncc must be 0 there
    gray_zero = gray.copy()
    gray_zero[0:3, 4:7] = 0.0  # an all-zero region: the normed scores' zero-norm branches
    colour = rng.normal(0, 3, (5, 6, 2)) + 1.5
    colour3 = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    float_mask = np.array([[1.0, 0.5, 0.0], [0.25, 1.0, 0.75], [0.0, 0.3, 1.0]])
    chan_mask = (rng.random((3, 2, 3)) > 0.4).astype(np.uint8)
    chan_mask[0, 0, :] = 1  # every channel keeps a pixel
    return {
        "gray-int": (gray, gray[1:4, 2:4] + np.array([[0, 1], [0, 0], [2, 0]]), None),
        "gray-zero-regions": (gray_zero, np.zeros((3, 3)), None),
        "gray-zero-template-vs-data": (gray_zero, gray_zero[0:3, 1:4], None),
        "gray-constant-template": (gray, np.full((2, 3), 7.0), None),
        "gray-bool-mask": (gray, gray[0:3, 0:3], np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], bool)),
        "colour-float-mask": (colour, colour[1:4, 2:5] * 0.5, float_mask),
        "colour-uint8-per-channel-mask": (colour3, colour3[2:5, 1:3], chan_mask),
        "one-row": (np.array([[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0]], float), np.array([[3.0, 4, 5]]), None),
    }


SMALL_CASES = _small_cases()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(SMALL_CASES))
def test_reference_equals_brute_force(case, method):
    image, template, mask = SMALL_CASES[case]
    expected = brute_force(image, template, method, mask)
    got = match_template_reference(image, template, method, mask=mask)
    assert_close(got, expected, BRUTE_REL, abs_=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_reference_convolve_equals_brute_force_with_flipped_template(method):
    image, template, mask = SMALL_CASES["colour-float-mask"]
    expected = brute_force(image, np.flip(template, (0, 1)), method, np.flip(mask, (0, 1)))
    got = match_template_reference(image, template, method, mask=mask, mode="convolve")
    assert_close(got, expected, BRUTE_REL, abs_=1e-12)


def test_reference_1d_equals_brute_force():
    image = np.array([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0], float)
    template = np.array([3.0, 4, 5])
    for method in METHODS:
        got = match_template_reference(image, template, method)
        assert got.shape == (12,)
        assert_close(got, brute_force(image[None], template[None], method)[0], BRUTE_REL, abs_=1e-12)


@st.composite
def small_problems(draw):
    C = draw(st.sampled_from([1, 1, 2, 3]))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    h, w = draw(st.integers(1, H)), draw(st.integers(1, W))
    values = st.sampled_from([0.0, 1.0, 2.0, 3.0, -1.5, 100.0])
    image = np.array(draw(st.lists(values, min_size=H * W * C, max_size=H * W * C))).reshape(H, W, C)
    template = np.array(draw(st.lists(values, min_size=h * w * C, max_size=h * w * C))).reshape(h, w, C)
    mask = None
    kind = draw(st.sampled_from(["none", "bool", "float"]))
    if kind != "none":
        weights = st.sampled_from([0.0, 0.25, 0.5, 1.0]) if kind == "float" else st.sampled_from([0.0, 1.0])
        mask = np.array(draw(st.lists(weights, min_size=h * w, max_size=h * w))).reshape(h, w)
        mask.flat[draw(st.integers(0, h * w - 1))] = 1.0  # at least one pixel is used
        if kind == "bool":
            mask = mask.astype(bool)
    if C == 1 and draw(st.booleans()):
        image, template = image[:, :, 0], template[:, :, 0]
    return image, template, mask


@HYPOTHESIS
@given(problem=small_problems(), method=st.sampled_from(METHODS))
def test_reference_equals_brute_force_on_generated_cases(problem, method):
    image, template, mask = problem
    expected = brute_force(image, template, method, mask)
    got = match_template_reference(image, template, method, mask=mask)
    assert_close(got, expected, BRUTE_REL, abs_=1e-12)


def test_window_scores_is_the_per_window_definition():
    """window_scores on a batch of cut windows equals the full reference map at those windows."""
    rng = np.random.default_rng(7)
    image = rng.normal(0, 1, (3, 20, 25))  # channel first, as window_scores takes it
    template = rng.normal(0, 1, (3, 4, 5))
    weights = rng.random((3, 4, 5))
    positions = [(0, 0), (16, 20), (7, 11), (3, 19)]
    windows = np.stack([image[:, y : y + 4, x : x + 5] for y, x in positions])
    for method in METHODS:
        full = match_template_reference(np.moveaxis(image, 0, 2), np.moveaxis(template, 0, 2), method,
                                        mask=np.moveaxis(weights, 0, 2))
        got = window_scores(windows, template, weights, method)
        expected = np.array([full[y, x] for y, x in positions])
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
        brute = brute_force(np.moveaxis(image, 0, 2), np.moveaxis(template, 0, 2), method, np.moveaxis(weights, 0, 2))
        np.testing.assert_allclose(got, [brute[y, x] for y, x in positions], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# Reference == cv2.matchTemplate (float32), where OpenCV's output is defined
# ---------------------------------------------------------------------------

CV_REL = 1e-4  # OpenCV computes in float32


def _opencv_case(source, colour):
    """float32 image (H, W[, 3]) and a template cut from it plus noise."""
    rng = np.random.default_rng(99 if colour else 98)
    if source == "random":
        shape = (48, 60, 3) if colour else (48, 60)
        image = (rng.random(shape) * 255).astype(np.float32)
    elif colour:
        image = skimage.data.astronaut()[50:110, 150:220].astype(np.float32)
    else:
        image = skimage.data.camera()[200:260, 300:370].astype(np.float32)
    template = image[11:20, 23:34].copy()
    template += rng.normal(0, 4, template.shape).astype(np.float32)
    return image, template


def _opencv_mask(kind, template, colour):
    rng = np.random.default_rng(5)
    h, w = template.shape[:2]
    if kind is None:
        return None
    if kind == "float32":
        mask = rng.random((h, w)).astype(np.float32)
        mask[rng.random((h, w)) < 0.2] = 0.0
    elif kind == "uint8":
        mask = (rng.random((h, w)) > 0.3).astype(np.uint8)
    else:  # per-channel uint8
        mask = (rng.random((h, w, 3)) > 0.3).astype(np.uint8)
    return mask


def _opencv(image, template, method, mask=None):
    out = cv2.matchTemplate(image, template, METHODS.index(method), mask=mask)
    if method == "ssd_normed":
        # Deviation (tested below): OpenCV's masked ssd_normed is not clipped at 1.
        out = np.minimum(out, 1.0)
    return out.astype(np.float64)


def _well_conditioned(image, template, mask, min_std=4.0):
    """Windows whose std over the used pixels is >= min_std grey levels (all channels pooled).

    OpenCV's float32 ncc loses digits on low-contrast windows (std ~1 on values
    ~200 gives errors ~1e-3); only there is its output not a usable oracle.
    """
    img = image if image.ndim == 3 else image[:, :, None]
    h, w = template.shape[:2]
    used = np.ones((h, w, img.shape[2]), bool) if mask is None else np.broadcast_to(
        (mask if mask.ndim == 3 else mask[:, :, None]) > 0, (h, w, img.shape[2]))
    v = np.lib.stride_tricks.sliding_window_view(img, (h, w), axis=(0, 1))  # (H', W', C, h, w)
    u = np.moveaxis(used, 2, 0)
    n = u.sum(axis=(1, 2))
    mean = np.where(u, v, 0).sum(axis=(3, 4)) / n
    var = (np.where(u, v - mean[..., None, None], 0) ** 2).sum(axis=(2, 3, 4)) / n.sum()
    return np.sqrt(var) >= min_std


OPENCV_CASES = [
    (source, colour, mask_kind)
    for source in ("random", "photo")
    for colour in (False, True)
    for mask_kind in (None, "float32", "uint8") + (("uint8-per-channel",) if colour else ())
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "source, colour, mask_kind",
    OPENCV_CASES,
    ids=[f"{s}-{'colour' if c else 'gray'}-{m or 'nomask'}" for s, c, m in OPENCV_CASES],
)
def test_reference_matches_opencv(source, colour, mask_kind, method):
    image, template = _opencv_case(source, colour)
    mask = _opencv_mask(mask_kind, template, colour)
    expected = _opencv(image, template, method, mask)
    got = match_template_reference(image, template, method, mask=mask)
    if method == "ncc":
        defined = _well_conditioned(image, template, mask)
        assert defined.mean() > 0.9
        got = np.where(defined, got, 0.0)
        expected = np.where(defined, expected, 0.0)
    assert_close(got, expected, CV_REL)


@pytest.mark.parametrize("method", ["ssd", "ccorr", "ncc"])
def test_reference_matches_opencv_on_uint8(method):
    image = skimage.data.coins()[100:160, 100:180]
    template = image[20:33, 30:41]
    mask = (np.random.default_rng(3).random(template.shape) > 0.25).astype(np.uint8)
    for m in (None, mask):
        expected = cv2.matchTemplate(image, template, METHODS.index(method), mask=m).astype(np.float64)
        assert_close(match_template_reference(image, template, method, mask=m), expected, CV_REL)


@pytest.mark.parametrize("method", METHODS)
def test_reference_matches_opencv_convolve(method):
    """mode="convolve" is correlation with the 180°-rotated template (np.flip over both axes)."""
    image, template = _opencv_case("random", True)
    expected = _opencv(image, np.ascontiguousarray(np.flip(template, (0, 1))), method)
    assert_close(match_template_reference(image, template, method, mode="convolve"), expected, CV_REL)


def test_deviation_constant_template_ncc():
    """OpenCV returns 1.0 everywhere for a constant template; the reference returns 0 (no false match)."""
    image, _ = _opencv_case("random", False)
    template = np.full((5, 6), 42.0, np.float32)
    opencv = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
    assert np.all(opencv == 1.0)
    ours = match_template_reference(image, template, "ncc")
    assert ours.shape == opencv.shape
    assert np.all(ours == 0.0)
    # also when the template is constant only over the used (mask > 0) pixels
    template2 = template.copy()
    template2[0, 0] = 7.0
    mask = np.ones(template2.shape, np.uint8)
    mask[0, 0] = 0
    assert np.all(match_template_reference(image, template2, "ncc", mask=mask) == 0.0)


def _flat_image():
    rng = np.random.default_rng(11)
    image = (rng.random((40, 44)) * 255).astype(np.float32)
    image[4:22, 3:20] = 77.0  # flat, non-zero
    image[24:40, 26:44] = 0.0  # flat, zero
    return image


def _flat_windows(image, used):
    """Windows of ``image`` constant over the pixels where ``used`` (template-shaped, bool) is True."""
    v = np.lib.stride_tricks.sliding_window_view(image, used.shape)
    lo = np.where(used, v, np.inf).min(axis=(2, 3))
    hi = np.where(used, v, -np.inf).max(axis=(2, 3))
    return lo == hi


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("masked", [False, True])
def test_reference_flat_windows_vs_opencv(method, masked):
    """Flat windows: ncc is exactly 0 (OpenCV: 0, or NaN when masked); elsewhere OpenCV agrees."""
    image = _flat_image()
    template = image[5:12, 25:31].copy()
    mask = None
    if masked:
        mask = (np.random.default_rng(2).random(template.shape) > 0.3).astype(np.uint8)
    flat = _flat_windows(image, np.ones(template.shape, bool) if mask is None else mask > 0)
    assert flat.sum() > 100
    ours = match_template_reference(image, template, method, mask=mask)
    assert np.isfinite(ours).all()
    opencv = _opencv(image, template, method, mask)
    if method == "ncc":
        assert np.all(ours[flat] == 0.0)
        if masked:
            # the deviation: OpenCV's masked ncc is undefined (NaN) on flat windows
            assert not np.all(np.isfinite(opencv[flat]) & (opencv[flat] == 0.0))
        defined = ~flat
    elif method in ("ccorr_normed", "ssd_normed"):
        v = np.lib.stride_tricks.sliding_window_view(image, template.shape)
        zero = np.all(np.where(mask > 0, v, 0) == 0, axis=(2, 3)) if masked else np.all(v == 0, axis=(2, 3))
        assert zero.sum() > 50
        expected_zero_window = 0.0 if method == "ccorr_normed" else 1.0
        assert np.all(ours[zero] == expected_zero_window)
        if masked:
            # the deviation: OpenCV's masked normed scores are NaN on all-zero windows
            assert not np.isfinite(opencv[zero]).all()
            defined = ~zero
        else:
            defined = np.ones_like(flat)
    else:
        defined = np.ones_like(flat)
    scale = float(ours.max() - ours.min()) or 1.0
    err = np.abs(ours - opencv)[defined]
    assert err.max() <= CV_REL * scale, err.max() / scale


def test_deviation_masked_ssd_normed_saturates():
    """OpenCV's masked ssd_normed exceeds 1 (here 4: template = -window); the reference saturates at 1."""
    image, _ = _opencv_case("random", False)
    template = -image[3:8, 4:9]
    mask = np.ones(template.shape, np.uint8)
    mask[0, 0] = 0
    opencv = cv2.matchTemplate(image, template, cv2.TM_SQDIFF_NORMED, mask=mask)
    assert opencv[3, 4] == pytest.approx(4.0, rel=1e-5)
    ours = match_template_reference(image, template, "ssd_normed", mask=mask)
    assert ours[3, 4] == 1.0
    assert ours.max() <= 1.0 and ours.min() >= 0.0
    np.testing.assert_allclose(ours, np.minimum(opencv, 1.0), atol=1e-5)
