"""The OpenAPI 3.1 document of the service, built from the same constants the code uses.

The option members of the request bodies (type, enum, default, bounds,
pattern, description) are generated from the records that parse them
(:func:`service.options.option_schemas`, from :data:`matcher.options.OPTIONS`).

Limits in the document (``max_matches``, templates per batch, the formats) are
the running app's configuration, and security is declared only when API keys
are configured, so the document describes the server that serves it. The
tests validate the document and check real responses against its schemas.
"""

import matcher
from matcher import METHODS

from .inputs import CONTENT_TYPES
from .options import option_rules, option_schemas

__all__ = ["openapi_document"]

_REF = "#/components/{}/{}".format
_PROBLEM = "application/problem+json"
_FILE = {"type": "string", "contentMediaType": "application/octet-stream", "minLength": 1}
_B64 = {"type": "string", "contentEncoding": "base64", "minLength": 1,
        "description": "the image file, base64 (a data: URL is accepted)"}
_PNG_B64 = {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png"}


def _ref(kind, name):
    return {"$ref": _REF(kind, name)}


def _request_body(config, *, batch):
    formats = ", ".join(config["MATCHER_FORMATS"])
    if batch:
        form_parts = {"image": _FILE | {"description": f"the image ({formats})"},
                      "template": {"type": "array", "items": _FILE, "minItems": 1,
                                   "maxItems": config["MATCHER_MAX_TEMPLATES"],
                                   "description": "one part per template; the label is the file name without "
                                                  "extension, unless 'labels' is given; alpha becomes the mask"},
                      "labels": {"type": "string", "description": "comma-separated labels, one per template"}}
        json_parts = {"image": _B64, "templates": {
            "type": "object", "additionalProperties": _B64, "minProperties": 1,
            "maxProperties": config["MATCHER_MAX_TEMPLATES"], "description": "label: base64 image"}}
        required = ["image", "template"]
    else:
        form_parts = {"image": _FILE | {"description": f"the image ({formats})"},
                      "template": _FILE | {"description": "the template; a PNG's alpha channel becomes the mask"},
                      "mask": _FILE | {"description": "optional mask, same size as the template (non-zero = used); "
                                                      "overrides the template's alpha"}}
        json_parts = {"image": _B64, "template": _B64, "mask": _B64 | {"type": ["string", "null"]}}
        required = ["image", "template"]
    json_required = ["image", "templates"] if batch else ["image", "template"]
    def schema(parts, required, form):
        body = {"type": "object", "required": required, "additionalProperties": False,
                "properties": parts | option_schemas(form=form, max_matches=config["MATCHER_MAX_MATCHES"], batch=batch)}
        rules = option_rules(form=form)
        return body | ({"allOf": rules} if rules else {})

    return {"required": True, "content": {
        CONTENT_TYPES[0]: {"schema": schema(form_parts, required, True)},
        CONTENT_TYPES[1]: {"schema": schema(json_parts, json_required, False)},
    }}


def _json_response(description, schema, headers=None):
    return {"description": description, "headers": {"X-Matcher-Version": _ref("headers", "Version")} | (headers or {}),
            "content": {"application/json": {"schema": schema}}}


def _match_operation(config, *, batch, secured):
    name = "BatchResponse" if batch else "MatchResponse"
    operation = {
        "operationId": "matchBatch" if batch else "match",
        "summary": "Find several labelled templates in one image" if batch else "Find a template in an image",
        "requestBody": _request_body(config, batch=batch),
        "responses": {"200": _json_response("matches, best first", _ref("schemas", name))}
        | {code: _ref("responses", code) for code in ("400", "401", "413", "415", "422", "500", "503")
           if code != "401" or secured},
    }
    return operation


def _schemas(config):
    number = {"type": "number"}
    info = {"type": "object", "required": ["width", "height", "channels", "format"], "properties": {
        "width": {"type": "integer"}, "height": {"type": "integer"}, "channels": {"type": "integer"},
        "format": {"type": "string"}}}
    template = info | {"required": info["required"] + ["masked"],
                       "properties": info["properties"] | {"masked": {"type": "boolean"}}}
    common = {"matches": {"type": "array", "items": _ref("schemas", "Match")}, "image": info,
              "method": {"type": "string", "enum": list(METHODS)}, "lower_is_better": {"type": "boolean"},
              "elapsed_ms": number, "version": {"type": "string"}, "annotated": _PNG_B64}
    required = ["matches", "image", "method", "lower_is_better", "elapsed_ms", "version"]
    nullable_str = {"type": ["string", "null"]}
    return {
        "Match": {"type": "object", "required": ["x", "y", "width", "height", "score"], "properties": {
            "x": number, "y": number, "width": {"type": "integer"}, "height": {"type": "integer"}, "score": number,
            "label": nullable_str, "method": {"type": "string", "enum": list(METHODS)},
            "center": {"type": "object", "required": ["x", "y"], "properties": {"x": number, "y": number},
                       "description": "centre of the window, pixel-centre coordinates; for a turned match, "
                                      "where the template's centre lies (sub-pixel)"},
            "angle": number | {"description": "degrees, counter-clockwise as displayed (0 unless angles is given)"},
            "scale": number | {"description": "template to image (1 unless scales is given)"},
            "corners": {"type": "array", "minItems": 4, "maxItems": 4, "items": {
                "type": "array", "prefixItems": [number, number], "minItems": 2, "maxItems": 2},
                "description": "[x, y] of the template's corner pixels (0, 0), (w-1, 0), (w-1, h-1), (0, h-1) "
                               "in the image; x, y, width, height is their bounding box"}}},
        "MatchResponse": {"type": "object", "required": required + ["template"],
                          "properties": common | {"template": template, "heatmap": _PNG_B64}},
        "BatchResponse": {"type": "object", "required": required + ["templates"], "properties": common | {
            "templates": {"type": "array", "items": template | {
                "required": template["required"] + ["label"],
                "properties": template["properties"] | {"label": {"type": "string"}}}}}},
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
            "type": {"type": "string", "format": "uri-reference"}, "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599}, "detail": {"type": "string"},
            "field": {"type": "string", "description": "the request part or option at fault"},
            "errors": {"type": "array", "items": {"type": "object", "required": ["detail"], "properties": {
                "field": nullable_str, "detail": {"type": "string"}}}},
            "instance": {"type": "string"}}},
        "Methods": {"type": "object", "required": ["methods", "default"], "properties": {
            "default": {"type": "string"}, "methods": {"type": "array", "items": {
                "type": "object", "required": ["name", "opencv", "range", "better", "threshold", "description"],
                "properties": {"name": {"type": "string", "enum": list(METHODS)}, "opencv": {"type": "string"},
                               "description": {"type": "string"},
                               "range": {"type": "object", "required": ["min", "max"], "properties": {
                                   "min": {"type": ["number", "null"]}, "max": {"type": ["number", "null"]}},
                                   "description": "null: unbounded"},
                               "better": {"enum": ["lower", "higher"]},
                               "threshold": {"enum": ["upper bound", "lower bound"]}}}}}},
        "Health": {"type": "object", "required": ["status", "version"], "properties": {
            "status": {"const": "ok"}, "version": {"type": "string"}}},
        "Ready": {"type": "object", "required": ["status", "version", "checks"], "properties": {
            "status": {"enum": ["ready", "not ready"]}, "version": {"type": "string"},
            "checks": {"type": "object", "additionalProperties": {"enum": ["ok", "failed"]}}}},
    }


