"""matcher.render: drawing matches, score heat maps, PNG encoding."""

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from matcher import match_template
from matcher.errors import MatcherError
from matcher.search.find import Match, find
from matcher.io import load_image
from matcher.render import COLORMAP, draw_matches, encode_png, layout_labels, score_heatmap, to_display_rgb

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

LUT = cv2.cvtColor(cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], COLORMAP), cv2.COLOR_BGR2RGB)[:, 0]
HOT, COLD = LUT[255], LUT[0]


def box(x, y, w, h, score=0.5):
    return SimpleNamespace(x=x, y=y, width=w, height=h, score=score)


def border(img, x, y, w, h, t=1):
    """The pixels of the t-pixel frame just inside the window (x, y, w, h)."""
    frame = np.zeros(img.shape[:2], bool)
    frame[y:y + h, x:x + w] = True
    frame[y + t:y + h - t, x + t:x + w - t] = False
    return img[frame]


# ---------------------------------------------------------------- draw_matches

def test_boxes_cover_exactly_the_matched_windows():
    image = np.full((40, 60), 100, np.uint8)
    matches = [box(5, 6, 20, 10), box(30, 20, 25, 15)]
    out = draw_matches(image, matches, labels=False, thickness=2)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    red = [255, 0, 0]
    painted = (out == red).all(axis=2)
    expected = np.zeros((40, 60), bool)
    for m in matches:
        expected[m.y:m.y + m.height, m.x:m.x + m.width] = True
        expected[m.y + 2:m.y + m.height - 2, m.x + 2:m.x + m.width - 2] = False
    assert (painted == expected).all()
    assert (out[~painted] == 100).all()
    assert (image == 100).all()  # the input is not modified


def test_colour_thickness_and_subpixel_rounding():
    out = draw_matches(np.zeros((30, 30, 3), np.uint8), [box(4.6, 5.4, 10, 8)], color=(0, 200, 50), thickness=3,
                       labels=False)
    assert (border(out, 5, 5, 10, 8, t=3) == [0, 200, 50]).all()
    assert (out[8:10, 8:12] == 0).all() and (out[4] == 0).all() and (out[:, 4] == 0).all()


def test_labels_show_rank_and_score_without_covering_boxes():
    image = np.zeros((120, 200), np.uint8)
    matches = [box(20, 40, 60, 50, 0.987), box(120, 40, 60, 50, 0.5)]
    plain = draw_matches(image, matches, labels=False)
    labelled = draw_matches(image, matches)
    changed = (plain != labelled).any(axis=2)
    assert changed[:40].any()  # text above the boxes
    assert not changed[90:].any()
    for m in matches:  # the boxes are intact
        assert (border(labelled, m.x, m.y, m.width, m.height, t=2) == [255, 0, 0]).all()
    # the labels differ (rank and score): the two text areas are not the same picture
    assert not np.array_equal(labelled[20:40, 20:80], labelled[20:40, 120:180])


def test_label_goes_below_a_box_at_the_top_edge_and_inside_a_box_as_tall_as_the_picture():
    image = np.full((60, 80), 100, np.uint8)
    out = draw_matches(image, [box(10, 0, 50, 40, 1.0)])
    plain = draw_matches(image, [box(10, 0, 50, 40, 1.0)], labels=False)
    changed = (out != plain).any(axis=2)
    assert changed[40:56, 10:60].any() and not changed[:40].any()  # the matched pixels stay visible
    out = draw_matches(image, [box(0, 0, 80, 60, 1.0)])
    plain = draw_matches(image, [box(0, 0, 80, 60, 1.0)], labels=False)
    changed = (out != plain).any(axis=2)
    assert changed[2:16, 2:40].any() and not changed[16:].any()  # inside, at the top


