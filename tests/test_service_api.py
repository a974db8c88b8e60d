"""The service's endpoints through Flask's test client: results equal matcher's, in-process.

Every response is checked against the OpenAPI document the service serves.
"""

import base64
import io

import cv2
import numpy as np
import pytest
from openapi_spec_validator import validate as validate_spec

import matcher
from matcher import load_image, match_template
from matcher.search.find import find, find_many
from matcher.render import draw_matches, encode_png, score_heatmap
from service_fixtures import b64, client, make_client, openapi, png, sample  # noqa: F401 (fixtures)


def expected(image, template, *, color="auto", mask="alpha", **options):
    """What find returns in-process for sample files, as the service's JSON list."""
    img, tpl = load_image(sample(image), color=color), load_image(sample(template), color=color)
    if isinstance(mask, str):
        mask = tpl.mask
    return [m.to_dict() for m in find(img.pixels, tpl.pixels, mask=mask, **options)]


def post_form(client, path, image, templates, **fields):
    data = {"image": (io.BytesIO(sample(image)), "image.png")}
    files = [(io.BytesIO(sample(t)), t) for t in templates]
    data["template"] = files if len(files) > 1 or path.endswith("batch") else files[0]
    return client.post(path, data=data | fields, content_type="multipart/form-data")


# ---- informational endpoints ------------------------------------------------------------------

def test_healthz_readyz_and_version_header(client, openapi):
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        body = openapi.check(response, path, "get")
        assert response.status_code == 200 and body["version"] == matcher.__version__
        assert response.headers["X-Matcher-Version"] == matcher.__version__
    assert client.get("/readyz").get_json()["status"] == "ready"


def test_methods_lists_every_method_with_direction(client, openapi):
    body = openapi.check(client.get("/v1/methods"), "/v1/methods", "get")
    by_name = {m["name"]: m for m in body["methods"]}
    assert tuple(by_name) == matcher.METHODS
    for name, m in by_name.items():
        assert m["better"] == ("lower" if name in matcher.LOWER_IS_BETTER else "higher")
    assert by_name["ncc"]["range"] == {"min": -1, "max": 1}
    assert by_name["ssd"]["range"] == {"min": 0, "max": None}


