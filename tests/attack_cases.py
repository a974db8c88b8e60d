"""The bad-input matrix: malformed, hostile and oversized requests, each with the statuses it may get.

:func:`cases` returns :class:`Case` records: the raw bytes of one HTTP/1.1
request (``Connection: close``) and the statuses a correct server answers.
Every case is a client's mistake or an attack, so every answer is a 4xx
``application/problem+json`` (``problem=False`` for the few that gunicorn
itself refuses before the app sees them: an unparseable request head), never
a 5xx, a dropped connection or a traceback. Used by tests/test_service_attack.py
(and bench/bench_attack.py for longer runs).

Families: corrupt and truncated files of every accepted format (as the image
and as the template, multipart and JSON), formats outside the allowlist,
pixel bombs (headers declaring huge images), work-budget bombs (small files
within the pixel limit whose matching would need gigabytes), decompression
bombs, malformed multipart, malformed JSON, malformed chunked encoding,
hostile option values, wrong methods and media types, path traversal.
"""

import base64
import json
import struct
import uuid
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Case", "cases", "request", "send"]

_RNG = np.random.default_rng(14)
_IMAGE = _RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
_TEMPLATE = _IMAGE[10:26, 20:40].copy()
_CLIENT_ERRORS = (400, 404, 405, 411, 413, 415, 422, 431)


@dataclass(frozen=True)
class Case:
    """One request: ``raw`` bytes, the allowed ``statuses``, the ``field`` blamed (None: not checked),
    ``problem``: whether the answer must be problem+json."""

    name: str
    raw: bytes
    statuses: tuple
    field: "str | None" = None
    problem: bool = True


def _encode(ext, array, params=()):
    return cv2.imencode(ext, array, list(params))[1].tobytes()


