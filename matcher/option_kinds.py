"""One option of the spec, as a record: how a value of each kind is checked, parsed, written and described.

:class:`Option` is the record :data:`matcher.options.OPTIONS` holds one of per
option of :func:`matcher.find`; each method here serves every option of a kind
(``choice``, ``score``, ``count``, ``fraction``, ``box``, ``bool``, ``range``,
``step``). The string forms' patterns and the boolean words are module-level
so that the OpenAPI document and the tests use the same ones.
"""

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import MatcherError, ParameterTypeError
from .methods import get_method

__all__ = ["Option", "OptionSyntaxError", "DEFAULT_METHOD", "TRUE_WORDS", "FALSE_WORDS", "BOOLEAN_WORDS",
           "NUMBER_PATTERN", "POSITIVE_PATTERN", "FRACTION_PATTERN", "COUNT_PATTERN", "REGION_PATTERN", "INTEGER_PATTERN"]

DEFAULT_METHOD = "ncc"
"""The method a ``threshold`` is checked against when none is given."""

TRUE_WORDS = ("true", "1", "yes", "on")
"""The string forms of True (exactly these, lower case)."""
FALSE_WORDS = ("false", "0", "no", "off")
"""The string forms of False."""
BOOLEAN_WORDS = TRUE_WORDS + FALSE_WORDS

NUMBER_PATTERN = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
"""The string form of a number (``threshold``): decimal, optional exponent; no ``_``, spaces, inf or nan."""
FRACTION_PATTERN = r"0*1(?:\.0*)?|0*0(?:\.\d*)?|0*\.\d+"
"""The string form of a number in [0, 1] (``max_overlap``): a plain decimal such as ``0.3``, ``1``, ``.25``."""
POSITIVE_PATTERN = r"\+?(?:\d*[1-9]\d*(?:\.\d*)?|\d*\.\d*[1-9]\d*)(?:[eE][+-]?\d+)?"
"""The string form of a positive number (``angle_step``, ``scale_step``): a number with a non-zero digit
before any exponent, no sign but ``+``."""
COUNT_PATTERN = r"0*[1-9]\d*"
"""The string form of a positive integer (``max_matches``)."""
REGION_PATTERN = r"\d+,\d+,0*[1-9]\d*,0*[1-9]\d*"
"""The string form of a region ``x,y,w,h``: four integers, x and y >= 0, w and h >= 1."""

INTEGER_PATTERN = r"-?\d+"
"""The string form of an integer (no ``+``, ``_`` or spaces); ``max_matches`` must then be >= 1."""
_INTEGER = re.compile(INTEGER_PATTERN)
_DBL_MAX = sys.float_info.max  # a JSON Schema bound that excludes inf (and integers too big for a float)


class OptionSyntaxError(MatcherError):
    """The string form of an option that does not parse, or names a value that is never allowed.

    ``reason`` is the message without the option's name (``"not a number:
    'abc'"``), for callers that name the option their own way (``argument
    --threshold: ...``).

    >>> from matcher.options import parse_option
    >>> try:
    ...     parse_option("threshold", "1_0")
    ... except OptionSyntaxError as exc:
    ...     print(exc.param, "|", exc.reason)
    threshold | not a number: '1_0'
    """

    def __init__(self, message="", *, param=None, reason=None):
        super().__init__(message, param=param)
        self.reason = message if reason is None else reason


def _shown(value, limit=80):
    """``repr(value)``, cut short for very long values."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _float(value):
    """``float(value)``, with integers too large for a float becoming +-inf."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


