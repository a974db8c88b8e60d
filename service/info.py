"""What the informational endpoints say: the methods table and the readiness self-test."""

import logging
import math

import numpy as np

import matcher
from matcher.methods import TABLE
from matcher.options import OPTIONS
from matcher.search.find import find

__all__ = ["methods_info", "readiness"]

log = logging.getLogger("service")

def methods_info():
    """The body of ``GET /v1/methods``, from :data:`matcher.methods.TABLE`.

    >>> [m["name"] for m in methods_info()["methods"] if m["better"] == "lower"]
    ['ssd', 'ssd_normed']
    """
    return {"methods": [{"name": m.name, "opencv": m.opencv_name, "description": m.description,
                         "range": {"min": _bound(m.range[0]), "max": _bound(m.range[1])}, "better": m.better,
                         "threshold": "upper bound" if m.lower_is_better else "lower bound"} for m in TABLE],
            "default": OPTIONS["method"].default}


def _bound(value):
    """A range bound as JSON: None for an infinite one, an int when whole."""
    if math.isinf(value):
        return None
    return int(value) if float(value).is_integer() else value


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
