"""The one assembly (``matcher.scores.assembly.assemble``) on its own, in both working precisions.

- The degenerate-window rule, against known truth: flat windows score ncc 0,
  all-zero windows ccorr_normed 0, ssd_normed 0 for a zero window against a
  zero template and 1 where only one of them is zero; every other window is
  compared with the float64 reference.
- The recompute rule (:mod:`matcher.scores.settle`): windows whose error bound
  exceeds the tolerance are recomputed by definition. With the float64
  tolerance patched to 0 every window is, so the map equals the definition
  bit for bit; with a tolerance far below float32's error, the map is within
  that tolerance of the reference.
- The refusal rule: float32 work may refuse a band (False) when its bounds
  cannot be settled cheaply; float64 work never does, however loose its bounds.
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import score_contract as contract
from matcher.scores import error_model, settle
from matcher.scores.assembly import assemble
from matcher.scores.inputs import RECOMPUTE, prepare
from matcher.scores.reference import match_template_reference
from score_contract import REL

NORMALISED = ("ncc", "ccorr_normed", "ssd_normed")
METHODS = ("ncc", "ccorr_normed", "ssd_normed", "ssd", "ccorr", "ccoeff")


def scene(shape, seed=0, integer=False, level=1000.1, flat=1000.3):
    """Noise with a flat patch and an all-zero patch.

    Float data sits at ``level`` with its flat patch at ``flat``: at 1000.1 and
    1000.3, sums of centred values round, and flat windows are not found by a
    zero denominator alone.
    """
    rng = np.random.default_rng(seed)
    image = rng.integers(1, 200, shape).astype(np.float64) if integer else rng.standard_normal(shape) + level
    H, W = shape
    image[H // 4 : H // 2, W // 4 : W // 2] = 37.0 if integer else flat
    image[H // 2 + 2 :, : W // 3] = 0.0
    return image


def windows_where(image, shape, predicate):
    view = sliding_window_view(image, shape)
    lo, hi = view.min(axis=(2, 3)), view.max(axis=(2, 3))
    return predicate(lo, hi)


def assembled(image, template, method, *, work, precision="exact", mask=None, algorithm="direct"):
    """The assembly's map of one problem (one band), or None if it refused it."""
    p = prepare(image, template, method, mask=mask)
    out = np.full(p.out_shape, np.nan)
    return out if assemble(p, algorithm, out, work=work, precision=precision) else None


def check_degenerate(got, image, template, method, precision):
    shape = template.shape
    flat = windows_where(image, shape, lambda lo, hi: lo == hi)
    zero = windows_where(image, shape, lambda lo, hi: (lo == 0) & (hi == 0))
    assert zero.any() and (flat & ~zero).any()
    t_zero = not template.any()
    if method == "ncc":
        degenerate, value = flat, 0.0
    elif method == "ccorr_normed":
        degenerate, value = zero, 0.0
    else:
        degenerate, value = zero, (0.0 if t_zero else 1.0)
    assert np.all(got[degenerate] == value), (method, np.unique(got[degenerate]))
    if method == "ssd_normed" and t_zero:
        assert np.all(got[~zero] == 1.0)
    ref = match_template_reference(image, template, method)
    contract.assert_within(got, ref, method, REL[precision], what=f"{precision} degenerate scene")


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("template_kind", ["random", "zeros"])
@pytest.mark.parametrize("method", NORMALISED)
@pytest.mark.parametrize("algorithm", ["direct", "fft"])
def test_float64_degenerate_windows(method, template_kind, integer, algorithm):
    image = scene((40, 44), integer=integer)
    template = np.zeros((5, 6)) if template_kind == "zeros" else image[2:7, 30:36] + 0.25
    got = assembled(image, template, method, work="float64", algorithm=algorithm)
    if method != "ssd_normed" and template_kind == "zeros":
        assert np.all(got == 0.0)  # zero template: ccorr_normed 0; constant template: ncc 0
    else:
        check_degenerate(got, image, template, method, "exact")


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("precision", ["fast", "exact"])
@pytest.mark.parametrize("method", NORMALISED)
@pytest.mark.parametrize("algorithm", ["direct", "fft"])
def test_degenerate_windows_in_both_precisions(method, precision, integer, algorithm):
    image = scene((262, 264), seed=1, integer=integer, level=1000.1 if precision == "exact" else 0.5, flat=3.75)
    template = image[2:7, 200:206] + 0.25
    work = "float64" if precision == "exact" else "float32"
    got = assembled(image, template, method, work=work, precision=precision, algorithm=algorithm)
    assert got is not None, "float32 refused the map: this case does not test it"
    check_degenerate(got, image, template, method, precision)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("masked", [False, True])
