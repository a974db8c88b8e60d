#!/usr/bin/env python
"""find_many against separate find calls: 10 templates on a 2048 x 2048 image.

The scene is skimage.data.astronaut() in gray, resized to the scene size with
cv2.INTER_CUBIC, plus a little seeded Gaussian noise (uint8). The templates
are cut from it at seeded random positions, with seeded random sizes (so their
score maps differ in shape), or all of one size with ``--side``. Both contenders run in one process, in turn,
``--repeats`` rounds, the order alternating each round:

- ``find x N``: ``[find(image, t, ...) for t in templates]``;
- ``find_many``: ``find_many(image, templates, ...)``, which validates,
  centres and Fourier-transforms the image once for all templates.

Both must return the same matches (checked, scores to 1e-9: with templates cut from distinct
places and a high threshold no suppression crosses templates). Medians of the
wall time and of the process's CPU time (all threads; steadier than the wall
time on a shared machine), and the ratios separate/together (> 1: find_many
is faster), go to stdout; progress to stderr.

Run from the repository root:

    /tmp/venv/bin/python bench/bench_find_many.py
    /tmp/venv/bin/python bench/bench_find_many.py --size 1024 --templates 5 --repeats 5
    /tmp/venv/bin/python bench/bench_find_many.py --side 64       # 10 templates of 64 x 64
"""

import argparse
import os
import statistics
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from matcher.search.find import find, find_many  # noqa: E402


def scene(size, seed):
    from skimage import color, data

    base = np.round(color.rgb2gray(data.astronaut()) * 255).astype(np.float32)
    big = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    big += np.random.default_rng(seed).normal(0, 2, big.shape).astype(np.float32)
    return np.clip(np.round(big), 0, 255).astype(np.uint8)


def cut_templates(image, count, seed, lo, hi):
    rng = np.random.default_rng(seed + 1)
    templates = []
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(lo, hi + 1, 2))
        y, x = int(rng.integers(0, image.shape[0] - h)), int(rng.integers(0, image.shape[1] - w))
        templates.append(image[y : y + h, x : x + w].copy())
    return templates


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=2048, help="scene width and height (default 2048)")
    p.add_argument("--templates", type=int, default=10, help="number of templates (default 10)")
    p.add_argument("--min-side", type=int, default=32, help="smallest template side (default 32)")
    p.add_argument("--max-side", type=int, default=96, help="largest template side (default 96)")
    p.add_argument("--side", type=int, help="make every template SIDE x SIDE (window sums are then shared too)")
    p.add_argument("--method", default="ncc")
    p.add_argument("--threshold", type=float, default=0.98)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    image = scene(args.size, args.seed)
    lo, hi = (args.side, args.side) if args.side else (args.min_side, args.max_side)
    templates = cut_templates(image, args.templates, args.seed, lo, hi)
    options = {"threshold": args.threshold, "max_matches": None}
    shapes = ", ".join(f"{t.shape[1]}x{t.shape[0]}" for t in templates)
    print(f"scene {args.size}x{args.size} uint8, {len(templates)} templates ({shapes}), "
          f"method {args.method}, threshold {args.threshold}, {args.repeats} repeats", file=sys.stderr)

    def separate():
        return [m for t in templates for m in find(image, t, args.method, **options)]

    def together():
        return find_many(image, templates, args.method, **options)

    times = {"find x N": [], "find_many": []}
    cpu = {"find x N": [], "find_many": []}
    results = {}
    for r in range(args.repeats):
        order = [("find x N", separate), ("find_many", together)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            print(f"  round {r + 1}: {name} {times[name][-1]:.2f} s wall, {cpu[name][-1]:.2f} s CPU", file=sys.stderr)

    alone = sorted((m.x, m.y, m.width, m.height, m.score) for m in results["find x N"])
    joint = sorted((m.x, m.y, m.width, m.height, m.score) for m in results["find_many"])
    # same windows; scores equal to rounding (the shared FFT may differ in size from a lone one)
    if [a[:4] for a in alone] != [j[:4] for j in joint] or any(abs(a[4] - j[4]) > 1e-9 for a, j in zip(alone, joint)):
        print("MISMATCH: find_many and separate find calls disagree", file=sys.stderr)
        return 1
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"{'contender':<12} {'wall s':>8} {'CPU s':>8}  matches   (medians of {args.repeats})")
    for name, found in (("find x N", alone), ("find_many", joint)):
        shown = name.replace("N", str(len(templates)))
        print(f"{shown:<12} {med[name]:>8.3f} {med_cpu[name]:>8.3f}  {len(found)}")
    print(f"ratio separate/find_many: wall {med['find x N'] / med['find_many']:.2f}, "
          f"CPU {med_cpu['find x N'] / med_cpu['find_many']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
