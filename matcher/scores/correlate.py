"""Valid-mode 2-D cross-correlation, direct or through the FFT (private).

``out[y, x] = sum_{r, s} image[y + r, x + s] * kernel[r, s]`` for every
position where the kernel fits inside the image: no flip (that is
correlation; convolution flips the kernel first), no padding.

Both paths return float64. The direct path is exact for integer data
(every partial sum is an integer below 2**53); the FFT paths (convolution
theorem: scipy's real transforms on a ``next_fast_len`` grid with a reusable
image spectrum, or OpenCV's blocked DFT for one mid-sized kernel) have a
rounding error that :func:`fft_error_bound` bounds.
"""

import cv2
import numpy as np
import scipy.fft as sfft

from .error_model import EPS64

OPENCV_DIRECT_TAPS = 49
"""OpenCV's ``filter2D`` sums up to this many kernel taps directly (float64 data); from one more, its blocked DFT."""
BLOCKED_DFT_SIDE = 256
"""Up to this kernel side, OpenCV's blocked DFT (:func:`correlate_dft`) beats scipy's full-grid FFT for one kernel
on large images (measured 20-35% faster on 2048^2 images, 16-256 px templates)..."""
SCIPY_FFT_FROM = ((1 << 17, 24), (1 << 19, 96), (1 << 21, 128))
"""...but on images of up to ``pixels``, scipy's FFT (with the kernel's rows only transformed,
:func:`kernel_spectrum`) is faster from a kernel side of ``side``, for each ``(pixels, side)``: one grid
transform of a small image costs less than the blocks' overhead (320x240, 24-96 px: 1.8-1.9 against
2.3-2.6 ms), and a large kernel makes many blocks (480x640 with 128 px: 6.8 against 10.6 ms; 720x1280
with 256 px: 21.6 against 33 ms)."""
PARALLEL_FFT_PIXELS = 1 << 19
"""Transforms of fewer points than this run on one thread (two were slower: 7.5 against 6.0 ms at 480x640)."""


