"""choose_algorithm, choose_plan, band_bounds, and match_template obeying the plan it is given.

choose_algorithm is a pure function of the shapes: deterministic, no array
work, only "direct" or "fft". match_template must take exactly the path it
is told to ("direct" / "fft"), and ask choose_algorithm for "auto". The paths
are observed by wrapping the engine's correlation entry points
(``correlate_direct``, ``correlate_dft`` and ``FFTCorrelator`` as :mod:`matcher.scores.image_channel` calls them),
so a wrong path is detected even though both give the same scores.
"""

import functools
import itertools
import time

import numpy as np
import pytest

import matcher.scores.plan
import matcher.scores.image_channel as scoring
from matcher import METHODS, choose_algorithm, match_template, match_template_reference

# ---------------------------------------------------------------------------
# choose_algorithm itself
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("image_shape", [(128, 128), (512, 512), (1024, 1024), (2048, 2048), (600, 800, 3)])
def test_small_templates_go_direct(image_shape, masked):
    assert choose_algorithm(image_shape, (3, 3), masked=masked) == "direct"


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("image_shape", [(1024, 1024), (2048, 2048), (1024, 1024, 3), (1000, 1500)])
def test_large_templates_go_fft(image_shape, masked):
    assert choose_algorithm(image_shape, (64, 64), masked=masked) == "fft"


def test_documented_examples():
    assert choose_algorithm((512, 512), (3, 3)) == "direct"
    assert choose_algorithm((1024, 1024), (64, 64)) == "fft"


SIZES = [1, 2, 3, 5, 8, 13, 31, 64, 100, 257, 1000]
GRID = [
    ((H, W), (h, w), masked)
    for H, W in itertools.product(SIZES, SIZES)
    for h, w in itertools.product([1, 2, 3, 7, 16, 33, 64, 200], repeat=2)
    if h <= H and w <= W
    for masked in (False, True)
]


def test_returns_only_direct_or_fft_and_is_deterministic():
    first = [choose_algorithm(i, t, masked=m) for i, t, m in GRID]
    assert set(first) <= {"direct", "fft"}
    assert set(first) == {"direct", "fft"}  # the grid spans both regimes
    # the same answers again, and in the reverse order: no hidden state
    assert [choose_algorithm(i, t, masked=m) for i, t, m in GRID] == first
    assert [choose_algorithm(i, t, masked=m) for i, t, m in reversed(GRID)] == first[::-1]


def test_shape_forms_are_equivalent_and_not_mutated():
    image_shape, template_shape = [700, 900], [40, 50]
    expected = choose_algorithm((700, 900), (40, 50))
    assert choose_algorithm(image_shape, template_shape) == expected
    assert image_shape == [700, 900] and template_shape == [40, 50]
    assert choose_algorithm((np.int64(700), np.int32(900)), np.zeros((40, 50)).shape) == expected
    assert choose_algorithm(np.array([700, 900]), np.array([40, 50])) == expected


def test_1d_shapes_are_one_row():
    for n, m in [(500, 3), (500, 200), (10, 10), (100000, 5000)]:
        assert choose_algorithm((n,), (m,)) == choose_algorithm((1, n), (1, m))


def test_is_a_function_of_shapes_only():
    """Shapes far too large to allocate are answered at once: no array work is done."""
    start = time.perf_counter()
    for _ in range(100):
        assert choose_algorithm((200_000, 300_000), (3, 3)) == "direct"
        assert choose_algorithm((200_000, 300_000), (4096, 4096), masked=True) == "fft"
    assert time.perf_counter() - start < 1.0


def test_rejects_impossible_shapes():
    with pytest.raises(ValueError, match="does not fit"):
        choose_algorithm((10, 10), (11, 5))
    with pytest.raises(ValueError):
        choose_algorithm((10, 0), (1, 1))
    with pytest.raises(ValueError):
        choose_algorithm((10, 10), ())
    with pytest.raises(TypeError):
        choose_algorithm(10, (1, 1))


# ---------------------------------------------------------------------------
# match_template takes the path it is told to
# ---------------------------------------------------------------------------


