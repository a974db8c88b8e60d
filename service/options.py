"""The find options of a request: parsed from form strings or JSON values, and checked.

Every problem is collected, so one 400 lists them all (``errors``), each with
its ``field`` and what is allowed.
"""

import math
from dataclasses import dataclass

from matcher import METHODS, PRECISIONS

from .errors import InvalidOption

__all__ = ["Options", "OPTION_NAMES", "RETURNS", "BATCH_RETURNS", "parse_options"]

RETURNS = ("heatmap", "annotated")
BATCH_RETURNS = ("annotated",)
OPTION_NAMES = ("method", "threshold", "max_matches", "max_overlap", "region", "subpixel", "precision", "gray",
                "return")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Options:
    """Checked options; ``region`` is ``(x, y, width, height)`` or None."""

    method: str = "ncc"
    threshold: "float | None" = None
    max_matches: int = 1
    max_overlap: float = 0.3
    region: "tuple | None" = None
    subpixel: bool = False
    precision: str = "fast"
    gray: bool = False
    returns: tuple = ()

    def find_kwargs(self):
        """Keyword arguments for :func:`matcher.find` / :func:`matcher.find_many` (not ``mask``)."""
        return {"threshold": self.threshold, "max_matches": self.max_matches, "max_overlap": self.max_overlap,
                "region": self.region, "subpixel": self.subpixel, "precision": self.precision}


class _Bad(Exception):
    pass


def _choice(allowed):
    def parse(value, form):
        if not isinstance(value, str) or value not in allowed:
            raise _Bad(f"must be one of {', '.join(allowed)}")
        return value
    return parse


def _bool(value, form):
    if form and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if not form and isinstance(value, bool):
        return value
    raise _Bad(f"must be {'true or false (or 1/0, yes/no, on/off)' if form else 'a JSON boolean'}")


def _number(value, form, kind):
    """An int (``kind`` int) or a finite float (``kind`` float) from a form string or a JSON number."""
    what = "an integer" if kind is int else "a number"
    if form and isinstance(value, str):
        try:
            value = int(value) if kind is int else float(value)
        except ValueError:
            raise _Bad(f"must be {what}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise _Bad(f"must be {what}")
    if kind is float:
        try:
            value = float(value)
        except OverflowError:  # a JSON integer with hundreds of digits
            raise _Bad("must be finite") from None
        if not math.isfinite(value):
            raise _Bad("must be finite")
    return value


def _threshold(value, form):
    return None if value is None else _number(value, form, float)


def _max_overlap(value, form):
    value = _number(value, form, float)
    if not 0 <= value <= 1:
        raise _Bad("must be a number from 0 to 1")
    return value


def _region(value, form):
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(",")
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise _Bad("must be 'x,y,w,h' (four integers)") from None
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise _Bad("must be 'x,y,w,h' or a list of four integers")
    x, y, w, h = value
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise _Bad("must have x, y >= 0 and w, h >= 1")
    return (x, y, w, h)


def _returns(allowed):
    def parse(values, form):
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _Bad(f"must be a list of {', '.join(allowed)}")
        names = [n.strip() for v in values for n in (v.split(",") if form else [v]) if n.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise _Bad(f"must list only {', '.join(allowed)}")
        return tuple(dict.fromkeys(names))
    return parse


def _shown(value, limit=80):
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**limit else "a huge integer"
    return text if len(text) <= limit else text[:limit - 5] + "...'"


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
    """

    def count(value, form):
        value = _number(value, form, int)
        if not 1 <= value <= max_matches:
            raise _Bad(f"must be an integer from 1 to {max_matches}")
        return value

    parsers = {"method": _choice(METHODS), "threshold": _threshold, "max_matches": count, "max_overlap": _max_overlap,
               "region": _region, "subpixel": _bool, "precision": _choice(PRECISIONS), "gray": _bool,
               "return": _returns(BATCH_RETURNS if batch else RETURNS)}
    values, errors = {}, []
    for name, value in raw.items():
        if form and value == "":
            continue
        try:
            values["returns" if name == "return" else name] = parsers[name](value, form)
        except _Bad as exc:
            errors.append({"field": name, "detail": f"{name} {exc}, got {_shown(value)}"})
    if errors:
        raise InvalidOption("; ".join(e["detail"] for e in errors), field=errors[0]["field"], errors=errors)
    return Options(**values)
