"""The ``matcher`` command line: ``matcher match`` in-process (``main(argv)``) and as a subprocess.

Real data: the samples (camera + camcorder, coins + coin, chelsea + eye,
coffee + spoon) and their ground truth in ``samples/truth.json``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import matcher
from matcher import find, load_image
from matcher.cli import main
from matcher.io import load_image
from matcher.render import COLORMAP, layout_labels

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
TRUTH = {t["template"]: t for t in json.loads((SAMPLES / "truth.json").read_text())}

CAMERA, CAMCORDER = str(SAMPLES / "camera.png"), str(SAMPLES / "camera_camcorder.png")
COINS, COIN = str(SAMPLES / "coins.png"), str(SAMPLES / "coins_coin.png")
CHELSEA, EYE = str(SAMPLES / "chelsea.png"), str(SAMPLES / "chelsea_eye.png")
COFFEE, SPOON = str(SAMPLES / "coffee.png"), str(SAMPLES / "coffee_spoon.png")


def run(capsys, *argv):
    """main(argv) -> (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- a tiny JSON Schema checker

def check_schema(value, schema, where="$"):
    """Validate ``value`` against the subset of JSON Schema used below; return a list of problems."""
    problems = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        py = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
              "integer": int, "number": (int, float)}
        ok = any(isinstance(value, py[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                 for t in types)
        if not ok:
            return [f"{where}: expected {types}, got {type(value).__name__} {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        problems.append(f"{where}: {value!r} < minimum {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing required key {key!r}")
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key in value:
                problems += check_schema(value[key], sub, f"{where}.{key}")
        if schema.get("additionalProperties") is False:
            problems += [f"{where}: unexpected key {k!r}" for k in value if k not in props]
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += check_schema(item, schema["items"], f"{where}[{i}]")
    if "minItems" in schema and isinstance(value, list) and len(value) < schema["minItems"]:
        problems.append(f"{where}: fewer than {schema['minItems']} items")
    return problems


MATCH_SCHEMA = {
    "type": "object",
    "required": ["x", "y", "width", "height", "score"],
    "properties": {
        "x": {"type": "number", "minimum": 0}, "y": {"type": "number", "minimum": 0},
        "width": {"type": "integer", "minimum": 1}, "height": {"type": "integer", "minimum": 1},
        "score": {"type": "number"}, "label": {"type": ["string", "null"]},
        "center": {"type": "object", "required": ["x", "y"],
                   "properties": {"x": {"type": "number"}, "y": {"type": "number"}}},
        "method": {"type": "string", "enum": list(matcher.METHODS)},
    },
}
FILE_SCHEMA = {
    "type": "object",
    "required": ["path", "width", "height", "channels", "format", "dtype"],
    "properties": {
        "path": {"type": "string"}, "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1}, "channels": {"type": "integer", "enum": [1, 3]},
        "format": {"type": "string"}, "dtype": {"type": "string", "enum": ["uint8", "uint16"]},
    },
}
DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["version", "method", "image", "template", "options", "matches", "elapsed_ms"],
    "additionalProperties": False,
    "properties": {
        "version": {"type": "string"},
        "method": {"type": "string", "enum": list(matcher.METHODS)},
        "image": FILE_SCHEMA,
        "template": {**FILE_SCHEMA, "required": FILE_SCHEMA["required"] + ["mask", "mask_path"],
                     "properties": {**FILE_SCHEMA["properties"],
                                    "mask": {"type": ["string", "null"], "enum": [None, "alpha", "file"]},
                                    "mask_path": {"type": ["string", "null"]}}},
        "options": {
            "type": "object",
            "required": ["threshold", "max_matches", "max_overlap", "region", "subpixel", "precision", "gray"],
            "properties": {
                "threshold": {"type": ["number", "null"]}, "max_matches": {"type": ["integer", "null"]},
                "max_overlap": {"type": "number"}, "region": {"type": ["array", "null"], "items": {"type": "integer"}},
                "subpixel": {"type": "boolean"}, "precision": {"type": "string", "enum": list(matcher.PRECISIONS)},
                "gray": {"type": "boolean"},
            },
        },
        "matches": {"type": "array", "items": MATCH_SCHEMA},
        "elapsed_ms": {"type": "number", "minimum": 0},
    },
}


def test_schema_checker_rejects_bad_documents():
    good = {"x": 1, "y": 2, "width": 3, "height": 4, "score": 0.5}
    assert check_schema(good, MATCH_SCHEMA) == []
    assert check_schema({**good, "x": "1"}, MATCH_SCHEMA)
    assert check_schema({**good, "width": True}, MATCH_SCHEMA)
    assert check_schema({k: v for k, v in good.items() if k != "score"}, MATCH_SCHEMA)
    assert check_schema({"matches": [], "extra": 1}, DOCUMENT_SCHEMA)


# ---------------------------------------------------------------- found: exit 0

def test_match_prints_a_table_with_the_true_position(capsys):
    code, out, err = run(capsys, "match", CAMERA, CAMCORDER)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert "camera.png" in lines[0] and "1 match " in lines[0]
    assert lines[1].split() == ["rank", "x", "y", "width", "height", "score"]
    assert lines[2].split() == ["1", "248", "132", "84", "60", "1.0000"]


@pytest.mark.parametrize("template", ["camera_camcorder.png", "chelsea_eye.png", "coffee_spoon.png", "coins_coin.png"])
def test_match_json_finds_every_sample_at_its_true_position(capsys, template):
    truth = TRUTH[template]
    code, out, err = run(capsys, "match", SAMPLES / truth["image"], SAMPLES / template, "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert check_schema(doc, DOCUMENT_SCHEMA) == []
    assert doc["version"] == matcher.__version__ and doc["method"] == "ncc"
    (m,) = doc["matches"]
    assert (m["x"], m["y"], m["width"], m["height"]) == (truth["x"], truth["y"], truth["width"], truth["height"])
    assert m["score"] == pytest.approx(1.0, abs=1e-6)
    image = load_image(SAMPLES / truth["image"])
    assert (doc["image"]["width"], doc["image"]["height"]) == (image.width, image.height)
    assert doc["image"]["path"] == str(SAMPLES / truth["image"])
    assert doc["template"]["path"] == str(SAMPLES / template)
    assert (doc["template"]["width"], doc["template"]["height"]) == (truth["width"], truth["height"])
    assert doc["template"]["mask"] == ("alpha" if truth["mask"] == "alpha" else None)
    assert out.count("\n") == 1  # one document, one line


def test_match_json_reports_the_options(capsys):
    code, out, _ = run(capsys, "match", COINS, COIN, "--json", "--method", "ccorr_normed", "--threshold", "0.9",
                       "--max-matches", "3", "--max-overlap", "0.1", "--region", "200,200,184,103",
                       "--precision", "exact")
    assert code == 0
    doc = json.loads(out)
    assert check_schema(doc, DOCUMENT_SCHEMA) == []
    assert doc["method"] == "ccorr_normed"
    assert doc["options"] == {"threshold": 0.9, "max_matches": 3, "max_overlap": 0.1, "region": [200, 200, 184, 103],
                              "subpixel": False, "precision": "exact", "timeout": None, "gray": False}
    assert 1 <= len(doc["matches"]) <= 3
    for m in doc["matches"]:  # inside the region, above the threshold, best first
        assert 200 <= m["x"] and m["x"] + m["width"] <= 384 and 200 <= m["y"] and m["y"] + m["height"] <= 303
        assert m["score"] >= 0.9
    assert [m["score"] for m in doc["matches"]] == sorted((m["score"] for m in doc["matches"]), reverse=True)


def test_match_all_coins_as_jsonl(capsys):
    code, out, err = run(capsys, "match", COINS, COIN, "--all", "--threshold", "0.35", "--jsonl")
    assert code == 0 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    for rank, row in enumerate(rows, start=1):
        assert check_schema(row, MATCH_SCHEMA) == []
        assert row["rank"] == rank and row["image"] == COINS and row["template"] == COIN
    # the 24 coins of the ground truth, and nothing else (the next peak scores 0.11)
    truth = TRUTH["coins_coin.png"]["matches"]
    assert sorted((r["x"], r["y"]) for r in rows) == sorted((c["x"], c["y"]) for c in truth)
    scores = {(c["x"], c["y"]): c["score"] for c in truth}
    for r in rows:
        assert r["score"] == pytest.approx(scores[r["x"], r["y"]], abs=1e-3)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_max_matches_limits_and_all_does_not(capsys):
    _, out3, _ = run(capsys, "match", COINS, COIN, "--max-matches", "3", "--threshold", "0.5", "--jsonl")
    _, out_all, _ = run(capsys, "match", COINS, COIN, "--all", "--threshold", "0.5", "--jsonl")
    assert len(out3.splitlines()) == 3
    assert len(out_all.splitlines()) > 3
    assert out_all.splitlines()[:3] == out3.splitlines()[:3]


def test_ssd_threshold_is_an_upper_bound(capsys):
    code, out, _ = run(capsys, "match", CAMERA, CAMCORDER, "--method", "ssd", "--threshold", "0.5", "--json")
    assert code == 0
    (m,) = json.loads(out)["matches"]
    assert (m["x"], m["y"]) == (248, 132) and m["score"] <= 0.5
    # away from the camcorder no window is an exact copy: nothing scores <= 0
    code, out, _ = run(capsys, "match", CAMERA, CAMCORDER, "--method", "ssd", "--threshold", "0",
                       "--region", "0,300,250,212")
    assert code == 1 and "no match (none scores <= 0)" in out


def test_gray_and_color(capsys):
    code, out, _ = run(capsys, "match", CHELSEA, EYE, "--gray", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["image"]["channels"] == 1 and doc["template"]["channels"] == 1 and doc["options"]["gray"] is True
    assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (132, 82)
    # a colour template in a gray image: the image is read as colour (three equal channels)
    assert load_image(CAMERA).channels == 1
    code, out, _ = run(capsys, "match", CAMERA, EYE, "--json")
    assert code == 0 and json.loads(out)["image"]["channels"] == 3


def test_mask_file_overrides_the_alpha_channel(capsys, tmp_path):
    spoon = load_image(SPOON)
    mask_path = tmp_path / "mask.png"
    cv2.imwrite(str(mask_path), spoon.mask)
    code, out, _ = run(capsys, "match", COFFEE, SPOON, "--mask", mask_path, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["template"]["mask"] == "file" and doc["template"]["mask_path"] == str(mask_path)
    assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (322, 64)
    # the mask changes the score away from the match: with the alpha mask and with the file
    # mask the runner-up scores are equal, without any mask they differ
    ones = tmp_path / "ones.png"
    cv2.imwrite(str(ones), np.full(spoon.mask.shape, 255, np.uint8))
    scores = {}
    for name, extra in (("alpha", []), ("file", ["--mask", mask_path]), ("none", ["--mask", ones])):
        _, out, _ = run(capsys, "match", COFFEE, SPOON, "--max-matches", "2", "--json", *extra)
        scores[name] = json.loads(out)["matches"][1]["score"]
    assert scores["alpha"] == pytest.approx(scores["file"], abs=1e-9)
    assert abs(scores["alpha"] - scores["none"]) > 1e-3


def test_subpixel_positions_are_near_the_integer_peak(capsys):
    code, out, _ = run(capsys, "match", CAMERA, CAMCORDER, "--subpixel", "--json")
    assert code == 0
    doc = json.loads(out)
    m = doc["matches"][0]
    assert doc["options"]["subpixel"] is True
    assert abs(m["x"] - 248) < 0.5 and abs(m["y"] - 132) < 0.5
    code, out, _ = run(capsys, "match", CAMERA, CAMCORDER, "--subpixel")
    rank, x, y = out.splitlines()[2].split()[:3]
    assert code == 0 and rank == "1" and abs(float(x) - 248) < 0.5 and abs(float(y) - 132) < 0.5


def test_region_restricts_the_search(capsys):
    # the camcorder is outside this region: the best match inside it is elsewhere and scores lower
    code, out, _ = run(capsys, "match", CAMERA, CAMCORDER, "--region", "0,300,250,212", "--json")
    assert code == 0
    (m,) = json.loads(out)["matches"]
    assert m["x"] + m["width"] <= 250 and m["y"] >= 300 and m["score"] < 0.9


# ---------------------------------------------------------------- not found: exit 1

def test_nothing_above_the_threshold_exits_1(capsys):
    away = ("--region", "0,300,250,212")  # the camcorder is not in there
    code, out, err = run(capsys, "match", CAMERA, CAMCORDER, "--threshold", "0.99", *away)
    assert code == 1 and err == ""
    assert "no match (none scores >= 0.99)" in out and "rank" not in out
    code, out, _ = run(capsys, "match", CAMERA, CAMCORDER, "--threshold", "0.99", "--json", *away)
    assert code == 1
    doc = json.loads(out)
    assert doc["matches"] == [] and check_schema(doc, DOCUMENT_SCHEMA) == []
    code, out, _ = run(capsys, "match", CAMERA, CAMCORDER, "--threshold", "0.99", "--jsonl", *away)
    assert code == 1 and out == ""


# ---------------------------------------------------------------- usage and input errors: exit 2

@pytest.fixture
def bad_files(tmp_path):
    data = Path(COINS).read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("this is not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("argv, needles", [
    (["match", "{tmp}/missing.png", COIN], ["image", "missing.png", "no such file"]),
    (["match", COINS, "{tmp}/missing.png"], ["template", "missing.png", "no such file"]),
    (["match", "{tmp}/truncated.png", COIN], ["image", "truncated.png", "truncated PNG"]),
    (["match", COINS, "{tmp}/text.png"], ["template", "text.png", "unsupported image format"]),
    (["match", "{tmp}/empty.png", COIN], ["image", "empty.png", "empty"]),
    (["match", "{tmp}", COIN], ["image", "is a directory"]),
    (["match", COIN, COINS], ["template", "coins.png", "larger than image"]),
    (["match", COINS, COIN, "--region", "350,0,100,100"], ["--region 350,0,100,100"]),
    (["match", COINS, COIN, "--region", "0,0,30,30"], ["--region 0,0,30,30", "smaller than the template"]),
    (["match", COINS, COIN, "--threshold", "1.5"], ["--threshold 1.5", "[-1, 1]"]),
    (["match", COINS, COIN, "--method", "ssd", "--threshold", "-1"], ["--threshold -1", ">= 0"]),
    (["match", COINS, COIN, "--mask", CAMCORDER], ["--mask", "camera_camcorder.png", "84x60", "62x62"]),
    (["match", COINS, COIN, "--annotate", "{tmp}/no/such/dir/a.png"], ["--annotate", "a.png", "cannot write"]),
])
def test_input_errors_exit_2_with_one_line(capsys, bad_files, argv, needles):
    code, out, err = run(capsys, *[a.replace("{tmp}", str(bad_files)) for a in argv])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("matcher match: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize("argv, needle", [
    (["match", COINS, COIN, "--threshold", "abc"], "argument --threshold: not a number: 'abc'"),
    (["match", COINS, COIN, "--threshold", "nan"], "argument --threshold: must be a finite number"),
    (["match", COINS, COIN, "--method", "sad"], "argument --method: invalid choice: 'sad'"),
    (["match", COINS, COIN, "--max-matches", "0"], "argument --max-matches: must be at least 1"),
    (["match", COINS, COIN, "--max-matches", "two"], "argument --max-matches: not an integer"),
    (["match", COINS, COIN, "--max-matches", "2", "--all"], "argument --all: not allowed with argument --max-matches"),
    (["match", COINS, COIN, "--max-overlap", "1.5"], "argument --max-overlap: must be between 0 and 1"),
    (["match", COINS, COIN, "--region", "1,2,3"], "argument --region: expected four integers"),
    (["match", COINS, COIN, "--region=-1,2,3,4"], "argument --region: x and y must be >= 0"),
    (["match", COINS, COIN, "--region", "1,2,0,4"], "argument --region: width and height must be >= 1"),
    (["match", COINS, COIN, "--precision", "double"], "argument --precision: invalid choice"),
    (["match", COINS, COIN, "--json", "--jsonl"], "argument --jsonl: not allowed with argument --json"),
    (["match", COINS, COIN, "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["match", COINS], "the following arguments are required: TEMPLATE"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "a command is required"),
])
def test_usage_errors_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert needle in err, err
    assert "Traceback" not in err


def test_traceback_flag_shows_the_traceback(capsys, bad_files):
    code, _, err = run(capsys, "match", bad_files / "truncated.png", COIN, "--traceback")
    assert code == 2
    assert "Traceback (most recent call last)" in err and "ImageDecodeError" in err
    assert err.rstrip().splitlines()[-1].startswith("matcher match: error: image ")


def test_help_and_version_exit_0(capsys):
    code, out, err = run(capsys, "--help")
    assert code == 0 and "usage: matcher" in out and "match" in out and "batch" in out
    code, out, _ = run(capsys, "match", "--help")
    assert code == 0 and "--threshold" in out and "--annotate" in out and "--max-matches" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"matcher {matcher.__version__}"


# ---------------------------------------------------------------- pictures

def test_annotate_draws_every_match_on_a_copy_of_the_image(capsys, tmp_path):
    out_png = tmp_path / "annotated.png"
    code, out, _ = run(capsys, "match", COINS, COIN, "--max-matches", "5", "--json", "--annotate", out_png)
    assert code == 0
    matches = json.loads(out)["matches"]
    assert len(matches) == 5
    original = load_image(COINS).pixels
    picture = load_image(out_png)
    assert picture.channels == 3 and (picture.width, picture.height) == (384, 303)
    red = np.array([255, 0, 0])
    labels = np.zeros(original.shape, bool)  # where matcher.render puts the labels (crowded boxes: inside some)
    for lb in layout_labels(matches, original.shape):
        labels[lb.y:lb.y + lb.height, lb.x:lb.x + lb.width] = True
    for m in matches:
        x, y, w, h = m["x"], m["y"], m["width"], m["height"]
        border = np.concatenate([picture.pixels[y, x:x + w], picture.pixels[y + h - 1, x:x + w],
                                 picture.pixels[y:y + h, x], picture.pixels[y:y + h, x + w - 1]])
        assert (border == red).all()
        # the inside is the image, untouched (gray: three equal channels), but for labels
        inside = np.zeros(original.shape, bool)
        inside[y + 10:y + h - 10, x + 10:x + w - 10] = True
        inside &= ~labels
        assert inside.sum() > 1000 and (picture.pixels[inside] == original[inside][:, None]).all()
    # away from the boxes and their labels the picture is the image
    touched = labels.copy()
    for m in matches:
        touched[m["y"]:m["y"] + m["height"], m["x"]:m["x"] + m["width"]] = True
    assert (picture.pixels[~touched] == original[~touched][:, None]).all()
    assert touched.mean() < 0.5


def test_annotate_a_colour_image_keeps_its_colours(capsys, tmp_path):
    out_png = tmp_path / "eye.png"
    assert run(capsys, "match", CHELSEA, EYE, "--gray", "--annotate", out_png)[0] == 0
    picture, original = load_image(out_png).pixels, load_image(CHELSEA).pixels
    assert picture.shape == original.shape
    assert (picture[250:, :] == original[250:, :]).all()  # colour, not the gray used for matching
    assert (picture[82, 132:132 + 80] == [255, 0, 0]).all()


def test_heatmap_is_aligned_with_the_image(capsys, tmp_path):
    out_png = tmp_path / "heat.png"
    code, _, _ = run(capsys, "match", CAMERA, CAMCORDER, "--heatmap", out_png)
    assert code == 0
    heat = load_image(out_png)
    assert (heat.width, heat.height, heat.channels) == (512, 512, 3)
    lut = cv2.cvtColor(cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], COLORMAP), cv2.COLOR_BGR2RGB)[:, 0]
    hottest, coldest = lut[255], lut[0]
    hot = np.argwhere((heat.pixels == hottest).all(axis=2))
    # the best window (x=248, y=132, 84x60) is painted at its centre
    assert [132 + 29, 248 + 41] in hot.tolist()
    assert len(hot) < 20
    # the border where no window centre lies has the coldest colour: 29 rows on top, 41 columns left
    assert (heat.pixels[:29] == coldest).all() and (heat.pixels[:, :41] == coldest).all()
    assert (heat.pixels[512 - 30:] == coldest).all() and (heat.pixels[:, 512 - 42:] == coldest).all()
    assert not (heat.pixels[29:512 - 30, 41:512 - 42] == coldest).all(axis=2).all()


def test_heatmap_of_a_region_is_placed_where_the_region_is(capsys, tmp_path):
    out_png = tmp_path / "heat.png"
    assert run(capsys, "match", CAMERA, CAMCORDER, "--region", "200,100,200,150", "--heatmap", out_png,
               "--method", "ssd")[0] == 0
    heat = load_image(out_png).pixels
    lut = cv2.cvtColor(cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], COLORMAP), cv2.COLOR_BGR2RGB)[:, 0]
    hot = np.argwhere((heat == lut[255]).all(axis=2)).tolist()
    assert hot == [[132 + 29, 248 + 41]]  # ssd: lowest is best, still the hot colour
    assert (heat[:100 + 29] == lut[0]).all() and (heat[:, :200 + 41] == lut[0]).all()


# ---------------------------------------------------------------- a real process

def _subprocess(*argv):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "matcher", *map(str, argv)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_python_dash_m_matcher_as_a_subprocess(tmp_path):
    ok = _subprocess("match", CAMERA, CAMCORDER, "--json")
    assert ok.returncode == 0 and ok.stderr == ""
    doc = json.loads(ok.stdout)
    assert check_schema(doc, DOCUMENT_SCHEMA) == []
    assert (doc["matches"][0]["x"], doc["matches"][0]["y"]) == (248, 132)
    missing = _subprocess("match", tmp_path / "missing.png", CAMCORDER)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"matcher match: error: image {tmp_path / 'missing.png'}: no such file\n"
    not_found = _subprocess("match", CAMERA, CAMCORDER, "--threshold", "0.99", "--region", "0,300,250,212")
    assert not_found.returncode == 1
    usage = _subprocess("match", CAMERA)
    assert usage.returncode == 2 and "required: TEMPLATE" in usage.stderr and "Traceback" not in usage.stderr


# ---------------------------------------------------------------- what a new user trips over (issue 15)


@pytest.mark.parametrize("name, magic", [("a.png", b"\x89PNG"), ("a.jpg", b"\xff\xd8"), ("a.JPEG", b"\xff\xd8"),
                                         ("a.webp", b"RIFF"), ("a.bmp", b"BM"), ("a.tif", b"II*\x00")])
def test_pictures_are_written_in_the_format_their_extension_names(capsys, tmp_path, name, magic):
    code, _, err = run(capsys, "match", COINS, COIN, "--annotate", tmp_path / name, "--heatmap", tmp_path / ("h" + name))
    assert code == 0, err
    for path in (tmp_path / name, tmp_path / ("h" + name)):
        data = path.read_bytes()
        assert data.startswith(magic), (path, data[:8])
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape[:2] == (303, 384)


@pytest.mark.parametrize("flag", ["--annotate", "--heatmap"])
def test_unknown_picture_extensions_are_refused_before_any_work(capsys, tmp_path, flag):
    code, out, err = run(capsys, "match", COINS, COIN, flag, tmp_path / "out.txt")
    assert code == 2 and out == ""
    assert err.strip() == (f"matcher match: error: {flag} {tmp_path / 'out.txt'}: the extension '.txt' names no "
                           "image format this writes; use one of .png, .jpg, .jpeg, .webp, .bmp, .tif, .tiff")
    assert not (tmp_path / "out.txt").exists()


def test_all_needs_a_threshold(capsys):
    code, out, err = run(capsys, "match", COINS, COIN, "--all")
    assert code == 2 and out == ""
    assert err.strip().startswith("matcher match: error: --all lists every match past --threshold; give one too")


def test_argument_errors_are_one_line_without_the_usage_block(capsys):
    code, out, err = run(capsys, "match", COINS, COIN, "--max-overlap")
    assert code == 2 and out == ""
    assert err.splitlines() == ["matcher match: error: argument --max-overlap: expected one argument"]


def test_pyramid_flag_gives_the_pyramid_search(capsys):
    code, out, _ = run(capsys, "match", SAMPLES / "camera.png", SAMPLES / "camera_camcorder.png", "--pyramid", "--json")
    assert code == 0
    image = load_image(SAMPLES / "camera.png").pixels
    template = load_image(SAMPLES / "camera_camcorder.png").pixels
    want = find(image, template, pyramid=True)
    assert [(m["x"], m["y"], m["score"]) for m in json.loads(out)["matches"]] == [(m.x, m.y, m.score) for m in want]
    code, _, err = run(capsys, "match", COINS, COIN, "--pyramid", "--method", "ssd")
    assert code == 2 and "--method" in err and "normalised" in err


def test_turned_and_scaled_search_from_the_command_line(capsys, tmp_path):
    """--angles/--scales find a turned, scaled copy (pose in the JSON and the table); --annotate draws
    the turned box, not its bounding box."""
    from matcher.search.rotated import pose_matrix

    camera = load_image(SAMPLES / "camera.png").pixels.astype(np.float32)
    m = pose_matrix((300.0, 200.0), 35.0, 1.05, (60, 60))
    template = cv2.warpAffine(camera, m, (60, 60), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "t.png"), np.clip(np.round(template), 0, 255).astype(np.uint8))
    code, out, err = run(capsys, "match", SAMPLES / "camera.png", tmp_path / "t.png", "--angles", "-180,180",
                         "--scales", "0.9,1.1", "--json", "--annotate", tmp_path / "a.png")
    assert code == 0, err
    (found,) = json.loads(out)["matches"]
    assert abs(found["angle"] - 35.0) < 0.1 and abs(found["scale"] - 1.05) < 0.005
    assert abs(found["center"]["x"] - 300.0) < 0.1 and abs(found["center"]["y"] - 200.0) < 0.1
    drawn = cv2.imread(str(tmp_path / "a.png"))  # BGR: the boxes are red
    red = (drawn[:, :, 2] > 200) & (drawn[:, :, 1] < 60) & (drawn[:, :, 0] < 60)
    corners = np.array(found["corners"])
    mid = np.round((corners[0] + corners[1]) / 2).astype(int)  # the middle of the turned box's top edge
    assert red[mid[1] - 2 : mid[1] + 3, mid[0] - 2 : mid[0] + 3].any()
    x, y = int(found["x"]), int(found["y"])
    assert not red[y : y + 3, x : x + 3].any()  # the bounding box's corner is outside the turned box
    code, out, _ = run(capsys, "match", SAMPLES / "camera.png", tmp_path / "t.png", "--angles", "0,90",
                       "--scales", "0.9,1.1")
    assert code == 0 and "angle" in out.splitlines()[1] and "35.00" in out.splitlines()[2]
    code, _, err = run(capsys, "match", SAMPLES / "camera.png", tmp_path / "t.png", "--angles", "-180,400")
    assert code == 2 and "--angles" in err and "spanning at most 360" in err


def test_a_reader_that_goes_away_ends_it_quietly_with_141():
    """Output piped into a reader that has gone (``| head``): no traceback, no message, and the status a
    process ended by SIGPIPE gets from the shell (128 + 13), not 2, which means bad input."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "matcher", "match", str(CAMERA), str(CAMCORDER), "--threshold",
                             "0.3", "--all"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    proc.stdout.close()  # gone before anything is written
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (141, b"")


def test_float_and_signed_tiffs_are_searched_and_annotated(capsys, tmp_path):
    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.normal(0, 1e3, (90, 120)), (0, 0), 3.0) - 250.5
    for dtype in (np.float32, np.int16):
        image, template, out = tmp_path / "scene.tif", tmp_path / "part.tif", tmp_path / "seen.png"
        cv2.imwrite(str(image), scene.astype(dtype))
        cv2.imwrite(str(template), np.ascontiguousarray(scene[30:55, 61:92]).astype(dtype))
        code, stdout, err = run(capsys, "match", image, template, "--json", "--annotate", out)
        assert code == 0, err
        best = json.loads(stdout)["matches"][0]
        assert (best["x"], best["y"]) == (61, 30) and best["score"] == pytest.approx(1.0, abs=1e-9)
        drawn = load_image(out)
        assert drawn.pixels.dtype == np.uint8 and drawn.pixels.shape == (90, 120, 3)


def test_a_tiff_holding_nan_exits_2(capsys, tmp_path):
    scene = np.random.default_rng(6).random((40, 50)).astype(np.float32)
    cv2.imwrite(str(tmp_path / "part.tif"), scene[5:20, 10:30].copy())
    scene[3, 4] = np.nan
    cv2.imwrite(str(tmp_path / "scene.tif"), scene)
    code, stdout, err = run(capsys, "match", tmp_path / "scene.tif", tmp_path / "part.tif")
    assert code == 2 and stdout == ""
    assert "NaN or infinite" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
