#!/usr/bin/env python
"""The grid of issue 12: matcher against OpenCV on every cell people use, side by side.

Groups of cells, each timed interleaved with its OpenCV counterpart in this
process (``bench_engine.time_interleaved``: round-robin, the order rotated
every round, medians):

- ``fast``: ``match_template(image, template, method)`` (precision "fast")
  against ``cv2.matchTemplate``, frames 320x240, 640x480, 1280x720, 2048x2048
  x templates 8, 16, 32, 64, 128 px x uint8 and float32 x ncc, ssd,
  ccorr_normed;
- ``masked``: ncc and ccorr_normed with a circular mask given as bool, as
  0/255 uint8 and as float weights (a soft-edged disc), against OpenCV's
  masked ``matchTemplate`` (uint8 masks for the first two, a float32 mask for
  the weights), uint8 frames;
- ``exact``: ``precision="exact"`` ncc on uint8 and float32 frames, against
  OpenCV's float32 ``matchTemplate`` (OpenCV is not exact: the goal is to
  cost little more than its fast path);
- ``find``: ``find(image, template)`` against ``cv2.matchTemplate`` +
  ``cv2.minMaxLoc`` on small frames (64x64 with 15 px, 320x240 with 8-32 px,
  640x480 with 32 px, 800x100 stereo strips with 15 px), and 300 row
  searches of a strip with ``region=`` against 300 matchTemplate calls on
  the row's slice.

Every cell's line: the group, frame, template, dtype, method (and mask), our
median, OpenCV's median, their ratio (< 1: we are faster) and the spread of
the per-round ratios (min-max). Then per group: the geometric mean of the
ratios and the worst cell; and the worst cell over all. Scenes: camera()
resized to the frame (INTER_CUBIC) plus seeded noise, as in bench_engine.py;
the template is cut from the scene.

Each timed call follows ``gc.collect()``, as a pipeline that does other work
between frames leaves the machine (caches cold, the second core idle);
``--warm`` times each call right after an untimed one of the same contender,
as in a tight loop.

Run from the repository root:

    .venv/bin/python bench/bench_grid.py --quick          # a subset, a minute or two
    .venv/bin/python bench/bench_grid.py --repeat 7       # the whole grid
    .venv/bin/python bench/bench_grid.py --groups find,masked
    .venv/bin/python bench/bench_grid.py --repeat 3 --warm  # a tight loop

The table goes to stdout, progress to stderr.
"""

import argparse
import os
import re
import statistics
import sys
import time

import cv2
import numpy as np
import skimage.data

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_engine as be  # noqa: E402  (also puts the repository root on sys.path)

from matcher import find, match_template  # noqa: E402

GROUPS = ("fast", "masked", "exact", "find")
FRAMES = ((320, 240), (640, 480), (1280, 720), (2048, 2048))  # width x height
TEMPLATES = (8, 16, 32, 64, 128)
DTYPES = ("uint8", "float32")
METHODS = ("ncc", "ssd", "ccorr_normed")
OPENCV = {"ncc": cv2.TM_CCOEFF_NORMED, "ssd": cv2.TM_SQDIFF, "ccorr_normed": cv2.TM_CCORR_NORMED}
MASKS = ("bool", "0/255", "weights")
MASKED_METHODS = ("ncc", "ccorr_normed")
FIND_CELLS = (((64, 64), 15), ((320, 240), 8), ((320, 240), 16), ((320, 240), 32), ((640, 480), 32),
              ((800, 100), 15))
ROW_SEARCHES = 300  # stereo: one find per row of an 800 x 100 strip, with region=
QUICK = {"frames": ((320, 240), (640, 480)), "templates": (16, 32), "find": FIND_CELLS[:2] + FIND_CELLS[-1:]}


