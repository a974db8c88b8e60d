"""Exceptions raised by matcher.

Every error a caller can cause is a ``MatcherError``, which subclasses
``ValueError`` so that plain ``except ValueError`` keeps working. A search
that runs out of time raises :class:`SearchTimeout`, a ``TimeoutError``: the
input was valid, the time allowed was not enough. The service
maps these classes to HTTP statuses in one place (``service/errors.py``).
"""

__all__ = [
    "MatcherError",
    "ParameterTypeError",
    "ImageDecodeError",
    "UnsupportedFormatError",
    "ImageTooLargeError",
    "TemplateTooLargeError",
    "SearchTimeout",
]


class MatcherError(ValueError):
    """Base class for every error caused by the caller's input.

    ``param`` names the offending parameter (``"threshold"``, ``"mask"``,
    ``"image"``, ...) when one is to blame, else None: callers such as the
    CLI and the service read it to say which flag or field was wrong, so
    nothing has to parse the message.

    >>> MatcherError("threshold must be ...", param="threshold").param
    'threshold'
    """

    def __init__(self, message="", *, param=None):
        super().__init__(message)
        self.param = param


class ParameterTypeError(TypeError):
    """An argument of the wrong type; ``param`` names it, as :class:`MatcherError`'s does.

    A ``TypeError`` (not a ``MatcherError``): the caller passed the wrong kind
    of thing, not a bad value of the right kind.

    >>> ParameterTypeError("subpixel must be True or False, got 1", param="subpixel").param
    'subpixel'
    """

    def __init__(self, message="", *, param=None):
        super().__init__(message)
        self.param = param


class ImageDecodeError(MatcherError):
    """The bytes could not be decoded as an image (corrupt or truncated)."""


class UnsupportedFormatError(ImageDecodeError):
    """The data is in a format outside the allowed list."""


class ImageTooLargeError(MatcherError):
    """The image has more pixels (or bytes) than the configured limit."""


class TemplateTooLargeError(MatcherError):
    """The template is larger than the image in at least one dimension."""


class SearchTimeout(TimeoutError):
    """A search ran past its ``timeout`` (:mod:`matcher.deadline`) and was abandoned.

    A ``TimeoutError``, not a :class:`MatcherError`: nothing was wrong with
    the input (so ``except ValueError`` does not swallow it), and the same
    call may succeed with more time or on a less busy machine. ``param`` is
    always ``"timeout"``; ``timeout`` is the limit in seconds and ``elapsed``
    the seconds spent when the engine noticed.

    >>> exc = SearchTimeout("too slow", timeout=2.0, elapsed=2.1)
    >>> isinstance(exc, TimeoutError), isinstance(exc, ValueError), exc.param
    (True, False, 'timeout')
    """

    def __init__(self, message="", *, timeout=None, elapsed=None):
        super().__init__(message)
        self.param, self.timeout, self.elapsed = "timeout", timeout, elapsed
