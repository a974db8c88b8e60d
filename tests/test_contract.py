"""Regression tests for inputs that broke the precision contract.

Each case compares ``match_template`` with ``match_template_reference`` (the
float64 definition) under ``score_contract.py``, or with a known truth:

- near-flat templates on large maps (>= 65536 positions): the template's
  centring left a residual sum that the large-map path ignored;
- fractional mask weights with a large DC offset: the template's weighted
  mean was taken at the offset's magnitude;
- extreme magnitudes (1e-300 to 1e300, subnormals): products of energies
  overflowed or underflowed.

The reference itself is checked against exact rational arithmetic
(:mod:`fractions`) on a few windows of the DC-offset and extreme cases.
"""

from fractions import Fraction

import numpy as np
import pytest

import score_contract as contract
from matcher import MatcherError, match_template, match_template_reference
from matcher.methods import get_method
from matcher.scores.inputs import CONTRACT, RECOMPUTE, prepare
from score_contract import REL

PRECISIONS = ("exact", "fast")


def assert_matches(got, ref, method, precision):
    contract.assert_within(got, ref, method, REL[precision], what=precision)


# ---------------------------------------------------------------------------
# the oracle of the oracle: exact rational scores
# ---------------------------------------------------------------------------


def _fraction_sqrt_ratio(num, den):
    """``num / sqrt(den)`` as a float, from exact rationals (den > 0)."""
    # num / sqrt(den) = sign(num) * sqrt(num^2 / den), correctly rounded enough for 1e-15
    value = Fraction(num) ** 2 / Fraction(den)
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 50
        root = (decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator)).sqrt()
    return float(root) * (1 if num >= 0 else -1)


def exact_score(window, template, weights, method):
    """One window's score in exact rational arithmetic (gray, 2-D arrays of floats)."""
    I = [Fraction(float(v)) for v in np.ravel(window)]
    T = [Fraction(float(v)) for v in np.ravel(template)]
    M = [Fraction(1)] * len(T) if weights is None else [Fraction(float(v)) for v in np.ravel(weights)]
    m = get_method(method)
    if m.zero_mean:
        sw = sum(M)
        mt = sum(a * b for a, b in zip(M, T)) / sw
        mi = sum(a * b for a, b in zip(M, I)) / sw
        td = [a * (b - mt) for a, b in zip(M, T)]
        wd = [a * (b - mi) for a, b in zip(M, I)]
        num = sum(a * b for a, b in zip(td, wd))
        if method == "ccoeff":
            return float(num)
        den = sum(a * a for a in td) * sum(b * b for b in wd)
        return 0.0 if den == 0 else _fraction_sqrt_ratio(num, den)
    tn = sum((a * b) ** 2 for a, b in zip(M, T))
    wn = sum((a * b) ** 2 for a, b in zip(M, I))
    if method == "ccorr":
        return float(sum(a * b * c * c for a, b, c in zip(T, I, M)))
    if method == "ccorr_normed":
        return 0.0 if tn * wn == 0 else _fraction_sqrt_ratio(sum(a * b * c * c for a, b, c in zip(T, I, M)), tn * wn)
    ssd = sum(((a - b) * c) ** 2 for a, b, c in zip(T, I, M))
    if method == "ssd":
        return float(ssd)
    if tn * wn == 0:
        return 0.0 if tn == wn else 1.0
    return min(1.0, _fraction_sqrt_ratio(ssd, tn * wn))


def check_reference_exactly(image, template, method, mask=None, positions=((0, 0), (3, 5), (7, 2))):
    ref = match_template_reference(image, template, method, mask=mask)
    h, w = np.shape(template)[:2]
    for y, x in positions:
        want = exact_score(image[y : y + h, x : x + w], template, mask, method)
        assert abs(ref[y, x] - want) <= 1e-12 * max(1.0, abs(want)), (method, y, x, ref[y, x], want)
    return ref


