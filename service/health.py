"""What the informational endpoints say: the methods table and the readiness self-test."""

import logging

import numpy as np

import matcher
from matcher import LOWER_IS_BETTER, METHODS
from matcher.search.find import find

__all__ = ["methods_info", "readiness"]

log = logging.getLogger("service")

# name -> (OpenCV constant, score range (None = unbounded), what it is)
_METHODS = {
    "ssd": ("TM_SQDIFF", (0, None), "sum of squared differences; 0 is a perfect match"),
    "ssd_normed": ("TM_SQDIFF_NORMED", (0, 1), "ssd normalised by the template and window norms; 0 is perfect"),
    "ccorr": ("TM_CCORR", (None, None), "cross-correlation (sum of products); unbounded, favours bright windows"),
    "ccorr_normed": ("TM_CCORR_NORMED", (-1, 1), "cross-correlation normalised by the norms; 1 is perfect "
                                                 "(0 to 1 for non-negative images)"),
    "ccoeff": ("TM_CCOEFF", (None, None), "cross-correlation of the mean-subtracted template and window"),
    "ncc": ("TM_CCOEFF_NORMED", (-1, 1), "zero-mean normalised cross-correlation; 1 is perfect, 0 for flat windows"),
}
assert tuple(_METHODS) == METHODS, "service/health.py must describe every matcher method"


def methods_info():
    """The body of ``GET /v1/methods``."""
    methods = []
    for name in METHODS:
        opencv, (lo, hi), description = _METHODS[name]
        lower = name in LOWER_IS_BETTER
        methods.append({"name": name, "opencv": opencv, "description": description,
                        "range": {"min": lo, "max": hi}, "better": "lower" if lower else "higher",
                        "threshold": "upper bound" if lower else "lower bound"})
    return {"methods": methods, "default": "ncc"}


_self_test = {"ok": False}


def readiness():
    """The body of ``GET /readyz``: runs a tiny known match once per process (then cached)."""
    if not _self_test["ok"]:
        try:
            image = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
            found = find(image, image[2:5, 3:6].copy(), "ncc")
            _self_test["ok"] = (found[0].x, found[0].y) == (3, 2)
        except Exception:  # noqa: BLE001 - a failing engine means "not ready", with a log line
            log.exception("readiness self-test failed")
    ok = _self_test["ok"]
    return {"status": "ready" if ok else "not ready", "version": matcher.__version__,
            "checks": {"engine": "ok" if ok else "failed"}}
