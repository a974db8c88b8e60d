"""The WSGI entry point for servers: ``gunicorn service.wsgi:app`` (settings from the environment)."""

from . import create_app

app = create_app()