def _files():
    """A small valid image and template per accepted format."""
    out = {}
    for fmt, ext in (("png", ".png"), ("jpeg", ".jpg"), ("webp", ".webp"), ("bmp", ".bmp")):
        out[fmt] = (_encode(ext, _IMAGE), _encode(ext, _TEMPLATE))
    return out


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width, height, bits=8, colour=0, idat=None):
    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _deflate_bomb(rows, extra_mib):
    z = zlib.compressobj(9)
    block = b"\0" * (16 << 20)
    parts = [z.compress(b"\0" * rows)] + [z.compress(block) for _ in range(extra_mib // 16)]
    return b"".join(parts) + z.flush()


def _jpeg_with_size(jpeg, width, height):
    data = bytearray(jpeg)
    pos = 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, pos + 5, height, width)
            return bytes(data)
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    raise AssertionError("no SOF")


def _webp_vp8x(width, height):
    flags = b"\x00\x00\x00\x00"
    dims = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + flags + dims
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _bmp_header(width, height, bits=24):
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + info + b"\0" * 64


def _multipart(fields, files, boundary=None):
    boundary = boundary or uuid.uuid4().hex
    out = []
    for name, value in fields:
        out += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode(),
                value if isinstance(value, bytes) else value.encode(), b"\r\n"]
    for name, filename, data in files:
        out += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n".encode(), data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def request(method, path, body=b"", content_type=None, headers=()):
    """The raw bytes of an HTTP/1.1 request with Content-Length (``Connection: close``)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _form(image, template, *, fields=(), path="/v1/match", mask=None):
    files = [("image", "image.png", image), ("template", "template.png", template)]
    if mask is not None:
        files.append(("mask", "mask.png", mask))
    body, ctype = _multipart(list(fields), files)
    return request("POST", path, body, ctype)


def _json(obj, path="/v1/match"):
    return request("POST", path, json.dumps(obj).encode(), "application/json")


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _chunked(head_path, chunks, content_type="application/json", extra_headers=""):
    head = (f"POST {head_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Transfer-Encoding: chunked\r\nConnection: close\r\n{extra_headers}\r\n").encode()
    return head + chunks


def _file_mutations(fmt, data):
    """Corrupt and truncated versions of a valid file: (name, bytes, statuses)."""
    n = len(data)
    bad = (400, 415)  # undecodable, or too damaged to be sniffed as the format
    out = [(f"{fmt}-empty", b"", (400,)), (f"{fmt}-1-byte", data[:1], bad), (f"{fmt}-magic-only", data[:4], bad)]
    for cut in (12, 30, n // 4, n // 2, n - 20, n - 1):
        out.append((f"{fmt}-cut-at-{cut}", data[:cut], bad))
    zeroed = data[:40] + bytes(n - 40)
    out.append((f"{fmt}-zeroed-after-40", zeroed, bad + ((200,) if fmt == "bmp" else ())))
    noise = data[:16] + _RNG.integers(0, 256, n - 16, dtype=np.uint8).tobytes()
    out.append((f"{fmt}-noise-after-16", noise, bad + (413,)))  # noise in the size fields: a huge image
    # half a file, then the whole one: PNG's CRCs catch it; the JPEG and WebP codecs recover (and warn), BMP
    # has nothing to check: decoded as the codec reads it (documented: 200)
    out.append((f"{fmt}-doubled-header", data[:n // 2] + data, bad + ((200,) if fmt != "png" else ())))
    return out


def cases():
    """Every case of the matrix, in a stable order."""
    files = _files()
    png_img, png_tpl = files["png"]
    out = []

    # ---- corrupt and truncated files, every accepted format, as image (form) and template (JSON)
    for fmt, (image, template) in files.items():
        for name, data, statuses in _file_mutations(fmt, image):
            out.append(Case(f"image-{name}", _form(data, png_tpl), statuses, "image"))
        for name, data, statuses in _file_mutations(fmt, template)[::2]:
            out.append(Case(f"json-template-{name}", _json({"image": _b64(png_img), "template": _b64(data)}),
                            statuses, "template"))
    tiff = _encode(".tiff", _IMAGE)
    for name, data in (("tiff", tiff), ("gif", b"GIF89a" + bytes(40)), ("pdf", b"%PDF-1.7\n" + bytes(40)),
                       ("svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"), ("html", b"<html></html>"),
                       ("exe", b"MZ" + bytes(100)), ("zip", b"PK\x03\x04" + bytes(40)),
                       ("jpeg2000", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(40)), ("avif", bytes(4) + b"ftypavif"),
                       ("pnm", b"P6\n64 48\n255\n" + bytes(64 * 48 * 3))):
        out.append(Case(f"format-{name}", _form(data, png_tpl), (415,), "image"))
    mask_bad = _encode(".png", np.zeros((5, 5), np.uint8))
    out.append(Case("mask-wrong-size", _form(png_img, png_tpl, mask=mask_bad), (422,), "mask"))
    out.append(Case("mask-truncated", _form(png_img, png_tpl, mask=_encode(".png", _TEMPLATE[:, :, 0])[:30]),
                    (400,), "mask"))
    out.append(Case("template-larger-than-image", _form(png_tpl, png_img), (422,), "template"))
    out.append(Case("channel-mismatch", _form(png_img, _encode(".png", _TEMPLATE[:, :, 0])), (422,), "template"))

    # ---- pixel bombs: headers declaring huge images (image and template), refused before decoding
    bombs = [("png-100000x100000", _png_header(100_000, 100_000)), ("png-2^31-1-wide", _png_header(2**31 - 1, 1)),
             ("png-4097x4096", _png_header(4097, 4096)), ("png-65535-square-rgba16", _png_header(65535, 65535, 16, 6)),
             ("jpeg-65500-square", _jpeg_with_size(files["jpeg"][0], 65500, 65500)),
             ("webp-vp8x-16M-square", _webp_vp8x(1 << 24, 1 << 24)), ("webp-vp8x-16384x4096", _webp_vp8x(16384, 4096)),
             ("bmp-2^31-1-wide", _bmp_header(2**31 - 1, 1)), ("bmp-100000-square", _bmp_header(100_000, 100_000)),
             ("bmp-top-down-huge", _bmp_header(50_000, -50_000))]
    for name, data in bombs:
        out.append(Case(f"pixel-bomb-image-{name}", _form(data, png_tpl), (413,), "image"))
    for name, data in bombs[::2]:
        out.append(Case(f"pixel-bomb-template-{name}", _form(png_img, data), (413,), "template"))
    for name, data in (("png-0-wide", _png_header(0, 10)), ("png-0-high", _png_header(10, 0)),
                       ("bmp-0-wide", _bmp_header(0, 10)), ("bmp-negative-wide", _bmp_header(-10, 10))):
        out.append(Case(f"zero-size-{name}", _form(data, png_tpl), (400,), "image"))

    # ---- work-budget bombs: within the pixel limit, tiny files, gigabytes to match
    rgba16 = _png_header(4096, 4096, 16, 6)  # the 130 KB attack, as a 60-byte header
    masked_tpl = _encode(".png", np.dstack([_TEMPLATE, np.full(_TEMPLATE.shape[:2], 255, np.uint8)]))
    out.append(Case("budget-4096-rgba16-masked-template", _form(rgba16, masked_tpl), (413,), "image"))
    out.append(Case("budget-4096-rgba16-mask-part", _form(rgba16, png_tpl, mask=_encode(".png", _TEMPLATE[:, :, 0])),
                    (413,), "image"))
    out.append(Case("budget-4096-gray-unmasked", _form(_png_header(4096, 4096), _encode(".png", _TEMPLATE[:, :, 0])),
                    (413,), "image"))
    gray16 = _png_header(4000, 4000, 16, 0)
    out.append(Case("budget-batch-16-templates", _json({"image": _b64(gray16), "templates": {
        f"t{i}": _b64(_encode(".png", _TEMPLATE[:, :, 0])) for i in range(16)}}, "/v1/match/batch"), (413,), "image"))
    out.append(Case("budget-json-rgb-4096x3000", _json({"image": _b64(_png_header(4096, 3000, 8, 2)),
                                                       "template": _b64(png_tpl)}), (413,), "image"))

    # ---- decompression bombs: little data that inflates far past the header's promise
    bomb = _png_header(64, 64, idat=_deflate_bomb(64 * 65, 64))  # ~65 KB -> 64 MiB (libpng: ~0.2 s of inflating)
    out.append(Case("inflate-bomb-image", _form(bomb, png_tpl), (400,), "image"))
    out.append(Case("inflate-bomb-template", _form(png_img, _png_header(16, 16, idat=_deflate_bomb(16 * 17, 32))),
                    (400, 422), "template"))
    out.append(Case("inflate-bomb-json", _json({"image": _b64(bomb), "template": _b64(png_tpl)}), (400,), "image"))
    out.append(Case("gzip-encoded-body", request("POST", "/v1/match", zlib.compress(b"{}" * 1000),
                                                 "application/json", ["Content-Encoding: gzip"]), (400, 415)))

    # ---- malformed multipart
    body, ctype = _multipart([], [("image", "i.png", png_img), ("template", "t.png", png_tpl)])
    mp = [
        ("no-boundary", request("POST", "/v1/match", body, "multipart/form-data"), (400,)),
        ("wrong-boundary", request("POST", "/v1/match", body, "multipart/form-data; boundary=nothere"), (400,)),
        ("no-closing-boundary", request("POST", "/v1/match", body[:-40], ctype), (400,)),
        ("body-is-garbage", request("POST", "/v1/match", b"\x00\xff" * 500, ctype), (400,)),
        ("empty-body", request("POST", "/v1/match", b"", ctype), (400,)),
        ("boundary-4k-long", request("POST", "/v1/match", body, "multipart/form-data; boundary=" + "b" * 4000),
         (400, 431)),
        ("multipart-mixed", request("POST", "/v1/match", body, ctype.replace("form-data", "mixed")), (415,)),
    ]
    for name, raw, statuses in mp:
        out.append(Case(f"multipart-{name}", raw, statuses))
    b = uuid.uuid4().hex
    nameless = (f"--{b}\r\nContent-Disposition: form-data; filename=\"x.png\"\r\n\r\n").encode() + png_img + \
        f"\r\n--{b}--\r\n".encode()
    out.append(Case("multipart-part-without-name", request("POST", "/v1/match", nameless,
                                                           f"multipart/form-data; boundary={b}"), (400,)))
    for name, fields, files_, statuses, field in (
            ("two-images", [], [("image", "a.png", png_img), ("image", "b.png", png_img),
                                ("template", "t.png", png_tpl)], (400,), "image"),
            ("unknown-part", [], [("image", "a.png", png_img), ("template", "t.png", png_tpl),
                                  ("../../etc/passwd", "p", b"x")], (400,), None),
            ("image-as-plain-field", [("image", _b64(png_img))], [("template", "t.png", png_tpl)], (400,), "image"),
            ("unknown-field", [("methd", "ncc")], [("image", "a.png", png_img), ("template", "t.png", png_tpl)],
             (400,), "methd"),
            ("two-templates-on-match", [], [("image", "a.png", png_img), ("template", "t.png", png_tpl),
                                            ("template", "u.png", png_tpl)], (400,), "template"),
            ("no-template", [], [("image", "a.png", png_img)], (400,), "template"),
            ("no-image", [], [("template", "t.png", png_tpl)], (400,), "image"),
            ("65-parts", [(f"x{i}", "1") for i in range(63)], [("image", "a.png", png_img),
                                                               ("template", "t.png", png_tpl)], (413,), None),
            ("600k-field", [("method", "n" * 600_000)], [("image", "a.png", png_img),
                                                         ("template", "t.png", png_tpl)], (413,), None),
            ("17-templates-batch", [], [("image", "a.png", png_img)] + [("template", f"t{i}.png", png_tpl)
                                                                       for i in range(17)], (400,), "template")):
        body, ctype = _multipart(fields, files_)
        path = "/v1/match/batch" if "batch" in name else "/v1/match"
        out.append(Case(f"multipart-{name}", request("POST", path, body, ctype), statuses, field))

    # ---- malformed JSON
    good = {"image": _b64(png_img), "template": _b64(png_tpl)}
    raw_json = [
        ("empty", b""), ("not-json", b"hello"), ("truncated", json.dumps(good).encode()[:-10]),
        ("top-level-array", b"[1, 2]"), ("top-level-string", b"\"image\""), ("null", b"null"),
        ("deep-nesting", b"[" * 100_000 + b"]" * 100_000), ("deep-objects", b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000),
        ("nan-literal", b"{\"image\": NaN}"), ("invalid-utf8", b"{\"image\": \"\xff\xfe\"}"),
        ("trailing-garbage", json.dumps(good).encode() + b"}}}"),
    ]
    for name, data in raw_json:
        out.append(Case(f"json-{name}", request("POST", "/v1/match", data, "application/json"), (400,)))
    # documented: Python's JSON reader takes UTF-16/32 and a UTF-8 byte order mark (RFC 8259 8.1 allows it)
    for name, data in (("utf16", json.dumps(good).encode("utf-16")), ("bom", b"\xef\xbb\xbf" + json.dumps(good).encode())):
        out.append(Case(f"json-{name}", request("POST", "/v1/match", data, "application/json"), (200, 400)))
    members = [
        ("image-number", {"image": 123, "template": good["template"]}, "image"),
        ("image-null", {"image": None, "template": good["template"]}, "image"),
        ("image-list", {"image": [1, 2], "template": good["template"]}, "image"),
        ("image-object", {"image": {"$ref": "/etc/passwd"}, "template": good["template"]}, "image"),
        ("image-empty-string", {"image": "", "template": good["template"]}, "image"),
        ("image-bad-base64", {"image": "!!!not base64!!!", "template": good["template"]}, "image"),
        ("image-base64-padding", {"image": good["image"][:-3], "template": good["template"]}, "image"),
        ("image-data-url-no-base64", {"image": "data:image/png," + good["image"], "template": good["template"]},
         "image"),
        ("image-file-path", {"image": "/etc/passwd", "template": good["template"]}, "image"),
        ("image-url", {"image": "http://127.0.0.1:1/x.png", "template": good["template"]}, "image"),
        ("unknown-member", good | {"__proto__": {"admin": True}}, "__proto__"),
        ("templates-not-object", {"image": good["image"], "templates": [good["template"]]}, "templates"),
        ("templates-empty", {"image": good["image"], "templates": {}}, "templates"),
        ("templates-17", {"image": good["image"], "templates": {f"t{i}": good["template"] for i in range(17)}},
         "templates"),
        ("label-control-chars", {"image": good["image"], "templates": {"a\x00\n": good["template"]}}, "templates"),
        ("label-too-long", {"image": good["image"], "templates": {"a" * 101: good["template"]}}, "templates"),
    ]
    for name, obj, field in members:
        path = "/v1/match/batch" if "templates" in obj else "/v1/match"
        statuses = (400,) if name != "image-file-path" else (400, 415)
        out.append(Case(f"json-{name}", _json(obj, path), statuses, field))

    # ---- malformed chunked encoding
    chunked = [
        ("bad-size", b"5\r\n{\"a\":\r\nQQ\r\n"), ("size-overflow", b"FFFFFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n"),
        ("negative-size", b"-5\r\nhello\r\n0\r\n\r\n"), ("missing-crlf", b"5\r\nhelloXX0\r\n\r\n"),
        ("cut-short", b"100\r\n{\"image\":"), ("no-final-chunk", b"2\r\n{}\r\n"),
        ("extension-garbage", b"2;\x00\x01=\xff\r\n{}\r\n0\r\n\r\n"),
    ]
    for name, body in chunked:
        out.append(Case(f"chunked-{name}", _chunked("/v1/match", body), (400,)))
    # the 65 MiB chunked JSON (one long string): 413 over MATCHER_MAX_REQUEST_BYTES, not "invalid JSON"
    big = b'{"image": "' + b"A" * (65 << 20) + b'"}'
    body = b"".join(b"%x\r\n" % len(big[i:i + (1 << 20)]) + big[i:i + (1 << 20)] + b"\r\n"
                    for i in range(0, len(big), 1 << 20)) + b"0\r\n\r\n"
    out.append(Case("chunked-65-MiB-json", _chunked("/v1/match", body), (413,)))
    out.append(Case("chunked-and-content-length", _chunked("/v1/match", b"2\r\n{}\r\n0\r\n\r\n",
                                                          extra_headers="Content-Length: 4\r\n"), (400,),
                    problem=False))
    out.append(Case("transfer-encoding-gzip-chunked", _chunked("/v1/match", b"2\r\n{}\r\n0\r\n\r\n").replace(
        b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked"), (400, 501), problem=False))

    # ---- hostile option values (form strings and JSON values)
    form_values = {
        "method": ["NCC ", "TM_CCOEFF_NORMED\x00", "ncc;rm -rf /", "x" * 10_000, "__import__('os')", "6", "-1"],
        "threshold": ["1_0", "nan", "inf", "-inf", "1e999", "0x10", " 0.5", "0.5 ", "2", "+-1", "\u0661",
                      "\uff11"],
        "max_matches": ["0", "-1", "101", "1e3", "1.5", "99999999999999999999999", "all", "\u0663"],
        "max_overlap": ["-0.1", "1.01", "nan", "1e-400x", "½"],
        "region": ["0,0,0,0", "-1,0,10,10", "0,0,10", "0,0,10,10,10", "a,b,c,d", "0,0,100000,100000",
                   "99999999999999999999,0,1,1", "1.5,0,10,10", "0, 0, 10, 10", "\u0660,0,10,10"],
        "subpixel": ["maybe", "TRUE ", "2", "yes\x00"],
        "precision": ["exactly", "FAST", "../fast"],
        "gray": ["nope", "-1"],
        "return": ["heatmap,annotated,everything", "../../etc/passwd", "heatmap\x00"],
    }
    for option, values in form_values.items():
        for value in values:  # (an empty value means "absent" in a form: valid, so none here)
            outside = option == "region" and value in ("0,0,100000,100000", "99999999999999999999,0,1,1")
            statuses = (422,) if outside else (400,)
            field = "region" if statuses == (422,) else option
            out.append(Case(f"form-{option}={value[:20]!r}", _form(png_img, png_tpl, fields=[(option, value)]),
                            statuses, field))
    json_values = {
        "method": [5, None, ["ncc"], {"name": "ncc"}, True],
        "threshold": ["0.5", 10**400, True, [0.5], {"x": 1}, 2.0],
        "max_matches": [0, -5, 1.5, "3", 10**30, True, None],
        "max_overlap": [-1, 2, "0.3", None, [0.3]],
        "region": [[0, 0, 0, 0], [-1, 0, 5, 5], [0, 0, 5], "0,0,5", [0.5, 0, 5, 5], {"x": 0}, [True, 0, 5, 5]],
        "subpixel": ["true", 1, None],
        "gray": ["yes", 0],
        "return": ["heatmap", ["heatmap", "heatmap", 5], [None], {"heatmap": True}],
    }
    for option, values in json_values.items():
        for value in values:
            out.append(Case(f"json-{option}={json.dumps(value)[:20]}", _json(good | {option: value}), (400,), option))

    # ---- wrong methods, media types, paths, traversal
    out += [
        Case("get-match", request("GET", "/v1/match"), (405,)),
        Case("put-match", request("PUT", "/v1/match", b"{}", "application/json"), (405,)),
        Case("delete-match", request("DELETE", "/v1/match"), (405,)),
        Case("text-plain", request("POST", "/v1/match", b"image=1", "text/plain"), (415,)),
        Case("xml", request("POST", "/v1/match", b"<match/>", "application/xml"), (415,)),
        Case("no-content-type", request("POST", "/v1/match", b"{}"), (415,)),
        Case("form-urlencoded", request("POST", "/v1/match", b"image=1&template=2",
                                        "application/x-www-form-urlencoded"), (415,)),
        Case("content-length-too-big", request("POST", "/v1/match", b"{}", "application/json",
                                               ["Content-Length: 999999999999"]).replace(b"Content-Length: 2\r\n", b""),
             (413,)),
    ]
    traversal = ["/../../etc/passwd", "/assets/../../service/config.py", "/assets/%2e%2e/%2e%2e/etc/passwd",
                 "/assets/..%2f..%2fREADME.md", "/v1/samples/../../../etc/passwd", "/samples/..%2f..%2fetc%2fpasswd",
                 "/samples/%2e%2e%2fservice%2fconfig.py", "/assets/index.html%00.png", "/assets/..\\..\\README.md",
                 "/%2e%2e/%2e%2e/etc/shadow", "/static/../../gunicorn.conf.py", "/v1/../openapi.json/../../etc/passwd",
                 "/assets/%252e%252e/%252e%252e/etc/passwd", "/samples/camera.png/../../../../etc/passwd"]
    for path in traversal:
        out.append(Case(f"traversal-{path}", request("GET", path), (400, 404)))
    return out


def send(host, port, raw, timeout=60, patience=5):
    """Send ``raw`` on a new connection and read the whole answer: (status, headers, body).

    A request whose body is cut short leaves the server waiting for the rest:
    after ``patience`` seconds without an answer the connection is half-closed
    (the client is done sending), as a client that gives up would.
    ``status`` is None when the server closed the connection without an answer.
    """
    import socket

    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (e.g. 413 from Content-Length) and closed: read what it said
        chunks = []
        s.settimeout(patience)
        try:
            while True:
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    if chunks or s.gettimeout() == timeout:
                        raise
                    s.shutdown(socket.SHUT_WR)
                    s.settimeout(timeout)
                    continue
                if not data:
                    break
                chunks.append(data)
        except (ConnectionResetError, BrokenPipeError):
            pass
    answer = b"".join(chunks)
    if not answer:
        return None, {}, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return status, headers, body


def _dechunk(body):
    out, pos = [], 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        pos = end + 4 + size
