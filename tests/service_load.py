"""Load, slow-client and worker-kill drivers for a real server (tests/test_service_load.py, bench/).

Plain functions on the standard library (threads and ``http.client``), so
that the test module and ``bench/bench_service_load.py`` drive the server
the same way; every request sent is counted as one outcome.
"""

import collections
import http.client
import json
import os
import signal
import socket
import statistics
import threading
import time
import urllib.parse

__all__ = ["Outcomes", "load_run", "SlowClients", "probe", "children", "compute_workers", "front_workers",
           "ready_workers", "wait_for", "kill", "cpu_seconds"]


class Outcomes:
    """What the clients saw: one entry per request sent.

    ``kinds`` counts "200", "503+retry-after" (a 503 with ``Retry-After`` and a
    problem+json body that parses), other statuses by code, and client-side
    errors by exception name ("error:ConnectionResetError"...).
    """

    def __init__(self):
        self.kinds = collections.Counter()
        self.latencies = []
        self.lock = threading.Lock()

    def add(self, kind, seconds):
        with self.lock:
            self.kinds[kind] += 1
            self.latencies.append(seconds)

    @property
    def sent(self):
        return sum(self.kinds.values())

    @property
    def errors(self):
        return sum(n for kind, n in self.kinds.items() if kind.startswith("error:"))

    def summary(self):
        lat = sorted(self.latencies) or [0.0]
        return {"sent": self.sent, "kinds": dict(sorted(self.kinds.items())),
                "median_s": round(statistics.median(lat), 4), "p99_s": round(lat[int(0.99 * (len(lat) - 1))], 4)}


def _classify(response, body):
    if response.status == 503:
        try:
            problem = json.loads(body)
        except ValueError:
            return "503-unreadable"
        ok = (response.getheader("Retry-After", "").isdigit() and problem.get("status") == 503
              and response.getheader("Content-Type") == "application/problem+json")
        return "503+retry-after" if ok else "503-incomplete"
    return str(response.status)


def load_run(url, path, body, content_type, *, concurrency, requests, timeout=60, outcomes=None, stop=None):
    """Send ``requests`` POSTs of ``body`` to ``url + path`` from ``concurrency`` threads (keep-alive
    connections, reopened after the server closes one); return :class:`Outcomes`.

    ``stop`` (a threading.Event) ends the run early; requests not sent are not counted.
    """
    parts = urllib.parse.urlsplit(url)
    outcomes = outcomes or Outcomes()
    left = iter(range(requests))
    lock = threading.Lock()

    def client():
        connection = None
        while stop is None or not stop.is_set():
            with lock:
                if next(left, None) is None:
                    break
            if connection is None:
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
            start = time.monotonic()
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": content_type})
                response = connection.getresponse()
                data = response.read()
                outcomes.add(_classify(response, data), time.monotonic() - start)
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                outcomes.add(f"error:{type(exc).__name__}", time.monotonic() - start)
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def probe(url, path="/healthz", body=None, content_type=None, timeout=10):
    """One request on a new connection: (status, seconds) or (error name, seconds)."""
    parts = urllib.parse.urlsplit(url)
    start = time.monotonic()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        connection.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - start
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__, time.monotonic() - start
    finally:
        connection.close()


class SlowClients:
    """``n`` connections that send a request very slowly, one byte every ``interval`` seconds.

    ``kind`` "headers": the request line and headers never finish; "body": the
    headers announce a ``body_bytes`` body (Content-Length) that trickles in.
    Use as a context manager: the connections are opened on entry (each one
    connected and its first bytes sent) and closed on exit.
    """

    def __init__(self, url, n, kind="headers", interval=1.0, body_bytes=1 << 20):
        parts = urllib.parse.urlsplit(url)
        self.address, self.n, self.kind, self.interval = (parts.hostname, parts.port), n, kind, interval
        self.body_bytes = body_bytes
        self.sockets, self.stop = [], threading.Event()
        self.opened = 0

    def _first_bytes(self):
        if self.kind == "headers":
            return b"POST /v1/match HTTP/1.1\r\nHost: slow\r\nX-Slow: "
        return (b"POST /v1/match HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n{" % self.body_bytes)

    def __enter__(self):
        for _ in range(self.n):
            s = socket.create_connection(self.address, timeout=10)
            s.sendall(self._first_bytes())
            self.sockets.append(s)
        self.opened = len(self.sockets)
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()
        return self

    def _trickle(self):
        while not self.stop.wait(self.interval):
            for s in self.sockets:
                try:
                    s.send(b"a")
                except OSError:
                    pass

    def still_open(self):
        """How many of the connections the server has not closed (non-blocking peek)."""
        alive = 0
        for s in self.sockets:
            try:
                s.setblocking(False)
                data = s.recv(1, socket.MSG_PEEK)
                alive += data != b""  # b"": closed by the server; data: it answered (e.g. 408)
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
            finally:
                s.setblocking(True)
        return alive

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        for s in self.sockets:
            s.close()


# ---- processes ---------------------------------------------------------------------------------

def children(pid):
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if fields[0] != "Z" and int(fields[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def cpu_seconds(pid):
    """User + system CPU seconds the process ``pid`` has used so far (from /proc), 0.0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _compute_master(front_master):
    return next((pid for pid in children(front_master) if _is_compute(pid)), None)


def _is_compute(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return b"MATCHER_COMPUTE_BIND=" in f.read()
    except OSError:
        return False


def compute_workers(front_master):
    """(compute master pid, its worker pids) under the front's master."""
    master = _compute_master(front_master)
    return master, (children(master) if master else [])


def front_workers(front_master):
    """The front master's own workers (the asyncio process), not the compute master."""
    return [pid for pid in children(front_master) if not _is_compute(pid)]


def ready_workers(log_path):
    """The pids that logged "worker PID ready" (gunicorn.conf.py's post_worker_init) in the server log."""
    import re

    return {int(pid) for pid in re.findall(r"worker (\d+) ready", log_path.read_text(errors="replace"))}


def wait_for(condition, timeout, step=0.05):
    """Poll ``condition()`` until true; return the seconds it took, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    return None


def kill(pid):
    os.kill(pid, signal.SIGKILL)
