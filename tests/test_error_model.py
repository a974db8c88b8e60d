"""Tests for matcher.scores.error_model: the bounds hold against exact arithmetic."""

import math

import numpy as np
import pytest

from matcher.scores.error_model import EPS64, sum_magnitude_bound
from matcher.scores.reference import centred


def _kernels(seed):
    """Centred kernels of 1 to 256 px a side over magnitudes 1e-6 to 1e12, DC offsets and spikes included."""
    rng = np.random.default_rng(seed)
    for side in (1, 2, 3, 7, 15, 16, 33, 64, 100, 128, 256):
        for scale in (1e-6, 1.0, 255.0, 1e12):
            base = rng.normal(0.0, scale, (side, side))
            yield centred(base)
            yield centred(base + 1e6 * scale)  # the offset cancels in the centring, its rounding stays
            spiky = np.zeros((side, side))
            spiky.flat[rng.integers(0, side * side)] = scale
            yield centred(spiky)


@pytest.mark.parametrize("seed", range(3))
def test_sum_magnitude_bound_covers_the_exact_sum(seed):
    below = 0  # kernels whose numpy sum is smaller in magnitude than the exact one: only the error term covers them
    for k in _kernels(seed):
        exact = abs(math.fsum(k.ravel()))
        bound = sum_magnitude_bound(k)
        assert bound >= exact
        below += abs(float(k.sum())) < exact
        # and it stays a rounding error's size: the numpy sum's own error plus the term covering it
        assert bound - exact <= 2.1 * (math.log2(max(k.size, 2)) + 21) * EPS64 * float(np.abs(k).sum())
    assert below > 0  # the cases that need the error term are there


def test_sum_magnitude_bound_is_exact_for_exact_sums():
    assert sum_magnitude_bound(np.zeros((4, 4))) == 0.0
    assert sum_magnitude_bound(np.array([3.0, -1.0])) == pytest.approx(2.0, rel=1e-12)
    # a non-contiguous view sums as its values
    a = np.arange(12.0).reshape(3, 4)[:, ::2]
    assert sum_magnitude_bound(a) >= math.fsum(a.ravel())
