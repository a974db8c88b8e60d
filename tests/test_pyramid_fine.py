"""The pyramid search's finest stage (matcher.search.levels.Levels.tighten, the rising bar) against the oracles.

- the finest bounds re-bounded with the windows' least energy (a whole level
  bounded first, then tightened, in pieces and boxes of any size) stay at or
  above the float64 definition's best score of every cell
  (matcher.scores.reference), are never above the bound before, and are below
  it somewhere; smooth, noisy, blocky, checkerboard-decoy and partly constant
  images, gray and colour, 8-bit and float, the three normalised methods;
- the parts kept for that (numerator, energies) give back the bound they came
  from;
- the search through a whole finest level, tightened, with the bar rising from
  best guesses, returns the exhaustive find's matches on 64 px templates among
  checkerboard decoys and on degraded photographs (the fallback threshold raised
  so that the bounded path answers);
- the batched climb (matcher.search.ranking.ExactScores.peaks) ends where the
  same climb on the whole exact map (the float64 definition) ends, with its value,
  from starts anywhere, edges and corners included.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

import matcher.search.pyramid as pyramid
from matcher.scores.reference import match_template_reference
from matcher.search.block_stats import block_stats
from matcher.search.bounds import bound_from_parts, bound_parts, stats_bounds, template_terms
from matcher.search.find import find
from matcher.search.levels import Levels, level_sizes
from matcher.search.pyramid import find_pyramid
from matcher.search.ranking import MAX_CLIMB, ExactScores

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_pyramid import button  # noqa: E402  (a flat GUI button: the bench's icons scene)
from test_pyramid import board_scene, cell_max, degraded_cases, same_best
from test_pyramid_levels import cases, decoy_photo


@pytest.mark.parametrize("seed", [0, 1])
def test_tightened_finest_bounds_hold_for_every_window(seed):
    checked = tighter = 0
    rng = np.random.default_rng(seed + 20)
    for img, tpl, method in cases(seed):
        truth = match_template_reference(img, tpl, method)
        goodness = -truth if method == "ssd_normed" else truth
        h, w = tpl.shape[:2]
        for finest in (2, 4):
            levels = Levels(img, tpl, method, level_sizes(h, w, top_blocks=4, finest=finest))
            last = len(levels.sizes) - 1
            levels.bound_all(last)
            plain = levels.bounds[last].copy()
            cells = rng.permutation(plain.size)
            for part in np.array_split(cells, 3):  # scattered cells first, then the rest: boxes of all sizes
                levels.tighten(part)
            assert levels.tight.all()
            assert levels.tighten(np.arange(plain.size)) == 0  # nothing left to re-bound
            bound = levels.bounds[last]
            best = cell_max(goodness, levels.sizes[last])
            assert not np.isnan(bound).any()
            assert (best <= bound + 1e-9).all(), (seed, method, img.dtype, finest, float((best - bound).max()))
            assert (bound <= plain).all()
            checked += 1
            tighter += bool((bound < plain - 1e-6).any())
    assert checked >= 16 and tighter >= checked // 2


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_bound_parts_give_back_the_bound(method):
    img, tpl, _ = cases(3)[0]
    terms = template_terms(tpl, 4, method == "ncc")
    ny, nx = (img.shape[0] - tpl.shape[0]) // 4 + 1, (img.shape[1] - tpl.shape[1]) // 4 + 1
    M, A2 = block_stats(img, 4, ny + terms.nb[0], nx + terms.nb[1], method == "ncc")
    bound, estimate = stats_bounds(M, A2, terms, method, ny, nx)
    parts = bound_parts(M, A2, terms, ny, nx)
    assert np.array_equal(bound_from_parts(parts, terms, method), bound)
    assert np.array_equal(parts.estimate, estimate)
    more = bound_from_parts(parts, terms, method, energy=parts.ext2)  # the largest energy any window has
    assert (more <= bound).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("t", [64, 96])
def test_decoys_through_a_whole_tightened_finest_level(seed, t, monkeypatch):
    """Templates among checkerboard decoys that win on every reduced level: 64 px bound on 4 px cells whole
    from the start (one level), 96 px on 8 px cells, then the 4 px level bounded whole (as when the 8 px
    cells leave too many); either way tightened by the windows' least energy."""
    monkeypatch.setattr(pyramid, "MAX_SCORED", 1.0)
    monkeypatch.setattr(pyramid, "MAX_SPLIT", 0.0)
    monkeypatch.setattr(pyramid, "MIN_SPLIT", 64)
    calls = []
    for name in ("bound_all", "tighten"):
        method = getattr(Levels, name)
        monkeypatch.setattr(Levels, name, lambda self, arg, m=method, n=name: (calls.append(n), m(self, arg))[1])
    img, tpl, truth = decoy_photo(seed, t=t)
    for k in (1, 3):
        calls.clear()
        e = find(img, tpl, "ncc", max_matches=k)
        p, info = find_pyramid(img, tpl, "ncc", max_matches=k)
        assert not info.fell_back and "tighten" in calls, (info, calls)
        assert info.levels == 2 if t == 64 else ("bound_all" in calls and info.levels == 3), (info, calls)
        assert k > 1 or (p[0].x, p[0].y) == truth
        assert [(m.x, m.y) for m in p] == [(m.x, m.y) for m in e], (seed, k, info)
        assert [m.score for m in p] == pytest.approx([m.score for m in e], abs=1e-9)


