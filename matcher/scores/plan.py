"""Choosing between direct and FFT correlation from the shapes alone.

Like :func:`scipy.signal.choose_conv_method`, this is a pure function of the
problem's shape, so the choice is predictable, testable and overridable:
``algorithm="auto"`` asks it; ``"direct"`` or ``"fft"`` is always obeyed.
"""

import math

import scipy.fft as sfft

from .correlate import OPENCV_DIRECT_TAPS
from .inputs import check_choice

__all__ = ["choose_algorithm"]

# Measured on the reference machine (float64, one image channel):
# OpenCV's direct filter costs ~0.08 ns per multiply-add below 50 taps, the
# row-by-row direct path ~0.3 ns above; a real FFT correlation costs ~1.6 ns
# per grid point per log2(grid size) for its three transforms.
_NS_PER_TAP_SMALL = 0.08
_NS_PER_TAP_LARGE = 0.3
_NS_PER_FFT_POINT_LOG = 1.6


def choose_algorithm(image_shape, template_shape, *, masked=False):
    """Pick ``"direct"`` or ``"fft"`` for correlating a template with an image.

    The estimated costs are

    - direct: ``outputs * taps * c_direct`` (``c_direct`` smaller below 50 taps,
      where OpenCV's vectorised filter applies),
    - fft: ``k * P * log2(P) * c_fft`` with ``P`` the padded (``next_fast_len``)
      grid and ``k`` the number of transforms: one per kernel plus the image's,
      and a masked match needs more kernels than an unmasked one,

    and the cheaper one wins.

    Parameters
    ----------
    image_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``; 1-D ``(N,)`` is one row.
    template_shape : tuple of int
        ``(h, w)`` or ``(h, w, C)``; 1-D ``(n,)`` is one row.
    masked : bool, keyword-only
        Whether a mask is used (more correlations per channel).

    Returns
    -------
    str
        ``"direct"`` or ``"fft"``.

    Raises
    ------
    ValueError
        If a shape is empty or the template does not fit in the image.

    Examples
    --------
    >>> choose_algorithm((512, 512), (3, 3))
    'direct'
    >>> choose_algorithm((1024, 1024), (64, 64))
    'fft'
    """
    (H, W), (h, w) = _plane(image_shape, "image_shape"), _plane(template_shape, "template_shape")
    if h > H or w > W:
        raise ValueError(f"template_shape {tuple(template_shape)} does not fit in image_shape {tuple(image_shape)}")
    taps = h * w
    outputs = (H - h + 1) * (W - w + 1)
    kernels = 4 if masked else 1
    per_tap = _NS_PER_TAP_SMALL if taps <= OPENCV_DIRECT_TAPS else _NS_PER_TAP_LARGE
    direct = kernels * outputs * taps * per_tap
    grid = sfft.next_fast_len(H, real=True) * sfft.next_fast_len(W, real=True)
    fft = (kernels * 2 + 1) / 3 * grid * math.log2(max(grid, 2)) * _NS_PER_FFT_POINT_LOG
    return "direct" if direct <= fft else "fft"


def _plane(shape, name):
    try:
        dims = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if len(dims) == 1:
        dims = (1,) + dims
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise ValueError(f"{name} must be (N,), (H, W) or (H, W, C) with positive sizes, got {shape!r}")
    return dims[:2]


def resolve_algorithm(algorithm, image_shape, template_shape, *, masked):
    """Return the explicit choice, or ask :func:`choose_algorithm` for ``"auto"``."""
    from .inputs import ALGORITHMS

    check_choice("algorithm", algorithm, ALGORITHMS)
    if algorithm == "auto":
        return choose_algorithm(image_shape, template_shape, masked=masked)
    return algorithm
