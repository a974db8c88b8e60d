"""The front: the one process that talks to clients, in front of the compute workers.

It runs as gunicorn's asyncio (``asgi``) worker, so a connection costs a
coroutine, not a thread: clients that send their headers or bodies slowly
hold nothing else up. Every request is read whole (up to
``MATCHER_MAX_REQUEST_BYTES``, within ``MATCHER_CLIENT_TIMEOUT`` seconds) before
anything works on it. Then:

- a match (``POST /v1/match``, ``POST /v1/match/batch``) takes one of the
  compute slots (one per compute worker process), waiting in one queue shared
  by all of them; when ``MATCHER_QUEUE`` requests already wait, or a slot
  does not free up within ``MATCHER_QUEUE_WAIT`` seconds, it is answered 503
  with ``Retry-After``. Because the body has been read, the client receives
  that answer. The match is then sent to the compute pool (gunicorn sync
  workers on a private Unix socket: only an idle worker accepts, so the work
  spreads); if the worker dies before answering, it is sent once more.
- everything else (health, readiness, the page, the OpenAPI document, errors)
  is answered here, by the same Flask app, in a small thread pool; readiness
  (``/readyz``) is 503 as well when the compute pool's socket takes no
  connections.

The compute pool itself is started and stopped by ``gunicorn.conf.py``.
"""

import asyncio
import http.client
import io
import logging
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import matcher

from .app import VERSION_HEADER, create_app
from .errors import Busy, ComputeUnavailable, RequestTimeout, RequestTooLarge, ServiceError, problem_document
from .guards import check_api_key

__all__ = ["COMPUTE_ROUTES", "FRONT_VARIABLES", "Front", "create_front", "wsgi_environ"]

