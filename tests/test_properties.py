"""Properties of ``match_template`` over generated inputs (hypothesis), against the float64 reference.

Every generated case is compared with ``match_template_reference`` under the
precision contract of ``score_contract.py`` (1e-9 of the reference map's
range for "exact", 1e-4 for "fast"), across: the six methods; no mask, bool,
uint8 (0-255) and float-weight masks; uint8, uint16, int16, float32, float64
and bool images; gray and 3-channel; DC offsets up to 1e12; magnitudes from
1e-150 to 1e150; both precisions and both algorithms. Sizes straddle every
switch of the engine (maps of 4,095 / 4,096 positions, 11 / 12 px
templates with ``algorithm="direct"``, 49 / 50 taps, template sides of 256 /
257 px, maps of 2**18 positions that are split into bands).

Laws: correlating with the 180-degree-flipped template is ``mode="convolve"``;
ncc is unchanged by ``a * image + b`` (a > 0; exact transforms here, so the
law is tested to the contract); no NaN or inf, ncc and ccorr_normed in
[-1, 1], ssd_normed in [0, 1], ssd >= 0, whatever the input.

Runs are derandomized (a CI failure reproduces locally) and small; the large
size-switch cases are few.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import score_contract as contract
from matcher import METHODS, MatcherError, match_template, match_template_reference
from matcher.methods import get_method
from score_contract import REL

PRECISIONS = ("exact", "fast")
ALGORITHMS = ("direct", "fft")
DTYPES = ("uint8", "uint16", "int16", "float32", "float64", "bool")
MASKS = ("none", "bool", "uint8", "float")


def _settings(n):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def make_image(rng, shape, dtype, channels, offset=0.0):
    """A random image with a flat patch; floats get ``values + offset``."""
    full = shape + ((channels,) if channels > 1 else ())
    if dtype == "bool":
        return rng.random(full) < 0.5
    top = {"uint8": 255, "uint16": 65535, "int16": 32767}.get(dtype, 255)
    lo = -32768 if dtype == "int16" else 0
    values = rng.integers(lo, top + 1, full).astype(np.float64)
    if dtype.startswith("float"):
        values += rng.random(full)  # not integers
    h, w = shape
    values[h // 3 : h // 3 + max(1, h // 4), : max(1, w // 3)] = values[h // 3, 0]  # a flat patch
    if dtype.startswith("float"):
        return (values + offset).astype(dtype)
    return values.astype(dtype)


def make_mask(rng, kind, shape, channels):
    if kind == "none":
        return None
    full = shape + ((channels,) if channels > 1 and rng.random() < 0.5 else ())
    if kind == "bool":
        mask = rng.random(full) < 0.7
    elif kind == "uint8":
        mask = np.where(rng.random(full) < 0.7, rng.integers(1, 256, full), 0).astype(np.uint8)
    else:
        mask = np.where(rng.random(full) < 0.8, rng.random(full), 0.0)
    mask[(0,) * mask.ndim] = 1  # at least one used pixel in every channel
    if mask.ndim == 3:
        mask[0, 0, :] = 1
    return mask


def make_template(rng, image, shape, noise):
    """A window of the image (as float64) plus some noise, so the best match is not perfect."""
    h, w = shape
    y = int(rng.integers(0, image.shape[0] - h + 1))
    x = int(rng.integers(0, image.shape[1] - w + 1))
    t = image[y : y + h, x : x + w].astype(np.float64)
    scale = float(np.abs(t).max()) or 1.0
    return t + noise * scale * rng.standard_normal(t.shape)


def check(got, image, template, method, precision, *, mask=None, what=""):
    ref = match_template_reference(image, template, method, mask=mask)
    contract.assert_within(got, ref, method, REL[precision], what=f"{precision} {what}")


@st.composite
def small_cases(draw):
    method = draw(st.sampled_from(METHODS))
    dtype = draw(st.sampled_from(DTYPES))
    channels = draw(st.sampled_from((1, 3)))
    H, W = draw(st.integers(4, 28)), draw(st.integers(4, 28))
    h, w = draw(st.integers(1, min(H, 9))), draw(st.integers(1, min(W, 9)))
    floats = dtype.startswith("float")
    offset = draw(st.sampled_from((0.0, 1e3, 1e6, 1e12))) if dtype == "float64" else 0.0
    if dtype == "float32":
        offset = draw(st.sampled_from((0.0, 1e3)))
    # magnitudes 2**k (1e-150 to 1e150): the scaled data is exact, so the scores are those of
    # the unscaled data (scaled back for ssd, ccorr and ccoeff), from a reference that never
    # sees an extreme value
    if not floats:
        log2_magnitude = 0
    elif dtype == "float32":
        log2_magnitude = draw(st.integers(-100, 100))
    elif get_method(method).normalised:
        log2_magnitude = draw(st.integers(-498, 498))
    else:  # sums of products must stay within float64 (larger ones raise: tested below)
        log2_magnitude = draw(st.integers(-498, 440))
    return dict(method=method, dtype=dtype, channels=channels, image_shape=(H, W), template_shape=(h, w),
                mask=draw(st.sampled_from(MASKS)), offset=offset, log2_magnitude=log2_magnitude,
                precision=draw(st.sampled_from(PRECISIONS)), algorithm=draw(st.sampled_from(ALGORITHMS)),
                noise=draw(st.sampled_from((0.0, 1e-6, 0.05))), seed=draw(st.integers(0, 2**32 - 1)))


@_settings(300)
@given(small_cases())
def test_small_maps_match_the_reference(case):
    rng = np.random.default_rng(case["seed"])
    method, k = case["method"], case["log2_magnitude"]
    image = make_image(rng, case["image_shape"], case["dtype"], case["channels"], case["offset"])
    template = make_template(rng, image, case["template_shape"], case["noise"])
    mask = make_mask(rng, case["mask"], case["template_shape"], case["channels"])
    scaled_image = np.ldexp(image, k).astype(image.dtype) if k else image
    scaled_template = np.ldexp(template, k)
    assert np.array_equal(np.ldexp(scaled_image, -k), image) and np.array_equal(np.ldexp(scaled_template, -k), template)
    got = match_template(scaled_image, scaled_template, method, mask=mask, precision=case["precision"],
                         algorithm=case["algorithm"])
    ref = match_template_reference(image, template, method, mask=mask)
    if not get_method(method).normalised:  # a sum of products of two values scaled by 2**k
        ref = np.ldexp(ref, 2 * k)
    contract.assert_within(got, ref, method, REL[case["precision"]], what=str(case))


# Sizes on both sides of the engine's switches: (image shape, template shape, algorithm).
SWITCHES = {
    "4095-positions": ((65, 66), (3, 2), "direct"),  # 63 x 65 = 4,095: float64 correlations
    "4096-positions": ((66, 65), (3, 2), "direct"),  # 64 x 64 = 4,096: float32 ones in "fast"
    "11x11-direct": ((266, 266), (11, 11), "direct"),  # OpenCV's float32 filter sums directly
    "12x12-direct": ((267, 267), (12, 12), "direct"),  # beyond it: float64
    "49-taps": ((262, 262), (7, 7), "fft"),  # OpenCV sums 49 taps directly
    "50-taps": ((260, 265), (5, 10), "fft"),  # and uses its blocked DFT from 50
    "49-taps-small": ((40, 40), (7, 7), "fft"),
    "50-taps-small": ((40, 40), (5, 10), "fft"),
    "side-256": ((4, 300), (2, 256), "fft"),  # OpenCV's blocked DFT up to 256 px a side
    "side-257": ((4, 300), (2, 257), "fft"),  # scipy's FFT above
    "2**18-positions": ((514, 514), (3, 3), "direct"),  # split into bands
    "2**18-less-positions": ((513, 514), (3, 3), "fft"),  # 511 x 512 < 2**18: one piece
}


@_settings(60)
@given(st.sampled_from(sorted(SWITCHES)), st.sampled_from(("ncc", "ccorr_normed", "ssd_normed", "ssd", "ccoeff")),
       st.sampled_from(PRECISIONS), st.sampled_from(("uint8", "float32", "float64")), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_size_switches_match_the_reference(name, method, precision, dtype, near_flat, seed):
    image_shape, template_shape, algorithm = SWITCHES[name]
    rng = np.random.default_rng(seed)
    image = make_image(rng, image_shape, dtype, 1, offset=1e3 if dtype == "float64" else 0.0)
    if near_flat:  # a template of deviations 1e-6 at the image's level: centring must be exact
        template = float(image.mean()) + 1e-6 * rng.standard_normal(template_shape)
    else:
        template = make_template(rng, image, template_shape, 0.05)
    got = match_template(image, template, method, precision=precision, algorithm=algorithm)
    check(got, image, template, method, precision, what=name)


@pytest.mark.parametrize("name", ["4096-positions", "50-taps-small", "side-257"])
def test_size_switches_with_masks_and_colour(name):
    image_shape, template_shape, algorithm = SWITCHES[name]
    rng = np.random.default_rng(11)
    image = make_image(rng, image_shape, "uint8", 3)
    template = make_template(rng, image, template_shape, 0.05)
    mask = make_mask(rng, "float", template_shape, 3)
    for method in ("ncc", "ssd_normed"):
        got = match_template(image, template, method, mask=mask, precision="exact", algorithm=algorithm)
        check(got, image, template, method, "exact", mask=mask, what=name)


@_settings(60)
@given(st.sampled_from(METHODS), st.sampled_from(MASKS), st.sampled_from(PRECISIONS), st.sampled_from(ALGORITHMS),
       st.sampled_from((1, 3)), st.integers(0, 2**32 - 1))
def test_correlating_with_the_flipped_template_is_convolution(method, mask_kind, precision, algorithm, channels, seed):
    rng = np.random.default_rng(seed)
    image = make_image(rng, (int(rng.integers(6, 25)), int(rng.integers(6, 25))), "float64", channels)
    shape = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    template = make_template(rng, image, shape, 0.1)
    mask = make_mask(rng, mask_kind, shape, channels)
    flipped_mask = None if mask is None else mask[::-1, ::-1]
    kw = dict(precision=precision, algorithm=algorithm)
    convolved = match_template(image, template, method, mask=mask, mode="convolve", **kw)
    correlated = match_template(image, template[::-1, ::-1], method, mask=flipped_mask, **kw)
    np.testing.assert_array_equal(convolved, correlated)
    ref = match_template_reference(image, template, method, mask=mask, mode="convolve")
    contract.assert_within(convolved, ref, method, REL[precision], what="convolve")


@_settings(60)
@given(st.integers(-20, 20), st.integers(-10**6, 10**6), st.sampled_from(MASKS), st.sampled_from(PRECISIONS),
       st.sampled_from(ALGORITHMS), st.booleans(), st.integers(0, 2**32 - 1))
def test_ncc_is_invariant_to_gain_and_offset(log2_gain, steps, mask_kind, precision, algorithm, large, seed):
    # a = 2**k and b = steps * a: a * image + b is exact on integer-valued images,
    # so the scores must agree with the untransformed reference to the contract.
    rng = np.random.default_rng(seed)
    shape = (258, 257) if large and mask_kind == "none" else (int(rng.integers(6, 30)), int(rng.integers(6, 30)))
    image = make_image(rng, shape, "uint8", 1).astype(np.float64)
    tshape = (int(rng.integers(2, 7)), int(rng.integers(2, 7)))
    template = make_template(rng, image, tshape, 0.1)
    mask = make_mask(rng, mask_kind, tshape, 1)
    a = 2.0**log2_gain
    b = steps * a
    transformed = a * image + b
    assert np.array_equal((transformed - b) / a, image)  # the transform is exact
    got = match_template(transformed, template, "ncc", mask=mask, precision=precision, algorithm=algorithm)
    check(got, image, template, "ncc", precision, mask=mask, what=f"a=2**{log2_gain}, b={b:g}")


@st.composite
def hostile_cases(draw):
    """Inputs built to break guards: zeros, flat areas, constant templates, mixed magnitudes, subnormals."""
    H, W = draw(st.integers(3, 20)), draw(st.integers(3, 20))
    h, w = draw(st.integers(1, min(H, 6))), draw(st.integers(1, min(W, 6)))
    kind = draw(st.sampled_from(("zeros", "flat", "mixed-magnitudes", "subnormal", "spikes", "binary")))
    return kind, (H, W), (h, w), draw(st.sampled_from(MASKS)), draw(st.sampled_from(PRECISIONS)), \
        draw(st.sampled_from(ALGORITHMS)), draw(st.sampled_from(("zeros", "constant", "window", "random"))), \
        draw(st.integers(0, 2**32 - 1))


@_settings(150)
@given(hostile_cases())
def test_no_nan_or_inf_and_scores_in_their_range(case):
    kind, shape, tshape, mask_kind, precision, algorithm, template_kind, seed = case
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        image = np.zeros(shape)
    elif kind == "flat":
        image = np.full(shape, 7.25)
        image[: shape[0] // 2] = -3.0
    elif kind == "mixed-magnitudes":
        image = rng.standard_normal(shape) * 10.0 ** rng.choice([-300, -150, 0, 150, 300], size=shape)
    elif kind == "subnormal":
        image = rng.integers(0, 16, shape) * 2.0**-1070
    elif kind == "spikes":
        image = np.where(rng.random(shape) < 0.1, 1e12, 0.0)
    else:
        image = (rng.random(shape) < 0.5).astype(np.float64)
    if template_kind == "zeros":
        template = np.zeros(tshape)
    elif template_kind == "constant":
        template = np.full(tshape, float(image.flat[0]) or 1.0)
    elif template_kind == "window":
        template = image[: tshape[0], : tshape[1]].copy()
    else:
        template = rng.standard_normal(tshape) * float(np.abs(image).max() or 1.0)
    mask = make_mask(rng, mask_kind, tshape, 1)
    for method in METHODS:
        try:
            got = match_template(image, template, method, mask=mask, precision=precision, algorithm=algorithm)
        except MatcherError as exc:  # only sums of products beyond float64 may be refused
            assert not get_method(method).normalised and "overflow" in str(exc), (method, exc)
            continue
        contract.check_contract(got, method)
        if method == "ssd_normed":
            assert got.min() >= 0.0 and got.max() <= 1.0
