"""Huge images: find on a 16384 x 16384 uint8 image (256 MiB) with a 256 x 256 template.

Issue 4, target 4: peak memory <= 2.5x the image's own size (find scores
overlapping tiles and keeps only candidate peaks, :mod:`matcher.search.tiled`).
Each measurement runs in a fresh subprocess: the resident set before the
image is made is the baseline, the peak resident set (VmHWM, reset once the
image is built) the peak, so the growth counts the image itself plus all the
work.

    python bench/bench_huge.py              # matcher.find
    python bench/bench_huge.py --opencv     # and cv2.matchTemplate (needs > 2 GiB)
    python bench/bench_huge.py --size 8192  # smaller
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANT = (9001, 12345)  # x, y of the planted template (scaled with --size)


def _status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def _make(size, tsize):
    """A real photo, resized and tiled with flips, plus noise; a different photo planted."""
    import cv2
    import numpy as np
    import skimage.data
    from skimage.color import rgb2gray

    rng = np.random.default_rng(0)
    cam = cv2.resize(skimage.data.camera(), (size // 4, size // 4), interpolation=cv2.INTER_CUBIC)
    image = np.empty((size, size), np.uint8)
    q = size // 4
    for i in range(4):
        for j in range(4):
            block = cam[:: (-1) ** i, :: (-1) ** j]
            image[i * q : (i + 1) * q, j * q : (j + 1) * q] = block
    for r in range(0, size, 512):  # noise in chunks: no full-size float copy
        chunk = image[r : r + 512].astype(np.int16) + rng.normal(0, 8, (min(512, size - r), size)).astype(np.int16)
        image[r : r + 512] = np.clip(chunk, 0, 255)
    astro = np.round(rgb2gray(skimage.data.astronaut()) * 255).astype(np.uint8)
    template = cv2.resize(astro[100:356, 150:406], (tsize, tsize), interpolation=cv2.INTER_AREA)
    x, y = PLANT[0] * size // 16384, PLANT[1] * size // 16384
    image[y : y + tsize, x : x + tsize] = template
    return image, template, (x, y)


def _child(kind, size, tsize):
    sys.path.insert(0, str(ROOT))
    import cv2
    import numpy as np

    from matcher.search.find import find

    small = np.random.default_rng(1).integers(0, 256, (300, 300), dtype=np.uint8)
    find(small, small[:40, :40])  # libraries and code paths loaded before the baseline
    cv2.matchTemplate(small, small[:40, :40], cv2.TM_CCOEFF_NORMED)
    base = _status("VmRSS")
    image, template, planted = _make(size, tsize)
    try:
        with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
            f.write("5")
    except OSError:
        pass
    t = time.perf_counter()
    if kind == "find":
        (m,) = find(image, template, "ncc")
        found, score = (m.x, m.y), m.score
    else:
        scores = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
        _, score, _, loc = cv2.minMaxLoc(scores)
        found = tuple(int(v) for v in loc)
    seconds = time.perf_counter() - t
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_growth": _status("VmHWM") - base,
                      "image_bytes": image.nbytes, "found": list(found), "planted": list(planted),
                      "score": float(score)}))


def run(kind, size, tsize):
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--size", str(size), "--template", str(tsize)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = r["peak_growth"] / r["image_bytes"]
    print(f"{kind:7s} {size}x{size} uint8, template {tsize}x{tsize}: {r['seconds']:.1f} s, "
          f"peak RSS growth {r['peak_growth'] / 2**20:.0f} MiB = {ratio:.2f}x the image "
          f"({r['image_bytes'] / 2**20:.0f} MiB, included); found {tuple(r['found'])}, planted "
          f"{tuple(r['planted'])}: {'OK' if r['found'] == r['planted'] else 'MISSED'} (score {r['score']:.4f})",
          flush=True)
    return r


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--template", type=int, default=256)
    parser.add_argument("--opencv", action="store_true", help="also measure cv2.matchTemplate (> 2 GiB)")
    parser.add_argument("--child", choices=["find", "opencv"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.size, args.template)
        return
    run("find", args.size, args.template)
    if args.opencv:
        run("opencv", args.size, args.template)


if __name__ == "__main__":
    main()