COMPUTE_ROUTES = frozenset({("POST", "/v1/match"), ("POST", "/v1/match/batch")})
FRONT_VARIABLES = ("MATCHER_COMPUTE_SOCKET", "MATCHER_COMPUTE_SLOTS", "MATCHER_FRONT_THREADS",
                   "MATCHER_COMPUTE_TIMEOUT")  # set by gunicorn.conf.py for the front worker
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                        "upgrade", "content-length", "expect"})
log = logging.getLogger("service")


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix socket (the compute pool's)."""

    def __init__(self, path, timeout):
        super().__init__("compute", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Front:
    """The ASGI application of the front process.

    Parameters
    ----------
    app : flask.Flask
        The service (:func:`service.create_app`): answers the requests that
        are not matches, and gives the settings.
    compute_socket : str or None
        Path of the compute pool's Unix socket; None runs matches here too
        (one at a time per slot), for tests and single-process use.
    slots : int
        Compute worker processes: matches sent to the pool at once.
    threads : int
        Threads answering the other requests here.
    compute_timeout : float
        Seconds to wait for the compute pool's answer (beyond gunicorn's own
        worker timeout, which kills a stuck worker first).
    """

    def __init__(self, app, compute_socket, slots, threads, compute_timeout=90):
        config = app.config
        self.app, self.compute_socket, self.slots = app, compute_socket, slots
        self.max_body = config["MATCHER_MAX_REQUEST_BYTES"]
        self.body_timeout = config["MATCHER_CLIENT_TIMEOUT"]
        self.queue_limit = config["MATCHER_QUEUE"]
        self.queue_wait = config["MATCHER_QUEUE_WAIT"]
        self.retry_after = config["MATCHER_RETRY_AFTER"]
        self.compute_timeout = compute_timeout
        self.local_pool = ThreadPoolExecutor(threads, thread_name_prefix="front")
        self.compute_pool = ThreadPoolExecutor(slots, thread_name_prefix="compute")
        self.max_held = config["MATCHER_FRONT_MEMORY"]
        self.free = None  # asyncio.Semaphore(slots), made in the serving loop
        self.waiting = 0
        self.held = 0  # bytes of request bodies held (being read, waiting or being matched)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        if self.free is None:
            self.free = asyncio.Semaphore(self.slots)
        ticket = {"held": 0}  # bytes of this request's body counted in self.held
        try:
            body = await self._read_body(scope, receive, ticket)
            if body is None:  # the client went away (gunicorn's access log shows "500 0": nothing was sent)
                return
            if (scope["method"], scope["path"]) in COMPUTE_ROUTES:
                # a request without a valid key (when keys are set) takes no place in the queue
                check_api_key(self.app.config["MATCHER_API_KEYS"], _header(scope, b"authorization"),
                              _header(scope, b"x-api-key"))
                status, headers, content = await self._compute(scope, body)
            else:
                status, headers, content = await self._local(scope, body)
        except ServiceError as exc:  # the front's own answers: busy, timeout, too large, compute lost
            status, headers, content = self._problem(exc)
        finally:
            self.held -= ticket["held"]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    # ---- reading ---------------------------------------------------------------------------

    async def _read_body(self, scope, receive, ticket):
        """The whole body, or None if the client disconnected; RequestTooLarge / RequestTimeout.

        Bytes kept are added to ``self.held`` and ``ticket["held"]``; once all
        bodies held would pass ``MATCHER_FRONT_MEMORY``, the rest of this one
        is read and dropped, and it is answered 503 (Busy).
        """
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise RequestTooLarge(self._too_large_detail(f"Content-Length {int(declared):,}"))
        chunks, size, dropping = [], 0, False
        deadline = time.monotonic() + self.body_timeout
        while True:
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except asyncio.TimeoutError:
                raise RequestTimeout(f"the request body did not arrive within {self.body_timeout} s "
                                     f"(received {size:,} bytes); send it at a steady pace") from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise RequestTooLarge(self._too_large_detail(f"more than {self.max_body:,} bytes received"))
            dropping = dropping or self.held + len(chunk) > self.max_held
            if not dropping:
                chunks.append(chunk)
                self.held += len(chunk)
                ticket["held"] += len(chunk)
            if not message.get("more_body", False):
                if dropping:
                    raise self._busy(f"the front already holds {self.held:,} bytes of requests "
                                     f"(MATCHER_FRONT_MEMORY {self.max_held:,})")
                return b"".join(chunks)

    def _too_large_detail(self, received):
        return f"the request body is over the limit of {self.max_body:,} bytes ({received})"

    # ---- matches: the shared queue, then the compute pool ----------------------------------

    async def _compute(self, scope, body):
        if self.free.locked():
            if self.waiting >= self.queue_limit:
                raise self._busy(f"all {self.slots} compute workers are busy and {self.waiting} requests "
                                 "are already waiting")
            self.waiting += 1
            try:
                await asyncio.wait_for(self.free.acquire(), timeout=self.queue_wait)
            except asyncio.TimeoutError:
                raise self._busy(f"no compute worker became free within {self.queue_wait} s") from None
            finally:
                self.waiting -= 1
        else:
            await self.free.acquire()
        run = self._call_app if self.compute_socket is None else self._forward
        future = asyncio.get_running_loop().run_in_executor(self.compute_pool, run, scope, body)
        # The slot is free when the match is done, even if this task is cancelled (the client left):
        # the compute worker goes on with it until then.
        future.add_done_callback(lambda _: self.free.release())
        return await asyncio.shield(future)

    def _busy(self, why):
        return Busy(f"{why}; retry in {self.retry_after} s", headers={"Retry-After": str(self.retry_after)})

    def _forward(self, scope, body):
        """Send one buffered request to the compute pool; retried once if no answer came back."""
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k.decode("latin-1").lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        if scope.get("client"):
            headers["X-Forwarded-For"] = scope["client"][0]
        for attempt in (1, 2):
            connection = UnixHTTPConnection(self.compute_socket, self.compute_timeout)
            try:
                connection.request(scope["method"], target.decode("latin-1"), body=body, headers=headers)
                response = connection.getresponse()
                content = response.read()
            except TimeoutError:
                raise ComputeUnavailable(f"the match did not finish within {self.compute_timeout} s",
                                         headers={"Retry-After": str(self.retry_after)}) from None
            except (OSError, http.client.HTTPException) as exc:  # reset, closed, or no pool at the socket
                log.warning("compute worker lost a request (attempt %d): %s", attempt, exc)
                lost = exc
                continue
            finally:
                connection.close()
            out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.getheaders()
                   if k.lower() not in HOP_BY_HOP and k.lower() not in ("server", "date")]
            return response.status, out + [(b"content-length", str(len(content)).encode())], content
        raise ComputeUnavailable(f"the compute worker stopped before answering, twice ({lost}); "
                                 f"retry in {self.retry_after} s", headers={"Retry-After": str(self.retry_after)})

    # ---- everything else: the Flask app, here ------------------------------------------------

    async def _local(self, scope, body):
        if scope["path"] == "/readyz" and not self._compute_pool_listens():
            raise ComputeUnavailable(f"the compute pool does not answer on {self.compute_socket}; "
                                     "matches get 503 until it runs again",
                                     headers={"Retry-After": str(self.retry_after)})
        return await asyncio.get_running_loop().run_in_executor(self.local_pool, self._call_app, scope, body)

    def _compute_pool_listens(self):
        """Whether the compute pool's socket takes connections (always, when matches run here)."""
        if self.compute_socket is None:
            return True
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            try:
                s.connect(self.compute_socket)
            except OSError:
                return False
        return True

    def _call_app(self, scope, body):
        """Run the Flask app on a buffered request; return (status, headers, body)."""
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = int(status.split(" ", 1)[0]), headers

        chunks = self.app(wsgi_environ(scope, body), start_response)
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer["headers"]
                   if k.lower() not in HOP_BY_HOP]
        return answer["status"], headers + [(b"content-length", str(len(content)).encode())], content

    def _problem(self, exc):
        status, headers, content = problem_document(exc)
        headers = {**headers, VERSION_HEADER: matcher.__version__, "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "no-store", "Content-Length": str(len(content))}
        if status in (408, 413):
            headers["Connection"] = "close"  # the rest of the body (if any) is not read
        return status, [(k.lower().encode(), v.encode()) for k, v in headers.items()], content

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.local_pool.shutdown(wait=False)
                self.compute_pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(scope, name):
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def wsgi_environ(scope, body):
    """The WSGI environ of an ASGI HTTP ``scope`` whose ``body`` has been read whole (PEP 3333)."""
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("", 0)
    path = scope["path"].encode("utf-8").decode("latin-1")  # decoded, as WSGI strings carry bytes
    root = scope.get("root_path", "")
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root,
        "PATH_INFO": path[len(root):] if root and path.startswith(root) else path,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1] or 80),
        "REMOTE_ADDR": client[0], "REMOTE_PORT": str(client[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    for key, value in scope["headers"]:
        name = key.decode("latin-1").upper().replace("-", "_")
        if name == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value.decode("latin-1")
        elif name not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            name = "HTTP_" + name
            text = value.decode("latin-1")
            environ[name] = environ[name] + "," + text if name in environ else text
    return environ


def create_front(environ=None):
    """The front as gunicorn.conf.py runs it (``service.front:create_front()``).

    The compute pool's socket, its number of workers, the front's threads and
    the compute timeout come from the variables gunicorn.conf.py sets for its
    worker (:data:`FRONT_VARIABLES`); without a socket, matches run here.
    """
    environ = os.environ if environ is None else environ
    socket_path, slots, threads, timeout = (environ.get(name, "") for name in FRONT_VARIABLES)
    return Front(create_app(), socket_path or None, int(slots or 1), int(threads or 4), float(timeout or 90))
