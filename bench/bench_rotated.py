"""Rotated and scaled search: accuracy on warped photographs, and time against OpenCV loops.

Accuracy: ``--cases`` templates cut from scikit-image photographs through a
known similarity (centre, angle over the full circle, scale in ``--scales``),
with noise and a gain/offset change; prints the mean and worst centre, angle
and scale errors of :func:`matcher.search.rotated.find_rotated` (truth by
construction).

Time, side by side in one process (medians of ``--repeat`` runs): one
``find_rotated`` call, against (a) a plain loop of masked
``cv2.matchTemplate`` over the same angle/scale grid at full resolution (what
people write by hand: angle step = our fine step) and (b) one unrotated
``cv2.matchTemplate`` of the same pair.

    .venv/bin/python bench/bench_rotated.py --cases 100
"""

import argparse
import math
import statistics
import time

import cv2
import numpy as np
import skimage.data
from skimage.color import rgb2gray

from matcher.search.rotated import PreparedTemplate, auto_steps, find_rotated, pose_matrix


def photos():
    return [skimage.data.camera().astype(np.float32),
            (rgb2gray(skimage.data.astronaut()) * 255).astype(np.float32),
            (rgb2gray(skimage.data.coffee()) * 255).astype(np.float32),
            (rgb2gray(skimage.data.chelsea()) * 255).astype(np.float32)]


def cut(image, center, angle, scale, shape):
    m = pose_matrix(center, angle, scale, shape)
    return cv2.warpAffine(image, m, (shape[1], shape[0]), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC)


def textured_centre(image, shape, rng, margin):
    h, w = image.shape
    while True:
        cy, cx = rng.uniform(margin, h - margin), rng.uniform(margin, w - margin)
        patch = image[int(cy) - shape[0] // 2: int(cy) + shape[0] // 2, int(cx) - shape[1] // 2: int(cx) + shape[1] // 2]
        if patch.std() > 25:
            return cx, cy


def accuracy(cases, scales, size, seed):
    rng = np.random.default_rng(seed)
    images = photos()
    errors, misses, seconds = [], 0, []
    for k in range(cases):
        image = images[k % len(images)]
        shape = (size, size)
        angle, scale = rng.uniform(-180, 180), rng.uniform(*scales)
        cx, cy = textured_centre(image, shape, rng, size * 0.75 * scales[1] + 2)
        template = 0.7 * cut(image, (cx, cy), angle, scale, shape) + 20
        template += rng.normal(0, 2.0, shape).astype(np.float32)
        start = time.perf_counter()
        (m,) = find_rotated(image, template, scales=scales)
        seconds.append(time.perf_counter() - start)
        e = (math.hypot(m.center[0] - cx, m.center[1] - cy), abs((m.angle - angle + 180) % 360 - 180),
             abs(m.scale - scale))
        if e[0] > 2.0:
            misses += 1
        else:
            errors.append(e)
    e = np.array(errors)
    print(f"accuracy over {cases} warped cases ({size}x{size} templates, full circle, scales {scales}; "
          f"{misses} found elsewhere, > 2 px off):")
    for i, name, unit in ((0, "centre", "px"), (1, "angle", "deg"), (2, "scale", "")):
        print(f"  {name:6s} mean {e[:, i].mean():.4f} {unit}, worst {e[:, i].max():.4f} {unit}")
    print(f"  time per search: median {statistics.median(seconds) * 1000:.0f} ms")


def opencv_loop(image, template, angles, scales):
    best = -2.0
    for s in scales:
        for a in angles:
            h, w = template.shape
            rad = math.radians(a)
            W = int(math.ceil(s * (abs(w * math.cos(rad)) + abs(h * math.sin(rad))))) | 1
            H = int(math.ceil(s * (abs(w * math.sin(rad)) + abs(h * math.cos(rad))))) | 1
            m = pose_matrix(((W - 1) / 2, (H - 1) / 2), a, s, (h, w))
            turned = cv2.warpAffine(template, m, (W, H))
            mask = (cv2.warpAffine(np.ones_like(template), m, (W, H)) >= 0.999).astype(np.uint8)
            if H > image.shape[0] or W > image.shape[1]:
                continue
            best = max(best, float(np.nanmax(cv2.matchTemplate(image, turned, cv2.TM_CCOEFF_NORMED, mask=mask))))
    return best


def timing(repeat, angles, scales, part):
    rng = np.random.default_rng(7)
    image = cv2.resize(photos()[0], (640, 480))
    cx, cy = 320.0, 240.0
    template = cut(image, (cx, cy), 37.0, 1.0, (part, part))
    a_step, s_step = auto_steps(part, part)
    grid_a = np.arange(angles[0], angles[1], a_step)
    grid_s = np.arange(scales[0], scales[1] + 1e-9, s_step) if scales[1] > scales[0] else [scales[0]]
    prepared = PreparedTemplate(template, angles=angles, scales=scales)
    ours, ours_prepared, plain = [], [], []
    for _ in range(repeat):
        t = time.perf_counter()
        find_rotated(image, template, angles=angles, scales=scales)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        find_rotated(image, prepared)
        ours_prepared.append(time.perf_counter() - t)
        t = time.perf_counter()
        cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
        plain.append(time.perf_counter() - t)
    t = time.perf_counter()
    opencv_loop(image, template, grid_a[:: max(1, len(grid_a) // 60)], grid_s)  # a sample of the grid
    sampled = time.perf_counter() - t
    n_sample = len(grid_a[:: max(1, len(grid_a) // 60)]) * len(grid_s)
    loop = sampled / n_sample * len(grid_a) * len(grid_s)
    med = statistics.median
    print(f"time, 640x480 image, {part}x{part} part, angles {angles}, scales {scales} "
          f"(medians of {repeat}; the OpenCV loop extrapolated from {n_sample} of its "
          f"{len(grid_a) * len(grid_s)} poses):")
    print(f"  find_rotated {med(ours) * 1000:.0f} ms ({med(ours_prepared) * 1000:.0f} ms with a prepared template)")
    print(f"  one unrotated cv2.matchTemplate {med(plain) * 1000:.1f} ms: find_rotated = "
          f"{med(ours) / med(plain):.1f} unrotated searches")
    print(f"  loop of masked cv2.matchTemplate over the same grid ~{loop * 1000:.0f} ms: "
          f"find_rotated = {med(ours) / loop:.3f}x of it")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--part", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    accuracy(args.cases, (0.9, 1.1), args.size, args.seed)
    timing(args.repeat, (-180.0, 180.0), (1.0, 1.0), args.part)


if __name__ == "__main__":
    main()
