"""One search, described once: :class:`SearchJob`, what every strategy takes.

:func:`matcher.find` and :func:`matcher.find_many` validate their options and
build a job: the image cropped to ``region`` (and where the crop sits), the
templates with their masks, labels and sizes, the method's record and the
checked options. Every search strategy (:mod:`.exhaustive`, :mod:`.tiled`,
:mod:`.pyramid`) reads the same job and returns matches in the job's image
coordinates; :meth:`SearchJob.to_image` moves them to the full image.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import MatcherError, TemplateTooLargeError
from ..methods import NORMALIZED_METHODS, get_method
from ..scores.inputs import as_array

__all__ = ["SearchJob", "make_job", "crop_region", "spatial_shape"]

@dataclass(frozen=True)
class SearchJob:
    """A validated search: what to look for, where, and how many.

    ``image`` is the searched array (the region's crop, as given: not
    converted), ``origin`` the crop's ``(x, y)`` in the full image.
    ``templates``, ``masks`` (entries may be None), ``labels`` and ``sizes``
    (``(height, width)``, None where a template is not array-like: the engine
    reports that) are parallel lists. ``method`` is a
    :class:`matcher.methods.Method`; the other fields are :func:`matcher.find`'s
    options, checked; ``turn`` is ``(angles, scales, angle_step, scale_step)`` for
    the turned and scaled search, None otherwise.
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
    turn: "tuple | None" = None

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


def make_job(image, templates, masks, labels, options):
    """A :class:`SearchJob` for ``options`` (a :class:`matcher.options.FindOptions`, already checked).

    Crops the image to ``options.region`` (:func:`crop_region`) and refuses
    templates of different sizes for methods whose scores grow with the
    template's area.
    """
    method = get_method(options.method)
    sizes = [spatial_shape(t) for t in templates]
    known = [s for s in sizes if s is not None]
    if not method.normalised and len(set(known)) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in dict.fromkeys(known))
        raise MatcherError(
            f"method {method.name!r} scores grow with the template's area, so they cannot be ranked across "
            f"templates of different sizes (width x height: {shown}); use one of {NORMALIZED_METHODS}, "
            "templates of one size, or one find() call per template", param="method")
    origin = (0, 0)
    if options.region is not None:
        image, origin = crop_region(image, options.region, sizes)
    turn = ((options.angles, options.scales, options.angle_step, options.scale_step)
            if options.turned else None)
    return SearchJob(image, origin, list(templates), list(masks), list(labels), sizes, method, options.threshold,
                     options.max_matches, options.max_overlap, options.subpixel, options.precision, turn)


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

    ``region`` is four integers with ``x, y >= 0`` and ``width, height >= 1``
    (as :class:`matcher.options.FindOptions` checks it); ``sizes`` are the
    templates' ``(height, width)`` (None entries are skipped): the region must
    hold each of them.

    Raises
    ------
    MatcherError
        A region reaching outside the image (``param="region"``).
    TemplateTooLargeError
        A template larger than the region (``param="region"``).

    Examples
    --------
    >>> crop, origin = crop_region(np.arange(20).reshape(4, 5), (1, 2, 3, 2), [(2, 2)])
    >>> crop.tolist(), origin
    ([[11, 12, 13], [16, 17, 18]], (1, 2))
    """
    x, y, w, h = region
    arr = as_array("image", image)
    ih, iw = (1, arr.shape[0]) if arr.ndim == 1 else arr.shape[:2]
    known = [s for s in sizes if s is not None]
    what = (f"region (x={x}, y={y}, width={w}, height={h}), image {iw}x{ih}, template"
            f"{'s' if len(known) > 1 else ''} " + ", ".join(f"{tw}x{th}" for th, tw in known) + " (width x height)")
    if x + w > iw or y + h > ih:
        raise MatcherError(f"region must lie inside the image: {what}", param="region")
    if any(th > h or tw > w for th, tw in known):
        raise TemplateTooLargeError(f"region is smaller than the template: {what}", param="region")
    crop = arr[x : x + w] if arr.ndim == 1 else arr[y : y + h, x : x + w]
    return crop, (x, y)
