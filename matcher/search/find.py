"""Finding templates: where they are, how sure, and how many.

:func:`find` and :func:`find_many` check their options once, describe the
search as a :class:`~matcher.search.job.SearchJob`, let
:func:`~matcher.search.strategy.choose_strategy` pick the strategy
(exhaustive, tiled or pyramid) and run it. Every strategy reports matches
scored by definition (:mod:`matcher.search.report`), best first.
"""

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ..errors import MatcherError
from .exhaustive import matches_in, score_maps, search_exhaustive
from ..image import LoadedImage
from ..options import FindOptions
from .job import make_job
from .match import Match
from .pyramid import search_pyramid
from .rotated import rotated_iou, search_rotated
from .strategy import choose_strategy
from .tiled import search_tiled

__all__ = ["Match", "find", "find_many", "find_with_scores"]

_SEARCHES = {"exhaustive": search_exhaustive, "tiled": search_tiled,
             "pyramid": lambda job: search_pyramid(job)[0], "rotated": search_rotated}


def find(image, template, method="ncc", *, threshold=None, max_matches=1, max_overlap=0.3,
         region=None, subpixel=False, mask=None, precision="fast", pyramid=False, angles=None, scales=None,
         angle_step=None, scale_step=None):
    """Find ``template`` in ``image``: the best matches, best first.

    The score map is :func:`matcher.match_template`'s. A match is a local peak
    of it: a window scoring at least as well as its 8 neighbours (one window
    per plateau of equal scores, its first in row-major order), taken best
    first, and dropped if it overlaps an already taken match by more than
    ``max_overlap``, the intersection over union (IoU) of the two windows:
    ``area(A & B) / area(A | B)``. Taking only local peaks keeps the slope of a
    strong peak from showing up as a second match next to it, which greedy
    suppression over all pixels would allow once the window moves far enough.

    "Best" is the highest score, except for ``ssd`` and ``ssd_normed`` where it
    is the lowest. Ties are broken by position, row-major.

    Parameters
    ----------
    image, template : array_like or LoadedImage
        As in :func:`matcher.match_template`: 2-D gray, 3-D ``(H, W, C)``
        colour, or 1-D (a single row: ``y`` is 0 and ``height`` 1); or what
        :func:`matcher.load_image` returns, whose alpha channel (unless fully
        opaque) is then the template's mask when ``mask`` is not given. For a
        turned or scaled search (``angles``, ``scales``) the template may be a
        :class:`matcher.search.rotated.PreparedTemplate`
        (:func:`~matcher.search.rotated.turned_template`), reused as it is (its
        method, mask, ranges and steps) to search many images with one
        preparation.
    method : str or int
        One of :data:`matcher.METHODS` or OpenCV's ``TM_*`` constant (0-5).
    threshold : float, optional, keyword-only
        For ``ssd`` and ``ssd_normed`` an **upper** bound: keep scores
        ``<= threshold``. For the other methods a lower bound: keep scores
        ``>= threshold``. Range: ``[-1, 1]`` for ``ncc`` and ``ccorr_normed``,
        ``[0, 1]`` for ``ssd_normed``, ``>= 0`` for ``ssd``, any finite number
        for ``ccorr`` and ``ccoeff`` (:func:`matcher.options.threshold_range`). With a
        threshold, an empty list means "not found". ``None`` sets no bound:
        every local peak is a candidate, so ``max_matches=1`` returns the best
        window (the score map's arg-max, or arg-min; never an empty list), and
        ``max_matches=k`` the ``k`` best peaks that survive suppression, weak
        ones included: pass a threshold to mean "found".
    max_matches : int or None, keyword-only
        At most this many matches (a positive integer); ``None``: all.
    max_overlap : float in [0, 1], keyword-only
        Largest IoU between two returned windows. 0: windows never intersect;
        1: no suppression. Applied to the integer positions, before
        ``subpixel`` refinement (which moves each by at most half a pixel).
    region : (x, y, width, height), optional, keyword-only
        Search only windows lying entirely inside this rectangle of the image
        (integers, in pixels). Results are in full-image coordinates. The
        region must lie inside the image and be at least the template's size.
    subpixel : bool, keyword-only
        Refine each position by a 2-D quadratic least-squares fit over the
        3 x 3 scores around the peak (:func:`matcher.search.peaks.refine`), clamped
        to +-0.5 pixel per axis; along an axis where the peak is on the border
        of the score map (of the region's, with ``region``), the position
        stays integer. ``x`` and ``y`` are then
        floats. On photographs shifted by known fractional offsets the ``ncc``
        position error is about 0.06 pixel on average and 0.19 at worst over
        24 shifts (``tests/test_matches.py`` pins at most 0.1 and 0.25).
    mask : array_like, optional, keyword-only
        Template mask, passed to the engine unchanged.
    precision : {"fast", "exact"}, keyword-only
        Passed to the engine unchanged.
    angles, scales : (float, float), optional, keyword-only
        Find the template turned by an angle in ``angles`` (degrees,
        counter-clockwise as displayed; ``(-180, 180)`` is the full circle)
        and scaled by a factor in ``scales``
        (:func:`matcher.search.rotated.find_rotated`): each match then has its
        ``angle``, ``scale``, ``center`` and ``corners``, refined jointly to
        sub-pixel and sub-step precision; ``x, y, width, height`` is the
        turned box's bounding box and ``max_overlap`` is measured on the turned
        boxes. Normalised methods only; ``precision`` and ``subpixel`` do not
        apply (scores are by definition, poses always refined).
    angle_step, scale_step : float, optional, keyword-only
        The search's steps; default: the template's farthest pixel moves by
        half a pixel.
    pyramid : bool, keyword-only
        Coarse-to-fine search (:func:`matcher.search.pyramid.find_pyramid`, which
        also reports the path taken): much faster on large images, the same
        matches as the exhaustive search in all but rare cases, falling back
        to it when the coarse evidence is weak. Normalised methods only.

    Returns
    -------
    list of Match
        Best first; ``label`` is None and ``method`` the canonical method name.

    Raises
    ------
    MatcherError (a ValueError)
        An option out of its range (the message names it and the range); a
        region outside the image; any error of :func:`matcher.match_template`.
    TemplateTooLargeError (a MatcherError)
        The template is larger than the image or the region.
    TypeError
        An option of the wrong type (``max_matches`` a bool or float,
        ``subpixel`` not a bool, ...).

    Examples
    --------
    >>> image = np.zeros((6, 9))
    >>> image[1:3, 1:3] = image[3:5, 6:8] = [[1, 2], [3, 4]]
    >>> found = find(image, [[1, 2], [3, 4]], "ssd", threshold=0.5, max_matches=None)
    >>> [(m.x, m.y, m.score) for m in found]       # ssd: lower is better, threshold an upper bound
    [(1, 1, 0.0), (6, 3, 0.0)]
    >>> (m,) = find(image, [[1, 2], [3, 4]], "ncc", region=(4, 0, 5, 6))
    >>> m.to_dict()
    {'label': None, 'x': 6, 'y': 3, 'width': 2, 'height': 2, 'score': 1.0, 'center': {'x': 6.5, 'y': 3.5}, 'method': 'ncc', 'angle': 0.0, 'scale': 1.0, 'corners': [[6.0, 3.0], [7.0, 3.0], [7.0, 4.0], [6.0, 4.0]]}
    >>> find(image, [[1, 2], [3, 4]], "ncc", threshold=0.5, region=(2, 0, 4, 6))   # not found
    []
    """
    return find_with_scores(image, template, method, threshold=threshold, max_matches=max_matches,
                            max_overlap=max_overlap, region=region, subpixel=subpixel, mask=mask,
                            precision=precision, pyramid=pyramid, angles=angles, scales=scales,
                            angle_step=angle_step, scale_step=scale_step)[0]


