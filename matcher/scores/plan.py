"""How a score map is computed, chosen from the shapes alone.

Like :func:`scipy.signal.choose_conv_method`, these are pure functions of the
problem's shape, so the choice is predictable, testable and overridable:

- :func:`choose_algorithm`: direct or FFT correlation; ``algorithm="auto"``
  asks it, ``"direct"`` or ``"fft"`` is always obeyed;
- :func:`choose_plan`: the algorithm and the working precision of the
  correlations (:class:`Plan`);
- :func:`band_bounds`: the horizontal bands a map is split into, one per thread.
"""

import math
from dataclasses import dataclass

import scipy.fft as sfft

from .correlate import OPENCV_DIRECT_TAPS
from .inputs import ALGORITHMS, PRECISIONS, check_choice

__all__ = ["choose_algorithm", "choose_plan", "band_bounds", "Plan",
           "MIN_FLOAT32_OUTPUTS", "DIRECT_FLOAT32_SIDE", "MIN_BAND_OUTPUTS"]

MIN_FLOAT32_OUTPUTS = 1 << 12
"""Maps with fewer positions are correlated in float64 (cheap there, exact to the last bits)."""
DIRECT_FLOAT32_SIDE = 11
"""OpenCV's float32 ``filter2D`` sums products directly up to 11 x 11 (its DFT above)."""
MIN_BAND_OUTPUTS = 1 << 18
"""Maps with fewer positions are scored in one piece, not in bands."""

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
    check_choice("algorithm", algorithm, ALGORITHMS)
    if algorithm == "auto":
        return choose_algorithm(image_shape, template_shape, masked=masked)
    return algorithm


@dataclass(frozen=True)
class Plan:
    """How one score map is computed: ``algorithm`` ("direct" or "fft") and ``work_dtype``
    ("float32" or "float64", the correlations' precision)."""

    algorithm: str
    work_dtype: str


def choose_plan(image_shape, template_shape, *, masked=False, precision="fast", algorithm="auto"):
    """The plan for scoring a template over an image.

    - ``algorithm``: as asked, or :func:`choose_algorithm` for ``"auto"``;
    - ``work_dtype``: float32 for unmasked maps of at least
      :data:`MIN_FLOAT32_OUTPUTS` positions in ``"fast"`` precision when
      OpenCV's float32 functions honour the algorithm (its direct filter sums
      directly only up to :data:`DIRECT_FLOAT32_SIDE` a side); float64 for
      masks, smaller maps and ``"exact"``.

    Whatever the plan, the scores meet the precision's contract: windows whose
    error bound exceeds it are recomputed.

    Parameters
    ----------
    image_shape, template_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``; 1-D ``(N,)`` is one row.
    masked : bool, keyword-only
    precision : {"fast", "exact"}, keyword-only
    algorithm : {"auto", "direct", "fft"}, keyword-only

    Returns
    -------
    Plan

    Examples
    --------
    >>> choose_plan((2048, 2048), (64, 64))
    Plan(algorithm='fft', work_dtype='float32')
    >>> choose_plan((2048, 2048), (64, 64), precision="exact").work_dtype
    'float64'
    >>> choose_plan((2048, 2048), (64, 64), masked=True).work_dtype
    'float64'
    >>> choose_plan((2048, 2048), (12, 12), algorithm="direct")
    Plan(algorithm='direct', work_dtype='float64')
    """
    check_choice("precision", precision, PRECISIONS)
    algo = resolve_algorithm(algorithm, image_shape, template_shape, masked=masked)
    (H, W), (h, w) = _plane(image_shape, "image_shape"), _plane(template_shape, "template_shape")
    outputs = (H - h + 1) * (W - w + 1)
    if masked or outputs < MIN_FLOAT32_OUTPUTS or precision == "exact":
        return Plan(algo, "float64")
    if algo == "fft" or max(h, w) <= DIRECT_FLOAT32_SIDE:
        return Plan(algo, "float32")
    return Plan(algo, "float64")


def band_bounds(out_shape, tallest, bands):
    """Output-row boundaries of the horizontal bands a map is scored in: at most ``bands``.

    Maps under :data:`MIN_BAND_OUTPUTS` positions are not split, and bands are
    never thinner than the tallest template (a band reads that many more image
    rows than it outputs).

    Parameters
    ----------
    out_shape : (int, int)
        Output rows and columns (the smallest among the templates scored together).
    tallest : int
        The tallest template's height.
    bands : int
        Bands wanted: one per thread, or more where a deadline is checked between them.

    Returns
    -------
    list of int
        ``bounds[k]:bounds[k + 1]`` are band ``k``'s output rows.

    Examples
    --------
    >>> band_bounds((1000, 1000), 16, 2)
    [0, 500, 1000]
    >>> band_bounds((100, 100), 16, 2)
    [0, 100]
    """
    rows, cols = out_shape
    count = 1 if rows * cols < MIN_BAND_OUTPUTS else max(1, min(bands, rows // tallest))
    return [round(rows * k / count) for k in range(count + 1)]