def _responses():
    def problem(description, **headers):
        return {"description": description,
                "headers": {"X-Matcher-Version": _ref("headers", "Version")} | headers,
                "content": {_PROBLEM: {"schema": _ref("schemas", "Problem")}}}

    header = lambda text: {"description": text, "schema": {"type": "string"}}  # noqa: E731
    return {
        "400": problem("missing or unknown part, undecodable or truncated image, invalid option"),
        "401": problem("no API key or a wrong one", **{"WWW-Authenticate": header("Bearer realm=\"matcher\"")}),
        "404": problem("no such endpoint"),
        "405": problem("method not allowed", Allow=header("the allowed methods")),
        "413": problem("request, file part, image (pixels, from the header) or work over its limit (the "
                       "turned search's estimated work: MATCHER_MAX_TURN_WORK)"),
        "415": problem("image format outside the allowlist (sniffed from its bytes), or an unsupported "
                       "request Content-Type"),
        "422": problem("template larger than the image or region, region outside the image, mask or "
                       "channel mismatch"),
        "500": problem("unexpected error (logged; no details leak)"),
        "503": problem("this worker runs its maximum of concurrent matches; retry later",
                       **{"Retry-After": header("seconds")}),
    }


def openapi_document(config):
    """The OpenAPI 3.1 document for an app with ``config`` (its ``app.config``)."""
    secured = bool(config["MATCHER_API_KEYS"])
    security = [{"bearer": []}, {"apiKey": []}] if secured else []
    simple = lambda summary, op, schema, **more: {"get": {  # noqa: E731
        "operationId": op, "summary": summary, "security": [],
        "responses": {"200": _json_response("OK", schema)} | more}}
    paths = {
        "/v1/match": {"post": _match_operation(config, batch=False, secured=secured)},
        "/v1/match/batch": {"post": _match_operation(config, batch=True, secured=secured)},
        "/v1/methods": simple("The score methods, their ranges and which direction is better", "methods",
                              _ref("schemas", "Methods")),
        "/healthz": simple("Liveness", "healthz", _ref("schemas", "Health")),
        "/readyz": simple("Readiness: a tiny known match runs in this worker", "readyz", _ref("schemas", "Ready"),
                          **{"503": _json_response("not ready", _ref("schemas", "Ready"))}),
        "/openapi.json": simple("This document", "openapi", {"type": "object"}),
        "/v1/samples": simple("The bundled sample pairs the web page offers (may be empty)", "samples", {
            "type": "object", "required": ["samples"],
            "properties": {"samples": {"type": "array", "items": {
                "type": "object", "required": ["name", "image", "template"],
                "properties": {"name": {"type": "string"}, "image": {"type": "object"},
                               "template": {"type": "object"}}}}}}),
        "/samples/{name}": {"get": {
            "operationId": "sampleFile", "summary": "One file of a bundled sample (an image or a template)",
            "security": [],
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the PNG file",
                                  "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
                          "404": _ref("responses", "404")}}},
        "/": {"get": {"operationId": "page", "summary": "The web page for trying the service", "security": [],
                      "responses": {"200": {"description": "HTML",
                                            "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    }
    if secured:
        paths["/v1/methods"]["get"]["security"] = security
        paths["/v1/methods"]["get"]["responses"]["401"] = _ref("responses", "401")
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "matcher", "version": matcher.__version__,
                 "description": "Template matching over HTTP. Errors are RFC 9457 problem details "
                                "(application/problem+json); every response carries X-Matcher-Version."},
        "paths": paths,
        "components": {
            "schemas": _schemas(config),
            "responses": _responses(),
            "headers": {"Version": {"description": "the version of matcher that answered",
                                    "schema": {"type": "string"}}},
        },
    }
    if secured:
        doc["security"] = security
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    return doc
