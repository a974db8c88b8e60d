"""matcher.scores.window_sums against brute force.

- ``window_sums`` / ``window_sums_of_squares``: exact integers (OpenCV's running
  sums) equal Python's integer sums; float data (pairwise sums) is within
  ``pairwise_error_scale(shape) * sum(|a|)`` of the correctly rounded sum
  (exact rationals) of every window;
- ``window_extremes``: the minimum and maximum of a box at an offset inside
  every window, against numpy's min/max of the cut-out box.
"""

from fractions import Fraction

import numpy as np
import pytest

from matcher.scores.window_sums import pairwise_error_scale, window_extremes, window_sums, window_sums_of_squares

SHAPES = [(1, 1), (1, 7), (5, 1), (3, 4), (8, 8), (7, 13), (16, 5)]


def brute_sums(a, shape, power=1):
    """Every window's sum of ``a**power``, correctly rounded (exact rationals, one rounding)."""
    h, w = shape
    H, W = a.shape
    exact = [[Fraction(float(v)) ** power for v in row] for row in a.tolist()]
    out = np.empty((H - h + 1, W - w + 1))
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            out[y, x] = float(sum(exact[y + r][x + c] for r in range(h) for c in range(w)))
    return out


def integer_sums(a, shape, power=1):
    h, w = shape
    H, W = a.shape
    ints = a.astype(np.int64).tolist()
    return np.array([[sum(ints[y + r][x + c] ** power for r in range(h) for c in range(w))
                      for x in range(W - w + 1)] for y in range(H - h + 1)], dtype=object)


@pytest.mark.parametrize("shape", SHAPES)
def test_exact_integer_sums(shape):
    rng = np.random.default_rng(0)
    # values up to 2**20: squares summed over 16 x 16 windows stay below 2**52
    a = rng.integers(-(2**20), 2**20, (24, 30)).astype(np.float64)
    s1 = window_sums(a, shape, exact_integers=True)
    s2 = window_sums_of_squares(a, shape, exact_integers=True)
    want1, want2 = integer_sums(a, shape), integer_sums(a, shape, 2)
    assert s1.shape == want1.shape == (24 - shape[0] + 1, 30 - shape[1] + 1)
    assert all(int(v) == want for v, want in zip(s1.ravel(), want1.ravel()))
    assert all(int(v) == want for v, want in zip(s2.ravel(), want2.ravel()))
    # the pairwise path gives the same exact integers
    assert np.array_equal(window_sums(a, shape), s1)
    assert np.array_equal(window_sums_of_squares(a, shape), s2)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data", ["normal", "offset", "wide-range"])
def test_pairwise_sums_within_their_error_scale(shape, data):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((18, 18))
    if data == "offset":
        a += 1e6
    elif data == "wide-range":
        a *= 10.0 ** rng.integers(-8, 8, a.shape)
    scale = pairwise_error_scale(shape)
    abs_sums = brute_sums(np.abs(a), shape)
    for power, got in ((1, window_sums(a, shape)), (2, window_sums_of_squares(a, shape))):
        want = brute_sums(a, shape, power)
        bound = scale * (abs_sums if power == 1 else brute_sums(a * a, shape))
        err = np.abs(got - want)
        assert np.all(err <= bound), (power, float((err / np.maximum(bound, 1e-300)).max()))


def test_pairwise_error_scale_is_the_documented_formula():
    eps = np.finfo(np.float64).eps
    for (h, w), levels in [((1, 1), 2), ((2, 2), 4), ((3, 5), 7), ((16, 16), 10), ((17, 1), 7)]:
        assert pairwise_error_scale((h, w)) == 2.0 * levels * eps


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (4, 4), (5, 9), (9, 2)])
@pytest.mark.parametrize("offset", [(0, 0), (1, 2), (3, 0)])
def test_window_extremes_against_brute_force(shape, offset):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, (23, 27)).astype(np.float64)  # many ties and flat boxes
    a[5:15, 4:20] = 3.0
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