@dataclass(frozen=True)
class Option:
    """One option of :func:`matcher.find`: what it is, what is allowed, how it is written.

    Attributes
    ----------
    name : str
        The keyword (``"max_overlap"``).
    kind : str
        How it is checked and written: ``"choice"`` (one of :attr:`choices`),
        ``"score"`` (a finite number in the method's range), ``"count"`` (a
        positive integer), ``"fraction"`` (a number in [0, 1]), ``"box"``
        (``(x, y, w, h)``), ``"bool"``, ``"range"`` (a pair ``(low, high)``
        of numbers within :attr:`limits`) or ``"step"`` (a positive number).
    type : type
        The Python type of a checked value (``float``, ``tuple``, ...).
    default : object
        :func:`matcher.find`'s default.
    doc : str
        One line for people (the CLI's help, the OpenAPI description).
    choices : tuple or None
        The allowed values of a ``"choice"``.
    nullable : bool
        Whether None is allowed (and what it means is in :attr:`doc`).
    metavar : str or None
        The CLI's name for the value (``"T"``), if it takes one.
    note : str
        Said after the allowed range in error messages.
    limits : tuple or None
        For a ``"range"``: ``(smallest low, largest high, widest span)``.
    """

    name: str
    kind: str
    type: type
    default: object
    doc: str
    choices: "tuple | None" = None
    nullable: bool = False
    metavar: "str | None" = None
    note: str = ""
    limits: "tuple | None" = None

    @property
    def flag(self):
        """The command-line flag: ``--max-overlap``."""
        return "--" + self.name.replace("_", "-")

    # ---------------------------------------------------------------- Python values

    def check(self, value, *, method=None):
        """``value`` checked and normalised (``threshold`` against ``method``, default ``"ncc"``).

        Raises
        ------
        MatcherError
            A value outside what is allowed (``param`` is :attr:`name`).
        ParameterTypeError
            A value of the wrong type (``param`` is :attr:`name`).

        Examples
        --------
        >>> from matcher.options import OPTIONS
        >>> OPTIONS["threshold"].check(0, method="ssd"), OPTIONS["region"].check([1, 2, 3, 4])
        (0.0, (1, 2, 3, 4))
        """
        name = self.name
        if value is None and self.nullable:
            return None
        if self.kind == "choice":
            if name == "method":
                try:
                    return get_method(value).name
                except TypeError as exc:
                    raise ParameterTypeError(str(exc), param=name) from None
                except MatcherError as exc:
                    raise MatcherError(str(exc), param=name) from None
            if not isinstance(value, str) or value not in self.choices:
                raise MatcherError(f"{name} must be one of {self.choices}, got {_shown(value)}", param=name)
            return value
        if self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise ParameterTypeError(f"{name} must be True or False, got {_shown(value)}", param=name)
            return bool(value)
        if self.kind == "count":
            if not _is_int(value):
                raise ParameterTypeError(f"{name} must be a positive integer or None, got {_shown(value)} "
                                         f"({type(value).__name__})", param=name)
            if value < 1:
                raise MatcherError(f"{name} must be a positive integer or None, got {value}", param=name)
            return int(value)
        if self.kind == "fraction":
            if not _is_real(value):
                raise ParameterTypeError(f"{name} must be a number in [0, 1], got {type(value).__name__}", param=name)
            number = _float(value)
            if not 0.0 <= number <= 1.0:  # NaN fails too
                raise MatcherError(f"{name} must be a number in [0, 1]{self.note}, got {_shown(value)}", param=name)
            return number
        if self.kind == "score":
            if not _is_real(value):
                raise ParameterTypeError(f"{name} must be a real number or None, got {type(value).__name__}",
                                         param=name)
            return _check_score(name, _float(value), get_method(method or DEFAULT_METHOD))
        if self.kind == "box":
            return _check_box(name, value)
        if self.kind == "range":
            return _check_range(name, value, self.limits)
        if self.kind == "step":
            if not _is_real(value):
                raise ParameterTypeError(f"{name} must be a positive number or None, got {type(value).__name__}",
                                         param=name)
            number = _float(value)
            if not (math.isfinite(number) and number > 0):
                raise MatcherError(f"{name} must be a positive number or None, got {_shown(value)}", param=name)
            return number
        raise AssertionError(self.kind)  # pragma: no cover

    # ---------------------------------------------------------------- string form

    def parse(self, text):
        """The string form of the option (a CLI flag's or an HTTP form field's value) as a Python value.

        Checks what the text alone can say (syntax, and the ranges that do
        not depend on another option); :meth:`check` does the rest.

        Raises
        ------
        OptionSyntaxError
            With ``param`` and ``reason``.

        Examples
        --------
        >>> from matcher.options import OPTIONS
        >>> OPTIONS["max_overlap"].parse("0.25"), OPTIONS["max_matches"].parse("3")
        (0.25, 3)
        """
        name = self.name

        def bad(reason):
            return OptionSyntaxError(f"{name}: {reason}", param=name, reason=reason)

        if not isinstance(text, str):
            raise ParameterTypeError(f"{name}: the string form must be a str, got {type(text).__name__}", param=name)
        shown = _shown(text)
        if self.kind == "choice":
            if text not in self.choices:
                raise bad(f"must be one of {', '.join(self.choices)}, got {shown}")
            return text
        if self.kind == "bool":
            if text not in BOOLEAN_WORDS:
                raise bad(f"must be true or false (or 1/0, yes/no, on/off), got {shown}")
            return text in TRUE_WORDS
        if self.kind == "count":
            if not _INTEGER.fullmatch(text):
                raise bad(f"not an integer: {shown}")
            if int(text) < 1:
                raise bad(f"must be at least 1, got {shown}")
            return int(text)
        if self.kind in ("score", "fraction"):
            if not re.fullmatch(NUMBER_PATTERN, text):
                if text.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
                    raise bad(f"must be a finite number, got {shown}")
                raise bad(f"not a number: {shown}")
            number = float(text)
            if not math.isfinite(number):
                raise bad(f"must be a finite number, got {shown}")
            if self.kind == "fraction" and not re.fullmatch(FRACTION_PATTERN, text):
                raise bad(f"must be between 0 and 1, written as a plain decimal such as 0.3, got {shown}"
                          if 0 <= number <= 1 else f"must be between 0 and 1, got {shown}")
            return number
        if self.kind == "box":
            parts = text.split(",")
            if len(parts) != 4 or not all(_INTEGER.fullmatch(p) for p in parts):
                raise bad(f"expected four integers x,y,w,h (x,y,width,height), got {shown}")
            x, y, w, h = (int(p) for p in parts)
            if x < 0 or y < 0:
                raise bad(f"x and y must be >= 0, got {shown}")
            if w < 1 or h < 1:
                raise bad(f"width and height must be >= 1, got {shown}")
            return (x, y, w, h)
        if self.kind in ("range", "step"):
            parts = text.split(",")
            if len(parts) != (2 if self.kind == "range" else 1) or not all(re.fullmatch(NUMBER_PATTERN, p) for p in parts):
                what = "two numbers low,high" if self.kind == "range" else "a number"
                raise bad(f"expected {what}, got {shown}")
            try:
                value = self.check(tuple(float(p) for p in parts) if self.kind == "range" else float(parts[0]))
            except MatcherError as exc:
                raise bad(str(exc).removeprefix(f"{name} ")) from None
            return value
        raise AssertionError(self.kind)  # pragma: no cover

    def format(self, value):
        """The string form of a Python value (what :meth:`parse` reads back); ``""`` for None.

        >>> from matcher.options import OPTIONS
        >>> OPTIONS["region"].format((1, 2, 3, 4)), OPTIONS["threshold"].format(-1.0)
        ('1,2,3,4', '-1')
        """
        if value is None:
            return ""
        if isinstance(value, (bool, np.bool_)):
            return "true" if value else "false"
        if isinstance(value, (tuple, list)):
            if self.kind == "range":
                return ",".join(self.format(float(v)) for v in value)
            return ",".join(str(int(v)) for v in value)
        if isinstance(value, (float, np.floating)):
            short = f"{value:g}"
            return short if float(short) == value else repr(float(value))
        return str(value)

    # ---------------------------------------------------------------- JSON

    def from_json(self, value, *, method=None):
        """A JSON value of the option checked: :meth:`check`, with JSON's own forms.

        Strings are not numbers or booleans here; a ``"choice"`` must be one
        of :attr:`choices` exactly; a region may also be its string form;
        integers may come as floats with no fraction (``2.0``, as JSON Schema
        allows).

        >>> from matcher.options import OPTIONS
        >>> OPTIONS["region"].from_json("0,0,5,5"), OPTIONS["max_matches"].from_json(2.0)
        ((0, 0, 5, 5), 2)
        """
        if self.kind == "choice" and not (isinstance(value, str) and value in self.choices):
            raise MatcherError(f"{self.name} must be one of {', '.join(self.choices)}, got {_shown(value)}",
                               param=self.name)
        if self.kind == "box" and isinstance(value, str):
            return self.parse(value)
        if self.kind == "count" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if self.kind == "box" and isinstance(value, list):
            value = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
        return self.check(value, method=method)

    def schema(self, *, form=False):
        """The JSON Schema of the option's string form (``form=True``) or JSON form, with default and description.

        A value is valid iff :meth:`parse` (for ``form``; the empty string,
        which a form uses for "absent", is also valid) or :meth:`from_json`
        accepts it, with three exceptions a schema cannot express: the
        ``threshold`` range depends on ``method`` (for the JSON form,
        :func:`threshold_rules` says it at the level of the request object;
        a form string is only checked to be a number); a form number
        too large for a float (``1e999``), or too small (a step of ``1e-999``),
        passes the pattern; and a ``range`` is only checked to be two numbers
        (JSON: each within the limits), not that low <= high, nor its span
        (nor, in a form, the limits).

        >>> from matcher.options import OPTIONS
        >>> OPTIONS["max_overlap"].schema()
        {'type': 'number', 'minimum': 0, 'maximum': 1, 'default': 0.3, 'description': 'largest overlap (intersection over union) allowed between two matches'}
        """
        optional = lambda pattern: {"type": "string", "pattern": f"^(?:{pattern})?$"}  # noqa: E731
        kind = self.kind
        if form:
            if kind == "choice":
                s = {"type": "string", "enum": [*self.choices, ""]}
            elif kind == "bool":
                s = {"type": "string", "enum": [*BOOLEAN_WORDS, ""]}
            else:
                s = optional({"count": COUNT_PATTERN, "fraction": FRACTION_PATTERN, "score": NUMBER_PATTERN,
                              "box": REGION_PATTERN, "range": f"{NUMBER_PATTERN},{NUMBER_PATTERN}",
                              "step": POSITIVE_PATTERN}[kind])
            default = self.format(self.default)
        else:
            if kind == "choice":
                s = {"type": "string", "enum": list(self.choices)}
            elif kind == "bool":
                s = {"type": "boolean"}
            elif kind == "count":
                s = {"type": "integer", "minimum": 1}
            elif kind == "fraction":
                s = {"type": "number", "minimum": 0, "maximum": 1}
            elif kind == "score":
                s = {"type": "number", "minimum": -_DBL_MAX, "maximum": _DBL_MAX}
            elif kind == "step":
                s = {"type": "number", "exclusiveMinimum": 0, "maximum": _DBL_MAX}
            elif kind == "range":
                lo, hi, _ = self.limits
                s = {"type": "array", "items": {"type": "number", "minimum": lo, "maximum": hi},
                     "minItems": 2, "maxItems": 2}
            else:
                s = {"oneOf": [
                    {"type": "string", "pattern": f"^(?:{REGION_PATTERN})$"},
                    {"type": "array", "prefixItems": [{"type": "integer", "minimum": 0}] * 2
                     + [{"type": "integer", "minimum": 1}] * 2, "minItems": 4, "maxItems": 4}]}
            if self.nullable:
                if "type" in s:
                    s["type"] = [s["type"], "null"]
                else:
                    s["oneOf"].append({"type": "null"})
            default = list(self.default) if isinstance(self.default, tuple) else self.default
        if default != "" or not form:
            s["default"] = default
        s["description"] = self.doc
        return s