@pytest.fixture
def paths(monkeypatch):
    """Count calls of the engine's direct and FFT correlation paths (results unchanged)."""
    assert all(hasattr(scoring, name) for name in ("correlate_direct", "correlate_dft", "FFTCorrelator")), (
        "the engine's correlation entry points moved: update this fixture"
    )
    calls = {"direct": 0, "fft": 0}
    real_direct, real_dft, real_fft = scoring.correlate_direct, scoring.correlate_dft, scoring.FFTCorrelator

    def direct(*args, **kwargs):
        calls["direct"] += 1
        return real_direct(*args, **kwargs)

    def dft(*args, **kwargs):  # OpenCV's blocked DFT: a frequency-domain path too
        calls["fft"] += 1
        return real_dft(*args, **kwargs)

    class FFT(real_fft):
        def __init__(self, *args, **kwargs):
            calls["fft"] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(scoring, "correlate_direct", direct)
    monkeypatch.setattr(scoring, "FFTCorrelator", FFT)
    monkeypatch.setattr(scoring, "correlate_dft", dft)
    return calls


def _problem(template_side, seed=0, colour=False):
    rng = np.random.default_rng(seed)
    shape = (96, 120, 3) if colour else (96, 120)
    image = rng.normal(0, 1, shape)
    template = image[10 : 10 + template_side, 20 : 20 + template_side].copy()
    return image, template


# a small template (auto -> direct) and a large one (auto -> fft)
SMALL, LARGE = 3, 31


def test_the_cases_exercise_both_choices():
    assert choose_algorithm((96, 120), (SMALL, SMALL)) == "direct"
    assert choose_algorithm((96, 120), (LARGE, LARGE)) == "fft"
    assert choose_algorithm((96, 120), (SMALL, SMALL), masked=True) == "direct"
    assert choose_algorithm((96, 120), (LARGE, LARGE), masked=True) == "fft"


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("side", [SMALL, LARGE])
@pytest.mark.parametrize("algorithm", ["direct", "fft"])
def test_explicit_algorithm_is_obeyed(paths, algorithm, side, method, masked):
    image, template = _problem(side, colour=masked)
    mask = np.random.default_rng(1).random(template.shape[:2]) if masked else None
    got = match_template(image, template, method, mask=mask, algorithm=algorithm, precision="exact")
    other = "fft" if algorithm == "direct" else "direct"
    assert paths[algorithm] > 0, f"{algorithm} was asked for but not used: {paths}"
    assert paths[other] == 0, f"{algorithm} was asked for but {other} was used: {paths}"
    ref = _reference(side, method, masked)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * max(float(np.ptp(ref)), 1.0))


@functools.lru_cache(maxsize=None)
def _reference(side, method, masked):
    image, template = _problem(side, colour=masked)
    mask = np.random.default_rng(1).random(template.shape[:2]) if masked else None
    return match_template_reference(image, template, method, mask=mask)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("side", [SMALL, LARGE])
def test_auto_takes_the_path_choose_algorithm_names(paths, side, masked):
    image, template = _problem(side)
    mask = np.ones(template.shape, bool) if masked else None
    expected = choose_algorithm(image.shape, template.shape, masked=masked)
    # algorithm="auto" is the default; "exact" keeps the correlations in float64, where the spy counts them
    match_template(image, template, "ncc", mask=mask, precision="exact")
    other = "fft" if expected == "direct" else "direct"
    assert paths[expected] > 0 and paths[other] == 0, (expected, paths)


