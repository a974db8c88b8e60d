"""The one spec of find's options (matcher/options.py), and the CLI, service and OpenAPI document built from it."""

import argparse
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import matcher
from matcher import cli
from matcher.errors import MatcherError, ParameterTypeError
from matcher.methods import METHODS, TABLE
from matcher.option_kinds import POSITIVE_PATTERN
from matcher.options import (COUNT_PATTERN, FRACTION_PATTERN, NUMBER_PATTERN, OPTIONS, REGION_PATTERN, FindOptions,
                             OptionSyntaxError, format_option, parse_option, threshold_rules)
from service import create_app
from service.errors import InvalidOption
from service.options import FIND_OPTION_NAMES, GRAY, parse_options, turn_rules

CAP = 100  # the default MATCHER_MAX_MATCHES


# ---- Python values ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    ({"method": "sad"}, MatcherError, r"method must be one of \('ssd', .*got 'sad'"),
    ({"method": 9}, MatcherError, r"method must be one of .* got 9"),
    ({"method": 1.5}, ParameterTypeError, r"method must be a string or an int, got float"),
    ({"method": True}, ParameterTypeError, r"method must be one of .* got True"),
    ({"threshold": 1.5}, MatcherError,
     r"^threshold for method 'ncc' \(a lower bound on the score\) must be a number in \[-1, 1\], got 1.5$"),
    ({"threshold": -0.5, "method": "ssd"}, MatcherError, r"'ssd' \(an upper bound .* finite number >= 0, got -0.5$"),
    ({"threshold": 10**400, "method": "ccorr"}, MatcherError, r"'ccorr'.*must be a finite number, got inf$"),
    ({"threshold": float("nan"), "method": "ccoeff"}, MatcherError, r"must be a finite number, got nan$"),
    ({"threshold": "0.5"}, ParameterTypeError, r"^threshold must be a real number or None, got str$"),
    ({"threshold": np.bool_(True)}, ParameterTypeError, r"got bool"),
    ({"max_matches": 0}, MatcherError, r"^max_matches must be a positive integer or None, got 0$"),
    ({"max_matches": 2.0}, ParameterTypeError, r"^max_matches must be a positive integer or None, got 2.0 \(float\)$"),
    ({"max_matches": "3"}, ParameterTypeError, r"got '3' \(str\)$"),
    ({"max_overlap": 1.01}, MatcherError, r"^max_overlap must be a number in \[0, 1\] \(intersection over union\), "
                                          r"got 1.01$"),
    ({"max_overlap": None}, ParameterTypeError, r"^max_overlap must be a number in \[0, 1\], got NoneType$"),
    ({"region": (0, 0, 5)}, MatcherError, r"region must be a tuple \(x, y, width, height\) of 4 integers, got 3 values"),
    ({"region": (0, 0, 5.0, 5)}, ParameterTypeError, r"of 4 integers, got \(0, 0, 5.0, 5\)$"),
    ({"region": "0,0,5,5"}, ParameterTypeError, r"of 4 integers, got '0,0,5,5'$"),
    ({"region": (0, 0, 0, 0)}, MatcherError, r"^region width and height must be positive \(at least 1\), got \(0, 0, 0, 0\)$"),
    ({"region": (-5, 0, 100, 100)}, MatcherError, r"^region must lie inside the image: x and y must be >= 0, got "),
    ({"subpixel": "yes"}, ParameterTypeError, r"^subpixel must be True or False, got 'yes'$"),
    ({"pyramid": 1}, ParameterTypeError, r"^pyramid must be True or False, got 1$"),
    ({"precision": "slow"}, MatcherError, r"^precision must be one of \('fast', 'exact'\), got 'slow'$"),
])
def test_a_bad_value_names_its_parameter(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        FindOptions.check(**kwargs)
    name = next(k for k in kwargs if k != "method") if len(kwargs) > 1 else next(iter(kwargs))
    assert info.value.param == name
    assert isinstance(info.value, TypeError) != isinstance(info.value, MatcherError)


def test_check_normalises_and_find_uses_it():
    o = FindOptions.check(method="TM_SQDIFF_NORMED", threshold=np.float32(0.25), max_matches=np.int64(2),
                          max_overlap=1, region=[1, 2, 3, 4], subpixel=np.bool_(True))
    assert o == FindOptions("ssd_normed", 0.25, 2, 1.0, (1, 2, 3, 4), True, "fast", False)
    assert type(o.max_matches) is int and type(o.max_overlap) is float and type(o.subpixel) is bool
    assert FindOptions.check() == FindOptions()
    assert {f: OPTIONS[f].default for f in OPTIONS} == FindOptions().kwargs()
    with pytest.raises(TypeError):
        FindOptions.check("ncc")  # keyword-only
    with pytest.raises(MatcherError) as info:  # find reports what the spec reports
        matcher.find(np.zeros((9, 9)), np.ones((2, 2)), "ssd", threshold=-1)
    assert info.value.param == "threshold"


def test_engine_input_errors_name_their_parameter():
    image = np.zeros((8, 8))
    cases = [({"image": np.zeros((0, 3))}, "image"), ({"template": [[np.nan]]}, "template"),
             ({"mask": np.ones((3, 3))}, "mask"), ({"template": np.ones((9, 9))}, "template"),
             ({"precision": "x"}, "precision"), ({"mode": "x"}, "mode"), ({"algorithm": "x"}, "algorithm"),
             ({"image": np.zeros((4, 4), dtype=complex)}, "image")]
    for change, param in cases:
        args = {"image": image, "template": np.ones((2, 2))} | change
        with pytest.raises((MatcherError, ParameterTypeError)) as info:
            matcher.match_template(args.pop("image"), args.pop("template"), "ncc", **args)
        assert info.value.param == param, (change, info.value)


def test_threshold_range_comes_from_the_method_table():
    for m in TABLE:
        lo, hi = m.range
        for inside in (lo, hi, 0.0 if lo <= 0 <= hi else lo + 1):
            if math.isfinite(inside):
                assert FindOptions.check(method=m.name, threshold=inside).threshold == inside
        for outside in (lo - 0.5, hi + 0.5):
            if math.isfinite(outside):
                with pytest.raises(MatcherError, match="bound on the score"):
                    FindOptions.check(method=m.name, threshold=outside)


# ---- string form -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, value", [
    ("threshold", "0.5", 0.5), ("threshold", "-1", -1.0), ("threshold", "1e-3", 0.001), ("threshold", ".5", 0.5),
    ("max_matches", "3", 3), ("max_matches", "007", 7), ("max_overlap", "0", 0.0), ("max_overlap", "1.0", 1.0),
    ("max_overlap", ".25", 0.25), ("region", "0,0,1,1", (0, 0, 1, 1)), ("subpixel", "on", True),
    ("subpixel", "0", False), ("pyramid", "yes", True), ("method", "ssd_normed", "ssd_normed"),
    ("precision", "exact", "exact"),
])
def test_string_forms_parse(name, text, value):
    got = parse_option(name, text)
    assert got == value and type(got) is type(value)
    assert parse_option(name, format_option(name, got)) == got


