#!/usr/bin/env python
"""The service under overload, slow clients and killed workers: the longer runs of tests/test_service_load.py.

Starts the production command (``python -m gunicorn -c gunicorn.conf.py``: the
asyncio front and MATCHER_WORKERS compute workers) on a free 127.0.0.1 port
and prints, for each part, what the clients saw:

- **load**: at each concurrency in ``--clients`` (default 8,32,128), each
  client on its own keep-alive connection, ``--requests`` POST /v1/match of
  the coins sample (a 384 x 303 PNG and a 62 x 62 template); every request is
  counted as one outcome: 200, 503 with Retry-After and a problem+json body,
  another status, or a client-side error (reset, broken pipe...); and the CPU
  seconds each compute worker spent meanwhile (how the work spread). Then the
  same with a 2 MB body (1024 x 1024 noise PNG).
- **slow**: ``--slow`` connections (default 500) that send their headers, or
  a 1 MB body, one byte a second; meanwhile ``--probes`` GET /healthz and
  small matches on new connections, each timed.
- **hop**: what the front adds to a request: 60 coins matches through it and
  60 straight to the compute workers' socket, interleaved; medians.
- **kill**: under a load of 8 clients, SIGKILL one compute worker, then the
  front's worker; requests that failed, and the recovery time (until the
  replacement compute worker logs "ready"; until /healthz answers again).

Each part runs ``--repeats`` times (default 3); the medians are printed, with
the range. Everything stays on 127.0.0.1, counts are bounded, the server is
stopped at the end. ``--command`` and ``--root`` run another server command
from another checkout (e.g. an older version, for a before/after).

Run from the repository root:

    .venv/bin/python bench/bench_service_load.py                  # about 7 minutes on 2 busy cores
    .venv/bin/python bench/bench_service_load.py --repeats 1 --json out.json
"""

import argparse
import json
import os
import pathlib
import platform
import shlex
import statistics
import sys
import threading
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from service_fixtures import b64, png, sample, start_server, stop_server  # noqa: E402
from service_load import (  # noqa: E402
    Outcomes, SlowClients, compute_workers, cpu_seconds, front_workers, kill, load_run, probe, ready_workers,
    wait_for)


def bodies():
    coins = json.dumps({"image": b64(sample("coins.png")), "template": b64(sample("coins_coin.png"))}).encode()
    noise = np.random.default_rng(1).integers(0, 256, (1024, 1024), dtype=np.uint8)
    large = json.dumps({"image": b64(png(noise)), "template": b64(png(noise[:16, :16])), "max_matches": 1}).encode()
    tiny_img = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    tiny = json.dumps({"image": b64(png(tiny_img)), "template": b64(png(tiny_img[20:36, 10:26]))}).encode()
    return coins, large, tiny


def run_load(url, body, clients, requests, workers=()):
    """One load run; ``workers``: compute worker pids whose CPU seconds are recorded (the spread)."""
    cpu = [cpu_seconds(pid) for pid in workers]
    start = time.monotonic()
    outcomes = load_run(url, "/v1/match", body, "application/json", concurrency=clients, requests=requests)
    summary = outcomes.summary()
    summary["seconds"] = round(time.monotonic() - start, 2)
    summary["errors"] = outcomes.errors
    summary["worker_cpu_s"] = [round(cpu_seconds(pid) - c, 2) for pid, c in zip(workers, cpu)]
    return summary


def run_slow(url, n, kind, probes, tiny):
    with SlowClients(url, n, kind=kind, interval=1.0) as slow:
        time.sleep(1.0)
        health = [probe(url) for _ in range(probes)]
        match = [probe(url, "/v1/match", tiny, "application/json") for _ in range(probes)]
        still_open = slow.still_open()
    ok = lambda results: sum(status == 200 and s < 1.0 for status, s in results)  # noqa: E731
    return {"kind": kind, "connections": n, "still_open": still_open,
            "health_ok_within_1s": ok(health), "match_ok_within_1s": ok(match), "probes": probes,
            "health_median_s": round(statistics.median(s for _, s in health), 4),
            "match_median_s": round(statistics.median(s for _, s in match), 4),
            "health_max_s": round(max(s for _, s in health), 4), "match_max_s": round(max(s for _, s in match), 4)}


def run_kill(proc, url, body, which):
    outcomes, stop = Outcomes(), threading.Event()
    thread = threading.Thread(target=load_run, args=(url, "/v1/match", body, "application/json"),
                              kwargs={"concurrency": 8, "requests": 10**6, "outcomes": outcomes, "stop": stop},
                              daemon=True)
    thread.start()
    try:
        wait_for(lambda: outcomes.kinds["200"] >= 50, 60)
        before = outcomes.summary()
        if which == "compute":
            _, workers = compute_workers(proc.pid)
            known = ready_workers(proc.log_path)  # the front's worker logs "ready" too
            kill(workers[0])
            recovery = wait_for(lambda: ready_workers(proc.log_path) - known, 60)
        else:
            (front,) = front_workers(proc.pid)
            kill(front)
            recovery = wait_for(lambda: probe(url, timeout=2)[0] == 200, 60)
        served = outcomes.kinds["200"]
        wait_for(lambda: outcomes.kinds["200"] >= served + 50, 60)
    finally:
        stop.set()
        thread.join(60)
    after = outcomes.summary()
    failed = outcomes.sent - outcomes.kinds["200"] - outcomes.kinds["503+retry-after"]
    return {"killed": which, "sent": after["sent"], "failed": failed, "kinds": after["kinds"],
            "recovery_s": None if recovery is None else round(recovery, 2), "sent_before_kill": before["sent"]}


