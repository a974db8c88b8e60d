"""matcher: template matching that is exact, guarded and fast.

>>> import numpy as np
>>> from matcher import match_template
>>> image = np.arange(1, 19, dtype=float).reshape(3, 6)
>>> scores = match_template(image, [[5, 6], [11, 12]], "ssd")
>>> np.unravel_index(scores.argmin(), scores.shape)   # (y, x)
(np.int64(0), np.int64(4))
"""

from .scores.inputs import ALGORITHMS, LOWER_IS_BETTER, METHODS, MODES, PRECISIONS
from .scores.plan import choose_algorithm
from .scores.engine import match_template, set_num_threads
from .search.find import Match, find, find_many, find_with_scores
from .options import FindOptions
from .io import LoadedImage, load_image
from .errors import (
    ImageDecodeError,
    ImageTooLargeError,
    MatcherError,
    ParameterTypeError,
    SearchTimeout,
    TemplateTooLargeError,
    UnsupportedFormatError,
)
from .scores.reference import match_template_reference

__version__ = "0.1.0"

__all__ = [
    "find",
    "find_many",
    "find_with_scores",
    "Match",
    "FindOptions",
    "match_template",
    "match_template_reference",
    "load_image",
    "LoadedImage",
    "choose_algorithm",
    "set_num_threads",
    "METHODS",
    "MODES",
    "PRECISIONS",
    "ALGORITHMS",
    "LOWER_IS_BETTER",
    "MatcherError",
    "ParameterTypeError",
    "ImageDecodeError",
    "UnsupportedFormatError",
    "ImageTooLargeError",
    "TemplateTooLargeError",
    "SearchTimeout",
    "__version__",
]