def find_with_scores(image, template, method="ncc", *, threshold=None, max_matches=1, max_overlap=0.3,
                     region=None, subpixel=False, mask=None, precision="fast", pyramid=False, angles=None,
                     scales=None, angle_step=None, scale_step=None):
    """:func:`find`, and the score map it searched: ``(matches, scores)``.

    ``scores`` is :func:`matcher.match_template`'s map over the searched area
    (the region, if one is given: ``scores[0, 0]`` is the window at the
    region's corner), or None when the search never scored every window (the
    pyramid, the turned search, or the tiled search of a huge image). For a
    heat map beside the matches without scoring the image twice;
    :func:`find` is this function without the map.

    Examples
    --------
    >>> image = np.zeros((6, 9))
    >>> image[1:3, 1:3] = [[1, 2], [3, 4]]
    >>> found, scores = find_with_scores(image, [[1, 2], [3, 4]], "ssd")
    >>> (found[0].x, found[0].y), scores.shape, float(scores[1, 1])
    ((1, 1), (5, 8), 0.0)
    """
    options = FindOptions.check(method=method, threshold=threshold, max_matches=max_matches,
                                max_overlap=max_overlap, region=region, subpixel=subpixel, precision=precision,
                                pyramid=pyramid, angles=angles, scales=scales, angle_step=angle_step,
                                scale_step=scale_step)
    template, mask = _template_and_mask(template, mask)
    job = make_job(_pixels(image), [template], [mask], [None], options)
    strategy = choose_strategy(np.shape(job.image), pyramid=options.pyramid, turned=options.turned)
    if strategy != "exhaustive":
        return job.to_image(_SEARCHES[strategy](job)), None
    maps = score_maps(job)
    scores = maps[0][0] if np.ndim(job.image) == 1 else maps[0]
    return job.to_image(matches_in(job, maps)), scores


