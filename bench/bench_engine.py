#!/usr/bin/env python
"""Side-by-side timing of matcher.match_template against cv2.matchTemplate
(and skimage.feature.match_template for ncc), in one process, interleaved.

For every cell of the grid (scene size x template size x dtype x method) the
contenders -- matcher at each requested precision, OpenCV, scikit-image --
are called in turn, ``--repeats`` rounds, the order rotated each round, so
that a burst of load on a shared machine hits all of them alike. The table
reports medians and the ratio ours/OpenCV (> 1: matcher is slower).

The scene is a real photograph: skimage.data.camera() resized to the scene
size with cv2.INTER_CUBIC plus a little seeded Gaussian noise (float32 keeps
the noisy values, uint8 rounds them); the template is cut from the scene at
a seeded random position. Everything is reproducible from ``--seed``.

Run from the repository root:

    .venv/bin/python bench/bench_engine.py --quick

See bench/README.md for the columns and the other options. The table goes to
stdout, progress to stderr. Depends only on numpy, scipy, opencv and
scikit-image (requirements-test.txt).
"""

import argparse
import cProfile
import gc
import json
import math
import os
import shutil
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import numpy as np
import scipy
import scipy.fft
import skimage
from skimage.feature import match_template as sk_match_template

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)  # run from a checkout without installing

import matcher  # noqa: E402
from matcher import match_template  # noqa: E402

METHODS = ("ssd", "ssd_normed", "ccorr", "ccorr_normed", "ccoeff", "ncc")  # index = OpenCV TM_* constant
LOWER_IS_BETTER = ("ssd", "ssd_normed")
TIE_TOLERANCE = 1e-6  # of the score range: two best locations this close are a tie
FULL = {"scenes": "512,2048,4096", "templates": "8,32,128,512", "dtypes": "float32,uint8", "methods": "all"}
QUICK = {"scenes": "512,2048", "templates": "8,32,128", "dtypes": "float32", "methods": "ncc,ssd"}
DTYPES = {"float32": np.float32, "uint8": np.uint8}


# --------------------------------------------------------------------------- inputs


def make_scene(size, dtype, seed, noise):
    """camera() resized to size x size (INTER_CUBIC) plus seeded Gaussian noise, in ``dtype``."""
    base = skimage.data.camera().astype(np.float32)
    scene = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng([seed, size])
    scene += rng.normal(0.0, noise, scene.shape).astype(np.float32)
    np.clip(scene, 0.0, 255.0, out=scene)
    if dtype == "uint8":
        return np.rint(scene).astype(np.uint8)
    return scene


def template_position(scene_size, tsize, seed):
    rng = np.random.default_rng([seed, scene_size, tsize])
    return int(rng.integers(0, scene_size - tsize + 1)), int(rng.integers(0, scene_size - tsize + 1))


# --------------------------------------------------------------------------- contenders


def make_contenders(method, precisions, use_skimage):
    """[(name, callable(image, template))] for one method."""
    out = []
    for p in precisions:
        out.append((f"ours:{p}", lambda i, t, p=p: match_template(i, t, method, precision=p)))
    code = METHODS.index(method)
    out.append(("opencv", lambda i, t: cv2.matchTemplate(i, t, code)))
    if use_skimage and method == "ncc":
        out.append(("skimage", lambda i, t: sk_match_template(i, t, pad_input=False)))
    return out


def time_interleaved(contenders, image, template, repeats, warmup, warm=False):
    """Call each contender ``repeats`` times, round-robin, order rotated every round.

    Each timed call follows ``gc.collect()`` (cold: caches and idle cores as a
    pipeline doing other work between calls leaves them), or with ``warm``, an
    untimed call of the same contender (as in a tight loop).

    Returns {name: {"wall": [...], "cpu": [...], "result": last result}}.
    """
    stats = {name: {"wall": [], "cpu": [], "result": None} for name, _ in contenders}
    for _ in range(warmup):
        for name, fn in contenders:
            fn(image, template)
    n = len(contenders)
    for r in range(repeats):
        for k in range(n):
            name, fn = contenders[(r + k) % n]
            stats[name]["result"] = None  # free the previous map before timing
            if warm:
                fn(image, template)
            else:
                gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            result = fn(image, template)
            t1, c1 = time.perf_counter(), time.process_time()
            stats[name]["wall"].append(t1 - t0)
            stats[name]["cpu"].append(c1 - c0)
            stats[name]["result"] = result
    return stats