def test_float64_recomputes_windows_over_the_tolerance(method, masked, monkeypatch):
    # float data: every window's bound is > 0, so a tolerance of 0 sends every
    # window (but degenerate ones, set exactly) to the definition
    image = scene((30, 33), seed=2)
    template = image[3:8, 20:27] * 1.5 + 0.1
    mask = np.random.default_rng(3).random(template.shape) if masked else None
    ref = match_template_reference(image, template, method, mask=mask)
    # the default tolerance: not all recomputed, within the contract all the same
    got = assembled(image, template, method, work="float64", mask=mask)
    contract.assert_within(got, ref, method, REL["exact"])
    monkeypatch.setitem(RECOMPUTE["exact"], "float64", 0.0)
    got = assembled(image, template, method, work="float64", mask=mask)
    np.testing.assert_array_equal(got, ref)


def _scene_with_a_quiet_patch(quiet):
    """Noise of std 1 at 5, with two 20 x 20 patches: std 1e-3 at 5, std ``quiet`` at 0.

    Windows there have large error bounds: near-flat ones for ncc, near-zero ones for the others.
    """
    rng = np.random.default_rng(4)
    image = 5.0 + rng.standard_normal((262, 266))
    image[100:120, 50:70] = 5.0 + 1e-3 * rng.standard_normal((20, 20))
    image[180:200, 150:170] = quiet * rng.standard_normal((20, 20))
    return image, image[5:10, 200:207] * 2.0 - 1.0


@pytest.mark.parametrize("method", NORMALISED)
@pytest.mark.parametrize("precision, tolerance, quiet", [("fast", 1e-5, 1e-3), ("exact", 1e-12, 1e-2)])
def test_recomputes_windows_over_the_tolerance(method, precision, tolerance, quiet, monkeypatch):
    # the quiet patch's windows are within the contract's tolerance, not within the tighter one
    image, template = _scene_with_a_quiet_patch(quiet)
    ref = match_template_reference(image, template, method)
    recomputed = []
    original = settle.rescore
    work = "float64" if precision == "exact" else "float32"

    def spy(p, scores, ys, xs):
        recomputed.append((ys.copy(), xs.copy()))
        return original(p, scores, ys, xs)

    monkeypatch.setattr(settle, "rescore", spy)
    got = assembled(image, template, method, work=work, precision=precision)
    assert got is not None
    default_count = sum(ys.size for ys, _ in recomputed)
    contract.assert_within(got, ref, method, REL[precision])

    # a tolerance 10x (fast) or 1000x (exact) tighter than the contract's: more windows exceed it
    monkeypatch.setitem(RECOMPUTE[precision], work, tolerance)
    recomputed.clear()
    got = assembled(image, template, method, work=work, precision=precision)
    assert got is not None, "refused: this case does not test the recompute rule"
    ys = np.concatenate([y for y, _ in recomputed])
    xs = np.concatenate([x for _, x in recomputed])
    assert ys.size > default_count, (ys.size, default_count)
    # recomputed by definition: the reference's values, bit for bit
    np.testing.assert_array_equal(got[ys, xs], ref[ys, xs])
    contract.assert_within(got, ref, method, tolerance)


