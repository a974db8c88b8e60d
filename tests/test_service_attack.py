"""The service under attack, over real HTTP: the bad-input matrix and schemathesis, against one real server.

One gunicorn server (the production command, default settings, 127.0.0.1)
takes every case of :func:`attack_cases.cases` (about 280 malformed, hostile
or oversized requests: corrupt and truncated files of every format, pixel,
budget and decompression bombs, malformed multipart, JSON and chunked
bodies, hostile option values, path traversal), each on its own connection;
each must get one of its documented statuses, as problem+json, naming the
field at fault, quickly. Then schemathesis runs every check (conformance
included) against ``/openapi.json`` with a fixed seed and a bounded number
of examples. Finally the server's log must hold no traceback, no worker
timeout or crash, and the server must still be healthy. About 1-2 minutes.
"""

import json
import re
import subprocess
import sys
import time
import urllib.parse

import pytest
import schemathesis  # noqa: F401 - a missing test dependency fails here, not as a skip

from attack_cases import cases, send
from service_fixtures import ROOT, fetch, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

CASES = cases()
SCHEMATHESIS_EXAMPLES = 30
"""Examples per operation and phase for the CI run (bench/bench_attack.py runs more)."""


@pytest.fixture(scope="module")
def server():
    proc, url = start_server()
    yield proc, url
    stop_server(proc)


def test_the_matrix_is_large_and_covers_every_family():
    assert len(CASES) >= 150
    assert len({c.name for c in CASES}) == len(CASES)
    strict = [c for c in CASES if 200 not in c.statuses]
    assert len(strict) >= 150  # cases that must be refused (a few damaged files are decodable: documented)
    for family in ("image-png-", "image-jpeg-", "image-webp-", "image-bmp-", "format-", "pixel-bomb-", "budget-",
                   "inflate-bomb-", "multipart-", "json-", "chunked-", "form-", "traversal-"):
        assert sum(c.name.startswith(family) for c in CASES) >= 3, family


KNOWN_ISSUES = {}  # case name -> why it fails today (strict xfail); none left


def _params():
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_ISSUES[c.name])] if c.name in KNOWN_ISSUES else []
        yield pytest.param(c, id=c.name, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input_gets_its_documented_status(server, case):
    _, url = server
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    start = time.monotonic()
    status, headers, body = send(host, port, case.raw)
    elapsed = time.monotonic() - start
    assert status is not None, "the connection was closed without an answer"
    assert status in case.statuses, (status, body[:300])
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert b"Traceback" not in body and b"File \"/" not in body
    if status == 200:  # documented: a damaged file the codec still decodes, a JSON body in UTF-16
        assert headers["content-type"].startswith("application/json")
        return
    if not case.problem:  # refused by gunicorn itself before the app: a plain 4xx, then the connection closes
        assert 400 <= status < 500
        return
    assert headers["content-type"].startswith("application/problem+json"), headers
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if case.field is not None:
        assert problem.get("field") == case.field, problem


def test_schemathesis_finds_nothing(server):
    _, url = server
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
               "run", url + "/openapi.json", "--checks", "all", "--max-examples", str(SCHEMATHESIS_EXAMPLES),
               "--seed", "14", "--workers", "1", "--request-timeout", "30", "--warnings", "off", "--no-color"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=480, cwd=ROOT)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    cases_run = int(re.search(r"(\d+) generated", report).group(1))
    assert cases_run >= 300 and "No issues found" in report, report[-3000:]


def test_the_server_survived_without_a_traceback(server):
    proc, url = server
    assert fetch(url + "/healthz").status == 200
    assert proc.poll() is None
    log = proc.log_path.read_text(errors="replace")
    for bad in ("Traceback", "Error handling request", "WORKER TIMEOUT", "was sent SIGKILL", "Worker exiting",
                "internal-error"):
        assert bad not in log, log[-3000:]
