"""The production command (gunicorn + gunicorn.conf.py) on 127.0.0.1, hit over real HTTP.

Each server binds a free loopback port, is used by a bounded number of
requests, and is stopped with SIGTERM (gunicorn's graceful shutdown).
"""

import concurrent.futures
import http.client
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import matcher
from matcher import load_image
from matcher.search.find import find
from service_fixtures import (  # noqa: F401 (fixture)
    GUNICORN_COMMAND, ROOT, b64, fetch, multipart, openapi, png, sample, start_server, stop_server)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server():
    proc, url = start_server(MATCHER_WORKERS="2", MATCHER_MAX_REQUEST_BYTES=str(4 << 20))
    yield url
    assert stop_server(proc) == 0
    log = proc.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert re.search(r"worker \d+: 1 numeric thread\(s\), large blocks kept in the heap", log), log[-3000:]


def expected(image, template, **options):
    img, tpl = load_image(sample(image)), load_image(sample(template))
    return [m.to_dict() for m in find(img.pixels, tpl.pixels, mask=tpl.mask, **options)]


def test_multipart_over_http_equals_find(server, openapi):
    body, content_type = multipart([("max_matches", "2"), ("return", "annotated")],
                                   [("image", "camera.png", sample("camera.png")),
                                    ("template", "camera_camcorder.png", sample("camera_camcorder.png"))])
    response = fetch(server + "/v1/match", data=body, headers={"Content-Type": content_type})
    result = openapi.check(response, "/v1/match", "post")
    assert result["matches"] == expected("camera.png", "camera_camcorder.png", max_matches=2)
    assert response.headers["X-Matcher-Version"] == matcher.__version__ == result["version"]
    assert "annotated" in result


def test_json_over_http_equals_find(server, openapi):
    request = {"image": b64(sample("coffee.png")), "template": b64(sample("coffee_spoon.png")),
               "method": "ncc", "max_matches": 3, "subpixel": True}
    response = fetch(server + "/v1/match", data=json.dumps(request).encode(),
                    headers={"Content-Type": "application/json"})
    result = openapi.check(response, "/v1/match", "post")
    assert result["matches"] == expected("coffee.png", "coffee_spoon.png", max_matches=3, subpixel=True)


def test_batch_and_info_endpoints_over_http(server, openapi):
    request = {"image": b64(sample("coins.png")), "templates": {"coin": b64(sample("coins_coin.png"))},
               "threshold": 0.5, "max_matches": 50}
    response = fetch(server + "/v1/match/batch", data=json.dumps(request).encode(),
                    headers={"Content-Type": "application/json"})
    assert len(openapi.check(response, "/v1/match/batch", "post")["matches"]) == 24
    for path in ("/healthz", "/readyz", "/v1/methods", "/openapi.json"):
        openapi.check(fetch(server + path), path, "get")


def test_errors_over_http(server, openapi):
    response = fetch(server + "/nowhere")
    openapi.check(response, "/nowhere", "get", 404)
    response = fetch(server + "/v1/match", data=b"hello", headers={"Content-Type": "text/plain"})
    openapi.check(response, "/v1/match", "post", 415)
    bomb = png(np.zeros((8, 8), np.uint8))[:30] + bytes(5)
    body, content_type = multipart([], [("image", "a.png", bomb), ("template", "b.png", sample("coins_coin.png"))])
    response = fetch(server + "/v1/match", data=body, headers={"Content-Type": content_type})
    assert openapi.check(response, "/v1/match", "post", 400)["field"] == "image"


def test_body_over_the_limit_is_refused_from_content_length(server, openapi):
    """A 5 MiB Content-Length (limit: 4 MiB) is answered 413 before any of the body is sent."""
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("POST", "/v1/match")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(5 << 20))
        conn.endheaders()
        response = conn.getresponse()
        response.body = response.read()
        response.read = lambda: response.body
        assert openapi.check(response, "/v1/match", "post", 413)["type"].endswith("request-too-large")
    finally:
        conn.close()


def test_dockerfile_runs_the_same_command_and_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert cmd == ["python"] + GUNICORN_COMMAND[1:]
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M) and re.search(r"^USER (?!root)\w+", text, re.M)
    assert "HEALTHCHECK" in text and "ENV MATCHER_BIND=0.0.0.0:8000" in text


def test_docker_healthcheck_command_against_a_server(server):
    text = (ROOT / "Dockerfile").read_text()
    check = json.loads(re.search(r"^\s+CMD (\[.*\])$", text, re.M).group(1))
    assert check[:2] == ["python", "-c"]
    bind = server.removeprefix("http://")
    result = subprocess.run([sys.executable, "-c", check[2]], env={"MATCHER_BIND": bind}, timeout=30)
    assert result.returncode == 0


