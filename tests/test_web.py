"""The web blueprint (service/web.py) with Flask's test client: the page, its assets, the samples.

The browser tests (tests/test_page_browser.py) drive the page itself; these
check what the server sends, and that the page and the API agree on names.
"""

import json
import re

import pytest

from matcher import load_image
from service import create_app
from service.options import OPTION_NAMES
from service.web import STATIC_DIR, web
from service_fixtures import SAMPLES


def make_app(**config):
    """A fresh app with the web blueprint (registered here until create_app does it)."""
    app = create_app({"TESTING": True, **config})
    if "web" not in app.blueprints:
        app.register_blueprint(web)
    return app


@pytest.fixture
def client():
    return make_app().test_client()


def asset_paths(html):
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)


# ---- the page ---------------------------------------------------------------------------------

def test_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert '<html lang="en">' in html and 'name="viewport"' in html
    assert '<script src="/assets/app.js" defer></script>' in html
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Matcher-Version"]
    assert client.head("/").status_code == 200


def test_the_page_under_its_asset_path_has_the_same_protection(client):
    """/assets/index.html is the same file as /: it must not be servable without the CSP and frame rules."""
    page, asset = client.get("/"), client.get("/assets/index.html")
    assert asset.status_code == 200 and asset.mimetype == "text/html"
    assert asset.get_data() == page.get_data()
    for name in ("Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"):
        assert asset.headers[name] == page.headers[name], name
    script = client.get("/assets/app.js")
    assert script.headers["X-Frame-Options"] == "DENY" and "Content-Security-Policy" not in script.headers


def test_every_asset_the_page_names_is_served(client):
    html = client.get("/").get_data(as_text=True)
    paths = asset_paths(html)
    assert {"/assets/app.js", "/assets/style.css", "/assets/icon.svg"} <= set(paths)
    types = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
    for path in paths:
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.mimetype == types[path.rsplit(".", 1)[1]], (path, r.mimetype)
        assert r.data == (STATIC_DIR / path.removeprefix("/assets/")).read_bytes()


def test_the_page_fetches_nothing_from_elsewhere():
    """Works offline: no absolute URLs, imports or inline code in the static files (the CSP forbids them)."""
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        # The SVG namespace is an identifier, not something fetched.
        text = text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path.name
        assert "@import" not in text, path.name
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline script"
            assert not re.search(r"<style|\sstyle=|\son[a-z]+=", text, re.I), "inline style or handler"


def test_unknown_asset_is_404(client):
    for path in ("/assets/nope.js", "/assets/../web.py", "/assets/..%2fweb.py"):
        assert client.get(path).status_code == 404, path


def test_the_page_sends_only_fields_the_api_takes():
    """Every form part app.js appends is a part or option of POST /v1/match."""
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    sent = set(re.findall(r'form\.append\("([^"]+)"', js))
    assert {"image", "template", "mask", "method", "threshold", "max_matches"} <= sent
    assert sent <= set(OPTION_NAMES) | {"image", "template", "mask"}


