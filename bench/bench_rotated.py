"""Rotated and scaled search: accuracy on warped photographs, and time against OpenCV loops.

Accuracy: ``--cases`` templates cut from scikit-image photographs through a
known similarity (centre, angle over the full circle, scale in ``--scales``),
with noise and a gain/offset change; prints the mean and worst centre, angle
and scale errors of :func:`matcher.search.rotated.find_rotated` (truth by
construction).

Time, side by side in one process (interleaved; medians of ``--repeat``
calls, ``--runs`` times for the spread): one ``find_rotated`` call (and one
with a reused :class:`PreparedTemplate`), in units of one unrotated
``cv2.matchTemplate`` (TM_CCOEFF_NORMED, full resolution) of the same pair,
for the full circle, 60 and 20 degree ranges and the full circle with scales
0.9-1.1, with where the time goes (coarse level, finer levels, full-resolution
refinement); and against a plain loop of masked ``cv2.matchTemplate`` over the
same angle grid at full resolution (what people write by hand: angle step =
our fine step).

    PYTHONPATH=. .venv/bin/python bench/bench_rotated.py --cases 100
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


def _phases():
    """Wrap the search's three phases to add up their wall time: (totals dict, undo)."""
    import matcher.search.rotated as rotated

    totals = {"coarse": 0.0, "finer": 0.0, "refine": 0.0}
    names = {"coarse": "coarse_candidates", "finer": "_finer", "refine": "refine_pose"}
    saved = {key: getattr(rotated, name) for key, name in names.items()}

    def timed(key, f):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                totals[key] += time.perf_counter() - t
        return run

    for key, name in names.items():
        setattr(rotated, name, timed(key, saved[key]))

    def undo():
        for key, name in names.items():
            setattr(rotated, name, saved[key])
    return totals, undo


def timing(repeat, runs, angles, scales, part, angle=37.0):
    """Median times over ``repeat`` interleaved calls, ``runs`` times: the ratio's spread over the runs."""
    image = cv2.resize(photos()[0], (640, 480))
    cx, cy = 320.0, 240.0
    template = cut(image, (cx, cy), angle, 1.0, (part, part))
    prepared = PreparedTemplate(template, angles=angles, scales=scales)
    find_rotated(image, prepared)  # warm up (and the prepared template's plan for this image size)
    med = statistics.median
    ratios, ratios_prepared, cpu_ratios, lines = [], [], [], []
    for _ in range(runs):
        ours, ours_prepared, plain, ours_cpu, plain_cpu = [], [], [], [], []
        for _ in range(repeat):
            t = time.perf_counter()
            find_rotated(image, template, angles=angles, scales=scales)
            ours.append(time.perf_counter() - t)
            t, c = time.perf_counter(), time.process_time()
            find_rotated(image, prepared)
            ours_prepared.append(time.perf_counter() - t)
            ours_cpu.append(time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
            plain.append(time.perf_counter() - t)
            plain_cpu.append(time.process_time() - c)
        ratios.append(med(ours) / med(plain))
        ratios_prepared.append(med(ours_prepared) / med(plain))
        cpu_ratios.append(med(ours_cpu) / med(plain_cpu))
        lines.append(f"find_rotated {med(ours) * 1000:.0f} ms ({med(ours_prepared) * 1000:.0f} ms prepared), "
                     f"cv2.matchTemplate {med(plain) * 1000:.1f} ms")
    print(f"time, 640x480 image, {part}x{part} part turned {angle} degrees, angles {angles}, scales {scales} "
          f"(medians of {repeat} interleaved calls; {runs} runs):")
    for line in lines:
        print(f"  {line}")
    spread = lambda v: f"{med(v):.1f} ({min(v):.1f}-{max(v):.1f})"  # noqa: E731
    print(f"  find_rotated = {spread(ratios)} unrotated searches; with a prepared template "
          f"{spread(ratios_prepared)}; in CPU time (prepared) {spread(cpu_ratios)}")
    totals, undo = _phases()
    try:
        t = time.perf_counter()
        for _ in range(repeat):
            find_rotated(image, prepared)
        total = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(repeat):
            cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
        unit = (time.perf_counter() - t) / repeat
    finally:
        undo()
    parts = ", ".join(f"{k} {v / repeat / unit:.1f}" for k, v in totals.items())
    rest = (total - sum(totals.values())) / repeat / unit
    print(f"  where it goes (prepared, in unrotated searches): {parts}, the rest {rest:.1f}")
    return med(ratios_prepared)


def opencv_loop_ratio(angles, scales, part):
    """find_rotated against a plain loop of masked cv2.matchTemplate over the same grid (extrapolated from a sample)."""
    image = cv2.resize(photos()[0], (640, 480))
    template = cut(image, (320.0, 240.0), 37.0, 1.0, (part, part))
    a_step, s_step = auto_steps(part, part)
    grid_a = np.arange(angles[0], angles[1], a_step)
    grid_s = np.arange(scales[0], scales[1] + 1e-9, s_step) if scales[1] > scales[0] else [scales[0]]
    sample = grid_a[:: max(1, len(grid_a) // 60)]
    t = time.perf_counter()
    opencv_loop(image, template, sample, grid_s)
    loop = (time.perf_counter() - t) / (len(sample) * len(grid_s)) * len(grid_a) * len(grid_s)
    t = time.perf_counter()
    find_rotated(image, template, angles=angles, scales=scales)
    ours = time.perf_counter() - t
    print(f"  loop of masked cv2.matchTemplate over the same grid ({len(grid_a) * len(grid_s)} poses, "
          f"extrapolated from {len(sample) * len(grid_s)}) ~{loop * 1000:.0f} ms: "
          f"find_rotated = {ours / loop:.4f}x of it")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeat", type=int, default=7, help="interleaved calls per run (medians)")
    p.add_argument("--runs", type=int, default=3, help="runs: the spread of the ratios")
    p.add_argument("--part", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.cases:
        accuracy(args.cases, (0.9, 1.1), args.size, args.seed)
    full = timing(args.repeat, args.runs, (-180.0, 180.0), (1.0, 1.0), args.part)
    opencv_loop_ratio((-180.0, 180.0), (1.0, 1.0), args.part)
    for span in (60.0, 20.0):
        part = timing(args.repeat, args.runs, (-span / 2, span / 2), (1.0, 1.0), args.part, angle=7.0)
        print(f"  {span:.0f} degrees cost {part / full:.2f} of the full circle (prepared, medians)")
    timing(args.repeat, args.runs, (-180.0, 180.0), (0.9, 1.1), args.part)


if __name__ == "__main__":
    main()