def test_match_objects_and_dicts_are_accepted():
    image = load_image(SAMPLES / "coins.png").pixels
    template = load_image(SAMPLES / "coins_coin.png").pixels
    matches = find(image, template, max_matches=3)
    out = draw_matches(image, matches, labels=False)
    for m in matches:
        assert isinstance(m, Match)
        assert (border(out, m.x, m.y, m.width, m.height, t=2) == [255, 0, 0]).all()
    out_dicts = draw_matches(image, [m.to_dict() for m in matches], labels=False)
    assert np.array_equal(out, out_dicts)


def test_boxes_partly_outside_are_clipped():
    out = draw_matches(np.zeros((20, 20), np.uint8), [box(-5, 15, 10, 10), box(30, 30, 5, 5)], labels=True)
    assert out.shape == (20, 20, 3)
    assert (out[15, 0:5] == [255, 0, 0]).all() and (out[15:20, 4] == [255, 0, 0]).all()


def coins_matches():
    image = load_image(SAMPLES / "coins.png").pixels
    template = load_image(SAMPLES / "coins_coin.png").pixels
    return image, find(image, template, "ncc", threshold=0.5, max_matches=None)


def grid(shape, size, step, start=0):
    """Boxes of size x size every step pixels: a dense synthetic scene."""
    H, W = shape
    return [box(x, y, size, size, round(0.5 + 0.0001 * (x + 7 * y), 4))
            for y in range(start, H - size + 1, step) for x in range(0, W - size + 1, step)]


LAYOUT_CASES = {
    "coins": lambda: coins_matches(),
    "dense grid": lambda: (np.full((300, 300), 128, np.uint8), grid((300, 300), 30, 32)),
    "touching grid": lambda: (np.full((200, 240), 90, np.uint8), grid((200, 240), 20, 20)),
    "sparse grid": lambda: (np.full((300, 300), 128, np.uint8), grid((300, 200), 30, 40, start=60)),
    "overlapping": lambda: (np.full((120, 200), 60, np.uint8), [box(10 + 14 * i, 30 + 4 * (i % 3), 40, 40, 0.9 - i / 100)
                                                                for i in range(10)]),
}


def rectangles(labels):
    return [(lb.x, lb.y, lb.x + lb.width, lb.y + lb.height) for lb in labels]


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_label_rectangles_are_disjoint_and_inside_the_picture(case):
    image, matches = LAYOUT_CASES[case]()
    H, W = image.shape[:2]
    labels = layout_labels(matches, image.shape)
    rects = rectangles(labels)
    for x0, y0, x1, y1 in rects:
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (case, a, b)
    ranks = [lb.rank for lb in labels if lb.rank is not None]
    assert ranks == sorted(set(ranks)) and set(ranks) <= set(range(1, len(matches) + 1))
    # every rank written in a label or legend is the one of its match, with its score
    for lb in labels:
        for line in lb.text.split("\n"):
            rank, _, score = line.partition(": ")
            assert lb.rank is None or int(rank) == lb.rank
            if score:
                assert float(score) == pytest.approx(float(matches[int(rank) - 1].score), abs=5e-4)


def test_every_coin_gets_its_full_label():
    image, matches = coins_matches()
    labels = layout_labels(matches, image.shape)
    assert len(matches) == 24
    assert [lb.rank for lb in labels] == list(range(1, 25))  # no legend needed
    assert labels[0].text == "1: 1" and labels[23].text == f"24: {matches[23].score:.3f}"
    # each label touches its own box (above, inside, below or beside it)
    for lb, m in zip(labels, matches):
        assert lb.x < m.x + m.width and m.x < lb.x + lb.width
        assert m.y - lb.height <= lb.y <= m.y + m.height


