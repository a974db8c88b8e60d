"""The float32 work of the assembly (``precision="fast"``, matcher/scores/assembly.py), against oracles.

``match_template(..., precision="fast")`` without a mask scores maps of at
least ``plan.MIN_FLOAT32_OUTPUTS`` positions with float32 correlations (OpenCV's
direct filter up to 11 x 11, its blocked DFT above), a per-window error bound,
and recomputation by definition of the windows the bound cannot vouch for.
These tests check what that promises, through the engine:

- the fast contract (max abs error <= 1e-4 x the reference map's range) for
  the six methods, six image dtypes, grey and colour, both algorithms, on
  photographs, noise, a sky (gradient, flat and near-flat areas), a spike, a
  large DC offset and images with exactly constant and exactly zero blocks,
  against the plain float64 sliding-window reference
  (``match_template_reference``), or ``precision="exact"`` (float64
  correlations, tested against the reference in test_engine.py and
  test_properties.py) where the reference would be too slow;
- that the float32 work really scores the typical cases (a spy on
  ``matcher.scores.engine.assemble`` with ``work="float32"``) and is not used for small maps, masks or
  ``precision="exact"``;
- forced fallbacks (error model constants inflated so that every window is
  uncertain, or the path declining a band) still give correct maps;
- documented values on degenerate windows and exact copies, exactly;
- templates in tiny and huge units (ncc and ccorr_normed must not change);
- the calibration of the error bound (``error_model._FLOAT32_MODEL``) against
  the actual error of OpenCV's float32 correlations, with a 2x margin;
- properties (hypothesis): ncc invariant under a*image + b, convolve ==
  correlate with the flipped template; and match_templates == separate calls,
  in one band and in three (threads);
- the same assembly scores ``precision="exact"`` problems with float64
  correlations: the exact contract (1e-9) there.

Tolerances are those of test_engine.py: ``rel * range + 16 eps * max|ref|``,
rel = 1e-4 for "fast", 1e-9 for "exact".
"""

import functools

import cv2
import numpy as np
import pytest
import skimage.data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import matcher
import matcher.scores.engine as engine
import matcher.scores.error_model as error_model
import matcher.scores.plan as plan
import matcher.scores.image_channel as image_channel
import score_contract as contract
from matcher import METHODS, match_template, match_template_reference

REL_FAST = contract.REL["fast"]
REL_EXACT = contract.REL["exact"]
EPS32 = float(np.finfo(np.float32).eps)
ALGORITHMS = ("direct", "fft")
DTYPES = ("uint8", "uint16", "int16", "float32", "float64", "bool")
# Template shapes: the direct path takes sides up to 11, the fft path anything.
SHAPES = {
    ("grey", "direct"): (11, 9),
    ("grey", "fft"): (24, 31),
    ("colour", "direct"): (7, 7),
    ("colour", "fft"): (16, 16),
}
BASE = (285, 290)  # every map here has >= 262 x 260 = 68120 >= 65536 positions

HYPOTHESIS = settings(max_examples=10, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# helpers (as in test_engine.py)
# ---------------------------------------------------------------------------


def allowed_error(ref, factor=1.0, rel=REL_FAST):
    return contract.allowed_error(ref, rel, factor)


def assert_matches(got, ref, method, *, factor=1.0, rel=REL_FAST, what=""):
    """``got`` satisfies the contract and is within the tolerance (fast unless ``rel``) of ``ref``."""
    contract.assert_within(got, ref, method, rel, factor=factor, what=what)


def exact(image, template, method, **kwargs):
    """``precision="exact"``: the oracle for maps too large for the reference.

    The same assembly with float64 correlations and split window sums, pinned against the
    float64 reference on maps on both sides of every size switch in test_engine.py and
    test_properties.py; here it checks the float32 correlations and their bounds.
    """
    return match_template(image, template, method, precision="exact", **kwargs)


def window_extremes(image, shape):
    """(H', W', C) minima and maxima of every window, by sliding windows (independent of the engine)."""
    img = (image if image.ndim == 3 else image[:, :, None]).astype(np.float64)
    h, w = shape
    extremes = []
    for reduce in (np.min, np.max):  # separable: columns of h pixels, then rows of w of those
        columns = reduce(sliding_window_view(img, h, axis=0), axis=-1)
        extremes.append(reduce(sliding_window_view(columns, w, axis=1), axis=-1))
    return tuple(extremes)


@pytest.fixture
def fast_calls(monkeypatch):
    """Spy on the engine's float32 assemblies: a list of (algorithm, out_shape, returned).

    Only calls with ``work="float32"`` are listed (the engine assembles float64 bands too,
    and again in float64 a band the float32 one refused).
    """
    calls = []
    original = engine.assemble

    def spy(p, algorithm, out, **kwargs):
        result = original(p, algorithm, out, **kwargs)
        if kwargs.get("work") == "float32":
            calls.append((algorithm, tuple(out.shape), result))
        return result

    monkeypatch.setattr(engine, "assemble", spy)
    return calls


@pytest.fixture(scope="module", autouse=True)
def _keep_freed_memory():
    """Allocate and free one 24 MB block first: glibc's malloc then raises its dynamic mmap and
    trim thresholds, and stops returning the reference's ~2 MB per-row temporaries to the
    system after every row (a page fault storm that made this file ~3x slower). No effect on
    any result."""
    np.empty(3 << 20)


@pytest.fixture
def threads():
    """set_num_threads, restored afterwards."""
    previous = matcher.set_num_threads()
    yield matcher.set_num_threads
    matcher.set_num_threads(previous)


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------


def _crop(a):
    return np.ascontiguousarray(a[: BASE[0], : BASE[1]])


@functools.lru_cache(maxsize=None)
def photo(name):
    """A 285 x 290 uint8 crop or resize of a skimage.data photograph."""
    if name == "camera":
        return _crop(skimage.data.camera()[120:, 110:])
    if name == "coins":
        return _crop(skimage.data.coins()[10:, 60:])
    if name == "astronaut":
        return _crop(skimage.data.astronaut()[10:, 150:])
    if name == "coffee":
        return cv2.resize(skimage.data.coffee(), BASE[::-1], interpolation=cv2.INTER_AREA)
    raise KeyError(name)


def grey(a):
    return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) if a.ndim == 3 else a