def test_degraded_photographs_through_the_finest_stage(monkeypatch):
    monkeypatch.setattr(pyramid, "MAX_SCORED", 1.0)
    checked = 0
    for scene, tpl, _ in degraded_cases(24, seed=7):
        tpl = tpl[:64, :64]
        (e,) = find(scene, tpl, "ncc")
        (p,), info = find_pyramid(scene, tpl, "ncc")
        assert same_best(e, p), info
        checked += not info.fell_back
    assert checked >= 20


def climb_on_map(goodness, y, x, steps):
    """The climb of ExactScores.peaks, on a whole goodness map: to the first best of the 3 x 3 neighbourhood
    (clipped) while it beats the centre."""
    my, mx = goodness.shape[0] - 1, goodness.shape[1] - 1
    value = goodness[y, x]
    for _ in range(steps):
        ny = np.clip(y + np.array([-1, -1, -1, 0, 0, 0, 1, 1, 1]), 0, my)
        nx = np.clip(x + np.array([-1, 0, 1, -1, 0, 1, -1, 0, 1]), 0, mx)
        g = goodness[ny, nx]
        best = int(np.argmax(g))
        if g[best] <= g[4]:
            return y, x, g[4]
        y, x, value = int(ny[best]), int(nx[best]), g[best]
    return y, x, value


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_batched_climb_is_the_climb_on_the_exact_map(method):
    rng = np.random.default_rng(30)
    for img, tpl, _ in cases(4)[:6]:
        truth = match_template_reference(img, tpl, method)
        sign = -1.0 if method == "ssd_normed" else 1.0
        exact = ExactScores(img, tpl, method, sign)
        ys = rng.integers(0, truth.shape[0], 40)
        xs = rng.integers(0, truth.shape[1], 40)
        ys[:4], xs[:4] = [0, truth.shape[0] - 1, 0, 5], [0, truth.shape[1] - 1, truth.shape[1] - 1, 0]  # edges
        py, px, value = exact.peaks(ys, xs)
        for i in range(ys.size):
            want = climb_on_map(sign * truth, int(ys[i]), int(xs[i]), MAX_CLIMB)
            assert (py[i], px[i]) == want[:2]
            assert value[i] == pytest.approx(want[2], abs=1e-12)


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_levels_bounded_in_bands_hold_and_match_one_call(method, monkeypatch):
    """A whole level bounded in bands of rows (one per thread) holds for every window and is close to the
    one-call bound (they differ by the rounding allowance, which follows the band's largest block mean,
    and, for the statistics of crops, by the mean they are centred on)."""
    import matcher.search.levels as levels_module

    for img, tpl, _ in cases(6)[:5]:
        truth = match_template_reference(img, tpl, method)
        goodness = -truth if method == "ssd_normed" else truth
        sizes = level_sizes(*tpl.shape[:2], top_blocks=4, finest=2)
        monkeypatch.setattr(levels_module, "PARALLEL_CELLS", 1 << 40)
        whole = Levels(img, tpl, method, sizes)
        for level in range(1, len(sizes)):
            whole.bound_all(level)
        monkeypatch.setattr(levels_module, "PARALLEL_CELLS", 8)  # bands of a few rows
        monkeypatch.setattr(levels_module, "num_threads", lambda: 3)
        banded = Levels(img, tpl, method, sizes)
        for level in range(1, len(sizes)):
            banded.bound_all(level)
        for level, s in enumerate(sizes):
            assert np.allclose(banded.bounds[level], whole.bounds[level], rtol=0, atol=0.1)
            assert (cell_max(goodness, s) <= banded.bounds[level] + 1e-9).all()


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_climb_leaving_out_neighbours_ranked_far_below(method):
    """Ranking scores off the exact ones by less than margin / 2 (and some not ranked: NaN): leaving out
    the neighbours ranked more than margin below the start changes no climb."""
    rng = np.random.default_rng(31)
    margin = 2e-3
    for img, tpl, _ in cases(8)[:6]:
        truth = match_template_reference(img, tpl, method)
        sign = -1.0 if method == "ssd_normed" else 1.0
        goodness = sign * truth
        H, W = goodness.shape
        ranked = np.pad(goodness + rng.uniform(-0.49, 0.49, goodness.shape) * margin, 1, constant_values=np.nan)
        ranked[rng.random(ranked.shape) < 0.1] = np.nan
        ys, xs = rng.integers(0, H, 60), rng.integers(0, W, 60)
        ranks = ranked[ys[:, None] + 1 + np.repeat([-1, 0, 1], 3), xs[:, None] + 1 + np.tile([-1, 0, 1], 3)]
        ranks[:, 4] = goodness[ys, xs]  # the starts themselves are ranked
        py, px, value = ExactScores(img, tpl, method, sign).peaks(ys, xs, ranks, margin)
        for i in range(ys.size):
            want = climb_on_map(goodness, int(ys[i]), int(xs[i]), MAX_CLIMB)
            assert (py[i], px[i]) == want[:2] and value[i] == pytest.approx(want[2], abs=1e-12)


