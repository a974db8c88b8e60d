"""matcher.search.peaks against naive oracles.

- ``local_peaks``: a pixel-by-pixel loop over 8 neighbours, with plateaus
  found by a breadth-first flood fill (not ``scipy.ndimage.label``), and
  ``scipy.ndimage.maximum_filter`` (not ``cv2.dilate``);
- ``suppress``: the textbook greedy loop, comparing each candidate with every
  kept window, IoU counted on rasterised boxes;
- ``refine``: sampled quadratics whose maximum is known in closed form.
"""

from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from matcher.search.peaks import iou, local_peaks, refine, suppress

HYPOTHESIS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# oracles
# ---------------------------------------------------------------------------


def naive_peaks(g, floor=None):
    """Local maxima (>= all 8 neighbours), one per plateau (row-major first), best first."""
    H, W = g.shape

    def neighbours(y, x):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy or dx) and 0 <= y + dy < H and 0 <= x + dx < W:
                    yield y + dy, x + dx

    is_peak = np.zeros((H, W), bool)
    for y in range(H):
        for x in range(W):
            is_peak[y, x] = all(g[y, x] >= g[q] for q in neighbours(y, x)) and (floor is None or g[y, x] >= floor)
    seen = np.zeros((H, W), bool)
    found = []
    for y in range(H):  # row-major: the first pixel reached of each plateau represents it
        for x in range(W):
            if is_peak[y, x] and not seen[y, x]:
                found.append((y, x))
                seen[y, x] = True
                queue = deque([(y, x)])
                while queue:
                    for q in neighbours(*queue.popleft()):
                        if is_peak[q] and not seen[q]:
                            seen[q] = True
                            queue.append(q)
    found.sort(key=lambda p: -g[p])  # stable: ties stay row-major
    return found


def raster_iou(a, b):
    """IoU of boxes (x, y, w, h) by counting pixels."""
    size = (max(a[1] + a[3], b[1] + b[3]), max(a[0] + a[2], b[0] + b[2]))
    ma, mb = np.zeros(size, bool), np.zeros(size, bool)
    ma[a[1] : a[1] + a[3], a[0] : a[0] + a[2]] = True
    mb[b[1] : b[1] + b[3], b[0] : b[0] + b[2]] = True
    return (ma & mb).sum() / (ma | mb).sum()


