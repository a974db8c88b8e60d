"""The window terms (matcher.scores.window_terms) and window extremes against brute force.

- ``box_terms`` (no mask; OpenCV's box filters, or split sums): on integer
  images the sums equal Python's integer sums and claim no error; on float
  images (noise, a DC offset of 1e6, values over 16 decades) every window's
  ``s1 = sum(I - offset)`` and ``s2 = sum((I - offset)^2)`` is within its
  claimed bound of the exact rational sum;
- ``masked_terms`` (binary and fractional masks, direct and FFT): ``s1 =
  sum(M C)``, ``a2 = sum(M^2 C)``, ``s2 = sum(M^2 C^2)`` of the centred channel
  ``C`` within their bounds of exact rationals, and exact where they say so;
- ncc's split-sum variances ``n s2 - s1^2`` (``box_terms(..., variance=True)``)
  within their bounds of exact rationals, also on smooth windows where the
  plain formula cancels; float images of small integers summed exactly;
- ``window_extremes``: the minimum and maximum of a box at an offset inside
  every window, against numpy's min/max of the cut-out box.
"""

from fractions import Fraction

import numpy as np
import pytest

from matcher.scores.image_channel import BandChannel
from matcher.scores.window_extremes import window_extremes
from matcher.scores.window_terms import box_terms, masked_terms

SHAPES = [(1, 1), (1, 7), (5, 1), (3, 4), (8, 8), (7, 13)]


def exact_sums(a, shape, weights=None, power=1, shift=0.0):
    """Every window's ``sum(weights * (a - shift)**power)`` as exact rationals (a 2-D object array)."""
    h, w = shape
    H, W = a.shape
    values = [[(Fraction(float(v)) - Fraction(shift)) ** power for v in row] for row in a.tolist()]
    wts = [[Fraction(1)] * w for _ in range(h)] if weights is None else [[Fraction(float(v)) for v in row]
                                                                          for row in weights.tolist()]
    out = np.empty((H - h + 1, W - w + 1), dtype=object)
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            out[y, x] = sum(wts[r][c] * values[y + r][x + c] for r in range(h) for c in range(w))
    return out


def assert_within(got, want, bound, what):
    err = np.array([[abs(Fraction(float(g)) - v) for g, v in zip(grow, wrow)] for grow, wrow in zip(got, want)],
                   dtype=float)
    assert np.all(err <= bound), (what, float(err.max()), bound)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16])
def test_box_terms_of_integer_images_are_exact(shape, dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    a = rng.integers(max(info.min, -3000), min(info.max, 3000) + 1, (20, 24)).astype(dtype)
    t = box_terms(BandChannel(0, a, True), shape, True)
    out = (a.shape[0] - shape[0] + 1, a.shape[1] - shape[1] + 1)
    assert t.exact and t.err1 == t.err2 == 0.0 and t.sw == t.sw2 == shape[0] * shape[1] and t.binary
    for got, power in ((t.s1, 1), (t.s2, 2)):
        want = exact_sums(a.astype(np.float64), shape, power=power, shift=t.offset)
        assert all(Fraction(float(g)) == v for g, v in zip(got[: out[0], : out[1]].ravel(), want.ravel()))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data", ["normal", "offset", "wide-range"])
@pytest.mark.parametrize("split", [False, True])
def test_box_terms_of_float_images_within_their_bounds(shape, data, split):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 18))
    if data == "offset":
        a += 1e6
    elif data == "wide-range":
        a *= 10.0 ** rng.integers(-8, 8, a.shape)
    ch = BandChannel(0, a, False)
    ch.split = split
    t = box_terms(ch, shape, True)
    out = (a.shape[0] - shape[0] + 1, a.shape[1] - shape[1] + 1)
    assert not t.exact and t.err1 > 0 and t.err2 > 0
    assert_within(t.s1[: out[0], : out[1]], exact_sums(a, shape, shift=t.offset), t.err1, "s1")
    s2 = t.s2[: out[0], : out[1]]
    assert (t.rel2 > 0) == split  # split sums round their total once: relative to each window's own s2
    assert_within(s2, exact_sums(a, shape, power=2, shift=t.offset), t.err2 + t.rel2 * np.abs(s2), "s2")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data", ["normal", "offset", "smooth", "wide-range"])
