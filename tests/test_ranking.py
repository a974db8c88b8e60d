"""The pyramid's full-resolution ranking (matcher.search.ranking) against the float64 definition.

- ``ranking_scores`` on boxes small enough for numpy products and on boxes
  ranked by OpenCV's float32 transforms, gray and colour, 8-bit and float, the
  three normalised methods: within the pyramid's ``SLACK / 2`` of the definition
  (the allowance its proof of skipping a neighbour rests on);
- which path a box takes (:data:`DIRECT_POSITIONS`, :data:`DIRECT_MIN_VALUES`);
- ``ExactScores.peaks`` climbs to a local maximum of the definition's map.
"""

import cv2
import numpy as np
import pytest
import skimage.data

from matcher.scores.reference import match_template_reference
from matcher.search import ranking
from matcher.search.pyramid import SLACK
from matcher.search.ranking import DIRECT_MIN_VALUES, DIRECT_POSITIONS, ExactScores, ranking_scores

METHODS = ("ncc", "ccorr_normed", "ssd_normed")


def scene(colour, dtype):
    img = skimage.data.astronaut()[100:300, 120:320]
    img = img if colour else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if dtype == np.float32:
        return img.astype(np.float32) / 255.0 + 3.0  # an offset the centring must absorb
    return img


def goodness(img, tpl, method):
    sign = -1.0 if method == "ssd_normed" else 1.0
    return sign, sign * match_template_reference(img, tpl, method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("side", [32, 48])
def test_boxes_rank_within_slack_of_the_definition(method, colour, dtype, side):
    img = scene(colour, dtype)
    tpl = img[60 : 60 + side, 90 : 90 + side].copy()
    sign, truth = goodness(img, tpl, method)
    boxes = [(0, 0, 0, 0), (10, 13, 20, 23), (40, 40, 5, 60), (0, truth.shape[0] - 1, 0, truth.shape[1] - 1)]
    for y0, y1, x0, x1 in boxes:
        g = ranking_scores(img, tpl, method, sign, y0, y1, x0, x1)
        assert g.shape == (y1 - y0 + 1, x1 - x0 + 1)
        np.testing.assert_allclose(g, truth[y0 : y1 + 1, x0 : x1 + 1], rtol=0, atol=SLACK / 2)


@pytest.mark.parametrize("method", METHODS)
def test_both_paths_agree_with_the_definition_on_one_box(method, monkeypatch):
    img = scene(False, np.uint8)
    tpl = img[30:94, 40:104].copy()  # 64 px: 4096 values, small boxes are ranked by products
    sign, truth = goodness(img, tpl, method)
    want = truth[20:24, 30:34]
    direct = ranking_scores(img, tpl, method, sign, 20, 23, 30, 33)
    monkeypatch.setattr(ranking, "DIRECT_POSITIONS", 0)  # force OpenCV's transforms
    transformed = ranking_scores(img, tpl, method, sign, 20, 23, 30, 33)
    np.testing.assert_allclose(direct, want, rtol=0, atol=1e-9)  # float64 products: as exact as the definition
    np.testing.assert_allclose(transformed, want, rtol=0, atol=SLACK / 2)


def test_which_boxes_are_ranked_by_products(monkeypatch):
    img = scene(False, np.uint8)
    calls = []
    monkeypatch.setattr(ranking, "direct_scores", lambda crop, tpl, method: calls.append(crop.shape) or
                        np.zeros((crop.shape[0] - tpl.shape[0] + 1, crop.shape[1] - tpl.shape[1] + 1)))
    big = img[:64, :64].copy()
    assert big.size >= DIRECT_MIN_VALUES
    ranking_scores(img, big, "ncc", 1.0, 0, 3, 0, 3)  # 16 positions: products
    assert calls == [(67, 67)]
    ranking_scores(img, big, "ncc", 1.0, 0, 3, 0, 4)  # 20 positions: OpenCV
    assert len(calls) == 1
    small = img[:40, :40].copy()  # 1600 values: OpenCV for any box
    assert small.size < DIRECT_MIN_VALUES
    ranking_scores(img, small, "ncc", 1.0, 0, 0, 0, 0)
    assert len(calls) == 1
    assert DIRECT_POSITIONS == 16


@pytest.mark.parametrize("method", METHODS)
def test_exact_peaks_climb_to_a_local_maximum_of_the_definition(method):
    img = scene(True, np.uint8)
    tpl = img[50:90, 70:110].copy()
    sign, truth = goodness(img, tpl, method)
    starts_y, starts_x = np.array([45, 52, 120, 3]), np.array([66, 73, 10, 150])
    ys, xs, values = ExactScores(img, tpl, method, sign).peaks(starts_y, starts_x)
    np.testing.assert_allclose(values, truth[ys, xs], rtol=0, atol=1e-12)  # by definition
    assert np.all(values >= truth[starts_y, starts_x] - 1e-12)  # a climb never descends
    padded = np.pad(truth, 1, constant_values=-np.inf)
    for y, x, v in zip(ys[:2], xs[:2], values[:2]):  # near the template's own window: climbed to the top
        assert (y, x) == (50, 70) and v == pytest.approx(truth.max(), abs=1e-12)  # 1, or 0 for ssd_normed
        assert v >= padded[y : y + 3, x : x + 3].max()
