"""From a parsed request to the response body: decode, check limits, call matcher, format.

Where requests meet matcher: the only module that matches for a request. Checks that need
the decoded sizes (region, template and mask against the image, the work
limit) are made here, before any matching starts.
"""

import base64
import time

import cv2
import numpy as np

import matcher
from matcher import LOWER_IS_BETTER, find_many, find_with_scores, load_image, match_template
from matcher.errors import MatcherError, TemplateTooLargeError
from matcher.options import format_option
from matcher.search.rotated import search_cost
from matcher.render import draw_matches, encode_png, score_heatmap

from .errors import InvalidOption, TooLarge, Unprocessable
from .options import TURN_OPTION_NAMES

__all__ = ["run_match", "run_batch"]


def run_match(inp, config):
    """Answer /v1/match: ``inp`` is a :class:`service.inputs.MatchInput` with one template."""
    start = time.perf_counter()
    opts = inp.options
    image = _load(inp.image, opts, config)
    (_, upload), = inp.templates
    template = _load(upload, opts, config)
    mask = _mask(inp.mask, template, opts, config)
    area = _check_fit(image, [template], opts, config)
    _check_turn_cost(area, [template], opts, config)
    found, scores = _call(find_with_scores, image.pixels, template.pixels, opts.method, mask=mask,
                          **opts.find_kwargs())
    body = _body(image, opts, found) | {"template": _info(template, mask is not None)}
    if "heatmap" in opts.returns:
        body["heatmap"] = _heatmap(image, template, mask, opts, area, scores)
    return _finish(body, image, found, opts, start)


def run_batch(inp, config):
    """Answer /v1/match/batch: several labelled templates against one image (:func:`matcher.find_many`)."""
    start = time.perf_counter()
    opts = inp.options
    image = _load(inp.image, opts, config)
    templates = {label: _load(upload, opts, config) for label, upload in inp.templates}
    masks = {label: t.matching_mask for label, t in templates.items()}
    area = _check_fit(image, list(templates.values()), opts, config)
    _check_turn_cost(area, list(templates.values()), opts, config)
    found = _call(find_many, image.pixels, {k: t.pixels for k, t in templates.items()}, opts.method,
                  masks={k: m for k, m in masks.items() if m is not None}, **opts.find_kwargs())
    body = _body(image, opts, found)
    body["templates"] = [{"label": label} | _info(t, masks[label] is not None) for label, t in templates.items()]
    return _finish(body, image, found, opts, start)


def _load(upload, opts, config):
    """Decode one part; matcher's errors are tagged with the part's field for the problem body."""
    try:
        return load_image(upload.data, color="gray" if opts.gray else "auto",
                          max_pixels=config["MATCHER_MAX_PIXELS"], formats=config["MATCHER_FORMATS"])
    except MatcherError as exc:
        exc.field = upload.field
        raise


def _mask(upload, template, opts, config):
    if upload is None:
        return template.matching_mask
    mask = _load(upload, opts, config)
    pixels = mask.pixels if mask.channels == 1 else cv2.cvtColor(mask.pixels, cv2.COLOR_RGB2GRAY)
    if pixels.shape != template.pixels.shape[:2]:
        raise Unprocessable(f"the mask is {mask.width}x{mask.height}, but the template is "
                            f"{template.width}x{template.height}; they must be the same size", field="mask")
    return pixels