def test_variance_terms_within_their_bounds(shape, data):
    """ncc's split-sum terms: ``s1`` and ``var = n s2 - s1^2`` within their bounds of the exact rationals,
    where var is a small difference of two large sums (smooth windows far from the centre)."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((16, 18))
    if data == "offset":
        a += 1e6
    elif data == "smooth":  # windows of nearly one value, far from 0: n s2 and s1^2 agree to 12 digits
        a = 0.75 + 1e-6 * a
    elif data == "wide-range":
        a *= 10.0 ** rng.integers(-8, 8, a.shape)
    ch = BandChannel(0, a, False)
    ch.split = True
    t = box_terms(ch, shape, True, variance=True)
    out = (a.shape[0] - shape[0] + 1, a.shape[1] - shape[1] + 1)
    n = shape[0] * shape[1]
    assert t.s2 is None and t.var is not None and t.binary and not t.exact
    s1 = exact_sums(a, shape, shift=t.offset)
    s2 = exact_sums(a, shape, power=2, shift=t.offset)
    assert_within(t.s1[: out[0], : out[1]], s1, t.err1, "s1")
    var = np.vectorize(lambda x, y: n * y - x * x, otypes=[object])(s1, s2)
    got = t.var[: out[0], : out[1]]
    assert_within(got, var, t.err_var + t.rel_var * np.abs(got), "var")


def test_variance_terms_keep_the_digits_the_plain_sums_lose():
    """On smooth windows far from 0 the plain formula ``n s2 - s1^2`` cancels to noise (its bound says so),
    the split one keeps the variance to near float64 precision."""
    rng = np.random.default_rng(3)
    a = rng.random((24, 40))  # values over [0, 1]: the channel is summed without an offset
    a[:, 20:] = 0.75 + 1e-7 * rng.standard_normal((24, 20))  # a smooth region far from 0
    shape = (16, 16)
    n = 256
    ch = BandChannel(0, a, False)
    ch.split = True
    t = box_terms(ch, shape, True, variance=True)
    assert t.offset == 0.0
    plain = box_terms(BandChannel(0, a, False), shape, True)  # box sums, the plain formula
    smooth = (slice(0, 9), slice(20, 25))  # windows inside the smooth region
    s1 = exact_sums(a[:, 20:], shape)
    want = np.vectorize(lambda x, y: float(n * y - x * x), otypes=[float])(s1, exact_sums(a[:, 20:], shape, power=2))
    got = t.var[smooth]
    naive = n * plain.s2[smooth] - plain.s1[smooth] ** 2
    assert np.max(np.abs(got - want) / want) < 1e-6
    assert np.max(np.abs(naive - want) / want) > 1e-2  # the cancellation this avoids


def test_float_images_of_integers_are_summed_as_integers():
    """A uint8 image converted to float: its float64 sums are promoted to exact integer sums (no split
    sums, no error), as the uint8 image's."""
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (20, 24)).astype(np.float32)
    ch = BandChannel(0, a, False)
    assert not ch.exact
    assert ch.promote_integers() and ch.exact and ch.offset == 0.0
    t = box_terms(ch, (5, 7), True)
    assert t.exact and t.err1 == t.err2 == 0.0
    want = exact_sums(a.astype(np.float64), (5, 7), power=2)
    assert all(Fraction(float(g)) == v for g, v in zip(t.s2[:16, :18].ravel(), want.ravel()))
    for values in (a + 0.5, a * 1000.0):  # not integers; integers beyond 65535
        assert not BandChannel(0, values, False).promote_integers()


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
@pytest.mark.parametrize("mask_kind", ["binary", "fractional"])
@pytest.mark.parametrize("data, centred", [("uint8", True), ("float-offset", True), ("uint8", False),
                                           ("float", False)])
