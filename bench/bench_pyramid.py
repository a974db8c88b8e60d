"""Bounded coarse-to-fine find(pyramid=True) against OpenCV's exhaustive matchTemplate, and against our exhaustive find.

Scenes (uint8 gray, all seeded):

- ``photos``: skimage photographs, each resized to 1024^2, tiled to 2048^2 and
  4096^2 (the 4096^2 scene's second 8 tiles are the first 8 turned by 180
  degrees), degraded (noise sigma 4, JPEG 85); templates of 64, 128, 256 px cut
  from the clean scene where their standard deviation is >= 20;
- ``decoys``: a 2048^2 photo mosaic with the template planted once off the
  16-px grid and 8 copies on it that differ only by a +-checkerboard (they score
  0.985 ... 0.845 at full resolution and 1 on every reduced level);
- ``icons``: a 2048^2 screen of 12 x 16 buttons (one icon and a label each)
  where many buttons repeat exactly or differ by one glyph; the template is one
  button (its exact copies tie at 1.0);
- ``mosaic``: 2048^2 of 256^2 tiles cut from 4 photographs, each tile used 16
  times, every copy but one degraded (noise sigma 3, JPEG 90); templates cut
  from the clean copy;
- ``board``: a 1628 x 1236 PCB-like board with 36 LEDs (140 x 102, each lit and
  shaded differently), resistors and traces; ``threshold=0.8,
  max_matches=None`` (every LED), compared as a set.

For each case: median wall time of ``cv2.matchTemplate(..., TM_CCOEFF_NORMED)``
+ ``cv2.minMaxLoc`` and of ``matcher.find(..., pyramid=True)`` (run in turn, in
one process), their ratio and its range over the repeats, whether the pyramid
fell back, the fraction of the finest cells it scored at full resolution, and
whether it agrees with ``matcher.find`` without the pyramid (the same best
window, or a tie within 2e-4 between exactly scored windows; for the board, the
same set). The summary gives, per scene, the agreement, the fallback count, the
median (range) of the ratios and their median where it did not fall back, and
over all cases the median ratio of each repeat.

Run: ``python bench/bench_pyramid.py [--repeat N] [--scenes photos,decoys,...]``
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
TIE = 2e-4


def photo(name, size):
    a = getattr(skimage.data, name)()
    a = np.round(rgb2gray(a) * 255).astype(np.uint8) if a.ndim == 3 else a
    return cv2.resize(a, (size, size), interpolation=cv2.INTER_CUBIC if size > min(a.shape) else cv2.INTER_AREA)


def degrade(img, rng, sigma=4, quality=85):
    noisy = np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
    _, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def photo_mosaic(size):
    tiles = []
    for i in range((size // 1024) ** 2):
        p = photo(PHOTOS[i % len(PHOTOS)], 1024)
        tiles.append(p if i < len(PHOTOS) else p[::-1, ::-1])  # no tile twice: a repeat is a true tie
    n = size // 1024
    return np.vstack([np.hstack(tiles[r * n : (r + 1) * n]) for r in range(n)])


def textured_template(clean, t, rng):
    while True:
        y, x = (int(v) for v in rng.integers(0, clean.shape[0] - t, 2))
        tpl = clean[y : y + t, x : x + t].copy()
        if tpl.std() >= 20:
            return tpl


def photos_cases():
    for size in (2048, 4096):
        clean = photo_mosaic(size)
        img = degrade(clean, np.random.default_rng(0))
        rng = np.random.default_rng(size)
        for t in (64, 128, 256) if size == 2048 else (64, 128):
            for _ in range(3 if size == 2048 else 2):
                yield f"photos{size}", img, textured_template(clean, t, rng), {}


def decoys_cases():
    clean = photo_mosaic(2048)
    for t in (64, 128, 256):
        for seed in range(2):
            rng = np.random.default_rng(100 + seed)
            src = photo("astronaut", 1024)
            y, x = (int(v) for v in rng.integers(0, 1024 - t, 2))
            tpl = src[y : y + t, x : x + t].astype(np.float64)
            board = np.where(np.add.outer(np.arange(t), np.arange(t)) % 2 == 0, 1.0, -1.0)
            energy = ((tpl - tpl.mean()) ** 2).sum()
            img = clean.astype(np.float64)
            spots = rng.permutation(9)
            for i, s in enumerate(spots.tolist()):
                r, c = divmod(s, 3)
                py, px = 16 * (8 + r * 40 + int(rng.integers(0, 4))), 16 * (8 + c * 40 + int(rng.integers(0, 4)))
                if i == 0:
                    py, px = py + int(rng.integers(1, 16)), px + int(rng.integers(1, 16))
                    img[py : py + t, px : px + t] = tpl
                else:
                    target = 0.985 - (i - 1) * 0.02
                    img[py : py + t, px : px + t] = tpl + np.sqrt(energy * (1 / target**2 - 1) / board.size) * board
            img = np.clip(np.round(img + rng.normal(0, 2, img.shape)), 0, 255).astype(np.uint8)
            yield "decoys", img, np.clip(np.round(tpl), 0, 255).astype(np.uint8), {}


def button(label, icon, w=120, h=64):
    b = np.full((h, w), 235, np.uint8)
    cv2.rectangle(b, (2, 2), (w - 3, h - 3), 120, 2)
    cx, cy = 20, h // 2
    if icon == 0:
        cv2.circle(b, (cx, cy), 11, 60, -1)
    elif icon == 1:
        cv2.rectangle(b, (cx - 10, cy - 10), (cx + 10, cy + 10), 60, 3)
    else:
        cv2.fillPoly(b, [np.array([(cx - 11, cy + 10), (cx + 11, cy + 10), (cx, cy - 11)])], 60)
    cv2.putText(b, label, (38, cy + 7), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 30, 1, cv2.LINE_AA)
    return b


def icons_cases():
    rng = np.random.default_rng(7)
    labels = ["Open", "Save", "Sava", "Close", "Clase", "Print"]
    screen = np.full((2048, 2048), 250, np.uint8)
    for r in range(16):
        for c in range(12):
            y, x = 40 + r * 125, 30 + c * 168
            screen[y : y + 64, x : x + 120] = button(labels[int(rng.integers(0, 6))], int(rng.integers(0, 3)))
    screen = np.clip(screen + rng.normal(0, 2, screen.shape), 0, 255).astype(np.uint8)
    for label, icon in (("Save", 0), ("Close", 2), ("Print", 1)):
        yield "icons", screen, button(label, icon), {}


def mosaic_cases():
    rng = np.random.default_rng(9)
    tiles = [photo(name, 256) for name in ("camera", "astronaut", "coffee", "brick")]
    grid, clean_at = [], None
    for r in range(8):
        row = []
        for c in range(8):
            k = (r * 8 + c) % 4
            if (r, c) == (5, 2):
                row.append(tiles[k])
                clean_at, clean_k = (r, c), k
            else:
                row.append(degrade(tiles[k], rng, sigma=3, quality=90))
        grid.append(np.hstack(row))
    img = np.vstack(grid)
    r, c = clean_at
    for t in (64, 128, 256):
        for _ in range(2):
            if t == 256:
                y = x = 0
            else:
                y, x = (int(v) for v in rng.integers(0, 256 - t, 2))
            yield "mosaic", img, img[r * 256 + y : r * 256 + y + t, c * 256 + x : c * 256 + x + t].copy(), {}


def board_cases():
    for seed in range(2):
        rng = np.random.default_rng(50 + seed)
        H, W = 1236, 1628
        img = 70 + cv2.GaussianBlur(rng.normal(0, 12, (H, W)), (0, 0), 2.0)
        for _ in range(80):
            y, x = (int(v) for v in rng.integers(0, (H, W)))
            cv2.line(img, (x, y), (x + int(rng.integers(-500, 500)), y + int(rng.integers(-3, 3)) * 100), 140,
                     int(rng.integers(2, 6)))
        led = np.full((102, 140), 45.0)
        cv2.rectangle(led, (6, 6), (133, 95), 200, 3)
        cv2.ellipse(led, (70, 51), (38, 30), 0, 0, 360, 235, -1)
        cv2.circle(led, (70, 51), 12, 120, -1)
        cv2.line(led, (18, 18), (40, 18), 95, 3)
        res = np.full((102, 140), 75.0)
        cv2.rectangle(res, (10, 30), (129, 71), 185, -1)
        for k in range(54):
            r, c = divmod(k, 9)
            y, x = 20 + r * 200 + int(rng.integers(0, 70)), 15 + c * 178 + int(rng.integers(0, 30))
            part = (rng.uniform(0.85, 1.15) * led + rng.uniform(-15, 15)) if k % 3 < 2 else res
            img[y : y + 102, x : x + 140] = part
        img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
        yield "board", img, led.astype(np.uint8), {"threshold": 0.8, "max_matches": None}


SCENES = {"photos": photos_cases, "decoys": decoys_cases, "icons": icons_cases, "mosaic": mosaic_cases,
          "board": board_cases}


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def agrees(exhaustive, pyramid, every):
    if every:
        return [(m.x, m.y) for m in exhaustive] == [(m.x, m.y) for m in pyramid]
    e, p = exhaustive[0], pyramid[0]
    return ((e.x, e.y) == (p.x, p.y) and abs(e.score - p.score) <= 1e-9) or abs(e.score - p.score) <= TIE


def run_case(img, tpl, kw, repeat):
    def opencv():
        return cv2.minMaxLoc(cv2.matchTemplate(img, tpl, cv2.TM_CCOEFF_NORMED))

    t_cv, t_py = [], []
    for _ in range(repeat):  # in turn, so that both see the same load
        t_cv.append(timed(opencv, 1)[0])
        t, (matches, info) = timed(lambda: find_pyramid(img, tpl, "ncc", **kw), 1)
        t_py.append(t)
    exhaustive = find(img, tpl, "ncc", **kw)
    return t_cv, t_py, matches, info, exhaustive


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scenes", default=",".join(SCENES))
    args = ap.parse_args()
    print(f"{'scene':>10} {'tpl':>8} {'opencv_s':>9} {'pyramid_s':>9} {'ratio':>6} {'range':>13} {'levels':>6} "
          f"{'scored':>7} {'fell_back':>9} {'agree':>5}  note")
    summary = {}
    for name in args.scenes.split(","):
        for scene, img, tpl, kw in SCENES[name]():
            cvs, pys, matches, info, exhaustive = run_case(img, tpl, kw, args.repeat)
            t_cv, t_py = statistics.median(cvs), statistics.median(pys)
            per_repeat = [p / c for p, c in zip(pys, cvs)]
            ok = agrees(exhaustive, matches, kw.get("max_matches", 1) is None)
            note = f"{len(matches)} matches; " if "threshold" in kw else ""
            note += info.reason[:70]
            summary.setdefault(scene, []).append((t_py / t_cv, info.fell_back, ok, per_repeat))
            print(f"{scene:>10} {tpl.shape[1]:>4}x{tpl.shape[0]:<3} {t_cv:>9.4f} {t_py:>9.4f} {t_py / t_cv:>6.3f} "
                  f"{min(per_repeat):>6.3f}-{max(per_repeat):<6.3f} {info.levels:>6} "
                  f"{info.candidates / max(info.cells, 1):>7.2%} {str(info.fell_back):>9} {str(ok):>5}  {note}",
                  flush=True)
    print("\nratio: median time over median OpenCV time; range: the ratio in each repeat (run in turn)")
    print("\nscene       cases  agree  fell back  ratio median (range)  bounded-only median")
    everything = []
    for scene, rows in summary.items():
        everything += rows
        print(_summary_line(scene, rows))
    print(_summary_line("all", everything))
    per_repeat = [statistics.median(r[3][j] for r in everything) for j in range(args.repeat)]
    print("all cases, median ratio in each repeat: " + ", ".join(f"{r:.3f}" for r in per_repeat))


def _summary_line(name, rows):
    ratios = [r for r, *_ in rows]
    bounded = [r for r, fell, *_ in rows if not fell]
    inner = f"{statistics.median(bounded):.3f}" if bounded else "-"
    return (f"{name:<10} {len(rows):>6} {sum(ok for _, _, ok, _ in rows):>6} {sum(f for _, f, _, _ in rows):>10}  "
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})  {inner}")


if __name__ == "__main__":
    main()
