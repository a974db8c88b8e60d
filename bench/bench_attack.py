"""The attack harness, longer: the bad-input matrix (several rounds) and schemathesis with more examples.

tests/test_service_attack.py is the CI version (one round, 30 examples per
operation and phase). This one starts the production server on 127.0.0.1,
sends every case of tests/attack_cases.py ``--rounds`` times (also a few at
once), reports per-family status counts and the slowest cases, then runs
schemathesis with ``--examples`` examples and a fresh seed::

    python bench/bench_attack.py                     # 3 rounds, 200 examples: ~5-10 minutes
    python bench/bench_attack.py --rounds 1 --examples 50
"""

import argparse
import collections
import concurrent.futures
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from attack_cases import cases, send  # noqa: E402
from bench_budget import _start_server, _stop_server  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--examples", type=int, default=200)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    all_cases = cases()
    proc, port = _start_server()
    failures, times, families = [], [], collections.Counter()
    try:
        def one(case):
            start = time.perf_counter()
            status, headers, body = send("127.0.0.1", port, case.raw)
            return case, status, headers, time.perf_counter() - start

        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            for _ in range(args.rounds):
                for case, status, headers, seconds in pool.map(one, all_cases):
                    families[(case.name.split("-")[0], status)] += 1
                    times.append((seconds, case.name))
                    busy = status == 503 and headers.get("retry-after")  # concurrent rounds may meet a busy worker
                    if status not in case.statuses and not busy:
                        failures.append((case.name, status, case.statuses))
        print(f"{len(all_cases)} cases x {args.rounds} rounds, {args.concurrency} at once; statuses by family:")
        for (family, status), n in sorted(families.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            print(f"  {family:<12} {status}: {n}")
        print("slowest:", ", ".join(f"{name} {s:.2f} s" for s, name in sorted(times)[-5:]))
        print(f"unexpected: {len(failures)}", *failures[:20], sep="\n  ")
        command = [sys.executable, "-m", "schemathesis.cli", "--config-file",
                   os.path.join(ROOT, "tests", "schemathesis.toml"), "run", f"http://127.0.0.1:{port}/openapi.json",
                   "--checks", "all", "--max-examples", str(args.examples), "--seed", str(seed), "--workers", "1",
                   "--request-timeout", "60", "--warnings", "off", "--no-color"]
        start = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        print(run.stdout[-2500:])
        print(f"schemathesis: exit {run.returncode}, seed {seed}, {time.perf_counter() - start:.0f} s")
    finally:
        _stop_server(proc)
    return 0 if not failures and run.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
