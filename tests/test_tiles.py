"""find_tiled against the untiled find: the same matches, in the same order; and bounded memory.

Tiles are forced small (a few to a few dozen output rows and columns) so that
seams cut through planted copies, peaks, 3 x 3 sub-pixel neighbourhoods and
plateaus of equal scores. Each tile's scores come from its own slice of the
image, so they may differ from the untiled map in the last bits: positions
must be equal, scores equal to 1e-12 of the map's scale.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from skimage.color import rgb2gray

from matcher import METHODS, MatcherError, match_template
from matcher.search import strategy, tiled as tiles
from matcher.search.find import find
from matcher.search.tiled import find_tiled

ROOT = Path(__file__).resolve().parent.parent
CAMERA = skimage.data.camera()[100:220, 150:310]  # 120 x 160
COINS = skimage.data.coins()[60:180, 40:200]
ASTRO = skimage.data.astronaut()[160:260, 180:300]  # colour, 100 x 120


def same(a, b, scale=None):
    """Equal Match lists: positions exactly, scores to 1e-12 of the scale, same order.

    Windows whose scores tie to that precision (exact copies: 1.0 in one map,
    0.9999999999999999 in the other) may come in either order: their runs of
    tied scores must hold the same windows (sub-pixel positions to 1e-9). ``scale``: the score map's
    largest magnitude, when the matches are all near 0 (ssd at a threshold).
    """
    assert len(a) == len(b), (a[:5], b[:5])
    tol = 1e-12 * max([1.0, scale or 0.0] + [abs(m.score) for m in a])
    for i, (m, n) in enumerate(zip(a, b)):
        assert (m.width, m.height, m.label, m.method) == (n.width, n.height, n.label, n.method)
        assert type(m.x) is type(n.x) and type(m.y) is type(n.y), (i, m, n)
        assert abs(m.score - n.score) <= tol, (i, m, n)
    start = 0
    for i in range(1, len(a) + 1):
        if i == len(a) or abs(a[i].score - a[i - 1].score) > tol:
            run_a = sorted((m.x, m.y) for m in a[start:i])
            run_b = sorted((m.x, m.y) for m in b[start:i])
            assert np.allclose(run_a, run_b, rtol=0, atol=1e-9), (start, a[start:i], b[start:i])
            if i - start == 1:  # not tied: the same window, exactly
                assert (a[start].x, a[start].y) == (b[start].x, b[start].y), (start, a[start], b[start])
            start = i


def plant(background, patch, corners):
    image = background.copy()
    h, w = patch.shape[:2]
    for x, y in corners:
        image[y : y + h, x : x + w] = patch
    return image


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tile", [7, (16, 33)])
def test_photo_every_method(method, tile):
    tpl = CAMERA[40:60, 50:75].copy()
    scale = np.abs(match_template(CAMERA, tpl, method)).max()  # ssd's best is ~0 on a map of ~1e7
    for kw in ({}, {"max_matches": 5}, {"max_matches": None, "subpixel": True},
               {"max_matches": None, "max_overlap": 1.0}, {"max_matches": 3, "max_overlap": 1.0}):
        same(find(CAMERA, tpl, method, **kw), find_tiled(CAMERA, tpl, method, tile=tile, **kw), scale)


@pytest.mark.parametrize("tile", [(5, 9), 16, (33, 20)])
def test_planted_copies_straddling_seams(tile):
    rng = np.random.default_rng(1)
    patch = rng.integers(0, 256, (11, 13), dtype=np.uint8)
    # corners on, next to and across seams of every tile size above
    corners = [(0, 0), (15, 4), (31, 16), (47, 32), (64, 33), (80, 48), (100, 70), (147, 107)]
    image = plant(COINS, patch, corners)
    for method, threshold in (("ncc", 0.99), ("ssd", 0.5), ("ssd_normed", 1e-6), ("ccorr_normed", 0.999)):
        scale = np.abs(match_template(image, patch, method)).max()
        want = find(image, patch, method, threshold=threshold, max_matches=None)
        assert sorted((m.x, m.y) for m in want) == sorted(corners)
        same(want, find_tiled(image, patch, method, threshold=threshold, max_matches=None, tile=tile), scale)
        same(find(image, patch, method, threshold=threshold, max_matches=None, subpixel=True),
             find_tiled(image, patch, method, threshold=threshold, max_matches=None, subpixel=True, tile=tile),
             scale)


@pytest.mark.parametrize("tile", [3, (4, 7), 8])
@pytest.mark.parametrize("method", ["ssd", "ccorr", "ncc", "ccoeff", "ssd_normed", "ccorr_normed"])
def test_plateaus_across_seams(method, tile):
    # Blocks of equal grey: every window inside one block scores the same, so
    # the maps have plateaus many tiles wide, and U-shaped ones whose first
    # pixel is reached only through later tiles.
    rng = np.random.default_rng(2)
    blocks = np.kron(rng.integers(0, 4, (6, 8)), np.ones((9, 7), np.int64)).astype(np.uint8) * 60
    blocks[20:24, 10:40] = 0  # a U: two arms joined at the bottom
    blocks[20:40, 10:13] = 0
    blocks[20:40, 37:40] = 0
    blocks[37:40, 10:40] = 0
    tpl = np.full((3, 3), 60, np.uint8)
    if method in ("ncc", "ccoeff"):
        tpl[1, 1] = 6  # not constant (that scores 0 everywhere); an integer mean keeps scores exact
    for kw in ({"max_matches": None}, {"max_matches": 1}, {"max_matches": 7, "max_overlap": 0.0},
               {"max_matches": None, "subpixel": True}, {"max_matches": None, "max_overlap": 1.0}):
        same(find(blocks, tpl, method, **kw), find_tiled(blocks, tpl, method, tile=tile, **kw))


def test_argmax_on_a_plateau_crossing_seams():
    image = np.zeros((40, 50), np.uint8)
    image[10:30, 5:45] = 200  # the template's own grey: ssd 0 on a 2-D plateau
    tpl = np.full((4, 4), 200, np.uint8)
    want = find(image, tpl, "ssd")
    assert [(m.x, m.y, m.score) for m in want] == [(5, 10, 0.0)]
    for tile in (1, 2, 3, (5, 1), (1, 6)):
        same(want, find_tiled(image, tpl, "ssd", tile=tile))
        same(find(image, tpl, "ssd", max_matches=None), find_tiled(image, tpl, "ssd", max_matches=None, tile=tile))


@pytest.mark.parametrize("method", ["ncc", "ssd", "ccorr_normed"])
def test_masks_colour_thresholds_region(method):
    tpl = ASTRO[30:52, 40:58].copy()
    mask = np.zeros(tpl.shape[:2], bool)
    mask[3:-3, 2:-2] = True
    lo = 0.2 if method == "ssd_normed" else 0.5
    threshold = None if method == "ssd" else lo
    for kw in ({"mask": mask, "max_matches": None}, {"threshold": threshold, "max_matches": 4},
               {"mask": mask, "subpixel": True, "max_matches": None, "threshold": threshold},
               {"region": (10, 5, 90, 80), "max_matches": None},
               {"region": (10, 5, 90, 80), "subpixel": True, "max_matches": 3, "precision": "exact"}):
        same(find(ASTRO, tpl, method, **kw), find_tiled(ASTRO, tpl, method, tile=(13, 17), **kw))
    gray = np.round(rgb2gray(ASTRO) * 255)
    same(find(gray, gray[10:30, 20:40], method, max_matches=None),
         find_tiled(gray, gray[10:30, 20:40], method, max_matches=None, tile=9))


def test_degenerate_inputs_and_errors():
    row = np.arange(50.0) % 7
    same(find(row, [1, 2, 3], "ssd", max_matches=None), find_tiled(row, [1, 2, 3], "ssd", max_matches=None, tile=4))
    # one tile covering everything is the untiled search; a template as large as the image too
    same(find(CAMERA, CAMERA[:30, :30], max_matches=None), find_tiled(CAMERA, CAMERA[:30, :30], max_matches=None, tile=10**6))
    same(find(CAMERA, CAMERA), find_tiled(CAMERA, CAMERA, tile=3))
    with pytest.raises(MatcherError):
        find_tiled(CAMERA, CAMERA[:10, :10], tile=0)
    with pytest.raises(TypeError):
        find_tiled(CAMERA, CAMERA[:10, :10], tile=2.5)
    with pytest.raises(MatcherError):
        find_tiled(CAMERA[:5], CAMERA[:10, :10], tile=3)
    with pytest.raises(MatcherError):
        find_tiled(CAMERA, CAMERA[:10, :10], "ncc", threshold=2.0, tile=3)


def test_find_routes_huge_images(monkeypatch):
    calls = []
    real = tiles._tiled
    monkeypatch.setattr(tiles, "_tiled", lambda *a: calls.append(a[-2:]) or real(*a))
    tpl = CAMERA[40:60, 50:75].copy()
    want = find(CAMERA, tpl, max_matches=None)
    assert calls == []
    monkeypatch.setattr(strategy, "TILED_ABOVE_BYTES", CAMERA.size * 8 - 1)  # "huge" from here
    monkeypatch.setattr(tiles, "_MIN_TILE_BYTES", 1)
    monkeypatch.setattr(tiles, "TILE_BUDGET", 0.5)
    same(want, find(CAMERA, tpl, max_matches=None))
    assert calls and calls[-1] == (32, 32)  # the smallest tiles (the budget is tiny)
    n = len(calls)
    # a region small enough is searched in one piece; pyramid keeps its own path
    same(find(CAMERA, tpl, region=(0, 0, 100, 80), max_matches=None),
         find_tiled(CAMERA, tpl, region=(0, 0, 100, 80), max_matches=None, tile=10**6))
    assert len(calls) == n


MEMORY_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from matcher.search.find import find
    from matcher.search import strategy

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    find(small, small[:8, :8])  # load every library and FFT code path once
    base = status("VmRSS")
    size = {size}
    image = np.zeros((size, size), np.uint8)
    image[:] = np.tile(rng.integers(0, 256, (256, 256), dtype=np.uint8), (size // 256, size // 256))
    image[1000:1064, 2000:2064] = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    tpl = image[1000:1064, 2000:2064].copy()
    strategy.TILED_ABOVE_BYTES = image.size * 8 - 1  # route as if huge
    t = time.time()
    (m,) = find(image, tpl)
    print(m.x, m.y, status("VmHWM") - base, image.nbytes, time.time() - t)
""")


def test_memory_bounded():
    size = 4096
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT.format(root=str(ROOT), size=size)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    x, y, growth, nbytes, seconds = out.stdout.split()
    assert (int(x), int(y)) == (2000, 1000)
    # the image itself is included in the growth; 24 MiB for allocator slack and FFT plans
    assert int(growth) <= 2.5 * int(nbytes) + (24 << 20), (int(growth) / 2**20, seconds)
