"""From a parsed request to the response body: cost, decode, check limits, call matcher, format.

Where requests meet matcher: the only module that matches for a request. The
request is costed from its file headers before anything is decoded
(:func:`matcher.budget.search_cost` against MATCHER_MAX_MEMORY and
MATCHER_MAX_WORK); checks that need the decoded sizes (region, template and
mask against the image) are made before any matching starts; decoding and
matching run under the request's deadline (MATCHER_REQUEST_TIMEOUT,
:mod:`matcher.deadline`).
"""

import base64
import time

import matcher
from matcher import LOWER_IS_BETTER, deadline, find_many, find_with_scores, load_image, match_template
from matcher.budget import search_cost
from matcher.errors import MatcherError, TemplateTooLargeError
from matcher.headers import read_header
from matcher.io import to_gray
from matcher.options import format_option
from matcher.search.rotated import search_cost as turned_search_cost
from matcher.render import draw_matches, encode_png, score_heatmap

from .errors import InvalidOption, TooLarge, Unprocessable
from .options import TURN_OPTION_NAMES

__all__ = ["run_match", "run_batch", "request_cost", "search_factor"]

MiB = 1 << 20


def run_match(inp, config):
    """Answer /v1/match: ``inp`` is a :class:`service.inputs.MatchInput` with one template."""
    with deadline.within(config["MATCHER_REQUEST_TIMEOUT"]):
        return _run_match(inp, config)


def run_batch(inp, config):
    """Answer /v1/match/batch: several labelled templates against one image (:func:`matcher.find_many`)."""
    with deadline.within(config["MATCHER_REQUEST_TIMEOUT"]):
        return _run_batch(inp, config)


def _run_match(inp, config):
    start = time.perf_counter()
    opts = inp.options
    costed = _check_budget(inp, config)
    image = _load(inp.image, opts, config)
    (_, upload), = inp.templates
    template = _load(upload, opts, config)
    mask = _mask(inp.mask, template, opts, config)
    area = _check_fit(image, [template], opts, config)
    if not costed:
        _check_turn_cost(area, [(template.height, template.width, template.channels)], opts, config)
    found, scores = _call(find_with_scores, image.pixels, template.pixels, opts.method, mask=mask,
                          **opts.find_kwargs())
    body = _body(image, opts, found) | {"template": _info(template, mask is not None)}
    if "heatmap" in opts.returns:
        body["heatmap"] = _heatmap(image, template, mask, opts, area, scores)
    return _finish(body, image, found, opts, start)


def _run_batch(inp, config):
    start = time.perf_counter()
    opts = inp.options
    costed = _check_budget(inp, config)
    image = _load(inp.image, opts, config)
    templates = {label: _load(upload, opts, config) for label, upload in inp.templates}
    masks = {label: t.matching_mask for label, t in templates.items()}
    area = _check_fit(image, list(templates.values()), opts, config)
    if not costed:
        _check_turn_cost(area, [(t.height, t.width, t.channels) for t in templates.values()], opts, config)
    found = _call(find_many, image.pixels, {k: t.pixels for k, t in templates.items()}, opts.method,
                  masks={k: m for k, m in masks.items() if m is not None}, **opts.find_kwargs())
    body = _body(image, opts, found)
    body["templates"] = [{"label": label} | _info(t, masks[label] is not None) for label, t in templates.items()]
    return _finish(body, image, found, opts, start)


def search_factor(opts, templates):
    """How many plain searches one template's search costs: the work multiplier of :func:`request_cost`.

    1 for every request today: a turned or scaled search (``angles``,
    ``scales``) has its own limit, MATCHER_MAX_TURN_WORK, checked from the
    same headers before decoding (:func:`_check_turn_cost`), in its own units
    (searched pixels x template pixels over its poses). This is the hook to
    fold it into MATCHER_MAX_WORK instead: return the turned search's cost
    relative to one plain search, from ``opts`` and the template headers.
    """
    return 1.0