def test_crowded_boxes_are_numbered_with_a_legend():
    image, matches = LAYOUT_CASES["sparse grid"]()
    labels = layout_labels(matches, image.shape)
    legend = [lb for lb in labels if lb.rank is None]
    assert len(legend) == 1
    numbered = [lb.rank for lb in labels if lb.rank is not None and lb.text == str(lb.rank)]
    assert numbered  # 30 px boxes 10 px apart: the full labels cannot all fit
    assert legend[0].text.split("\n") == [f"{r}: {matches[r - 1].score:.3f}" for r in numbered]


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_drawn_labels_stay_in_their_rectangles(case):
    image, matches = LAYOUT_CASES[case]()
    plain = draw_matches(image, matches, labels=False)
    labelled = draw_matches(image, matches)
    inside = np.zeros(image.shape[:2], bool)
    for x0, y0, x1, y1 in rectangles(layout_labels(matches, image.shape)):
        inside[y0:y1, x0:x1] = True
        patch, before = labelled[y0:y1, x0:x1].astype(int), plain[y0:y1, x0:x1]
        text = (patch[:, :, 0] >= 128) & (patch[:, :, 1] == 0) & (patch[:, :, 2] == 0) & ~(before == [255, 0, 0]).all(axis=2)
        if not (before == [255, 0, 0]).all(axis=2).any():  # (outlines crossing a label hide some of it)
            assert text.sum() >= 4, "a label rectangle without its text"
    changed = (plain != labelled).any(axis=2)
    assert not (changed & ~inside).any()  # nothing drawn outside the rectangles
    for m in matches:  # the boxes are intact
        x, y = int(m.x), int(m.y)
        if x >= 0 and y >= 0 and x + m.width <= image.shape[1] and y + m.height <= image.shape[0]:
            assert (border(labelled, x, y, m.width, m.height, t=2) == [255, 0, 0]).all()


def test_the_annotated_coins_read_cleanly():
    """The issue's case, as pixels: label grounds never touch each other."""
    image, matches = coins_matches()
    out = draw_matches(image, matches)
    labels = layout_labels(matches, image.shape)
    owner = np.full(image.shape[:2], -1)
    for i, (x0, y0, x1, y1) in enumerate(rectangles(labels)):
        assert (owner[y0:y1, x0:x1] == -1).all()
        owner[y0:y1, x0:x1] = i
        # the ground is black except for text (and box outlines drawn over it)
        patch = out[y0:y1, x0:x1]
        assert ((patch == 0).all(axis=2) | (patch[:, :, 1] == 0) & (patch[:, :, 2] == 0)).all()


@pytest.mark.parametrize("image, expected", [
    (np.array([[0, 65535]], np.uint16), [0, 255]),
    (np.array([[0, 257 * 100]], np.uint16), [0, 100]),
    (np.array([[False, True]]), [0, 255]),
    (np.array([[0.0, 0.5]]), [0, 128]),
    (np.array([[-2.0, 2.0]]), [0, 255]),  # outside [0, 1]: stretched
    (np.array([[1000, 3000]], np.int32), [0, 255]),
    (np.array([[3, 200]], np.int64), [3, 200]),
    (np.array([[7.0, 7.0]]), [0, 0]),
])
def test_display_conversion(image, expected):
    out = to_display_rgb(image)
    assert out.dtype == np.uint8 and out.shape == image.shape + (3,)
    assert out[0, :, 0].tolist() == expected and (out[..., 0] == out[..., 2]).all()


def test_display_keeps_rgb_and_drops_alpha():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 7
    out = to_display_rgb(rgba)
    assert out.shape == (2, 2, 3) and (out == [200, 0, 0]).all()
    assert draw_matches(rgba, []).shape == (2, 2, 3)


def test_bad_arguments():
    with pytest.raises(MatcherError, match="color"):
        draw_matches(np.zeros((5, 5)), [], color=(256, 0, 0))
    with pytest.raises(MatcherError, match="thickness"):
        draw_matches(np.zeros((5, 5)), [], thickness=0)
    with pytest.raises(MatcherError, match="shape"):
        draw_matches(np.zeros((5, 5, 2)), [])
    with pytest.raises(TypeError, match="dtype"):
        draw_matches(np.array([["a"]]), [])