@pytest.mark.parametrize("forced", ["direct", "fft"])
@pytest.mark.parametrize("side", [SMALL, LARGE])
def test_auto_asks_choose_algorithm(monkeypatch, paths, side, forced):
    """Make choose_algorithm answer `forced` (against its own judgement for one side): auto follows it."""
    asked = []

    def fake(image_shape, template_shape, *, masked=False):
        asked.append((tuple(image_shape), tuple(template_shape), masked))
        return forced

    monkeypatch.setattr(matcher.scores.plan, "choose_algorithm", fake)
    image, template = _problem(side, colour=True)
    mask = np.ones(template.shape[:2])
    got = match_template(image, template, "ncc", mask=mask, algorithm="auto", precision="exact")
    assert asked, "algorithm='auto' did not ask choose_algorithm"
    image_shape, template_shape, masked = asked[0]
    assert image_shape[:2] == (96, 120) and template_shape[:2] == (side, side) and masked is True
    other = "fft" if forced == "direct" else "direct"
    assert paths[forced] > 0 and paths[other] == 0, (forced, paths)
    ref = match_template_reference(image, template, "ncc", mask=mask)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * float(np.ptp(ref)))


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
def test_explicit_algorithm_does_not_ask_choose_algorithm(monkeypatch, algorithm):
    def fail(*args, **kwargs):
        raise AssertionError("choose_algorithm was asked although the algorithm was explicit")

    monkeypatch.setattr(matcher.scores.plan, "choose_algorithm", fail)
    image, template = _problem(LARGE)
    match_template(image, template, "ssd", algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
def test_explicit_algorithm_is_obeyed_for_1d_input(paths, algorithm):
    signal = np.random.default_rng(2).normal(0, 1, 400)
    template = signal[100:160].copy()
    got = match_template(signal, template, "ncc", algorithm=algorithm, precision="exact")
    other = "fft" if algorithm == "direct" else "direct"
    assert paths[algorithm] > 0 and paths[other] == 0, paths
    assert got.shape == (341,) and int(got.argmax()) == 100


# ---------------------------------------------------------------------------
# choose_plan and band_bounds: the rules, and that the engine follows them
# ---------------------------------------------------------------------------

from matcher.scores.plan import MIN_BAND_OUTPUTS, MIN_FLOAT32_OUTPUTS, Plan, band_bounds, choose_plan  # noqa: E402


@pytest.mark.parametrize("outputs, work", [(MIN_FLOAT32_OUTPUTS - 1, "float64"), (MIN_FLOAT32_OUTPUTS, "float32")])
def test_plan_switches_to_float32_at_the_documented_map_size(outputs, work):
    # a 1 x 5 template: outputs = H * (W - 4); two rows for the even count, one for the odd
    shape = (2, outputs // 2 + 4) if outputs % 2 == 0 else (1, outputs + 4)
    assert choose_plan(shape, (1, 5), algorithm="fft") == Plan("fft", work)


@pytest.mark.parametrize("side, work", [(11, "float32"), (12, "float64")])
def test_plan_float32_direct_only_up_to_eleven_pixels(side, work):
    assert choose_plan((1024, 1024), (side, side), algorithm="direct").work_dtype == work
    assert choose_plan((1024, 1024), (side, side), algorithm="fft").work_dtype == "float32"
    assert choose_plan((1024, 1024), (side, side), algorithm="direct", precision="exact") == Plan("direct", "float64")


def test_plan_masks_and_exact():
    assert choose_plan((1024, 1024), (40, 40), masked=True) == Plan("fft", "float64")
    assert choose_plan((1024, 1024), (40, 40), precision="exact").work_dtype == "float64"
    assert choose_plan((1024, 1024), (40, 40)).algorithm == choose_algorithm((1024, 1024), (40, 40))
    with pytest.raises(ValueError, match=r"precision must be one of \('fast', 'exact'\), got 'best'"):
        choose_plan((10, 10), (3, 3), precision="best")
    with pytest.raises(ValueError, match=r"algorithm must be one of \('auto', 'direct', 'fft'\), got 'dft'"):
        choose_plan((10, 10), (3, 3), algorithm="dft")


def test_band_bounds():
    assert band_bounds((999, 1000), 10, 3) == [0, 333, 666, 999]
    assert band_bounds((999, 1000), 10, 1) == [0, 999]
    assert band_bounds((30, MIN_BAND_OUTPUTS), 10, 4) == [0, 10, 20, 30]  # never thinner than the template
    assert band_bounds((1, MIN_BAND_OUTPUTS - 1), 1, 8) == [0, 1]  # small maps: one piece


@pytest.mark.parametrize("shape, kwargs", [
    ((300, 300), {}),                                   # large, unmasked: float32
    ((300, 300), {"precision": "exact"}),               # float64
    ((200, 200), {}),                                   # small map: float64
    ((300, 300), {"mask": np.ones((9, 9), bool)}),      # masked: float64
])
def test_engine_assembles_in_the_planned_precision(monkeypatch, shape, kwargs):
    """Spy on the assembly: the engine asks for exactly the work precision the plan names."""
    import matcher.scores.engine as engine

    taken = []
    real = engine.assemble
    monkeypatch.setattr(engine, "assemble", lambda *a, **k: taken.append(k["work"]) or real(*a, **k))
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, shape).astype(np.uint8)
    template = image[20:29, 30:39].copy()
    got = match_template(image, template, "ncc", **kwargs)
    want = choose_plan(shape, (9, 9), masked="mask" in kwargs, precision=kwargs.get("precision", "fast"))
    assert taken == [want.work_dtype]
    ref = match_template_reference(image, template, "ncc", mask=kwargs.get("mask"))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * 2)
