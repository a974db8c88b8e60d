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
from matcher.render import COLORMAP, draw_matches, encode_png, score_heatmap, to_display_rgb

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


def test_label_goes_inside_a_box_at_the_top_edge():
    out = draw_matches(np.zeros((60, 80), np.uint8), [box(10, 0, 50, 40, 1.0)])
    plain = draw_matches(np.zeros((60, 80), np.uint8), [box(10, 0, 50, 40, 1.0)], labels=False)
    changed = (out != plain).any(axis=2)
    assert changed[2:40, 10:60].any() and not changed[40:].any()


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