def _filter_valid(image, kernel, out_shape):
    """Direct correlation of a small kernel (< 50 taps) with OpenCV, cropped to ``out_shape``."""
    full = cv2.filter2D(image, cv2.CV_64F, kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    return full[: out_shape[0], : out_shape[1]]


def correlate_direct(image, kernel):
    """Valid correlation by summing products directly (kernel pieces of < 50 taps)."""
    H, W = image.shape
    h, w = kernel.shape
    out_shape = (H - h + 1, W - w + 1)
    if h * w <= OPENCV_DIRECT_TAPS:
        return _filter_valid(image, kernel, out_shape)
    # Pieces of < 50 taps: as many whole rows as fit, or column pieces of one row.
    rows = max(1, OPENCV_DIRECT_TAPS // w)
    cols = w if rows > 1 else min(w, OPENCV_DIRECT_TAPS)
    out = None
    for r in range(0, h, rows):
        for c0 in range(0, w, cols):
            piece = kernel[r : r + rows, c0 : c0 + cols]
            if not piece.any():
                continue
            ph, pw = piece.shape
            src = image[r : r + out_shape[0] + ph - 1, c0 : c0 + out_shape[1] + pw - 1]
            part = _filter_valid(np.ascontiguousarray(src), np.ascontiguousarray(piece), out_shape)
            out = part.copy() if out is None else out.__iadd__(part)
    return np.zeros(out_shape) if out is None else out


def correlate_dft(image, kernel):
    """Valid correlation through OpenCV's blocked DFT: one kernel of 50 taps or more, float64.

    OpenCV's ``filter2D`` transforms the image in cache-sized blocks, which
    is faster than one full-grid FFT for kernels up to a few hundred pixels
    when the image spectrum is not reused. Its error is bounded by
    :func:`fft_error_bound` with the image's peak magnitude in place of its
    RMS (a block's RMS is at most the peak).
    """
    H, W = image.shape
    h, w = kernel.shape
    if h * w <= OPENCV_DIRECT_TAPS:
        raise ValueError(f"correlate_dft needs a kernel of more than {OPENCV_DIRECT_TAPS} taps, got {h}x{w}")
    return _filter_valid(image, kernel, (H - h + 1, W - w + 1))


class FFTCorrelator:
    """Correlates one image with several kernels of one shape, reusing its spectrum.

    The image is transformed once (``rfft2`` on a ``next_fast_len`` grid at
    least as large as the image: valid outputs never wrap around); each kernel
    then costs one forward transform (of its rows only: :func:`kernel_spectrum`)
    and one inverse.
    """

    def __init__(self, image, *, workers=-1):
        self.image_shape = image.shape
        self.grid = tuple(sfft.next_fast_len(int(n), real=True) for n in image.shape)
        self.workers = workers
        self._spectrum = sfft.rfft2(image, self.grid, workers=workers)
        # OpenCV's norms: no temporary arrays (and no BLAS, whose spinning threads slowed the transforms 10x)
        self.rms = cv2.norm(image, cv2.NORM_L2) / np.sqrt(max(image.size, 1))
        self.peak = cv2.norm(image, cv2.NORM_INF) if image.size else 0.0

    def __call__(self, kernel):
        H, W = self.image_shape
        h, w = kernel.shape
        spec = kernel_spectrum(kernel, self.grid, workers=self.workers)
        np.conjugate(spec, out=spec)
        spec *= self._spectrum
        full = sfft.irfft2(spec, self.grid, workers=self.workers)
        return full[: H - h + 1, : W - w + 1]

    def error_bound(self, kernel):
        """A bound on the absolute rounding error of one output value (:func:`fft_error_bound`)."""
        return fft_error_bound(self.grid, self.rms, self.peak, kernel)


def kernel_spectrum(kernel, grid, *, workers=-1):
    """``rfft2(kernel, grid)`` of a kernel much smaller than the grid, the same values at a fraction of the cost.

    A 2-D real transform is real transforms of the rows, then complex ones of
    the columns. The rows past the kernel's are zeros (so are their
    transforms): only the kernel's ``h`` rows are transformed, then the
    columns, zero-padded to the grid. Identical to ``scipy.fft.rfft2`` (the
    same transforms of the same values); 2.7x faster for a 64 px kernel on a
    480 x 640 grid.

    Examples
    --------
    >>> k = np.arange(6.0).reshape(2, 3)
    >>> bool(np.array_equal(kernel_spectrum(k, (8, 10)), sfft.rfft2(k, (8, 10))))
    True
    """
    rows = sfft.rfft(kernel, grid[1], axis=1, workers=workers)
    return sfft.fft(rows, grid[0], axis=0, workers=workers)


def blocked_dft_wins(kernel_shape, image_pixels):
    """Whether OpenCV's blocked DFT (:func:`correlate_dft`) beats :class:`FFTCorrelator` for one kernel.

    >>> blocked_dft_wins((32, 32), 640 * 480), blocked_dft_wins((128, 128), 640 * 480)
    (True, False)
    >>> blocked_dft_wins((16, 16), 320 * 240), blocked_dft_wins((32, 32), 320 * 240)
    (True, False)
    """
    side = max(kernel_shape)
    return side <= BLOCKED_DFT_SIDE and not any(image_pixels <= p and side >= s for p, s in SCIPY_FFT_FROM)


def fft_workers(points, workers):
    """Threads for a transform of ``points`` values: ``workers``, or 1 under :data:`PARALLEL_FFT_PIXELS`.

    >>> fft_workers(640 * 480, 2), fft_workers(2048 * 2048, 2)
    (1, 2)
    """
    return workers if points >= PARALLEL_FFT_PIXELS else 1


def fft_error_bound(grid, image_rms, image_peak, kernel):
    """Per-output error bound of a correlation through transforms (scipy's FFT or OpenCV's blocked DFT).

    ``eps (A log2(P) rms ||k||_1 + B sqrt(taps) ||k||_2 peak)`` for a grid of
    ``P`` points, the image's RMS and largest magnitude ``peak``, and the
    kernel's ``taps`` non-zero values: the transforms' rounding spreads over
    the grid in proportion to the image's RMS and to the largest magnitude of
    the kernel's spectrum, at most ``||k||_1`` (reached at frequency 0 by a
    non-negative kernel: a mask); an output as large as its window allows
    rounds in proportion to itself.
    (A, B) = :data:`_FFT_MODEL`. OpenCV's blocked DFT transforms blocks whose
    RMS is at most the image's peak: pass the peak for ``image_rms``.

    Parameters
    ----------
    grid : tuple of int
        The transform's grid.
    image_rms, image_peak : float
    kernel : ndarray

    Returns
    -------
    float

    Examples
    --------
    >>> bool(np.isclose(fft_error_bound((8, 8), 1.0, 1.0, np.ones((2, 2))), EPS64 * (2.0 * 6 * 4 + 6.0 * 2 * 2)))
    True
    """
    # Measured on photographs, noise, a DC offset, a dark image and a single spike with masks,
    # fractional weights, their squares, boxes, templates (masked and centred) and random
    # kernels of 3-100 px: at most 0.25 of this bound (0.35 with transforms in single precision)
    # (tests/test_correlate.py pins a margin of 2).
    spread, local = _FFT_MODEL
    k = np.asarray(kernel, dtype=np.float64)
    size = float(np.prod(grid))
    taps = float(np.count_nonzero(k))
    return EPS64 * (spread * np.log2(max(size, 2.0)) * image_rms * float(np.abs(k).sum())
                  + local * np.sqrt(taps) * float(np.sqrt(np.sum(k * k))) * image_peak)


_FFT_MODEL = (2.0, 6.0)
"""(A, B) of :func:`fft_error_bound`."""
