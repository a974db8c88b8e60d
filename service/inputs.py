"""Reading a match request (multipart/form-data or JSON) into bytes and options.

Nothing is decoded here: files are only size-checked (per part, before they
are read into memory) and base64 is only checked and decoded. Unknown parts
and fields are refused, so a misspelt option is an error, not a silent default.
"""

import base64
import binascii
import json
import os
from dataclasses import dataclass

from werkzeug.exceptions import RequestEntityTooLarge

from .errors import InvalidRequest, TooLarge, UnsupportedMediaType
from .options import OPTION_NAMES, Options, parse_options

__all__ = ["Upload", "MatchInput", "read_match_request", "CONTENT_TYPES"]

CONTENT_TYPES = ("multipart/form-data", "application/json")
_MAX_LABEL = 100


@dataclass(frozen=True)
class Upload:
    """One image part: ``field`` it came in (``"image"``, ``"template"``, ``"templates.NAME"``...)."""

    field: str
    data: bytes


@dataclass(frozen=True)
class MatchInput:
    """A parsed request: ``templates`` is a list of ``(label, Upload)``; label None for /v1/match."""

    image: Upload
    templates: list
    mask: "Upload | None"
    options: Options


def read_match_request(request, config, *, batch=False):
    """Parse a /v1/match (``batch=False``) or /v1/match/batch request.

    Raises
    ------
    UnsupportedMediaType
        The Content-Type is neither multipart/form-data nor JSON.
    InvalidRequest, InvalidOption, TooLarge
        Missing or unknown parts, malformed values, a part over the byte limit.
    """
    known = request.mimetype == "multipart/form-data" or request.mimetype == "application/json" \
        or request.mimetype.endswith("+json")
    if known and request.content_length is None:
        _read_unannounced_body(request)
    if request.mimetype == "multipart/form-data":
        return _from_form(request, config, batch)
    if request.mimetype == "application/json" or request.mimetype.endswith("+json"):
        return _from_json(request, config, batch)
    raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(CONTENT_TYPES)}, "
                               f"got {request.mimetype or 'none'!r}", field="Content-Type")


def _read_unannounced_body(request):
    """A body without Content-Length (chunked): read it now, up to the request limit, and refuse it (413)
    if more follows; the parsers then use the cached bytes.

    Werkzeug stops reading such a body at ``MAX_CONTENT_LENGTH`` without saying so, which would turn an
    oversize request into a confusing "invalid JSON" or "malformed multipart" 400.
    """
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def _limits(config, batch):
    return {"max_matches": config["MATCHER_MAX_MATCHES"], "batch": batch}


# ---- multipart/form-data -------------------------------------------------------------------

def _from_form(request, config, batch):
    if not request.mimetype_params.get("boundary"):
        raise InvalidRequest("multipart/form-data needs a boundary parameter in its Content-Type",
                             field="Content-Type")
    files, form = request.files, request.form
    file_names = ("image", "template") if batch else ("image", "template", "mask")
    field_names = OPTION_NAMES + (("labels",) if batch else ())
    _refuse_unknown(files.keys(), file_names, "file part")
    for name in file_names:
        if name in form:
            raise InvalidRequest(f"{name} must be sent as a file part (with a filename), not as a plain field",
                                 field=name)
    _refuse_unknown(form.keys(), field_names, "form field")
    once = [(form, n) for n in set(form.keys()) - {"return", "labels"}] + [(files, n) for n in ("image", "mask")]
    for parts, name in once:
        if len(parts.getlist(name)) > 1:
            raise InvalidRequest(f"{name!r} was sent more than once", field=name)
    image = _read_file(files.get("image"), "image", config)
    templates = files.getlist("template")
    _check_count(templates, batch, config)
    uploads = [_read_file(f, "template", config) for f in templates]
    labels = _form_labels(form, templates) if batch else [None]
    mask = _read_file(files["mask"], "mask", config) if "mask" in files else None
    raw = {k: (form.getlist(k) if k == "return" else form[k]) for k in form.keys() if k != "labels"}
    options = parse_options(raw, form=True, **_limits(config, batch))
    return MatchInput(image, list(zip(labels, uploads, strict=True)), mask, options)


def _refuse_unknown(names, allowed, kind):
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise InvalidRequest(f"unknown {kind} {unknown[0]!r}; allowed: {', '.join(allowed)}", field=unknown[0])


