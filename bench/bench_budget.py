"""The work budget's estimates (matcher.budget) against the peak memory and time measured.

Each case runs in a fresh subprocess, as a service request does: the image
and template are PNG bytes (not counted: the request body), decoded with
``load_image`` (a mask is a separate gray PNG, as a request's ``mask`` part)
and searched with ``find_with_scores`` (one template) or ``find_many``
(several); the peak RSS above the RSS just before decoding (Linux: the peak is
reset there through ``/proc/self/clear_refs``) is compared with
``search_cost(...).memory``, and the time with ``work``::

    python bench/bench_budget.py            # the default grid, ~10 minutes on 2 cores
    python bench/bench_budget.py --quick    # 6 cases, for a smoke run
    python bench/bench_budget.py --server   # a real worker: its peak RSS (VmHWM) over the
                                            # largest requests the default budget accepts
    python bench/bench_budget.py --attacks  # the issue's two attacks against a real server

A ``ratio`` (measured / estimated memory) above 1 means the estimate is too
low for that case and the constants of matcher/budget.py must grow.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = r"""
import json, sys, time
import cv2, numpy as np
sys.path.insert(0, ROOT)
import matcher
from matcher import find_many, find_with_scores, load_image, set_num_threads
from matcher.budget import search_cost
from matcher.headers import read_header

size, channels, nbytes, side, masked, n, threads = ARGS
set_num_threads(threads)
rng = np.random.default_rng(0)
dtype = np.uint8 if nbytes == 1 else np.uint16
shape = (size, size) if channels == 1 else (size, size, channels)
img = rng.integers(0, 200, shape).astype(dtype)
tpl = img[10:10 + side, 20:20 + side]
image_png = cv2.imencode(".png", img)[1].tobytes()
tpl_png = cv2.imencode(".png", tpl)[1].tobytes()
mask_png = cv2.imencode(".png", ((rng.random((side, side)) > 0.3) * 255).astype(np.uint8))[1].tobytes()
find_with_scores(np.zeros((40, 40)), np.zeros((5, 5)))  # warm up: the engine's pool, FFT plans

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

def rss():
    return status("VmHWM")

head, thead = read_header(image_png), read_header(tpl_png)
cost = search_cost((head.height, head.width), channels=channels, bytes_per_sample=head.bytes_per_sample,
                   file_channels=head.channels, templates=[(thead.height, thead.width, masked)] * n)
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS (Linux)
    f.write("5")
base = status("VmRSS")
start = time.perf_counter()
image = load_image(image_png)
template = load_image(tpl_png)
mask = load_image(mask_png).pixels if masked else None
if n == 1:
    find_with_scores(image.pixels, template.pixels, mask=mask)
else:
    find_many(image.pixels, {str(i): template.pixels for i in range(n)},
              masks={str(i): mask for i in range(n)} if masked else None)
