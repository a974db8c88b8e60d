"""The service's settings: every limit, its default, and the variable that overrides it.

Each setting is read from the environment variable of the same name when the
app is created (:func:`service.create_app`), and a ``config`` mapping passed to
``create_app`` overrides both (tests do this). Values from the environment are
strings and are parsed; a malformed value stops the app at start-up with a
message naming the variable, rather than running with a surprise.

Application settings (``app.config`` keys, same as the variables)
------------------------------------------------------------------

=============================  ==================  ===========================================
variable                       default             meaning
=============================  ==================  ===========================================
MATCHER_MAX_UPLOAD_BYTES       16 MiB              largest image file, per file part (after
                                                   base64 decoding for JSON): 413 above it
MATCHER_MAX_REQUEST_BYTES      64 MiB              largest request body (Flask's
                                                   ``MAX_CONTENT_LENGTH``): 413 above it
MATCHER_MAX_PIXELS             16,777,216          largest ``width * height`` of an image or
                                                   template (4096 x 4096), read from the file
                                                   header before decoding: 413 above it
MATCHER_MAX_WORK               100,000,000,000     largest ``searched pixels * template
                                                   pixels`` per request (summed over the
                                                   templates of a batch): 413 above it
MATCHER_MAX_TURN_WORK          20,000,000,000      largest estimated work of a turned or
                                                   scaled search (``angles``, ``scales``):
                                                   :func:`matcher.search.rotated.search_cost`,
                                                   in the same unit (pixel products, summed
                                                   over its poses, candidates and templates;
                                                   times channels); 413 above it. A search
                                                   at the limit took 2 to 9 s on one core of
                                                   a quiet machine, 6 to 26 s under load
                                                   (``bench/bench_turn_cost.py``)
MATCHER_MAX_CONCURRENT         2                   matches running at once in one process
                                                   of the app; more get 503 + ``Retry-After``
                                                   (binds with threaded servers such as the
                                                   development one: each compute worker of
                                                   gunicorn.conf.py runs one at a time)
MATCHER_RETRY_AFTER            1                   seconds, the ``Retry-After`` of every 503
MATCHER_QUEUE                  8                   matches that may wait in the front for a
                                                   free compute worker (one queue for all);
                                                   more get 503 + ``Retry-After`` at once
MATCHER_QUEUE_WAIT             10                  seconds a match may wait in that queue
                                                   before it gets 503 + ``Retry-After``
MATCHER_CLIENT_TIMEOUT         30                  seconds the front gives a client to send
                                                   its request headers, then as long again
                                                   for its whole body: 408 after either
MATCHER_FRONT_MEMORY           1 GiB               bytes of request bodies the front holds at
                                                   once (being received, waiting, matched);
                                                   a body that would pass it is read, dropped
                                                   and answered 503 + ``Retry-After``
MATCHER_API_KEYS               (empty: no auth)    comma-separated keys; when set, ``/v1/*``
                                                   needs ``Authorization: Bearer KEY`` or
                                                   ``X-API-Key: KEY`` (401 otherwise)
MATCHER_API_KEYS_FILE          (unset)             a file of keys (comma- or line-separated),
                                                   added to MATCHER_API_KEYS (for secrets
                                                   mounted as files)
MATCHER_FORMATS                png,jpeg,webp,bmp   accepted formats, sniffed from the magic
                                                   bytes (subset of matcher.io.FORMATS): 415
MATCHER_MAX_MATCHES            100                 largest ``max_matches`` a request may ask
MATCHER_MAX_TEMPLATES          16                  most templates in one batch request
MATCHER_MAX_FORM_PARTS         64                  most multipart parts (Werkzeug's
                                                   ``MAX_FORM_PARTS``): 413 above it
MATCHER_MAX_FORM_MEMORY        524,288             largest non-file multipart field in bytes
                                                   (Werkzeug's ``MAX_FORM_MEMORY_SIZE``); at
                                                   least 262,144, as Werkzeug also applies it
                                                   to its 64 KiB read buffer
=============================  ==================  ===========================================

Integers accept underscores (``16_000_000``). Memory: each compute worker
runs one match at a time, bounded by about ``MATCHER_MAX_REQUEST_BYTES + 24 *
MATCHER_MAX_PIXELS`` bytes (the engine works in float64, three channels):
about 0.5 GB per compute worker with the defaults. The front holds the bodies
it is reading, queueing or waiting on at most MATCHER_FRONT_MEMORY bytes in
all (1 GiB), plus about 150 MB for itself (the app, NumPy, OpenCV). Lower
MATCHER_MAX_PIXELS and MATCHER_FRONT_MEMORY on small machines.

Server settings (read by ``gunicorn.conf.py`` only)
---------------------------------------------------

``gunicorn.conf.py`` runs an asyncio front (:mod:`service.front`, one process)
on MATCHER_BIND and, behind it on a private Unix socket, the compute workers.

========================  ==========================  =========================================
variable                  default                     meaning
========================  ==========================  =========================================
MATCHER_BIND              127.0.0.1:8000              address to listen on (the Dockerfile
                                                      sets 0.0.0.0:8000 inside the container)
MATCHER_WORKERS           number of usable cores      compute worker processes (gunicorn sync
                                                      workers behind the front, one match each
                                                      at a time; matching is CPU-bound)
MATCHER_THREADS           4                           threads of the front answering the other
                                                      requests (health, page, documents)
MATCHER_NUM_THREADS       cores // workers (>= 1)     OpenCV / matcher / FFT / BLAS threads
                                                      per worker
MATCHER_MALLOC_THRESHOLD  33,554,432 (32 MiB)         glibc serves blocks below this from its
                                                      heap and keeps freed memory (mallopt):
                                                      no page faults per request; 0: glibc's
                                                      default
MATCHER_TIMEOUT           60                          seconds before a silent worker (a match
                                                      running that long) is killed
MATCHER_LOG_LEVEL         info                        gunicorn's log level
========================  ==========================  =========================================
"""

