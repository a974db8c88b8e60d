#!/usr/bin/env bash
# Set up a virtual environment in .venv (once) and run the main job: the matcher
# service (REST API + web page) on http://127.0.0.1:8000 with gunicorn.
#   bash scripts/run.sh                      # 127.0.0.1:8000
#   bash scripts/run.sh --bind 127.0.0.1:8001
#   bash scripts/run.sh --dev                # Flask's development server
# Dependencies are installed only when requirements*.txt or pyproject.toml changed since
# the last install (a hash of them is kept in .venv/.matcher-installed).
set -euo pipefail
cd "$(dirname "$0")/.."

bind="${MATCHER_BIND:-127.0.0.1:8000}"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --bind) bind="${args[i + 1]:-$bind}" ;;
        --bind=*) bind="${args[i]#--bind=}" ;;
    esac
done
# (python -m service checks that the address is free before starting gunicorn)
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.matcher-installed
wanted="$(cat requirements*.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "installing the dependencies into .venv (once; again only when requirements or pyproject.toml change)" >&2
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.txt
    .venv/bin/python -m pip install -q --no-deps -e .
    echo "$wanted" > "$stamp"
fi

echo "starting the matcher service on http://${bind}/ (web page), API under /v1; Ctrl-C stops it" >&2
exec .venv/bin/python -m service "$@"
