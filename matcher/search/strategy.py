"""Which search strategy serves a call: a pure function of the request's shape.

Like :func:`matcher.choose_algorithm` for the correlations, the choice is
predictable, testable and overridable: ``angles`` or ``scales`` ask for the
turned and scaled search, ``pyramid=True`` for the coarse-to-fine search; otherwise an image whose float64 copy would exceed
:data:`TILED_ABOVE_BYTES` is searched tile by tile, and anything else
exhaustively. Every strategy takes a :class:`~matcher.search.job.SearchJob`.
"""

import math

__all__ = ["STRATEGIES", "TILED_ABOVE_BYTES", "choose_strategy"]

STRATEGIES = ("exhaustive", "tiled", "pyramid", "rotated")
"""The search strategies, by name."""

TILED_ABOVE_BYTES = 512 << 20
"""Images whose float64 copy would be larger than this are searched tile by tile."""


def choose_strategy(image_shape, *, pyramid=False, turned=False):
    """The strategy for searching an image of ``image_shape`` (the region's, if one is given).

    Parameters
    ----------
    image_shape : tuple of int
        ``(N,)``, ``(H, W)`` or ``(H, W, C)``.
    pyramid : bool, keyword-only
        The caller asked for the coarse-to-fine search.
    turned : bool, keyword-only
        The caller asked for the template turned or scaled (``angles``, ``scales``).

    Returns
    -------
    str
        One of :data:`STRATEGIES`.

    Examples
    --------
    >>> choose_strategy((480, 640)), choose_strategy((480, 640), pyramid=True)
    ('exhaustive', 'pyramid')
    >>> choose_strategy((16384, 16384)), choose_strategy((480, 640), turned=True)
    ('tiled', 'rotated')
    """
    if turned:
        return "rotated"
    if pyramid:
        return "pyramid"
    if len(image_shape) >= 2 and math.prod(image_shape) * 8 > TILED_ABOVE_BYTES:
        return "tiled"
    return "exhaustive"