def request_cost(inp, image, templates):
    """The estimated :class:`matcher.budget.SearchCost` of a request, from its file headers.

    ``image`` and ``templates`` are :class:`matcher.headers.ImageHeader` (one
    per template of ``inp.templates``, in order). Channels matched: 1 for
    gray files or ``gray=true``, else 3 (alpha is a mask, not matched). A
    template is masked when a ``mask`` part is sent or its file has an alpha
    channel (even one that turns out fully opaque).
    """
    opts = inp.options
    channels = _matched_channels(opts, image)
    shapes = [(t.height, t.width, inp.mask is not None or t.channels in (2, 4)) for t in templates]
    region = None if opts.region is None else _header_area(opts.region, image)
    return search_cost((image.height, image.width), channels=channels, bytes_per_sample=image.bytes_per_sample,
                       file_channels=image.channels, templates=shapes, region=region,
                       search_factor=search_factor(opts, templates))


def _matched_channels(opts, image):
    """Channels matched for an image of this header: 1 for gray files or ``gray=true``, else 3 (alpha is a
    mask, not matched)."""
    return 1 if opts.gray or image.channels <= 2 else 3


def _header_area(region, image):
    """The searched area ``(x, y, w, h)`` from the image's header: a region reaching outside the image is
    refused later (422); here it costs what is inside."""
    if region is None:
        return (0, 0, image.width, image.height)
    x, y, w, h = region
    return (x, y, max(min(w, image.width - x), 1), max(min(h, image.height - y), 1))


def _check_budget(inp, config):
    """Refuse (413) a request whose estimated memory or work is over budget, before decoding anything.

    Includes the turned search's own limit (:func:`_check_turn_cost`). A file
    whose header cannot be read, or that is of a refused format or over
    MATCHER_MAX_PIXELS, is left to :func:`_load`, which says exactly that:
    returns whether the request was costed (False: the turned search's cost
    is checked again with the decoded sizes).
    """
    headers = []
    for upload in [inp.image] + [u for _, u in inp.templates]:
        try:
            header = read_header(upload.data)
        except MatcherError:
            return False
        if header.format not in config["MATCHER_FORMATS"] or header.pixels > config["MATCHER_MAX_PIXELS"]:
            return False
        headers.append(header)
    image, templates = headers[0], headers[1:]
    channels = _matched_channels(inp.options, image)
    _check_turn_cost(_header_area(inp.options.region, image), [(t.height, t.width, channels) for t in templates],
                     inp.options, config)
    cost = request_cost(inp, image, templates)
    memory, work = config["MATCHER_MAX_MEMORY"], config["MATCHER_MAX_WORK"]
    if cost.memory <= memory and cost.work <= work:
        return True
    what = (f"a {image.width}x{image.height} image, {image.channels} channel(s) of {8 * image.bytes_per_sample} "
            f"bits, {len(inp.templates)} template(s){' with a mask' if inp.mask is not None else ''}")
    if cost.memory > memory:
        over = (f"needs an estimated {cost.memory / MiB:,.0f} MiB of working memory, over the limit of "
                f"{memory / MiB:,.0f} MiB (MATCHER_MAX_MEMORY)")
    else:
        over = (f"needs an estimated {cost.work:,} units of work, over the limit of {work:,} "
                "(MATCHER_MAX_WORK)")
    raise TooLarge(f"this request ({what}) {over}; send a smaller image or region, gray=true, smaller or "
                   "fewer templates, or no mask", field="image",
                   estimate={"memory": cost.memory, "work": cost.work}, limit={"memory": memory, "work": work})


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
    pixels = to_gray(mask.pixels)
    if pixels.shape != template.pixels.shape[:2]:
        raise Unprocessable(f"the mask is {mask.width}x{mask.height}, but the template is "
                            f"{template.width}x{template.height}; they must be the same size", field="mask")
    return pixels


def _check_fit(image, templates, opts, config):
    """Check region, sizes and channels; return the searched area ``(x, y, w, h)``."""
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
    return area


def _check_turn_cost(area, shapes, opts, config):
    """The turned search's estimated work (:func:`matcher.search.rotated.search_cost`, summed over the
    templates' ``(height, width, channels)``) against ``MATCHER_MAX_TURN_WORK``: 413 before any searching,
    saying how to lower it. Called from the file headers before decoding, or with the decoded sizes
    for files whose headers could not be read."""
    if not opts.turned:
        return
    limit = config["MATCHER_MAX_TURN_WORK"]
    turn = {name: getattr(opts, name) for name in TURN_OPTION_NAMES}
    cost = sum(turned_search_cost((area[3], area[2], c), (h, w), max_matches=opts.max_matches, **turn)
               for h, w, c in shapes)
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
