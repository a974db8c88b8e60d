"""A client of matcher's HTTP service with the library's own call: ``Client(url).find`` is ``matcher.find``.

For pipelines that run the search elsewhere (a shared server, a container)::

    from matcher import find                                       # in this process
    find = matcher.client.Client("http://127.0.0.1:8000").find     # on the service: same call, same Matches

Only the standard library is used (``urllib.request``), so the client adds no
dependency to the library's numpy, SciPy and OpenCV. Arrays are sent as PNG
(lossless; 16-bit stays 16-bit), so the server searches exactly the pixels the
local :func:`matcher.find` would, and the answers agree: the same positions and
the same scores (both are computed by definition, in float64, then sent as JSON
numbers, which round-trip exactly).

Errors: a problem the server blames on the request (HTTP 4xx: bad option,
unreadable image, template larger than the image, missing or wrong API key) is
raised as :class:`matcher.MatcherError` (the subclass the library would raise
where there is one) carrying the server's ``detail`` and, in ``param``, the
field it names. Trouble on the way or on the server (no connection, timeout,
HTTP 5xx, 429 too many requests, an answer that is not the service's) is a
:class:`ServiceError`: worth a retry, not a fix of the input.
"""

import json
import os
import socket
import urllib.error
import urllib.request
import uuid

import cv2
import numpy as np

from .errors import (ImageDecodeError, ImageTooLargeError, MatcherError, TemplateTooLargeError,
                     UnsupportedFormatError)
from .options import OPTIONS, format_option
from .search.find import Match

__all__ = ["Client", "ServiceError"]

_ERRORS = {  # the problem's type slug -> the library's exception for it
    "undecodable-image": ImageDecodeError,
    "unsupported-format": UnsupportedFormatError,
    "image-too-large": ImageTooLargeError,
    "template-too-large": TemplateTooLargeError,
}
_RETRYABLE = (429,)  # client errors that are not the input's fault: raised as ServiceError


class ServiceError(Exception):
    """The service could not be reached or failed (HTTP 5xx, 429, timeout, refused connection...).

    ``status`` is the HTTP status (None when no answer came), ``detail`` the
    server's explanation or the network error, ``retry_after`` the seconds the
    server asked to wait (``Retry-After``) or None, ``problem`` the parsed
    problem document (or None).
    """

    def __init__(self, message, *, status=None, detail=None, retry_after=None, problem=None):
        super().__init__(message)
        self.status, self.detail, self.retry_after, self.problem = status, detail, retry_after, problem


