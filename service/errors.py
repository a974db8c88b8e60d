"""Every error the service answers, mapped to an HTTP status in this one place.

Bodies are RFC 9457 problem details (``application/problem+json``)::

    {"type": "urn:matcher:problem:invalid-option", "title": "Invalid option",
     "status": 400, "detail": "max_matches must be an integer from 1 to 100, got 'x'",
     "field": "max_matches", "errors": [{"field": "max_matches", "detail": "..."}]}

``type`` is ``urn:matcher:problem:<slug>`` for the service's own problems and
``about:blank`` for plain HTTP ones (404, 405, ...), whose ``title`` is the
status phrase. ``field`` names the request part or option at fault when there
is one. Views raise; :func:`register_error_handlers` turns the exception into
the response:

===========================================  ======  ===========================
exception                                    status  type slug
===========================================  ======  ===========================
InvalidRequest (missing part, bad JSON...)   400     invalid-request
InvalidOption, matcher.MatcherError          400     invalid-option
matcher.ImageDecodeError                     400     undecodable-image
Unauthorized                                 401     unauthorized
TooLarge (per-file bytes, MATCHER_MAX_WORK,  413     too-large
  MATCHER_MAX_TURN_WORK)
matcher.ImageTooLargeError                   413     image-too-large
werkzeug RequestEntityTooLarge               413     request-too-large
UnsupportedMediaType                         415     unsupported-media-type
matcher.UnsupportedFormatError               415     unsupported-format
Unprocessable (region, mask, channels)       422     unprocessable
matcher.TemplateTooLargeError                422     template-too-large
Busy (MATCHER_MAX_CONCURRENT reached)        503     busy
the server's own body errors (gunicorn:      400     malformed-body
  bad chunk sizes or terminators, body cut)
other werkzeug HTTPException                 its own about:blank
anything else                                500     internal-error (logged)
===========================================  ======  ===========================
"""

import json
import logging
import uuid

from flask import Response, current_app
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from matcher.errors import (
    ImageDecodeError,
    ImageTooLargeError,
    MatcherError,
    TemplateTooLargeError,
    UnsupportedFormatError,
)

__all__ = [
    "PROBLEM_MIME",
    "ServiceError",
    "InvalidRequest",
    "InvalidOption",
    "Unauthorized",
    "TooLarge",
    "UnsupportedMediaType",
    "Unprocessable",
    "Busy",
    "problem_response",
    "register_error_handlers",
]

PROBLEM_MIME = "application/problem+json"
TYPE_PREFIX = "urn:matcher:problem:"
log = logging.getLogger("service")


class ServiceError(Exception):
    """Base of the service's own errors: a status, a type slug and a title per class.

    Parameters
    ----------
    detail : str
        What went wrong, for a person.
    field : str, optional
        The request part or option at fault.
    headers : dict, optional
        Extra response headers (``WWW-Authenticate``, ``Retry-After``).
    **extra
        More members of the problem body (e.g. ``errors``).
    """

    status, slug, title = 400, "invalid-request", "Invalid request"

    def __init__(self, detail, *, field=None, headers=None, **extra):
        super().__init__(detail)
        self.detail, self.field, self.headers, self.extra = detail, field, headers or {}, extra


class InvalidRequest(ServiceError):
    """The request is malformed: missing part, unknown field, bad JSON or base64."""


class InvalidOption(ServiceError):
    """An option has a value outside what is allowed."""

    status, slug, title = 400, "invalid-option", "Invalid option"


class Unauthorized(ServiceError):
    """No API key, or a wrong one, while keys are configured."""

    status, slug, title = 401, "unauthorized", "Authentication required"


class TooLarge(ServiceError):
    """A file part over the byte limit, or a request over the work limit."""

    status, slug, title = 413, "too-large", "Request too large"


class UnsupportedMediaType(ServiceError):
    """A request Content-Type the endpoint does not take."""

    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(ServiceError):
    """Valid parts that do not fit together: region outside the image, mask or channel mismatch."""

    status, slug, title = 422, "unprocessable", "Inputs do not fit together"


class Busy(ServiceError):
    """The worker is already running its maximum number of matches."""

    status, slug, title = 503, "busy", "Server busy"


# matcher's exceptions: (status, slug, title); Flask picks the most specific class.
_MATCHER_ERRORS = {
    UnsupportedFormatError: (415, "unsupported-format", "Unsupported image format"),
    ImageTooLargeError: (413, "image-too-large", "Image too large"),
    ImageDecodeError: (400, "undecodable-image", "Image could not be decoded"),
    TemplateTooLargeError: (422, "template-too-large", "Template larger than the image"),
    MatcherError: (400, "invalid-option", "Invalid option"),
}


def problem_response(status, title, detail, *, slug=None, field=None, headers=None, **extra):
    """Build an ``application/problem+json`` response.

    ``slug`` None gives ``type: about:blank``; ``field`` adds ``field`` and a
    one-item ``errors`` list unless ``extra`` has one.
    """
    body = {"type": TYPE_PREFIX + slug if slug else "about:blank", "title": title, "status": status, "detail": detail}
    if field is not None:
        body["field"] = field
        extra.setdefault("errors", [{"field": field, "detail": detail}])
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    response.headers.update(headers or {})
    return response


def _service_error(exc):
    return problem_response(exc.status, exc.title, exc.detail, slug=exc.slug, field=exc.field,
                            headers=exc.headers, **exc.extra)


def _matcher_error(exc):
    status, slug, title = _MATCHER_ERRORS[next(c for c in type(exc).__mro__ if c in _MATCHER_ERRORS)]
    return problem_response(status, title, str(exc), slug=slug, field=getattr(exc, "field", None))


def _http_error(exc):
    if exc.code is None or exc.code < 400:  # not an error (e.g. a redirect): Werkzeug's own response
        return exc
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    if isinstance(exc, RequestEntityTooLarge):
        return problem_response(413, "Request too large", _too_large_detail(), slug="request-too-large")
    return problem_response(exc.code, exc.name, exc.description, headers=headers)


def _too_large_detail():
    c = current_app.config
    return (f"the request is over a size limit: body at most {c['MAX_CONTENT_LENGTH']:,} bytes, "
            f"at most {c['MAX_FORM_PARTS']} multipart parts, non-file fields at most "
            f"{c['MAX_FORM_MEMORY_SIZE']:,} bytes")


def _unexpected(exc):
    incident = str(uuid.uuid4())
    log.error("unexpected error, incident %s", incident, exc_info=exc)
    return problem_response(500, "Internal server error",
                            "an unexpected error occurred; it was logged with the incident id in 'instance'",
                            slug="internal-error", instance=f"urn:uuid:{incident}")


def _transport_errors():
    """The exception classes the WSGI server raises while the app reads a malformed body (gunicorn's
    chunk and truncation errors); none without gunicorn."""
    try:
        from gunicorn.http.errors import NoMoreData, ParseException
    except ImportError:  # the development server: werkzeug reports these itself
        return ()
    return (ParseException, NoMoreData)


def _malformed_body(exc):
    return problem_response(400, "Malformed request body",
                            f"the request body could not be read: {type(exc).__name__} {exc}".rstrip()
                            + "; send a complete body (a Content-Length, or well-formed chunked encoding)",
                            slug="malformed-body")


def register_error_handlers(app):
    """Install the mapping above on ``app`` (the only place statuses are chosen)."""
    for cls in _transport_errors():
        app.register_error_handler(cls, _malformed_body)
    app.register_error_handler(ServiceError, _service_error)
    for cls in _MATCHER_ERRORS:
        app.register_error_handler(cls, _matcher_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
