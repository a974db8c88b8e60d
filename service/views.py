"""The endpoints, in three blueprints. Views only parse, call and format.

- ``api`` (``/v1``, API key required when configured): ``POST /v1/match``,
  ``POST /v1/match/batch``, ``GET /v1/methods``;
- ``health`` (never authenticated): ``GET /healthz``, ``GET /readyz``;
- ``docs`` (never authenticated): ``GET /openapi.json``.
"""

from flask import Blueprint, current_app, jsonify, request

import matcher

from .matching import run_batch, run_match
from .guards import limited, require_api_key
from .info import methods_info, readiness
from .inputs import read_match_request
from .openapi import openapi_document

__all__ = ["api", "health", "docs"]

api = Blueprint("api", __name__, url_prefix="/v1")
api.before_request(require_api_key)
health = Blueprint("health", __name__)
docs = Blueprint("docs", __name__)


@api.post("/match")
@limited
def match():
    """Find one template in one image."""
    return jsonify(run_match(read_match_request(request, current_app.config), current_app.config))


@api.post("/match/batch")
@limited
def match_batch():
    """Find several labelled templates in one image."""
    return jsonify(run_batch(read_match_request(request, current_app.config, batch=True), current_app.config))


@api.get("/methods")
def methods():
    """The score methods, their ranges and which direction is better."""
    return jsonify(methods_info())


@health.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return jsonify(status="ok", version=matcher.__version__)


@health.get("/readyz")
def readyz():
    """Readiness: the engine computes a known answer in this worker."""
    body = readiness()
    return jsonify(body), 200 if body["status"] == "ready" else 503


@docs.get("/openapi.json")
def openapi():
    """This service's OpenAPI 3.1 document."""
    return jsonify(openapi_document(current_app.config))
