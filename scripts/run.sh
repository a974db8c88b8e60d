#!/usr/bin/env bash
# Set up a virtual environment in .venv (once) and run the main job: the matcher
# service (REST API + web page) on http://127.0.0.1:8000 with gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "matcher service on http://127.0.0.1:8000/ (web page), API under /v1; Ctrl-C stops it" >&2
exec .venv/bin/python -m service "$@"
