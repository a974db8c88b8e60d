"""matcher.scores.correlate against a plain numpy sliding-window product, and its error bounds.

The oracle: ``sliding_window_view(image, kernel.shape)`` times the kernel,
summed in float64. On integer data (and dyadic data with few bits) every
product and partial sum is exact, so the oracle is the truth and the
direct path must equal it; the FFT paths must stay within
``fft_error_bound`` of it. On general float data, the oracle's own error
(a few ulps of the sum of |products|) is added to the allowance.
"""

import numpy as np
import scipy.fft as sfft
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from matcher.scores import correlate
from matcher.scores.correlate import FFTCorrelator, correlate_dft, correlate_direct, fft_error_bound, kernel_spectrum

EPS = np.finfo(np.float64).eps
# OpenCV's filter2D sums up to 49 taps directly and switches to its DFT from 50
# (stated here, independently of the module).
DIRECT_TAPS = 49


def oracle(image, kernel):
    """Valid correlation and the sum of |products| of every output, float64."""
    view = sliding_window_view(image, kernel.shape)
    return np.einsum("yxij,ij->yx", view, kernel), np.einsum("yxij,ij->yx", np.abs(view), np.abs(kernel))


KERNELS = [(1, 1), (3, 3), (7, 7), (5, 10), (1, 49), (1, 50), (10, 10), (3, 31), (16, 9), (33, 2)]


def _integer_case(shape, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(-1000, 1000, (60, 70)).astype(np.float64)
    kernel = rng.integers(-1000, 1000, shape).astype(np.float64)
    return image, kernel


@pytest.mark.parametrize("shape", KERNELS)
def test_direct_is_exact_on_integers(shape):
    image, kernel = _integer_case(shape)
    want, _ = oracle(image, kernel)
    got = correlate_direct(image, kernel)
    assert got.shape == (60 - shape[0] + 1, 70 - shape[1] + 1)
    np.testing.assert_array_equal(got, want)


def test_direct_skips_zero_pieces_and_all_zero_kernels():
    image, kernel = _integer_case((9, 12))
    kernel[:5] = 0.0  # whole pieces of < 50 taps are zero
    np.testing.assert_array_equal(correlate_direct(image, kernel), oracle(image, kernel)[0])
    np.testing.assert_array_equal(correlate_direct(image, np.zeros((9, 12))), np.zeros((52, 59)))


@pytest.mark.parametrize("shape", KERNELS)
def test_direct_on_floats_within_the_products_rounding(shape):
    rng = np.random.default_rng(1)
    image = rng.standard_normal((50, 55)) * 1e3 + 7.0
    kernel = rng.standard_normal(shape)
    want, abs_sum = oracle(image, kernel)
    got = correlate_direct(image, kernel)
    taps = shape[0] * shape[1]
    # both sums add taps products: each within taps * eps of the sum of |products|
    assert np.all(np.abs(got - want) <= 2.0 * taps * EPS * abs_sum)


@pytest.mark.parametrize("shape", [s for s in KERNELS if s[0] * s[1] > DIRECT_TAPS])
def test_blocked_dft_within_its_bound(shape):
    image, kernel = _integer_case(shape, seed=2)
    want, _ = oracle(image, kernel)
    got = correlate_dft(image, kernel)
    peak = float(np.abs(image).max())
    bound = fft_error_bound(image.shape, peak, peak, kernel)  # its blocks' RMS is at most the peak
    err = np.abs(got - want)
    assert err.max() > 0  # it does round: the bound is not vacuous
    assert np.all(err <= bound), (err.max(), bound)


@pytest.mark.parametrize("shape", [s for s in KERNELS if s[0] * s[1] <= DIRECT_TAPS])
def test_blocked_dft_refuses_small_kernels(shape):
    image, kernel = _integer_case(shape)
    with pytest.raises(ValueError, match="more than 49 taps"):
        correlate_dft(image, kernel)


@pytest.mark.parametrize("shape", KERNELS)
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_fft_within_its_bound(shape, offset):
    image, kernel = _integer_case(shape, seed=3)
    image += offset
    want, _ = oracle(image, kernel)
    corr = FFTCorrelator(image, workers=1)
    got = corr(kernel)
    bound = corr.error_bound(kernel)
    rms, peak = float(np.sqrt(np.mean(image**2))), float(np.abs(image).max())
    documented = EPS * (2.0 * np.log2(np.prod(corr.grid)) * rms * np.abs(kernel).sum()
                        + 6.0 * np.sqrt(np.count_nonzero(kernel)) * np.sqrt((kernel**2).sum()) * peak)
    np.testing.assert_allclose(bound, documented, rtol=1e-12)
    err = np.abs(got - want)
    assert np.all(err <= bound), (err.max(), bound)
    # the spectrum is reused: a second kernel on the same correlator is as good
    np.testing.assert_allclose(corr(kernel[::-1, ::-1]), oracle(image, kernel[::-1, ::-1])[0], rtol=0, atol=bound)


@pytest.mark.parametrize("kernel_shape, grid", [((1, 1), (4, 6)), ((5, 7), (16, 18)), ((64, 64), (480, 640)),
                                                ((33, 17), (250, 128)), ((40, 40), (40, 40)), ((3, 90), (81, 96))])
@pytest.mark.parametrize("workers", [1, 2])
def test_kernel_spectrum_is_rfft2(kernel_shape, grid, workers):
    """Transforming only the kernel's rows gives scipy's rfft2 values exactly (same transforms, same values)."""
    kernel = np.random.default_rng(sum(kernel_shape)).normal(size=kernel_shape) * 1e3
    want = sfft.rfft2(kernel, grid, workers=workers)
    got = kernel_spectrum(kernel, grid, workers=workers)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_fft_grid_never_wraps_valid_outputs():
    image, kernel = _integer_case((20, 30), seed=4)
    corr = FFTCorrelator(image, workers=1)
    assert corr.grid[0] >= image.shape[0] and corr.grid[1] >= image.shape[1]
    got = corr(kernel)
    assert got.shape == (41, 41)
    np.testing.assert_allclose(got, oracle(image, kernel)[0], rtol=0, atol=corr.error_bound(kernel))



def _bound_images():
    """Integer images (exact direct sums are the truth) the transforms' bound must hold on."""
    import cv2
    import skimage.data

    rng = np.random.default_rng(11)
    camera = skimage.data.camera()[:200, :260].astype(np.float64)
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)[100:300, 50:310].astype(np.float64)
    spike = np.zeros((200, 260))
    spike[100, 130] = 1000.0
    images = {"camera": camera, "astronaut": astronaut, "noise": np.round(rng.normal(0.0, 50.0, (200, 260))),
              "offset": camera + 10000.0, "dark": np.round(np.clip(camera / 32.0 - 4.0, 0.0, None)), "spike": spike}
    for name, image in list(images.items()):
        images[name + "-centred"] = image - np.round(image.mean())
        images[name + "-squared"] = (image - np.round(image.mean())) ** 2  # the planes masked ncc sums
    return images


