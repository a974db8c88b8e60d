"""The precision contract the score-map tests check (shared by test_engine.py and test_large_maps.py).

The maximum absolute error against an oracle is at most ``rel * range``,
``range`` being the oracle map's max - min (1 if that is 0): ``REL["exact"]``
= 1e-9, ``REL["fast"]`` = 1e-4. A floor of a few float64 ulps of the values'
magnitude is added (``ULP_FLOOR``): no float64 result, the reference's
included, can be more accurate than that, and it only matters when the range
is ~1e-7 of the values (ccorr_normed on a DC-offset image, whose scores are
all ~1 - 1e-9). Every map must also satisfy :func:`check_contract`.
"""

import numpy as np

REL = {"exact": 1e-9, "fast": 1e-4}
ULP_FLOOR = 16 * float(np.finfo(np.float64).eps)


def score_range(ref):
    r = float(np.max(ref) - np.min(ref))
    return r if r > 0 else 1.0


def allowed_error(ref, rel, factor=1.0):
    """``factor * rel * range + ULP_FLOOR * max|ref|``."""
    ref = np.asarray(ref)
    return factor * rel * score_range(ref) + ULP_FLOOR * float(np.abs(ref).max())


def check_contract(out, method):
    """What every score map must satisfy, whatever the input."""
    assert isinstance(out, np.ndarray) and out.dtype == np.float64, (type(out), getattr(out, "dtype", None))
    assert np.isfinite(out).all(), "non-finite scores"
    if method in ("ncc", "ccorr_normed"):
        assert out.min() >= -1.0 and out.max() <= 1.0, (out.min(), out.max())
    elif method == "ssd_normed":
        assert out.min() >= 0.0 and out.max() <= 1.0, (out.min(), out.max())
    elif method == "ssd":
        assert out.min() >= 0.0, out.min()


def assert_within(got, ref, method, rel, *, factor=1.0, extra=0.0, what=""):
    """``got`` satisfies the contract and is within ``factor * rel`` of the range (plus ``extra``) of ``ref``."""
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    check_contract(got, method)
    err = np.abs(got - ref)
    allowed = allowed_error(ref, rel, factor) + extra
    worst = np.unravel_index(int(err.argmax()), err.shape)
    assert err.max() <= allowed, (
        f"{what} {method}: max error {err.max():.3g} at {tuple(int(i) for i in worst)}: "
        f"got {got[worst]!r}, reference {ref[worst]!r}; allowed {allowed:.3g} "
        f"(= {factor * rel:g} x range {score_range(ref):.6g} + floor)"
    )
