"""Shared helpers and fixtures of the service tests (tests/test_service*.py).

``OpenAPI`` checks real responses (and JSON request bodies) against the
service's own OpenAPI document; ``start_server`` runs the production command
(gunicorn with gunicorn.conf.py) on a free 127.0.0.1 port.
"""

import base64
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib

import cv2
import numpy as np
import pytest
from jsonschema import Draft202012Validator

from service import create_app

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
GUNICORN_COMMAND = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
"""The Dockerfile's CMD, with this interpreter (checked by test_service_server.py)."""


def sample(name):
    """The bytes of a file in samples/."""
    return (SAMPLES / name).read_bytes()


def b64(data):
    return base64.b64encode(data).decode("ascii")


def png(array):
    """PNG bytes of an RGB(A) or gray uint8 array."""
    a = np.asarray(array)
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR if a.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    return cv2.imencode(".png", a)[1].tobytes()


def huge_png_header(width=100_000, height=100_000):
    """A ~60-byte PNG that claims ``width x height`` pixels (a decompression bomb's header)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture
def make_client():
    """A factory: ``make_client(**config)`` -> Flask test client of a fresh app."""
    def make(**config):
        return create_app({"TESTING": True, **config}).test_client()
    return make


@pytest.fixture
def client(make_client):
    return make_client()


class OpenAPI:
    """The service's OpenAPI document, as a checker of real traffic."""

    def __init__(self, document):
        self.doc = document
        self._validator = Draft202012Validator(document)

    def _resolve(self, node):
        while "$ref" in node:  # local references only: "#/components/..."
            ref, node = node["$ref"], self.doc
            for key in ref[2:].split("/"):
                node = node[key]
        return node

    def validate(self, instance, schema):
        """Raise jsonschema's ValidationError unless ``instance`` fits ``schema`` (may hold $refs)."""
        self._validator.evolve(schema=schema).validate(instance)

    def check_request(self, path, method, body, mime="application/json"):
        """Validate a request body against the operation's request schema."""
        operation = self.doc["paths"][path][method.lower()]
        self.validate(body, operation["requestBody"]["content"][mime]["schema"])

    def check(self, response, path, method, status=200):
        """Assert that a Flask or urllib response has ``status`` and is documented for ``path``/``method``.

        The status must be listed (404/405 use the shared components), the
        documented headers present, and the JSON body valid against the schema
        of its content type. Returns the parsed body.
        """
        expected_status = status
        status, headers, data = _parts(response)
        assert status == expected_status, f"{method} {path}: {status} {data[:500]!r}"
        if status in (404, 405):
            documented = self.doc["components"]["responses"][str(status)]
        else:
            responses = self.doc["paths"][path][method.lower()]["responses"]
            assert str(status) in responses, f"{method} {path} answered {status}, which is not documented"
            documented = self._resolve(responses[str(status)])
        for name in documented.get("headers", {}):
            assert headers.get(name), f"documented header {name} missing from the {status} response"
        mime = headers.get("Content-Type", "").split(";")[0].strip()
        assert mime in documented["content"], f"{status} answered {mime}, documented {list(documented['content'])}"
        body = json.loads(data)
        self.validate(body, documented["content"][mime]["schema"])
        return body


def _parts(response):
    if hasattr(response, "get_data"):  # Flask test response
        return response.status_code, response.headers, response.get_data()
    return response.status, response.headers, response.read()


@pytest.fixture(scope="session")
def openapi():
    return OpenAPI(create_app({"TESTING": True}).test_client().get("/openapi.json").get_json())


def assert_problem(response, status, *, field=None, slug=None):
    """Assert an RFC 9457 problem response; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    if slug is not None:
        assert body["type"] == f"urn:matcher:problem:{slug}", body
    if field is not None:
        assert body.get("field") == field, body
    assert "Traceback" not in response.get_data(as_text=True)
    assert response.headers["X-Matcher-Version"]
    return body


# ---- a real server -------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(command=GUNICORN_COMMAND, timeout=30, **env):
    """Start ``command`` from the repo root on a free 127.0.0.1 port; return (process, base URL).

    ``env`` adds environment variables (MATCHER_BIND is set here). Waits until
    ``/healthz`` answers; stops the process and fails the test otherwise.
    """
    port = free_port()
    log = ROOT / ".pytest_cache" / f"server-{uuid.uuid4().hex[:8]}.log"
    log.parent.mkdir(exist_ok=True)
    full_env = os.environ | {"MATCHER_BIND": f"127.0.0.1:{port}"} | env
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    proc.log_path = log
                    return proc, url
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    pytest.fail(f"the server did not start: {log.read_text(errors='replace')[-3000:]}")


def stop_server(proc, timeout=15):
    """SIGTERM the server (gunicorn's graceful stop) and wait; SIGKILL its group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def fetch(url, *, data=None, headers=None, method=None, timeout=30):
    """One HTTP request with urllib; returns the response (errors included) with its body read into ``.body``."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        response = exc
    with response:
        response.body = response.read()
    response.read = lambda: response.body
    return response


def multipart(fields, files):
    """Encode a multipart/form-data body: ``fields`` [(name, str)], ``files`` [(name, filename, bytes)]."""
    boundary = uuid.uuid4().hex
    out = []
    for name, value in fields:
        out += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode(),
                value.encode(), b"\r\n"]
    for name, filename, data in files:
        out += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n".encode(), data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
