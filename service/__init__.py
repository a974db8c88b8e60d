"""matcher's HTTP service: a Flask app around :func:`matcher.find`.

>>> from service import create_app
>>> client = create_app({"TESTING": True}).test_client()
>>> client.get("/healthz").json["status"]
'ok'

Run it with ``python -m service`` (gunicorn with ``gunicorn.conf.py``, on
127.0.0.1:8000 unless ``MATCHER_BIND`` says otherwise). Settings and their
environment variables: :mod:`service.config`. Endpoints: ``GET /openapi.json``.
The service depends on matcher, never the reverse.
"""

from .app import create_app
from .config import ConfigError

__all__ = ["create_app", "ConfigError"]
