#!/usr/bin/env python
"""One checkout of matcher against OpenCV, for before/after comparisons of two checkouts.

Times ``matcher.match_template`` from the checkout at ROOT and
``cv2.matchTemplate`` side by side in one process (interleaved, 3 calls each,
medians) on 48 cells: a 2048^2 photograph (skimage's camera, resized, with
seeded noise) in uint8 and float32, templates of 8, 32 and 128 px, methods
ssd, ccorr, ncc and ccorr_normed, precision "fast" and "exact". It prints the
ratios ours/OpenCV as JSON. ``--compare`` reads several such files made from
two checkouts run alternately (A B A B ...), takes each cell's best ratio per
checkout, and prints the cells that moved by more than 15% and the geometric
means by method and precision.

    git worktree add /tmp/before <commit>
    for i in 1 2; do
        .venv/bin/python bench/bench_checkout.py /tmp/before > before_$i.json
        .venv/bin/python bench/bench_checkout.py . > after_$i.json
    done
    .venv/bin/python bench/bench_checkout.py --compare before_*.json -- after_*.json
"""

import json
import math
import statistics
import sys
import time
from collections import defaultdict

CELLS = [(dtype, side, method, precision) for dtype in ("uint8", "float32") for side in (8, 32, 128)
         for method in ("ssd", "ccorr", "ncc", "ccorr_normed") for precision in ("fast", "exact")]


def measure(root):
    sys.path.insert(0, root)
    import cv2
    import numpy as np
    import skimage.data

    from matcher import match_template

    constants = {"ssd": cv2.TM_SQDIFF, "ccorr": cv2.TM_CCORR, "ncc": cv2.TM_CCOEFF_NORMED,
                 "ccorr_normed": cv2.TM_CCORR_NORMED}
    rng = np.random.default_rng(0)
    base = cv2.resize(skimage.data.camera().astype(np.float32), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    images = {}
    for dtype in ("uint8", "float32"):
        noisy = base + rng.normal(0, 2, base.shape).astype(np.float32)
        images[dtype] = np.clip(noisy, 0, 255).astype(np.uint8) if dtype == "uint8" else noisy
    rows = []
    for dtype, side, method, precision in CELLS:
        img = images[dtype]
        tpl = img[500 : 500 + side, 700 : 700 + side].copy()
        ours, opencv = [], []
        for _ in range(3):
            start = time.perf_counter()
            match_template(img, tpl, method, precision=precision)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            cv2.matchTemplate(img, tpl, constants[method])
            opencv.append(time.perf_counter() - start)
        rows.append([dtype, side, method, precision, statistics.median(ours) / statistics.median(opencv)])
    return rows


def compare(before_files, after_files):
    best = defaultdict(dict)
    for label, files in (("before", before_files), ("after", after_files)):
        for name in files:
            for *cell, ratio in json.load(open(name)):
                key = tuple(cell)
                best[key][label] = min(ratio, best[key].get(label, math.inf))
    groups = defaultdict(list)
    for key, r in sorted(best.items()):
        change = r["after"] / r["before"]
        if not 0.87 <= change <= 1.15:
            print(f"{key}: ours/opencv {r['before']:.2f} -> {r['after']:.2f}")
        for group in ((key[2], key[3]), ("all", key[3])):
            groups[group].append((r["before"], r["after"]))
    geo = lambda values: math.exp(sum(math.log(v) for v in values) / len(values))  # noqa: E731
    for group, pairs in sorted(groups.items()):
        before, after = geo([b for b, _ in pairs]), geo([a for _, a in pairs])
        print(f"{group[0]:>12} {group[1]:>5}: ours/opencv {before:.2f} -> {after:.2f} (after/before {after / before:.2f})")


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    if args[0] == "--compare":
        if "--" not in args:
            print("--compare needs: BEFORE.json ... -- AFTER.json ...", file=sys.stderr)
            return 2
        split = args.index("--")
        compare(args[1:split], args[split + 1 :])
        return 0
    print(json.dumps(measure(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
