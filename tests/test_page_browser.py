"""The try-it page end to end, in headless Chromium driven by Playwright.

Run alone with ``pytest -m browser``. Needs Playwright for Python and a
Chromium binary (Debian's ``/usr/bin/chromium``, or ``MATCHER_CHROMIUM``);
without either the tests are skipped with the reason. No browser is
downloaded: Playwright launches the system's Chromium.

The service runs in this process (a threaded Werkzeug server on a free
127.0.0.1 port) so tests can change its limits; the page's answers are
checked against the same app's ``POST /v1/match`` through Flask's test
client. Every request the page makes to another origin is refused and fails
the test: the page must work offline. Screenshots go to
``MATCHER_SCREENSHOT_DIR``, else a temporary folder (the path is printed).
"""

import base64
import contextlib
import json
import os
import pathlib
import shutil
import threading

import pytest

from service import create_app
from service.web import web
from service_fixtures import SAMPLES, sample

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

sync_api = pytest.importorskip(
    "playwright.sync_api", exc_type=ImportError,
    reason="Playwright for Python is not installed (pip install playwright; no 'playwright install' needed)")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000


def chromium_path():
    candidates = [os.environ.get("MATCHER_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


# ---- the service and the browser -----------------------------------------------------------------

class Server:
    """The app on a real socket, with a way to change its settings for one test."""

    def __init__(self):
        from werkzeug.serving import make_server

        self.app = create_app({"TESTING": True})
        if "web" not in self.app.blueprints:  # until create_app registers it itself
            self.app.register_blueprint(web)
        self.httpd = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @contextlib.contextmanager
    def configured(self, **settings):
        saved = {k: self.app.config[k] for k in settings}
        self.app.config.update(settings)
        try:
            yield
        finally:
            self.app.config.update(saved)

    def match(self, files, **fields):
        """The API's own answer, through the same app (what the page must show)."""
        data = dict(fields)
        for name, filename in files.items():
            data[name] = ((SAMPLES / filename).open("rb"), filename)
        r = self.app.test_client().post("/v1/match", data=data, content_type="multipart/form-data")
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.get_json()

    def stop(self):
        self.httpd.shutdown()
        self.thread.join(5)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium binary: apt-get install chromium (or set MATCHER_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = os.environ.get("MATCHER_SCREENSHOT_DIR")
    path = pathlib.Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {path}")
    return path


class Page:
    """A page of the app, with helpers; records console errors and foreign requests."""

    def __init__(self, page, server):
        self.p, self.server = page, server
        self.errors, self.foreign, self.requests = [], [], []
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", self._console)
        page.on("request", lambda r: self.requests.append((r.method, r.url)))
        self.failed = []  # responses with a 4xx/5xx status: what the console shows as "Failed to load resource"
        page.on("response", lambda r: self.failed.append((r.status, r.url)) if r.status >= 400 else None)
        # Registered before the page loads: expect_file_chooser() set up just before a key press
        # sometimes misses the first chooser of a fresh browser.
        self.choosers = []
        page.on("filechooser", lambda chooser: self.choosers.append(chooser))
        page.route("**/*", self._route)
        page.set_default_timeout(TIMEOUT_MS)

    def _console(self, msg):
        # Chromium logs every 4xx/5xx response as "Failed to load resource"; those are the tests' own.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            self.errors.append(f"console: {msg.text}")

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.server.url + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def open(self):
        self.p.goto(self.server.url + "/")
        self.p.wait_for_selector("html[data-ready=true]")
        return self

    def __getattr__(self, name):
        return getattr(self.p, name)

    def run(self, action):
        """Do ``action`` (which starts a search) and wait for the answer; return the results' state."""
        before = self.p.get_attribute("#results", "data-run") or "0"
        action()
        self.p.wait_for_function("n => document.querySelector('#results').dataset.run !== n", arg=before)
        return self.p.get_attribute("#results", "data-state")

    def search(self):
        return self.run(lambda: self.p.click("#submit"))

    def choose(self, field, filename=None, *, name=None, data=None, mime="image/png"):
        if filename is not None:
            self.p.set_input_files(f"#{field}-input", str(SAMPLES / filename))
        else:
            self.p.set_input_files(f"#{field}-input", {"name": name, "mimeType": mime, "buffer": data})

    def boxes(self):
        return self.p.eval_on_selector_all("#boxes rect.box", """rs => rs.map(r => ({
            rank: +r.dataset.rank, x: +r.dataset.x, y: +r.dataset.y, width: +r.dataset.width,
            height: +r.dataset.height, score: +r.dataset.score}))""")

    def turned_boxes(self):
        """The turned boxes (SVG polygons): their pose and the polygon's points, in image pixels."""
        return self.p.eval_on_selector_all("#boxes polygon.box", """ps => ps.map(p => ({
            rank: +p.dataset.rank, x: +p.dataset.x, y: +p.dataset.y, width: +p.dataset.width,
            height: +p.dataset.height, score: +p.dataset.score, angle: +p.dataset.angle, scale: +p.dataset.scale,
            cx: +p.dataset.cx, cy: +p.dataset.cy,
            points: [...p.points].map(q => [q.x, q.y])}))""")

    def error_of(self, field):
        box = self.p.locator(f"#{field}-error")
        assert box.is_visible(), f"no message by the {field} field"
        return box.inner_text()

    def posts(self):
        return sum(1 for m, u in self.requests if m == "POST")

    def top(self, selector):
        """The element's top edge in page coordinates (scrolling removed)."""
        return self.place(selector)["y"]

    def place(self, selector):
        """The element's box in page coordinates (scrolling removed)."""
        return self.p.evaluate("""s => { const r = document.querySelector(s).getBoundingClientRect();
            return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; }""", selector)

    def no_horizontal_overflow(self):
        return self.p.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = Page(context.new_page(), server)
    yield pg
    context.close()
    assert not pg.foreign, f"the page asked for other origins: {pg.foreign}"
    assert not pg.errors, pg.errors


@pytest.fixture
def phone(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True)
    pg = Page(context.new_page(), server)
    yield pg
    context.close()
    assert not pg.foreign and not pg.errors, (pg.foreign, pg.errors)


def ranked(matches):
    return [(i + 1, m["x"], m["y"], m["width"], m["height"], m["score"]) for i, m in enumerate(matches)]


# ---- searching ----------------------------------------------------------------------------------

def test_upload_search_and_boxes_match_the_api(page, server, shots):
    page.open()
    assert page.title().startswith("matcher")
    page.choose("image", "coins.png")
    page.choose("template", "coins_coin.png")
    assert page.is_visible("#stage-image")  # shown before the search
    page.fill("#threshold", "0.5")
    page.fill("#max_matches", "30")
    assert page.search() == "done"

    api = server.match({"image": "coins.png", "template": "coins_coin.png"},
                       threshold="0.5", max_matches="30", max_overlap="0.3", method="ncc", subpixel="false")
    drawn = sorted(page.boxes(), key=lambda b: b["rank"])
    assert len(api["matches"]) == 24
    assert [(b["rank"], b["x"], b["y"], b["width"], b["height"], b["score"]) for b in drawn] == ranked(api["matches"])

    # The overlay lies on the picture: a box's position on screen is its pixel position, scaled.
    geometry = page.evaluate("""() => {
        const img = document.querySelector('#stage-image').getBoundingClientRect();
        return [...document.querySelectorAll('#boxes rect.box')].map(r => {
            const b = r.getBoundingClientRect();
            return {rank: +r.dataset.rank, left: b.left - img.left, top: b.top - img.top, width: b.width,
                    scale: img.width / 384, scaleY: img.height / 303};
        });
    }""")
    for g in geometry:
        m = api["matches"][g["rank"] - 1]
        assert abs(g["scale"] - g["scaleY"]) < 0.01  # aspect ratio kept
        assert abs(g["left"] - m["x"] * g["scale"]) < 1.5 and abs(g["top"] - m["y"] * g["scale"]) < 1.5
        assert abs(g["width"] - m["width"] * g["scale"]) < 1.5
    assert page.locator("#labels .box-label").count() == 24
    assert page.inner_text('#labels .box-label[data-rank="1"]') == "#1 1.000"

    # The table lists the same matches; the status gives the count and the time.
    rows = page.eval_on_selector_all("#matches-body tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert len(rows) == 24
    assert rows[0] == ["1", "270", "233", "62", "62", "1.0000"]
    assert "24 matches" in page.inner_text("#status") and "ms" in page.inner_text("#status")
    assert page.inner_text("#template-facts").count("62 × 62") == 1
    page.screenshot(path=str(shots / "coins-wide.png"), full_page=True)


def test_sub_pixel_and_options_reuse_the_picked_files(page, server):
    page.open()
    page.choose("image", "camera.png")
    page.choose("template", "camera_camcorder.png")
    assert page.search() == "done"
    assert [(b["x"], b["y"]) for b in page.boxes()] == [(248, 132)]

    # Change options only: no file is picked again; the kept files are sent again.
    page.fill("#max_matches", "3")
    page.check("#subpixel")
    page.select_option("#method", "ssd_normed")
    posts_before = sum(1 for m, u in page.requests if m == "POST")
    assert page.search() == "done"
    assert sum(1 for m, u in page.requests if m == "POST") == posts_before + 1
    api = server.match({"image": "camera.png", "template": "camera_camcorder.png"},
                       max_matches="3", subpixel="true", method="ssd_normed")
    drawn = sorted(page.boxes(), key=lambda b: b["rank"])
    assert [(b["rank"], b["x"], b["y"], b["width"], b["height"], b["score"]) for b in drawn] == ranked(api["matches"])
    assert len(drawn) == 3
    xs = page.eval_on_selector_all("#matches-body tr td:nth-child(2)", "cs => cs.map(c => c.textContent)")
    assert xs == [str(m["x"]) if float(m["x"]).is_integer() else f"{m['x']:.2f}" for m in api["matches"]]
    assert "ssd_normed" in page.inner_text("#status")
    # ssd_normed: lower is better, so sorting by score starts with the lowest.
    page.click('#matches th[data-key="score"] button')
    scores = page.eval_on_selector_all("#matches-body tr td:last-child", "cs => cs.map(c => +c.textContent)")
    assert scores == sorted(scores)


def test_heatmap_overlay_toggles(page, server):
    page.open()
    page.choose("image", "chelsea.png")
    page.choose("template", "chelsea_eye.png")
    assert page.search() == "done"
    toggle = page.locator("#heatmap-toggle")
    assert toggle.is_enabled() and toggle.get_attribute("aria-pressed") == "false"
    assert not page.is_visible("#stage-heatmap")

    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    assert page.is_visible("#stage-heatmap") and page.is_visible("#heatmap-legend")
    api = server.match({"image": "chelsea.png", "template": "chelsea_eye.png"}, **{"return": "heatmap"})
    assert page.get_attribute("#stage-heatmap", "src") == "data:image/png;base64," + api["heatmap"]
    size = page.evaluate("""() => { const h = document.querySelector('#stage-heatmap'), i = document.querySelector('#stage-image');
        return [h.naturalWidth, h.naturalHeight, Math.round(h.getBoundingClientRect().width),
                Math.round(i.getBoundingClientRect().width)]; }""")
    assert size[:2] == [451, 300] and size[2] == size[3]  # same picture size, laid exactly over it

    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "false" and not page.is_visible("#stage-heatmap")

    # Boxes can be hidden too; without a computed heatmap its toggle is off and says why.
    page.click("#boxes-toggle")
    assert not page.is_visible("#boxes rect.box")
    page.click("#boxes-toggle")
    assert page.is_visible("#boxes rect.box")
    page.click("#more-options summary")
    page.uncheck("#want-heatmap")
    assert page.search() == "done"
    assert toggle.is_disabled() and "heatmap" in toggle.get_attribute("title")


def test_heatmap_toggle_does_not_carry_over_to_new_pictures(page, server):
    page.open()
    assert page.run(lambda: page.click('button.sample[data-sample="chelsea"]')) == "done"
    page.click("#heatmap-toggle")
    assert page.get_attribute("#heatmap-toggle", "aria-pressed") == "true" and page.is_visible("#stage-heatmap")
    # Same pictures, another option: the choice stays.
    page.fill("#max_matches", "2")
    assert page.search() == "done"
    assert page.get_attribute("#heatmap-toggle", "aria-pressed") == "true" and page.is_visible("#stage-heatmap")
    # A new template: the next result starts without the heatmap.
    page.choose("template", "coins_coin.png")
    page.choose("image", "coins.png")
    assert page.search() == "done"
    assert page.get_attribute("#heatmap-toggle", "aria-pressed") == "false"
    assert not page.is_visible("#stage-heatmap") and not page.is_visible("#heatmap-legend")
    assert page.is_enabled("#heatmap-toggle")  # still there to ask for
    # Nor through a sample.
    page.click("#heatmap-toggle")
    assert page.run(lambda: page.click('button.sample[data-sample="camera"]')) == "done"
    assert page.get_attribute("#heatmap-toggle", "aria-pressed") == "false" and not page.is_visible("#stage-heatmap")


def test_many_matches_are_summed_up_above_the_table(page, server, shots):
    page.open()
    assert page.run(lambda: page.click('button.sample[data-sample="coins"]')) == "done"
    api = server.match({"image": "coins.png", "template": "coins_coin.png"},
                       threshold="0.5", max_matches="30", max_overlap="0.3", method="ncc")
    scores = [m["score"] for m in api["matches"]]
    assert len(scores) == 24
    summary = page.inner_text("#matches-summary")
    assert summary.startswith(f"24 matches, best {max(scores):.3f}, worst {min(scores):.3f}")
    scrolls = page.evaluate("(w => w.scrollHeight > w.clientHeight)(document.querySelector('.table-wrap'))")
    # Either all rows are in sight, or the line says the table scrolls (and it is reachable by keyboard).
    assert ("the table scrolls" in summary) == scrolls
    if scrolls:
        assert page.get_attribute(".table-wrap", "tabindex") == "0"
    page.locator(".matches-card").screenshot(path=str(shots / "coins-table.png"))

    # One match: its score; ssd_normed (lower is better): best is the lowest.
    page.choose("image", "camera.png")
    page.choose("template", "camera_camcorder.png")
    page.fill("#threshold", "")
    page.fill("#max_matches", "3")
    page.select_option("#method", "ssd_normed")
    assert page.search() == "done"
    api = server.match({"image": "camera.png", "template": "camera_camcorder.png"}, max_matches="3",
                       method="ssd_normed")
    scores = [m["score"] for m in api["matches"]]
    assert page.inner_text("#matches-summary") == f"3 matches, best {min(scores):.3f}, worst {max(scores):.3f}."
    page.fill("#max_matches", "1")
    assert page.search() == "done"
    assert page.inner_text("#matches-summary") == f"1 match, score {min(scores):.3f}."


@pytest.mark.parametrize("name", ["camera", "coins", "chelsea", "coffee"])
def test_one_click_samples(page, name):
    page.open()
    truth = {e["image"].removesuffix(".png"): e for e in json.loads((SAMPLES / "truth.json").read_text())
             if "angle" not in e}[name]  # the plain samples (the turned one: test_turned_sample_draws_...)
    assert page.run(lambda: page.click(f'button.sample[data-sample="{name}"]')) == "done"
    assert page.get_attribute(f'button.sample[data-sample="{name}"]', "aria-pressed") == "true"
    boxes = page.boxes()
    best = next(b for b in boxes if b["rank"] == 1)
    assert (best["x"], best["y"], best["width"], best["height"]) == (truth["x"], truth["y"], truth["width"],
                                                                     truth["height"])
    assert best["score"] == pytest.approx(1.0, abs=1e-6)
    if name == "coins":  # every coin, each where truth.json has it
        assert len(boxes) == 24
        found = {(b["x"], b["y"]) for b in boxes}
        for m in truth["matches"]:
            assert any(abs(x - m["x"]) <= 1 and abs(y - m["y"]) <= 1 for x, y in found), m
    else:
        assert len(boxes) == 1
    masked = "its transparency" in page.inner_text("#template-facts")
    assert masked == (truth["mask"] == "alpha")
    # The sample's files were fetched once each.
    files = [u for m, u in page.requests if "/samples/" in u and u.endswith(truth["image"])]
    assert len(files) == 1, files


# ---- errors next to their fields -----------------------------------------------------------------

def test_missing_files_are_asked_for_without_a_request(page):
    page.open()
    page.click("#submit")
    assert "Choose a search image" in page.error_of("image")
    assert "Choose a template" in page.error_of("template")
    assert page.evaluate("document.activeElement.id") == "image-drop"
    assert page.get_attribute("#image-drop", "aria-invalid") == "true"
    assert not [u for m, u in page.requests if m == "POST"]


def test_wrong_format_then_fixed(page):
    page.open()
    page.choose("image", name="notes.txt", data=b"this is not a picture\n", mime="text/plain")
    page.choose("template", "coins_coin.png")
    assert page.search() == "error"
    message = page.error_of("image")
    assert "not a picture the service can read" in message and "PNG, JPEG, WEBP or BMP" in message
    assert page.get_attribute("#image-drop", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "image-drop"
    assert not page.is_visible("#template-error")
    assert "image" in page.inner_text("#status")

    page.choose("image", "coins.png")  # fixing the field clears its message; searching works again
    assert not page.is_visible("#image-error")
    assert page.search() == "done"


def test_too_many_pixels(page, server):
    page.open()
    page.choose("image", "coins.png")
    page.choose("template", "coins_coin.png")
    with server.configured(MATCHER_MAX_PIXELS=10_000):
        assert page.search() == "error"
    message = page.error_of("image")
    assert "too many pixels" in message and "10,000" in message
    assert not page.is_visible("#template-error")
    assert page.search() == "done"  # the limit is back: the same files go through


def test_template_larger_than_the_image(page):
    page.open()
    page.choose("image", "coins_coin.png")
    page.choose("template", "coins.png")
    assert page.search() == "error"
    message = page.error_of("template")
    assert "must fit inside the search image" in message and "384 × 303" in message and "62 × 62" in message
    assert not page.is_visible("#image-error")


def test_bad_threshold_then_fixed(page):
    page.open()
    page.choose("image", "camera.png")
    page.choose("template", "camera_camcorder.png")
    page.fill("#threshold", "abc")
    page.click("#submit")  # checked in the page: nothing is sent, no 400 in the console
    message = page.error_of("threshold")
    assert "Enter a number" in message
    assert page.evaluate("document.activeElement.id") == "threshold"
    assert page.get_attribute("#threshold", "aria-invalid") == "true"
    assert page.posts() == 0 and not page.failed

    page.fill("#threshold", "0.9")  # typing clears the message
    assert not page.is_visible("#threshold-error")
    assert page.search() == "done"
    assert len(page.boxes()) == 1


@pytest.mark.parametrize("value, words", [
    ("abc", "Enter a number, for example 0.8"), ("1e400", "Enter a number, for example 0.8"),
    ("0x10", "Enter a number, for example 0.8"), ("1,5", "Use a point for decimals: 1.5"),
    ("2", "from −1 to 1 for ncc"), ("-1.5", "from −1 to 1 for ncc"),
])
def test_invalid_threshold_is_never_sent_and_the_last_result_stays(page, shots, value, words):
    page.open()
    page.choose("image", "coins.png")
    page.choose("template", "coins_coin.png")
    page.fill("#threshold", "0.5")
    page.fill("#max_matches", "30")
    assert page.search() == "done"
    before = sorted((b["rank"], b["x"], b["y"]) for b in page.boxes())
    assert len(before) == 24
    posts = page.posts()
    row = [page.place(s) for s in ("#threshold", "#max_matches")]

    page.fill("#threshold", value)
    page.click("#submit")
    assert words in page.error_of("threshold")
    assert page.posts() == posts and not page.failed  # not sent: the server never says 400
    # The message sits under the row: Max matches stays beside Threshold, where it was.
    after = [page.place(s) for s in ("#threshold", "#max_matches")]
    assert after == row and after[0]["y"] == after[1]["y"] and after[0]["x"] < after[1]["x"]
    assert page.top("#threshold-error") >= row[1]["y"] + row[1]["height"]
    # The previous result is still there, and said to be the previous one.
    assert sorted((b["rank"], b["x"], b["y"]) for b in page.boxes()) == before
    assert page.is_visible("#boxes rect.box") and page.is_visible("#matches-body tr")
    assert "previous search" in page.inner_text("#status")
    if value == "abc":
        page.screenshot(path=str(shots / "threshold-error.png"), full_page=True)

    # ssd has no upper bound: a large threshold is fine there, but not a negative one.
    page.select_option("#method", "ssd")
    page.fill("#threshold", "-1")
    page.click("#submit")
    assert "0 or more for ssd" in page.error_of("threshold") and page.posts() == posts


def test_server_error_keeps_the_last_result(page, server):
    page.open()
    page.choose("image", "camera.png")
    page.choose("template", "camera_camcorder.png")
    assert page.search() == "done"
    assert [(b["x"], b["y"]) for b in page.boxes()] == [(248, 132)]
    with server.configured(MATCHER_MAX_PIXELS=10_000):
        assert page.search() == "error"
    assert "too many pixels" in page.error_of("image")
    assert [(b["x"], b["y"]) for b in page.boxes()] == [(248, 132)] and page.is_visible("#boxes rect.box")
    assert "previous search" in page.inner_text("#status")


def test_max_matches_out_of_range_is_caught_in_the_page(page):
    page.open()
    page.choose("image", "camera.png")
    page.choose("template", "camera_camcorder.png")
    for value, words in (("0", "from 1 to 100"), ("101", "from 1 to 100"), ("2.5", "whole number")):
        page.fill("#max_matches", value)
        page.click("#submit")
        assert words in page.error_of("max_matches")
    assert page.posts() == 0 and not page.failed
    assert page.place("#threshold")["y"] == page.place("#max_matches")["y"]


def test_colour_and_gray_offer_a_fix(page):
    page.open()
    page.choose("image", "coins.png")
    page.choose("template", "chelsea_eye.png")
    assert page.search() == "error"
    assert "colour and the other is gray" in page.error_of("template")
    assert page.run(lambda: page.click("#template-error .msg-action")) == "done"
    assert page.is_checked("#gray")


def test_api_key_is_asked_for_when_needed(page, server):
    with server.configured(MATCHER_API_KEYS=("s3cret",)):
        page.open()
        page.choose("image", "camera.png")
        page.choose("template", "camera_camcorder.png")
        assert not page.is_visible("#api_key")
        assert page.search() == "error"
        assert "needs an API key" in page.error_of("api_key")
        page.fill("#api_key", "wrong")
        assert page.search() == "error"
        assert "not accepted" in page.error_of("api_key")
        page.fill("#api_key", "s3cret")
        assert page.search() == "done"


# ---- phone width and keyboard ----------------------------------------------------------------------

def test_phone_width_layout(phone, shots):
    phone.open()
    assert phone.no_horizontal_overflow()
    assert phone.top("#match-form") < phone.top("#results")  # before any result: the form (samples) first
    assert phone.run(lambda: phone.click('button.sample[data-sample="coins"]')) == "done"
    assert phone.no_horizontal_overflow()
    canvas = phone.locator("#stage-canvas").bounding_box()
    assert canvas["x"] >= 0 and canvas["x"] + canvas["width"] <= 390
    # The table fits without sideways scrolling (the size columns give way).
    assert phone.evaluate("(w => w.scrollWidth <= w.clientWidth)(document.querySelector('.table-wrap'))")
    phone.screenshot(path=str(shots / "coins-phone.png"), full_page=True)
    # The result comes before the long form, and its picture is in sight after the search.
    assert phone.top("#results") < phone.top("#match-form")
    stage = phone.locator("#stage-canvas").bounding_box()
    assert stage["y"] >= -1 and stage["y"] + stage["height"] <= 844
    phone.screenshot(path=str(shots / "coins-phone-viewport.png"))

    phone.choose("image", name="long-name-" + "x" * 80 + ".txt", data=b"text", mime="text/plain")
    assert phone.search() == "error"
    assert phone.is_visible("#image-error") and phone.no_horizontal_overflow()


def test_keyboard_only(page):
    page.open()

    def tab_to(element_id, limit=40):
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}")

    # A drop zone is a button: Enter opens the file chooser.
    for field, filename in (("image", "coins.png"), ("template", "coins_coin.png")):
        tab_to(f"{field}-drop")
        opened = len(page.choosers)
        page.keyboard.press("Enter")
        for _ in range(50):
            if len(page.choosers) > opened:
                break
            page.wait_for_timeout(100)
        assert len(page.choosers) == opened + 1, "Enter on the drop zone opened no file chooser"
        page.choosers[-1].set_files(str(SAMPLES / filename))
        assert filename in page.inner_text(f"#{field}-name")

    tab_to("submit")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    assert page.run(lambda: page.keyboard.press("Enter")) == "done"
    assert len(page.boxes()) == 1

    # The table sorts from the keyboard too.
    page.focus('#matches th[data-key="x"] button')
    page.keyboard.press("Enter")
    assert page.get_attribute('#matches th[data-key="x"]', "aria-sort") == "ascending"
    page.keyboard.press("Enter")
    assert page.get_attribute('#matches th[data-key="x"]', "aria-sort") == "descending"


def test_drop_a_file_on_a_drop_zone(page):
    page.open()
    data = base64.b64encode(sample("camera.png")).decode()
    # Synthesise the drop a person makes: a DataTransfer with one file, dropped on the zone.
    page.evaluate("""async ([b64]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
        const zone = document.querySelector('#image-drop');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [data])
    assert "dropped.png" in page.inner_text("#image-name")
    page.choose("template", "camera_camcorder.png")
    assert page.search() == "done"
    assert [(b["x"], b["y"]) for b in page.boxes()] == [(248, 132)]


# ---- turned and resized templates ------------------------------------------------------------------

TURNED = next(e for e in json.loads((SAMPLES / "truth.json").read_text()) if e["template"] == "camera_turned.png")


def expected_outline(center, angle, scale, width, height):
    """The outline of a width x height template's pixels under a pose, in SVG units (pixel i spans i to i + 1):
    the pose maps template point (u, v) to centre + scale * R(angle) (u - (w-1)/2, v - (h-1)/2), y down."""
    import math

    a, b = scale * math.cos(math.radians(angle)), scale * math.sin(math.radians(angle))
    out = []
    for u, v in ((-0.5, -0.5), (width - 0.5, -0.5), (width - 0.5, height - 0.5), (-0.5, height - 0.5)):
        du, dv = u - (width - 1) / 2, v - (height - 1) / 2
        out.append([center[0] + a * du + b * dv + 0.5, center[1] - b * du + a * dv + 0.5])
    return out


def assert_turned_box_at_the_truth(box):
    center = (TURNED["center"]["x"], TURNED["center"]["y"])
    assert abs(box["angle"] - TURNED["angle"]) < 0.1 and abs(box["scale"] - TURNED["scale"]) < 0.005, box
    assert abs(box["cx"] - center[0]) < 0.1 and abs(box["cy"] - center[1]) < 0.1, box
    want = expected_outline(center, TURNED["angle"], TURNED["scale"], TURNED["width"], TURNED["height"])
    for got, exp in zip(box["points"], want):
        assert abs(got[0] - exp[0]) < 0.25 and abs(got[1] - exp[1]) < 0.25, (box["points"], want)


def test_turned_sample_draws_its_turned_box_and_lists_its_angle(page, server, shots):
    page.open()
    assert not page.is_checked("#turn") and not page.is_visible("#angles")  # off by default
    assert page.run(lambda: page.click('button.sample[data-sample="camera_turned"]')) == "done"
    assert page.is_checked("#turn") and page.is_visible("#angles")
    assert [page.input_value(s) for s in ("#angles", "#angles-to", "#scales", "#scales-to")] == ["-180", "180", "0.9", "1.2"]
    (box,) = page.turned_boxes()
    assert not page.boxes()  # no axis-aligned rectangle for a turned match
    assert_turned_box_at_the_truth(box)
    api = server.match({"image": "camera.png", "template": "camera_turned.png"}, angles="-180,180", scales="0.9,1.2")
    (m,) = api["matches"]
    assert (box["x"], box["y"], box["width"], box["height"], box["score"], box["angle"], box["scale"]) == (
        m["x"], m["y"], m["width"], m["height"], m["score"], m["angle"], m["scale"])
    # The polygon lies on the picture where the truth puts it, on screen too.
    geometry = page.evaluate("""() => {
        const img = document.querySelector('#stage-image').getBoundingClientRect();
        const b = document.querySelector('#boxes polygon.box').getBoundingClientRect();
        return {left: b.left - img.left, top: b.top - img.top, right: b.right - img.left, scale: img.width / 512}; }""")
    outline = expected_outline((TURNED["center"]["x"], TURNED["center"]["y"]), TURNED["angle"], TURNED["scale"],
                               TURNED["width"], TURNED["height"])
    left, top = min(p[0] for p in outline), min(p[1] for p in outline)
    right = max(p[0] for p in outline)
    stroke = 3  # half the widest stroke, in screen pixels
    assert abs(geometry["left"] - left * geometry["scale"]) < stroke and abs(geometry["top"] - top * geometry["scale"]) < stroke
    assert abs(geometry["right"] - right * geometry["scale"]) < stroke
    # The table has the angle and the scale; the heatmap is not offered for a turned search.
    headers = page.eval_on_selector_all("#matches th", "hs => hs.filter(h => h.offsetParent).map(h => h.textContent.trim())")
    assert headers == ["#", "x", "y", "Score", "Angle", "Scale"]
    assert page.evaluate("(w => w.scrollWidth <= w.clientWidth)(document.querySelector('.table-wrap'))")  # fits
    (row,) = page.eval_on_selector_all("#matches-body tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert row[-2:] == [f"{m['angle']:.2f}°", f"{m['scale']:.3f}"]
    assert abs(float(row[-2].rstrip("°")) - TURNED["angle"]) < 0.1
    assert page.is_disabled("#heatmap-toggle") and "turned" in page.get_attribute("#heatmap-toggle", "title")
    assert "Angle is counter-clockwise" in page.inner_text("#matches-note")
    page.screenshot(path=str(shots / "camera-turned.png"), full_page=True)

    # A plain sample afterwards searches as it is: no ranges, no angle columns, a rectangle.
    assert page.run(lambda: page.click('button.sample[data-sample="camera"]')) == "done"
    assert not page.is_checked("#turn") and not page.is_visible("#angles")
    assert [(b["x"], b["y"]) for b in page.boxes()] == [(248, 132)] and not page.turned_boxes()
    assert not page.is_visible('#matches th[data-key="angle"]') and page.is_visible('#matches th[data-key="width"]')
    assert page.eval_on_selector("#matches-body tr", "r => [...r.cells].map(c => c.textContent)") == [
        "1", "248", "132", "84", "60", "1.0000"]
    assert page.is_enabled("#heatmap-toggle")


def test_turn_controls_by_hand_errors_and_the_cost_limit(page, server):
    page.open()
    page.choose("image", "camera.png")
    page.choose("template", "camera_turned.png")
    page.check("#turn")
    for selector, value in (("#angles", "20"), ("#angles-to", "40"), ("#scales", "1.1"), ("#scales-to", "1.2")):
        page.fill(selector, value)
    page.fill("#angle_step", "0.5")
    assert page.search() == "done"
    (box,) = page.turned_boxes()
    assert_turned_box_at_the_truth(box)
    api = server.match({"image": "camera.png", "template": "camera_turned.png"}, angles="20,40", scales="1.1,1.2",
                       angle_step="0.5")
    assert (box["angle"], box["cx"]) == (api["matches"][0]["angle"], api["matches"][0]["center"]["x"])

    # The server refuses a range the wrong way round: the message is by the angles.
    page.fill("#angles", "50")
    assert page.search() == "error"
    assert "Enter two angles" in page.error_of("angles") and "low <= high" in page.error_of("angles")
    assert page.get_attribute("#angles", "aria-invalid") == "true"
    page.fill("#angles", "20")  # typing clears it
    assert not page.is_visible("#angles-error")

    # An empty end is caught in the page, before sending anything.
    posts = page.posts()
    page.fill("#scales-to", "")
    page.click("#submit")
    assert "smallest and the largest scale" in page.error_of("scales") and page.posts() == posts
    page.fill("#scales-to", "1.2")

    # Over the cost limit: a 413 explained by the angles, saying how to lower it.
    with server.configured(MATCHER_MAX_TURN_WORK=1000):
        assert page.search() == "error"
    message = page.error_of("angles")
    assert "too much work" in message and "narrow the angle or scale range" in message and "MATCHER_MAX_TURN_WORK" in message
    assert page.search() == "done"  # the limit is back

    # Unticked: the plain search, as before, with the ranges kept for next time.
    page.uncheck("#turn")
    assert not page.is_visible("#angles")
    page.choose("template", "camera_camcorder.png")
    assert page.search() == "done"
    assert [(b["x"], b["y"]) for b in page.boxes()] == [(248, 132)] and not page.turned_boxes()
