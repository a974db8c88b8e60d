#!/usr/bin/env python
"""How matcher.match_template's cost grows with the image and the template size.

Two sweeps, ncc, precision "fast", uint8 inputs, each point timed against
cv2.matchTemplate(TM_CCOEFF_NORMED) in the same process, interleaved (the
helpers of bench_engine.py: same scenes, same round-robin timing):

1. image size 512, 1024, 2048, 4096, 8192 (16384 with ``--max-scene 16384``),
   square, with a fixed 64x64 template;
2. template size 8, 16, ..., 1024 on a fixed 2048x2048 scene (plus
   ``matcher.find(..., pyramid=True)`` for templates >= 64).

For every point: median wall time, time per output pixel (ns/px), the
algorithm matcher.choose_algorithm picks (direct or fft, with the
next_fast_len FFT grid), and the log-log slope of time against size from the
previous point. A segment where ns/px grows by more than 1.5x is flagged as a
bend (arrays falling out of cache, awkward FFT sizes, the direct/FFT switch).

Run from the repository root:

    .venv/bin/python bench/bench_scaling.py --quick        # < 1 minute
    .venv/bin/python bench/bench_scaling.py --json scaling.json

See "Scaling benchmark" in bench/README.md.
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

_BENCH = os.path.dirname(os.path.abspath(__file__))
if _BENCH not in sys.path:
    sys.path.insert(0, _BENCH)

import bench_engine as be  # noqa: E402  (also puts the repository root on sys.path)

import cv2  # noqa: E402
import scipy.fft as sfft  # noqa: E402

import matcher  # noqa: E402

METHOD = "ncc"
PRECISION = "fast"
DTYPE = "uint8"
SCENES = (512, 1024, 2048, 4096, 8192, 16384)
TEMPLATES = (8, 16, 32, 64, 128, 256, 512, 1024)
SWEEP1_TEMPLATE = 64
SWEEP2_SCENE = 2048
PYRAMID_MIN_TEMPLATE = 64
BEND_FACTOR = 1.5
# Peak resident memory of one ncc call, bytes per scene pixel: matcher works in float64 and holds
# about a dozen scene-sized arrays at its peak (measured with bench_engine.py --memory: 1670 MiB at
# 4096^2 with a 64^2 template, i.e. ~104 B/px), OpenCV ~20 B/px, plus the scene itself.
_PEAK_BYTES_PER_PX = 104 + 20 + 1
_MEMORY_MARGIN = 0.85  # use at most this share of MemAvailable


# --------------------------------------------------------------------------- helpers


def mem_available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fits_in_memory(size):
    """(fits, needed bytes, available bytes) for a size x size scene."""
    need = _PEAK_BYTES_PER_PX * size * size
    avail = mem_available_bytes()
    return (avail is None or need <= _MEMORY_MARGIN * avail), need, avail


def algorithm_note(scene, tsize):
    algo = matcher.choose_algorithm((scene, scene), (tsize, tsize))
    if algo == "fft":
        return algo, f"fft/{sfft.next_fast_len(scene, real=True)}"
    return algo, "direct"


def contenders(with_pyramid):
    out = [("ours", lambda i, t: matcher.match_template(i, t, METHOD, precision=PRECISION)),
           ("opencv", lambda i, t: cv2.matchTemplate(i, t, cv2.TM_CCOEFF_NORMED))]
    if with_pyramid:
        out.append(("pyramid", lambda i, t: matcher.find(i, t, METHOD, precision=PRECISION, pyramid=True)))
    return out


def measure_point(scene_size, tsize, image, args, with_pyramid, tmpdir):
    y, x = be.template_position(scene_size, tsize, args.seed)
    template = image[y : y + tsize, x : x + tsize].copy()
    stats = be.time_interleaved(contenders(with_pyramid), image, template, args.repeats, args.warmup)
    out_px = (scene_size - tsize + 1) ** 2
    algo, note = algorithm_note(scene_size, tsize)
    row = {"scene": scene_size, "template": tsize, "out_px": out_px, "algorithm": algo, "algorithm_note": note,
           "template_yx": [y, x], "repeats": args.repeats}
    for name in ("ours", "opencv", "pyramid"):
        if name in stats:
            med = statistics.median(stats[name]["wall"])
            row[f"{name}_s"] = med
            row[f"{name}_ns_px"] = med / out_px * 1e9
            row[f"{name}_wall_all"] = stats[name]["wall"]
            row[f"{name}_cpu_per_wall"] = sum(stats[name]["cpu"]) / sum(stats[name]["wall"])
    row["ratio_opencv"] = row["ours_s"] / row["opencv_s"]
    del stats
    if args.memory:
        mem = be.measure_memory(["ours:" + PRECISION, "opencv"], METHOD, image, template, tmpdir)
        row["ours_mib"] = None if mem["ours:" + PRECISION] is None else mem["ours:" + PRECISION]["peak_increase_mib"]
        row["opencv_mib"] = None if mem["opencv"] is None else mem["opencv"]["peak_increase_mib"]
    return row


# --------------------------------------------------------------------------- table


def columns(memory, pyramid):
    cols = [("scene", 6), ("tmpl", 5), ("algo", 10), ("ours s", 9), ("opencv s", 9), ("ours/cv", 7),
            ("ours ns/px", 10), ("cv ns/px", 9), ("slope", 6), ("cv slope", 8)]
    if pyramid:
        cols += [("pyr s", 8)]
    if memory:
        cols += [("ours MiB", 8), ("cv MiB", 7)]
    cols += [("bend", 12)]
    return cols


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def format_row(row, cols):
    vals = {
        "scene": str(row["scene"]), "tmpl": str(row["template"]), "algo": row["algorithm_note"],
        "ours s": fmt(row["ours_s"], ".4f"), "opencv s": fmt(row["opencv_s"], ".4f"),
        "ours/cv": fmt(row["ratio_opencv"], ".2f"),
        "ours ns/px": fmt(row["ours_ns_px"], ".2f"), "cv ns/px": fmt(row["opencv_ns_px"], ".2f"),
        "slope": fmt(row.get("slope_ours"), ".2f"), "cv slope": fmt(row.get("slope_opencv"), ".2f"),
        "pyr s": fmt(row.get("pyramid_s"), ".4f"),
        "ours MiB": fmt(row.get("ours_mib"), ".0f"), "cv MiB": fmt(row.get("opencv_mib"), ".0f"),
        "bend": ",".join(row.get("bends", [])) or "",
    }
    return "  ".join(vals[name].rjust(width) for name, width in cols)


def annotate_segment(prev, row, key):
    """Log-log slopes of time against the swept size (the side), and bend flags, from prev to row."""
    if prev is None:
        return
    x0, x1 = prev[key], row[key]
    row["bends"] = []
    for name in ("ours", "opencv"):
        t0, t1 = prev[f"{name}_s"], row[f"{name}_s"]
        row[f"slope_{name}"] = math.log(t1 / t0) / math.log(x1 / x0)
        jump = row[f"{name}_ns_px"] / prev[f"{name}_ns_px"]
        row[f"ns_px_jump_{name}"] = jump
        if jump > BEND_FACTOR:
            row["bends"].append(("cv" if name == "opencv" else name) + f"x{jump:.1f}")
    if prev["algorithm"] != row["algorithm"]:
        row["bends"].append(f"{prev['algorithm']}->{row['algorithm']}")


def bend_lines(rows, key, label):
    out = []
    for prev, row in zip(rows, rows[1:]):
        for name in ("ours", "opencv"):
            jump = row.get(f"ns_px_jump_{name}")
            if jump is not None and jump > BEND_FACTOR:
                out.append(f"  {label} {prev[key]} -> {row[key]}: {name} ns/px {prev[f'{name}_ns_px']:.2f} -> "
                           f"{row[f'{name}_ns_px']:.2f} (x{jump:.2f}, slope {row[f'slope_{name}']:.2f}); "
                           f"algorithm {prev['algorithm_note']} -> {row['algorithm_note']}")
        if prev["algorithm"] != row["algorithm"]:
            out.append(f"  {label} {prev[key]} -> {row[key]}: choose_algorithm switches "
                       f"{prev['algorithm']} -> {row['algorithm']}")
    return out or [f"  no segment where ns/px grows by more than {BEND_FACTOR}x"]


# --------------------------------------------------------------------------- main


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per contender per point (default 3)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed calls per contender per point (default 0)")
    ap.add_argument("--max-scene", type=int, default=8192, choices=SCENES,
                    help="largest scene of sweep 1 (default 8192; 16384 needs ~30 GB, skipped if it does not fit)")
    ap.add_argument("--quick", action="store_true", help="scenes up to 2048, templates up to 128 (< 1 minute)")
    ap.add_argument("--sweep", choices=("both", "image", "template"), default="both", help="which sweep(s) to run")
    ap.add_argument("--no-pyramid", dest="pyramid", action="store_false",
                    help=f"do not time find(..., pyramid=True) in sweep 2 (templates >= {PYRAMID_MIN_TEMPLATE})")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS increase per call (one subprocess each)")
    ap.add_argument("--json", metavar="OUT", help="write every point (raw timings too) and the environment as JSON")
    ap.add_argument("--seed", type=int, default=0, help="seed of the scene noise and template positions (default 0)")
    ap.add_argument("--noise", type=float, default=2.0, help="std of the scene noise, grey levels (default 2)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    max_scene = min(args.max_scene, 2048) if args.quick else args.max_scene
    args.scenes = [s for s in SCENES if s <= max_scene]
    args.templates = [t for t in TEMPLATES if t <= (128 if args.quick else TEMPLATES[-1])]
    return args


def run_sweep(title, points, key, label, args, cols, header, results, tmpdir):
    print(f"\n## {title}")
    head = "  ".join(name.rjust(width) for name, width in cols)
    print(head)
    print("-" * len(head), flush=True)
    rows, image, image_key = [], None, None
    for scene_size, tsize in points:
        fits, need, avail = fits_in_memory(scene_size)
        if not fits:
            print(f"  skipped {scene_size}^2: needs ~{need / 2**30:.1f} GiB at its peak "
                  f"({_PEAK_BYTES_PER_PX} B/px), {avail / 2**30:.1f} GiB available", flush=True)
            results["skipped"].append({"scene": scene_size, "template": tsize, "need_bytes": need, "available_bytes": avail})
            continue
        if image_key != scene_size:
            image = None
            image = be.make_scene(scene_size, DTYPE, args.seed, args.noise)
            image_key = scene_size
        t0 = time.perf_counter()
        row = measure_point(scene_size, tsize, image, args, args.pyramid and key == "template"
                            and tsize >= PYRAMID_MIN_TEMPLATE, tmpdir)
        annotate_segment(rows[-1] if rows else None, row, key)
        rows.append(row)
        print(format_row(row, cols), flush=True)
        print(f"[{title.split(':')[0]}] {scene_size}^2 t={tsize}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        results[key].append(row)
        if args.json:
            write_json(args.json, header, results, done=False)
    print(f"where the curve bends ({label}; ns/px jump > {BEND_FACTOR}x or algorithm switch):")
    for line in bend_lines(rows, key, label):
        print(line)
    sys.stdout.flush()
    return rows


def write_json(path, header, results, done):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"environment": header, "complete": done, **results}, f, indent=1)
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    header = be.header_lines()
    header.append(f"scaling: method {METHOD}, precision {PRECISION}, dtype {DTYPE}, repeats {args.repeats}, "
                  f"warmup {args.warmup}, seed {args.seed}, noise {args.noise}"
                  + (f"; sweep 1: scenes {args.scenes} with a {SWEEP1_TEMPLATE}^2 template"
                     if args.sweep in ("both", "image") else "")
                  + (f"; sweep 2: templates {args.templates} on {SWEEP2_SCENE}^2"
                     if args.sweep in ("both", "template") else ""))
    avail = mem_available_bytes()
    if avail is not None:
        header.append(f"MemAvailable at start: {avail / 2**30:.1f} GiB")
    for line in header:
        print("# " + line)
    results = {"scene": [], "template": [], "skipped": []}
    tmpdir = tempfile.mkdtemp(prefix="bench_scaling_") if args.memory else None
    start = time.perf_counter()
    # Untimed warm-up: lazy imports, thread pools, OpenCV's first call.
    small = be.make_scene(512, DTYPE, args.seed, args.noise)
    for _, fn in contenders(True):
        fn(small, small[100:164, 100:164].copy())
    if args.sweep in ("both", "image"):
        run_sweep(f"sweep 1: image size, {SWEEP1_TEMPLATE}^2 template", [(s, SWEEP1_TEMPLATE) for s in args.scenes],
                  "scene", "scene", args, columns(args.memory, False), header, results, tmpdir)
    if args.sweep in ("both", "template"):
        run_sweep(f"sweep 2: template size, {SWEEP2_SCENE}^2 scene", [(SWEEP2_SCENE, t) for t in args.templates],
                  "template", "template", args, columns(args.memory, args.pyramid), header, results, tmpdir)
    be.print_total(start)
    if args.json:
        write_json(args.json, header, results, done=True)
        print(f"points written to {args.json}", file=sys.stderr)
    be.remove_scratch(tmpdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