@pytest.mark.parametrize("name, text, reason", [
    ("threshold", "1_0", "not a number: '1_0'"),  # float() would say 10
    ("threshold", " 1", "not a number: ' 1'"),
    ("threshold", "abc", "not a number: 'abc'"),
    ("threshold", "nan", "must be a finite number, got 'nan'"),
    ("threshold", "-Infinity", "must be a finite number, got '-Infinity'"),
    ("threshold", "1e999", "must be a finite number, got '1e999'"),
    ("max_matches", "1_0", "not an integer: '1_0'"),
    ("max_matches", "2.5", "not an integer: '2.5'"),
    ("max_matches", "0", "must be at least 1, got '0'"),
    ("max_matches", "+3", "not an integer: '+3'"),
    ("max_overlap", "1.5", "must be between 0 and 1, got '1.5'"),
    ("max_overlap", "-0", "must be between 0 and 1, written as a plain decimal such as 0.3, got '-0'"),
    ("max_overlap", "1e-1", "must be between 0 and 1, written as a plain decimal such as 0.3, got '1e-1'"),
    ("region", "-5,0,100,100", "x and y must be >= 0, got '-5,0,100,100'"),
    ("region", "0,0,0,0", "width and height must be >= 1, got '0,0,0,0'"),
    ("region", "1,2,3", "expected four integers x,y,w,h (x,y,width,height), got '1,2,3'"),
    ("region", "1, 2,3,4", "expected four integers x,y,w,h (x,y,width,height), got '1, 2,3,4'"),
    ("region", "1_0,2,3,4", "expected four integers x,y,w,h (x,y,width,height), got '1_0,2,3,4'"),
    ("subpixel", "TRUE", "must be true or false (or 1/0, yes/no, on/off), got 'TRUE'"),
    ("method", "NCC", "must be one of ssd, ssd_normed, ccorr, ccorr_normed, ccoeff, ncc, got 'NCC'"),
    ("precision", "", "must be one of fast, exact, got ''"),
])
def test_bad_string_forms_say_what_is_allowed(name, text, reason):
    with pytest.raises(OptionSyntaxError, match="^" + name + ": ") as info:
        parse_option(name, text)
    assert info.value.param == name and info.value.reason == reason
    assert isinstance(info.value, MatcherError)


