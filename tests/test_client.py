"""matcher.client.Client against the production server (gunicorn) on 127.0.0.1: the same
answers as the local matcher.find, and the server's problems as the library's exceptions."""

import http.server
import json
import threading

import numpy as np
import pytest

import matcher
from matcher import Match, MatcherError, find, load_image
from matcher.client import Client, ServiceError
from matcher.errors import ImageDecodeError, TemplateTooLargeError, UnsupportedFormatError
from service_fixtures import SAMPLES, free_port, start_server, stop_server

pytestmark = pytest.mark.timeout(120)

TRUTH = {e["image"]: e for e in json.loads((SAMPLES / "truth.json").read_text()) if "angle" not in e}  # plain samples


@pytest.fixture(scope="module")
def server():
    proc, url = start_server(MATCHER_WORKERS="2")
    yield url
    assert stop_server(proc) == 0
    log = proc.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def remote(server):
    return Client(server)


def same(local, remote):
    """Positions and sizes equal, scores within 1e-9, in the same order."""
    assert len(remote) == len(local) and len(local) > 0
    for a, b in zip(local, remote):
        assert isinstance(b, Match)
        assert (b.x, b.y, b.width, b.height, b.label, b.method) == (a.x, a.y, a.width, a.height, a.label, a.method)
        assert abs(b.score - a.score) <= 1e-9


def loaded(name):
    return load_image(SAMPLES / name)


@pytest.mark.parametrize("image", sorted(TRUTH))
def test_samples_give_the_local_answer(remote, image):
    truth = TRUTH[image]
    img, tpl = loaded(image), loaded(truth["template"])
    options = dict(threshold=0.5, max_matches=30) if len(truth.get("matches", [])) > 1 else {}
    local = find(img.pixels, tpl.pixels, "ncc", mask=tpl.mask if truth["mask"] == "alpha" else None, **options)
    # numpy arrays (the template's alpha sent as the mask) ...
    same(local, remote.find(img.pixels, tpl.pixels, "ncc", mask=tpl.mask if truth["mask"] == "alpha" else None,
                            **options))
    # ... and the files themselves (the server takes a template's alpha as its mask)
    same(local, remote.find(SAMPLES / image, str(SAMPLES / truth["template"]), **options))
    assert (local[0].x, local[0].y) == (truth["x"], truth["y"])


def test_options_give_the_local_answer(remote):
    img, tpl = loaded("coffee.png").pixels, loaded("coffee_spoon.png").pixels
    for method, options in [("ssd_normed", dict(max_matches=3, subpixel=True)),
                            ("ccorr_normed", dict(max_matches=5, max_overlap=0.0, precision="exact")),
                            ("ssd", dict(threshold=1e9, max_matches=2)),
                            (5, dict(region=(100, 20, 400, 350), max_matches=2))]:  # cv2.TM_CCOEFF_NORMED
        same(find(img, tpl, method, **options), remote.find(img, tpl, method, **options))
    coins, coin = loaded("coins.png").pixels, loaded("coins_coin.png").pixels
    local = find(coins, coin, "ncc", threshold=0.5, max_matches=None)
    same(local, remote.find(coins, coin, threshold=0.5, max_matches=None))
    assert len(local) == 24
    flipped = np.ascontiguousarray(coin[::-1])
    assert remote.find(coins, flipped, threshold=0.99) == find(coins, flipped, threshold=0.99) == []  # not found


def test_turned_search_gives_the_local_answer(remote):
    turned = next(e for e in json.loads((SAMPLES / "truth.json").read_text()) if "angle" in e)
    img, tpl = loaded(turned["image"]).pixels, loaded(turned["template"]).pixels
    options = dict(angles=(0, 60), scales=(1.1, 1.2), angle_step=0.5)
    local, far = find(img, tpl, **options), remote.find(img, tpl, **options)
    same(local, far)
    assert (far[0].angle, far[0].scale, far[0].corners) == (local[0].angle, local[0].scale, local[0].corners)
    assert abs(far[0].angle - turned["angle"]) < 0.1 and abs(far[0].scale - turned["scale"]) < 0.005
    with pytest.raises(MatcherError, match="MATCHER_MAX_TURN_WORK") as info:
        remote.find(img, tpl, angles=(-180, 180), angle_step=1e-4)
    assert info.value.param == "angles"


def test_sixteen_bit_and_other_integer_arrays_are_sent_exactly(remote):
    rng = np.random.default_rng(7)
    image = (rng.normal(30000, 9000, (120, 160)).clip(0, 65535)).astype(np.uint16)
    image[40:70, 60:100] = rng.integers(0, 400, (30, 40))  # a faint patch: only 16 bits tell it apart
    template = image[40:70, 60:100].copy()
    local = find(image, template, "ssd", max_matches=2)
    same(local, remote.find(image, template, "ssd", max_matches=2))
    assert (local[0].x, local[0].y, local[0].score) == (60, 40, 0.0)
    # int32 / bool / float arrays holding 8- or 16-bit values go as PNG too; colour stays RGB
    rgb = rng.integers(0, 256, (60, 80, 3)).astype(np.int32)
    same(find(rgb, rgb[10:30, 20:45]), remote.find(rgb, rgb[10:30, 20:45].astype(np.float64)))
    mask = np.zeros((20, 25), bool)
    mask[5:15, 5:20] = True
    same(find(rgb, rgb[10:30, 20:45], mask=mask, max_matches=2),
         remote.find(rgb, rgb[10:30, 20:45], mask=mask, max_matches=2))
    with pytest.raises(MatcherError, match="8- or 16-bit") as info:
        remote.find(np.full((20, 20), 0.5), np.ones((4, 4)))
    assert info.value.param == "image"


