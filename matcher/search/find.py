"""Finding templates: where they are, how sure, and how many.

:func:`find` and :func:`find_many` turn the engine's score maps into a short
list of :class:`Match` objects, best first: local peaks of the score map (at or
past a threshold), greedy non-maximum suppression by intersection over union,
optional sub-pixel refinement (:mod:`matcher.search.peaks`).
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..scores.inputs import LOWER_IS_BETTER, _as_array
from ..scores.engine import match_templates
from ..errors import MatcherError, TemplateTooLargeError
from ..methods import NORMALIZED_METHODS
from ..options import FindOptions
from .peaks import local_peaks, refine_patches, suppress
from ..scores.reference import scores_at

__all__ = ["Match", "find", "find_many", "NORMALIZED_METHODS"]


@dataclass(frozen=True)
class Match:
    """One found template.

    ``x``, ``y`` is the top-left corner of the matched window in full-image
    pixel coordinates (column, row; ints, or floats when refined to sub-pixel
    precision), ``width`` x ``height`` its size (the template's), ``score``
    the engine's score at the integer peak. ``label`` names the template
    (None for :func:`find`), ``method`` the score.
    """

    x: "int | float"
    y: "int | float"
    width: int
    height: int
    score: float
    label: "str | int | None" = None
    method: "str | None" = None

    @property
    def center(self):
        """``(x, y)`` of the window's centre, in pixel-centre coordinates.

        Pixel ``(i, j)`` has its centre at ``(i, j)``, so a window of width
        ``w`` from ``x`` has its centre at ``x + (w - 1) / 2`` (a 3-pixel wide
        window at 0 is centred on pixel 1).
        """
        return (self.x + (self.width - 1) / 2, self.y + (self.height - 1) / 2)

    @property
    def box(self):
        """``(x, y, width, height)``, the form ``region`` takes."""
        return (self.x, self.y, self.width, self.height)

    def to_dict(self):
        """JSON-ready dict of plain Python numbers and strings."""
        cx, cy = self.center
        return {"label": _plain(self.label), "x": _plain(self.x), "y": _plain(self.y),
                "width": int(self.width), "height": int(self.height), "score": float(self.score),
                "center": {"x": float(cx), "y": float(cy)}, "method": self.method}


def find(image, template, method="ncc", *, threshold=None, max_matches=1, max_overlap=0.3,
         region=None, subpixel=False, mask=None, precision="fast", pyramid=False):
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
    image, template : array_like
        As in :func:`matcher.match_template`: 2-D gray, 3-D ``(H, W, C)``
        colour, or 1-D (a single row: ``y`` is 0 and ``height`` 1).
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
        position error is about 0.04 pixel on average (``tests/test_find.py``).
    mask : array_like, optional, keyword-only
        Template mask, passed to the engine unchanged.
    precision : {"fast", "exact"}, keyword-only
        Passed to the engine unchanged.
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
    {'label': None, 'x': 6, 'y': 3, 'width': 2, 'height': 2, 'score': 1.0, 'center': {'x': 6.5, 'y': 3.5}, 'method': 'ncc'}
    >>> find(image, [[1, 2], [3, 4]], "ncc", threshold=0.5, region=(2, 0, 4, 6))   # not found
    []
    """
    o = FindOptions.check(method=method, threshold=threshold, max_matches=max_matches, max_overlap=max_overlap,
                          region=region, subpixel=subpixel, precision=precision, pyramid=pyramid)
    method, threshold, max_matches, max_overlap, region = o.method, o.threshold, o.max_matches, o.max_overlap, o.region
    if pyramid:
        from .pyramid import find_pyramid  # imports this module

        return find_pyramid(image, template, method, threshold=threshold, max_matches=max_matches,
                            max_overlap=max_overlap, region=region, subpixel=subpixel, mask=mask,
                            precision=precision)[0]
    from .tiled import find_tiled, needs_tiles  # imports this module

    if needs_tiles(image):  # too big to score at once; find_tiled decides again after cropping to region
        return find_tiled(image, template, method, threshold=threshold, max_matches=max_matches,
                          max_overlap=max_overlap, region=region, subpixel=subpixel, mask=mask,
                          precision=precision, _only_if_huge=True)
    return _search(image, [template], [mask], [None], method, threshold, max_matches, max_overlap,
                   region, subpixel, precision)


def find_many(image, templates, method="ncc", *, masks=None, threshold=None, max_matches=1,
              max_overlap=0.3, region=None, subpixel=False, precision="fast"):
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
    (:data:`NORMALIZED_METHODS`) are in a fixed range for any template, so any
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
    o = FindOptions.check(method=method, threshold=threshold, max_matches=max_matches, max_overlap=max_overlap,
                          region=region, subpixel=subpixel, precision=precision)
    method, threshold, max_matches, max_overlap, region = o.method, o.threshold, o.max_matches, o.max_overlap, o.region
    labels, templates, masks = _labelled(templates, masks)
    return _search(image, templates, masks, labels, method, threshold, max_matches, max_overlap,
                   region, subpixel, precision)


def _search(image, templates, masks, labels, method, threshold, max_matches, max_overlap,
            region, subpixel, precision):
    """The search, with options already checked (:meth:`matcher.options.FindOptions.check`)."""
    sizes = [_spatial(t) for t in templates]
    if method not in NORMALIZED_METHODS and len({s for s in sizes if s is not None}) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in dict.fromkeys(s for s in sizes if s is not None))
        raise MatcherError(
            f"method {method!r} scores grow with the template's area, so they cannot be ranked across "
            f"templates of different sizes (width x height: {shown}); use one of {NORMALIZED_METHODS}, "
            "templates of one size, or one find() call per template", param="method")
    origin = (0, 0)
    if region is not None:
        image, origin = _crop(image, region, sizes)
    maps = match_templates(image, templates, method, masks=masks, precision=precision)
    maps = [m.reshape(1, -1) if m.ndim == 1 else m for m in maps]
    shape = np.shape(image)
    ih, iw = (1, shape[0]) if len(shape) == 1 else shape[:2]
    lower = method in LOWER_IS_BETTER
    goodness = (lambda m: -m) if lower else (lambda m: m)  # higher is better; a copy only for ssd
    floor = None if threshold is None else (-threshold if lower else threshold)

    ys, xs, tids = _ranked_peaks(maps, goodness, floor)
    boxes = list(dict.fromkeys((ih - m.shape[0] + 1, iw - m.shape[1] + 1) for m in maps))
    kind_of = np.array([boxes.index((ih - m.shape[0] + 1, iw - m.shape[1] + 1)) for m in maps])
    map_shapes = [(ih - h + 1, iw - w + 1) for h, w in boxes]
    kept = suppress(ys, xs, kind_of[tids], boxes, map_shapes, max_overlap, max_matches)
    ys, xs, tids = ys[kept], xs[kept], tids[kept]

    sizes = [boxes[k] for k in kind_of.tolist()]
    return matches_at(image, templates, masks, labels, method, ys, xs, tids, sizes, subpixel, origin)


