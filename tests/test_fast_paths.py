"""The shortcuts of the common call against the general path and the float64 reference.

``find(..., max_matches=1)`` of one template reads its match off the score map
(:func:`matcher.search.exhaustive.best_window`) instead of ranking every local
peak; with a threshold it falls back to the general path when the best window
is within the map's error of the threshold. These tests pin that the shortcut
returns what the general path returns (``max_matches=None``, first match) and
what the float64 reference (:func:`matcher.scores.reference.match_template_reference`)
says: the best window's position (ties: row-major) and its score.
"""

import numpy as np
import pytest

from matcher import LOWER_IS_BETTER, METHODS, find
from matcher.scores.reference import match_template_reference
from matcher.search.exhaustive import best_window, score_maps
from matcher.search.job import make_job
from matcher.options import FindOptions


def scene(seed, shape=(40, 52), levels=None, channels=None):
    """A random image (quantised to ``levels`` values for ties) and a template cut from it."""
    rng = np.random.default_rng(seed)
    full = shape + ((channels,) if channels else ())
    image = rng.random(full)
    if levels:
        image = np.floor(image * levels).astype(np.uint8)
    h, w = 3 + seed % 9, 2 + (seed * 7) % 11
    y, x = rng.integers(0, shape[0] - h + 1), rng.integers(0, shape[1] - w + 1)
    return image, image[y : y + h, x : x + w].copy()


def reference_best(image, template, method):
    ref = match_template_reference(image, template, method)
    ref = ref.reshape(1, -1) if ref.ndim == 1 else ref
    good = -ref if method in LOWER_IS_BETTER else ref
    return ref, good


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(6))
def test_the_best_match_is_the_general_paths_first_and_the_references_best(method, seed):
    image, template = scene(seed, levels=3 if seed % 2 else None, channels=3 if seed == 4 else None)
    (m,) = find(image, template, method)
    assert find(image, template, method, max_matches=None, max_overlap=1.0)[0] == m
    ref, good = reference_best(image, template, method)
    assert m.score == pytest.approx(ref[m.y, m.x], rel=1e-12, abs=1e-12)  # by definition
    # the best window: no window of the reference scores better beyond the engine's contract
    tolerance = 2e-4 * max(1.0, float(np.ptp(ref)))
    assert good[m.y, m.x] >= good.max() - tolerance


def test_ties_go_to_the_first_window_in_row_major_order():
    image = np.zeros((9, 12), np.uint8)
    template = np.array([[0, 5], [5, 0]], np.uint8)
    for y, x in [(6, 1), (2, 8), (2, 3)]:  # planted out of order
        image[y : y + 2, x : x + 2] = template
    for method in METHODS:
        (m,) = find(image, template, method)
        ref, good = reference_best(image, template, method)
        first = np.flatnonzero(good.ravel() == good.max())[0]
        assert (m.y, m.x) == divmod(int(first), ref.shape[1]), method
        assert find(image, template, method, max_matches=None)[0] == m, method


@pytest.mark.parametrize("method", ["ncc", "ssd", "ccorr_normed", "ssd_normed", "ccoeff"])
@pytest.mark.parametrize("precision", ["fast", "exact"])
def test_a_threshold_at_near_and_past_the_best_score(method, precision):
    """Thresholds around the best score: past it by the slack, inside the slack (the general path
    decides) and short of it: always what the general path's first match is, and never a score on
    the wrong side of the threshold."""
    image, template = scene(3, shape=(60, 70))
    template = template + np.random.default_rng(1).normal(0, 0.01, template.shape)
    best = find(image, template, method, precision=precision)[0].score
    sign = 1.0 if method in LOWER_IS_BETTER else -1.0  # towards easier
    for offset in (-1e-2, -1e-5, -1e-9, 0.0, 1e-9, 1e-5, 1e-2):
        threshold = best - sign * offset * max(1.0, abs(best))
        if method in ("ssd_normed", "ssd") and threshold < 0:
            continue
        if method in ("ncc", "ccorr_normed") and abs(threshold) > 1:
            continue
        found = find(image, template, method, threshold=threshold, precision=precision)
        general = find(image, template, method, threshold=threshold, max_matches=None, precision=precision)
        assert found == general[:1], offset
        for m in found:
            assert (m.score <= threshold) if method in LOWER_IS_BETTER else (m.score >= threshold)