def run_hop(proc, url, body, n):
    """What the front adds: ``n`` requests through it and ``n`` straight to the compute socket,
    interleaved, each on a new connection; medians in ms."""
    import http.client
    import re
    import urllib.parse

    from service.front import UnixHTTPConnection

    path = re.search(r"compute pool: \d+ sync worker\(s\) on (\S+) \(pid", proc.log_path.read_text()).group(1)
    parts = urllib.parse.urlsplit(url)
    times = {"front": [], "direct": []}
    for _ in range(n):
        for kind in times:
            if kind == "front":
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            else:
                connection = UnixHTTPConnection(path, 60)
            start = time.perf_counter()
            connection.request("POST", "/v1/match", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            times[kind].append(time.perf_counter() - start)
            connection.close()
            assert response.status == 200, response.status
    front, direct = (statistics.median(times[k]) * 1000 for k in ("front", "direct"))
    return {"requests": n, "front_ms": round(front, 2), "direct_ms": round(direct, 2),
            "added_ms": round(front - direct, 2)}


def median_of(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "n/a"
    return f"{statistics.median(values):g} (range {min(values):g}-{max(values):g})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="8,32,128", help="concurrencies of the load runs")
    parser.add_argument("--requests", type=int, default=0, help="requests per load run (default max(200, 4 x clients))")
    parser.add_argument("--slow", type=int, default=500, help="slow connections")
    parser.add_argument("--probes", type=int, default=10, help="health and match probes during the slow run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="2", help="MATCHER_WORKERS (default 2)")
    parser.add_argument("--parts", default="load,slow,hop,kill")
    parser.add_argument("--command", default=None, help="server command (default: the production one)")
    parser.add_argument("--root", default=None, help="checkout to run it from (default: this one)")
    parser.add_argument("--json", default=None, help="write every run as JSON here")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    parts = set(args.parts.split(","))
    coins, large, tiny = bodies()
    env = {"MATCHER_WORKERS": args.workers}
    if args.root:
        import service_fixtures
        service_fixtures.ROOT = pathlib.Path(args.root).resolve()
    kwargs = {"command": shlex.split(args.command)} if args.command else {}
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, "
          f"load average {os.getloadavg()[0]:.1f}; Python {platform.python_version()}; "
          f"MATCHER_WORKERS={args.workers}; {args.repeats} repeat(s), medians (range)", flush=True)
    runs = {"load": [], "slow": [], "hop": [], "kill": []}
    for repeat in range(args.repeats):
        proc, url = start_server(timeout=60, **env, **kwargs)
        try:
            if "load" in parts:
                for name, body in (("coins", coins), ("2MB", large)):
                    for c in clients:
                        workers = compute_workers(proc.pid)[1] if not args.command else ()
                        row = run_load(url, body, c, args.requests or max(200, 4 * c), workers)
                        row.update(body=name, clients=c, repeat=repeat)
                        runs["load"].append(row)
                        print("load", json.dumps(row), flush=True)
            if "slow" in parts:
                for kind in ("headers", "body"):
                    row = run_slow(url, args.slow, kind, args.probes, tiny)
                    row["repeat"] = repeat
                    runs["slow"].append(row)
                    print("slow", json.dumps(row), flush=True)
            if "hop" in parts and not args.command:
                row = run_hop(proc, url, coins, 60)
                row["repeat"] = repeat
                runs["hop"].append(row)
                print("hop", json.dumps(row), flush=True)
            if "kill" in parts:
                for which in ("compute", "front"):
                    row = run_kill(proc, url, coins, which)
                    row["repeat"] = repeat
                    runs["kill"].append(row)
                    print("kill", json.dumps(row), flush=True)
        finally:
            stop_server(proc)
    print("\nsummary (median over repeats, range in brackets)")
    for name in ("coins", "2MB"):
        for c in clients:
            rows = [r for r in runs["load"] if r["body"] == name and r["clients"] == c]
            if rows:
                ok = [r["kinds"].get("200", 0) for r in rows]
                busy = [r["kinds"].get("503+retry-after", 0) for r in rows]
                other = [r["sent"] - a - b for r, a, b in zip(rows, ok, busy)]
                print(f"  load {name:5} {c:4} clients: sent {rows[0]['sent']}, 200 {statistics.median(ok):g}, "
                      f"503+Retry-After {statistics.median(busy):g}, other/errors {max(other)} (max), "
                      f"median latency {median_of(rows, 'median_s')} s; compute workers' CPU s "
                      f"{[r['worker_cpu_s'] for r in rows]}")
    for kind in ("headers", "body"):
        rows = [r for r in runs["slow"] if r["kind"] == kind]
        if rows:
            print(f"  slow {kind:7}: {rows[0]['connections']} connections (still open: "
                  f"{median_of(rows, 'still_open')}); health ok < 1 s {median_of(rows, 'health_ok_within_1s')}"
                  f"/{rows[0]['probes']}, median {median_of(rows, 'health_median_s')} s; small match ok < 1 s "
                  f"{median_of(rows, 'match_ok_within_1s')}/{rows[0]['probes']}, median "
                  f"{median_of(rows, 'match_median_s')} s")
    if runs["hop"]:
        print(f"  hop: coins through the front {median_of(runs['hop'], 'front_ms')} ms, straight to the compute "
              f"socket {median_of(runs['hop'], 'direct_ms')} ms: the front adds "
              f"{median_of(runs['hop'], 'added_ms')} ms")
    for which in ("compute", "front"):
        rows = [r for r in runs["kill"] if r["killed"] == which]
        if rows:
            print(f"  kill {which:7}: requests failed {median_of(rows, 'failed')} of {median_of(rows, 'sent')} "
                  f"sent; recovery {median_of(rows, 'recovery_s')} s")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