def formula_iou(a, b):
    """IoU of boxes (x, y, w, h) from interval overlaps (checked against raster_iou below)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def naive_suppress(ys, xs, kinds, boxes, max_overlap, limit=None, measure=formula_iou):
    """Keep each candidate, in order, unless its IoU with a kept one exceeds max_overlap."""
    kept = []
    for i in range(len(ys)):
        h, w = boxes[kinds[i]]
        box = (int(xs[i]), int(ys[i]), w, h)
        if all(measure(box, other) <= max_overlap for _, other in kept):
            kept.append((i, box))
            if limit is not None and len(kept) == limit:
                break
    return [i for i, _ in kept]


# ---------------------------------------------------------------------------
# local_peaks
# ---------------------------------------------------------------------------


@HYPOTHESIS
@given(st.integers(1, 9), st.integers(1, 9), st.integers(2, 5), st.integers(0, 2**32 - 1),
       st.one_of(st.none(), st.integers(0, 4)))
def test_local_peaks_match_the_naive_oracle(h, w, levels, seed, floor):
    # few grey levels: plateaus, ties and border peaks everywhere
    g = np.random.default_rng(seed).integers(0, levels, (h, w)).astype(float)
    ys, xs, values = local_peaks(g, floor)
    expected = naive_peaks(g, floor)
    assert list(zip(ys.tolist(), xs.tolist())) == expected
    assert values.tolist() == [g[p] for p in expected]


def test_a_plateau_gives_one_candidate_its_first_pixel():
    g = np.zeros((6, 7))
    g[2:4, 1:5] = 3.0  # a 2 x 4 plateau
    g[5, 6] = 1.0
    ys, xs, values = local_peaks(g, 0.5)
    assert list(zip(ys.tolist(), xs.tolist())) == [(2, 1), (5, 6)]
    assert values.tolist() == [3.0, 1.0]
    flat = np.full((4, 4), 2.0)  # the whole map is one plateau: argmax's pixel
    assert [a.tolist() for a in local_peaks(flat)] == [[0], [0], [2.0]]


@pytest.mark.parametrize("pair", [((1, 2), (2, 1)), ((1, 1), (2, 2)), ((1, 1), (1, 2)), ((1, 1), (2, 1))])
def test_plateaus_connect_in_all_eight_directions(pair):
    g = np.zeros((4, 4))
    for p in pair:
        g[p] = 1.0
    ys, xs, _ = local_peaks(g, 0.5)
    assert list(zip(ys.tolist(), xs.tolist())) == [min(pair)]


def test_equal_isolated_peaks_come_row_major():
    g = np.zeros((60, 60))
    g[::3, ::3] = 1.0  # 400 separate peaks of one value (a sort that is not stable reorders them)
    g[30, 33] = 2.0
    ys, xs, _ = local_peaks(g, 0.5)
    assert (ys[0], xs[0]) == (30, 33)
    assert list(zip(ys[1:].tolist(), xs[1:].tolist())) == [(y, x) for y in range(0, 60, 3) for x in range(0, 60, 3)
                                                            if (y, x) != (30, 33)]


def test_floor_is_inclusive_and_can_leave_nothing():
    g = np.array([[0.0, 0.5, 0.0, 0.0, 0.7]])
    assert local_peaks(g, 0.5)[1].tolist() == [4, 1]
    assert local_peaks(g, 0.7)[1].tolist() == [4]
    assert local_peaks(g, 0.71)[1].size == 0


def test_large_maps_agree_with_scipy_maximum_filter():
    g = ndimage.gaussian_filter(np.random.default_rng(3).normal(size=(300, 400)), 2)
    ys, xs, values = local_peaks(g, 0.0)
    mask = (g == ndimage.maximum_filter(g, 3, mode="nearest")) & (g >= 0.0)
    assert set(zip(ys.tolist(), xs.tolist())) == set(zip(*np.nonzero(mask)))
    assert np.all(np.diff(values) <= 0)


# ---------------------------------------------------------------------------
# suppress and iou
# ---------------------------------------------------------------------------


@HYPOTHESIS
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.9, 1.0]),
       st.one_of(st.none(), st.integers(1, 6)), st.booleans())
def test_suppress_matches_the_naive_greedy_loop(seed, max_overlap, limit, mixed):
    rng = np.random.default_rng(seed)
    boxes = [(3, 4), (5, 2), (1, 1)] if mixed else [(4, 3)]
    image = (20, 24)
    n = int(rng.integers(0, 60))
    kinds = rng.integers(0, len(boxes), n)
    ys = np.array([rng.integers(0, image[0] - boxes[k][0] + 1) for k in kinds], dtype=np.intp)
    xs = np.array([rng.integers(0, image[1] - boxes[k][1] + 1) for k in kinds], dtype=np.intp)
    map_shapes = [(image[0] - h + 1, image[1] - w + 1) for h, w in boxes]
    got = suppress(ys, xs, kinds, boxes, map_shapes, max_overlap, limit).tolist()
    assert got == naive_suppress(ys, xs, kinds, boxes, max_overlap, limit, measure=raster_iou)


def test_suppress_over_many_candidates_crosses_chunks():
    rng = np.random.default_rng(7)
    n = 3000  # more than the first chunks (256, 512, ...)
    ys, xs = rng.integers(0, 200, n), rng.integers(0, 200, n)
    kinds = np.zeros(n, int)
    got = suppress(ys, xs, kinds, [(8, 8)], [(200, 200)], 0.2)
    assert got.tolist() == naive_suppress(ys, xs, kinds, [(8, 8)], 0.2)


@pytest.mark.parametrize("a, b", [((0, 0, 4, 4), (2, 0, 4, 4)), ((1, 2, 3, 5), (2, 1, 6, 2)),
                                  ((0, 0, 2, 2), (2, 2, 2, 2)), ((3, 3, 1, 1), (0, 0, 9, 9))])
def test_iou_counts_pixels(a, b):
    assert iou(a, b) == pytest.approx(raster_iou(a, b))
    assert formula_iou(a, b) == pytest.approx(raster_iou(a, b))


# ---------------------------------------------------------------------------
# refine
# ---------------------------------------------------------------------------


def quadratic(shape, top, axx=-1.0, ayy=-1.5, axy=0.4):
    """A concave quadratic sampled on a grid, maximum at ``top`` = (y, x)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    dy, dx = yy - top[0], xx - top[1]
    return axx * dx**2 + ayy * dy**2 + axy * dx * dy


