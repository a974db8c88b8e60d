"""One search, described once: :class:`SearchJob`, what every strategy takes.

:func:`matcher.find` and :func:`matcher.find_many` validate their options and
build a job: the image cropped to ``region`` (and where the crop sits), the
templates with their masks, labels and sizes, the method's record and the
checked options. Every search strategy (:mod:`.exhaustive`, :mod:`.tiled`,
:mod:`.pyramid`) reads the same job and returns matches in the job's image
coordinates; :meth:`SearchJob.to_image` moves them to the full image.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import MatcherError, TemplateTooLargeError
from ..methods import LOWER_IS_BETTER, NORMALIZED_METHODS, get_method
from ..scores.inputs import PRECISIONS, as_array, check_choice

__all__ = ["SearchJob", "make_job", "check_find_options", "crop_region", "spatial_shape", "THRESHOLD_RANGES"]

THRESHOLD_RANGES = {
    "ssd": (0.0, math.inf),
    "ssd_normed": (0.0, 1.0),
    "ccorr": (-math.inf, math.inf),
    "ccorr_normed": (-1.0, 1.0),
    "ccoeff": (-math.inf, math.inf),
    "ncc": (-1.0, 1.0),
}
"""Allowed ``threshold`` per method (inclusive; infinite bounds mean "any finite number")."""


@dataclass(frozen=True)
class SearchJob:
    """A validated search: what to look for, where, and how many.

    ``image`` is the searched array (the region's crop, as given: not
    converted), ``origin`` the crop's ``(x, y)`` in the full image.
    ``templates``, ``masks`` (entries may be None), ``labels`` and ``sizes``
    (``(height, width)``, None where a template is not array-like: the engine
    reports that) are parallel lists. ``method`` is a
    :class:`matcher.methods.Method`; the other fields are :func:`matcher.find`'s
    options, checked.
    """

    image: np.ndarray
    origin: tuple
    templates: list
    masks: list
    labels: list
    sizes: list
    method: object
    threshold: "float | None"
    max_matches: "int | None"
    max_overlap: float
    subpixel: bool
    precision: str

    @property
    def floor(self):
        """The threshold as a goodness (higher is better), or None."""
        if self.threshold is None:
            return None
        return -self.threshold if self.method.lower_is_better else self.threshold

    @property
    def image_hw(self):
        """``(height, width)`` of the searched image (a 1-D image is one row)."""
        shape = np.shape(self.image)
        return (1, shape[0]) if len(shape) == 1 else tuple(shape[:2])

    def to_image(self, matches):
        """``matches`` found in the searched crop, in full-image coordinates."""
        return [m.moved(*self.origin) for m in matches]


def make_job(image, templates, masks, labels, method, *, threshold, max_matches, max_overlap, region,
             subpixel, precision):
    """A :class:`SearchJob` from already checked options (``method`` may be a name or a record).

    Crops the image to ``region`` (:func:`crop_region`) and refuses templates
    of different sizes for methods whose scores grow with the template's area.
    """
    method = get_method(method)
    sizes = [spatial_shape(t) for t in templates]
    known = [s for s in sizes if s is not None]
    if not method.normalised and len(set(known)) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in dict.fromkeys(known))
        raise MatcherError(
            f"method {method.name!r} scores grow with the template's area, so they cannot be ranked across "
            f"templates of different sizes (width x height: {shown}); use one of {NORMALIZED_METHODS}, "
            "templates of one size, or one find() call per template", param="method")
    origin = (0, 0)
    if region is not None:
        image, origin = crop_region(image, region, sizes)
    return SearchJob(image, origin, list(templates), list(masks), list(labels), sizes, method, threshold,
                     max_matches, max_overlap, subpixel, precision)


def spatial_shape(template):
    """``(height, width)`` of a template (a 1-D one is one row), or None if it is not array-like.

    >>> spatial_shape(np.zeros((3, 4, 3))), spatial_shape([1, 2, 3]), spatial_shape(5)
    ((3, 4), (1, 3), None)
    """
    try:
        shape = np.shape(template)
    except ValueError:
        return None
    if len(shape) == 0:
        return None
    return (1, shape[0]) if len(shape) == 1 else tuple(int(s) for s in shape[:2])


def crop_region(image, region, sizes):
    """The part of ``image`` inside ``region = (x, y, width, height)``, and the region's ``(x, y)``.

    ``sizes`` are the templates' ``(height, width)`` (None entries are
    skipped): the region must hold each of them.

    Raises
    ------
    MatcherError
        A region outside the image or with a non-positive size (``param="region"``).
    TemplateTooLargeError
        A template larger than the region.
    TypeError
        Not four integers.

    Examples
    --------
    >>> crop, origin = crop_region(np.arange(20).reshape(4, 5), (1, 2, 3, 2), [(2, 2)])
    >>> crop.tolist(), origin
    ([[11, 12, 13], [16, 17, 18]], (1, 2))
    """
    shown = repr(region)
    if isinstance(region, (str, bytes, Mapping)) or not hasattr(region, "__len__"):
        raise TypeError(f"region must be a tuple (x, y, width, height) of 4 integers, got {shown}")
    if len(region) != 4:
        raise MatcherError(f"region must be a tuple (x, y, width, height) of 4 integers, got {len(region)} "
                           f"values: {shown}", param="region")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in region):
        raise TypeError(f"region must be a tuple (x, y, width, height) of 4 integers, got {shown}")
    x, y, w, h = (int(v) for v in region)
    arr = as_array("image", image)
    ih, iw = (1, arr.shape[0]) if arr.ndim == 1 else arr.shape[:2]
    known = [s for s in sizes if s is not None]
    what = (f"region (x={x}, y={y}, width={w}, height={h}), image {iw}x{ih}, template"
            f"{'s' if len(known) > 1 else ''} " + ", ".join(f"{tw}x{th}" for th, tw in known) + " (width x height)")
    if w < 1 or h < 1:
        raise MatcherError(f"region width and height must be positive: {what}", param="region")
    if x < 0 or y < 0 or x + w > iw or y + h > ih:
        raise MatcherError(f"region must lie inside the image: {what}", param="region")
    if any(th > h or tw > w for th, tw in known):
        raise TemplateTooLargeError(f"region is smaller than the template: {what}", param="region")
    crop = arr[x : x + w] if arr.ndim == 1 else arr[y : y + h, x : x + w]
    return crop, (x, y)


def check_find_options(*, method, threshold, max_matches, max_overlap, subpixel, precision):
    """:func:`matcher.find`'s options, checked: a dict of :func:`make_job`'s keyword arguments."""
    method = get_method(method).name
    check_choice("precision", precision, PRECISIONS)
    threshold = _check_threshold(threshold, method)
    max_matches = _check_max_matches(max_matches)
    max_overlap = _check_max_overlap(max_overlap)
    if not isinstance(subpixel, (bool, np.bool_)):
        raise TypeError(f"subpixel must be True or False, got {subpixel!r}")
    return {"method": method, "threshold": threshold, "max_matches": max_matches, "max_overlap": max_overlap,
            "subpixel": bool(subpixel), "precision": precision}


def _check_threshold(threshold, method):
    if threshold is None:
        return None
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise TypeError(f"threshold must be a real number or None, got {type(threshold).__name__}")
    threshold = float(threshold)
    lo, hi = THRESHOLD_RANGES[method]
    if not (math.isfinite(threshold) and lo <= threshold <= hi):
        if lo == -math.inf:
            allowed = "a finite number"
        elif hi == math.inf:
            allowed = f"a finite number >= {lo:g}"
        else:
            allowed = f"a number in [{lo:g}, {hi:g}]"
        bound = "an upper" if method in LOWER_IS_BETTER else "a lower"
        raise MatcherError(f"threshold for method {method!r} ({bound} bound on the score) must be {allowed}, "
                           f"got {threshold!r}")
    return threshold


def _check_max_matches(max_matches):
    if max_matches is None:
        return None
    if isinstance(max_matches, (bool, np.bool_)) or not isinstance(max_matches, (int, np.integer)):
        raise TypeError(f"max_matches must be a positive integer or None, got {max_matches!r} "
                        f"({type(max_matches).__name__})")
    if max_matches < 1:
        raise MatcherError(f"max_matches must be a positive integer or None, got {max_matches}")
    return int(max_matches)


def _check_max_overlap(max_overlap):
    if isinstance(max_overlap, (bool, np.bool_)) or not isinstance(max_overlap, (int, float, np.integer, np.floating)):
        raise TypeError(f"max_overlap must be a number in [0, 1], got {type(max_overlap).__name__}")
    if not 0.0 <= float(max_overlap) <= 1.0:  # NaN fails too
        raise MatcherError(f"max_overlap must be a number in [0, 1] (intersection over union), got {max_overlap!r}")
    return float(max_overlap)