def test_input_problems_are_matcher_errors_with_the_servers_detail(remote):
    coins, coin = loaded("coins.png").pixels, loaded("coins_coin.png").pixels
    with pytest.raises(MatcherError) as info:
        remote.find(coins, coin, threshold=2)
    assert info.value.param == "threshold" and "must be a number in [-1, 1], got 2.0" in str(info.value)
    with pytest.raises(MatcherError) as info:
        remote.find(coins, coin, "nearest")
    assert info.value.param == "method" and "nearest" in str(info.value)
    with pytest.raises(TemplateTooLargeError) as info:
        remote.find(coin, coins)
    assert info.value.param == "template" and "62x62" in str(info.value)
    with pytest.raises(UnsupportedFormatError) as info:
        remote.find(b"this is not a picture", coin)
    assert info.value.param == "image" and "allowed formats" in str(info.value)
    with pytest.raises(ImageDecodeError) as info:
        remote.find((SAMPLES / "coins.png").read_bytes()[:200], coin)
    assert info.value.param == "image"
    with pytest.raises(MatcherError) as info:
        remote.find(coins, loaded("chelsea_eye.png").pixels)
    assert info.value.param == "template" and "gray=true" in str(info.value)
    with pytest.raises(MatcherError) as info:
        remote.find(coins, coin, region=(300, 250, 100, 100))
    assert info.value.param == "region"
    # The same mistakes raise the same class locally, so one except clause serves both.
    with pytest.raises(MatcherError):
        find(coins, coin, threshold=2)


def test_api_keys():
    proc, url = start_server(MATCHER_API_KEYS="s3cret,other")
    try:
        img, tpl = loaded("camera.png").pixels, loaded("camera_camcorder.png").pixels
        with pytest.raises(MatcherError, match="API key") as info:
            Client(url).find(img, tpl)
        assert not isinstance(info.value, ServiceError)
        with pytest.raises(MatcherError):
            Client(url, api_key="wrong").find(img, tpl)
        same(find(img, tpl), Client(url, api_key="s3cret").find(img, tpl))
    finally:
        assert stop_server(proc) == 0


def test_no_server_is_a_service_error():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ServiceError) as info:
        Client(url, timeout=5).find(np.zeros((8, 8), np.uint8), np.zeros((2, 2), np.uint8))
    assert info.value.status is None and url in str(info.value)
    assert not isinstance(info.value, MatcherError)
    with pytest.raises(MatcherError):
        Client("127.0.0.1:8000")


class _Fake(http.server.BaseHTTPRequestHandler):
    answers = {}

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        status, content_type, body, headers = self.answers[self.server.server_port]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, content_type, body, headers, detail", [
    (500, "application/problem+json", b'{"type": "urn:matcher:problem:internal-error", "title": "Internal error", '
     b'"status": 500, "detail": "the server failed; incident urn:uuid:1"}', {}, "incident urn:uuid:1"),
    (503, "application/problem+json", b'{"type": "urn:matcher:problem:busy", "status": 503, "detail": "busy"}',
     {"Retry-After": "2"}, "busy"),
    (502, "text/html", b"<html>Bad Gateway</html>", {}, "Bad Gateway"),
    (429, "application/problem+json", b'{"status": 429, "title": "Too Many Requests", "detail": "slow down"}',
     {"Retry-After": "5"}, "slow down"),
    (200, "text/html", b"<html>a captive portal</html>", {}, None),
])
def test_server_failures_are_service_errors(status, content_type, body, headers, detail):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    _Fake.answers[httpd.server_port] = (status, content_type, body, headers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ServiceError) as info:
            Client(f"http://127.0.0.1:{httpd.server_port}").find(np.zeros((8, 8), np.uint8), np.zeros((2, 2), np.uint8))
    finally:
        httpd.shutdown()
        thread.join(5)
    assert info.value.status == status
    if detail:
        assert info.value.detail.startswith(detail) or detail in info.value.detail
    assert info.value.retry_after == (int(headers["Retry-After"]) if "Retry-After" in headers else None)


def test_the_readme_switch_is_one_line(server):
    """README: the remote find is a drop-in for the local one."""
    img, tpl = loaded("camera.png").pixels, loaded("camera_camcorder.png").pixels
    remote_find = matcher.client.Client(server).find
    same(matcher.find(img, tpl, "ncc", max_matches=2), remote_find(img, tpl, "ncc", max_matches=2))


@pytest.mark.parametrize("array", [
    np.arange(60, dtype=np.uint8).reshape(4, 5, 3),                  # RGB stays RGB (find can't tell a swap)
    (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5),           # 16 bits stay 16 bits
    np.arange(20, dtype=np.int64).reshape(4, 5, 1),
])
def test_arrays_are_uploaded_as_the_server_will_decode_them(array):
    from matcher.client import _encode
    decoded = load_image(_encode(array, "image")).pixels  # what the service's decoder gives
    expected = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
    assert decoded.dtype == (np.uint16 if array.dtype == np.uint16 else np.uint8)
    assert np.array_equal(decoded, expected)
