"""The nested cells of the pyramid search (matcher.search.levels) against the float64 definition.

- every bound on every level (coarse cells bounded for the whole image, halves
  bounded box by box inside split cells, the finest from the windows' exact least
  energy, a whole level bounded at once) is at least the best score of its cell
  (matcher.scores.reference), on smooth, noisy, blocky, checkerboard-decoy and
  partly constant images, gray and colour, 8-bit and float, for the three
  normalised methods;
- the pieces: block statistics summed two by two equal those of the larger
  blocks; a slice of the statistics bounds its cells as the whole image's do;
  the least window energy is the brute-force minimum (exactly for 8-bit images);
- the search: the levels are used (no fallback) and give the exhaustive answer on
  decoys and near-duplicates; a whole finer level is bounded when splitting would
  cost more, and still agrees; a coarse level that leaves the template too much
  detail for the bar is left out, and the finest level alone still agrees.
"""

import cv2
import numpy as np
import pytest

from matcher.scores.reference import match_template_reference
from matcher.search.block_stats import block_stats, pool_stats
from matcher.search.bounds import cell_bounds, stats_bounds, template_terms
from matcher.search.find import find
import matcher.search.levels as levels_module
from matcher.search.levels import Levels, detail_share, level_sizes, pruning_levels, window_energy_min
from matcher.search.pyramid import find_pyramid
from test_pyramid import cell_max

METHODS = ["ncc", "ccorr_normed", "ssd_normed"]