def find_many(image, templates, method="ncc", *, masks=None, threshold=None, max_matches=1,
              max_overlap=0.3, region=None, subpixel=False, precision="fast", angles=None, scales=None,
              angle_step=None, scale_step=None):
    """Find several labelled templates in one image, in one call.

    As :func:`find`, with the image-side work (validation, centring, Fourier
    transform, window sums) shared by all templates
    (:func:`matcher.scores.engine.match_templates`). The local peaks of all score maps
    are ranked together, best first (ties: template order, then row-major), and
    suppression runs across templates: a window claimed by one template is not
    claimed again by another (IoU, as in :func:`find`; windows may differ in
    size). ``threshold``, ``max_matches`` and ``region`` apply to the combined
    list.

    Ranking across templates needs comparable scores. The normalised methods
    (:data:`matcher.methods.NORMALIZED_METHODS`) are in a fixed range for any template, so any
    templates may be mixed. ``ssd``, ``ccorr`` and ``ccoeff`` grow with the
    template's area, so their templates must all have the same height and
    width (and should have equal mask areas and, for the correlations, similar
    contrast: scores are compared as they are).

    Parameters
    ----------
    templates : dict {str: array_like} or list of array_like
        Labelled templates (the dict's keys are the labels), or a list (the
        labels are the indices 0, 1, ..., so ``templates[m.label]`` is the
        template). Shapes may differ; channels must match the image's.
    masks : dict {str: array_like or None}, list, or None, keyword-only
        One mask per template or None: a dict (a subset of the labels; missing
        ones are unmasked) for dict templates, a list of the same length for a
        list.
    angles, scales, angle_step, scale_step : optional, keyword-only
        As in :func:`find`: each template is searched turned and scaled
        (:func:`matcher.search.rotated.find_rotated`, one search per
        template), and suppression across templates measures the overlap
        of the turned boxes.
    Other parameters
        As in :func:`find`.

    Returns
    -------
    list of Match
        Best first; ``label`` says which template matched.

    Raises
    ------
    MatcherError (a ValueError)
        As :func:`find`; no templates; mask labels that are not template
        labels; ``ssd``, ``ccorr`` or ``ccoeff`` with templates of different sizes.
    TypeError
        As :func:`find`; templates neither a dict nor a list/tuple; non-string
        labels; masks of the other kind than templates.

    Examples
    --------
    >>> image = np.zeros((6, 9))
    >>> image[1:3, 1:3] = [[1, 2], [3, 4]]
    >>> image[3:5, 5:8] = [[9, 0, 8], [0, 9, 0]]           # "wide", one pixel off
    >>> found = find_many(image, {"square": [[1, 2], [3, 4]], "wide": [[9, 0, 9], [0, 9, 0]]},
    ...                   threshold=0.9, max_matches=None)
    >>> [(m.label, m.x, m.y, m.width, round(m.score, 3)) for m in found]
    [('square', 1, 1, 2, 1.0), ('wide', 5, 3, 3, 0.997)]
    """
    options = FindOptions.check(method=method, threshold=threshold, max_matches=max_matches,
                                max_overlap=max_overlap, region=region, subpixel=subpixel, precision=precision,
                                angles=angles, scales=scales, angle_step=angle_step, scale_step=scale_step)
    labels, templates, masks = _labelled(templates, masks)
    templates, masks = (list(t) for t in zip(*(_template_and_mask(t, m) for t, m in zip(templates, masks))))
    job = make_job(_pixels(image), templates, masks, labels, options)
    if options.turned:
        return job.to_image(_turned_many(job))
    return job.to_image(search_exhaustive(job))