def test_long_values_are_cut_short_in_messages():
    with pytest.raises(OptionSyntaxError) as info:
        parse_option("method", "x" * 100_000)
    assert len(str(info.value)) < 200


# ---- the OpenAPI document is generated from the spec, and agrees with the parser -----------------

@pytest.fixture(scope="module")
def document():
    return create_app({"TESTING": True}).test_client().get("/openapi.json").get_json()


def _request_schema(document, mime, path="/v1/match"):
    return document["paths"][path]["post"]["requestBody"]["content"][mime]["schema"]


@pytest.mark.parametrize("mime", ["multipart/form-data", "application/json"])
def test_option_schemas_are_generated_from_the_spec(document, mime):
    form = mime != "application/json"
    schema = _request_schema(document, mime)
    props = schema["properties"]
    for name in FIND_OPTION_NAMES:
        expected = OPTIONS[name].schema(form=form)
        if name == "max_matches":  # the service's cap
            expected["description"] = f"how many matches to return, best first (1 to {CAP})"
            if not form:
                expected |= {"type": "integer", "maximum": CAP}
        assert props[name] == expected, name
    assert props["gray"] == GRAY.schema(form=form)
    assert schema.get("allOf", []) == ([] if form else threshold_rules()) + turn_rules(form=form)
    if form:
        assert props["subpixel"]["enum"][:8] == ["true", "1", "yes", "on", "false", "0", "no", "off"]
    else:
        assert props["method"] == {"type": "string", "enum": list(METHODS), "default": "ncc",
                                   "description": OPTIONS["method"].doc}
        assert props["max_overlap"]["minimum"] == 0 and props["max_overlap"]["maximum"] == 1


def _accepts(raw, form):
    try:
        parse_options(raw, form=form, max_matches=CAP)
    except InvalidOption:
        return False
    return True


def _valid(document, mime, body):
    return Draft202012Validator(_request_schema(document, mime)).is_valid(body)