class Client:
    """The matcher service at ``base_url`` (e.g. ``"http://127.0.0.1:8000"``).

    Parameters
    ----------
    base_url : str
        The service's root URL; ``/v1/match`` is appended.
    api_key : str, optional
        Sent as ``Authorization: Bearer <key>`` when the server has ``MATCHER_API_KEYS``.
    timeout : float
        Seconds to wait for the connection and for the answer.
    max_matches_limit : int
        What ``max_matches=None`` ("all") asks for: the server's ``MATCHER_MAX_MATCHES``
        (100 unless its operator changed it), since the API has no "all".
    """

    def __init__(self, base_url, *, api_key=None, timeout=60.0, max_matches_limit=100):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise MatcherError(f"base_url must be an http:// or https:// URL, got {base_url!r}", param="base_url")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_matches_limit = max_matches_limit

    def __repr__(self):
        return f"Client({self.base_url!r})"

    def find(self, image, template, method="ncc", *, threshold=None, max_matches=1, max_overlap=0.3,
             region=None, subpixel=False, mask=None, precision="fast", angles=None, scales=None, angle_step=None,
             scale_step=None):
        """:func:`matcher.find` on the service: same arguments, same ``Match`` list, best first.

        ``image``, ``template`` and ``mask`` are numpy arrays (uint8 or uint16, or
        other integer or bool arrays whose values fit in them: gray ``(H, W)`` or
        RGB ``(H, W, 3)``), file paths or encoded bytes (PNG, JPEG, WebP, BMP,
        TIFF; decoded by the server; a template's alpha channel is its mask).
        ``method`` may be an OpenCV ``TM_*`` constant, as for ``matcher.find``.
        ``angles``, ``scales`` and their steps ask for the turned and scaled search,
        as they do of ``matcher.find`` (the server may refuse one over its
        ``MATCHER_MAX_TURN_WORK``: a :class:`~matcher.errors.MatcherError`).
        """
        if isinstance(method, (int, np.integer)) and not isinstance(method, bool):
            from .scores.inputs import normalize_method
            method = normalize_method(method)
        fields = [("method", str(method)), ("max_overlap", repr(float(max_overlap))),
                  ("subpixel", "true" if subpixel else "false"), ("precision", str(precision)),
                  ("max_matches", str(self.max_matches_limit if max_matches is None else max_matches))]
        if threshold is not None:
            fields.append(("threshold", repr(float(threshold))))
        if region is not None:
            fields.append(("region", ",".join(str(int(v)) for v in region)))
        for name, value in (("angles", angles), ("scales", scales), ("angle_step", angle_step),
                            ("scale_step", scale_step)):
            if value is not None:
                fields.append((name, format_option(name, OPTIONS[name].check(value))))
        files = [("image", _encode(image, "image")), ("template", _encode(template, "template"))]
        if mask is not None:
            files.append(("mask", _encode(mask, "mask", is_mask=True)))
        body = self._post("/v1/match", fields, files)
        try:
            return [_match(m) for m in body["matches"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceError(f"{self.base_url} answered 200 without a list of matches: {exc!r}",
                               status=200) from None

    # ---- HTTP ---------------------------------------------------------------------------------

    def _post(self, path, fields, files):
        data, content_type = _multipart(fields, files)
        headers = {"Content-Type": content_type, "Accept": "application/json, application/problem+json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method="POST")
        url = self.base_url + path
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
            raise _problem_error(url, exc.code, raw, exc.headers) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"could not reach the matcher service at {self.base_url}: {reason}",
                               detail=str(reason)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ServiceError(f"{url} answered 200 with something other than JSON: {raw[:200]!r}",
                               status=200) from None


def _problem_error(url, status, raw, headers):
    """The exception for an error answer: MatcherError for the caller's mistakes, else ServiceError."""
    try:
        problem = json.loads(raw)
        if not isinstance(problem, dict):
            raise ValueError
    except ValueError:
        problem = None
    detail = (problem or {}).get("detail") or (problem or {}).get("title") or raw[:200].decode("utf-8", "replace")
    retry_after = headers.get("Retry-After") if headers else None
    if 400 <= status < 500 and status not in _RETRYABLE and problem is not None:
        slug = str(problem.get("type", "")).rpartition(":")[2]
        return _ERRORS.get(slug, MatcherError)(detail, param=problem.get("field"))
    return ServiceError(f"the matcher service at {url} answered HTTP {status}: {detail}", status=status,
                        detail=detail, problem=problem,
                        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None)


def _encode(source, name, *, is_mask=False):
    """Bytes to upload for ``source``: a file's content, the bytes themselves, or an array as PNG."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                return f.read()
        except OSError as exc:
            raise MatcherError(f"{name}: cannot read {os.fspath(source)!r}: {exc.strerror}", param=name) from None
    a = np.asarray(source)
    if a.dtype.kind == "b":
        a = a.astype(np.uint8) * (255 if is_mask else 1)
    elif a.dtype.kind in "iuf" and a.dtype not in (np.uint8, np.uint16):
        a = _exact_integers(a, name)
    elif a.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"{name} must be a numpy array of numbers, a path or bytes, got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2BGR)  # PNG via OpenCV: BGR order
    elif a.ndim != 2:
        raise MatcherError(f"{name} must be gray (H, W) or RGB (H, W, 3) to be sent to the service, got shape "
                           f"{a.shape}", param=name)
    if a.size == 0:
        raise MatcherError(f"{name} is empty (shape {a.shape})", param=name)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
    if not ok:  # pragma: no cover - uint8/uint16 gray or BGR always encodes
        raise MatcherError(f"{name}: OpenCV could not encode a {a.shape} {a.dtype} array as PNG", param=name)
    return buf.tobytes()


def _exact_integers(a, name):
    """``a`` as uint8 or uint16 when that keeps every value; otherwise the service cannot take it."""
    if a.size and np.isfinite(a).all() and (a == np.round(a)).all() and a.min() >= 0:
        top = a.max()
        if top <= 255:
            return a.astype(np.uint8)
        if top <= 65535:
            return a.astype(np.uint16)
    raise MatcherError(f"{name}: the service takes 8- or 16-bit images; this {a.dtype} array has values that "
                       "are not integers from 0 to 65535 (use matcher.find locally, or scale it)", param=name)


def _multipart(fields, files):
    boundary = uuid.uuid4().hex
    out = []
    for name, value in fields:
        out += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode(),
                value.encode(), b"\r\n"]
    for name, data in files:
        out += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n".encode(), data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _match(m):
    """A :class:`matcher.Match` from its JSON form (``Match.to_dict``)."""
    angle, scale = float(m.get("angle", 0.0)), float(m.get("scale", 1.0))
    turned = (angle, scale) != (0.0, 1.0)
    corners = tuple((float(a), float(b)) for a, b in m["corners"]) if turned else None
    return Match(m["x"], m["y"], int(m["width"]), int(m["height"]), float(m["score"]), m.get("label"),
                 m.get("method"), angle=angle, scale=scale, corners=corners)
