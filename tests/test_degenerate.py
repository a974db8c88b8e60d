"""matcher.scores.degenerate: which windows are degenerate, and what they score (one rule for both assemblies)."""

import numpy as np
import pytest

import matcher.scores.degenerate as degenerate
from matcher import match_template, match_template_reference
from matcher.scores.inputs import prepare


def brute_force(image, template_shape, method, mask=None):
    """Degenerate windows by definition: flat (ncc) or all zero (others) over the used pixels, every channel."""
    img = image if image.ndim == 3 else image[:, :, None]
    h, w = template_shape
    used = np.ones((h, w), bool) if mask is None else np.asarray(mask) != 0
    out = np.zeros((img.shape[0] - h + 1, img.shape[1] - w + 1), bool)
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            win = img[y : y + h, x : x + w][used]
            if method == "ncc":
                out[y, x] = all(np.ptp(win[:, c]) == 0 for c in range(img.shape[2]))
            else:
                out[y, x] = not win.any()
    return out


def scene(rng, channels=1):
    image = rng.integers(0, 4, (40, 50) + ((channels,) if channels > 1 else ())).astype(float)
    image[5:25, 10:35] = 7.0  # flat
    image[28:40, 0:20] = 0.0  # zero (and flat)
    return image


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("many", [False, True])
def test_degenerate_at_matches_brute_force(monkeypatch, method, channels, masked, many):
    rng = np.random.default_rng(channels + 2 * masked)
    image = scene(rng, channels)
    mask = None
    if masked:
        mask = np.zeros((6, 7), bool)
        mask[1:5, 2:6] = True
    p = prepare(image, np.ones((6, 7) + ((channels,) if channels > 1 else ())), method, mask=mask)
    if many:  # force the whole-map path (window extremes over the used pixels' box)
        monkeypatch.setattr(degenerate, "_GATHER", 0)
        monkeypatch.setattr(degenerate, "_GATHER_PIXELS", 0.0)
    truth = brute_force(image, (6, 7), method, mask)
    ys, xs = np.nonzero(np.ones(p.out_shape, bool))
    got = degenerate.degenerate_at(p, ys, xs).reshape(p.out_shape)
    np.testing.assert_array_equal(got, truth)


def test_scores():
    assert [degenerate.degenerate_score(m) for m in ("ncc", "ccorr_normed", "ssd_normed")] == [0.0, 0.0, 1.0]
    assert degenerate.degenerate_score("ssd_normed", template_degenerate=True) == 0.0
    assert [degenerate.template_degenerate_score(m) for m in ("ncc", "ccorr_normed", "ssd_normed")] == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("size", [(60, 70), (300, 300)])  # float64 and float32 work ("fast")
@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd_normed"])
def test_both_work_precisions_give_degenerate_windows_their_value(size, method):
    """Flat and zero areas, and a flat or zero template: the documented values, as the reference gives them."""
    rng = np.random.default_rng(4)
    image = rng.normal(100, 20, size)
    image[10:40, 10:50] = 50.0
    image[45:58, 5:30] = 0.0
    for template in (image[20:28, 5:15].copy(), np.full((8, 10), 3.0), np.zeros((8, 10))):
        for precision in ("fast", "exact"):
            got = match_template(image, template, method, precision=precision)
            ref = match_template_reference(image, template, method)
            flat = brute_force(image, (8, 10), method)
            np.testing.assert_array_equal(got[flat], ref[flat])
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