def _turned_many(job):
    """The turned search of each template of ``job``, ranked together, suppressed across templates on the
    turned boxes (as :func:`find_many` does on windows)."""
    found = []
    for template, mask, label, size in zip(job.templates, job.masks, job.labels, job.sizes):
        one = replace(job, templates=[template], masks=[mask], labels=[label], sizes=[size])
        found += [replace(m, label=label) for m in search_rotated(one)]
    found.sort(key=lambda m: -float(job.method.goodness(m.score)))  # stable: template order on ties
    kept = []
    for m in found:
        if all(rotated_iou(np.array(m.corners), np.array(k.corners)) <= job.max_overlap for k in kept):
            kept.append(m)
            if job.max_matches is not None and len(kept) == job.max_matches:
                break
    return kept


def _pixels(image):
    """The pixels of a :class:`matcher.LoadedImage`; anything else as it is."""
    return image.pixels if isinstance(image, LoadedImage) else image


def _template_and_mask(template, mask):
    """A :class:`matcher.LoadedImage` template brings its alpha channel as the mask, unless one is given."""
    if isinstance(template, LoadedImage):
        return template.pixels, template.matching_mask if mask is None else mask
    return template, mask


def _labelled(templates, masks):
    """(labels, templates, masks) as lists, from find_many's dict or list arguments."""
    if isinstance(templates, Mapping):
        bad = [k for k in templates if not isinstance(k, str)]
        if bad:
            raise TypeError(f"template labels (the dict's keys) must be strings, got {bad[0]!r}")
        labels = list(templates)
        if masks is not None and not isinstance(masks, Mapping):
            raise TypeError(f"masks must be a dict {{label: mask}} (or None) when templates is a dict, "
                            f"got {type(masks).__name__}")
        masks = masks or {}
        unknown = [k for k in masks if k not in templates]
        if unknown:
            raise MatcherError(f"masks has labels that are not template labels: {unknown}; "
                               f"template labels: {labels}", param="masks")
        masks = [masks.get(k) for k in labels]
        templates = list(templates.values())
    elif isinstance(templates, (list, tuple)):
        labels = list(range(len(templates)))
        if masks is not None and not isinstance(masks, (list, tuple)):
            raise TypeError(f"masks must be a list (or None) when templates is a list, got {type(masks).__name__}")
        if masks is not None and len(masks) != len(templates):
            raise MatcherError(f"masks must have one entry per template ({len(templates)}), got {len(masks)}",
                               param="masks")
        masks = list(masks) if masks is not None else [None] * len(templates)
        templates = list(templates)
    else:
        raise TypeError(f"templates must be a dict {{label: template}} or a list of templates, "
                        f"got {type(templates).__name__}")
    if not templates:
        raise MatcherError("templates must contain at least one template, got none", param="templates")
    return labels, templates, masks