# --------------------------------------------------------------------------- checks


def best_location(scores, method):
    idx = scores.argmin() if method in LOWER_IS_BETTER else scores.argmax()
    y, x = np.unravel_index(idx, scores.shape)
    return int(y), int(x)


def nonflat_windows(image, tshape, out_shape):
    """True where the template-sized window is not constant (its min differs from its max)."""
    h, w = tshape
    kernel = np.ones((h, w), np.uint8)
    lo = cv2.erode(image, kernel, anchor=(0, 0))[: out_shape[0], : out_shape[1]]
    hi = cv2.dilate(image, kernel, anchor=(0, 0))[: out_shape[0], : out_shape[1]]
    return lo != hi


def check_cell(method, image, template, ours, ocv, sk):
    """Compare our map with OpenCV's (and skimage's): best location, max |difference| / range."""
    ours = np.asarray(ours, np.float64)
    ocv = np.asarray(ocv, np.float64)
    rng = float(np.ptp(ours)) or 1.0
    diff = np.abs(ours - ocv)
    res = {
        "loc_ours": best_location(ours, method),
        "loc_opencv": best_location(ocv, method),
        "diff_rel": float(diff.max()) / rng,
        "score_range": rng,
    }
    res["loc_equal"] = res["loc_ours"] == res["loc_opencv"]
    # A different pick is a tie when OpenCV's position scores, in our map, within our "fast"
    # tolerance (1e-6 of the range) of our best: e.g. ccorr over saturated, all-255 windows.
    gap = abs(float(ours[res["loc_ours"]]) - float(ours[res["loc_opencv"]]))
    res["loc_tie"] = not res["loc_equal"] and gap <= TIE_TOLERANCE * rng
    if method == "ncc":
        nonflat = nonflat_windows(image, template.shape, ours.shape)
        res["flat_windows"] = int(nonflat.size - nonflat.sum())
        res["nonflat_diff_rel"] = float(diff[nonflat].max()) / rng if nonflat.any() else 0.0
        if sk is not None:
            skd = np.abs(ours - np.asarray(sk, np.float64))
            res["loc_skimage"] = best_location(np.asarray(sk), method)
            res["loc_skimage_equal"] = res["loc_skimage"] == res["loc_ours"]
            res["skimage_diff_rel"] = float(skd.max()) / rng
            res["skimage_nonflat_diff_rel"] = float(skd[nonflat].max()) / rng if nonflat.any() else 0.0
    return res


# --------------------------------------------------------------------------- memory (one subprocess per call)


