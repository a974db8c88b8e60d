"""The application factory."""

import logging
from types import SimpleNamespace

import numpy as np
from flask import Flask
from flask.json.provider import DefaultJSONProvider

import matcher

from .config import load_config
from .errors import register_error_handlers
from .guards import Gate
from .views import api, docs, health
from .web import web

__all__ = ["create_app", "VERSION_HEADER"]

VERSION_HEADER = "X-Matcher-Version"


class _JSON(DefaultJSONProvider):
    """Flask's JSON, keeping key order and accepting NumPy scalars and arrays."""

    sort_keys = False

    @staticmethod
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return DefaultJSONProvider.default(o)


def create_app(config=None):
    """Create the matcher HTTP service.

    Parameters
    ----------
    config : mapping, optional
        Settings that override the environment and the defaults (see
        :mod:`service.config`), and any Flask setting (e.g. ``TESTING``).

    Returns
    -------
    flask.Flask
        With the ``api`` (``/v1``), ``health`` and ``docs`` blueprints, the
        error mapping of :mod:`service.errors`, and an ``X-Matcher-Version``
        header on every response.

    Raises
    ------
    service.config.ConfigError
        A setting (from the environment or ``config``) is malformed.
    """
    app = Flask("service", static_folder=None)  # the page's assets come from the web blueprint
    app.config.update(load_config(overrides=config))
    app.json = _JSON(app)
    app.extensions["matcher"] = SimpleNamespace(gate=Gate(app.config["MATCHER_MAX_CONCURRENT"]))
    register_error_handlers(app)
    for blueprint in (api, health, docs, web):
        app.register_blueprint(blueprint)
    app.after_request(_stamp)
    _use_gunicorn_logging()
    return app


def _stamp(response):
    response.headers[VERSION_HEADER] = matcher.__version__
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _use_gunicorn_logging():
    """Under gunicorn, send the service's log records to gunicorn's error log."""
    service_log, gunicorn_log = logging.getLogger("service"), logging.getLogger("gunicorn.error")
    if gunicorn_log.handlers and not service_log.handlers:
        service_log.handlers = list(gunicorn_log.handlers)
        service_log.setLevel(gunicorn_log.level)
        service_log.propagate = False