def _check_score(name, threshold, method):
    lo, hi = method.range
    if not (math.isfinite(threshold) and lo <= threshold <= hi):
        if lo == -math.inf:
            allowed = "a finite number"
        elif hi == math.inf:
            allowed = f"a finite number >= {lo:g}"
        else:
            allowed = f"a number in [{lo:g}, {hi:g}]"
        bound = "an upper" if method.lower_is_better else "a lower"
        raise MatcherError(f"{name} for method {method.name!r} ({bound} bound on the score) must be {allowed}, "
                           f"got {threshold!r}", param=name)
    return threshold


def _check_range(name, value, limits):
    lo_limit, hi_limit, span = limits
    allowed = (f"{name} must be a pair (low, high) of numbers with {lo_limit:g} <= low <= high <= {hi_limit:g}"
               + (f", spanning at most {span:g}" if math.isfinite(span) else ""))
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
        raise ParameterTypeError(f"{allowed}, got {_shown(value)}", param=name)
    if len(value) != 2 or not all(_is_real(v) for v in value):
        raise MatcherError(f"{allowed}, got {_shown(tuple(value) if isinstance(value, list) else value)}", param=name)
    lo, hi = (_float(v) for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo_limit <= lo <= hi <= hi_limit and hi - lo <= span):
        raise MatcherError(f"{allowed}, got {_shown(tuple(value))}", param=name)
    return (lo, hi)


def _check_box(name, region):
    shown = _shown(tuple(region) if isinstance(region, list) else region)
    allowed = f"{name} must be a tuple (x, y, width, height) of 4 integers"
    if isinstance(region, (str, bytes, Mapping)) or not hasattr(region, "__len__"):
        raise ParameterTypeError(f"{allowed}, got {shown}", param=name)
    if len(region) != 4:
        raise MatcherError(f"{allowed}, got {len(region)} values: {shown}", param=name)
    if not all(_is_int(v) for v in region):
        raise ParameterTypeError(f"{allowed}, got {shown}", param=name)
    x, y, w, h = (int(v) for v in region)
    if w < 1 or h < 1:
        raise MatcherError(f"{name} width and height must be positive (at least 1), got {shown}", param=name)
    if x < 0 or y < 0:
        raise MatcherError(f"{name} must lie inside the image: x and y must be >= 0, got {shown}", param=name)
    return (x, y, w, h)