@pytest.mark.parametrize("seed", range(5))
def test_refine_recovers_a_quadratic_exactly(seed):
    rng = np.random.default_rng(seed)
    ty, tx = 4 + rng.uniform(-0.45, 0.45), 5 + rng.uniform(-0.45, 0.45)
    g = quadratic((9, 11), (ty, tx), axy=rng.uniform(-0.8, 0.8))
    y, x = np.unravel_index(g.argmax(), g.shape)
    fy, fx = refine(g, np.array([y]), np.array([x]))
    assert (fy[0], fx[0]) == pytest.approx((ty, tx), abs=1e-9)


def test_refine_clamps_to_half_a_pixel():
    # refined at a pixel that is not the maximum: the fit finds the true vertex, 0.9 px away
    g = quadratic((7, 7), (3.2, 3.9))
    fy, fx = refine(g, np.array([3]), np.array([3]))
    assert fx[0] == 3.5
    assert fy[0] == pytest.approx(3.2)
    fy, fx = refine(-g, np.array([3]), np.array([3]))  # a minimum: no 2-D fit, parabolas curve up
    assert (fy[0], fx[0]) == (3.0, 3.0)


def test_refine_keeps_border_axes_integer():
    g = quadratic((6, 6), (2.3, -0.4))  # maximum left of column 0
    fy, fx = refine(g, np.array([2]), np.array([0]))
    assert fx[0] == 0.0
    # along y, the parabola through g[1:4, 0]; an axis-aligned 1-D quadratic: exact
    col = g[1:4, 0]
    expected = 2 + (col[0] - col[2]) / (2 * (col[0] - 2 * col[1] + col[2]))
    assert fy[0] == pytest.approx(expected)
    row = quadratic((1, 8), (0, 4.2))  # a single-row map: y stays 0
    fy, fx = refine(row, np.array([0]), np.array([4]))
    assert fy[0] == 0.0 and fx[0] == pytest.approx(4.2)


def test_refine_without_curvature_stays_put():
    g = np.zeros((5, 5))
    g[2, 2] = 1.0
    g[2, 3] = 1.0  # flat pair along x: parabola vertex at +0.5
    assert refine(g, np.array([2]), np.array([2]))[1][0] == 2.5
    flat = np.ones((5, 5))
    assert [a.tolist() for a in refine(flat, np.array([2]), np.array([2]))] == [[2.0], [2.0]]


def test_refine_on_a_saddle_falls_back_to_per_axis_parabolas():
    yy, xx = np.mgrid[0:5, 0:5].astype(float)
    g = -(xx - 2.2) ** 2 + 0.5 * (yy - 2) ** 2 + 3 * (xx - 2.2) * (yy - 2)  # indefinite Hessian
    fy, fx = refine(g, np.array([2]), np.array([2]))
    assert fy[0] == 2.0  # y curves upwards: no offset
    assert fx[0] == pytest.approx(2.2)  # x: the parabola through row 2