def matches_at(image, templates, masks, labels, method, ys, xs, tids, sizes, subpixel, origin=(0, 0)):
    """:class:`Match` objects for the chosen peaks, scored by definition (float64).

    The map may carry the fast precision's error (up to 1e-4 of its range);
    the few windows that become matches, and their 3 x 3 neighbourhoods for
    ``subpixel``, are scored again exactly. So an exact copy of the template
    scores exactly 1 (ncc) or 0 (ssd), and every search path (exhaustive,
    tiled, pyramid) reports the same scores and sub-pixel offsets for the same
    positions. The matches are ranked by these scores, best first (ties keep
    their order). ``tids`` says which template each peak belongs to;
    ``sizes[t]`` is template t's (height, width).
    """
    lower = method in LOWER_IS_BETTER
    shape = np.shape(image)
    ih, iw = (1, shape[0]) if len(shape) == 1 else shape[:2]
    score = np.empty(ys.size)
    pos_y, pos_x = ys.astype(np.float64), xs.astype(np.float64)
    for t in np.unique(tids).tolist():
        sel = np.flatnonzero(tids == t)
        if not subpixel:
            score[sel] = scores_at(image, templates[t], method, ys[sel], xs[sel], mask=masks[t])
            continue
        H, W = ih - sizes[t][0] + 1, iw - sizes[t][1] + 1
        dy, dx = (a.ravel() for a in np.mgrid[-1:2, -1:2])
        yy, xx = ys[sel, None] + dy, xs[sel, None] + dx  # (K, 9)
        inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        patches = np.full(yy.shape, np.nan)
        patches[inside] = scores_at(image, templates[t], method, yy[inside], xx[inside], mask=masks[t])
        score[sel] = patches[:, 4]
        patches = -patches if lower else patches
        pos_y[sel], pos_x[sel] = refine_patches(patches.reshape(-1, 3, 3), ys[sel], xs[sel], (H, W))
    order = np.argsort(score if lower else -score, kind="stable")
    matches = []
    for i in order.tolist():
        t = int(tids[i])
        h, w = sizes[t]
        x, y = (float(pos_x[i]), float(pos_y[i])) if subpixel else (int(xs[i]), int(ys[i]))
        matches.append(Match(x + origin[0], y + origin[1], int(w), int(h), float(score[i]), labels[t], method))
    return matches


def _ranked_peaks(maps, goodness, floor):
    """Local peaks of every map, ranked together best first (ties: map order, then row-major).

    Returns (ys, xs, tids): positions and the index of the map of each peak.
    """
    peaks = [local_peaks(goodness(m), floor) for m in maps]
    order = np.argsort(-np.concatenate([p[2] for p in peaks]), kind="stable")
    ys = np.concatenate([p[0] for p in peaks])[order]
    xs = np.concatenate([p[1] for p in peaks])[order]
    tids = np.concatenate([np.full(len(p[0]), t, np.intp) for t, p in enumerate(peaks)])[order]
    return ys, xs, tids


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


def _spatial(template):
    """(height, width) of a template, or None if it is not array-like (the engine reports that)."""
    try:
        shape = np.shape(template)
    except ValueError:
        return None
    if len(shape) == 0:
        return None
    return (1, shape[0]) if len(shape) == 1 else tuple(int(s) for s in shape[:2])


def _crop(image, region, sizes):
    """The part of ``image`` inside ``region`` (checked by :class:`matcher.options.FindOptions`), and its (x, y)."""
    x, y, w, h = region
    arr = _as_array("image", image)
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


def _plain(v):
    """A numpy scalar as the Python number it holds; anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v
