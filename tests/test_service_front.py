"""The front's ASGI app in this process (no server): reading, limits, the queue, the WSGI bridge.

The real server (gunicorn.conf.py: the front and its compute workers) is
tested in test_service_server.py and test_service_load.py; here the front
runs matches in this process (``compute_socket=None``).
"""

import asyncio
import json

import numpy as np

from service import create_app
from service.front import Front, wsgi_environ
from service_fixtures import b64, png

_rng = np.random.default_rng(0)
_image = _rng.integers(0, 256, (64, 64), dtype=np.uint8)
TINY = json.dumps({"image": b64(png(_image)), "template": b64(png(_image[20:36, 10:26]))}).encode()


def make_front(**config):
    return Front(create_app({"TESTING": True, **config}), None, slots=1, threads=2)


def scope(method="GET", path="/healthz", headers=(), query=b""):
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers], "http_version": "1.1",
            "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555), "root_path": ""}


async def call(front, request_scope, chunks=(b"",)):
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await front(request_scope, receive, send)
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


def run(front, request_scope, chunks=(b"",)):
    return asyncio.run(call(front, request_scope, chunks))


def test_health_and_a_match_answered_through_the_front():
    front = make_front()
    status, headers, body = run(front, scope())
    assert status == 200 and json.loads(body)["status"] == "ok" and headers["x-matcher-version"]
    status, headers, body = run(front, scope("POST", "/v1/match", [("Content-Type", "application/json")]),
                                [TINY[:100], TINY[100:]])  # a body in two pieces, joined
    match = json.loads(body)["matches"][0]
    assert status == 200 and (match["x"], match["y"]) == (10, 20)
    assert int(headers["content-length"]) == len(body)


def test_bodies_over_the_limit_are_413_from_content_length_or_while_read():
    front = make_front(MATCHER_MAX_REQUEST_BYTES=1000)
    request = scope("POST", "/v1/match", [("Content-Type", "application/json"), ("Content-Length", "5000")])
    status, headers, body = run(front, request, [b"x" * 5000])
    assert status == 413 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"] == "urn:matcher:problem:request-too-large" and headers["connection"] == "close"
    chunked = scope("POST", "/v1/match", [("Content-Type", "application/json")])
    status, _, body = run(front, chunked, [b"x" * 600, b"x" * 600])
    assert status == 413 and "1,000 bytes" in json.loads(body)["detail"]


def test_a_full_queue_is_503_with_retry_after_and_a_waiting_match_times_out():
    async def scenario():
        front = make_front(MATCHER_QUEUE=1, MATCHER_QUEUE_WAIT=1, MATCHER_RETRY_AFTER=2)
        front.free = asyncio.Semaphore(0)  # the one compute worker is busy
        request = scope("POST", "/v1/match", [("Content-Type", "application/json")])
        waiting = asyncio.ensure_future(call(front, request, [TINY]))
        await asyncio.sleep(0.2)
        refused = await call(front, request, [TINY])  # the queue (1) is full: refused at once
        return refused, await waiting

    (status, headers, body), (status2, headers2, body2) = asyncio.run(scenario())
    assert status == 503 and headers["retry-after"] == "2" and json.loads(body)["type"] == "urn:matcher:problem:busy"
    assert "1 requests are already waiting" in json.loads(body)["detail"]
    assert status2 == 503 and headers2["retry-after"] == "2"
    assert "within 1 s" in json.loads(body2)["detail"]


def test_a_match_without_a_valid_api_key_takes_no_place_in_the_queue():
    """Keys configured, the compute worker busy and the queue full: a request without a key, or with a wrong
    one, is 401 at once (not 503: it never reaches the queue); one with the key is the queue's 503."""
    async def scenario():
        front = make_front(MATCHER_API_KEYS="secret-key", MATCHER_QUEUE=1)
        front.free = asyncio.Semaphore(0)  # the one compute worker is busy
        front.waiting = 1  # and the queue's one place is taken
        answers = []
        for headers in ([], [("Authorization", "Bearer wrong")], [("X-API-Key", "secret-key")]):
            request = scope("POST", "/v1/match", [("Content-Type", "application/json")] + headers)
            answers.append(await call(front, request, [TINY]))
        return answers

    (s1, h1, b1), (s2, h2, b2), (s3, h3, _) = asyncio.run(scenario())
    assert s1 == 401 and h1["www-authenticate"] == 'Bearer realm="matcher"'
    assert json.loads(b1)["type"] == "urn:matcher:problem:unauthorized"
    assert s2 == 401 and "error=\"invalid_token\"" in h2["www-authenticate"]
    assert s3 == 503 and h3["retry-after"]


def test_wsgi_environ_has_the_decoded_path_the_raw_query_and_repeated_headers():
    s = scope("POST", "/v1/caf\u00e9 b", [("Content-Type", "text/plain"), ("X-Tag", "a"), ("X-Tag", "b"),
                                  ("Transfer-Encoding", "chunked")], query=b"q=%20x")
    s["raw_path"] = b"/v1/caf%C3%A9%20b"
    environ = wsgi_environ(s, b"hello")
    assert environ["PATH_INFO"] == "/v1/caf\u00e9 b".encode().decode("latin-1") and environ["QUERY_STRING"] == "q=%20x"
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "5"
    assert environ["HTTP_X_TAG"] == "a,b" and "HTTP_TRANSFER_ENCODING" not in environ
    assert environ["wsgi.input"].read() == b"hello" and environ["REMOTE_ADDR"] == "127.0.0.1"


def test_readyz_is_503_when_the_compute_pool_does_not_listen(tmp_path):
    front = Front(create_app({"TESTING": True}), str(tmp_path / "none.sock"), slots=1, threads=1)
    status, headers, body = run(front, scope(path="/readyz"))
    assert status == 503 and headers["retry-after"] and "none.sock" in json.loads(body)["detail"]
    assert run(front, scope(path="/healthz"))[0] == 200  # liveness is the front's own
