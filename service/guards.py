"""What runs before a view: the API-key check and the per-worker concurrency gate."""

import hmac
import threading
from functools import wraps

from flask import current_app, request

from .errors import Busy, Unauthorized

__all__ = ["require_api_key", "check_api_key", "Gate", "limited"]

_CHALLENGE = 'Bearer realm="matcher"'


def _presented_key(authorization, x_api_key):
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return x_api_key or None


def check_api_key(keys, authorization, x_api_key):
    """Raise :class:`~service.errors.Unauthorized` (401) unless one of ``keys`` is presented.

    Does nothing when ``keys`` is empty. The key comes from ``Authorization:
    Bearer KEY`` (the header's value ``authorization``) or ``X-API-Key: KEY``
    (``x_api_key``) and is compared with :func:`hmac.compare_digest` against
    *every* configured key (no early exit), so the time taken says nothing
    about which key, or how much of one, matched. The front calls it before a
    match takes a place in the queue; the app before every ``/v1`` view.
    """
    if not keys:
        return
    given = _presented_key(authorization, x_api_key)
    if given is None:
        raise Unauthorized("this endpoint needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                           headers={"WWW-Authenticate": _CHALLENGE})
    given = given.encode("utf-8", "surrogateescape")
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key.encode("ascii"))
    if not ok:
        raise Unauthorized("the API key is not valid",
                           headers={"WWW-Authenticate": _CHALLENGE + ', error="invalid_token"'})


def require_api_key():
    """``before_request`` hook: 401 unless a configured key is presented (:func:`check_api_key`)."""
    check_api_key(current_app.config["MATCHER_API_KEYS"], request.headers.get("Authorization"),
                  request.headers.get("X-API-Key"))


class Gate:
    """A non-blocking limit on the matches running at once in this process.

    Parameters
    ----------
    limit : int
        How many may run at once (``MATCHER_MAX_CONCURRENT``).
    """

    def __init__(self, limit):
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def try_enter(self):
        """Take a slot if one is free, without waiting; return whether it was taken."""
        return self._slots.acquire(blocking=False)

    def leave(self):
        """Give back a slot taken by :meth:`try_enter`."""
        self._slots.release()


def limited(view):
    """Decorate a view so that it runs only while a :class:`Gate` slot is free.

    When none is, the request is answered at once with 503 and ``Retry-After``
    (``MATCHER_RETRY_AFTER``) instead of waiting in an unbounded queue; its
    body is read and dropped first, so that the client, which may still be
    sending it, receives that answer (a server that closes a connection with
    unread data resets it). Under gunicorn.conf.py the front queues matches
    and each compute worker runs one at a time, so this gate binds only with
    threaded servers (the development server).
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        gate = current_app.extensions["matcher"].gate
        if not gate.try_enter():
            while request.stream.read(1 << 16):  # bounded by MAX_CONTENT_LENGTH
                pass
            retry = current_app.config["MATCHER_RETRY_AFTER"]
            raise Busy(f"this worker is already running {gate.limit} matches; retry in {retry} s",
                       headers={"Retry-After": str(retry)})
        try:
            return view(*args, **kwargs)
        finally:
            gate.leave()

    return wrapper