def scene(frame, dtype, seed=0, noise=2.0):
    """camera() resized to ``frame`` (width, height) with INTER_CUBIC plus seeded noise, in ``dtype``."""
    width, height = frame
    base = cv2.resize(skimage.data.camera().astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    base += np.random.default_rng([seed, width, height]).normal(0.0, noise, base.shape).astype(np.float32)
    np.clip(base, 0.0, 255.0, out=base)
    return np.rint(base).astype(np.uint8) if dtype == "uint8" else base


def cut(image, size, seed=0):
    """A ``size`` x ``size`` template cut from ``image`` at a seeded position."""
    h, w = image.shape[:2]
    rng = np.random.default_rng([seed, w, h, size])
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return np.ascontiguousarray(image[y : y + size, x : x + size])


def disc(size, kind):
    """A circular mask of ``size`` px as ``kind``: (ours, OpenCV's)."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2) / (size / 2)
    if kind == "weights":  # 1 inside, a linear edge over the outer fifth, 0 outside
        w = np.clip((1.0 - r) / 0.2, 0.0, 1.0)
        return w, w.astype(np.float32)
    inside = r <= 1.0
    if kind == "bool":
        return inside, inside.astype(np.uint8)
    return inside.astype(np.uint8) * 255, inside.astype(np.uint8) * 255


def measure(ours, opencv, repeat, warm=False):
    """Interleaved medians: (ours s, opencv s, [per-round ratios]); ``warm``: each timed call right after an
    untimed one of the same contender, instead of after ``gc.collect()``."""
    stats = be.time_interleaved([("ours", lambda i, t: ours()), ("opencv", lambda i, t: opencv())], None, None,
                                repeat, warmup=1, warm=warm)
    a, b = stats["ours"]["wall"], stats["opencv"]["wall"]
    return statistics.median(a), statistics.median(b), [x / y for x, y in zip(a, b)]


def fast_cells(frames, templates, dtypes, methods):
    for frame in frames:
        for dtype in dtypes:
            image = scene(frame, dtype)
            for size in templates:
                template = cut(image, size)
                for method in methods:
                    yield (("fast", frame, size, dtype, method, ""),
                           lambda i=image, t=template, m=method: match_template(i, t, m),
                           lambda i=image, t=template, m=method: cv2.matchTemplate(i, t, OPENCV[m]))


def masked_cells(frames, templates):
    for frame in frames:
        image = scene(frame, "uint8")
        for size in templates:
            template = cut(image, size)
            for kind in MASKS:
                ours_mask, cv_mask = disc(size, kind)
                # OpenCV takes a float32 mask with a float32 template (and image)
                cv_image, cv_template = ((image.astype(np.float32), template.astype(np.float32))
                                         if kind == "weights" else (image, template))
                for method in MASKED_METHODS:
                    yield (("masked", frame, size, "uint8", method, kind),
                           lambda i=image, t=template, m=method, k=ours_mask: match_template(i, t, m, mask=k),
                           lambda i=cv_image, t=cv_template, m=method, k=cv_mask:
                               cv2.matchTemplate(i, t, OPENCV[m], mask=k))


def exact_cells(frames, templates, dtypes):
    for frame in frames:
        for dtype in dtypes:
            image = scene(frame, dtype)
            image32 = image.astype(np.float32)
            for size in templates:
                template = cut(image, size)
                template32 = template.astype(np.float32)
                yield (("exact", frame, size, dtype, "ncc", ""),
                       lambda i=image, t=template: match_template(i, t, "ncc", precision="exact"),
                       lambda i=image32, t=template32: cv2.matchTemplate(i, t, cv2.TM_CCOEFF_NORMED))


def _opencv_find(image, template):
    return cv2.minMaxLoc(cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED))


def find_cells(cells, rows=True):
    for frame, size in cells:
        image = scene(frame, "uint8")
        template = cut(image, size)
        yield (("find", frame, size, "uint8", "ncc", ""), lambda i=image, t=template: find(i, t),
               lambda i=image, t=template: _opencv_find(i, t))
    if rows:
        strip = scene((800, 100), "uint8")
        template = cut(strip, 15)
        starts = [r % (100 - 15 + 1) for r in range(ROW_SEARCHES)]

        def ours():
            for y in starts:
                find(strip, template, region=(0, y, 800, 15))

        def opencv():
            for y in starts:
                _opencv_find(strip[y : y + 15], template)

        yield ("find", (800, 100), 15, "uint8", "ncc", f"{ROW_SEARCHES} rows, region="), ours, opencv


GOALS = {"fast": "≤ 0.6×, no cell > 1×", "masked": "≤ 1.0×", "exact": "≤ 1.2×", "find": "64×64 frame ≤ 1.5×"}
"""Issue 12's goal for each group (ours / OpenCV)."""
BY_FRAME = ("fast", "exact")  # groups summarised per frame as well


def describe(cell):
    group, (w, h), size, dtype, method, extra = cell
    return f"{group:<7} {w:>4}x{h:<4} {size:>4} {dtype:<8} {method:<13} {extra:<16}"


def label(cell):
    """A cell in words, for the Markdown tables: ``320×240, 128 px, float32, ncc``."""
    _, (w, h), size, dtype, method, extra = cell
    return ", ".join(part for part in (f"{w}×{h}", f"{size} px", dtype, method, extra) if part)


def span(values, fmt="{:.2f}"):
    """``a-b`` for the smallest and largest of ``values`` (one value if they are equal when printed)."""
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def summary(runs, groups):
    """Per group (and per frame of ``BY_FRAME`` groups): one row each, ranges over the runs.

    ``runs`` is a list (one per run of the grid) of lists of ``(cell, ours s, opencv s)``.
    Returns dicts with ``name``, ``group``, ``cells``, ``geomeans`` (one per run), ``slower`` (cells over 1×,
    one count per run), ``worst`` (the cell whose median ratio over the runs is largest) and ``worst_ratios``.
    """
    ratio = [{cell: t_ours / t_cv for cell, t_ours, t_cv in rows} for rows in runs]
    cells = list(ratio[0])
    rows = []

    def row(name, group, members):
        if not members:
            return
        worst = max(members, key=lambda c: statistics.median(r[c] for r in ratio))
        rows.append({"name": name, "group": group, "cells": len(members),
                     "geomeans": [be.geomean([r[c] for c in members]) for r in ratio],
                     "slower": [sum(r[c] > 1.0 for c in members) for r in ratio],
                     "worst": worst, "worst_ratios": [r[worst] for r in ratio]})

    for group in groups:
        members = [c for c in cells if c[0] == group]
        row(group, group, members)
        if group in BY_FRAME:
            for frame in dict.fromkeys(c[1] for c in members):
                row(f"{group}, {frame[0]}×{frame[1]}", group, [c for c in members if c[1] == frame])
    row("all", "", cells)
    return rows


def provenance(runs, args, header):
    """What was measured, where and how: the lines that open both Markdown outputs."""
    warm = "each timed call right after an untimed one of the same contender (a tight loop)" if args.warm else \
        "each timed call after `gc.collect()` (a pipeline doing other work between frames)"
    return [f"Generated by `{command_line(args)}` on {time.strftime('%Y-%m-%d')}; {len(runs)} runs of the grid "
            f"in one process, {args.repeat} interleaved rounds per cell (medians), {warm}.",
            "", *[f"- {line}" for line in header], ""]


def markdown_summary(runs, groups, args, header):
    """The README block: :func:`provenance`, then one table row per :func:`summary` row."""
    lines = [*provenance(runs, args, header),
             f"| group | cells | ours / OpenCV, geo-mean over the cells ({len(runs)} runs) | cells slower than "
             "OpenCV | goal (issue 12) | worst cell: its ratio in each run |",
             "|---|---|---|---|---|---|"]
    for r in summary(runs, groups):
        goal = GOALS.get(r["name"], "")
        name = f"**{r['name']}**" if r["name"] == r["group"] or r["name"] == "all" else r["name"]
        lines.append(f"| {name} | {r['cells']} | {span(r['geomeans'])}× | {span(r['slower'], '{:d}')} | {goal} | "
                     f"{label(r['worst'])}: {span(r['worst_ratios'])}× |")
    return "\n".join(lines) + "\n"


def markdown_cells(runs, intro=()):
    """Every cell, after the lines ``intro``: the median over the runs of each contender's time and of the ratio,
    and the ratio's range."""
    lines = [*intro, "| group | cell | ours ms | OpenCV ms | ratio (median) | ratio over the runs |", "|---|---|---|---|---|---|"]
    for cell, *_ in runs[0]:
        times = [(t_ours, t_cv) for rows in runs for c, t_ours, t_cv in rows if c == cell]
        ratios = [a / b for a, b in times]
        lines.append(f"| {cell[0]} | {label(cell)} | {statistics.median(a for a, _ in times) * 1e3:.3f} | "
                     f"{statistics.median(b for _, b in times) * 1e3:.3f} | {statistics.median(ratios):.2f} | "
                     f"{span(ratios)} |")
    return "\n".join(lines) + "\n"


def replace_block(text, name, body):
    """``text`` with the lines between ``<!-- bench_grid NAME begin -->`` and ``<!-- bench_grid NAME end -->``
    replaced by ``body``; ValueError if the markers are missing."""
    begin, end = f"<!-- bench_grid {name} begin -->", f"<!-- bench_grid {name} end -->"
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"no block {begin} ... {end} to replace")
    return pattern.sub(lambda _: f"{begin}\n{body}{end}", text, count=1)