_JSON_CANDIDATES = {  # per kind: values around every bound and of every JSON type
    "choice": [*METHODS, "fast", "exact", "", "NCC", "TM_SQDIFF", 0, 5, None, True, ["ncc"]],
    "score": [-2, -1, -1.0001, -0.5, 0, 0.5, 1, 1.0001, 1.5, 1e308, 10**400, None, True, "0.5", [0.5]],
    "count": [0, 1, 2, 2.0, 2.5, CAP, CAP + 1, -1, None, True, "3", 10**400],
    "fraction": [0, 0.0, 0.3, 1, 1.0, -0.1, 1.01, None, False, "0.3", 10**400],
    "box": [[0, 0, 1, 1], [0, 0, 0, 0], [-1, 0, 5, 5], [0, 0, 5], [0, 0, 5, 5, 5], [0, 0, 5.0, 5], [0, 0, 5.5, 5],
            [True, 0, 5, 5], "0,0,5,5", "0,0,0,0", "-5,0,100,100", "", None, 7, {"x": 0}],
    "bool": [True, False, None, 0, 1, "true", "yes", ""],
    # not [10, -10] nor [-200, 200]: a schema cannot say low <= high nor the span (test_range_order_and_span...)
    "range": [[0.9, 1.1], [-180, 180], [1, 1], [0, 0], [-360, 0], [-361, 0], [0, 1000], [0.0005, 1], [1, 2, 3], [1],
              [], [True, 1], ["0", "1"], "0,1", None, 1, {"lo": 0}, [1e308, 1e308], [10**400, 1]],
    "step": [0, 0.0, 0.5, 1, 1e-300, -1, 1e308, 10**400, None, True, "0.5", [0.5]],
}
_FORM_CANDIDATES = ["", "0", "1", "2", "007", "0.3", ".5", "1.0", "1.5", "-1", "-0", "1_0", " 1", "+1", "1e-1",
                    "2.5", "nan", "inf", "abc", "0,0,0,0", "0,0,5,5", "00,0,01,1", "-5,0,100,100", "1,2,3",
                    "true", "TRUE", "yes", "off", "maybe", "ncc", "NCC", "ssd", "fast", "exact",
                    # ranges within both the angles' and the scales' limits (a pattern cannot say them), steps
                    "0.9,1.1", "1,1", "2,3", "1,2,3", "a,b", "1, 2", "1,", ",1", "0.0", ".0", "0e5", "00.5"]


@pytest.mark.parametrize("name", [*FIND_OPTION_NAMES, "gray"])
def test_json_options_are_schema_valid_iff_the_parser_accepts_them(document, name):
    kind = GRAY.kind if name == "gray" else OPTIONS[name].kind
    methods = [None, *METHODS] if name == "threshold" else [None]
    for value in _JSON_CANDIDATES[kind]:
        for method in methods:
            raw = {name: value} | ({"method": method} if method else {})
            body = {"image": "x", "template": "x"} | raw
            assert _valid(document, "application/json", body) == _accepts(raw, form=False), raw


@pytest.mark.parametrize("name", [*FIND_OPTION_NAMES, "gray"])
def test_form_options_are_schema_valid_iff_the_parser_accepts_them(document, name):
    # threshold: a form pattern cannot depend on the method, so with ccorr (any finite number)
    extra = {"method": "ccorr"} if name == "threshold" else {}
    for text in _FORM_CANDIDATES:
        raw = {name: text} | extra
        body = {"image": "x", "template": "x"} | raw
        assert _valid(document, "multipart/form-data", body) == _accepts(raw, form=True), raw


@pytest.mark.parametrize("name, value, reason", [
    ("angles", [10, -10], "low <= high"), ("angles", [-200, 200], "spanning at most 360"),
    ("scales", [2, 1], "low <= high"), ("angles", "400,0", "-360 <= low"), ("scales", "0,1", "0.001 <= low")])
def test_range_order_and_span_are_the_parsers_to_refuse(document, name, value, reason):
    """What the schema cannot express (Option.schema's documented exceptions) the parser still refuses."""
    form = isinstance(value, str)
    with pytest.raises(InvalidOption, match=reason) as info:
        parse_options({name: value}, form=form, max_matches=CAP)
    assert info.value.field == name
    assert _valid(document, "multipart/form-data" if form else "application/json",
                  {"image": "x", "template": "x", name: value})  # the documented gap: the schema lets it through


