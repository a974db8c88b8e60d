"""One spec of :func:`matcher.find`'s options, validated once.

Each option has one :class:`Option` record in :data:`OPTIONS`: its name, the
Python type of a valid value, its default, what is allowed, a one-line doc,
whether None is allowed, and its command-line flag. From that record come

- :meth:`Option.check`: a Python value checked and normalised, or a
  :class:`~matcher.errors.MatcherError` (a bad value) or
  :class:`~matcher.errors.ParameterTypeError` (a wrong type), both with
  ``param`` set to the option's name. :meth:`FindOptions.check` checks them
  all: :func:`matcher.find` and :func:`matcher.find_many` call it;
- :meth:`Option.parse`: the *string* form (a command-line flag, an HTTP form
  field) parsed, or an :class:`OptionSyntaxError`: ``"0.5"``,
  ``"true"``/``"false"`` (or ``1/0``, ``yes/no``, ``on/off``),
  ``"x,y,w,h"``. Python's own ``float()`` and ``int()`` are not used on the
  text as is: they accept ``1_0``, spaces, ``+``, ``infinity``, which are not
  part of these forms;
- :meth:`Option.from_json`: a JSON value (typed) checked;
- :meth:`Option.schema`: the JSON Schema of the string or JSON form, which
  accepts exactly what :meth:`Option.parse` / :meth:`Option.from_json` accept
  (see the method for the two things a schema cannot say).

The command line (:mod:`matcher.cli`) builds its flags from these records, and
the HTTP service its parser and OpenAPI document.

>>> FindOptions.check(method="TM_SQDIFF", threshold=3)
FindOptions(method='ssd', threshold=3.0, max_matches=1, max_overlap=0.3, region=None, subpixel=False, precision='fast', pyramid=False, angles=None, scales=None, angle_step=None, scale_step=None)
>>> parse_option("angles", "-180,180"), parse_option("scales", "0.9,1.1")
((-180.0, 180.0), (0.9, 1.1))
>>> parse_option("region", "10,20,30,40"), parse_option("subpixel", "yes")
((10, 20, 30, 40), True)
>>> FindOptions.check(max_overlap=2)
Traceback (most recent call last):
...
matcher.errors.MatcherError: max_overlap must be a number in [0, 1] (intersection over union), got 2
"""

import math
from dataclasses import asdict, dataclass

from .errors import MatcherError
from .methods import METHODS, get_method
from .option_kinds import (BOOLEAN_WORDS, COUNT_PATTERN, DEFAULT_METHOD, FALSE_WORDS, FRACTION_PATTERN,  # noqa: F401
                           INTEGER_PATTERN, NUMBER_PATTERN, REGION_PATTERN, TRUE_WORDS, Option, OptionSyntaxError)
from .scores.inputs import PRECISIONS

__all__ = [
    "Option",
    "OPTIONS",
    "FindOptions",
    "OptionSyntaxError",
    "parse_option",
    "format_option",
    "threshold_range",
    "threshold_rules",
    "METHODS",
    "PRECISIONS",
    "TRUE_WORDS",
    "FALSE_WORDS",
    "BOOLEAN_WORDS",
    "NUMBER_PATTERN",
    "FRACTION_PATTERN",
    "COUNT_PATTERN",
    "REGION_PATTERN",
    "INTEGER_PATTERN",
]

def threshold_range(method):
    """The allowed ``threshold`` for a method: ``(lo, hi)``, inclusive; infinite means "any finite number".

    The method's score range (:attr:`matcher.methods.Method.range`).

    >>> threshold_range("ssd_normed"), threshold_range("ssd")
    ((0.0, 1.0), (0.0, inf))
    """
    return get_method(method).range