def _bound_kernels(image, t):
    """Masks, fractional weights (as integers), their squares, boxes, templates (raw, masked, centred), noise."""
    yy, xx = np.mgrid[:t, :t]
    r = np.hypot(yy - (t - 1) / 2, xx - (t - 1) / 2) / (t / 2)
    disc = (r <= 1.0).astype(np.float64)
    weights = np.round(np.clip((1.0 - r) / 0.2, 0.0, 1.0) * 16.0)
    patch = np.round(image[40 : 40 + t, 60 : 60 + t])
    centred = patch - np.round(patch[disc > 0].mean())
    noise = np.round(np.random.default_rng(t).normal(0.0, 10.0, (t, t)))
    return {"disc": disc, "weights": weights, "weights2": weights**2, "box": np.ones((t, t)), "template": patch,
            "masked-template": disc * centred, "weighted-template": weights**2 * centred, "noise": noise}


BOUND_IMAGES = _bound_images()


@pytest.mark.parametrize("routine", ["scipy", "opencv-blocked"])
@pytest.mark.parametrize("t", [3, 8, 16, 33, 64, 100])
@pytest.mark.parametrize("name", sorted(BOUND_IMAGES))
def test_transform_bounds_hold_with_a_margin_of_two(name, t, routine):
    """Every transform's actual error <= half its bound (fft_error_bound), on integer data whose direct
    sums are exact: masks and weights (non-negative kernels, whose spectrum peaks at sum(k) at frequency 0:
    a bound in ||k||_2 alone was exceeded 4-9x there), templates, a single spike (all the energy in one
    output), a DC offset, a dark image."""
    image = BOUND_IMAGES[name]
    for kind, kernel in _bound_kernels(image, t).items():
        if not kernel.any() or (routine == "opencv-blocked" and t * t <= DIRECT_TAPS):
            continue
        truth = correlate_direct(image, kernel)
        if routine == "opencv-blocked":
            got = correlate_dft(image, kernel)
            peak = float(np.abs(image).max())
            bound = fft_error_bound(image.shape, peak, peak, kernel)
        else:
            corr = FFTCorrelator(image, workers=1)
            got = corr(kernel)
            bound = corr.error_bound(kernel)
        assert got.dtype == np.float64
        err = float(np.abs(got - truth).max())
        assert err <= 0.5 * bound, f"{kind}: error {err:.3g} > half the bound {bound:.3g}"


def test_the_direct_threshold_is_opencvs():
    # below it, correlate_direct is one OpenCV call and exact on integers; above, pieces of at most 49 taps
    assert correlate.OPENCV_DIRECT_TAPS == DIRECT_TAPS