# ---------------------------------------------------------------------------
# a. near-flat templates on large maps
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", ["ncc", "ccoeff"])
def test_near_flat_template_on_a_large_map(method, precision):
    rng = np.random.default_rng(0)
    image = 10000 + rng.standard_normal((260, 260))
    template = 10000 + 1e-6 * rng.standard_normal((5, 5))
    got = match_template(image, template, method, precision=precision)
    assert got.size >= 65536
    assert_matches(got, match_template_reference(image, template, method), method, precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_two_pixel_template_scores_exactly_one_on_a_large_map(precision):
    # A 1x2 window of two distinct values has ncc exactly +-1 against any
    # non-flat 2-pixel template: the reference says so, and so must we.
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (257, 260)).astype(np.uint8)
    template = np.array([[141, 141.001]])
    got = match_template(image, template, "ncc", precision=precision)
    ref = match_template_reference(image, template, "ncc")
    distinct = image[:, :-1] != image[:, 1:]
    assert np.array_equal(np.abs(ref[distinct]), np.ones(int(distinct.sum())))
    assert_matches(got, ref, "ncc", precision)
    if precision == "exact":
        assert np.abs(np.abs(got[distinct]) - 1.0).max() <= 1e-9


# ---------------------------------------------------------------------------
# b. fractional mask weights and a large DC offset
# ---------------------------------------------------------------------------


def _gaussian_mask(side, sigma):
    r = np.arange(side) - (side - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.max()


def _offset_case(offset, seed=3):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (30, 36)).astype(np.float64)
    template = image[10:19, 12:21] + rng.integers(-20, 21, (9, 9))
    return image + offset, template + offset


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", ["ncc", "ccoeff"])
def test_gaussian_mask_with_a_large_dc_offset(method, precision):
    image, template = _offset_case(1e12)
    mask = _gaussian_mask(9, 2.0)
    ref = check_reference_exactly(image, template, method, mask)
    # the offset cancels: the same scores as without it
    base_image, base_template = _offset_case(0.0)
    base = match_template_reference(base_image, base_template, method, mask=mask)
    contract.assert_within(ref, base, method, REL["exact"], what="reference with offset vs without")
    got = match_template(image, template, method, mask=mask, precision=precision)
    assert_matches(got, ref, method, precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_small_mask_weights_with_a_dc_offset(precision):
    # weights of 0.001 on an image of 16 grey levels at 1e9: the offset's
    # rounding (1e9 eps ~ 2e-7) is no longer small against the deviations
    rng = np.random.default_rng(3)
    image = rng.integers(0, 16, (30, 36)).astype(np.float64)
    template = image[10:19, 12:21] + rng.integers(-2, 3, (9, 9))
    mask = 0.001 * _gaussian_mask(9, 2.0)
    base = match_template_reference(image, template, "ncc", mask=mask)
    ref = check_reference_exactly(image + 1e9, template + 1e9, "ncc", mask)
    contract.assert_within(ref, base, "ncc", REL["exact"], what="reference with offset vs without")
    got = match_template(image + 1e9, template + 1e9, "ncc", mask=mask, precision=precision)
    assert_matches(got, base, "ncc", precision)


# ---------------------------------------------------------------------------
# c. extreme magnitudes
# ---------------------------------------------------------------------------


def _magnitude_case(seed=5, shape=(24, 30), tshape=(6, 7)):
    rng = np.random.default_rng(seed)
    image = rng.random(shape) + 0.5
    template = image[4 : 4 + tshape[0], 9 : 9 + tshape[1]] + 0.3 * rng.random(tshape)
    return image, template


NORMALISED = ("ncc", "ccorr_normed", "ssd_normed")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", NORMALISED)
@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e-100, 1e100, 1e160, 1e300])
def test_normalised_scores_do_not_depend_on_magnitude(scale, method, precision):
    image, template = _magnitude_case()
    base = match_template_reference(image, template, method)
    ref = check_reference_exactly(image * scale, template * scale, method)
    contract.assert_within(ref, base, method, REL["exact"], what=f"reference at {scale:g}")
    got = match_template(image * scale, template * scale, method, precision=precision)
    assert_matches(got, base, method, precision)
    if method != "ssd_normed":  # invariant to scaling image and template separately
        got = match_template(image * scale, template / scale, method, precision=precision)
        assert_matches(got, base, method, precision)


