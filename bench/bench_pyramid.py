"""Coarse-to-fine find(pyramid=True) against OpenCV's exhaustive matchTemplate.

Scenes: a grid of skimage photographs, each resized to 1024^2, tiled to
2048^2 and 4096^2 (uint8 gray; the 4096^2 scene's second 8 tiles are the first
8 rotated by 180 degrees), degraded (noise sigma 4, JPEG quality 85);
templates of 64 and 128 px cut from the clean scene at 3 seeded positions
whose template has a standard deviation >= 20 grey levels. For each (scene, template): median wall time of

- ``cv2.matchTemplate(scene, template, TM_CCOEFF_NORMED)`` + ``cv2.minMaxLoc`` (exhaustive),
- ``matcher.find(scene, template, "ncc", pyramid=True)``,
- ``matcher.find(scene, template, "ncc")`` (our exhaustive; ``--no-exhaustive`` skips it),

and the ratio pyramid / OpenCV, whether the pyramid took the fallback path and
whether its position agrees with OpenCV's (+-1 px).

Run: ``python bench/bench_pyramid.py [--repeat N] [--no-exhaustive]``
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from skimage.color import rgb2gray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from matcher.search.find import find  # noqa: E402
from matcher.search.pyramid import find_pyramid  # noqa: E402


PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "immunohistochemistry", "brick")


def scene(size, seed=0):
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range((size // 1024) ** 2):
        photo = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
        photo = np.round(rgb2gray(photo) * 255).astype(np.uint8) if photo.ndim == 3 else photo
        photo = photo if i < len(PHOTOS) else photo[::-1, ::-1]  # no tile twice: a repeat is a true tie
        tiles.append(cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC))
    n = size // 1024
    big = np.vstack([np.hstack(tiles[r * n : (r + 1) * n]) for r in range(n)])
    noisy = np.clip(big + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8)
    _, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return big, cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-exhaustive", action="store_true", help="skip matcher's own exhaustive search")
    args = ap.parse_args()
    print(f"{'scene':>6} {'tpl':>4} {'opencv_s':>9} {'pyramid_s':>9} {'ratio':>6} {'ours_exh_s':>10} "
          f"{'levels':>6} {'fell_back':>9} {'agree':>5}")
    ratios = []
    for size in (2048, 4096):
        clean, img = scene(size)
        rng = np.random.default_rng(size)
        for t in (64, 64, 64, 128, 128, 128):  # 3 positions per template size
            while True:
                y, x = (int(v) for v in rng.integers(0, size - t, 2))
                tpl = clean[y : y + t, x : x + t].copy()
                if tpl.std() >= 20:
                    break

            def opencv():
                res = cv2.matchTemplate(img, tpl, cv2.TM_CCOEFF_NORMED)
                return cv2.minMaxLoc(res)[3]

            t_cv, (cx, cy) = timed(opencv, args.repeat)
            t_py, (matches, info) = timed(lambda: find_pyramid(img, tpl, "ncc"), args.repeat)
            t_ex = float("nan")
            if not args.no_exhaustive:
                t_ex, _ = timed(lambda: find(img, tpl, "ncc"), max(1, args.repeat // 2))
            m = matches[0]
            agree = abs(m.x - cx) <= 1 and abs(m.y - cy) <= 1
            ratios.append(t_py / t_cv)
            print(f"{size:>6} {t:>4} {t_cv:>9.4f} {t_py:>9.4f} {t_py / t_cv:>6.3f} {t_ex:>10.3f} "
                  f"{info.levels:>6} {str(info.fell_back):>9} {str(agree):>5}", flush=True)
    print(f"median ratio pyramid/opencv: {statistics.median(ratios):.3f}; max {max(ratios):.3f}")


if __name__ == "__main__":
    main()
