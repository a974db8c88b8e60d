"""The find options of a request: parsed from form strings or JSON values with matcher's spec, and checked.

The options :func:`matcher.find` takes (``method``, ``threshold``, ...) are
parsed, checked and described by their records in :data:`matcher.options.OPTIONS`
(:meth:`~matcher.options.Option.parse` for form strings,
:meth:`~matcher.options.Option.from_json` for JSON values,
:meth:`~matcher.options.Option.schema` for the OpenAPI document). The service
adds ``gray`` (one more boolean record), ``return`` and its cap on
``max_matches`` (``MATCHER_MAX_MATCHES``).

Every problem is collected, so one 400 lists them all (``errors``), each with
its ``field`` and what is allowed.
"""

import re
from dataclasses import dataclass

from matcher.errors import MatcherError, ParameterTypeError
from matcher.methods import METHODS, get_method
from matcher.options import INTEGER_PATTERN, OPTIONS as FIND_OPTIONS, FindOptions, Option, threshold_rules

from .errors import InvalidOption

__all__ = ["Options", "OPTION_NAMES", "FIND_OPTION_NAMES", "TURN_OPTION_NAMES", "GRAY", "RETURNS", "BATCH_RETURNS", "parse_options",
           "option_schemas", "option_rules"]

RETURNS = ("heatmap", "annotated")
BATCH_RETURNS = ("annotated",)
TURN_OPTION_NAMES = ("angles", "scales", "angle_step", "scale_step")
"""The options of the turned and scaled search (:func:`matcher.search.rotated.find_rotated`)."""
FIND_OPTION_NAMES = ("method", "threshold", "max_matches", "max_overlap", "region", "subpixel",
                     "precision") + TURN_OPTION_NAMES
"""The options of :data:`matcher.options.OPTIONS` a request may set (not ``pyramid``)."""
GRAY = Option("gray", "bool", bool, False, "convert image and templates to gray before matching")
"""The service's own boolean option, a record of the same kind as matcher's."""
OPTION_NAMES = FIND_OPTION_NAMES + ("gray", "return")
_RECORDS = {name: FIND_OPTIONS[name] for name in FIND_OPTION_NAMES} | {"gray": GRAY}
_ANY_FINITE = "ccorr"  # a method whose threshold may be any finite number: for a request whose method is bad


@dataclass(frozen=True)
class Options:
    """Checked options; ``region`` is ``(x, y, width, height)`` or None."""

    method: str = FIND_OPTIONS["method"].default
    threshold: "float | None" = FIND_OPTIONS["threshold"].default
    max_matches: int = FIND_OPTIONS["max_matches"].default
    max_overlap: float = FIND_OPTIONS["max_overlap"].default
    region: "tuple | None" = FIND_OPTIONS["region"].default
    subpixel: bool = FIND_OPTIONS["subpixel"].default
    precision: str = FIND_OPTIONS["precision"].default
    angles: "tuple | None" = FIND_OPTIONS["angles"].default
    scales: "tuple | None" = FIND_OPTIONS["scales"].default
    angle_step: "float | None" = FIND_OPTIONS["angle_step"].default
    scale_step: "float | None" = FIND_OPTIONS["scale_step"].default
    gray: bool = GRAY.default
    returns: tuple = ()

    @property
    def turned(self):
        """Whether the search looks for the template turned or scaled (``angles`` or ``scales`` given)."""
        return self.angles is not None or self.scales is not None

    def find_kwargs(self):
        """Keyword arguments for :func:`matcher.find` / :func:`matcher.find_many` (not ``method``, ``mask``)."""
        return {name: getattr(self, name) for name in FIND_OPTION_NAMES if name != "method"}


class _Bad(Exception):
    pass


def _shown(value, limit=80):
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**limit else "a huge integer"
    return text if len(text) <= limit else text[:limit - 5] + "...'"


def _value(option, value, form, method):
    """One shared option's value, parsed (form) or taken as JSON, and checked."""
    if form:
        return option.check(option.parse(value), method=method)
    return option.from_json(value, method=method)


def _max_matches(value, form, cap):
    """``max_matches``: matcher's spec, then the configured cap (no None: "all" is not offered)."""
    option = FIND_OPTIONS["max_matches"]

    def over():
        return MatcherError(f"max_matches must be an integer from 1 to {cap}, got {_shown(value)}",
                            param="max_matches")

    if form:
        if isinstance(value, str) and re.fullmatch(INTEGER_PATTERN, value) and not 1 <= int(value) <= cap:
            raise over()
        number = _value(option, value, form, None)
    else:
        try:
            number = option.from_json(value)
        except MatcherError:  # an integer below 1 (a wrong type is a ParameterTypeError)
            raise over() from None
    if number is None or number > cap:
        raise over()
    return number