def convert(content, dtype):
    """Grey levels in [0, 255] as ``dtype``, spanning most of its range."""
    v = np.asarray(content, dtype=np.float64)
    if dtype == "uint8":
        return np.clip(np.round(v), 0, 255).astype(np.uint8)
    if dtype == "uint16":
        return np.clip(np.round(v * 257.0), 0, 65535).astype(np.uint16)
    if dtype == "int16":
        return np.clip(np.round((v - 128.0) * 256.0), -32768, 32767).astype(np.int16)
    if dtype == "float32":
        return (v / 255.0).astype(np.float32)
    if dtype == "float64":
        return v / 255.0 * 3.0 - 1.0
    if dtype == "bool":
        return v > 128.0
    raise KeyError(dtype)


def _blocks(image, flat_value):
    """A copy of ``image`` with an exactly zero block and an exactly constant one."""
    image = image.copy()
    image[20:120, 30:200] = 0
    image[150:260, 40:140] = flat_value
    return image


def _sky(rng, colour):
    """Smooth gradient below, a sky above (constant + tiny noise), and an exactly flat block."""
    H, W = BASE
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    image = 0.2 + 0.002 * yy + 0.0007 * xx + 0.05 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    image[:130] = 0.7 + rng.normal(0.0, 1e-4, (130, W))
    image[170:250, 20:120] = 0.35
    if colour:
        image = np.stack([image, 1.0 - image, 0.5 * image], axis=-1)
    return image


def _scenes():
    """name -> (builder of the image, top-left of the template cut for it)."""
    return {
        "camera": (lambda rng: photo("camera"), (150, 120)),
        "coins": (lambda rng: photo("coins"), (90, 140)),
        "astronaut": (lambda rng: photo("astronaut"), (60, 100)),
        "coffee": (lambda rng: photo("coffee"), (120, 160)),
        "noise": (lambda rng: rng.normal(0.0, 1.0, BASE), (100, 100)),
        "noise-colour": (lambda rng: rng.uniform(0.0, 1.0, BASE + (3,)).astype(np.float32), (100, 100)),
        "sky": (lambda rng: _sky(rng, False).astype(np.float32), (115, 60)),
        "sky-colour": (lambda rng: _sky(rng, True), (115, 60)),
        "spike": (lambda rng: _spike(rng), (120, 140)),
        "dc-offset": (lambda rng: 1000.0 + 0.01 * photo("camera").astype(np.float64), (150, 120)),
        # template cut inside the zero block: faint noise only
        "blocks-uint8-colour": (lambda rng: _blocks(photo("astronaut"), (77, 30, 200)), (100, 180)),
        "blocks-float32": (lambda rng: _blocks(photo("camera").astype(np.float32) / 255, np.float32(0.3)), (100, 180)),
    }


def _spike(rng):
    image = rng.normal(0.0, 1.0, BASE)
    image[137, 151] = 1e4  # one outlier: the DFT's error grows with max|c|
    return image


SCENES = _scenes()
SCENE_SEEDS = {name: 100 + i for i, name in enumerate(sorted(SCENES))}


@functools.lru_cache(maxsize=None)
def scene_image(name):
    build, _ = SCENES[name]
    return build(np.random.default_rng(SCENE_SEEDS[name]))


def cut(image, shape, at, rng=None):
    """The template at ``at``, float64; with ``rng``, plus noise of 2% of the image's spread."""
    (y, x), (h, w) = at, shape
    template = image[y : y + h, x : x + w].astype(np.float64)
    if rng is not None:
        template = template + rng.normal(0.0, 0.02 * float(np.std(image.astype(np.float64))), template.shape)
    return template


@functools.lru_cache(maxsize=None)
def scene_case(name, algorithm):
    image = scene_image(name)
    colour = "colour" if image.ndim == 3 else "grey"
    template = cut(image, SHAPES[colour, algorithm], SCENES[name][1], np.random.default_rng(SCENE_SEEDS[name] + 7))
    return image, template


@functools.lru_cache(maxsize=None)
def scene_reference(name, algorithm, method):
    image, template = scene_case(name, algorithm)
    return match_template_reference(image, template, method)