def command_line(args):
    return ".venv/bin/python bench/bench_grid.py " + " ".join(args.argv)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated subset of {','.join(GROUPS)}")
    p.add_argument("--quick", action="store_true",
                   help="frames 320x240 and 640x480, templates 16 and 32, three find cells and the row searches")
    p.add_argument("--repeat", type=int, default=5, help="interleaved timed rounds per cell (default 5)")
    p.add_argument("--runs", type=int, default=1,
                   help="run the whole grid this many times; the summary gives ranges over the runs (default 1)")
    p.add_argument("--warm", action="store_true",
                   help="time each call right after an untimed one of the same contender (a tight loop), "
                        "instead of after gc.collect() (a pipeline doing other work between calls)")
    p.add_argument("--readme", metavar="PATH",
                   help="rewrite the block between '<!-- bench_grid cold|warm begin -->' and its end marker in "
                        "PATH (the README's performance section) with the summary in Markdown")
    p.add_argument("--cells", metavar="PATH", help="write every cell as a Markdown table to PATH")
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    unknown = set(args.groups.split(",")) - set(GROUPS)
    if unknown:
        p.error(f"unknown groups {sorted(unknown)}; choose from {GROUPS}")
    if args.runs < 1 or args.repeat < 1:
        p.error(f"--runs and --repeat must be at least 1, got {args.runs} and {args.repeat}")
    if args.readme:
        try:
            replace_block(open(args.readme, encoding="utf-8").read(), "warm" if args.warm else "cold", "")
        except (OSError, ValueError) as e:
            p.error(f"--readme {args.readme}: {e}")
    return args