def _returns(values, form, allowed):
    values = [values] if isinstance(values, str) else values
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Bad(f"return must be a list of {', '.join(allowed)}, got {_shown(values)}")
    names = [n.strip() for v in values for n in (v.split(",") if form else [v]) if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise _Bad(f"return must list only {', '.join(allowed)}, got {_shown(values)}")
    return tuple(dict.fromkeys(names))


def parse_options(raw, *, form, max_matches, batch=False):
    """Parse and check the options of one request.

    Parameters
    ----------
    raw : dict
        Option name -> value: a JSON value, or for a form the field's string
        (a list of strings for ``return``, which may repeat). Absent options
        take the defaults of :class:`Options`; an empty form value counts as absent.
    form : bool
        Whether the values are form strings (parsed) or JSON values (typed).
    max_matches : int
        The largest ``max_matches`` allowed (``MATCHER_MAX_MATCHES``).
    batch : bool
        Batch requests allow only ``return: ["annotated"]``.

    Returns
    -------
    Options

    Raises
    ------
    InvalidOption
        With ``field`` (the first bad option) and ``errors`` (all of them).

    Examples
    --------
    >>> parse_options({"threshold": "0.5", "region": "0,0,8,8", "gray": "yes"}, form=True, max_matches=10)
    Options(method='ncc', threshold=0.5, max_matches=1, max_overlap=0.3, region=(0, 0, 8, 8), subpixel=False, precision='fast', angles=None, scales=None, angle_step=None, scale_step=None, gray=True, returns=())
    """
    raw = {k: v for k, v in raw.items() if not (form and v == "")}
    method = FIND_OPTIONS["method"].default
    if "method" in raw:  # threshold's range depends on it
        try:
            method = _value(FIND_OPTIONS["method"], raw["method"], form, None)
        except (MatcherError, ParameterTypeError):
            method = _ANY_FINITE  # reported below; the threshold is then only checked to be a finite number
    values, errors = {}, []
    for name, value in raw.items():
        try:
            if name == "return":
                values["returns"] = _returns(value, form, BATCH_RETURNS if batch else RETURNS)
            elif name == "max_matches":
                values[name] = _max_matches(value, form, max_matches)
            else:
                values[name] = _value(_RECORDS[name], value, form, method)
        except (MatcherError, ParameterTypeError, _Bad) as exc:
            errors.append({"field": name, "detail": str(exc)})
    if errors:
        raise InvalidOption("; ".join(e["detail"] for e in errors), field=errors[0]["field"], errors=errors)
    options = Options(**values)
    try:  # the rules between options (a turned search needs a normalised method): the spec's own check
        FindOptions.check(method=options.method, **{n: getattr(options, n) for n in TURN_OPTION_NAMES})
    except (MatcherError, ParameterTypeError) as exc:
        raise InvalidOption(str(exc), field=exc.param, errors=[{"field": exc.param, "detail": str(exc)}]) from None
    if options.turned and "heatmap" in options.returns:
        detail = ("return=heatmap is the score map of the template as it is, not turned or scaled; "
                  "it cannot be asked with angles or scales")
        raise InvalidOption(detail, field="return", errors=[{"field": "return", "detail": detail}])
    return options


def option_schemas(*, form, max_matches, batch=False):
    """The JSON Schemas of the request's option members, from the records that parse them.

    ``max_matches`` is matcher's with the configured cap (and no null);
    ``return`` is the service's own.

    >>> option_schemas(form=False, max_matches=7)["max_matches"]["maximum"]
    7
    """
    props = {name: record.schema(form=form) for name, record in _RECORDS.items()}
    count = props["max_matches"]
    count["description"] = f"how many matches to return, best first (1 to {max_matches})"
    if not form:
        count["type"], count["maximum"] = "integer", max_matches
    returns = BATCH_RETURNS if batch else RETURNS
    props["return"] = {
        "type": "array", "items": {"type": "string", "enum": list(returns)}, "uniqueItems": not form,
        "description": "pictures to add to the response as base64 PNG: " + ", ".join(returns)
                       + (" (the heat map covers the searched area: the region, if given)" if not batch else "")}
    return props


def option_rules(*, form):
    """Rules between options for the request object's ``allOf``: the JSON ``threshold``'s range per method,
    and a normalised ``method`` for a turned search (``angles`` or ``scales`` given)."""
    return ([] if form else threshold_rules()) + turn_rules(form=form)


def turn_rules(*, form):
    """The schema of :meth:`matcher.options.FindOptions.check`'s rule: ``angles`` or ``scales`` given (not
    null; in a form, not empty) needs a normalised ``method`` (absent: the default, which is one); and
    the service's: no ``heatmap`` then (the heat map is the unturned search's).

    >>> turn_rules(form=False)[0]["then"]["properties"]["method"]["enum"]
    ['ssd_normed', 'ccorr_normed', 'ncc']
    """
    given = {"not": {"enum": ["", None] if form else [None]}}
    normalised = [m for m in METHODS if get_method(m).normalised]
    return [{"if": {"anyOf": [{"required": [name], "properties": {name: given}} for name in ("angles", "scales")]},
             "then": {"properties": {"method": {"enum": normalised + ([""] if form else [])},
                                     "return": {"not": {"contains": {"const": "heatmap"}}}}}}]
