"""gunicorn's asyncio worker for the front, answering its own HTTP parsing errors as problem+json.

gunicorn's ``asgi`` worker answers requests it cannot parse (a bad chunk size,
a request line or headers over the limits, an unknown transfer coding) itself,
before the app sees them, with a ``text/plain`` body, and waits for headers
as long as the client trickles them. This worker class keeps everything else,
changes that body to the service's problem details
(:func:`service.errors.transport_problem`), so every error a client gets has
the same form, and closes a connection whose request headers are not complete
within ``MATCHER_CLIENT_TIMEOUT`` seconds (408), so that slow clients cannot
pile up connections without end, and answers a request whose client closed its
sending side before the body's end with 400 (gunicorn's worker closed such
connections without an answer). gunicorn is pinned (requirements-service.txt); the test of
malformed chunked bodies in tests/test_service_server.py covers this override.
"""

from http import HTTPStatus

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

import matcher

from .app import VERSION_HEADER
from .config import load_config
from .errors import transport_problem

__all__ = ["FrontWorker", "ProblemProtocol"]


class ProblemProtocol(ASGIProtocol):
    """gunicorn's ASGI protocol whose own error answers are problem+json, and whose clients have
    ``header_timeout`` seconds to send a request's headers (408 and closed after that)."""

    header_timeout = 30.0  # MATCHER_CLIENT_TIMEOUT, set by FrontWorker
    _header_deadline = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm_header_deadline()

    def _arm_header_deadline(self):
        self._cancel_header_deadline()
        self._header_deadline = self.worker.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self):
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _on_headers_complete(self):
        self._cancel_header_deadline()
        return super()._on_headers_complete()

    def _arm_keepalive_timer(self):
        super()._arm_keepalive_timer()
        self._arm_header_deadline()  # after a response, the next request's headers get as long

    def connection_lost(self, exc):
        self._cancel_header_deadline()
        return super().connection_lost(exc)

    def eof_received(self):
        """The client closed its sending side (a half-close). A request whose body had not all arrived
        gets 400 (the body ended before its Content-Length or its final chunk) and the connection
        closes; a request that arrived in full still gets its answer (the transport stays open)."""
        request, receiver = getattr(self, "_current_request", None), getattr(self, "_body_receiver", None)
        if request is None or receiver is None:
            return None  # between requests: close, as asyncio does by default
        if not receiver._complete:  # gunicorn's BodyReceiver (pinned): the body is still expected
            self._cancel_header_deadline()
            self._send_error_response(400, "the request body ended before its declared end (its "
                                           "Content-Length or its final chunk): the client closed its side")
            self._close_transport()
            return None
        return True

    def _headers_too_slow(self):
        self._header_deadline = None
        if not self._closed:
            self._send_error_response(408, f"the request headers did not arrive within {self.header_timeout:g} s")
            self._close_transport()

    def _send_error_response(self, status, message, extra_headers=()):
        headers, body = transport_problem(status, message)
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}",
                 f"{VERSION_HEADER}: {matcher.__version__}", "X-Content-Type-Options: nosniff",
                 "Cache-Control: no-store", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in list(headers.items()) + list(extra_headers)]
        self._safe_write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class FrontWorker(gasgi.ASGIWorker):
    """gunicorn's ``asgi`` worker, serving connections with :class:`ProblemProtocol`."""

    def init_process(self):
        ProblemProtocol.header_timeout = float(load_config()["MATCHER_CLIENT_TIMEOUT"])
        gasgi.ASGIProtocol = ProblemProtocol  # the name gasgi's serving loop builds each connection from
        super().init_process()