def test_masked_terms_within_their_bounds(algorithm, mask_kind, data, centred):
    rng = np.random.default_rng(2)
    shape = (5, 7)
    a = (rng.integers(0, 256, (18, 21)).astype(np.uint8) if data == "uint8" else
         rng.standard_normal((18, 21)) + (1e6 if data == "float-offset" else 0.0))
    weights = rng.random(shape)
    weights = (weights > 0.4).astype(np.float64) if mask_kind == "binary" else weights
    ch = BandChannel(0, a, data == "uint8")
    out = (a.shape[0] - shape[0] + 1, a.shape[1] - shape[1] + 1)
    t = masked_terms(ch, weights, algorithm, True, True, True, centred=centred)
    offset = ch.centre if centred else 0.0
    assert t.offset == offset and t.binary == (mask_kind == "binary")
    assert t.sw == weights.sum() and t.sw2 == (weights * weights).sum()
    a64 = a.astype(np.float64)
    assert_within(t.s1, exact_sums(a64, shape, weights, shift=offset), t.err1, "s1")
    assert_within(t.a2, exact_sums(a64, shape, weights * weights, shift=offset), t.err1, "a2")
    assert_within(t.s2, exact_sums(a64, shape, weights * weights, power=2, shift=offset), t.err2, "s2")
    # integer image, binary mask, direct sums: exact, and it says so
    assert t.exact == (data == "uint8" and mask_kind == "binary" and algorithm == "direct")


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (4, 4), (5, 9), (9, 2), (17, 16), (3, 40), (20, 30)])
@pytest.mark.parametrize("offset", [(0, 0), (1, 2), (3, 0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8, np.int16, np.int32])
def test_window_extremes_against_brute_force(shape, offset, dtype):
    """OpenCV's erosion and dilation (small boxes, its types) or doubling blocks (the rest): the same minima."""
    rng = np.random.default_rng(2)
    a = rng.integers(-2 if dtype in (np.int16, np.int32, np.float64) else 0, 5, (53, 61)).astype(dtype)  # ties
    a[5:35, 4:50] = 3  # flat boxes
    h, w = shape
    r0, c0 = offset
    template = (h + r0 + 1, w + c0 + 2)  # the box lies inside a larger template
    out_shape = (a.shape[0] - template[0] + 1, a.shape[1] - template[1] + 1)
    lo, hi = window_extremes(a, shape, out_shape, offset)
    assert lo.shape == hi.shape == out_shape
    for y in range(out_shape[0]):
        for x in range(out_shape[1]):
            box = a[y + r0 : y + r0 + h, x + c0 : x + c0 + w]
            assert lo[y, x] == box.min() and hi[y, x] == box.max(), (y, x)
    flat = lo == hi
    assert flat.any() and (not flat.all() or shape == (1, 1))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("plane", ["raw", "centred", "raw_squared", "centred_squared"])
def test_a_float64_strip_reads_its_rectangle_of_the_plane(plane, dtype):
    """A float64 strip makes only its rectangle of the plane (the whole plane of a 2048^2 frame cost 15 ms
    for a strip of a few rows): the same values as that rectangle of the whole plane, made first or not."""
    rng = np.random.default_rng(7)
    values = rng.integers(0, 256, (40, 50)).astype(dtype) if dtype == np.uint8 else rng.normal(3.0, 2.0, (40, 50))
    values = values.astype(dtype)
    part = (slice(5, 17), slice(8, 41))
    expected = np.asarray(values, np.float64) - (BandChannel(0, values, dtype == np.uint8).centre
                                                 if plane.startswith("centred") else 0.0)
    expected = expected**2 if plane.endswith("_squared") else expected
    fresh = BandChannel(0, values, dtype == np.uint8)
    np.testing.assert_array_equal(fresh.plane64(plane, part), expected[part])
    made = BandChannel(0, values, dtype == np.uint8)
    made.plane64(plane)  # the whole plane first: its rectangle is a view of it
    np.testing.assert_array_equal(made.plane64(plane, part), expected[part])
    # the strip's correlation equals the whole correlation's rows and columns
    kernel = rng.normal(size=(4, 6))
    whole, _ = fresh.correlate64(kernel, "direct", plane=plane)
    strip, _ = BandChannel(0, values, dtype == np.uint8).correlate64(kernel, "direct", plane=plane, rows=(5, 14),
                                                                      cols=(8, 36))
    np.testing.assert_allclose(strip, whole[5:14, 8:36], rtol=1e-12, atol=1e-9)