# The dtype matrix: the astronaut (colour) and its grey version in every dtype.
DTYPE_SHAPES = {
    ("grey", "direct"): (7, 7),
    ("grey", "fft"): (16, 16),
    ("colour", "direct"): (11, 9),
    ("colour", "fft"): (16, 16),
}


@functools.lru_cache(maxsize=None)
def dtype_case(dtype, colour, algorithm):
    content = photo("astronaut") if colour == "colour" else grey(photo("astronaut"))
    image = convert(content, dtype)
    rng = np.random.default_rng(DTYPES.index(dtype) + 10 * (colour == "colour"))
    template = cut(image, DTYPE_SHAPES[colour, algorithm], (140, 170), rng)
    return image, template


@functools.lru_cache(maxsize=None)
def dtype_reference(dtype, colour, algorithm, method):
    image, template = dtype_case(dtype, colour, algorithm)
    return match_template_reference(image, template, method)


# ---------------------------------------------------------------------------
# 1. agreement with the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("scene", sorted(SCENES))
def test_scenes_match_reference(scene, algorithm, method, fast_calls):
    image, template = scene_case(scene, algorithm)
    got = match_template(image, template, method, algorithm=algorithm)
    assert fast_calls, "the float32 path was not even asked: the case does not test it"
    assert_matches(got, scene_reference(scene, algorithm, method), method, what=f"{scene}/{algorithm}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("colour", ["grey", "colour"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_match_reference(dtype, colour, algorithm, method, fast_calls):
    image, template = dtype_case(dtype, colour, algorithm)
    got = match_template(image, template, method, algorithm=algorithm)
    assert fast_calls, "the float32 path was not even asked: the case does not test it"
    assert_matches(got, dtype_reference(dtype, colour, algorithm, method), method, what=f"{dtype}/{colour}/{algorithm}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("colour", ["grey", "colour"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_precision_matches_reference(dtype, colour, algorithm, method):
    """The module also scores precision="exact" (float64 correlations, same assembly) on
    small-integer images, and ssd/ccorr/ccoeff on any image: the exact contract, 1e-9."""
    image, template = dtype_case(dtype, colour, algorithm)
    got = match_template(image, template, method, precision="exact", algorithm=algorithm)
    assert_matches(got, dtype_reference(dtype, colour, algorithm, method), method, rel=REL_EXACT,
                   what=f"exact {dtype}/{colour}/{algorithm}")


# ---------------------------------------------------------------------------
# 2. when the float32 path is used
# ---------------------------------------------------------------------------


TYPICAL_SCENES = ("camera", "coins", "astronaut", "coffee", "noise")


def _typical_content(name):
    if name == "noise":
        return np.clip(np.random.default_rng(5).normal(128.0, 40.0, BASE + (3,)), 0, 255)
    return photo(name)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
@pytest.mark.parametrize("scene", TYPICAL_SCENES)
def test_float32_path_scores_typical_inputs(scene, dtype, algorithm, fast_calls):
    """Photographs and noise in the usual dtypes: the float32 path scores the map itself (returns True)."""
    content = _typical_content(scene)
    image = convert(grey(content) if scene in ("camera", "coins") else content, dtype)
    colour = "colour" if image.ndim == 3 else "grey"
    template = cut(image, SHAPES[colour, algorithm], (70, 90), np.random.default_rng(3))
    for method in METHODS:
        fast_calls.clear()
        got = match_template(image, template, method, algorithm=algorithm)
        assert [result for _, _, result in fast_calls] == [True], (method, fast_calls)
        assert fast_calls[0][0] == algorithm
        assert_matches(got, exact(image, template, method, algorithm=algorithm), method, what=f"{scene}/{dtype}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_float32_ssd_holds_low_contrast_images(dtype, algorithm, fast_calls):
    """ssd on a smooth, low-contrast photograph far from 0 (levels 118-138: a hazy or dim frame): the
    float32 path scores it itself. Correlating the raw image, its one bound for the band grew with the
    DC offset (138^2 per pixel against a spread of 20) past the tolerance, and the band was refused and
    redone in float64 (3x slower at 320 x 240); image and template are now both centred first."""
    content = cv2.GaussianBlur(grey(photo("camera")).astype(np.float64), (0, 0), 2.0)
    image = convert(118.0 + content * (20.0 / 255.0), dtype)
    template = cut(image, SHAPES["grey", algorithm], (70, 90), np.random.default_rng(4))
    got = match_template(image, template, "ssd", algorithm=algorithm)
    assert [result for _, _, result in fast_calls] == [True], fast_calls
    assert_matches(got, exact(image, template, "ssd", algorithm=algorithm), "ssd", what=dtype)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_float32_ssd_with_one_hazy_channel_among_others(dtype, algorithm, fast_calls):
    """Colour ssd whose channels differ: one hazy (levels 118-138, centred with its template), one
    full-range (raw), one constant. The error model takes the larger constants of the pairs used; the
    float32 path scores the map itself, within the contract."""
    camera = grey(photo("camera")).astype(np.float64)
    hazy = 118.0 + cv2.GaussianBlur(camera, (0, 0), 2.0) * (20.0 / 255.0)
    content = np.stack([hazy, camera, np.full_like(camera, 200.0)], axis=2)
    image = (content * 100.0 - 20000.0 if dtype == "int16" else content).astype(dtype)
    template = cut(image, SHAPES["colour", algorithm], (70, 90), np.random.default_rng(6))
    got = match_template(image, template, "ssd", algorithm=algorithm)
    assert [result for _, _, result in fast_calls] == [True], fast_calls
    assert_matches(got, exact(image, template, "ssd", algorithm=algorithm), "ssd", what=dtype)


def _sized(out_rows, out_cols, shape=(7, 7), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (out_rows + shape[0] - 1, out_cols + shape[1] - 1)).astype(np.uint8)
    return image, cut(image, shape, (3, 5), rng)


def test_float32_path_starts_at_min_outputs(fast_calls):
    minimum = plan.MIN_FLOAT32_OUTPUTS
    assert minimum % 256 == 0, "this test builds maps of 256 rows"
    image, template = _sized(256, minimum // 256)
    got = match_template(image, template, "ncc", algorithm="direct")
    assert [r for _, _, r in fast_calls] == [True]
    assert_matches(got, exact(image, template, "ncc"), "ncc")

    fast_calls.clear()
    image, template = _sized(256, minimum // 256 - 1)  # one column fewer
    got = match_template(image, template, "ncc", algorithm="direct")
    assert fast_calls == []
    assert_matches(got, exact(image, template, "ncc"), "ncc")


@pytest.fixture
def float32_correlations(monkeypatch):
    """Spy on every float32 correlation (``BandChannel.correlate``, whatever precision the caller asked for)."""
    calls = []
    original = image_channel.BandChannel.correlate

    def spy(self, kernel, out_shape, direct, centred):
        calls.append((tuple(kernel.shape), direct, centred))
        return original(self, kernel, out_shape, direct, centred)

    monkeypatch.setattr(image_channel.BandChannel, "correlate", spy)
    return calls


@pytest.mark.parametrize("method", METHODS)
def test_float32_path_not_used_for_small_maps_masks_or_exact(method, fast_calls, float32_correlations):
    small, small_template = _sized(40, 60, seed=1)  # 2400 positions: under MIN_FLOAT32_OUTPUTS
    assert 40 * 60 < plan.MIN_FLOAT32_OUTPUTS
    got = match_template(small, small_template, method)
    assert fast_calls == [] and float32_correlations == []
    assert_matches(got, match_template_reference(small, small_template, method), method)

    image, template = scene_case("camera", "direct")
    # "fast" on this map does correlate in float32: the spy sees it
    match_template(image, template, method, algorithm="direct")
    assert float32_correlations, "the float32 correlation was not even used for fast: the spy sees nothing"
    for kwargs in ({"precision": "exact"}, {"mask": np.ones(template.shape)}, {"mask": np.ones(template.shape, bool)}):
        fast_calls.clear()
        float32_correlations.clear()
        got = match_template(image, template, method, algorithm="direct", **kwargs)
        # "exact" may enter the large-map path (fast_calls only lists precision="fast"), but in float64
        assert fast_calls == [], kwargs
        assert float32_correlations == [], kwargs
        assert_matches(got, scene_reference("camera", "direct", method), method, what=str(kwargs))


def test_direct_path_only_up_to_eleven_pixels(fast_calls):
    """``choose_plan``: "direct" with a side > 11 goes to float64; "fft" takes any size."""
    image = photo("camera")
    for shape, algorithm, used in [((12, 9), "direct", False), ((11, 11), "direct", True),
                                   ((5, 5), "fft", True), ((12, 9), "fft", True)]:
        fast_calls.clear()
        template = cut(image, shape, (40, 40), np.random.default_rng(2))
        got = match_template(image, template, "ncc", algorithm=algorithm)
        assert bool(fast_calls) == used, (shape, algorithm, fast_calls)
        assert_matches(got, exact(image, template, "ncc", algorithm=algorithm), "ncc")


# ---------------------------------------------------------------------------
# 3. forced fallbacks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e3, 1e9])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("scene", ["camera", "astronaut", "noise-colour", "dc-offset", "blocks-uint8-colour"])
def test_inflated_error_model_still_gives_correct_maps(scene, algorithm, scale, monkeypatch, fast_calls):
    """Every window's bound is inflated (x1e3: most windows uncertain; x1e9: all of them): the module
    must refine, recompute or hand the band back, and the map must still be right."""
    inflated = {plane: tuple(c * scale for c in model) for plane, model in error_model._FLOAT32_MODEL.items()}
    monkeypatch.setattr(error_model, "_FLOAT32_MODEL", inflated)
    image, template = scene_case(scene, algorithm)
    for method in METHODS:
        fast_calls.clear()
        got = match_template(image, template, method, algorithm=algorithm)
        assert len(fast_calls) == 1
        assert_matches(got, scene_reference(scene, algorithm, method), method, what=f"{scene}/{algorithm}/x{scale:g}")


@pytest.mark.parametrize("method", METHODS)
def test_engine_redoes_a_band_the_float32_path_declines(method, monkeypatch):
    """The float32 assembly refusing a band after scribbling into ``out``: the float64 one overwrites it all."""
    declined = []
    original = engine.assemble

    def decline(p, algorithm, out, **kwargs):
        if kwargs.get("work") != "float32":
            return original(p, algorithm, out, **kwargs)
        out[...] = np.nan
        declined.append(out.shape)
        return False

    monkeypatch.setattr(engine, "assemble", decline)
    image, template = scene_case("astronaut", "fft")
    got = match_template(image, template, method, algorithm="fft")
    assert declined
    assert_matches(got, scene_reference("astronaut", "fft", method), method)


# ---------------------------------------------------------------------------
# 4. degenerate windows and templates
# ---------------------------------------------------------------------------


def _blocks_image(dtype, colour):
    content = photo("camera").astype(np.float64)
    if colour:
        content = np.stack([content, 255.0 - content, 0.5 * content + 40.0], axis=-1)
    flat_value = (77.0, 30.0, 200.0) if colour else 77.0
    image = _blocks(content, flat_value)
    return image.astype(np.uint8) if dtype == "uint8" else (image / 255.0).astype(np.float32)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_flat_and_zero_windows_get_their_documented_values(dtype, colour, algorithm, fast_calls):
    image = _blocks_image(dtype, colour)
    shape = SHAPES["colour" if colour else "grey", algorithm]
    template = cut(image, shape, (200, 210))  # textured: neither flat nor zero
    assert template.min() < template.max()
    lo, hi = window_extremes(image, shape)
    flat = (lo == hi).all(axis=2)
    zero = ((lo == 0) & (hi == 0)).all(axis=2)
    assert zero.sum() > 5000 and (flat & ~zero).sum() > 5000
    for method in METHODS:
        fast_calls.clear()
        got = match_template(image, template, method, algorithm=algorithm)
        assert [r for _, _, r in fast_calls] == [True], (method, fast_calls)
        if method == "ncc":
            assert np.all(got[flat] == 0.0), np.unique(got[flat])[:5]
        elif method == "ccorr_normed":
            assert np.all(got[zero] == 0.0), np.unique(got[zero])[:5]
        elif method == "ssd_normed":
            assert np.all(got[zero] == 1.0), np.unique(got[zero])[:5]
        assert_matches(got, exact(image, template, method, algorithm=algorithm), method)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("scene", ["camera", "astronaut", "noise", "dc-offset", "blocks-float32"])
def test_constant_and_zero_templates(scene, algorithm, fast_calls):
    image = scene_image(scene)
    colour = "colour" if image.ndim == 3 else "grey"
    shape = SHAPES[colour, algorithm] + image.shape[2:]
    got = match_template(image, np.full(shape, 3.25), "ncc", algorithm=algorithm)
    assert fast_calls and got.dtype == np.float64
    assert np.all(got == 0.0), "a constant template is no evidence: ncc is 0 everywhere"

    zeros = np.zeros(shape)
    got = match_template(image, zeros, "ccorr_normed", algorithm=algorithm)
    assert np.all(got == 0.0)
    lo, hi = window_extremes(image, shape[:2])
    zero = ((lo == 0) & (hi == 0)).all(axis=2)
    got = match_template(image, zeros, "ssd_normed", algorithm=algorithm)
    assert np.array_equal(got, np.where(zero, 0.0, 1.0)), "ssd_normed: 0 when both norms are 0, else 1"


@functools.lru_cache(maxsize=None)
def zero_windows(scene, algorithm):
    image, template = scene_case(scene, algorithm)
    lo, hi = window_extremes(image, template.shape[:2])
    return ((lo == 0) & (hi == 0)).all(axis=2)


@functools.lru_cache(maxsize=None)
def scaled_reference(scene, algorithm, scale):
    """ssd_normed of the scaled template, by definition."""
    image, template = scene_case(scene, algorithm)
    return match_template_reference(image, template * scale, "ssd_normed")


def _scale_cases():
    for scene in ("blocks-uint8-colour", "blocks-float32", "noise", "dc-offset"):
        for algorithm in ALGORITHMS:
            for method in ("ncc", "ccorr_normed", "ssd_normed"):
                for scale in (1e-20, 1e-15, 1e-12, 1e-9, 1e15):
                    case_id = f"{scene}-{algorithm}-{method}-{scale:g}"
                    yield pytest.param(scene, algorithm, method, scale, id=case_id)


@pytest.mark.parametrize("scene, algorithm, method, scale", list(_scale_cases()))
def test_template_scale(scene, algorithm, method, scale, fast_calls):
    """Templates in tiny or huge units. ncc and ccorr_normed do not change with a positive factor on
    the template: the oracle is the reference map of the unscaled template. ssd_normed does: the
    oracle is the reference map of the scaled one, and windows of zeros score exactly 1 (one norm is 0)."""
    image, template = scene_case(scene, algorithm)
    got = match_template(image, template * scale, method, algorithm=algorithm)
    assert fast_calls
    what = f"{scene}/{algorithm} template x {scale:g}"
    if method == "ssd_normed":
        assert_matches(got, scaled_reference(scene, algorithm, scale), method, what=what)
        zero = zero_windows(scene, algorithm)
        assert np.all(got[zero] == 1.0), np.unique(got[zero])[:5]
    else:
        assert_matches(got, scene_reference(scene, algorithm, method), method, what=what)


def _exact_scale_cases():
    for scene in ("camera", "blocks-uint8-colour"):
        for algorithm in ALGORITHMS:
            for method in ("ncc", "ccorr_normed", "ssd_normed"):
                for scale in (1e-20, 1e-12, 1e15):
                    case_id = f"{scene}-{algorithm}-{method}-{scale:g}"
                    yield pytest.param(scene, algorithm, method, scale, id=case_id)


@pytest.mark.parametrize("scene, algorithm, method, scale", list(_exact_scale_cases()))
def test_exact_precision_template_scale(scene, algorithm, method, scale):
    """precision="exact" on small-integer images (the module's float64 mode) with templates in
    tiny or huge units: the exact contract against the reference."""
    image, template = scene_case(scene, algorithm)
    got = match_template(image, template * scale, method, precision="exact", algorithm=algorithm)
    ref = scaled_reference(scene, algorithm, scale) if method == "ssd_normed" else scene_reference(scene, algorithm, method)
    assert_matches(got, ref, method, rel=REL_EXACT, what=f"exact {scene}/{algorithm} template x {scale:g}")


# ---------------------------------------------------------------------------
# 5. exact copies
# ---------------------------------------------------------------------------


def _copy_images():
    return {
        "camera-uint8": photo("camera"),
        "astronaut-uint8": photo("astronaut"),
        "astronaut-uint16": convert(photo("astronaut"), "uint16"),
        "coins-int16": convert(photo("coins"), "int16"),
        "coffee-float32": convert(photo("coffee"), "float32"),
        "noise-float64": np.random.default_rng(9).normal(0.0, 1.0, BASE),
        "dc-offset": scene_image("dc-offset"),
    }


COPY_IMAGES = _copy_images()
COPY_AT = [(40, 60), (200, 150), (0, 0)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name", sorted(COPY_IMAGES))
def test_exact_copy_scores_perfectly(name, algorithm, fast_calls):
    image = COPY_IMAGES[name]
    shape = SHAPES["colour" if image.ndim == 3 else "grey", algorithm]
    for y, x in COPY_AT:
        template = cut(image, shape, (y, x))
        energy = float((template * template).sum())
        for method in ("ncc", "ccorr_normed", "ssd_normed", "ssd"):
            fast_calls.clear()
            got = match_template(image, template, method, algorithm=algorithm)
            assert fast_calls
            s = got[y, x]
            where = f"{name}/{algorithm} copy at {(y, x)}: {method} = {s!r}"
            if method in ("ncc", "ccorr_normed"):
                assert s >= 1.0 - 1e-12, where
            elif method == "ssd_normed":
                assert 0.0 <= s <= 1e-12, where
            else:
                assert 0.0 <= s <= 1e-9 * energy, where


def _periodic_cases():
    for dtype in ("uint8", "float32"):
        for algorithm in ALGORITHMS:
            for method in ("ncc", "ccorr_normed", "ssd_normed", "ssd"):
                case_id = f"{dtype}-{algorithm}-{method}"
                yield pytest.param(dtype, algorithm, method, id=case_id)


@pytest.mark.parametrize("dtype, algorithm, method", list(_periodic_cases()))
def test_every_exact_copy_in_a_periodic_image_scores_perfectly(dtype, algorithm, method, fast_calls):
    """A texture repeated with period 13 x 11: hundreds of exact copies of the template, each one perfect."""
    period = (13, 11)
    tile = np.random.default_rng(61).integers(0, 256, period)
    image = convert(np.tile(tile, (BASE[0] // period[0] + 1, BASE[1] // period[1] + 1))[: BASE[0], : BASE[1]], dtype)
    y0, x0 = 3, 4
    template = cut(image, SHAPES["grey", algorithm], (y0, x0))
    got = match_template(image, template, method, algorithm=algorithm)
    assert fast_calls
    copies = got[y0 :: period[0], x0 :: period[1]]
    assert copies.size > 400
    worst = copies.min() if method in ("ncc", "ccorr_normed") else copies.max()
    where = f"worst of {copies.size} exact copies scores {worst!r}; at the cut: {got[y0, x0]!r}"
    if method in ("ncc", "ccorr_normed"):
        assert worst >= 1.0 - 1e-12, where
    elif method == "ssd_normed":
        assert worst <= 1e-12, where
    else:
        assert worst <= 1e-9 * float((template * template).sum()), where


# ---------------------------------------------------------------------------
# 6. the error bound's calibration
# ---------------------------------------------------------------------------


def _bound_images():
    rng = np.random.default_rng(31)
    cam = photo("camera").astype(np.float64)
    sky = _sky(rng, False)
    return {
        "photo": cam / 255.0,
        "random": rng.normal(0.0, 1.0, BASE),
        "spike": _spike(rng),
        "dc-offset": 1000.0 + 0.01 * cam,
        "sky": sky,
    }


BOUND_IMAGES = {k: v.astype(np.float32) for k, v in _bound_images().items()}
KERNEL_SHAPES = [(3, 3), (5, 5), (7, 7), (11, 9), (11, 11), (16, 16), (24, 31), (48, 40), (64, 64)]


def _plane32(image, plane):
    """The float32 plane the module correlates: centred on its mean (rounded to float32; ncc and
    ccoeff, with zero-mean kernels) or raw (ssd, ssd_normed, ccorr, ccorr_normed, raw kernels)."""
    if plane == "raw":
        return image.astype(np.float32)
    centre = float(np.float32(image.mean(dtype=np.float64)))
    return np.subtract(image, centre, dtype=np.float32)


def _bound_cases():
    # the pairs the module correlates: the centred plane with zero-mean kernels (ncc, ccoeff),
    # the raw plane with raw kernels (the other methods), and the centred plane with a raw kernel
    # minus the image's centre (ssd: the raw model's constants)
    for plane, kernel_kind in (("centred", "deviation"), ("raw", "raw"), ("centred", "shifted")):
        for image_kind in sorted(BOUND_IMAGES):
            for shape in KERNEL_SHAPES:
                for path in ("dft", "direct"):
                    if path == "direct" and max(shape) > 11:
                        continue  # OpenCV's float32 filter2D is direct up to 11 x 11 only
                    case_id = f"{path}-{plane}-{image_kind}-{kernel_kind}-{shape[0]}x{shape[1]}"
                    yield pytest.param(path, plane, image_kind, kernel_kind, shape, id=case_id)


@functools.lru_cache(maxsize=None)
def _bound_inputs(plane, image_kind, kernel_kind, shape):
    """(float32 plane, float32 kernel, float64 correlation of that same data, window energy, ||k||, max|c|)."""
    image = BOUND_IMAGES[image_kind]
    c32 = _plane32(image, plane)
    h, w = shape
    raw = image[100 : 100 + h, 120 : 120 + w].astype(np.float64)
    shift = {"deviation": raw.mean(), "raw": 0.0, "shifted": float(np.float32(image.mean(dtype=np.float64)))}
    k32 = (raw - shift[kernel_kind]).astype(np.float32)
    out_shape = (c32.shape[0] - h + 1, c32.shape[1] - w + 1)
    kw = dict(anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    c64, k64 = c32.astype(np.float64), k32.astype(np.float64)
    truth = cv2.filter2D(c64, cv2.CV_64F, k64, **kw)[: out_shape[0], : out_shape[1]]
    energy = cv2.sqrBoxFilter(c64, cv2.CV_64F, (w, h), normalize=False, **kw)[: out_shape[0], : out_shape[1]]
    return c32, k32, truth, np.maximum(energy, 0.0), float(np.sqrt((k64 * k64).sum())), float(np.abs(c64).max())


# The documented error model (error_model's comments), stated here independently of the
# module: pair -> (A, B, A_DIRECT). The measured maxima are 4.3/4.5 (centred), 5.3/15.4 (raw) and
# 5.8/8.1 (shifted) eps32 ||k||; these constants are about twice that.
DOCUMENTED_ERROR_MODEL = {"centred": (9.0, 36.0, 10.0), "raw": (11.0, 44.0, 32.0), "shifted": (12.0, 48.0, 17.0)}


@pytest.mark.parametrize("path, plane, image_kind, kernel_kind, shape", list(_bound_cases()))
def test_error_bound_covers_opencv_float32_correlation(path, plane, image_kind, kernel_kind, shape):
    """Actual error of OpenCV's float32 correlation <= half the module's bound, at every output.

    The bound is what the module's public ``correlation_error_bound`` returns, and it must be
    the documented formula with the numbers of ``DOCUMENTED_ERROR_MODEL``:
    DFT (cv2.matchTemplate TM_CCORR): eps32 ||k|| (A sqrt(window energy) + B max|c|);
    direct (cv2.filter2D, up to 11 x 11): eps32 ||k|| A_DIRECT sqrt(window energy)."""
    c32, k32, truth, energy, norm, peak = _bound_inputs(plane, image_kind, kernel_kind, shape)
    model = {"deviation": "centred", "raw": "raw", "shifted": "shifted"}[kernel_kind]  # the module's constants
    a, b, a_direct = DOCUMENTED_ERROR_MODEL[model]
    if path == "dft":
        got = cv2.matchTemplate(c32, k32, cv2.TM_CCORR).astype(np.float64)
        bound = error_model.correlation_error_bound(norm, energy, peak, plane=model)
        documented = EPS32 * norm * (a * np.sqrt(energy) + b * peak)
    else:
        full = cv2.filter2D(c32, cv2.CV_32F, k32, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        got = full[: truth.shape[0], : truth.shape[1]].astype(np.float64)
        bound = error_model.correlation_error_bound(norm, energy, peak, plane=model, direct=True)
        documented = EPS32 * norm * a_direct * np.sqrt(energy)
    np.testing.assert_allclose(bound, documented, rtol=1e-12, err_msg="the module's bound is not the documented one")
    err = np.abs(got - truth)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err > 0, err / bound, 0.0)
    worst = np.unravel_index(int(ratio.argmax()), ratio.shape)
    assert np.all(err <= 0.5 * bound), f"error / bound = {ratio.max():.3g} at {tuple(int(i) for i in worst)}"


# ---------------------------------------------------------------------------
# 7. properties
# ---------------------------------------------------------------------------


def _float_content(name):
    if name == "noise":
        return np.random.default_rng(41).normal(0.0, 1.0, BASE)
    return photo(name).astype(np.float64) / 255.0


@HYPOTHESIS
@given(
    scene=st.sampled_from(["camera", "astronaut", "noise"]),
    algorithm=st.sampled_from(ALGORITHMS),
    log_a=st.floats(-2.0, 2.0),
    b=st.floats(-1e4, 1e4),
    y=st.integers(0, 200),
    x=st.integers(0, 200),
)
def test_ncc_is_invariant_under_affine_image_changes(scene, algorithm, log_a, b, y, x):
    image = _float_content(scene)
    colour = "colour" if image.ndim == 3 else "grey"
    template = cut(image, SHAPES[colour, algorithm], (y, x), np.random.default_rng(y * 1000 + x))
    oracle = exact(image, template, "ncc", algorithm=algorithm)
    original = match_template(image, template, "ncc", algorithm=algorithm)
    changed = match_template(10.0**log_a * image + b, template, "ncc", algorithm=algorithm)
    assert_matches(original, oracle, "ncc")
    assert_matches(changed, oracle, "ncc", what=f"a={10.0**log_a:.4g} b={b:.6g}")
    assert np.abs(changed - original).max() <= allowed_error(oracle, factor=2.0)


@HYPOTHESIS
@given(
    scene=st.sampled_from(["coins", "coffee", "noise"]),
    algorithm=st.sampled_from(ALGORITHMS),
    method=st.sampled_from(METHODS),
    dtype=st.sampled_from(["uint8", "float32", "float64"]),
    y=st.integers(0, 200),
    x=st.integers(0, 200),
)
def test_convolve_is_correlate_with_the_flipped_template(scene, algorithm, method, dtype, y, x):
    content = _typical_content(scene) if scene == "noise" else photo(scene)
    image = convert(content, dtype)
    colour = "colour" if image.ndim == 3 else "grey"
    template = cut(image, SHAPES[colour, algorithm], (y, x), np.random.default_rng(y + 7 * x))
    flipped = np.ascontiguousarray(template[::-1, ::-1])
    oracle = exact(image, flipped, method, algorithm=algorithm)
    convolved = match_template(image, template, method, mode="convolve", algorithm=algorithm)
    correlated = match_template(image, flipped, method, algorithm=algorithm)
    assert_matches(convolved, oracle, method, what="convolve")
    assert_matches(correlated, oracle, method, what="correlate flipped")
    assert np.abs(convolved - correlated).max() <= allowed_error(oracle, factor=2.0)


# ---------------------------------------------------------------------------
# 8. several templates, and bands
# ---------------------------------------------------------------------------


MULTI_SHAPES = [(7, 7), (11, 9), (7, 7), (16, 16), (24, 31), (11, 9)]


@pytest.mark.parametrize("bands", [1, 3])
@pytest.mark.parametrize("algorithm", ["auto", "direct", "fft"])
@pytest.mark.parametrize("colour", [False, True])
def test_match_templates_equals_separate_calls(colour, algorithm, bands, threads, fast_calls):
    """Shared per-band channel work across templates of equal and different sizes (with "direct",
    the 16 x 16 and 24 x 31 ones take the float64 path in the same bands); 3 bands in threads on a
    map of >= 2**18 positions."""
    threads(bands)
    rng = np.random.default_rng(51)
    if bands == 1:
        image = photo("astronaut") if colour else grey(photo("astronaut"))
    else:
        image = cv2.resize(skimage.data.coffee(), (540, 540), interpolation=cv2.INTER_AREA)  # 517 x 510 >= 2**18
        image = image if colour else grey(image)
    templates = [cut(image, s, (int(rng.integers(0, 200)), int(rng.integers(0, 200))), rng) for s in MULTI_SHAPES]
    for method in METHODS:
        fast_calls.clear()
        maps = engine.match_templates(image, templates, method, algorithm=algorithm)
        assert fast_calls and all(result for _, _, result in fast_calls), fast_calls
        assert len(maps) == len(templates)
        for template, got in zip(templates, maps):
            single = match_template(image, template, method, algorithm=algorithm)
            oracle = exact(image, template, method)  # its own choice of algorithm: the cheapest
            what = f"template {template.shape} of {len(templates)}"
            assert_matches(got, oracle, method, what=what)
            assert_matches(single, oracle, method, what="single " + what)
            assert np.abs(got - single).max() <= allowed_error(oracle, factor=2.0), what


# ---------------------------------------------------------------------------
# 9. large templates on 16-bit images
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fast", "exact"])
@pytest.mark.parametrize("dtype, top, step", [("uint16", 65535, 60), ("int16", 32767, 10), ("uint8", 255, 1)])
def test_large_templates_on_16_bit_images(dtype, top, step, precision):
    """Bright 16-bit images and 270 x 270 templates: window sums exceed 2**31 (OpenCV's box filter
    sums 8- and 16-bit data in int32) and ncc's n s2 - s1^2 exceeds 2**53 (no longer exact); both
    must still be right, against precision="exact"."""
    base = cv2.resize(photo("camera"), (540, 540), interpolation=cv2.INTER_AREA).astype(np.int64)
    image = (top - base * step).astype(dtype)
    template = image[100:370, 140:410].copy()
    if dtype != "uint8":
        assert float(image[:270, :270].sum(dtype=np.float64)) >= 2**31  # the case this is about
    for method in METHODS:
        got = match_template(image, template, method, precision=precision)
        assert got.shape[0] * got.shape[1] >= plan.MIN_FLOAT32_OUTPUTS
        ref = exact(image, template, method)
        assert_matches(got, ref, method, rel=REL_FAST if precision == "fast" else REL_EXACT,
                       what=f"{dtype} 270x270 {precision}")