OPTIONS = {o.name: o for o in (
    Option("method", "choice", str, DEFAULT_METHOD,
           "score: one of " + ", ".join(METHODS) + "; ssd and ssd_normed are lower-is-better",
           choices=METHODS),
    Option("threshold", "score", float, None,
           "keep only matches scoring at least this (at most, for ssd and ssd_normed), within the method's "
           "score range; none: no bound, the best windows are kept", nullable=True, metavar="T"),
    Option("max_matches", "count", int, 1, "report up to this many matches, best first (None: all)",
           nullable=True, metavar="N"),
    Option("max_overlap", "fraction", float, 0.3,
           "largest overlap (intersection over union) allowed between two matches", metavar="F",
           note=" (intersection over union)"),
    Option("region", "box", tuple, None,
           "search only windows inside this rectangle of the image: x,y,w,h (top-left corner and size, pixels)",
           nullable=True, metavar="X,Y,W,H"),
    Option("subpixel", "bool", bool, False, "refine positions to sub-pixel precision (x and y become fractional)"),
    Option("precision", "choice", str, "fast", "score precision: fast or exact", choices=PRECISIONS),
    Option("pyramid", "bool", bool, False, "coarse-to-fine search (normalised methods only; faster on large images)"),
    Option("angles", "range", tuple, None,
           "find the template turned by an angle in this range, degrees counter-clockwise as displayed "
           "(-180,180: the full circle); none: not turned", nullable=True, metavar="START,STOP",
           limits=(-360.0, 360.0, 360.0)),
    Option("scales", "range", tuple, None,
           "find the template scaled by a factor in this range; none: not scaled", nullable=True, metavar="LO,HI",
           limits=(1e-3, 1e3, math.inf)),
    Option("angle_step", "step", float, None,
           "the turned search's angle step, degrees; none: the template's farthest pixel moves half a pixel",
           nullable=True, metavar="DEG"),
    Option("scale_step", "step", float, None,
           "the scaled search's scale step; none: the template's farthest pixel moves half a pixel",
           nullable=True, metavar="S"),
)}
"""Every option of :func:`matcher.find`, by name, in its signature's order."""


def threshold_rules():
    """JSON Schema rules (for ``allOf``) tying the JSON ``threshold`` to the ``method`` of the same object.

    One ``if``/``then`` per method whose score range is bounded, and one for
    an absent ``method`` (the default).

    >>> threshold_rules()[0]["then"]
    {'properties': {'threshold': {'minimum': 0.0}}}
    """
    def bounds(method):
        lo, hi = threshold_range(method)
        return {k: v for k, v in (("minimum", lo), ("maximum", hi)) if math.isfinite(v)}

    rules = [{"if": {"required": ["method"], "properties": {"method": {"const": m}}},
              "then": {"properties": {"threshold": bounds(m)}}} for m in METHODS if bounds(m)]
    rules.append({"if": {"not": {"required": ["method"]}},
                  "then": {"properties": {"threshold": bounds(DEFAULT_METHOD)}}})
    return rules


def parse_option(name, text):
    """Parse the string form of option ``name`` (:meth:`Option.parse`).

    >>> parse_option("threshold", "-0.5")
    -0.5
    >>> parse_option("region", "-5,0,100,100")
    Traceback (most recent call last):
    ...
    matcher.option_kinds.OptionSyntaxError: region: x and y must be >= 0, got '-5,0,100,100'
    """
    return OPTIONS[name].parse(text)


def format_option(name, value):
    """The string form of a value of option ``name`` (:meth:`Option.format`).

    >>> format_option("subpixel", True)
    'true'
    """
    return OPTIONS[name].format(value)


_CHECKED = {}  # options already checked, by _plain_key: a call with the same values is not checked again
_CHECKED_SIZE = 4096
_PLAIN_TYPES = frozenset((type(None), bool, int, float, str))


def _plain_key(given):
    """A key for option values of plain Python types (and tuples of them), with their types; None for others.

    The types are part of the key so that ``True`` and ``1``, or ``1`` and
    ``1.0``, which are equal and hash alike, are not taken for each other.
    Values of other types (numpy scalars, lists) are checked every time.

    >>> _plain_key({"a": 1}) != _plain_key({"a": True}), _plain_key({"region": [0, 0, 4, 4]})
    (True, None)
    """
    values = tuple(given.values())
    types = tuple(map(type, values))
    if tuple in types:
        inner = tuple(tuple(map(type, v)) for v in values if type(v) is tuple)
        if not _PLAIN_TYPES.issuperset(t for kinds in inner for t in kinds):
            return None
        types += inner
    if not _PLAIN_TYPES.issuperset(t for t in types if t is not tuple and type(t) is not tuple):
        return None
    return values, types


