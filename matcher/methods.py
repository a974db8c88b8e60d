"""The table of matching methods: one record per score, read by every other module.

Everything matcher knows about a method lives in its :class:`Method` record:
its name and OpenCV constant, which direction is better, whether it is
normalised (a fixed range whatever the template), whether template and window
are centred first, its range, and what a degenerate window scores. The engine,
the search, the CLI, the service, its OpenAPI document and the web page (through
``GET /v1/methods``) all read this table; nothing else spells these facts out.

>>> get_method("TM_CCOEFF_NORMED").name, get_method(0).name
('ncc', 'ssd')
>>> [m.name for m in TABLE if m.lower_is_better]
['ssd', 'ssd_normed']
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import MatcherError

__all__ = ["Method", "TABLE", "METHODS", "LOWER_IS_BETTER", "NORMALIZED_METHODS", "get_method", "normalize_method"]


@dataclass(frozen=True)
class Method:
    """What one score is.

    Attributes
    ----------
    name : str
        matcher's name (``"ncc"``, ...).
    opencv : int
        OpenCV's ``TM_*`` constant (also the index in :data:`METHODS`).
    opencv_name : str
        That constant's name (``"TM_CCOEFF_NORMED"``).
    lower_is_better : bool
        ``ssd`` and ``ssd_normed``: 0 is a perfect match, and ``threshold`` is an upper bound.
    normalised : bool
        Scores lie in :attr:`range` whatever the template, so they compare across templates.
    zero_mean : bool
        Template and window are centred (their weighted means subtracted) first.
    range : (float, float)
        Smallest and largest possible score; ``-inf``/``inf`` where unbounded.
    degenerate : str
        What a window scores where the method's denominator vanishes.
    description : str
        One line for people.
    """

    name: str
    opencv: int
    opencv_name: str
    lower_is_better: bool
    normalised: bool
    zero_mean: bool
    range: tuple
    degenerate: str
    description: str

    @property
    def better(self):
        """``"lower"`` or ``"higher"``."""
        return "lower" if self.lower_is_better else "higher"

    @property
    def uses_window_energy(self):
        """Whether the score needs every window's sum of squares (``ssd`` and the normalised methods)."""
        return self.normalised or self.name == "ssd"

    @property
    def span(self):
        """Width of :attr:`range` for a normalised method (what "of the score range" means at most)."""
        lo, hi = self.range
        return hi - lo

    def goodness(self, scores):
        """``scores`` turned so that higher is better (negated for lower-is-better methods)."""
        return -scores if self.lower_is_better else scores


_INF = math.inf
TABLE = (
    Method("ssd", 0, "TM_SQDIFF", True, False, False, (0.0, _INF), "-",
           "sum of squared differences; 0 is a perfect match"),
    Method("ssd_normed", 1, "TM_SQDIFF_NORMED", True, True, False, (0.0, 1.0),
           "0 where window and template are both all zero, 1 where only one is",
           "ssd normalised by the template and window norms; 0 is perfect"),
    Method("ccorr", 2, "TM_CCORR", False, False, False, (-_INF, _INF), "-",
           "cross-correlation (sum of products); unbounded, favours bright windows"),
    Method("ccorr_normed", 3, "TM_CCORR_NORMED", False, True, False, (-1.0, 1.0),
           "0 where the window or the template is all zero",
           "cross-correlation normalised by the norms; 1 is perfect (0 to 1 for non-negative images)"),
    Method("ccoeff", 4, "TM_CCOEFF", False, False, True, (-_INF, _INF), "-",
           "cross-correlation of the mean-subtracted template and window"),
    Method("ncc", 5, "TM_CCOEFF_NORMED", False, True, True, (-1.0, 1.0),
           "0 where the window or the template is flat (constant): no evidence, not a false 1.0",
           "zero-mean normalised cross-correlation (Pearson); 1 is perfect, 0 for flat windows"),
)
"""Every method, in OpenCV's order (``TABLE[i].opencv == i``)."""

METHODS = tuple(m.name for m in TABLE)
"""Score names; index ``i`` is OpenCV's ``TM_*`` constant ``i``."""
LOWER_IS_BETTER = tuple(m.name for m in TABLE if m.lower_is_better)
"""Methods where the lowest score is the best match."""
NORMALIZED_METHODS = tuple(m.name for m in TABLE if m.normalised)
"""Methods whose scores lie in a fixed range whatever the template: comparable across templates."""

_BY_NAME = {m.name: m for m in TABLE} | {m.opencv_name: m for m in TABLE}


def get_method(method):
    """The :class:`Method` record for a name, an OpenCV ``TM_*`` constant (0-5) or its name.

    Raises
    ------
    MatcherError
        An unknown name or constant (``param="method"``).
    TypeError
        Neither a string nor an int.

    Examples
    --------
    >>> get_method("ssd_normed").range
    (0.0, 1.0)
    """
    allowed = f"one of {METHODS} or an OpenCV TM_* constant 0-5"
    if isinstance(method, Method):
        return method
    if isinstance(method, (bool, np.bool_)):
        raise TypeError(f"method must be {allowed}, got {method!r}")
    if isinstance(method, (int, np.integer)):
        if 0 <= int(method) < len(TABLE):
            return TABLE[int(method)]
    elif isinstance(method, str):
        found = _BY_NAME.get(method) or _BY_NAME.get(method.upper())
        if found is not None:
            return found
    else:
        raise TypeError(f"method must be a string or an int, got {type(method).__name__}")
    raise MatcherError(f"method must be {allowed}, got {method!r}", param="method")


def normalize_method(method):
    """The canonical method name for a name or an OpenCV ``TM_*`` constant or name.

    >>> normalize_method(5), normalize_method("tm_sqdiff")
    ('ncc', 'ssd')
    """
    return get_method(method).name
