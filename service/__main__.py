"""``python -m service``: run the service on 127.0.0.1:8000.

With gunicorn installed this becomes ``python -m gunicorn -c gunicorn.conf.py``
(the production command, the same as the Dockerfile's: an asyncio front on the
address, which reads whole requests, and the compute workers behind it);
without it, or with ``--dev``, Flask's development server runs (one process,
for trying things out only). ``--bind HOST:PORT`` overrides ``MATCHER_BIND``.
"""

import argparse
import importlib.util
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the folder holding the service package
CONFIG_FILE = ROOT / "gunicorn.conf.py"


def main(argv=None):
    """Parse the arguments, then exec gunicorn or run the development server."""
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default=os.environ.get("MATCHER_BIND", "127.0.0.1:8000"),
                        help="HOST:PORT to listen on (default: $MATCHER_BIND or 127.0.0.1:8000)")
    parser.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    args = parser.parse_args(argv)
    problem = bind_problem(args.bind)
    if problem:
        port = args.bind.rpartition(":")[2]
        following = int(port) + 1 if port.isdigit() else 8001
        print(f"cannot listen on {args.bind}: {problem}\n"
              f"Is the service already running there? ('ss -ltnp | grep :{port}' shows what holds the port.)\n"
              f"Stop it, or choose another address:  bash scripts/run.sh --bind 127.0.0.1:{following}",
              file=sys.stderr)
        return 2
    if not args.dev and importlib.util.find_spec("gunicorn") is not None:
        command = [sys.executable, "-m", "gunicorn", "--bind", args.bind, "--pythonpath", str(ROOT)]
        command += ["-c", str(CONFIG_FILE)] if CONFIG_FILE.is_file() else ["service.wsgi:app"]
        os.execv(sys.executable, command)
    if not args.dev:
        print("gunicorn is not installed: running Flask's development server", file=sys.stderr)
    host, _, port = args.bind.rpartition(":")
    from . import create_app

    create_app().run(host=host.strip("[]") or "127.0.0.1", port=int(port or 8000))


def bind_problem(bind):
    """Why ``bind`` (``HOST:PORT``) cannot be listened on, or "" if it can (checked before gunicorn,
    which would retry for 5 s and then say only "Can't connect").

    >>> bind_problem("127.0.0.1:not-a-port")
    "the port must be a number, got 'not-a-port'"
    """
    if bind.startswith(("unix:", "fd://")):
        return ""
    host, _, port = bind.rpartition(":")
    if not port.isdigit():
        return f"the port must be a number, got {port!r}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]") or "0.0.0.0", int(port),
                                                             type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
            s.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


if __name__ == "__main__":
    sys.exit(main())