@dataclass(frozen=True)
class FindOptions:
    """:func:`matcher.find`'s options, checked: build it with :meth:`check`.

    Fields are normalised: ``method`` the canonical name, ``threshold`` and
    ``max_overlap`` floats, ``region`` a tuple of ints or None.
    """

    method: str = OPTIONS["method"].default
    threshold: "float | None" = OPTIONS["threshold"].default
    max_matches: "int | None" = OPTIONS["max_matches"].default
    max_overlap: float = OPTIONS["max_overlap"].default
    region: "tuple | None" = OPTIONS["region"].default
    subpixel: bool = OPTIONS["subpixel"].default
    precision: str = OPTIONS["precision"].default
    pyramid: bool = OPTIONS["pyramid"].default
    angles: "tuple | None" = OPTIONS["angles"].default
    scales: "tuple | None" = OPTIONS["scales"].default
    angle_step: "float | None" = OPTIONS["angle_step"].default
    scale_step: "float | None" = OPTIONS["scale_step"].default

    @property
    def turned(self):
        """Whether the search looks for the template turned or scaled (``angles`` or ``scales`` given)."""
        return self.angles is not None or self.scales is not None

    @classmethod
    def check(cls, *, method=OPTIONS["method"].default, threshold=OPTIONS["threshold"].default,
              max_matches=OPTIONS["max_matches"].default, max_overlap=OPTIONS["max_overlap"].default,
              region=OPTIONS["region"].default, subpixel=OPTIONS["subpixel"].default,
              precision=OPTIONS["precision"].default, pyramid=OPTIONS["pyramid"].default,
              angles=None, scales=None, angle_step=None, scale_step=None):
        """Check every option (:meth:`Option.check`), the first bad one raising; return them normalised.

        Parameters
        ----------
        method, threshold, max_matches, max_overlap, region, subpixel, precision, pyramid, angles, scales,
        angle_step, scale_step
            As :func:`matcher.find` takes them (keyword-only; defaults as there). The turned search
            (``angles`` or ``scales``) needs a normalised method and is not a pyramid search.

        Returns
        -------
        FindOptions

        Raises
        ------
        MatcherError
            A bad value; ``param`` names the option.
        ParameterTypeError
            A value of the wrong type; ``param`` names the option.

        Examples
        --------
        >>> FindOptions.check(method=5, region=[0, 0, 4, 4]).region
        (0, 0, 4, 4)
        >>> FindOptions.check(threshold=1.5)
        Traceback (most recent call last):
        ...
        matcher.errors.MatcherError: threshold for method 'ncc' (a lower bound on the score) must be a number in [-1, 1], got 1.5
        """
        given = {"method": method, "threshold": threshold, "max_matches": max_matches, "max_overlap": max_overlap,
                 "region": region, "subpixel": subpixel, "precision": precision, "pyramid": pyramid,
                 "angles": angles, "scales": scales, "angle_step": angle_step, "scale_step": scale_step}
        key = _plain_key(given)
        known = _CHECKED.get(key) if key is not None else None
        if known is not None:
            return known
        method = OPTIONS["method"].check(method)
        checked = cls(**{name: method if name == "method" else OPTIONS[name].check(value, method=method)
                         for name, value in given.items()})
        if checked.turned and not get_method(method).normalised:
            raise MatcherError(f"a turned or scaled search (angles, scales) needs a normalised method, one of "
                               f"{tuple(m for m in METHODS if get_method(m).normalised)}, got {method!r}",
                               param="method")
        if checked.turned and checked.pyramid:
            raise MatcherError("angles and scales search coarse to fine already; pyramid=True cannot be added",
                               param="pyramid")
        if key is not None and len(_CHECKED) < _CHECKED_SIZE:
            _CHECKED[key] = checked
        return checked

    def kwargs(self, *, pyramid=True):
        """The options as keyword arguments of :func:`matcher.find` (``pyramid=False``: those of
        ``find_many``, which has neither the pyramid nor the turned search).

        >>> sorted(FindOptions().kwargs(pyramid=False))
        ['max_matches', 'max_overlap', 'method', 'precision', 'region', 'subpixel', 'threshold']
        """
        values = asdict(self)
        if not pyramid:
            for name in ("pyramid", "angles", "scales", "angle_step", "scale_step"):
                del values[name]
        return values
