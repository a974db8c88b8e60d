"""The web page for trying the service, and the bundled samples it offers.

A blueprint ``web`` (never authenticated; it serves no matching itself):

- ``GET /`` the page (``service/static/index.html``); its script, style and
  icon under ``GET /assets/<file>``. Plain files, no build step, nothing
  fetched from elsewhere: the page only calls this service's own ``/v1`` API.
- ``GET /v1/samples`` the sample pairs the page offers with one click, from
  ``truth.json`` in the samples folder: ``{"samples": [{"name", "title",
  "description", "image": {"file", "url"}, "template": {...}, "mask",
  "options"}]}``. An empty list when the folder is absent (the Docker image
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
['camera', 'coins', 'chelsea', 'coffee']
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

# How the page presents the samples it knows (in this order); others found in truth.json follow
# with a title made from the template's name. "options" are the form values the sample sets.
_PRESETS = {
    "camera.png": {"title": "Camcorder", "description": "Find the camcorder in a gray photograph.",
                   "options": {"method": "ncc", "max_matches": 1, "threshold": ""}},
    "coins.png": {"title": "All the coins", "description": "One coin as the template finds all 24 coins "
                  "(up to 30 matches scoring at least 0.5).",
                  "options": {"method": "ncc", "max_matches": 30, "threshold": 0.5}},
    "chelsea.png": {"title": "Cat's eye", "description": "Find an eye in a colour photograph of a cat.",
                    "options": {"method": "ncc", "max_matches": 1, "threshold": ""}},
    "coffee.png": {"title": "Spoon, masked", "description": "An RGBA template: its transparent pixels are "
                   "left out of the score (the alpha channel is the mask).",
                   "options": {"method": "ncc", "max_matches": 1, "threshold": ""}},
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
    """The samples of ``folder`` whose files exist, presets first (the body of ``GET /v1/samples``)."""
    order = list(_PRESETS)
    entries = sorted(_truth(folder), key=lambda e: (order.index(e["image"]) if e["image"] in order else len(order)))
    samples = []
    for entry in entries:
        if not ((folder / entry["image"]).is_file() and (folder / entry["template"]).is_file()):
            continue
        if "angle" in entry or "scale" in entry:  # the turned search is not offered by the service yet
            continue
        preset = _PRESETS.get(entry["image"], {})
        stem = Path(entry["template"]).stem
        samples.append({
            "name": Path(entry["image"]).stem,
            "title": preset.get("title", stem.replace("_", " ").capitalize()),
            "description": preset.get("description", entry.get("note", "")),
            "image": {"file": entry["image"], "url": f"/samples/{entry['image']}"},
            "template": {"file": entry["template"], "url": f"/samples/{entry['template']}",
                         "width": entry.get("width"), "height": entry.get("height")},
            "mask": entry.get("mask"),
            "options": preset.get("options", {"method": entry.get("method", "ncc"), "max_matches": 1}),
        })
    return samples


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
