#!/usr/bin/env python
"""The HTTP service's overhead: the same match through gunicorn and in-process.

The work: a 1280 x 720 PNG (samples/coffee.png resized with cv2.INTER_CUBIC,
gray unless ``--color``) and a 64 x 64 PNG template cut from it, found with
``find(image, template, "ncc")``. Three ways, each timed per request, at each
concurrency C in ``--clients`` (default 1 and 2):

- ``in-process``: ``load_image`` of both PNGs + ``find`` in C threads of this
  process, tuned as gunicorn.conf.py tunes a worker: numeric thread pools at
  ``cores // workers`` threads, glibc keeping large blocks in the heap (run
  with ``MATCHER_MALLOC_THRESHOLD=0`` in the environment to time both
  without that);
- ``http multipart`` and ``http json``: POST /v1/match to gunicorn started
  with the production command (``python -m gunicorn -c gunicorn.conf.py``:
  the front and its compute workers) on a free 127.0.0.1 port, from C client threads, each
  on its own keep-alive connection.

Each of the six runs makes ``--requests`` requests, in ``--rounds`` slices
interleaved (in-process, multipart, json, in-process, ...), so that load from
elsewhere on the machine hits all of them alike. Latency is the median and
p99 per request; throughput is requests / time spent in that run. The
overhead column compares each HTTP median with the in-process median at the
same concurrency (target: at most +15 %). Everything stays on 127.0.0.1, the
number of requests is fixed, and the server is stopped at the end.

Run from the repository root:

    .venv/bin/python bench/bench_service.py                 # 200 requests per run, 1 and 2 clients
    .venv/bin/python bench/bench_service.py --requests 50 --json out.json
"""

import argparse
import base64
import http.client
import json
import os
import pathlib
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import matcher  # noqa: E402
from matcher import load_image  # noqa: E402
from matcher.search.find import find  # noqa: E402