def test_every_field_the_api_can_blame_has_a_place_on_the_page():
    """A problem's ``field`` is shown next to that control; the rest (by design) above the button."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    on_page = set(re.findall(r'data-field="([^"]+)"', html))
    for field in set(OPTION_NAMES) | {"image", "template", "mask"}:
        if field == "region":  # the page has no region control; its problems go to the general message
            assert re.search(r"region: null", js)
            continue
        assert field in on_page, field
        assert f'id="{field}-error"' in html, field


# ---- samples ----------------------------------------------------------------------------------

def test_samples_are_listed(client):
    r = client.get("/v1/samples")
    assert r.status_code == 200 and r.mimetype == "application/json"
    samples = r.get_json()["samples"]
    assert [s["name"] for s in samples] == ["camera", "coins", "chelsea", "coffee", "camera_turned"]
    # one entry per template of truth.json
    truth = {e["template"]: e for e in json.loads((SAMPLES / "truth.json").read_text())}
    assert len(samples) == len(truth)
    for s in samples:
        entry = truth[s["template"]["file"]]
        assert s["image"]["file"] == entry["image"]
        assert s["image"]["url"] == "/samples/" + entry["image"]
        assert s["template"]["url"] == "/samples/" + entry["template"]
        assert (s["template"]["width"], s["template"]["height"]) == (entry["width"], entry["height"])
        assert s["title"] and s["description"] and s["options"]["method"] == "ncc"
    by_name = {s["name"]: s for s in samples}
    assert by_name["coffee"]["mask"] == "alpha" and by_name["camera"]["mask"] is None
    assert by_name["coins"]["options"]["max_matches"] >= 24
    # the turned sample comes with ranges that hold its pose; the plain ones search as they are
    turned, pose = by_name["camera_turned"]["options"], truth["camera_turned.png"]
    assert turned["angles"][0] <= pose["angle"] <= turned["angles"][1]
    assert turned["scales"][0] <= pose["scale"] <= turned["scales"][1]
    assert not any("angles" in s["options"] or "scales" in s["options"] for s in samples if s is not by_name["camera_turned"])


def test_a_turned_sample_without_a_preset_gets_ranges_around_its_pose(tmp_path):
    for name, copy in (("coins.png", "a.png"), ("coins_coin.png", "b.png"), ("coins_coin.png", "c.png")):
        (tmp_path / copy).write_bytes((SAMPLES / name).read_bytes())
    (tmp_path / "truth.json").write_text(json.dumps([
        {"image": "a.png", "template": "b.png", "width": 62, "height": 62},
        {"image": "a.png", "template": "c.png", "angle": 10.0, "scale": 0.8, "width": 62, "height": 62}]))
    samples = make_app(MATCHER_SAMPLES_DIR=str(tmp_path)).test_client().get("/v1/samples").get_json()["samples"]
    assert [s["name"] for s in samples] == ["a", "c"]  # the image's name is taken: the template's
    assert samples[0]["options"] == {"method": "ncc", "max_matches": 1}
    assert samples[1]["options"] == {"method": "ncc", "max_matches": 1, "angles": [-180, 180], "scales": [0.72, 1.1]}


def test_sample_files_are_served(client):
    for s in client.get("/v1/samples").get_json()["samples"]:
        for part in ("image", "template"):
            r = client.get(s[part]["url"])
            assert r.status_code == 200 and r.mimetype == "image/png", s[part]
            assert r.data == (SAMPLES / s[part]["file"]).read_bytes()
            assert "max-age=3600" in r.headers["Cache-Control"]
        template = load_image(client.get(s["template"]["url"]).data)
        assert (template.width, template.height) == (s["template"]["width"], s["template"]["height"])
        assert (template.mask is not None) == (s["mask"] == "alpha")


@pytest.mark.parametrize("path", [
    "/samples/../pyproject.toml",
    "/samples/..%2Fpyproject.toml",
    "/samples/..%2fsamples%2fcamera.png",
    "/samples/%2e%2e%2fpyproject.toml",
    "/samples/..%5Cpyproject.toml",
    "/samples/%2Fetc%2Fpasswd",
    "/samples//etc/passwd",
    "/samples/README.md",
    "/samples/truth.json",
    "/samples/worked_examples.json",
    "/samples/.%2Fcamera.png",
    "/samples/camera.png%00",
    "/samples/CAMERA.PNG",
    "/samples/",
    "/samples/nope.png",
])
def test_sample_path_traversal_is_refused(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert r.mimetype == "application/problem+json"
    assert b"[build-system]" not in r.data and b"root:" not in r.data


def test_samples_folder_can_be_moved_or_missing(tmp_path):
    app = make_app(MATCHER_SAMPLES_DIR=str(tmp_path))
    client = app.test_client()
    assert client.get("/v1/samples").get_json() == {"samples": []}
    assert client.get("/samples/camera.png").status_code == 404
    assert client.get("/").status_code == 200

    (tmp_path / "secret.png").write_bytes(b"secret")
    (tmp_path / "a.png").write_bytes((SAMPLES / "coins.png").read_bytes())
    (tmp_path / "b.png").write_bytes((SAMPLES / "coins_coin.png").read_bytes())
    (tmp_path / "truth.json").write_text(json.dumps([
        {"image": "a.png", "template": "b.png", "width": 62, "height": 62, "method": "ncc", "mask": None},
        {"image": "../secret.png", "template": "b.png"},  # not a bare name: ignored
        {"image": "a.png", "template": "missing.png"},  # a file that is not there: not listed
    ]))
    samples = client.get("/v1/samples").get_json()["samples"]
    assert [(s["name"], s["title"]) for s in samples] == [("a", "B")]
    assert client.get("/samples/b.png").status_code == 200
    assert client.get("/samples/..%2Fsecret.png").status_code == 404
    assert client.get("/samples/missing.png").status_code == 404


def test_a_broken_truth_file_lists_nothing(tmp_path):
    (tmp_path / "truth.json").write_text("{not json")
    client = make_app(MATCHER_SAMPLES_DIR=str(tmp_path)).test_client()
    assert client.get("/v1/samples").get_json() == {"samples": []}


def test_page_and_samples_need_no_api_key():
    """With API keys configured, the page and its samples still load; matching needs the key."""
    client = make_app(MATCHER_API_KEYS="k1").test_client()
    assert client.get("/").status_code == 200
    assert client.get("/assets/app.js").status_code == 200
    assert client.get("/v1/samples").status_code == 200
    assert client.get("/samples/camera.png").status_code == 200
    assert client.get("/v1/methods").status_code == 401
    assert client.get("/v1/methods", headers={"X-API-Key": "k1"}).status_code == 200


def test_samples_listing_is_documented_in_openapi():
    from service_fixtures import OpenAPI

    client = create_app({"TESTING": True}).test_client()
    doc = OpenAPI(client.get("/openapi.json").get_json())
    body = doc.check(client.get("/v1/samples"), "/v1/samples", "GET")
    assert len(body["samples"]) == 5
    assert "/samples/{name}" in doc.doc["paths"] and "/" in doc.doc["paths"]