def test_python_m_service_starts_gunicorn():
    proc, url = start_server([sys.executable, "-m", "service"], MATCHER_WORKERS="1")  # binds $MATCHER_BIND
    try:
        response = fetch(url + "/healthz")
        assert response.status == 200 and response.headers["X-Matcher-Version"] == matcher.__version__
    finally:
        assert stop_server(proc) == 0
    assert "gunicorn" in proc.log_path.read_text().lower()


def test_full_queue_refuses_instead_of_queueing_more():
    """One compute worker and a queue of one: of four matches at once, one runs, one waits, and the
    others get 503 + Retry-After with a problem+json body (the body was read before the answer)."""
    proc, url = start_server(MATCHER_WORKERS="1", MATCHER_QUEUE="1")
    try:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (720, 1280), dtype=np.uint8)
        request = json.dumps({"image": b64(png(image)), "template": b64(png(image[100:228, 200:328])),
                              "precision": "exact", "max_matches": 20}).encode()
        send = lambda _: fetch(url + "/v1/match", data=request, headers={"Content-Type": "application/json"})  # noqa
        for _ in range(3):  # bounded retries: on a loaded machine the four may happen not to overlap
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                responses = list(pool.map(send, range(4)))
            statuses = sorted(r.status for r in responses)
            assert set(statuses) <= {200, 503} and 200 in statuses, statuses
            if 503 in statuses:
                break
        assert 503 in statuses, statuses
        for r in responses:
            if r.status == 503:
                assert r.headers["Retry-After"] == "1" and r.headers["Content-Type"] == "application/problem+json"
                assert json.loads(r.body)["type"] == "urn:matcher:problem:busy"
    finally:
        assert stop_server(proc) == 0


def test_taken_port_is_refused_at_once_with_a_hint():
    """``python -m service`` checks the address before gunicorn (which would retry for 5 s, then say
    only "Can't connect"): exit 2, one clear message naming the address and another to try."""
    import socket
    import time

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        start = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "service", "--bind", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert time.monotonic() - start < 20
    assert out.returncode == 2, out
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr
    assert f"--bind 127.0.0.1:{port + 1}" in out.stderr
    assert "Traceback" not in out.stderr


def _raw(base, request_bytes, timeout=20):
    """Send raw bytes to the server; return the whole answer (the server closes the connection)."""
    import socket
    import urllib.parse

    url = urllib.parse.urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as s:
        s.sendall(request_bytes)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_malformed_chunked_bodies_are_4xx_problems_not_500():
    """A bad chunk size, or a chunked body cut short, is the client's mistake: 400 problem+json."""
    proc, base = start_server()
    try:
        bad_size = (b"POST /v1/match HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{\"a\":\r\nQQ\r\n")
        answer = _raw(base, bad_size)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"application/problem+json" in head
        assert json.loads(body)["type"] == "urn:matcher:problem:malformed-body"
        # the server still answers afterwards
        assert fetch(base + "/healthz").status == 200
    finally:
        stop_server(proc)


def test_a_client_that_closes_its_side_gets_an_answer(server):
    """A half-close (the client shuts down its sending side, as ``nc -N`` does): a request that arrived in
    full still gets its answer; one whose body had not all arrived gets 400, not a silent close."""
    import socket
    import urllib.parse

    url = urllib.parse.urlsplit(server)
    body = json.dumps({"image": b64(sample("coins.png")), "template": b64(sample("coins_coin.png"))}).encode()
    head = (f"POST /v1/match HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    for payload, status in ((head + body, b"200"), (head + body[: len(body) // 2], b"400")):
        with socket.create_connection((url.hostname, url.port), timeout=20) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: s.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 " + status), (status, answer[:300])
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["type"] == "urn:matcher:problem:malformed-body"


def _chunked(path, body, content_type="application/json", step=4096):
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    parts = [b"%x\r\n" % len(body[i:i + step]) + body[i:i + step] + b"\r\n" for i in range(0, len(body), step)]
    return head + b"".join(parts) + b"0\r\n\r\n"


def test_chunked_bodies_obey_the_request_limit():
    """A chunked body (no Content-Length) within the limit is matched as any other; one over it is
    413 request-too-large, not a confusing "invalid JSON" (werkzeug would cut it silently)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    small = json.dumps({"image": b64(png(image)), "template": b64(png(image[10:30, 20:45]))}).encode()
    limit = len(small) + 1000
    proc, base = start_server(MATCHER_MAX_REQUEST_BYTES=str(limit))
    try:
        head, _, body = _raw(base, _chunked("/v1/match", small)).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert (json.loads(body)["matches"][0]["x"], json.loads(body)["matches"][0]["y"]) == (20, 10)
        big = json.dumps({"image": b64(png(image)) + "A" * 2000, "template": "x"}).encode()
        head, _, body = _raw(base, _chunked("/v1/match", big)).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head
        assert json.loads(body)["type"] == "urn:matcher:problem:request-too-large"
    finally:
        stop_server(proc)
