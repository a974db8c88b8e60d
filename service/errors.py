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
RequestTimeout (headers or body not          408     request-timeout
  received within MATCHER_CLIENT_TIMEOUT)
RequestTooLarge (body over the limit, by     413     request-too-large
  the front, before or while reading it)
Busy (MATCHER_MAX_CONCURRENT reached; or     503     busy
  the front's queue full, MATCHER_QUEUE)
ComputeUnavailable (the compute worker died  503     compute-unavailable
  twice, or did not answer in time)
the server's own body errors (gunicorn:      400     malformed-body
  bad chunk sizes or terminators, body cut)
the front's HTTP parsing errors (request     414,    about:blank
  line or headers too long, unknown          431,
  transfer coding: transport_problem)        501
  ... and headers that do not arrive in time 408     request-timeout
other werkzeug HTTPException                 its own about:blank
anything else                                500     internal-error (logged)
===========================================  ======  ===========================
"""

import json
import logging
import uuid
from http import HTTPStatus

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
    "RequestTimeout",
    "RequestTooLarge",
    "Busy",
    "ComputeUnavailable",
    "problem_body",
    "problem_document",
    "problem_response",
    "transport_problem",
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


class RequestTimeout(ServiceError):
    """The client did not send its headers, or its body, within ``MATCHER_CLIENT_TIMEOUT`` (the front)."""

    status, slug, title = 408, "request-timeout", "Request timeout"


class RequestTooLarge(ServiceError):
    """The body is over ``MATCHER_MAX_REQUEST_BYTES`` (the front; the app's own check is Werkzeug's)."""

    status, slug, title = 413, "request-too-large", "Request too large"


class Busy(ServiceError):
    """No capacity now: every compute slot taken and the queue full (``Retry-After`` says when to retry)."""

    status, slug, title = 503, "busy", "Server busy"


class ComputeUnavailable(ServiceError):
    """The compute worker running the match died (twice) or did not answer in time."""

    status, slug, title = 503, "compute-unavailable", "Compute worker unavailable"


# matcher's exceptions: (status, slug, title); Flask picks the most specific class.
_MATCHER_ERRORS = {
    UnsupportedFormatError: (415, "unsupported-format", "Unsupported image format"),
    ImageTooLargeError: (413, "image-too-large", "Image too large"),
    ImageDecodeError: (400, "undecodable-image", "Image could not be decoded"),
    TemplateTooLargeError: (422, "template-too-large", "Template larger than the image"),
    MatcherError: (400, "invalid-option", "Invalid option"),
}


def problem_body(status, title, detail, *, slug=None, field=None, **extra):
    """The problem details object (a dict).

    ``slug`` None gives ``type: about:blank``; ``field`` adds ``field`` and a
    one-item ``errors`` list unless ``extra`` has one.
    """
    body = {"type": TYPE_PREFIX + slug if slug else "about:blank", "title": title, "status": status, "detail": detail}
    if field is not None:
        body["field"] = field
        extra.setdefault("errors", [{"field": field, "detail": detail}])
    body.update(extra)
    return body


def problem_response(status, title, detail, *, slug=None, field=None, headers=None, **extra):
    """Build an ``application/problem+json`` Flask response (see :func:`problem_body`)."""
    body = problem_body(status, title, detail, slug=slug, field=field, **extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    response.headers.update(headers or {})
    return response


def problem_document(exc):
    """``(status, headers, body bytes)`` of a :class:`ServiceError`, without Flask (the front's answers)."""
    body = problem_body(exc.status, exc.title, exc.detail, slug=exc.slug, field=exc.field, **exc.extra)
    return exc.status, {"Content-Type": PROBLEM_MIME, **exc.headers}, json.dumps(body).encode()


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


def transport_problem(status, message):
    """``(headers, body bytes)`` for an error gunicorn's front worker answers before the app sees the
    request (it could not parse it, or its headers did not arrive in time): 400 is ``malformed-body``,
    408 ``request-timeout``, the others (414, 431, 501) about:blank."""
    if status == 408:
        body = problem_body(408, RequestTimeout.title, message, slug=RequestTimeout.slug)
    elif status == 400:
        body = problem_body(400, "Malformed request", f"the request could not be parsed: {message}".rstrip(": ")
                            + "; send well-formed HTTP/1.1 (a Content-Length, or well-formed chunked encoding)",
                            slug="malformed-body")
    else:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        body = problem_body(status, title, message or title)
    return {"Content-Type": PROBLEM_MIME}, json.dumps(body).encode()


def register_error_handlers(app):
    """Install the mapping above on ``app`` (the only place statuses are chosen)."""
    for cls in _transport_errors():
        app.register_error_handler(cls, _malformed_body)
    app.register_error_handler(ServiceError, _service_error)
    for cls in _MATCHER_ERRORS:
        app.register_error_handler(cls, _matcher_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
