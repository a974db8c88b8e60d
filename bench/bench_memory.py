"""Peak memory of each search path, in bytes per image pixel, against OpenCV's matchTemplate.

Every path runs in a fresh interpreter: the inputs are made, the path is
warmed up on a small image (modules loaded, thread pools started), the peak
resident size is reset (Linux: ``/proc/self/clear_refs``), and the call's
peak increase over the resident size just before it is reported, divided by
the image's pixels (a uint8 image: its bytes too). The tiled path is forced on the same
image by lowering ``matcher.search.strategy.TILED_ABOVE_BYTES``; its tiles
follow the tiled search's budget (``TILE_BUDGET`` of the image's bytes, at
least 16 MiB), so on a small image the 16 MiB floor decides
(``bench/bench_huge.py`` measures a 16384² image).

    .venv/bin/python bench/bench_memory.py --size 2048 --template 64
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

# name: (what it runs, in words)
PATHS = {
    "opencv": "cv2.matchTemplate TM_CCOEFF_NORMED (float32 result)",
    "fast": "match_template ncc, precision='fast' (float32 correlations)",
    "exact": "match_template ncc, precision='exact' (float64)",
    "masked-bool": "match_template ncc with a circular bool mask (float64 window terms)",
    "masked-float": "match_template ncc with float weights (float64 window terms)",
    "find": "find ncc (exhaustive, fast)",
    "find-tiled": "find ncc, tiled (forced)",
    "find-pyramid": "find ncc, pyramid=True",
    "find-turned": "find ncc, angles=(-10, 10)",
}


def scene(size, template):
    """A size x size uint8 photograph (scikit-image's camera, resized) and a template cut from it."""
    import cv2
    import skimage.data

    image = cv2.resize(skimage.data.camera(), (size, size), interpolation=cv2.INTER_CUBIC)
    y, x = size // 3, size // 2
    return image, image[y : y + template, x : x + template].copy()


def _call(name, image, template):
    import cv2

    import matcher
    from matcher.search import strategy

    h, w = template.shape
    yy, xx = np.mgrid[:h, :w]
    circle = (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= (min(h, w) / 2) ** 2
    if name == "opencv":
        return cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
    if name == "fast":
        return matcher.match_template(image, template, "ncc")
    if name == "exact":
        return matcher.match_template(image, template, "ncc", precision="exact")
    if name == "masked-bool":
        return matcher.match_template(image, template, "ncc", mask=circle)
    if name == "masked-float":
        return matcher.match_template(image, template, "ncc", mask=np.where(circle, 1.0, 0.25))
    if name == "find":
        return matcher.find(image, template)
    if name == "find-tiled":
        strategy.TILED_ABOVE_BYTES = image.size  # this image's float64 copy is 8x that: tiled
        return matcher.find(image, template)
    if name == "find-pyramid":
        return matcher.find(image, template, pyramid=True)
    if name == "find-turned":
        return matcher.find(image, template, angles=(-10, 10))
    raise SystemExit(f"unknown path {name!r}; known: {', '.join(PATHS)}")


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise SystemExit(f"/proc/self/status has no {field}")


def child(name, size, template_side):
    """In a fresh interpreter: warm up, reset the peak, call once, print the peak increase (bytes)."""
    import gc

    small_image, small_template = scene(256, 24)
    _call(name, small_image, small_template)
    image, template = scene(size, template_side)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the current RSS (Linux >= 4.0)
        f.write("5")
    before = _status_kib("VmRSS")
    result = _call(name, image, template)
    peak = _status_kib("VmHWM")
    del result
    print(json.dumps({"peak_bytes": max(0, peak - before) * 1024}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048, help="image side (default 2048)")
    ap.add_argument("--template", type=int, default=64, help="template side (default 64)")
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset of: " + ", ".join(PATHS))
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        child(args._child, args.size, args.template)
        return 0
    if not os.path.exists("/proc/self/clear_refs"):
        print("needs Linux (/proc/self/clear_refs) to reset the peak resident size", file=sys.stderr)
        return 2
    pixels = args.size * args.size
    print(f"# {args.size}x{args.size} uint8 image ({pixels / 2**20:.1f} MiB), {args.template} px template, ncc; "
          f"peak resident-size increase during one call, after a warm-up, in a fresh interpreter")
    print("# B/px: bytes per image pixel; the uint8 image itself holds 1 B/px, so B/px is also 'x the image'")
    print(f"{'path':<14} {'MiB':>8} {'B/px':>7}  what")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    for name in args.paths.split(","):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child", name, "--size", str(args.size),
                               "--template", str(args.template)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{name:<14} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
            continue
        peak = json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]
        print(f"{name:<14} {peak / 2**20:8.1f} {peak / pixels:7.1f}  {PATHS[name]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