def grid(args, groups):
    """The cells to time, in order: generators of ``(cell, ours, opencv)``."""
    frames = QUICK["frames"] if args.quick else FRAMES
    templates = QUICK["templates"] if args.quick else TEMPLATES
    if "fast" in groups:
        yield from fast_cells(frames, templates, DTYPES, METHODS)
    if "masked" in groups:
        yield from masked_cells(frames[:3], [t for t in templates if t >= 16])
    if "exact" in groups:
        yield from exact_cells(frames, templates, DTYPES)
    if "find" in groups:
        yield from find_cells(QUICK["find"] if args.quick else FIND_CELLS)


def main(argv=None):
    args = parse_args(argv)
    groups = args.groups.split(",")
    header = be.header_lines()
    for line in header:
        print("# " + line)
    print(f"# {command_line(args)}: {args.repeat} interleaved rounds per cell, medians; ratio = ours / OpenCV "
          "(< 1: matcher is faster); spread: min-max of the per-round ratios")
    print(f"{'run':>3} {'group':<7} {'frame':<9} {'tmpl':>4} {'dtype':<8} {'method':<13} {'variant':<16} "
          f"{'ours ms':>9} {'opencv ms':>9} {'ratio':>6} {'spread':>11}")
    start = time.perf_counter()
    runs = []
    for run in range(1, args.runs + 1):
        rows = []
        for cell, ours, opencv in grid(args, groups):
            t_ours, t_cv, ratios = measure(ours, opencv, args.repeat, args.warm)
            rows.append((cell, t_ours, t_cv))
            print(f"{run:>3} {describe(cell)} {t_ours * 1e3:9.3f} {t_cv * 1e3:9.3f} {t_ours / t_cv:6.2f} "
                  f"{min(ratios):5.2f}-{max(ratios):<5.2f}", flush=True)
            print(f"  run {run}: {len(rows)} cells, {time.perf_counter() - start:.0f} s", file=sys.stderr)
        runs.append(rows)
    print()
    print(f"{'group':<16} {'cells':>5} {'geo-mean':>11} {'slower':>7}  worst cell (its ratio in each run)")
    for r in summary(runs, groups):
        print(f"{r['name']:<16} {r['cells']:>5} {span(r['geomeans']):>11} {span(r['slower'], '{:d}'):>7}  "
              f"{label(r['worst'])}: {span(r['worst_ratios'])}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# {time.perf_counter() - start:.0f} s; load average at the end: {load}")
    header = header + [f"load average at the end (1, 5, 15 min): {load}"]
    if args.cells:
        with open(args.cells, "w", encoding="utf-8") as f:
            f.write(markdown_cells(runs, provenance(runs, args, header)))
    if args.readme:
        with open(args.readme, encoding="utf-8") as f:
            text = f.read()
        text = replace_block(text, "warm" if args.warm else "cold", markdown_summary(runs, groups, args, header))
        with open(args.readme, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
