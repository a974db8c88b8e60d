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


def test_busy_worker_refuses_instead_of_queueing():
    proc, url = start_server(MATCHER_WORKERS="1", MATCHER_MAX_CONCURRENT="1", MATCHER_THREADS="4")
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