@pytest.mark.parametrize("method", NORMALISED)
def test_normalised_scores_on_subnormal_inputs(method):
    image, template = _magnitude_case()
    tiny = 2.0**-1070  # subnormal: 4 significant bits left
    image = np.round(image * 8) * tiny
    template = np.round(template * 8) * tiny
    base = match_template_reference(image / tiny, template / tiny, method)
    for precision in PRECISIONS:
        got = match_template(image, template, method, precision=precision)
        assert_matches(got, base, method, precision)
    assert_matches(match_template_reference(image, template, method), base, method, "exact")


def test_ccorr_normed_at_1e160_has_no_nan():
    rng = np.random.default_rng(7)
    b = rng.random((40, 40))
    t = b[5:12, 6:14].copy()
    got = match_template(b * 1e160, t * 1e160, "ccorr_normed")
    contract.check_contract(got, "ccorr_normed")
    assert_matches(got, match_template_reference(b, t, "ccorr_normed"), "ccorr_normed", "fast")
    assert got[5, 6] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("method", ["ssd", "ccorr", "ccoeff"])
@pytest.mark.parametrize("scale", [2.0**-500, 2.0**-200, 2.0**200, 2.0**500])
def test_unnormalised_scores_scale_back(method, scale):
    # ssd scales by scale^2 with a common factor; ccorr and ccoeff by the
    # product of the two factors. Powers of two: the scaled reference is exact.
    image, template = _magnitude_case()
    base = match_template_reference(image, template, method)
    t_scale = scale if method == "ssd" else 1.0 / np.sqrt(scale)
    factor = scale * t_scale
    got = match_template(image * scale, template * t_scale, method, precision="exact")
    ref = match_template_reference(image * scale, template * t_scale, method)
    np.testing.assert_array_equal(ref, base * factor)
    assert_matches(got / factor, base, method, "exact")


@pytest.mark.parametrize("function", [match_template, match_template_reference])
@pytest.mark.parametrize("method", ["ssd", "ccorr", "ccoeff"])
def test_unnormalised_scores_that_overflow_are_refused(method, function):
    image, template = _magnitude_case()
    with pytest.raises(MatcherError, match="overflow") as info:
        function(image * 1e200, template * 1e200, method)
    assert info.value.param == "image"
    # the normalised methods have no such limit
    out = function(image * 1e200, template * 1e200, "ncc")
    assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "bool"])
def test_integer_images_keep_their_dtype_whatever_the_template(dtype):
    rng = np.random.default_rng(9)
    image = rng.integers(0, 2 if dtype == "bool" else 200, (20, 24)).astype(dtype)
    template = image[3:8, 4:10].astype(np.float64) + 0.5
    for method in ("ncc", "ccorr_normed", "ccorr", "ccoeff"):
        p = prepare(image, template * 1e200, method)
        assert p.image.dtype == (np.uint8 if dtype == "bool" else np.dtype(dtype)), method
        got = match_template(image, template * 1e-200, method, precision="exact")
        base = match_template_reference(image, template, method)
        if not get_method(method).normalised:
            got = got / 1e-200
        assert_matches(got, base, method, "exact")


def test_the_engine_promises_the_contract_the_tests_check():
    assert CONTRACT == REL
    for precision, by_arithmetic in RECOMPUTE.items():
        assert all(0 < tolerance <= CONTRACT[precision] for tolerance in by_arithmetic.values())