def test_region_0000_is_refused_by_both(document, client):
    assert not _valid(document, "multipart/form-data", {"image": "x", "template": "x", "region": "0,0,0,0"})
    assert _valid(document, "multipart/form-data", {"image": "x", "template": "x", "region": "0,0,1,1"})
    assert not _valid(document, "application/json", {"image": "x", "template": "x", "region": "0,0,0,0"})
    assert not _accepts({"region": "0,0,0,0"}, form=True)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_strings_matching_the_patterns_parse(data):
    for name, pattern in (("max_matches", COUNT_PATTERN), ("max_overlap", FRACTION_PATTERN),
                          ("region", REGION_PATTERN), ("threshold", NUMBER_PATTERN), ("angle_step", POSITIVE_PATTERN)):
        text = data.draw(st.from_regex(f"^(?:{pattern})$", fullmatch=True).filter(lambda t: len(t) < 40))
        if name in ("threshold", "angle_step") and not 0 < abs(float(text)) < math.inf:
            continue  # the documented exception: a number too large (or small) for a float
        parse_option(name, text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789.,-+eE_ xn", max_size=12))
def test_what_the_parser_accepts_matches_the_pattern(text):
    import re

    for name, pattern in (("max_matches", COUNT_PATTERN), ("max_overlap", FRACTION_PATTERN),
                          ("region", REGION_PATTERN), ("threshold", NUMBER_PATTERN), ("angle_step", POSITIVE_PATTERN)):
        try:
            parse_option(name, text)
            accepted = True
        except OptionSyntaxError:
            accepted = False
        matches = re.fullmatch(pattern, text) is not None
        if name in ("threshold", "angle_step") and matches and not 0 < abs(float(text)) < math.inf:
            continue
        assert accepted == matches, (name, text)


# ---- the CLI: flags from the spec, errors named by param --------------------------------------

def test_cli_flags_come_from_the_spec():
    parser = cli.build_parser()
    match = next(a for a in parser._subparsers._group_actions[0].choices["match"]._actions if a.dest == "method")
    assert tuple(match.choices) == OPTIONS["method"].choices and match.default == OPTIONS["method"].default
    args = parser.parse_args(["match", "i.png", "t.png"])
    assert {n: getattr(args, n) for n in cli.FIND_FLAGS} == {n: OPTIONS[n].default for n in cli.FIND_FLAGS}
    args = parser.parse_args(["match", "i.png", "t.png", "--region", "1,2,3,4", "--max-overlap", ".5", "--subpixel"])
    assert (args.region, args.max_overlap, args.subpixel) == ((1, 2, 3, 4), 0.5, True)


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, line", [
    (["--region", "-5,0,100,100"], "matcher match: error: argument --region: x and y must be >= 0, got '-5,0,100,100'"),
    (["--region", "0,0,0,0"], "matcher match: error: argument --region: width and height must be >= 1, got '0,0,0,0'"),
    (["--threshold", "1_0"], "matcher match: error: argument --threshold: not a number: '1_0'"),
    (["--max-matches", "-2"], "matcher match: error: argument --max-matches: must be at least 1, got '-2'"),
    (["--method", "ssd", "--threshold", "-0.5"],
     "matcher match: error: --threshold -0.5: threshold for method 'ssd' (an upper bound on the score) must be "
     "a finite number >= 0, got -0.5"),
])
def test_cli_bad_option_is_one_line_naming_the_flag(capsys, tmp_path, argv, line):
    code, out, err = _run(capsys, "match", tmp_path / "missing.png", tmp_path / "missing.png", *argv)
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == line and "Traceback" not in err