def make_inputs(color, seed=0):
    """PNG bytes of the 1280 x 720 scene and of a 64 x 64 template cut from it, and its position."""
    flag = cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE
    scene = cv2.resize(cv2.imread(str(ROOT / "samples" / "coffee.png"), flag), (1280, 720),
                       interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    x, y = int(rng.integers(0, 1280 - 64)), int(rng.integers(0, 720 - 64))
    encode = lambda a: cv2.imencode(".png", a)[1].tobytes()  # noqa: E731
    return encode(scene), encode(scene[y:y + 64, x:x + 64]), (x, y)


def summary(latencies, wall):
    ms = sorted(1000.0 * t for t in latencies)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return {"n": len(ms), "median_ms": statistics.median(ms), "p99_ms": p99, "rps": len(ms) / wall}


def tune_like_a_worker(threads):
    """Tune this process as gunicorn.conf.py's post_fork tunes a worker: thread pools and malloc."""
    import runpy

    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    conf["limit_threads"](threads)
    return conf["keep_large_blocks"](conf["malloc_threshold"])


def in_process(image, template):
    """A factory of callables doing the service's work in-process: decode both PNGs, then find."""
    formats = ("png", "jpeg", "webp", "bmp")

    def make():
        def once():
            img = load_image(image, max_pixels=16_777_216, formats=formats)
            tpl = load_image(template, max_pixels=16_777_216, formats=formats)
            return [m.to_dict() for m in find(img.pixels, tpl.pixels, "ncc")]
        return once, lambda: None
    return make


def over_http(port, body, content_type):
    """A factory of callables POSTing one request on their own keep-alive connection."""
    def make():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def once():
            conn.request("POST", "/v1/match", body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise SystemExit(f"the service answered {response.status}: {data[:300]!r}")
            return json.loads(data)["matches"]
        return once, conn.close
    return make


def run(make, n, clients):
    """``n`` calls spread over ``clients`` threads: (latencies, wall time, last answer)."""
    latencies, answers, left = [], [], iter(range(n))
    lock = threading.Lock()

    def worker():
        once, close = make()
        try:
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                t = time.perf_counter()
                answer = once()
                elapsed = time.perf_counter() - t
                with lock:
                    latencies.append(elapsed)
                    answers.append(answer)
        finally:
            close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(latencies) != n:
        raise SystemExit("a client thread failed (see above)")
    return latencies, time.perf_counter() - start, answers[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workers, log_path):
    port = free_port()
    env = os.environ | {"MATCHER_BIND": f"127.0.0.1:{port}", "MATCHER_WORKERS": str(workers)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise SystemExit(f"gunicorn did not start; see {log_path}")


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def multipart_body(image, template):
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in (("image", image), ("template", template)):
        parts += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n"
                  "Content-Type: image/png\r\n\r\n".encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def json_body(image, template):
    body = {"image": base64.b64encode(image).decode(), "template": base64.b64encode(template).decode()}
    return json.dumps(body).encode(), "application/json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per run (default 200)")
    parser.add_argument("--clients", default="1,2", help="concurrencies, comma-separated (default 1,2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved slices per run (default 5)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--color", action="store_true", help="an RGB scene instead of gray")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.clients.split(",")]
    if not 1 <= args.requests <= 2000 or not all(1 <= c <= 8 for c in concurrencies) or args.rounds < 1:
        parser.error("--requests must be 1..2000 and --clients 1..8 (the load stays bounded)")

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = args.workers or cores
    image, template, (x, y) = make_inputs(args.color)
    print(f"scene 1280x720 {'RGB' if args.color else 'gray'} PNG ({len(image):,} bytes), template 64x64 at "
          f"({x}, {y}); {cores} cores, {workers} gunicorn workers, matcher {matcher.__version__}, "
          f"Python {platform.python_version()}", file=sys.stderr)
    tuned = tune_like_a_worker(max(1, cores // workers))
    reference = in_process(image, template)()[0]()
    assert (reference[0]["x"], reference[0]["y"]) == (x, y), reference[0]
    print(f"malloc: large blocks {'kept in the heap' if tuned else 'mapped per block'}", file=sys.stderr)

    log_path = ROOT / "bench" / ".bench_service_gunicorn.log"
    proc, port = start_server(workers, log_path)
    try:
        ways = {"in-process": in_process(image, template),
                "http multipart": over_http(port, *multipart_body(image, template)),
                "http json": over_http(port, *json_body(image, template))}
        for make in ways.values():  # warm-up: every worker imports and plans its FFTs
            run(make, 2 * workers, workers)
        collected = {(name, c): ([], 0.0) for c in concurrencies for name in ways}
        for r in range(args.rounds):
            share = args.requests // args.rounds + (r < args.requests % args.rounds)
            for c in concurrencies:
                for name, make in ways.items():
                    latencies, wall, answer = run(make, share, c)
                    assert answer == reference, f"{name}: the answer differs from find's"
                    old = collected[name, c]
                    collected[name, c] = (old[0] + latencies, old[1] + wall)
    finally:
        stop_server(proc)
    log_path.unlink(missing_ok=True)

    results = []
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min; "
          f"{cores} cores: above {cores} means other work competed)", file=sys.stderr)
    print(f"{'':16} {'clients':>7} {'requests':>8} {'median ms':>10} {'p99 ms':>8} {'req/s':>7} {'overhead':>9}")
    for c in concurrencies:
        base = summary(*collected["in-process", c])["median_ms"]
        for name in ways:
            r = summary(*collected[name, c]) | {"way": name, "clients": c}
            r["overhead"] = r["median_ms"] / base - 1
            results.append(r)
            shown = "" if name == "in-process" else f"{100.0 * r['overhead']:+.1f}%"
            print(f"{name:16} {c:7d} {r['n']:8d} {r['median_ms']:10.1f} {r['p99_ms']:8.1f} {r['rps']:7.1f} {shown:>9}")
    if args.json:
        meta = {"cores": cores, "workers": workers, "color": args.color, "requests": args.requests, "load": load,
                "malloc_tuned": tuned,
                "matcher": matcher.__version__, "python": platform.python_version()}
        pathlib.Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