import os
from dataclasses import dataclass

from matcher.io import FORMATS as _ALL_FORMATS

__all__ = ["Setting", "SETTINGS", "ConfigError", "load_config"]


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def _positive_int(name, value):
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}") from None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return number


def _form_memory(name, value):
    number = _positive_int(name, value)
    if number < 256 * 1024:  # Werkzeug's multipart decoder checks it against its read buffer (64 KiB chunks)
        raise ConfigError(f"{name} must be at least 262144 (Werkzeug applies it to its read buffer), got {value!r}")
    return number


def _names(value):
    if isinstance(value, str):
        value = value.replace("\n", ",").split(",")
    return tuple(v.strip() for v in value if v and v.strip())


def _keys(name, value):
    keys = _names(value)
    bad = [k for k in keys if not k.isascii() or not k.isprintable()]
    if bad:
        raise ConfigError(f"{name} must hold printable ASCII keys only")
    return keys


def _formats(name, value):
    formats = _names(value)
    unknown = [f for f in formats if f not in _ALL_FORMATS]
    if not formats or unknown:
        raise ConfigError(f"{name} must be a comma-separated subset of {', '.join(_ALL_FORMATS)}, got {value!r}")
    return formats


@dataclass(frozen=True)
class Setting:
    """One setting: ``name`` is both the environment variable and the ``app.config`` key."""

    name: str
    default: object
    parse: object
    doc: str


MiB = 1 << 20

SETTINGS = (
    Setting("MATCHER_MAX_UPLOAD_BYTES", 16 * MiB, _positive_int, "largest image file per part, bytes"),
    Setting("MATCHER_MAX_REQUEST_BYTES", 64 * MiB, _positive_int, "largest request body, bytes"),
    Setting("MATCHER_MAX_PIXELS", 4096 * 4096, _positive_int, "largest width * height of an image"),
    Setting("MATCHER_MAX_WORK", 100_000_000_000, _positive_int, "largest searched pixels * template pixels"),
    Setting("MATCHER_MAX_TURN_WORK", 20_000_000_000, _positive_int, "largest estimated work of a turned search"),
    Setting("MATCHER_MAX_CONCURRENT", 2, _positive_int, "matches at once per worker process"),
    Setting("MATCHER_RETRY_AFTER", 1, _positive_int, "Retry-After seconds of a 503"),
    Setting("MATCHER_QUEUE", 8, _positive_int, "matches waiting for a compute worker"),
    Setting("MATCHER_QUEUE_WAIT", 10, _positive_int, "seconds a match may wait in the queue"),
    Setting("MATCHER_CLIENT_TIMEOUT", 30, _positive_int, "seconds to receive the headers, and the body"),
    Setting("MATCHER_FRONT_MEMORY", 1 << 30, _positive_int, "bytes of request bodies the front holds"),
    Setting("MATCHER_API_KEYS", (), _keys, "accepted API keys; empty: no authentication"),
    Setting("MATCHER_FORMATS", ("png", "jpeg", "webp", "bmp"), _formats, "accepted image formats"),
    Setting("MATCHER_MAX_MATCHES", 100, _positive_int, "largest max_matches"),
    Setting("MATCHER_MAX_TEMPLATES", 16, _positive_int, "most templates per batch"),
    Setting("MATCHER_MAX_FORM_PARTS", 64, _positive_int, "most multipart parts"),
    Setting("MATCHER_MAX_FORM_MEMORY", 512 * 1024, _form_memory, "largest non-file form field, bytes"),
)


def load_config(environ=None, overrides=None):
    """Resolve every setting: defaults, then ``environ``, then ``overrides``.

    Parameters
    ----------
    environ : mapping, optional
        Environment variables (default ``os.environ``).
    overrides : mapping, optional
        Values that win over both (strings are parsed like environment values,
        other values are checked). Keys that are not settings (Flask's own,
        e.g. ``TESTING``) are passed through unchanged.

    Returns
    -------
    dict
        Every setting by name, plus Flask's ``MAX_CONTENT_LENGTH``,
        ``MAX_FORM_MEMORY_SIZE`` and ``MAX_FORM_PARTS`` derived from them
        (unless ``overrides`` sets those directly).

    Raises
    ------
    ConfigError
        A value is malformed; the message names the variable.
    """
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    config = {}
    for s in SETTINGS:
        value = overrides.pop(s.name, environ.get(s.name, s.default))
        config[s.name] = s.parse(s.name, value)
    key_file = overrides.pop("MATCHER_API_KEYS_FILE", environ.get("MATCHER_API_KEYS_FILE"))
    if key_file:
        try:
            with open(key_file, encoding="ascii") as f:
                config["MATCHER_API_KEYS"] += _keys("MATCHER_API_KEYS_FILE", f.read())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"MATCHER_API_KEYS_FILE could not be read: {exc}") from None
    config["MAX_CONTENT_LENGTH"] = config["MATCHER_MAX_REQUEST_BYTES"]
    config["MAX_FORM_MEMORY_SIZE"] = config["MATCHER_MAX_FORM_MEMORY"]
    config["MAX_FORM_PARTS"] = config["MATCHER_MAX_FORM_PARTS"]
    config.update(overrides)
    return config