@pytest.mark.parametrize("shape", [(67, 53), (130, 41, 3), (16, 200)])
def test_eight_bit_block_statistics_in_bands_are_exact(shape, monkeypatch):
    """8-bit block sums taken in bands of block rows (on threads) are the float64 path's sums exactly, the
    bottom band's blocks cut by the image's edge and the rows of blocks past it included."""
    import matcher.search.block_stats as block_stats_module

    monkeypatch.setattr(block_stats_module, "_BAND_PIXELS", 300)
    img = np.random.default_rng(10).integers(0, 256, shape).astype(np.uint8)
    for b in (2, 4, 8):
        for centred in (False, True):
            gy, gx = -(-shape[0] // b) + 3, -(-shape[1] // b) + 2
            M8, A8 = block_stats(img, b, gy, gx, centred)
            M64, A64 = block_stats(img.astype(np.float64), b, gy, gx, centred)
            if centred:  # the two paths centre differently (sums, pixels): equal to rounding
                assert np.allclose(M8, M64, rtol=0, atol=1e-9) and np.allclose(A8, A64, rtol=1e-12, atol=1e-6)
            else:
                assert np.array_equal(M8, M64) and np.array_equal(A8, A64), (b, shape)


def test_whole_levels_in_bands_with_banded_block_sums_finish_and_agree(monkeypatch):
    """A whole 4 px level bounded in bands on the engine's threads, each band taking its block sums in
    bands too (from inside a task of the pool: serially, or the pool would wait on itself); the search
    must finish and give the exhaustive answer."""
    import threading

    import matcher.search.block_stats as block_stats_module
    import matcher.search.levels as levels_module

    monkeypatch.setattr(pyramid, "MAX_SCORED", 1.0)
    monkeypatch.setattr(pyramid, "MAX_SPLIT", 0.0)
    monkeypatch.setattr(pyramid, "MIN_SPLIT", 64)
    monkeypatch.setattr(levels_module, "PARALLEL_CELLS", 256)
    monkeypatch.setattr(block_stats_module, "_BAND_PIXELS", 4096)
    img, tpl, truth = decoy_photo(0, t=96)
    out = {}
    worker = threading.Thread(target=lambda: out.update(found=find_pyramid(img, tpl, "ncc", max_matches=2)),
                              daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the search waits on its own thread pool"
    found, info = out["found"]
    e = find(img, tpl, "ncc", max_matches=2)
    assert not info.fell_back and info.levels == 3, info
    assert (found[0].x, found[0].y) == truth
    assert [(m.x, m.y) for m in found] == [(m.x, m.y) for m in e]


def button_screen(seed, rows=7, cols=6):
    """A screen of ``rows x cols`` buttons, many of them exact or one-glyph copies of each other, light noise."""
    rng = np.random.default_rng(seed)
    labels = ["Open", "Save", "Sava", "Close", "Clase", "Print"]
    img = np.full((40 + rows * 125, 30 + cols * 168), 250, np.uint8)
    for r in range(rows):
        for c in range(cols):
            y, x = 40 + r * 125, 30 + c * 168
            img[y : y + 64, x : x + 120] = button(labels[int(rng.integers(0, 6))], int(rng.integers(0, 3)))
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def spy_overflow(monkeypatch):
    """Record the reasons :meth:`_Cells.overflow` gives ("" when the search goes on)."""
    calls = []
    method = pyramid._Cells.overflow
    monkeypatch.setattr(pyramid._Cells, "overflow",
                        lambda self, *a: (calls.append(method(self, *a)), calls[-1])[1])
    return calls


def test_early_fallback_from_a_sample_gives_the_exhaustive_answer(monkeypatch):
    """Repeated buttons (the bench's icons): the bounds leave most cells near every button, the search falls
    back as soon as the sample's estimate says so, before tightening them all; the answer is the exhaustive
    find's, with its scores."""
    calls = spy_overflow(monkeypatch)
    early = 0
    for seed in range(3):
        img = button_screen(seed)
        for label, icon in (("Save", 0), ("Close", 2)):
            tpl = button(label, icon)
            calls.clear()
            found, info = find_pyramid(img, tpl, "ncc", max_matches=2)
            e = find(img, tpl, "ncc", max_matches=2)
            assert [(m.x, m.y) for m in found] == [(m.x, m.y) for m in e], (seed, label, info)
            assert [m.score for m in found] == pytest.approx([m.score for m in e], abs=1e-9)
            early += info.fell_back and "sample" in info.reason and calls[-1] == info.reason
    assert early >= 2


def test_search_goes_on_when_the_sample_says_the_tightened_cells_fit(monkeypatch):
    """64 px templates in small degraded photographs, with no floor under the limit, so that the cells that
    may reach the bar often outnumber it before tightening: where the sample's estimate fits, the search goes
    on (the sample tightened) and returns the exhaustive find's best match."""
    monkeypatch.setattr(pyramid, "MIN_SCORED", 64)
    monkeypatch.setattr(pyramid, "MIN_SAMPLE_CLUSTERS", 4)
    calls = spy_overflow(monkeypatch)
    went_on = 0
    for scene, tpl, _ in degraded_cases(24, seed=11):
        tpl = tpl[:64, :64]
        calls.clear()
        (e,) = find(scene, tpl, "ncc")
        (p,), info = find_pyramid(scene, tpl, "ncc")
        assert same_best(e, p), info
        went_on += "" in calls and not info.fell_back
    assert went_on >= 3


def test_threshold_search_scores_untightened_cells_when_they_fit(monkeypatch):
    """``max_matches=None`` with a threshold: the bar is final, so the finest cells that may reach it are all
    scored, untightened when they fit under the limit (board seeds 1 and 2), tightened first when they do not
    (seed 0, after the sample's estimate); either way the exhaustive find's matches, with their scores."""
    calls = []
    tighten = Levels.tighten
    monkeypatch.setattr(Levels, "tighten", lambda self, cells: (calls.append(len(cells)), tighten(self, cells))[1])
    paths = set()
    for seed in range(3):
        img, led, corners = board_scene(seed)
        calls.clear()
        e = find(img, led, "ncc", threshold=0.8, max_matches=None)
        p, info = find_pyramid(img, led, "ncc", threshold=0.8, max_matches=None)
        assert sorted((m.x, m.y) for m in p) == sorted(corners) and not info.fell_back, info
        assert [(m.x, m.y) for m in p] == [(m.x, m.y) for m in e], info
        assert [m.score for m in p] == pytest.approx([m.score for m in e], abs=1e-9)
        paths.add("tightened" if calls else "untightened")
    assert paths == {"tightened", "untightened"}