@pytest.mark.parametrize("keys", ["", "k1,k2"])
def test_openapi_document_is_valid_3_1(make_client, keys):
    doc = make_client(MATCHER_API_KEYS=keys).get("/openapi.json").get_json()
    validate_spec(doc)
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"] == matcher.__version__
    assert ("security" in doc) == bool(keys)
    match = doc["paths"]["/v1/match"]["post"]
    assert set(match["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"200", "400", "413", "415", "422", "503"} <= set(match["responses"])
    assert ("401" in match["responses"]) == bool(keys)


def test_openapi_document_follows_the_configuration(make_client):
    doc = make_client(MATCHER_MAX_MATCHES=7, MATCHER_MAX_TEMPLATES=3).get("/openapi.json").get_json()
    json_body = doc["paths"]["/v1/match/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert json_body["properties"]["max_matches"]["maximum"] == 7
    assert json_body["properties"]["templates"]["maxProperties"] == 3


# ---- /v1/match --------------------------------------------------------------------------------

def test_match_multipart_equals_find(client, openapi):
    response = post_form(client, "/v1/match", "camera.png", ["camera_camcorder.png"], max_matches="3")
    body = openapi.check(response, "/v1/match", "post")
    assert body["matches"] == expected("camera.png", "camera_camcorder.png", max_matches=3)
    assert (body["matches"][0]["x"], body["matches"][0]["y"]) == (248, 132)  # samples/truth.json
    assert body["image"] == {"width": 512, "height": 512, "channels": 1, "format": "png"}
    assert body["template"] == {"width": 84, "height": 60, "channels": 1, "format": "png", "masked": False}
    assert body["method"] == "ncc" and body["lower_is_better"] is False
    assert body["version"] == matcher.__version__ and body["elapsed_ms"] > 0
    assert response.headers["X-Matcher-Version"] == matcher.__version__


def test_match_json_equals_find_with_options(client, openapi):
    request = {"image": b64(sample("chelsea.png")), "template": b64(sample("chelsea_eye.png")),
               "method": "ssd_normed", "threshold": 0.5, "max_matches": 4, "max_overlap": 0.1,
               "precision": "exact"}
    openapi.check_request("/v1/match", "post", request)
    body = openapi.check(client.post("/v1/match", json=request), "/v1/match", "post")
    assert body["matches"] == expected("chelsea.png", "chelsea_eye.png", method="ssd_normed", threshold=0.5,
                                       max_matches=4, max_overlap=0.1, precision="exact")
    assert body["lower_is_better"] is True and body["image"]["channels"] == 3


def test_template_alpha_becomes_the_mask(client, openapi):
    request = {"image": b64(sample("coffee.png")), "template": b64(sample("coffee_spoon.png")), "max_matches": 2}
    body = openapi.check(client.post("/v1/match", json=request), "/v1/match", "post")
    assert body["template"]["masked"] is True
    assert body["matches"] == expected("coffee.png", "coffee_spoon.png", max_matches=2)
    assert body["matches"] != expected("coffee.png", "coffee_spoon.png", mask=None, max_matches=2)
    assert (body["matches"][0]["x"], body["matches"][0]["y"]) == (322, 64)


def test_mask_part_overrides_alpha(client, openapi):
    tpl = load_image(sample("coffee_spoon.png"))
    mask = np.zeros(tpl.pixels.shape[:2], np.uint8)
    mask[40:200, 20:80] = 255
    request = {"image": b64(sample("coffee.png")), "template": b64(sample("coffee_spoon.png")),
               "mask": b64(png(mask))}
    body = openapi.check(client.post("/v1/match", json=request), "/v1/match", "post")
    assert body["matches"] == expected("coffee.png", "coffee_spoon.png", mask=mask)


def test_region_subpixel_and_gray(client, openapi):
    fields = {"region": "100,50,300,200", "subpixel": "true", "gray": "yes", "method": "ccorr_normed"}
    response = post_form(client, "/v1/match", "chelsea.png", ["chelsea_eye.png"], **fields)
    body = openapi.check(response, "/v1/match", "post")
    want = expected("chelsea.png", "chelsea_eye.png", color="gray", region=(100, 50, 300, 200), subpixel=True,
                    method="ccorr_normed")
    assert body["matches"] == want and isinstance(body["matches"][0]["x"], float)
    assert body["image"]["channels"] == 1 and body["template"]["channels"] == 1


def test_region_as_json_list(client, openapi):
    request = {"image": b64(sample("camera.png")), "template": b64(sample("camera_camcorder.png")),
               "region": [200, 100, 200, 150], "threshold": 0.9}
    openapi.check_request("/v1/match", "post", request)
    body = openapi.check(client.post("/v1/match", json=request), "/v1/match", "post")
    assert body["matches"] == expected("camera.png", "camera_camcorder.png", region=(200, 100, 200, 150),
                                       threshold=0.9)


def test_threshold_can_find_nothing(client, openapi):
    request = {"image": b64(sample("camera.png")), "template": b64(sample("coins_coin.png")), "threshold": 0.99}
    body = openapi.check(client.post("/v1/match", json=request), "/v1/match", "post")
    assert body["matches"] == []


def test_return_heatmap_and_annotated_pngs(client, openapi):
    response = post_form(client, "/v1/match", "camera.png", ["camera_camcorder.png"], max_matches="2",
                         **{"return": ["heatmap", "annotated"]})
    body = openapi.check(response, "/v1/match", "post")
    img, tpl = load_image(sample("camera.png")), load_image(sample("camera_camcorder.png"))
    found = find(img.pixels, tpl.pixels, max_matches=2)
    scores = match_template(img.pixels, tpl.pixels, "ncc")
    assert base64.b64decode(body["heatmap"]) == encode_png(score_heatmap(scores, img.pixels.shape, tpl.pixels.shape,
                                                                         method="ncc"))
    assert base64.b64decode(body["annotated"]) == encode_png(draw_matches(img.pixels, found))
    assert load_image(base64.b64decode(body["annotated"])).pixels.shape == (512, 512, 3)


def test_heatmap_covers_the_region(client, openapi):
    request = {"image": b64(sample("camera.png")), "template": b64(sample("camera_camcorder.png")),
               "region": "200,100,200,150", "return": ["heatmap"]}
    body = openapi.check(client.post("/v1/match", json=request), "/v1/match", "post")
    heat = load_image(base64.b64decode(body["heatmap"]))
    assert (heat.width, heat.height) == (200, 150) and "annotated" not in body


# ---- /v1/match/batch --------------------------------------------------------------------------

def test_batch_multipart_labels_from_filenames(client, openapi):
    response = post_form(client, "/v1/match/batch", "coins.png", ["coins_coin.png", "camera_camcorder.png"],
                         threshold="0.5", max_matches="30")
    body = openapi.check(response, "/v1/match/batch", "post")
    img = load_image(sample("coins.png"))
    templates = {name: load_image(sample(f"{name}.png")).pixels for name in ("coins_coin", "camera_camcorder")}
    want = find_many(img.pixels, templates, threshold=0.5, max_matches=30)
    assert body["matches"] == [m.to_dict() for m in want]
    assert [t["label"] for t in body["templates"]] == ["coins_coin", "camera_camcorder"]
    assert sum(m["label"] == "coins_coin" for m in body["matches"]) == 24  # samples/README.md


def test_batch_labels_field_and_annotated(client, openapi):
    response = post_form(client, "/v1/match/batch", "camera.png", ["camera_camcorder.png", "coins_coin.png"],
                         labels="camcorder, coin", **{"return": "annotated"})
    body = openapi.check(response, "/v1/match/batch", "post")
    assert [t["label"] for t in body["templates"]] == ["camcorder", "coin"]
    assert body["matches"][0]["label"] == "camcorder"
    assert load_image(base64.b64decode(body["annotated"])).width == 512


def test_batch_json_with_a_masked_template(client, openapi):
    request = {"image": b64(sample("coffee.png")),
               "templates": {"spoon": b64(sample("coffee_spoon.png")), "eye": b64(sample("chelsea_eye.png"))},
               "max_matches": 3}
    openapi.check_request("/v1/match/batch", "post", request)
    body = openapi.check(client.post("/v1/match/batch", json=request), "/v1/match/batch", "post")
    img, spoon = load_image(sample("coffee.png")), load_image(sample("coffee_spoon.png"))
    want = find_many(img.pixels, {"spoon": spoon.pixels, "eye": load_image(sample("chelsea_eye.png")).pixels},
                     masks={"spoon": spoon.mask}, max_matches=3)
    assert body["matches"] == [m.to_dict() for m in want]
    assert [(t["label"], t["masked"]) for t in body["templates"]] == [("spoon", True), ("eye", False)]


# ---- authentication ---------------------------------------------------------------------------

def test_api_keys_bearer_or_header(make_client, openapi):
    client = make_client(MATCHER_API_KEYS="first-key, second-key")
    request = {"image": b64(sample("camera.png")), "template": b64(sample("camera_camcorder.png"))}
    for headers in ({"Authorization": "Bearer second-key"}, {"X-API-Key": "first-key"},
                    {"Authorization": "bearer first-key"}):
        assert client.post("/v1/match", json=request, headers=headers).status_code == 200
        assert client.get("/v1/methods", headers=headers).status_code == 200
    for path in ("/healthz", "/readyz", "/openapi.json"):  # never behind a key
        assert client.get(path).status_code == 200


def test_api_keys_from_a_file(make_client, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("from-file\nother\n")
    client = make_client(MATCHER_API_KEYS_FILE=str(keys))
    assert client.get("/v1/methods", headers={"X-API-Key": "other"}).status_code == 200
    assert client.get("/v1/methods").status_code == 401


# ---- TIFF's float and signed samples (where MATCHER_FORMATS allows TIFF) ---------------------

def tiff(array):
    """TIFF bytes of a gray or RGB array of any sample type OpenCV writes."""
    a = np.asarray(array)
    return cv2.imencode(".tiff", np.ascontiguousarray(a[:, :, ::-1] if a.ndim == 3 else a))[1].tobytes()


def test_float_tiffs_are_searched_as_stored(make_client, openapi):
    client = make_client(MATCHER_FORMATS="png,tiff")
    rng = np.random.default_rng(3)
    scene = (cv2.GaussianBlur(rng.normal(0, 1e3, (90, 120)), (0, 0), 3.0) - 250.5).astype(np.float32)
    tpl = np.ascontiguousarray(scene[30:55, 61:92])
    weights = np.ones(tpl.shape + (3,))  # an RGB float64 mask file: its luma are the weights
    weights[:6] = 0.0
    request = {"image": b64(tiff(scene)), "template": b64(tiff(tpl)), "mask": b64(tiff(weights))}
    body = openapi.check(client.post("/v1/match", json=request), "/v1/match", "post")
    best = body["matches"][0]
    assert (best["x"], best["y"]) == (61, 30) and best["score"] == pytest.approx(1.0, abs=1e-9)
    assert body["image"]["format"] == "tiff" and body["template"]["masked"] is True
    assert body["matches"] == [m.to_dict() for m in find(scene, tpl, mask=weights[:, :, 0])]


def test_a_tiff_holding_nan_is_a_problem_not_a_500(make_client):
    client = make_client(MATCHER_FORMATS="png,tiff")
    scene = np.random.default_rng(4).random((40, 50)).astype(np.float32)
    tpl = scene[5:20, 10:30].copy()
    scene[0, 0] = np.nan
    response = client.post("/v1/match", json={"image": b64(tiff(scene)), "template": b64(tiff(tpl))})
    assert 400 <= response.status_code < 500 and response.mimetype == "application/problem+json"
    assert "NaN or infinite" in response.get_json()["detail"]