def test_best_window_undecided_within_the_slack():
    image, template = scene(5)
    template = template + np.random.default_rng(2).normal(0, 0.3, template.shape)  # best score well under 1
    options = FindOptions.check(threshold=0.5)
    job = make_job(image, [template], [None], [None], options)
    (scores,) = score_maps(job)
    top = float(scores.max())
    assert top < 0.9
    for threshold, want in [(top - 0.05, "found"), (top + 0.05, "none"), (top, "undecided")]:
        job = make_job(image, [template], [None], [None], FindOptions.check(threshold=threshold))
        got = best_window(job, scores)
        if want == "undecided":
            assert got is None
        else:
            assert len(got[0]) == (1 if want == "found" else 0)


def test_one_dimensional_region_and_subpixel_take_the_shortcut_too():
    rng = np.random.default_rng(8)
    signal = rng.random(200)
    template = signal[120:131].copy()
    (m,) = find(signal, template, "ncc", region=(100, 0, 60, 1))
    assert (m.x, m.y, m.score) == (120, 0, 1.0)
    (s,) = find(signal[None], template[None], "ncc", subpixel=True)
    assert s.x == pytest.approx(120, abs=0.5) and s.score == 1.0
    assert s == find(signal[None], template[None], "ncc", subpixel=True, max_matches=None)[0]


@pytest.mark.parametrize("valid, invalid", [
    ({"max_matches": 1}, {"max_matches": True}),
    ({"max_matches": 2}, {"max_matches": 2.0}),
    ({"subpixel": False}, {"subpixel": 0}),
    ({"region": (0, 0, 4, 4)}, {"region": (0, 0, 4.0, 4)}),
    ({"region": (0, 0, 4, 4)}, {"region": (0, 0, True, 4)}),
    ({"threshold": 0.5, "method": "ncc"}, {"threshold": 0.5, "method": "ncc", "max_overlap": 2}),
])
def test_options_checked_once_are_not_taken_for_equal_values_of_another_type(valid, invalid):
    """FindOptions.check remembers the values it has checked (by value and type): a value equal to a
    remembered one (True == 1, 2.0 == 2) but of a type the spec refuses is still refused."""
    first = FindOptions.check(**valid)
    assert FindOptions.check(**valid) == first
    with pytest.raises((TypeError, ValueError)):
        FindOptions.check(**invalid)
    with pytest.raises((TypeError, ValueError)):
        FindOptions.check(**invalid)  # not remembered either


def _plateau_peaks(g):
    """Local peaks by their definition, in plain Python: pixels equal to their 3 x 3 maximum (clipped), one
    per 8-connected group (its first pixel in row-major order), best first, ties row-major."""
    H, W = g.shape
    near = lambda y, x: [(j, i) for j in range(y - 1, y + 2) for i in range(x - 1, x + 2)  # noqa: E731
                         if 0 <= j < H and 0 <= i < W]
    peak = {(y, x) for y in range(H) for x in range(W) if all(g[y, x] >= g[q] for q in near(y, x))}
    seen, firsts = set(), []
    for p in sorted(peak):
        if p in seen:
            continue
        firsts.append(p)
        stack = [p]
        while stack:
            q = stack.pop()
            if q not in seen:
                seen.add(q)
                stack += [r for r in near(*q) if r in peak and r not in seen]
    return sorted(firsts, key=lambda p: (-g[p], p))


def test_local_peaks_and_plateaus_against_their_definition():
    from matcher.search.peaks import local_peaks

    rng = np.random.default_rng(3)
    for _ in range(300):
        shape = tuple(rng.integers(1, 9, 2))
        g = np.floor(rng.random(shape) * rng.integers(1, 4)).astype(float)  # few levels: plateaus that touch
        ys, xs, values = local_peaks(g)
        assert list(zip(ys.tolist(), xs.tolist())) == _plateau_peaks(g)
        assert values.tolist() == [g[y, x] for y, x in zip(ys, xs)]