# ---------------------------------------------------------------- score_heatmap

def test_heatmap_paints_each_score_at_its_window_centre():
    scores = np.zeros((4, 6))
    scores[1, 2] = 1.0  # the best window: top-left (2, 1)
    scores[3, 5] = 0.5
    heat = score_heatmap(scores, (8, 9), (5, 4))  # h=5, w=4: centre offset (dy, dx) = (2, 1)
    assert heat.shape == (8, 9, 3) and heat.dtype == np.uint8
    assert (heat[1 + 2, 2 + 1] == HOT).all()
    assert (heat[3 + 2, 5 + 1] == LUT[128]).all()
    hot = np.argwhere((heat == HOT).all(axis=2)).tolist()
    assert hot == [[3, 3]]
    # border without window centres: 2 rows on top, 2 below (h - 1 - 2), 1 column left, 2 right
    cold = (heat == COLD).all(axis=2)
    assert cold[:2].all() and cold[6:].all() and cold[:, :1].all() and cold[:, 7:].all()


def test_lower_is_better_is_inverted():
    scores = np.array([[0.0, 5.0, 10.0]])
    for method in ("ssd", "ssd_normed"):
        heat = score_heatmap(scores, (1, 5), (1, 3), method=method)
        assert (heat[0, 1] == HOT).all() and (heat[0, 3] == COLD).all()
    heat = score_heatmap(scores, (1, 5), (1, 3), method="ccorr")
    assert (heat[0, 1] == COLD).all() and (heat[0, 3] == HOT).all()


def test_constant_map_is_flat():
    heat = score_heatmap(np.full((3, 3), 0.7), (5, 5), (3, 3))
    assert (heat == COLD).all()


def test_heatmap_of_a_real_match():
    image = load_image(SAMPLES / "camera.png").pixels
    template = load_image(SAMPLES / "camera_camcorder.png").pixels
    heat = score_heatmap(match_template(image, template), image.shape, template.shape)
    assert heat.shape == (512, 512, 3)
    assert np.argwhere((heat == HOT).all(axis=2)).tolist() == [[132 + 29, 248 + 41]]


def test_heatmap_shape_mismatch():
    with pytest.raises(MatcherError, match="expected"):
        score_heatmap(np.zeros((3, 3)), (5, 5), (2, 2))
    with pytest.raises(MatcherError):
        score_heatmap(np.zeros((3, 3)), (5, 5), (3, 3), method="nope")


# ---------------------------------------------------------------- encode_png

@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.uint8).reshape(3, 4),
    np.dstack([np.full((3, 4), 255, np.uint8), np.zeros((3, 4), np.uint8), np.arange(12, dtype=np.uint8).reshape(3, 4)]),
    np.dstack([np.full((3, 4), 10, np.uint8), np.full((3, 4), 20, np.uint8), np.full((3, 4), 30, np.uint8),
               np.arange(12, dtype=np.uint8).reshape(3, 4) * 20]),
    np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000,
])
def test_png_round_trip_keeps_rgb_order(array):
    data = encode_png(array)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    back = load_image(data)  # RGB order, alpha separately
    if array.ndim == 3 and array.shape[2] == 4:
        assert np.array_equal(back.pixels, array[..., :3]) and np.array_equal(back.mask, array[..., 3])
    else:
        assert np.array_equal(back.pixels, array)
    if array.ndim == 3:  # OpenCV's own decoder sees BGR: red is in its last channel
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(bgr[..., 2], array[..., 0])


def test_png_of_bool_and_bad_input():
    assert load_image(encode_png(np.array([[True, False]]))).pixels.tolist() == [[255, 0]]
    with pytest.raises(TypeError, match="uint8"):
        encode_png(np.zeros((2, 2)))
    with pytest.raises(MatcherError, match="shape"):
        encode_png(np.zeros((2, 2, 2), np.uint8))