@pytest.mark.parametrize("method", METHODS)
def test_float32_refuses_what_it_cannot_vouch_for_and_float64_never_does(method, monkeypatch):
    """Error models inflated a billion times: every float32 bound exceeds the tolerance. Float32
    refuses the band (one bound for the band: ssd, ccorr, ccoeff) or refines it in float64 strips
    (normalised methods); float64 settles every window."""
    image, template = _scene_with_a_quiet_patch(1e-3)
    ref = match_template_reference(image, template, method)
    inflated = {plane: tuple(c * 1e9 for c in model) for plane, model in error_model._FLOAT32_MODEL.items()}
    monkeypatch.setattr(error_model, "_FLOAT32_MODEL", inflated)
    got = assembled(image, template, method, work="float32", precision="fast", algorithm="fft")
    if method in NORMALISED:
        contract.assert_within(got, ref, method, REL["fast"])
    else:
        assert got is None, "float32 vouched for scores whose bound exceeds the tolerance"
    real = error_model.float64_coefficients
    monkeypatch.setattr(error_model, "float64_coefficients", lambda *a, **k: tuple(c * 1e9 for c in real(*a, **k)))
    import matcher.scores.image_channel as image_channel
    import matcher.scores.correlate as correlate
    monkeypatch.setattr(image_channel, "float64_coefficients", error_model.float64_coefficients)
    monkeypatch.setattr(correlate, "_FFT_MODEL", tuple(c * 1e9 for c in correlate._FFT_MODEL))  # the transforms
    got = assembled(image, template, method, work="float64", precision="fast", algorithm="fft")
    assert got is not None
    contract.assert_within(got, ref, method, REL["fast"])


def test_masks_are_assembled_in_float64_only():
    image = scene((40, 44), seed=5)
    with pytest.raises(ValueError, match="masked problems are assembled in float64"):
        assembled(image, image[:5, :5], "ncc", work="float32", mask=np.ones((5, 5)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mask_kind", ["bool", "weights"])
@pytest.mark.parametrize("algorithm", ["direct", "fft"])
def test_masked_window_terms_under_a_dc_offset(method, mask_kind, algorithm):
    """Masks (binary and fractional weights) through the same chunks as unmasked maps: the exact
    contract on integer images at a DC offset of 1e6 (Padfield's terms from the centred image)."""
    rng = np.random.default_rng(6)
    image = rng.integers(0, 50, (60, 64)).astype(np.float64) + 1e6
    template = image[10:19, 20:29].copy()
    weights = rng.random((9, 9))
    mask = weights > 0.3 if mask_kind == "bool" else weights
    got = assembled(image, template, method, work="float64", mask=mask, algorithm=algorithm)
    ref = match_template_reference(image, template, method, mask=mask)
    contract.assert_within(got, ref, method, REL["exact"])


@pytest.mark.parametrize("method", NORMALISED)
@pytest.mark.parametrize("work, precision", [("float32", "fast"), ("float64", "exact"), ("float64", "fast")])
def test_a_chunks_uniform_bound_covers_every_windows_own(method, work, precision, monkeypatch):
    """Where every window's bound is far inside the tolerance, a chunk gets one bound (its largest ``q``
    over its smallest denominator): the same scores, a bound at least each window's own, and nothing
    flagged that the per-window bounds would not flag."""
    import skimage.data

    from matcher.scores import assembly

    rng = np.random.default_rng(11)
    image = skimage.data.camera()[100:300, 150:410].astype(np.float64) / 255.0 + rng.normal(0, 0.01, (200, 260))
    template = image[60:76, 90:106] * 1.5 + 0.2
    seen = []
    original = assembly.settle_normalised

    def spy(job, *args, **kwargs):
        seen.append((job.bound.copy(), job.bound_max))
        return original(job, *args, **kwargs)

    monkeypatch.setattr(assembly, "settle_normalised", spy)
    uniform = assembled(image, template, method, work=work, precision=precision)
    (bound_uniform, bound_max), = seen
    assert uniform is not None and np.isfinite(bound_max), "the uniform bound was not used: this case does not test it"
    assert len(np.unique(bound_uniform)) <= 2  # one value a chunk
    assert bound_uniform.max() <= bound_max

    seen.clear()
    monkeypatch.setattr(assembly._Assembly, "_uniform_bound", lambda self, *args: False)
    per_window = assembled(image, template, method, work=work, precision=precision)
    (bound_window, bound_max), = seen
    assert np.isinf(bound_max) and len(np.unique(bound_window)) > 100
    np.testing.assert_array_equal(uniform, per_window)
    assert np.all(bound_uniform >= bound_window)
    ref = match_template_reference(image, template, method)
    contract.assert_within(uniform, ref, method, REL[precision])
