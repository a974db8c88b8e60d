#!/usr/bin/env python
"""Throughput of ``matcher batch`` against a plain Python loop of ``find`` calls.

A few hundred real images are generated in a temporary directory: random
crops of scikit-image's photographs (camera, astronaut, coffee, chelsea,
coins, rocket, immunohistochemistry, motorcycle's left view), resized by a
random factor, converted to gray and written as PNG, each with the template
(a 48 x 48 patch of astronaut's face) pasted at a random position. Then:

- ``loop``: ``for path in paths: find(load_image(path).pixels, template)``
  in this process, one image at a time (the engine's own bands and FFTs may
  still use several cores);
- ``batch --scheduler S``: the command line, ``matcher.cli.main(["batch",
  ...])``, for each requested local scheduler, wall time including walking the
  directory, starting the pool and writing the JSONL file.

Every run must find the template at its planted position in every image
(checked; the ``correct`` column). Images per second, the ratio to the loop
and the CPU seconds each contender used (this process and its children: on a
shared machine the wall time also measures the other jobs, the CPU time
mostly not) go to stdout; progress to stderr. ``--sizes`` runs the whole
comparison for each image size (small images, where one image cannot fill the
cores, and large ones); ``--angles`` makes it a turned search (``find(...,
angles=...)`` in the loop, ``--angles`` for the batch, which prepares the
template once). Reproducible from ``--seed``.

Run from the repository root:

    .venv/bin/python bench/bench_batch.py                  # 300 images, threads and processes
    .venv/bin/python bench/bench_batch.py --sizes 240x180,1280x960 --repeats 5
    .venv/bin/python bench/bench_batch.py --images 40 --angles -10,10

Needs scikit-image (requirements-test.txt), dask and tqdm (matcher's batch extra).
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from matcher.cli import main as cli_main  # noqa: E402
from matcher.search.find import find  # noqa: E402
from matcher.io import load_image  # noqa: E402

PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "coins", "rocket", "immunohistochemistry", "stereo_motorcycle")


def photos():
    """Gray uint8 versions of a few skimage.data photographs."""
    from skimage import data

    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
            img = img[0]
        if img.ndim == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
        out.append(img.astype(np.uint8))
    return out


def generate(directory, count, size, seed):
    """Write ``count`` PNGs to ``directory`` and the template; return (template path, {path: (x, y)})."""
    rng = np.random.default_rng(seed)
    sources = photos()
    astronaut = sources[PHOTOS.index("astronaut")]
    template = np.ascontiguousarray(astronaut[95:143, 200:248])  # 48 x 48: the face
    template_path = os.path.join(directory, "template.png")
    cv2.imwrite(template_path, template)
    width, height = size
    truth = {}
    images = os.path.join(directory, "images")
    for i in range(count):
        src = sources[i % len(sources)]
        scale = rng.uniform(0.6, 1.3)
        resized = cv2.resize(src, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if resized.shape[0] < height or resized.shape[1] < width:
            resized = cv2.resize(src, (max(width, resized.shape[1]), max(height, resized.shape[0])))
        y0 = int(rng.integers(0, resized.shape[0] - height + 1))
        x0 = int(rng.integers(0, resized.shape[1] - width + 1))
        img = resized[y0:y0 + height, x0:x0 + width].copy()
        x, y = int(rng.integers(0, width - 48 + 1)), int(rng.integers(0, height - 48 + 1))
        img[y:y + 48, x:x + 48] = template
        sub = os.path.join(images, f"{i // 100:02d}")
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"img{i:05d}.png")
        cv2.imwrite(path, img)
        truth[os.path.abspath(path)] = (x, y)
    return template_path, images, truth


def cpu_seconds():
    """CPU time of this process and of its children that have ended (worker processes, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def found_at(x, y, xy, turned):
    """The planted position, exactly (to the nearest pixel for a turned search's refined box)."""
    return (round(x), round(y)) == xy if turned else (x, y) == xy


def run_loop(template_path, truth, angles):
    template = load_image(template_path).pixels
    kwargs = {"angles": angles} if angles else {}
    start = time.perf_counter()
    correct = 0
    for path, xy in truth.items():
        (m,) = find(load_image(path, color="gray").pixels, template, **kwargs)
        correct += found_at(m.x, m.y, xy, bool(angles))
    return time.perf_counter() - start, correct


def run_batch(template_path, images, truth, scheduler, workers, out, angles):
    argv = ["batch", template_path, images, "--out", out, "--scheduler", scheduler, "--no-progress"]
    if workers:
        argv += ["--workers", str(workers)]
    if angles:
        argv += ["--angles", f"{angles[0]},{angles[1]}"]
    start = time.perf_counter()
    code = cli_main(argv)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"matcher batch exited with {code}")
    correct = 0
    with open(out) as f:
        for line in f:
            rec = json.loads(line)
            m = rec["matches"][0]
            correct += found_at(m["x"], m["y"], truth[os.path.abspath(rec["path"])], bool(angles))
    return elapsed, correct


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=300, help="number of images (default 300)")
    p.add_argument("--sizes", "--size", default="480x360",
                   help="image sizes WxH, comma-separated: one comparison each (default 480x360)")
    p.add_argument("--schedulers", default="threads,processes", help="comma-separated (default threads,processes)")
    p.add_argument("--workers", type=int, default=None, help="--workers for batch (default: one per core)")
    p.add_argument("--angles", default=None, help="START,STOP: a turned search (default: none)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")]
    angles = tuple(float(v) for v in args.angles.split(",")) if args.angles else None
    ok = True
    print(f"# {os.cpu_count()} cores; load average at start " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    for size in sizes:
        ok &= compare(args, size, angles)
    print(f"# load average at the end " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0 if ok else 1


def compare(args, size, angles):
    """One size: every contender, interleaved rounds; print the table; True if every image was found."""
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        print(f"generating {args.images} images of {size[0]}x{size[1]} in {tmp} ...", file=sys.stderr)
        template_path, images, truth = generate(tmp, args.images, size, args.seed)
        contenders = [("loop (find per image)", lambda: run_loop(template_path, truth, angles))]
        for s in args.schedulers.split(","):
            out = os.path.join(tmp, f"out_{s}.jsonl")
            contenders.append((f"batch --scheduler {s}", lambda s=s, out=out: run_batch(
                template_path, images, truth, s, args.workers, out, angles)))
        times, cpus, correct = {}, {}, {}
        for r in range(args.repeats):  # interleaved rounds: a burst of load hits every contender alike
            for name, fn in contenders:
                c0 = cpu_seconds()
                elapsed, found = fn()
                cpus.setdefault(name, []).append(cpu_seconds() - c0)
                print(f"  round {r + 1}: {name}: {elapsed:.2f} s, {found}/{len(truth)} correct", file=sys.stderr)
                times.setdefault(name, []).append(elapsed)
                correct[name] = min(correct.get(name, found), found)
    n = len(truth)
    loop_best = min(times[contenders[0][0]])
    loop_median = float(np.median(times[contenders[0][0]]))
    turned = f", angles {angles[0]:g}..{angles[1]:g}" if angles else ""
    print(f"{n} images {size[0]}x{size[1]} gray PNG, template 48x48, ncc{turned}; {os.cpu_count()} cores; "
          f"{args.repeats} interleaved rounds; images/s of the best and the median round")
    print(f"{'contender':<28} {'best s':>7} {'images/s':>9} {'vs loop':>8} {'median s':>9} {'images/s':>9} "
          f"{'vs loop':>8} {'cpu s':>6} {'correct':>9}")
    for name, ts in times.items():
        best, median = min(ts), float(np.median(ts))
        print(f"{name:<28} {best:7.2f} {n / best:9.1f} {loop_best / best:7.2f}x {median:9.2f} {n / median:9.1f} "
              f"{loop_median / median:7.2f}x {float(np.median(cpus[name])):6.2f} {correct[name]:>5}/{n}")
    return all(c == n for c in correct.values())


if __name__ == "__main__":
    raise SystemExit(main())