def _check_fit(image, templates, opts, config):
    """Check region, sizes, channels and the work limit; return the searched area ``(x, y, w, h)``."""
    if opts.region is not None:
        x, y, w, h = opts.region
        if x + w > image.width or y + h > image.height:
            raise Unprocessable(f"region {x},{y},{w},{h} reaches outside the {image.width}x{image.height} image",
                                field="region")
    area = opts.region or (0, 0, image.width, image.height)
    for t in templates:
        if t.width > image.width or t.height > image.height:
            exc = TemplateTooLargeError(f"the template is {t.width}x{t.height}, larger than the "
                                        f"{image.width}x{image.height} image")
            exc.field = "template"
            raise exc
        if t.width > area[2] or t.height > area[3]:
            raise Unprocessable(f"the template is {t.width}x{t.height}, larger than the "
                                f"{area[2]}x{area[3]} region", field="region")
        if t.channels != image.channels:
            raise Unprocessable(f"the image has {image.channels} channel(s) and the template {t.channels}; "
                                "send gray=true to match both in gray", field="template")
    work = area[2] * area[3] * sum(t.width * t.height for t in templates)
    if work > config["MATCHER_MAX_WORK"]:
        raise TooLarge(f"searched pixels x template pixels = {work:,}, over the limit of "
                       f"{config['MATCHER_MAX_WORK']:,} (MATCHER_MAX_WORK); use a smaller region or template",
                       field="template")
    return area


def _check_turn_cost(area, templates, opts, config):
    """The turned search's estimated work (:func:`matcher.search.rotated.search_cost`, summed over the
    templates) against ``MATCHER_MAX_TURN_WORK``: 413 before any searching, saying how to lower it."""
    if not opts.turned:
        return
    limit = config["MATCHER_MAX_TURN_WORK"]
    turn = {name: getattr(opts, name) for name in TURN_OPTION_NAMES}
    cost = sum(search_cost((area[3], area[2], t.channels), (t.height, t.width), max_matches=opts.max_matches, **turn)
               for t in templates)
    if cost > limit:
        asked = ", ".join(f"{name}={format_option(name, value)}" for name, value in turn.items() if value is not None)
        raise TooLarge(f"the turned search ({asked}) over {area[2]}x{area[3]} pixels would cost about {cost:,} "
                       f"(searched pixels x template pixels over its poses), over the limit of {limit:,} "
                       "(MATCHER_MAX_TURN_WORK); narrow the angle or scale range, use a larger angle_step or "
                       "scale_step, or search a smaller region", field="angles" if opts.angles else "scales")


def _call(function, *args, **kwargs):
    """Call find / find_many; errors they raise become 400s naming the parameter at fault (``exc.param``)."""
    try:
        return function(*args, **kwargs)
    except (TemplateTooLargeError, TooLarge, Unprocessable):
        raise
    except (ValueError, TypeError) as exc:  # MatcherError, ParameterTypeError: both carry param
        raise InvalidOption(str(exc), field=_FIELDS.get(getattr(exc, "param", None))) from exc


_FIELDS = {name: name for name in ("method", "threshold", "max_matches", "max_overlap", "region", "subpixel",
                                   "precision", "image", "template", "mask", "templates") + TURN_OPTION_NAMES} \
    | {"masks": "mask"}
"""find's parameter names -> the request's field that sets them (None: no field is to blame)."""


def _info(img, masked):
    return {"width": img.width, "height": img.height, "channels": img.channels, "format": img.format,
            "masked": masked}


def _body(image, opts, found):
    return {"matches": [m.to_dict() for m in found],  # NumPy scalars: the app's JSON provider
            "image": {k: v for k, v in _info(image, False).items() if k != "masked"},
            "method": opts.method, "lower_is_better": opts.method in LOWER_IS_BETTER}


def _finish(body, image, found, opts, start):
    if "annotated" in opts.returns:
        body["annotated"] = _png_b64(draw_matches(image.pixels, found))
    body["elapsed_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
    body["version"] = matcher.__version__
    return body


def _heatmap(image, template, mask, opts, area, scores=None):
    """The searched area's heat map: the scores the search computed (scored here only when it had none)."""
    x, y, w, h = area
    crop = image.pixels[y:y + h, x:x + w]
    if scores is None:
        scores = match_template(crop, template.pixels, opts.method, mask=mask, precision=opts.precision)
    return _png_b64(score_heatmap(scores, crop.shape, template.pixels.shape, method=opts.method))


def _png_b64(rgb):
    return base64.b64encode(encode_png(rgb)).decode("ascii")