def scene(kind, rng, shape):
    """Test images: smooth, noisy, blocky (constant on 4 x 4 blocks), a checkerboard on a smooth field,
    and a smooth field with constant patches (windows of zero energy)."""
    base = cv2.GaussianBlur(rng.normal(128, 60, shape), (0, 0), float(rng.uniform(1.0, 3.0)))
    if kind == "noisy":
        base = base + rng.normal(0, 25, shape)
    elif kind == "blocky":
        small = rng.normal(128, 50, ((shape[0] + 3) // 4, (shape[1] + 3) // 4) + shape[2:])
        base = np.kron(small, np.ones((4, 4) + (1,) * (len(shape) - 2)))[: shape[0], : shape[1]]
    elif kind == "checker":
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
        board = np.where((yy + xx) % 2 == 0, 30.0, -30.0)
        base = base + (board[:, :, None] if len(shape) == 3 else board)
    elif kind == "flat":
        base[10:60, 20:90] = 90.0
        base[-40:, -50:] = 200.0
    return np.clip(base, 0, 255)


def cases(seed):
    """(image, template, method) triples, several per scene kind and dtype."""
    rng = np.random.default_rng(seed)
    out = []
    for i, kind in enumerate(["smooth", "noisy", "blocky", "checker", "flat"] * 2):
        H, W = (int(v) for v in rng.integers(110, 170, 2))
        h, w = (int(v) for v in rng.integers(33, 72, 2))
        shape = (H, W, 3) if i % 4 == 3 else (H, W)
        img = scene(kind, rng, shape)
        img = [img.astype(np.uint8), img.astype(np.float32), img * 1e-3 + 7.0][i % 3]
        y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        tpl = img[y : y + h, x : x + w].copy()
        if i % 5 == 1:  # a template that is not in the image
            tpl = np.clip(tpl * 0.7 + rng.normal(0, 9, tpl.shape), 0, 255).astype(img.dtype)
        if kind == "checker" and i % 2:  # the checkerboard's decoy: the template without it
            tpl = cv2.GaussianBlur(tpl.astype(np.float64), (3, 3), 0).astype(img.dtype)
        out.append((img, tpl, METHODS[i % 3]))
    return out


def every_bound(levels):
    """Split every cell of every level (a random half first, so boxes meet cells bounded before)."""
    rng = np.random.default_rng(1)
    for level in range(len(levels.sizes) - 1):
        cells = np.arange(levels.bounds[level].size)
        levels.refine(level, rng.permutation(cells)[: cells.size // 2])
        levels.refine(level, levels.open(level, -np.inf))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_level_bounds_every_window(seed):
    checked = tight = 0
    for img, tpl, method in cases(seed):
        truth = match_template_reference(img, tpl, method)
        goodness = -truth if method == "ssd_normed" else truth
        h, w = tpl.shape[:2]
        for finest in (2, 4):
            sizes = level_sizes(h, w, top_blocks=4, finest=finest)
            assert len(sizes) >= 2
            levels = Levels(img, tpl, method, sizes)
            every_bound(levels)
            for s, bound in zip(levels.sizes, levels.bounds):
                best = cell_max(goodness, s)
                assert bound.shape == best.shape and not np.isnan(bound).any()
                assert (best <= bound + 1e-9).all(), (seed, method, img.dtype, s, float((best - bound).max()))
                checked += 1
                tight += bool((bound - best < 0.02).any())
    assert checked >= 40
    assert tight >= checked // 3  # the bounds are close to the truth somewhere: a wrong one would show


@pytest.mark.parametrize("method", METHODS)
def test_a_whole_level_keeps_the_lower_bound(method):
    img, tpl, _ = cases(5)[0]
    truth = match_template_reference(img, tpl, method)
    goodness = -truth if method == "ssd_normed" else truth
    levels = Levels(img, tpl, method, level_sizes(*tpl.shape[:2], top_blocks=4, finest=2))
    levels.refine(0, np.arange(0, levels.bounds[0].size, 3))  # some halves from the energies first
    before = levels.bounds[1].copy()
    levels.bound_all(1)
    assert levels.live[1].all() and levels.split[0].all()
    assert (levels.bounds[1] <= np.where(np.isnan(before), np.inf, before)).all()
    assert (cell_max(goodness, levels.sizes[1]) <= levels.bounds[1] + 1e-9).all()


def test_the_least_energy_tightens_the_finest_bounds():
    """A template whose energy lies at its edge (a frame), on an image of frames: the blocks every window
    holds miss the edge, the windows' least energy does not."""
    frame = np.full((64, 96), 200, np.uint8)
    cv2.rectangle(frame, (1, 1), (94, 62), 20, 2)
    img = np.full((300, 360), 200, np.uint8)
    rng = np.random.default_rng(3)
    for y, x in ((20, 30), (150, 200), (200, 40), (40, 230)):
        img[y : y + 64, x : x + 96] = frame
    img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    terms = template_terms(frame, 4, True)
    plain, _ = cell_bounds(img, terms, "ncc")
    levels = Levels(img, frame, "ncc", [8, 4])
    every_bound(levels)
    truth = cell_max(match_template_reference(img, frame, "ncc"), 4)
    assert (truth <= levels.bounds[1] + 1e-9).all()
    assert (levels.bounds[1] <= plain + 1e-12).all()
    assert (levels.bounds[1] >= 0.95).sum() <= 0.9 * (plain >= 0.95).sum()  # fewer cells left near the frames


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3])
def test_pooled_statistics_are_those_of_the_larger_blocks(dtype, channels):
    rng = np.random.default_rng(4)
    shape = (101, 77) if channels == 1 else (101, 77, 3)
    img = np.clip(rng.normal(120, 50, shape), 0, 255).astype(dtype)
    for centred in (True, False):
        M, A2 = block_stats(img, 2, 56, 40, centred)
        for b in (4, 8, 16):
            M, A2 = pool_stats(M, A2)
            gy, gx = M.shape[:2]
            M2, A22 = block_stats(img, b, gy, gx, centred)
            scale = float(np.abs(A22).max())
            assert M.shape == M2.shape and np.allclose(M, M2, rtol=0, atol=1e-9 * np.sqrt(scale))
            assert np.allclose(A2, A22, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("method", METHODS)
def test_a_slice_of_the_statistics_bounds_its_cells_as_the_whole_does(method):
    img, tpl, _ = cases(6)[3]
    b = 4
    terms = template_terms(tpl, b, method == "ncc")
    whole, whole_est = cell_bounds(img, terms, method)
    H, W = img.shape[:2]
    M, A2 = block_stats(img, b, -(-H // b) + 3, -(-W // b) + 3, method == "ncc")
    y0, x0, ny, nx = 3, 5, 7, 4
    part, part_est = stats_bounds(M[y0:, x0:], A2[y0:, x0:], terms, method, ny, nx)
    # the same up to the coarse correlation's float32 rounding and its allowance (from the slice's largest mean)
    assert np.allclose(part, whole[y0 : y0 + ny, x0 : x0 + nx], rtol=0, atol=1e-5)
    assert np.allclose(part_est, whole_est[y0 : y0 + ny, x0 : x0 + nx], rtol=0, atol=1e-5)
    crop = img[b * y0 : b * (y0 + ny + terms.nb[0]), b * x0 : b * (x0 + nx + terms.nb[1])]
    Mc, A2c = block_stats(crop, b, ny + terms.nb[0], nx + terms.nb[1], method == "ncc")
    cut, _ = stats_bounds(Mc, A2c, terms, method, ny, nx)
    assert np.allclose(cut, part, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="do not cover"):
        stats_bounds(M[: ny + 1], A2[: ny + 1], terms, method, ny, nx)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
@pytest.mark.parametrize("centred", [True, False])
def test_least_window_energy_is_the_minimum(dtype, centred):
    rng = np.random.default_rng(7)
    for shape in ((90, 70), (90, 70, 3)):
        img = np.clip(rng.normal(100, 60, shape), 0, 255).astype(dtype)
        img[5:40, 3:30] = 17  # windows of (nearly) no energy
        h, w, s = 21, 16, 4
        f = img.astype(np.float64)
        f = f[:, :, None] if f.ndim == 2 else f
        ny, nx = img.shape[0] - h + 1, img.shape[1] - w + 1
        energy = np.empty((ny, nx))
        for y in range(ny):
            for x in range(nx):
                win = f[y : y + h, x : x + w]
                energy[y, x] = ((win - win.mean(axis=(0, 1))) ** 2 if centred else win**2).sum()
        want = np.full((-(-ny // s) * s, -(-nx // s) * s), np.inf)
        want[:ny, :nx] = energy
        want = want.reshape(-(-ny // s), s, -(-nx // s), s).min(axis=(1, 3))
        for cells in ((0, want.shape[0], 0, want.shape[1]), (2, 5, 1, want.shape[1]), (want.shape[0] - 1, want.shape[0], 3, 4)):
            y0, y1, x0, x1 = cells
            got = window_energy_min(img, (h, w), s, cells, centred)
            assert got.shape == (y1 - y0, x1 - x0)
            assert (got <= want[y0:y1, x0:x1] * (1 + 1e-12) + 1e-9).all()
            if dtype == np.uint8:
                assert np.allclose(got, want[y0:y1, x0:x1], rtol=1e-12, atol=1e-6)
            else:
                assert np.allclose(got, want[y0:y1, x0:x1], rtol=1e-6, atol=1e-3 * float((f * f).sum()) * 1e-6)


def test_level_sizes():
    assert level_sizes(128, 128) == [8, 4] and level_sizes(256, 300) == [16, 8, 4]
    assert level_sizes(64, 64, finest=2) == [4, 2] and level_sizes(40, 400, top_blocks=4, finest=2) == [8, 4, 2]
    assert level_sizes(1000, 1000, largest=32) == [32, 16, 8, 4]


def decoy_photo(seed, t=128):
    """A smooth photo-like field with a template planted off the 8-px grid and 6 copies on it that differ
    only by a checkerboard (0.985 ... 0.885 at full resolution, 1 at every block level)."""
    rng = np.random.default_rng(seed)
    field, other = (cv2.resize(cv2.GaussianBlur(rng.normal(128, 50, (200, 200)), (0, 0), 2.0), (900, 900),
                               interpolation=cv2.INTER_CUBIC) for _ in range(2))
    tpl = other[50 : 50 + t, 60 : 60 + t].copy()  # from another field: only the planted copy is exact
    board = np.where(np.add.outer(np.arange(t), np.arange(t)) % 2 == 0, 1.0, -1.0)
    energy = ((tpl - tpl.mean()) ** 2).sum()
    img = field.copy()
    spots = [(r, c) for r in range(3) for c in range(3)][1:]
    rng.shuffle(spots)
    truth = None
    for i, (r, c) in enumerate(spots[:7]):
        py, px = 16 * (1 + r * 17), 16 * (1 + c * 17)
        if i == 0:
            py, px = py + int(rng.integers(1, 8)), px + int(rng.integers(1, 8))
            img[py : py + t, px : px + t] = tpl
            truth = (px, py)
        else:
            target = 0.985 - (i - 1) * 0.02
            img[py : py + t, px : px + t] = tpl + np.sqrt(energy * (1 / target**2 - 1) / board.size) * board
    img = np.clip(np.round(img + rng.normal(0, 1.5, img.shape)), 0, 255).astype(np.uint8)
    return img, np.clip(np.round(tpl), 0, 255).astype(np.uint8), truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nested_search_finds_the_planted_copy_among_decoys(seed):
    img, tpl, truth = decoy_photo(seed)
    (e,) = find(img, tpl, "ncc")
    (p,), info = find_pyramid(img, tpl, "ncc")
    assert (e.x, e.y) == truth and (p.x, p.y) == truth, info
    assert p.score == pytest.approx(e.score, abs=1e-9)
    assert not info.fell_back and info.levels == 3, info  # 8 px cells, then 4 px halves
    top = find(img, tpl, "ncc", max_matches=5)
    found, info = find_pyramid(img, tpl, "ncc", max_matches=5)
    assert [(m.x, m.y) for m in found] == [(m.x, m.y) for m in top], info
    assert [m.score for m in found] == pytest.approx([m.score for m in top], abs=1e-9)


def test_threshold_search_through_a_whole_level_agrees(monkeypatch):
    """Noise on a smooth field: too many 8 px cells may reach a low threshold, so the 4 px level is bounded
    whole (and then the search goes on, not back to the exhaustive search); the 8 px level kept whatever its
    detail (:data:`matcher.search.levels.COARSE_DETAIL`)."""
    monkeypatch.setattr(levels_module, "COARSE_DETAIL", 10.0)
    whole = []
    bound_all = Levels.bound_all
    monkeypatch.setattr(Levels, "bound_all", lambda self, level: (whole.append(level), bound_all(self, level))[1])
    rng = np.random.default_rng(8)
    field = cv2.resize(cv2.GaussianBlur(rng.normal(128, 120, (150, 150)), (0, 0), 1.0), (600, 600))
    img = np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)
    tpl = np.clip(field[200:296, 300:396], 0, 255).astype(np.uint8)
    best = find(img, tpl, "ncc")[0].score
    for threshold, through_whole in ((0.6, [1]), (0.9, []), (best - 0.003, [])):  # the last: a bar at the match
        whole.clear()
        e = find(img, tpl, "ncc", threshold=threshold, max_matches=None)
        p, info = find_pyramid(img, tpl, "ncc", threshold=threshold, max_matches=None)
        assert [(m.x, m.y) for m in e] == [(300, 200)]
        assert [(m.x, m.y) for m in p] == [(m.x, m.y) for m in e], info
        assert [m.score for m in p] == pytest.approx([m.score for m in e], abs=1e-9)
        assert not info.fell_back and whole == through_whole, (threshold, info, whole)


@pytest.mark.parametrize("shape", [(64, 48), (67, 53), (67, 53, 3), (16, 200)])
def test_eight_bit_block_statistics_are_exact(shape):
    """The 8-bit path (area reductions in float32) gives the float64 path's sums exactly, blocks cut by the
    image's edge and blocks past it included."""
    img = np.random.default_rng(9).integers(0, 256, shape).astype(np.uint8)
    for b in (2, 4, 8, 16):
        for gy, gx in ((shape[0] // b, shape[1] // b), (-(-shape[0] // b) + 3, -(-shape[1] // b) + 2)):
            M8, A8 = block_stats(img, b, gy, gx, False)
            M64, A64 = block_stats(img.astype(np.float64), b, gy, gx, False)
            assert M8.shape == M64.shape == (gy, gx, img.ndim * 2 - 3)
            assert np.array_equal(M8, M64) and np.array_equal(A8, A64), (b, gy, gx)
            assert A8.sum() == float((img.astype(np.float64) ** 2)[: gy * b, : gx * b].sum())


def test_a_coarse_level_with_too_much_detail_for_the_bar_is_left_out(monkeypatch):
    """The smooth field under noise with a 96 px template: its 8 px blocks leave it a detail share between
    0.7 x 0.6 and 0.7 x 0.9, so a threshold of 0.6 bounds the 4 px level alone (from the start, whole), one of
    0.9 keeps the 8 px level; both give the exhaustive matches. Without the rule (COARSE_DETAIL large) the
    same matches through both levels."""
    rng = np.random.default_rng(8)
    field = cv2.resize(cv2.GaussianBlur(rng.normal(128, 120, (150, 150)), (0, 0), 1.0), (600, 600))
    img = np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)
    tpl = np.clip(field[200:296, 300:396], 0, 255).astype(np.uint8)
    share = detail_share(template_terms(tpl, 8, True))
    assert 0.7 * 0.6 <= share < 0.7 * 0.9, share
    assert pruning_levels(tpl, [8, 4], True, 0.6)[0] == [4] and pruning_levels(tpl, [8, 4], True, 0.9)[0] == [8, 4]
    for rule in (True, False):
        monkeypatch.setattr(levels_module, "COARSE_DETAIL", 0.7 if rule else 10.0)
        for threshold in (0.6, 0.9):
            e = find(img, tpl, "ncc", threshold=threshold, max_matches=None)
            p, info = find_pyramid(img, tpl, "ncc", threshold=threshold, max_matches=None)
            assert [(m.x, m.y) for m in p] == [(m.x, m.y) for m in e] == [(300, 200)], info
            assert [m.score for m in p] == pytest.approx([m.score for m in e], abs=1e-9)
            assert not info.fell_back and info.levels == (2 if rule and threshold == 0.6 else 3), (rule, info)
