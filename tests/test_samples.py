"""The bundled samples as acceptance tests: worked examples and true template locations."""

import json
from pathlib import Path

import numpy as np
import pytest

from matcher import LOWER_IS_BETTER, load_image, match_template

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXAMPLES = json.loads((SAMPLES / "worked_examples.json").read_text())["examples"]
TRUTH = json.loads((SAMPLES / "truth.json").read_text())


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
@pytest.mark.parametrize("precision", ["fast", "exact"])
def test_worked_example(example, precision):
    scores = match_template(
        example["image"], example["template"], example["method"], mode=example["mode"], precision=precision
    )
    best = example["best"]
    at = (best["x"],) if "y" not in best else (best["y"], best["x"])
    assert scores[at] == pytest.approx(example["best_score"], abs=1e-9)
    extreme = scores.min() if example["method"] in LOWER_IS_BETTER else scores.max()
    assert extreme == pytest.approx(example["best_score"], abs=1e-9)
    if example["scores"] is not None:
        np.testing.assert_allclose(scores, np.array(example["scores"], float), rtol=0, atol=1e-9)


@pytest.mark.parametrize("entry", [e for e in TRUTH if "x" in e], ids=lambda e: e["template"])
@pytest.mark.parametrize("precision", ["fast", "exact"])
def test_true_location_is_the_best_match(entry, precision):
    image = load_image(SAMPLES / entry["image"])
    template = load_image(SAMPLES / entry["template"])
    mask = template.mask if entry.get("mask") == "alpha" else None
    scores = match_template(image.pixels, template.pixels, entry["method"], mask=mask, precision=precision)
    y, x = np.unravel_index(np.argmax(scores), scores.shape)
    assert (int(x), int(y)) == (entry["x"], entry["y"])
    assert scores[y, x] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("entry", [e for e in TRUTH if "angle" in e], ids=lambda e: e["template"])
def test_turned_sample_pose_is_found(entry):
    """A template seen through a known similarity: find(angles=..., scales=...) recovers the pose."""
    from matcher import find

    image = load_image(SAMPLES / entry["image"])
    template = load_image(SAMPLES / entry["template"])
    (m,) = find(image, template, entry["method"], angles=(-180, 180), scales=(0.8, 1.25))
    assert abs((m.angle - entry["angle"] + 180) % 360 - 180) < 0.1
    assert abs(m.scale - entry["scale"]) < 0.005
    assert abs(m.center[0] - entry["center"]["x"]) < 0.1 and abs(m.center[1] - entry["center"]["y"]) < 0.1
