#!/usr/bin/env python
"""A few grid cells for several checkouts of matcher, run in turn, against OpenCV: before/after figures.

Each checkout's ``matcher/`` (a ROOT holding it: a worktree, or ``git archive
<commit> matcher | tar -x -C ROOT``) is timed in a fresh interpreter of its own,
the roots alternating for ``--rounds`` rounds, so that the machine's drift
falls on all of them alike. In each interpreter every cell is timed against
OpenCV's counterpart (``cv2.matchTemplate``, plus ``cv2.minMaxLoc`` for
``find``), the two alternating call by call, medians of ``--calls`` calls,
each call made

- ``warm``: right after the previous one (a tight loop),
- ``gc``: after ``gc.collect()`` (as the grid times: caches cold, the second core idle),
- ``sleep``: after 50 ms of sleep (a pipeline that waits for its next frame).

Scenes and templates are :mod:`bench_grid`'s. Prints one line per root and
round: each cell's ``ours/opencv ms`` and the geometric mean of the ratios.

    git archive <commit> matcher | tar -x -C /tmp/before    # (mkdir /tmp/before first)
    .venv/bin/python bench/bench_in_turn.py /tmp/before . --frame 640x480 --templates 8,32,128 \\
        --dtypes uint8,float32 --methods ncc,ssd --mode gc
    .venv/bin/python bench/bench_in_turn.py /tmp/before . --frame 320x240 --templates 128 \\
        --dtypes float32 --threads 1 --calls 40
"""

import argparse
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_one(root, args):
    """Time the cells with the matcher under ``root`` (in this interpreter): a list of (label, ours, opencv) s."""
    sys.path.insert(0, os.path.abspath(root))
    sys.path.insert(1, HERE)
    import gc
    import time

    import cv2
    import numpy as np

    import matcher
    from bench_grid import OPENCV, cut, scene

    assert os.path.dirname(os.path.abspath(matcher.__file__)) == os.path.join(os.path.abspath(root), "matcher"), \
        f"matcher imported from {matcher.__file__}, not from {root}"
    if args.threads:
        matcher.set_num_threads(args.threads)
    width, height = (int(v) for v in args.frame.split("x"))
    out = []
    for dtype in args.dtypes.split(","):
        image = scene((width, height), dtype)
        for side in (int(t) for t in args.templates.split(",")):
            template = cut(image, side)
            for method in args.methods.split(","):
                if args.call == "find":
                    def ours(i=image, t=template, m=method):
                        return matcher.find(i, t, m)

                    def theirs(i=image, t=template, m=method):
                        return cv2.minMaxLoc(cv2.matchTemplate(i, t, OPENCV[m]))
                else:
                    def ours(i=image, t=template, m=method):
                        return matcher.match_template(i, t, m, precision=args.precision)

                    def theirs(i=image, t=template, m=method):
                        return cv2.matchTemplate(i, t, OPENCV[m])
                for _ in range(3):
                    ours(), theirs()
                times = ([], [])
                for _ in range(args.calls):
                    for fn, acc in ((ours, times[0]), (theirs, times[1])):
                        if args.mode == "gc":
                            gc.collect()
                        elif args.mode == "sleep":
                            time.sleep(0.05)
                        start = time.perf_counter()
                        fn()
                        acc.append(time.perf_counter() - start)
                out.append((f"{dtype} {side}px {method}", float(np.median(times[0])), float(np.median(times[1]))))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="+", help="directories holding a matcher/ package to compare")
    p.add_argument("--frame", default="320x240", help="width x height (default 320x240)")
    p.add_argument("--templates", default="32", help="comma-separated template sides (default 32)")
    p.add_argument("--dtypes", default="uint8", help="comma-separated: uint8, float32 (default uint8)")
    p.add_argument("--methods", default="ncc", help="comma-separated: ncc, ssd, ccorr_normed (default ncc)")
    p.add_argument("--precision", default="fast", choices=("fast", "exact"))
    p.add_argument("--call", default="match_template", choices=("match_template", "find"))
    p.add_argument("--mode", default="warm", choices=("warm", "gc", "sleep"))
    p.add_argument("--threads", type=int, default=0, help="matcher.set_num_threads (default: every core)")
    p.add_argument("--calls", type=int, default=15, help="timed calls of each, per cell (default 15)")
    p.add_argument("--rounds", type=int, default=2, help="rounds over the roots (default 2)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        for label, ours, theirs in run_one(args.roots[0], args):
            print(f"{label}\t{ours}\t{theirs}")
        return 0
    passed = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in args.roots]
    for r in range(args.rounds):
        for root in args.roots:
            done = subprocess.run([sys.executable, os.path.abspath(__file__), root, "--child", *passed],
                                  capture_output=True, text=True, check=True)
            cells = [line.split("\t") for line in done.stdout.splitlines()]
            ratios = [float(o) / float(t) for _, o, t in cells]
            geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
            detail = "  ".join(f"{label}: {float(o) * 1e3:.2f}/{float(t) * 1e3:.2f} ms" for label, o, t in cells)
            print(f"round {r + 1} {root}: geo-mean ours/opencv {geo:.3f}  ({args.mode}) {detail}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
