"""gunicorn's asyncio worker for the front, answering its own HTTP parsing errors as problem+json.

gunicorn's ``asgi`` worker answers requests it cannot parse (a bad chunk size,
a request line or headers over the limits, an unknown transfer coding) itself,
before the app sees them, with a ``text/plain`` body. This worker class keeps
everything else and only changes that body to the service's problem details
(:func:`service.errors.transport_problem`), so every error a client gets has
the same form. gunicorn is pinned (requirements-service.txt); the test of
malformed chunked bodies in tests/test_service_server.py covers this override.
"""

from http import HTTPStatus

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

import matcher

from .app import VERSION_HEADER
from .errors import transport_problem

__all__ = ["FrontWorker", "ProblemProtocol"]


class ProblemProtocol(ASGIProtocol):
    """gunicorn's ASGI protocol whose own error answers are problem+json."""

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
        gasgi.ASGIProtocol = ProblemProtocol  # the name gasgi's serving loop builds each connection from
        super().init_process()
