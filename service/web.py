"""The web page for trying the service, and the bundled samples it offers.

A blueprint ``web`` (never authenticated; it serves no matching itself):

- ``GET /`` the page (``service/static/index.html``); its script, style and
  icon under ``GET /assets/<file>``. Plain files, no build step, nothing
  fetched from elsewhere: the page only calls this service's own ``/v1`` API.
- ``GET /v1/samples`` the sample pairs the page offers with one click, from
  ``truth.json`` in the samples folder: ``{"samples": [{"name", "title",
  "description", "image": {"file", "url"}, "template": {...}, "mask",
  "options"}]}``. A turned sample (its truth has an ``angle`` or ``scale``)
  comes with the ranges that find it (``options.angles``, ``options.scales``). An empty list when the folder is absent (the Docker image
  leaves ``samples/`` out unless it is copied in).
- ``GET /samples/<file>`` one file of a sample: only the image and template
  files that ``truth.json`` names are served; anything else (other files of
  the folder, ``..``, absolute paths) is a 404.

The samples folder is the ``MATCHER_SAMPLES_DIR`` setting (``create_app``
config), else the environment variable of that name, else ``samples/`` next
to the ``service`` package (the repository's).

>>> from service import create_app
>>> app = create_app({"TESTING": True})
>>> if "web" not in app.blueprints:
...     app.register_blueprint(web)
>>> client = app.test_client()
>>> client.get("/").mimetype
'text/html'
>>> [s["name"] for s in client.get("/v1/samples").json["samples"]]
['camera', 'coins', 'chelsea', 'coffee', 'camera_turned']
"""

import json
import os
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, send_from_directory

__all__ = ["web", "SAMPLES_DIR", "samples_dir", "list_samples"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
"""The repository's samples folder, used unless MATCHER_SAMPLES_DIR says otherwise."""

web = Blueprint("web", __name__, static_folder="static", static_url_path="/assets")

# The page's Content-Security-Policy: its own script, style and images only; images also
# from blob: (the files the user picks, shown before and after a search) and data: (the
# heatmap the API returns as base64 PNG). No inline script or style anywhere.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

# How the page presents the samples it knows, by template (in this order); others found in truth.json
# follow with a title made from the template's name. "options" are the form values the sample sets
# ("angles" and "scales" as [low, high]: a turned search).
_PRESETS = {
    "camera_camcorder.png": {"title": "Camcorder", "description": "Find the camcorder in a gray photograph.",
                             "options": {"method": "ncc", "max_matches": 1, "threshold": ""}},
    "coins_coin.png": {"title": "All the coins", "description": "One coin as the template finds all 24 coins "
                       "(up to 30 matches scoring at least 0.5).",
                       "options": {"method": "ncc", "max_matches": 30, "threshold": 0.5}},
    "chelsea_eye.png": {"title": "Cat's eye", "description": "Find an eye in a colour photograph of a cat.",
                        "options": {"method": "ncc", "max_matches": 1, "threshold": ""}},
    "coffee_spoon.png": {"title": "Spoon, masked", "description": "An RGBA template: its transparent pixels are "
                         "left out of the score (the alpha channel is the mask).",
                         "options": {"method": "ncc", "max_matches": 1, "threshold": ""}},
    "camera_turned.png": {"title": "Camcorder, turned", "description": "The camcorder turned and enlarged: "
                          "searched over the full circle of angles and scales from 0.9 to 1.2.",
                          "options": {"method": "ncc", "max_matches": 1, "threshold": "", "angles": [-180, 180],
                                      "scales": [0.9, 1.2]}},
}


def samples_dir():
    """The samples folder in use (it may not exist)."""
    configured = current_app.config.get("MATCHER_SAMPLES_DIR") or os.environ.get("MATCHER_SAMPLES_DIR")
    return Path(configured) if configured else SAMPLES_DIR


def _truth(folder):
    try:
        entries = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict) and _plain_name(e.get("image")) and _plain_name(e.get("template"))]


def _plain_name(name):
    """A bare file name (no folders, not hidden): the only kind truth.json may point at."""
    return isinstance(name, str) and name == os.path.basename(name) and not name.startswith(".") and "\\" not in name


def list_samples(folder):
    """The samples of ``folder`` whose files exist, presets first (the body of ``GET /v1/samples``).

    A sample is named after its image, or after its template when an earlier sample has that image.
    """
    order = list(_PRESETS)
    entries = sorted(_truth(folder), key=lambda e: (order.index(e["template"]) if e["template"] in order
                                                    else len(order)))
    samples = []
    for entry in entries:
        if not ((folder / entry["image"]).is_file() and (folder / entry["template"]).is_file()):
            continue
        preset = _PRESETS.get(entry["template"], {})
        stem = Path(entry["template"]).stem
        name = Path(entry["image"]).stem
        if any(s["name"] == name for s in samples):
            name = stem
        options = preset.get("options", {"method": entry.get("method", "ncc"), "max_matches": 1})
        if "options" not in preset and ("angle" in entry or "scale" in entry):  # turned: a range around its pose
            options = options | {"angles": [-180, 180], "scales": _around(entry.get("scale", 1.0))}
        samples.append({
            "name": name,
            "title": preset.get("title", stem.replace("_", " ").capitalize()),
            "description": preset.get("description", entry.get("note", "")),
            "image": {"file": entry["image"], "url": f"/samples/{entry['image']}"},
            "template": {"file": entry["template"], "url": f"/samples/{entry['template']}",
                         "width": entry.get("width"), "height": entry.get("height")},
            "mask": entry.get("mask"),
            "options": options,
        })
    return samples


def _around(scale):
    """A scale range that holds ``scale`` (a turned sample without a preset)."""
    scale = float(scale) if isinstance(scale, (int, float)) and scale > 0 else 1.0
    return [round(min(scale, 1.0) * 0.9, 3), round(max(scale, 1.0) * 1.1, 3)]


@web.get("/")
def page():
    """The page."""
    return send_from_directory(STATIC_DIR, "index.html", max_age=0)


@web.after_request
def _page_headers(response):
    """Every HTML answer of this blueprint (``/``, and the same file as ``/assets/index.html``) gets the
    page's Content-Security-Policy; every answer, the frame and referrer rules."""
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = _CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@web.get("/v1/samples")
def samples():
    """The bundled samples (may be empty)."""
    return jsonify(samples=list_samples(samples_dir()))


@web.get("/samples/<name>")
def sample_file(name):
    """One image or template file named by truth.json; 404 for anything else."""
    folder = samples_dir()
    allowed = {e[key] for e in _truth(folder) for key in ("image", "template")}
    if name not in allowed:
        abort(404)
    return send_from_directory(folder, name, max_age=3600)