def _check_count(templates, batch, config, field="template"):
    if not templates:
        raise InvalidRequest("the 'template' part is missing", field="template")
    if not batch and len(templates) > 1:
        raise InvalidRequest("send exactly one 'template' here; use /v1/match/batch for several", field="template")
    if len(templates) > config["MATCHER_MAX_TEMPLATES"]:  # the schema's maxItems: a malformed request, 400
        raise InvalidRequest(f"at most {config['MATCHER_MAX_TEMPLATES']} templates per request, got "
                             f"{len(templates)} (MATCHER_MAX_TEMPLATES)", field=field)


def _read_file(storage, field, config):
    if storage is None:
        raise InvalidRequest(f"the {field!r} part is missing", field=field)
    stream, limit = storage.stream, config["MATCHER_MAX_UPLOAD_BYTES"]
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    if size > limit:
        raise TooLarge(f"the {field!r} file is {size:,} bytes, over the limit of {limit:,} bytes", field=field)
    stream.seek(0)
    return Upload(field, stream.read())


def _form_labels(form, templates):
    if "labels" in form:
        labels = [n.strip() for v in form.getlist("labels") for n in v.split(",")]
        if len(labels) != len(templates):
            raise InvalidRequest(f"'labels' names {len(labels)} templates, but {len(templates)} were sent",
                                 field="labels")
    else:
        labels = [os.path.splitext(os.path.basename((f.filename or "").replace("\\", "/")))[0] or f"template_{i}"
                  for i, f in enumerate(templates)]
    return _check_labels(labels, "labels")


def _check_labels(labels, field):
    bad = [n for n in labels if not n or len(n) > _MAX_LABEL or not n.isprintable()]
    if bad:
        raise InvalidRequest(f"labels must be 1 to {_MAX_LABEL} printable characters, got {bad[0]!r}", field=field)
    if len(set(labels)) != len(labels):
        raise InvalidRequest(f"labels must be unique, got {labels}", field=field)
    return labels


# ---- application/json ----------------------------------------------------------------------

def _from_json(request, config, batch):
    data = request.get_data(cache=True)  # 413 beyond MAX_CONTENT_LENGTH
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "it is empty" if not data else "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidRequest(f"the body is not valid JSON ({reason})") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"the body must be a JSON object, got {type(body).__name__}")
    parts = ("image", "templates") if batch else ("image", "template", "mask")
    _refuse_unknown(body.keys(), parts + OPTION_NAMES, "member")
    image = _b64(body, "image", config)
    if batch:
        templates = body.get("templates")
        if not isinstance(templates, dict) or not templates:
            raise InvalidRequest("'templates' must be a non-empty object of label: base64 image",
                                 field="templates")
        _check_count(list(templates), batch, config, field="templates")
        labels = _check_labels(list(templates), "templates")
        pairs = [(label, _b64(templates, label, config, field=f"templates.{label}")) for label in labels]
        mask = None
    else:
        pairs = [(None, _b64(body, "template", config))]
        mask = _b64(body, "mask", config) if body.get("mask") is not None else None
    raw = {k: v for k, v in body.items() if k in OPTION_NAMES}
    return MatchInput(image, pairs, mask, parse_options(raw, form=False, **_limits(config, batch)))


def _b64(container, key, config, *, field=None):
    field = field or key
    value = container.get(key)
    if value is None:
        raise InvalidRequest(f"the {field!r} member is missing", field=field)
    if not isinstance(value, str):
        raise InvalidRequest(f"{field!r} must be a base64 string, got {type(value).__name__}", field=field)
    if value.startswith("data:"):  # a data: URL; keep what follows "base64,"
        head, sep, value = value.partition(",")
        if not sep or not head.endswith(";base64"):
            raise InvalidRequest(f"{field!r} is a data: URL without ';base64,'", field=field)
    limit = config["MATCHER_MAX_UPLOAD_BYTES"]
    if len(value) // 4 * 3 > limit + 3 * 1024:  # checked before decoding; whitespace allowance
        raise TooLarge(f"the {field!r} image is about {len(value) // 4 * 3:,} bytes, over the limit of "
                       f"{limit:,} bytes", field=field)
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field!r} is not valid base64", field=field) from None
    if len(data) > limit:
        raise TooLarge(f"the {field!r} image is {len(data):,} bytes, over the limit of {limit:,} bytes", field=field)
    return Upload(field, data)