seconds = time.perf_counter() - start
print(json.dumps({"peak": rss() - base, "memory": cost.memory, "work": cost.work, "seconds": seconds}))
"""


def run(case):
    code = _CHILD.replace("ROOT", repr(ROOT)).replace("ARGS", repr(tuple(case)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _worst_accepted():
    """The largest requests the default budget accepts, one per shape of cost (name, JSON body, path)."""
    import base64

    import cv2
    import numpy as np

    rng = np.random.default_rng(0)

    def b64(a):
        return base64.b64encode(cv2.imencode(".png", a)[1].tobytes()).decode()

    # few distinct values, so that the PNGs stay under MATCHER_MAX_UPLOAD_BYTES (16 MiB)
    rgb = rng.integers(0, 8, (2160, 3840, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (3700, 3700), dtype=np.uint8)
    rgb16 = rng.integers(0, 8, (1900, 1900, 3), dtype=np.uint16) * 4000
    mask = (rng.random((24, 24)) > 0.3).astype(np.uint8) * 255
    gray14 = gray[:1400, :1400]
    return [
        ("3840x2160 RGB, 32x32 template", {"image": b64(rgb), "template": b64(rgb[100:132, 200:232])}, "/v1/match"),
        ("3700x3700 gray, 32x32 template", {"image": b64(gray), "template": b64(gray[50:82, 60:92])}, "/v1/match"),
        ("1900x1900 RGB 16-bit, masked 24x24", {"image": b64(rgb16), "template": b64(rgb16[10:34, 10:34]),
                                                "mask": b64(mask)}, "/v1/match"),
        ("1400x1400 gray, 16 templates", {"image": b64(gray14), "templates": {
            f"t{i}": b64(gray14[i * 20:i * 20 + 24, 30:54]) for i in range(16)}}, "/v1/match/batch"),
    ]


def _start_server(**env):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"MATCHER_BIND": f"127.0.0.1:{port}"} | env
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    return proc, port


def _stop_server(proc):
    """SIGTERM (graceful: up to gunicorn's graceful_timeout), then SIGKILL."""
    proc.terminate()
    try:
        proc.wait(45)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def attacks_run():
    """The issue's attacks, with default settings: status and time of each."""
    import struct
    import time
    import zlib

    import cv2
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from attack_cases import _multipart, request, send

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    image = cv2.imencode(".png", np.zeros((4096, 4096, 4), np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    tpl = np.zeros((16, 16, 4), np.uint16)
    tpl[..., 3], tpl[4:8, 4:8, 3], tpl[2:9, 3:12, :3] = 65535, 0, 9000
    template = cv2.imencode(".png", tpl)[1].tobytes()
    z = zlib.compressobj(9)
    parts, total, block = [z.compress(b"\0" * (64 * 65))], 0, b"\0" * (64 << 20)
    while total < 15 << 20:  # 15 MiB of compressed zeros: ~15.5 GB inflated
        parts.append(z.compress(block))
        total += len(parts[-1])
    parts.append(z.flush())
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    small = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8))[1].tobytes()
    proc, port = _start_server()
    try:
        for name, image_bytes, template_bytes in (
                (f"{len(image) // 1000} KB 4096x4096 RGBA16 zero PNG, masked 16x16 template", image, template),
                (f"64x64 PNG + {len(bomb) >> 20} MiB of compressed zero IDAT", bomb, small)):
            body, ctype = _multipart([], [("image", "i.png", image_bytes), ("template", "t.png", template_bytes)])
            start = time.perf_counter()
            status, _, answer = send("127.0.0.1", port, request("POST", "/v1/match", body, ctype))
            seconds = time.perf_counter() - start
            print(f"{name}: {status} in {seconds:.3f} s: {json.loads(answer).get('detail', '')[:160]}")
    finally:
        _stop_server(proc)
    return 0


def server_run():
    """Peak RSS of the server's processes (default settings, one compute worker) over the worst accepted
    requests, one at a time and then two at once: the largest VmHWM of any process (a compute worker's)."""
    import concurrent.futures
    import time
    import urllib.error
    import urllib.request

    proc, port = _start_server(MATCHER_WORKERS="1")
    url = f"http://127.0.0.1:{port}"
    try:
        def processes(pid):
            kids = []
            for task in os.listdir(f"/proc/{pid}/task"):
                try:
                    kids += [int(k) for k in open(f"/proc/{pid}/task/{task}/children").read().split()]
                except OSError:
                    pass
            return [pid] + [p for k in kids for p in processes(k)]

        def hwm():
            peaks = []
            for pid in processes(proc.pid):
                try:
                    peaks += [int(line.split()[1]) * 1024 for line in open(f"/proc/{pid}/status")
                              if line.startswith("VmHWM")]
                except OSError:
                    pass
            return max(peaks)

        def post(body, path):
            req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    status = r.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            return status, time.perf_counter() - start

        requests = _worst_accepted()
        print(f"{len(processes(proc.pid))} processes; after start-up the largest peak RSS is {hwm() / 2**20:.0f} MiB")
        for name, body, path in requests:
            status, seconds = post(body, path)
            print(f"{name:<40} {status}  {seconds:5.2f} s  largest peak RSS so far {hwm() / 2**20:6.0f} MiB",
                  flush=True)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pairs = [(requests[i], requests[j]) for i, j in ((0, 2), (1, 3), (0, 1))]
            for a, b in pairs:
                got = list(pool.map(lambda r: post(r[1], r[2]), (a, b)))
                print(f"two at once: {a[0]} + {b[0]}: {[g[0] for g in got]}, "
                      f"largest peak RSS so far {hwm() / 2**20:.0f} MiB", flush=True)
        print(f"largest peak RSS of a server process: {hwm() / 2**20:.0f} MiB")
    finally:
        _stop_server(proc)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--server", action="store_true")
    p.add_argument("--attacks", action="store_true")
    args = p.parse_args(argv)
    if args.server:
        return server_run()
    if args.attacks:
        return attacks_run()
    if args.quick:
        cases = [(512, 1, 1, 16, False, 1, 1), (512, 3, 2, 16, True, 1, 2), (512, 1, 1, 16, True, 4, 1),
                 (1024, 3, 1, 32, False, 1, 2), (1024, 1, 2, 8, True, 1, 1), (1024, 3, 1, 16, False, 4, 1)]
    else:
        cases = [c for c in itertools.product((512, 1024, 2048), (1, 3), (1, 2), (8, 32, 128), (False, True), (1,), (1, 2))
                 if c[2] == 1 or c[3] == 32]
        cases += [(s, c, 1, 16, m, n, 2) for s in (1024, 2048) for c in (1, 3) for m in (False, True) for n in (4, 16)]
    worst, per_unit = 0.0, []
    print(f"{'size':>5} {'ch':>2} {'B':>1} {'tpl':>4} {'mask':>4} {'n':>2} {'thr':>3} {'peak MiB':>9} "
          f"{'est MiB':>8} {'ratio':>5} {'s':>6} {'ns/unit':>7}")
    for case in cases:
        r = run(case)
        ratio = r["peak"] / r["memory"]
        worst = max(worst, ratio)
        ns = r["seconds"] * 1e9 / r["work"]
        per_unit.append(ns)
        size, ch, nb, side, masked, n, threads = case
        print(f"{size:>5} {ch:>2} {nb:>1} {side:>4} {str(masked):>4} {n:>2} {threads:>3} {r['peak'] / 2**20:>9.0f} "
              f"{r['memory'] / 2**20:>8.0f} {ratio:>5.2f} {r['seconds']:>6.2f} {ns:>7.1f}", flush=True)
    print(f"worst measured/estimated memory: {worst:.2f}; ns per work unit: "
          f"{min(per_unit):.1f} to {max(per_unit):.1f}")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
