"""How well :func:`matcher.search.rotated.search_cost` (the service's MATCHER_MAX_TURN_WORK unit) tracks time.

For a grid of image sizes, template sizes, angle and scale ranges and
``max_matches`` (random smooth images, the template cut from them), prints the
estimate, the median time of ``find_rotated`` over ``--repeat`` runs and the
seconds per unit. A good estimate keeps the last column within a small
factor across the rows; the service's default limit (MATCHER_MAX_TURN_WORK) times
the largest seconds per unit is the longest search it lets through.

    .venv/bin/python bench/bench_turn_cost.py --repeat 1
"""

import argparse
import statistics
import time

import cv2
import numpy as np

from matcher.search.rotated import PreparedTemplate, find_rotated, search_cost
from service.config import SETTINGS

LIMIT = next(s.default for s in SETTINGS if s.name == "MATCHER_MAX_TURN_WORK")

CASES = [  # (H, W, h, w, angles, scales, max_matches)
    (480, 640, 200, 200, (-180, 180), (1, 1), 1),
    (480, 640, 60, 60, (-180, 180), (1, 1), 1),
    (480, 640, 20, 20, (-180, 180), (1, 1), 1),
    (1000, 1000, 20, 20, (-180, 180), (1, 1), 1),
    (1000, 1000, 20, 20, (-30, 30), (1, 1), 1),
    (1000, 1000, 60, 60, (-180, 180), (1, 1), 1),
    (2000, 2000, 30, 30, (-180, 180), (1, 1), 1),
    (480, 640, 60, 60, (-180, 180), (0.8, 1.2), 1),
    (2000, 2000, 100, 100, (-180, 180), (1, 1), 1),
    (2000, 2000, 800, 800, (-180, 180), (1, 1), 1),
    (1000, 1000, 400, 400, (-180, 180), (1, 1), 20),
    (480, 640, 60, 60, (-180, 180), (1, 1), 100),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    warm = cv2.GaussianBlur(rng.random((240, 320)).astype(np.float32), (0, 0), 2)
    find_rotated(warm, PreparedTemplate(warm[80:140, 100:160].copy()))  # first-call costs (OpenCV's threads) untimed
    rates = []
    print(f"{'image':>10} {'template':>9} {'angles':>12} {'scales':>10} {'max':>4} {'estimate':>10} {'time s':>7} "
          f"{'s/unit':>8}")
    for H, W, h, w, angles, scales, max_matches in CASES:
        image = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 2)
        template = image[H // 3:H // 3 + h, W // 3:W // 3 + w].copy()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            find_rotated(image, PreparedTemplate(template, angles=angles, scales=scales), max_matches=max_matches)
            times.append(time.perf_counter() - start)
        cost = search_cost((H, W), (h, w), angles=angles, scales=scales, max_matches=max_matches)
        seconds = statistics.median(times)
        rates.append(seconds / cost)
        print(f"{H:>4}x{W:<5} {h:>4}x{w:<4} {str(angles):>12} {str(scales):>10} {max_matches:>4} {cost:>10.3g} "
              f"{seconds:>7.2f} {seconds / cost:>8.2g}")
    print(f"seconds per unit: {min(rates):.2g} to {max(rates):.2g}; at the default limit {LIMIT:.3g}: "
          f"{LIMIT * min(rates):.1f} to {LIMIT * max(rates):.1f} s")


if __name__ == "__main__":
    main()
