#!/usr/bin/env python
"""Real-data cases the grid does not cover, side by side with OpenCV: float photographs with flat areas,
a large DC offset, masks on photographs.

Each case: the median wall time of ``match_template`` (default options: "fast", every core) and of
``cv2.matchTemplate`` with the same method (and mask), in one process, and their ratio. Cases:

- a colour photograph in [0, 1] (float32) with a black background (astronaut), 640x480 with 32 px and
  1024x1024 with 64 px, ncc: exactly flat windows, dark windows;
- a gray photograph (camera) in float64 plus 1e4, 16 px, ccorr_normed: a map of nearly equal scores,
  under float32's rounding (OpenCV's scores are noise there);
- masked (a disc) ccorr_normed and ncc on the gray photograph, uint8, 48 px, and masked ccorr_normed on
  the colour one.

Run from the repository root, or give another checkout to time its code (to compare two versions,
run them in turn on the same machine):

    .venv/bin/python bench/bench_cases.py
    .venv/bin/python bench/bench_cases.py /path/to/other/checkout
"""

import os
import statistics
import sys
import time

ROOT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

import matcher  # noqa: E402
from matcher import match_template  # noqa: E402

OPENCV = {"ncc": cv2.TM_CCOEFF_NORMED, "ccorr_normed": cv2.TM_CCORR_NORMED}


def median_time(call, runs=7):
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def disc(size):
    yy, xx = np.mgrid[:size, :size]
    return np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2) <= size / 2


def cases():
    colour = cv2.resize(skimage.data.astronaut(), (640, 480), interpolation=cv2.INTER_AREA)
    big = cv2.resize(skimage.data.astronaut(), (1024, 1024), interpolation=cv2.INTER_AREA)
    gray = cv2.resize(skimage.data.camera(), (640, 480), interpolation=cv2.INTER_AREA)
    yield "colour [0,1] astronaut 640x480, 32 px, ncc", colour.astype(np.float32) / 255, 32, "ncc", False
    yield "colour [0,1] astronaut 1024^2, 64 px, ncc", big.astype(np.float32) / 255, 64, "ncc", False
    yield "gray float64 + 1e4 640x480, 16 px, ccorr_normed", gray.astype(np.float64) + 1e4, 16, "ccorr_normed", False
    yield "gray uint8 640x480, 48 px, masked ccorr_normed", gray, 48, "ccorr_normed", True
    yield "gray uint8 640x480, 48 px, masked ncc", gray, 48, "ncc", True
    yield "colour uint8 640x480, 48 px, masked ccorr_normed", colour, 48, "ccorr_normed", True


def main():
    print(f"# matcher from {os.path.dirname(matcher.__file__)}; medians of 7 calls, every core")
    for name, image, size, method, masked in cases():
        template = image[200 : 200 + size, 300 : 300 + size].copy()
        mask = disc(size) if masked else None
        cv_image, cv_template = ((image, template) if image.dtype in (np.uint8, np.float32)
                                 else (image.astype(np.float32), template.astype(np.float32)))
        cv_mask = None
        if masked:
            cv_mask = (np.repeat(mask[:, :, None], 3, axis=2) if image.ndim == 3 else mask).astype(np.uint8)
        ours = median_time(lambda: match_template(image, template, method, mask=mask))
        theirs = median_time(lambda: cv2.matchTemplate(cv_image, cv_template, OPENCV[method], mask=cv_mask))
        print(f"{name:50s} ours {ours * 1e3:7.1f} ms  OpenCV {theirs * 1e3:6.1f} ms  ratio {ours / theirs:5.2f}",
              flush=True)


if __name__ == "__main__":
    main()