def test_cli_maps_param_to_the_flag():
    args = cli.build_parser().parse_args(["match", "i.png", "t.png", "--max-overlap", "0.5", "--all"])
    assert cli._find_error(MatcherError("too much", param="max_overlap"), args) == "--max-overlap 0.5: too much"
    assert cli._find_error(MatcherError("none left", param="max_matches"), args) == "--all: none left"
    assert cli._find_error(MatcherError("bad mask", param="mask"), args) == "template t.png (its alpha channel): bad mask"
    assert cli._find_error(MatcherError("max_overlap is mentioned"), args) == (
        "template t.png in image i.png: max_overlap is mentioned")  # no param: the message is not parsed


def test_cli_batch_checks_options_before_reading(capsys, tmp_path):
    code, _, err = _run(capsys, "batch", tmp_path / "t.png", tmp_path, "--out", tmp_path / "o.jsonl",
                        "--method", "ssd_normed", "--threshold", "2")
    assert code == 2 and err.startswith("matcher batch: error: --threshold 2: threshold for method 'ssd_normed'")


# ---- the service: fields named by param ----------------------------------------------------------

@pytest.fixture
def client():
    return create_app({"TESTING": True}).test_client()


def _png():
    import cv2

    return cv2.imencode(".png", np.random.default_rng(1).integers(0, 255, (20, 20), dtype=np.uint8))[1].tobytes()


@pytest.mark.parametrize("error, field", [
    (MatcherError("anything", param="max_overlap"), "max_overlap"),
    (ParameterTypeError("anything", param="subpixel"), "subpixel"),
    (MatcherError("region anything", param=None), None),  # the message is not parsed
    (MatcherError("anything", param="masks"), "mask"),
])
def test_service_names_the_field_from_param(client, monkeypatch, error, field):
    import io

    import service.matching

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(service.matching, "find_with_scores", fails)
    png = _png()
    response = client.post("/v1/match", data={"image": (io.BytesIO(png), "i.png"), "template": (io.BytesIO(png), "t.png")})
    assert response.status_code == 400
    assert response.get_json().get("field") == field


def test_service_form_and_json_options_name_their_field(client):
    import base64
    import io

    png = _png()
    response = client.post("/v1/match", data={"image": (io.BytesIO(png), "i.png"), "template": (io.BytesIO(png), "t.png"),
                                              "region": "-5,0,10,10", "threshold": "1_0"})
    body = response.get_json()
    assert response.status_code == 400 and [e["field"] for e in body["errors"]] == ["region", "threshold"]
    assert body["errors"][1]["detail"] == "threshold: not a number: '1_0'"
    b64 = base64.b64encode(png).decode()
    response = client.post("/v1/match", json={"image": b64, "template": b64, "method": "ssd", "threshold": -1})
    body = response.get_json()
    assert response.status_code == 400 and body["field"] == "threshold" and ">= 0" in body["detail"]


def test_methods_endpoint_reads_the_table(client):
    body = client.get("/v1/methods").get_json()
    assert [(m["name"], m["opencv"], m["description"], m["better"]) for m in body["methods"]] == [
        (m.name, m.opencv_name, m.description, m.better) for m in TABLE]
    assert body["default"] == OPTIONS["method"].default


def test_argparse_type_errors_keep_the_reason():
    assert cli._spec_type(OPTIONS["threshold"])("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="^not a number: 'x'$"):
        cli._spec_type(OPTIONS["threshold"])("x")


def test_an_empty_image_is_schema_invalid_as_the_service_refuses_it(client):
    """Schema and service agree on empty files: neither accepts them."""
    document = client.get("/openapi.json").get_json()
    for mime in ("multipart/form-data", "application/json"):
        assert not _valid(document, mime, {"image": "", "template": "x"})
        assert _valid(document, mime, {"image": "x", "template": "x"})
    import base64

    import cv2

    tiny = base64.b64encode(cv2.imencode(".png", np.zeros((2, 2), np.uint8))[1].tobytes()).decode()
    response = client.post("/v1/match", json={"image": "", "template": tiny})
    assert response.status_code == 400 and response.get_json()["field"] == "image"