def _proc_status_kib(field):
    """A field of /proc/self/status in KiB (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kib():
    m = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return m // 1024 if sys.platform == "darwin" else m  # bytes on macOS, KiB on Linux


def memory_child(spec):
    """Runs in a fresh interpreter: load inputs, warm up, reset the peak, call once, report."""
    image = np.load(spec["image"])
    template = np.load(spec["template"])
    name = spec["contender"]
    fns = dict(make_contenders(spec["method"], [name.split(":")[1]] if name.startswith("ours:") else [], True))
    fn = fns[name]
    small = image[:64, :64]
    fn(small, small[:8, :8])  # load lazy modules, start thread pools
    gc.collect()
    # Linux >= 4.0: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS, so the
    # peak during the call minus the RSS just before it is exactly what the call added. (ru_maxrss
    # is not reset: it also keeps the peaks of exited threads.) Elsewhere, fall back to ru_maxrss,
    # whose earlier high-water mark (imports) may hide part of the call's peak.
    exact = False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        exact = _proc_status_kib("VmHWM") is not None
    except OSError:
        pass
    before = _proc_status_kib("VmRSS") if exact else _maxrss_kib()
    result = fn(image, template)
    after = _proc_status_kib("VmHWM") if exact else _maxrss_kib()
    del result
    print(json.dumps({"peak_increase_mib": max(0, after - before) / 1024.0, "exact": exact}))


def measure_memory(names, method, image, template, tmpdir):
    ipath, tpath = os.path.join(tmpdir, "image.npy"), os.path.join(tmpdir, "template.npy")
    np.save(ipath, image)
    np.save(tpath, template)
    out = {}
    for name in names:
        spec = {"image": ipath, "template": tpath, "method": method, "contender": name}
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--_memory-child", json.dumps(spec)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            print(f"  memory child for {name} failed:\n{proc.stderr}", file=sys.stderr)
            out[name] = None
        else:
            out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------- profile


def profile_call(fn, *args, **kwargs):
    """cProfile one call, including the threads it starts (cProfile alone sees only the caller's).

    Every thread started during the call gets its own profiler (threading.setprofile
    installs a hook that swaps itself for one); their stats are merged into the
    caller's, so the cumulative times of code run on several threads add up.
    Returns (pstats.Stats, number of threads profiled).
    """
    profilers, lock = [], threading.Lock()

    def start_profiler(frame, event, arg):
        sys.setprofile(None)
        prof = cProfile.Profile()
        with lock:
            profilers.append(prof)
        prof.enable()

    main = cProfile.Profile()
    threading.setprofile(start_profiler)
    try:
        main.runcall(fn, *args, **kwargs)
    finally:
        threading.setprofile(None)
    stats = pstats.Stats(main)
    for prof in profilers:
        try:
            stats.add(prof)
        except TypeError:  # a thread that recorded nothing
            pass
    return stats, len(profilers)


# --------------------------------------------------------------------------- estimate


_OVERHEAD_PER_CALL = 0.01  # gc.collect() and bookkeeping around every timed call, seconds
_OVERHEAD_PER_CELL = 0.05  # scene and template set-up
_METHOD_COST = {"ssd": 0.5, "ccorr": 0.5, "ssd_normed": 0.9, "ccorr_normed": 0.9, "ccoeff": 0.8, "ncc": 1.0}


def calibrate(use_skimage):
    """Seconds per call of each contender on 512^2 float32 / 32^2 ncc (also warms everything up)."""
    image = make_scene(512, "float32", 0, 2.0)
    template = image[100:132, 200:232].copy()
    contenders = make_contenders("ncc", ["fast"], use_skimage)
    stats = time_interleaved(contenders, image, template, repeats=2, warmup=1)
    return {name.split(":")[0]: min(s["wall"]) for name, s in stats.items()}


def estimate_cell(cal, size, method, n_prec, repeats, warmup, memory):
    """Rough seconds for one cell: calibration scaled by n log n of the scene."""
    scale = (size * size * math.log2(size * size)) / (512 * 512 * math.log2(512 * 512))
    ours = cal["ours"] * scale * _METHOD_COST[method] * n_prec
    per_round = ours + cal["opencv"] * scale + (cal.get("skimage", 0.0) * scale if method == "ncc" else 0.0)
    calls = n_prec + 1 + (method == "ncc" and "skimage" in cal)
    per_round += _OVERHEAD_PER_CALL * calls
    total = per_round * (repeats + warmup) + _OVERHEAD_PER_CELL
    if memory:
        total += per_round + 1.5 * calls  # a fresh interpreter per call
    return total


def print_total(start):
    """The closing line: wall time since ``start`` (perf_counter) and the load average."""
    load = ", load average at end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else ""
    print(f"\ntotal wall time {fmt_duration(time.perf_counter() - start)}{load}")


def remove_scratch(tmpdir):
    """Remove the scratch folder of the memory measurements (None: nothing to do)."""
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


def fmt_duration(s):
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# --------------------------------------------------------------------------- report


def header_lines():
    lines = [
        f"python {platform.python_version()} on {platform.platform()}",
        f"numpy {np.__version__}, scipy {scipy.__version__}, opencv {cv2.__version__}, "
        f"scikit-image {skimage.__version__}, matcher {getattr(matcher, '__version__', '?')}",
    ]
    try:
        head = subprocess.run(["git", "-C", _REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", _REPO, "status", "--porcelain", "--untracked-files=no", "--", "matcher"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        if head:
            lines.append(f"matcher from {os.path.dirname(matcher.__file__)}, git {head}"
                         + (" + uncommitted changes to matcher/" if dirty else " (tracked matcher/ files unchanged)"))
    except (OSError, subprocess.SubprocessError):
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    lines.append(f"os.cpu_count() = {os.cpu_count()}, usable (affinity) = {affinity}" + (f", CPU: {cpu}" if cpu else ""))
    lines.append(
        f"cv2.getNumThreads() = {cv2.getNumThreads()}, cv2.useOptimized() = {cv2.useOptimized()}, "
        f"scipy.fft.get_workers() = {scipy.fft.get_workers()} (the global default; matcher passes its own workers= to scipy.fft)"
    )
    if hasattr(os, "getloadavg"):
        lines.append("load average at start (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_", "OPENCV_"))}
    lines.append("thread/BLAS env: " + (", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "(none set)"))
    return lines


def geomean(values):
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def table_columns(check, memory):
    cols = [("scene", 6), ("tmpl", 5), ("dtype", 7), ("method", 12), ("prec", 5), ("ours s", 9), ("opencv s", 9),
            ("ours/cv", 8), ("skimage s", 9), ("ours/sk", 8), ("cpu/wall", 8)]
    if check:
        cols += [("loc", 4), ("diff/rng", 8), ("nf diff", 8), ("sk loc", 6), ("sk diff", 8)]
    if memory:
        cols += [("ours MiB", 8), ("cv MiB", 7), ("sk MiB", 7)]
    return cols


def format_row(row, cols):
    def num(v, spec):
        return "-" if v is None else format(v, spec)

    vals = {
        "scene": str(row["scene"]), "tmpl": str(row["template"]), "dtype": row["dtype"], "method": row["method"],
        "prec": row["precision"], "ours s": num(row["ours_s"], ".5f"), "opencv s": num(row["opencv_s"], ".5f"),
        "ours/cv": num(row["ratio_opencv"], ".2f"), "skimage s": num(row.get("skimage_s"), ".5f"),
        "ours/sk": num(row.get("ratio_skimage"), ".2f"), "cpu/wall": num(row["ours_cpu_per_wall"], ".2f"),
    }
    chk = row.get("check")
    if chk is not None:
        vals["loc"] = "same" if chk["loc_equal"] else "tie" if chk["loc_tie"] else "DIFF"
        vals["diff/rng"] = num(chk["diff_rel"], ".1e")
        vals["nf diff"] = num(chk.get("nonflat_diff_rel"), ".1e")
        if "loc_skimage_equal" in chk:
            vals["sk loc"] = "same" if chk["loc_skimage_equal"] else "DIFF"
            vals["sk diff"] = num(chk["skimage_nonflat_diff_rel"], ".1e")
    mem = row.get("memory")
    if mem is not None:
        vals["ours MiB"] = num(mem.get("ours"), ".1f")
        vals["cv MiB"] = num(mem.get("opencv"), ".1f")
        vals["sk MiB"] = num(mem.get("skimage"), ".1f")
    return "  ".join(vals.get(name, "-").rjust(width) for name, width in cols)


def summary_lines(rows, precisions):
    out = ["", "geometric-mean ratios (> 1: matcher slower)"]
    scenes = sorted({r["scene"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    for p in precisions:
        pr = [r for r in rows if r["precision"] == p]
        sk = [r["ratio_skimage"] for r in pr if r.get("ratio_skimage") is not None]
        line = f"  precision={p:<5}  all: ours/opencv {geomean([r['ratio_opencv'] for r in pr]):.2f} over {len(pr)} cells"
        if sk:
            line += f", ours/skimage {geomean(sk):.2f} over {len(sk)} ncc cells"
        out.append(line)
        for s in scenes:
            sr = [r for r in pr if r["scene"] == s]
            sks = [r["ratio_skimage"] for r in sr if r.get("ratio_skimage") is not None]
            line = f"    scene {s:>5}: ours/opencv {geomean([r['ratio_opencv'] for r in sr]):6.2f} ({len(sr)} cells)"
            if sks:
                line += f", ours/skimage {geomean(sks):.2f} ({len(sks)})"
            out.append(line)
        for m in methods:
            mr = [r for r in pr if r["method"] == m]
            out.append(f"    {m:>12}: ours/opencv {geomean([r['ratio_opencv'] for r in mr]):6.2f} ({len(mr)} cells)")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", help=f"scene sizes, comma-separated (default {FULL['scenes']})")
    ap.add_argument("--templates", help=f"template sizes; those >= the scene are skipped (default {FULL['templates']})")
    ap.add_argument("--dtypes", help=f"float32 and/or uint8 (default {FULL['dtypes']})")
    ap.add_argument("--methods", help="comma-separated names from " + ",".join(METHODS) + ", or 'all' (default all)")
    ap.add_argument("--precision", choices=("fast", "exact", "both"), default="fast", help="matcher's precision (default fast)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per contender per cell (default 3)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed calls per contender per cell before timing (default 0)")
    ap.add_argument("--skimage", action=argparse.BooleanOptionalAction, default=True, help="also time skimage for ncc (default on)")
    ap.add_argument("--quick", action="store_true",
                    help="small subset (< 2 min): scenes 512,2048; templates 8,32,128; float32; ncc,ssd "
                         "(explicit --scenes etc. still win)")
    ap.add_argument("--check", action="store_true", help="also compare the maps with OpenCV's (and skimage's)")
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS increase per call (one subprocess per call)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="run one extra call of ours per cell under cProfile and print the top N cumulative entries to stderr")
    ap.add_argument("--json", metavar="OUT", help="write all rows (and the environment) as JSON")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise and the template positions (default 0)")
    ap.add_argument("--noise", type=float, default=2.0, help="std of the Gaussian noise added to the scene, grey levels (default 2)")
    ap.add_argument("--_memory-child", dest="memory_child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        return args
    preset = QUICK if args.quick else FULL
    for key in ("scenes", "templates", "dtypes", "methods"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    try:
        args.scenes = [int(s) for s in args.scenes.split(",")]
        args.templates = [int(s) for s in args.templates.split(",")]
    except ValueError:
        ap.error("--scenes and --templates take comma-separated integers")
    args.dtypes = args.dtypes.split(",")
    for d in args.dtypes:
        if d not in DTYPES:
            ap.error(f"unknown dtype {d!r}; choose from {', '.join(DTYPES)}")
    args.methods = list(METHODS) if args.methods == "all" else args.methods.split(",")
    for m in args.methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; choose from {', '.join(METHODS)} or 'all'")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    args.precisions = ["fast", "exact"] if args.precision == "both" else [args.precision]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.memory_child:
        memory_child(json.loads(args.memory_child))
        return 0

    cells = [(s, t, d, m) for s in args.scenes for t in args.templates if t < s for d in args.dtypes for m in args.methods]
    skipped = [(s, t) for s in args.scenes for t in args.templates if t >= s]
    header = header_lines()
    header.append(
        f"grid: scenes {args.scenes}, templates {args.templates}, dtypes {args.dtypes}, methods {args.methods}, "
        f"precision {args.precision}, repeats {args.repeats}, warmup {args.warmup}, skimage {args.skimage}, "
        f"seed {args.seed}, noise {args.noise}"
    )
    if skipped:
        header.append("skipped (template not smaller than scene): " + ", ".join(f"{t} in {s}" for s, t in skipped))
    for line in header:
        print("# " + line)
    sys.stdout.flush()

    print("calibrating on 512^2 float32, 32^2 ncc ...", file=sys.stderr, flush=True)
    cal = calibrate(args.skimage)
    estimates = [estimate_cell(cal, s, m, len(args.precisions), args.repeats, args.warmup, args.memory) for s, t, d, m in cells]
    print(
        f"{len(cells)} cells x {len(args.precisions)} precision(s); rough estimate {fmt_duration(sum(estimates))} "
        f"(calibration: ours {cal['ours']:.4f}s, opencv {cal['opencv']:.4f}s"
        + (f", skimage {cal['skimage']:.4f}s" if "skimage" in cal else "")
        + " per call, scaled by n log n of the scene)",
        file=sys.stderr, flush=True,
    )

    cols = table_columns(args.check, args.memory)
    head = "  ".join(name.rjust(width) for name, width in cols)
    print()
    print(head)
    print("-" * len(head), flush=True)

    rows, start = [], time.perf_counter()
    scenes = {}
    tmpdir = tempfile.mkdtemp(prefix="bench_engine_") if args.memory else None
    for i, (size, tsize, dtype, method) in enumerate(cells):
        if (size, dtype) not in scenes:
            scenes = {(size, dtype): make_scene(size, dtype, args.seed, args.noise)}  # keep one scene in memory
        image = scenes[(size, dtype)]
        y, x = template_position(size, tsize, args.seed)
        template = image[y : y + tsize, x : x + tsize].copy()
        contenders = make_contenders(method, args.precisions, args.skimage)
        stats = time_interleaved(contenders, image, template, args.repeats, args.warmup)
        ocv_s = statistics.median(stats["opencv"]["wall"])
        sk = stats.get("skimage")
        sk_s = statistics.median(sk["wall"]) if sk else None

        memory = None
        if args.memory:
            memory = {}
            res = measure_memory([n for n, _ in contenders], method, image, template, tmpdir)
            for name, r in res.items():
                memory[name] = None if r is None else r["peak_increase_mib"]

        if args.profile:
            stats_, n_threads = profile_call(match_template, image, template, method, precision=args.precisions[0])
            print(f"--- cProfile: ours, {size}^2 {tsize}^2 {dtype} {method} {args.precisions[0]}; main thread"
                  f" + {n_threads} worker thread(s), their times added ---", file=sys.stderr)
            stats_.stream = sys.stderr
            stats_.sort_stats("cumulative").print_stats(args.profile)

        for p in args.precisions:
            s = stats[f"ours:{p}"]
            ours_s = statistics.median(s["wall"])
            row = {
                "scene": size, "template": tsize, "dtype": dtype, "method": method, "precision": p,
                "template_yx": [y, x], "repeats": args.repeats,
                "ours_s": ours_s, "opencv_s": ocv_s, "ratio_opencv": ours_s / ocv_s,
                "skimage_s": sk_s, "ratio_skimage": ours_s / sk_s if sk_s else None,
                "ours_cpu_per_wall": sum(s["cpu"]) / sum(s["wall"]),
                "opencv_cpu_per_wall": sum(stats["opencv"]["cpu"]) / sum(stats["opencv"]["wall"]),
                "ours_wall_all": s["wall"], "opencv_wall_all": stats["opencv"]["wall"],
                "skimage_wall_all": sk["wall"] if sk else None,
            }
            if args.check:
                row["check"] = check_cell(method, image, template, s["result"], stats["opencv"]["result"],
                                          sk["result"] if sk else None)
            if memory is not None:
                row["memory"] = {"ours": memory.get(f"ours:{p}"), "opencv": memory.get("opencv"),
                                 "skimage": memory.get("skimage")}
            rows.append(row)
            print(format_row(row, cols), flush=True)
        del stats

        elapsed = time.perf_counter() - start
        done_est = sum(estimates[: i + 1])
        # Rescale the rest of the estimate by how the run has gone, once enough of it has run.
        factor = elapsed / done_est if done_est > 0.05 * sum(estimates) else 1.0
        left = sum(estimates[i + 1 :]) * factor
        print(
            f"[{i + 1}/{len(cells)}] {size}^2 t={tsize} {dtype} {method}: ours {rows[-1]['ours_s']:.4f}s "
            f"opencv {ocv_s:.4f}s" + (f" skimage {sk_s:.4f}s" if sk_s else "")
            + f"  (elapsed {fmt_duration(elapsed)}, ~{fmt_duration(left)} left)",
            file=sys.stderr, flush=True,
        )
        if args.json:
            _write_json(args.json, header, rows, done=False)

    for line in summary_lines(rows, args.precisions):
        print(line)
    print_total(start)
    if args.json:
        _write_json(args.json, header, rows, done=True)
        print(f"rows written to {args.json}", file=sys.stderr)
    remove_scratch(tmpdir)
    return 0


def _write_json(path, header, rows, done):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"environment": header, "complete": done, "rows": rows}, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
