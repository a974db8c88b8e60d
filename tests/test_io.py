"""Tests for matcher.io.load_image and for the sample data in samples/."""

import io
import json
import os
import pathlib
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import matcher.io as mio
from matcher.errors import ImageDecodeError, ImageTooLargeError, MatcherError, UnsupportedFormatError
from matcher.headers import read_header, sniff, tiff_ifd0
from matcher.io import COLORS, DEFAULT_MAX_PIXELS, FORMATS, LoadedImage, load_image

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "samples"
RNG = np.random.default_rng(20240601)
H, W = 23, 37  # odd, unequal sizes catch swapped axes


def rand(shape, dtype=np.uint8):
    return RNG.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def enc(ext, bgr, params=()):
    """Encode with OpenCV (which takes BGR(A) order)."""
    ok, buf = cv2.imencode(ext, bgr, list(params))
    assert ok
    return buf.tobytes()


def pil(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def png_chunk(ctype, body):
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def to_rgb(bgr):
    return bgr if bgr.ndim == 2 else bgr[:, :, 2::-1]


@pytest.fixture
def no_decode(monkeypatch):
    """Fail the test if OpenCV is asked to decode anything."""
    def boom(*args, **kwargs):
        raise AssertionError("OpenCV decoder called")
    monkeypatch.setattr(mio.cv2, "imdecodeWithMetadata", boom)
    monkeypatch.setattr(mio.cv2, "imdecode", boom)


def test_module_constants():
    assert FORMATS == ("png", "jpeg", "webp", "bmp", "tiff")
    assert COLORS == ("auto", "gray", "color")
    assert DEFAULT_MAX_PIXELS == 100_000_000


# --- round trips ---------------------------------------------------------------

LOSSLESS = [  # (extension, encoder params, dtype, channels)
    (ext, params, dtype, ch)
    for ext, params, dtypes, chans in [
        (".png", (), (np.uint8, np.uint16), (1, 3, 4)),
        (".tiff", (), (np.uint8, np.uint16), (1, 3, 4)),
        (".bmp", (), (np.uint8,), (1, 3, 4)),
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), (np.uint8,), (3, 4)),  # quality > 100: lossless
    ]
    for dtype in dtypes
    for ch in chans
]


@pytest.mark.parametrize("ext,params,dtype,ch", LOSSLESS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_lossless_round_trip(ext, params, dtype, ch):
    bgr = rand((H, W) if ch == 1 else (H, W, ch), dtype)
    if ch == 4:
        bgr[:, :, 3] |= 1  # no fully transparent pixel: lossless WebP may rewrite their colour
    img = load_image(enc(ext, bgr, params))
    assert img.format == {".tiff": "tiff", ".png": "png", ".bmp": "bmp", ".webp": "webp"}[ext]
    assert img.dtype == np.dtype(dtype).name and img.pixels.dtype == dtype
    assert (img.height, img.width) == (H, W)
    np.testing.assert_array_equal(img.pixels, to_rgb(bgr[:, :, :3] if ch == 4 else bgr))
    if ch == 4:
        np.testing.assert_array_equal(img.mask, bgr[:, :, 3])
        assert img.mask.dtype == dtype
    else:
        assert img.mask is None
    assert img.channels == (1 if ch == 1 else 3)
    assert img.pixels.flags.c_contiguous


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3, 4]),
       st.sampled_from([np.uint8, np.uint16]), st.sampled_from([".png", ".tiff"]), st.integers(0, 2**32 - 1))
def test_round_trip_property(h, w, ch, dtype, ext, seed):
    bgr = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, (h, w, ch), dtype=dtype)
    img = load_image(enc(ext, bgr if ch > 1 else bgr[:, :, 0]))
    np.testing.assert_array_equal(img.pixels, bgr[:, :, 0] if ch == 1 else bgr[:, :, 2::-1])
    assert (img.mask is None) == (ch != 4)


@pytest.mark.parametrize("ext", [".png", ".tiff", ".bmp", ".webp", ".jpg"])
def test_rgb_order_with_pure_red(ext):
    red_bgr = np.zeros((16, 16, 3), np.uint8)
    red_bgr[:, :, 2] = 255
    params = (cv2.IMWRITE_WEBP_QUALITY, 101) if ext == ".webp" else ()
    px = load_image(enc(ext, red_bgr, params)).pixels
    assert px.shape == (16, 16, 3)
    if ext == ".jpg":  # lossy: red dominates
        assert (px[:, :, 0] > 240).all() and (px[:, :, 1:] < 15).all()
    else:
        assert (px == [255, 0, 0]).all()


def test_jpeg_round_trip_is_close():
    x = np.linspace(0, 255, W)[None, :] + np.linspace(0, 60, H)[:, None]
    gray = x.clip(0, 255).astype(np.uint8)
    img = load_image(enc(".jpg", gray, (cv2.IMWRITE_JPEG_QUALITY, 95)))
    assert img.format == "jpeg" and img.pixels.shape == (H, W) and img.dtype == "uint8"
    assert np.abs(img.pixels.astype(int) - gray).mean() < 2
    bgr = np.dstack([gray, 255 - gray, gray // 2])
    rgb = load_image(enc(".jpg", bgr, (cv2.IMWRITE_JPEG_QUALITY, 95))).pixels
    assert np.abs(rgb.astype(int) - bgr[:, :, ::-1]).mean() < 3


# --- alpha and colour ----------------------------------------------------------

def test_opaque_alpha_still_gives_a_mask():
    bgra = rand((H, W, 4))
    bgra[:, :, 3] = 255
    img = load_image(enc(".png", bgra))
    assert img.mask is not None and (img.mask == 255).all() and img.channels == 3


def test_gray_plus_alpha_png_stays_gray():
    la = rand((H, W, 2))
    img = load_image(pil(Image.fromarray(la, "LA"), "PNG"))
    assert img.pixels.shape == (H, W)  # OpenCV decodes it as BGRA; auto keeps it 2-D
    np.testing.assert_array_equal(img.pixels, la[:, :, 0])
    np.testing.assert_array_equal(img.mask, la[:, :, 1])


def test_palette_png_with_transparency_gives_mask():
    idx = (np.arange(H * W) % 7).reshape(H, W).astype(np.uint8)
    p = Image.fromarray(idx, "P")
    p.putpalette([v for i in range(7) for v in (i * 30, 255 - i * 30, i * 5)])
    img = load_image(pil(p, "PNG", transparency=3))
    assert img.pixels.shape == (H, W, 3)
    np.testing.assert_array_equal(img.mask, np.where(idx == 3, 0, 255))
    np.testing.assert_array_equal(img.pixels[0, 1], [30, 225, 5])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_color_conversions(dtype):
    bgr = rand((H, W, 3), dtype)
    data = enc(".png", bgr)
    gray = load_image(data, color="gray").pixels
    assert gray.shape == (H, W) and gray.dtype == dtype
    np.testing.assert_array_equal(gray, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    assert load_image(data, color="color").pixels.shape == (H, W, 3)
    g = rand((H, W), dtype)
    col = load_image(enc(".png", g), color="color")
    assert col.pixels.shape == (H, W, 3) and col.channels == 3 and col.pixels.flags.c_contiguous
    for c in range(3):
        np.testing.assert_array_equal(col.pixels[:, :, c], g)
    np.testing.assert_array_equal(load_image(enc(".png", g), color="gray").pixels, g)


def test_gray_uses_bt601_luma():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]]], np.uint8)
    gray = load_image(enc(".png", rgb[:, :, ::-1]), color="gray").pixels
    assert gray.tolist() == [[76, 150, 29, 10]]  # round(255 * (0.299, 0.587, 0.114))


def test_webp_gray_is_colour_in_auto_and_exact_in_gray():
    g = rand((H, W))
    data = enc(".webp", g, (cv2.IMWRITE_WEBP_QUALITY, 101))
    assert load_image(data).channels == 3
    np.testing.assert_array_equal(load_image(data, color="gray").pixels, g)


def test_mask_kept_with_color_conversion():
    bgra = rand((H, W, 4))
    img = load_image(enc(".png", bgra), color="gray")
    assert img.pixels.shape == (H, W)
    np.testing.assert_array_equal(img.mask, bgra[:, :, 3])


def test_bad_color_option():
    with pytest.raises(MatcherError, match=r"color must be one of \('auto', 'gray', 'color'\), got 'rgb'"):
        load_image(enc(".png", rand((4, 4))), color="rgb")


# --- EXIF orientation ----------------------------------------------------------

def marked_rgb():
    """An asymmetric RGB image: random, with an 8x8 pure red block at the top-left."""
    a = rand((24, 40, 3))
    a[:8, :8] = (255, 0, 0)
    return a


@pytest.mark.parametrize("orientation", [3, 6])
def test_jpeg_exif_orientation(orientation):
    data = pil(Image.fromarray(marked_rgb()), "JPEG", exif=exif(orientation), quality=95)
    px = load_image(data).pixels
    if orientation == 6:  # rotate 90 degrees clockwise: 40 wide x 24 high becomes 24 wide x 40 high
        assert px.shape == (40, 24, 3)
        block = px[1:7, -7:-1]  # the top-left block is now at the top-right
    else:  # rotate 180 degrees: the block is at the bottom-right
        assert px.shape == (24, 40, 3)
        block = px[-7:-1, -7:-1]
    assert (block[:, :, 0] > 200).all() and (block[:, :, 1:] < 60).all()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_matches_opencv_default_decode(fmt, orientation):
    """UNCHANGED-flag decoding + our orientation == OpenCV's IMREAD_COLOR (which applies EXIF)."""
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = pil(Image.fromarray(marked_rgb()), fmt, exif=exif(orientation), **kw)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    np.testing.assert_array_equal(load_image(data).pixels, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_exif_orientation_matches_pillow(fmt, orientation):
    """An independent oracle: Pillow's exif_transpose, pixels and alpha."""
    rgba = np.dstack([marked_rgb(), rand((24, 40)) | 1])
    kw = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
    data = pil(Image.fromarray(rgba, "RGBA"), fmt, exif=exif(orientation), **kw)
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    img = load_image(data)
    np.testing.assert_array_equal(img.pixels, want[:, :, :3])
    np.testing.assert_array_equal(img.mask, want[:, :, 3])


def test_webp_exif_chunk_with_exif_prefix_is_read():
    """Some writers start the WebP EXIF chunk with "Exif\\0\\0" (as in JPEG); OpenCV's own
    orientation handling skips such a block, load_image reads it (as Pillow does)."""
    data = pil(Image.fromarray(marked_rgb()), "WEBP", exif=exif(6), lossless=True)
    i = data.find(b"EXIF")
    n = struct.unpack_from("<I", data, i + 4)[0]
    payload = b"Exif\x00\x00" + data[i + 8: i + 8 + n]
    chunk = b"EXIF" + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
    data = data[:i] + chunk + data[i + 8 + n + n % 2:]
    data = data[:4] + struct.pack("<I", len(data) - 8) + data[8:]
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    assert want.shape == (40, 24, 3)
    np.testing.assert_array_equal(load_image(data).pixels, want)


# --- size limits ---------------------------------------------------------------

def bomb_png(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + png_chunk(b"IEND", b""))


def test_decompression_bomb_png_refused_from_header(no_decode):
    data = bomb_png(100_000, 100_000)
    assert len(data) < 100
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError,
                       match=r"100000x100000 = 10,000,000,000 pixels, over the limit of 100,000,000 pixels"):
        load_image(data)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 1_000_000


def test_opencv_limit_also_enforced(no_decode, monkeypatch):
    with pytest.raises(ImageTooLargeError, match=r"1,073,741,824 pixels \(OpenCV's OPENCV_IO_MAX_IMAGE_PIXELS\)"):
        load_image(bomb_png(100_000, 100_000), max_pixels=10**11)
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(ImageTooLargeError, match=r"10x11 = 110 pixels, over the limit of 100 pixels \(OpenCV"):
        load_image(enc(".png", rand((11, 10))))


def tiff_big_endian(gray):
    """A minimal big-endian ("MM") uncompressed gray TIFF; width as LONG, height as SHORT."""
    h, w = gray.shape
    entries = [(256, 4, w), (257, 3, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8 + 2 + 9 * 12 + 4),
               (277, 3, 1), (278, 3, h), (279, 4, w * h)]
    ifd = struct.pack(">H", len(entries)) + b"".join(
        struct.pack(">HHIH2x" if t == 3 else ">HHII", tag, t, 1, v) for tag, t, v in entries) + b"\0\0\0\0"
    return b"MM\x00*" + struct.pack(">I", 8) + ifd + gray.tobytes()


def bmp_core(bgr):
    """An OS/2 BMP (12-byte BITMAPCOREHEADER, 16-bit sizes), 24-bit, bottom-up."""
    h, w, _ = bgr.shape
    stride = (w * 3 + 3) // 4 * 4
    rows = b"".join(row.tobytes().ljust(stride, b"\0") for row in bgr[::-1])
    return b"BM" + struct.pack("<IHHI", 26 + len(rows), 0, 0, 26) + struct.pack("<IHHHH", 12, w, h, 1, 24) + rows


def bmp_top_down(bgr):
    data = bytearray(enc(".bmp", bgr[::-1]))
    struct.pack_into("<i", data, 22, -bgr.shape[0])  # negative height: rows stored top to bottom
    return bytes(data)


def header_cases():
    bgr, bgra, g16 = rand((H, W, 3)), rand((H, W, 4)), rand((H, W), np.uint16)
    rgb_pil = Image.fromarray(bgr[:, :, ::-1])
    return {
        "png-gray16": enc(".png", g16),
        "png-rgba": enc(".png", bgra),
        "jpeg-baseline": enc(".jpg", bgr),
        "jpeg-progressive": pil(rgb_pil, "JPEG", progressive=True),
        "jpeg-exif": pil(rgb_pil, "JPEG", exif=exif(1)),
        "webp-VP8": enc(".webp", bgr, (cv2.IMWRITE_WEBP_QUALITY, 90)),
        "webp-VP8L": enc(".webp", bgr, (cv2.IMWRITE_WEBP_QUALITY, 101)),
        "webp-VP8X": enc(".webp", bgra, (cv2.IMWRITE_WEBP_QUALITY, 90)),
        "bmp-24": enc(".bmp", bgr),
        "bmp-8": enc(".bmp", bgr[:, :, 0]),
        "bmp-32": enc(".bmp", bgra),
        "bmp-top-down": bmp_top_down(bgr),
        "bmp-os2-core": bmp_core(bgr),
        "tiff-II": enc(".tiff", g16),
        "tiff-MM": tiff_big_endian(bgr[:, :, 0]),
        "tiff-pillow": pil(rgb_pil, "TIFF"),
    }


@pytest.mark.parametrize("case", list(header_cases()))
def test_header_size_equals_decoded_size(case):
    data = header_cases()[case]
    fmt = case.split("-")[0]
    if fmt == "webp":
        assert data[12:16].strip() == case.split("-")[1].encode()
    header = read_header(data)
    assert (header.width, header.height, header.problem, header.format) == (W, H, None, fmt)
    img = load_image(data)
    assert (img.width, img.height, img.format) == (W, H, fmt)
    # channels and sample size: what the decoder returns (alpha included), never fewer
    decoded = img.channels + (img.mask is not None)
    assert header.bytes_per_sample == img.pixels.itemsize
    assert decoded <= header.channels <= max(decoded, 3) + (img.mask is not None)


@pytest.mark.parametrize("case", list(header_cases()))
def test_max_pixels_checked_from_header_before_decoding(case, no_decode):
    with pytest.raises(ImageTooLargeError, match=rf"^image is {W}x{H} = {W * H} pixels, over the limit of {W * H - 1} "):
        load_image(header_cases()[case], max_pixels=W * H - 1)


@pytest.mark.parametrize("case", ["png-rgba", "tiff-MM", "bmp-os2-core"])
def test_max_pixels_boundary_is_inclusive(case):
    assert load_image(header_cases()[case], max_pixels=W * H).width == W


def test_decoded_content_of_handmade_files():
    bgr = rand((H, W, 3))
    np.testing.assert_array_equal(load_image(tiff_big_endian(bgr[:, :, 0])).pixels, bgr[:, :, 0])
    np.testing.assert_array_equal(load_image(bmp_top_down(bgr)).pixels, bgr[:, :, ::-1])


@pytest.mark.parametrize("bad,exc,msg", [
    (1.5e6, TypeError, "max_pixels must be an int, got float"),
    (True, TypeError, "max_pixels must be an int, got bool"),
    (0, MatcherError, "max_pixels must be positive, got 0"),
])
def test_bad_max_pixels(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        load_image(enc(".png", rand((4, 4))), max_pixels=bad)


# --- formats -------------------------------------------------------------------

ALLOWED = r"allowed formats: png, jpeg, webp, bmp, tiff"


@pytest.mark.parametrize("data,name", [
    (b"GIF89a" + bytes(40), "gif"),
    (pil(Image.fromarray(rand((8, 8))), "GIF"), "gif"),
    (bytes(range(1, 200)), "unknown"),
    (b"\x89PNX" + bytes(60), "unknown"),
    (enc(".ppm", rand((8, 8, 3))), "pnm"),
    (enc(".pfm", rand((8, 8, 3)).astype(np.float32)), "pnm"),
    (enc(".hdr", rand((8, 8, 3)).astype(np.float32)), "hdr"),
    (enc(".ras", rand((8, 8, 3))), "sunraster"),
    (enc(".avif", rand((8, 8, 3))), "avif"),
    (enc(".jp2", rand((64, 64, 3))), "jpeg2000"),
    (b"II+\x00" + bytes(40), "bigtiff"),
])
def test_unsupported_formats_refused_by_magic(data, name, no_decode):
    with pytest.raises(UnsupportedFormatError, match=rf"unsupported image format '{name}'.*; {ALLOWED}$"):
        load_image(data)


def test_formats_allowlist():
    png = enc(".png", rand((4, 4)))
    with pytest.raises(UnsupportedFormatError, match=r"format 'png' .*allowed formats: jpeg, tiff$"):
        load_image(png, formats=("jpeg", "tiff"))
    assert load_image(png, formats=["png"]).format == "png"
    with pytest.raises(MatcherError, match=r"formats must be a subset of .*unknown \['gif'\]"):
        load_image(png, formats=("png", "gif"))
    with pytest.raises(TypeError, match="formats must be a sequence"):
        load_image(png, formats="png")


def test_format_from_magic_bytes_not_file_name(tmp_path):
    (tmp_path / "photo.png").write_bytes(enc(".jpg", rand((8, 8))))
    (tmp_path / "photo.jpg").write_bytes(enc(".bmp", rand((8, 8))))
    assert load_image(tmp_path / "photo.png").format == "jpeg"
    assert load_image(str(tmp_path / "photo.jpg")).format == "bmp"


# --- TIFF's other sample types: signed, 32-bit, float ------------------------------

TIFF_TYPES = [np.int8, np.int16, np.int32, np.uint32, np.float32, np.float64]


def samples(shape, dtype):
    """Values spanning the type, negatives included where it has them (floats: a wide, offset range)."""
    if np.dtype(dtype).kind == "f":
        return (RNG.normal(0, 1e3, shape) - 250.5).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("ch", [1, 3, 4])
@pytest.mark.parametrize("dtype", TIFF_TYPES, ids=lambda d: np.dtype(d).name)
def test_tiff_sample_types_round_trip(dtype, ch):
    bgr = samples((H, W) if ch == 1 else (H, W, ch), dtype)
    if ch == 4 and np.dtype(dtype).kind == "f":
        bgr[:, :, 3] = RNG.random((H, W))  # float alpha: weights in [0, 1]
    img = load_image(enc(".tiff", bgr))
    assert img.dtype == np.dtype(dtype).name and img.pixels.dtype == dtype
    np.testing.assert_array_equal(img.pixels, to_rgb(bgr[:, :, :3] if ch == 4 else bgr))
    if ch == 4:
        np.testing.assert_array_equal(img.mask, bgr[:, :, 3])
    else:
        assert img.mask is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
def test_gray_is_the_luma_in_the_images_dtype(dtype):
    bgr = samples((H, W, 3), dtype) if dtype not in (np.uint8, np.uint16) else rand((H, W, 3), dtype)
    gray = load_image(enc(".tiff", bgr), color="gray").pixels
    r, g, b = (bgr[:, :, k].astype(np.float64) for k in (2, 1, 0))
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    assert gray.dtype == dtype and gray.shape == (H, W)
    err = np.abs(gray.astype(np.float64) - luma).max()
    scale = np.abs(bgr.astype(np.float64)).max()
    if np.dtype(dtype).kind == "f":  # float32: OpenCV's single-precision sum; float64: ours
        assert err <= (1e-6 if dtype == np.float32 else 1e-13) * scale
    else:  # rounded (OpenCV's 16-bit weights are fixed-point, 2**-15: off by up to 3e-5 of the range)
        assert err <= 0.5 + 3e-5 * scale


def test_float_alpha_is_a_weight_mask_and_opaque_means_one():
    bgra = np.dstack([samples((H, W, 3), np.float32), np.ones((H, W), np.float32)])
    assert load_image(enc(".tiff", bgra)).matching_mask is None  # fully opaque: masks nothing
    bgra[3:9, 4:11, 3] = 0.25
    mask = load_image(enc(".tiff", bgra)).matching_mask
    assert mask.dtype == np.float32 and mask.min() == 0.25 and mask.max() == 1.0


def test_finding_in_float_and_signed_tiffs():
    from matcher import find

    for dtype in (np.float32, np.int16, np.float64):
        scene = cv2.GaussianBlur(samples((90, 120), np.float64), (0, 0), 3.0).astype(dtype)
        image = load_image(enc(".tiff", scene))
        template = load_image(enc(".tiff", np.ascontiguousarray(scene[30:55, 61:92])))
        best = find(image, template)[0]
        assert (best.x, best.y) == (61, 30) and best.score == pytest.approx(1.0, abs=1e-9)


def test_other_sample_types_are_refused(monkeypatch):
    data = enc(".tiff", np.ones((4, 4), np.uint8))
    monkeypatch.setattr(mio.cv2, "imdecodeWithMetadata",
                        lambda *a, **k: (np.ones((4, 4), np.int64), [], []))  # a type no format stores
    with pytest.raises(UnsupportedFormatError, match=r"unsupported TIFF sample type int64; allowed sample types: "
                                                     r"uint8, uint16, int8, int16, int32, uint32, float32, float64$"):
        load_image(data)


# --- corrupt and truncated data --------------------------------------------------

def test_truncated_png():
    data = enc(".png", rand((H, W, 3)))
    assert data.endswith(png_chunk(b"IEND", b""))
    for cut in (len(data) - 12, len(data) - 1, len(data) // 2, 40):
        with pytest.raises(ImageDecodeError, match="^truncated PNG: the data ends before the IEND chunk$"):
            load_image(data[:cut])
    with pytest.raises(ImageDecodeError, match="^truncated or corrupt PNG header$"):
        load_image(data[:20])


def test_png_first_chunk_must_be_ihdr():
    data = enc(".png", rand((4, 4)))
    bad = data[:12] + b"IHDX" + data[16:]
    with pytest.raises(ImageDecodeError, match="corrupt PNG: the first chunk is not a valid IHDR"):
        load_image(bad)


def test_corrupt_png_body():
    data = bytearray(enc(".png", rand((H, W, 3))))
    idat = data.find(b"IDAT")
    data[idat + 10: idat + 30] = bytes(20)
    with pytest.raises(ImageDecodeError, match="^could not decode the PNG data"):
        load_image(bytes(data))


def corrupt_png_bodies():
    """Damaged IDAT data that makes libpng report a zlib error (and, unsilenced, print it on fd 2)."""
    data = enc(".png", rand((H, W, 3)))
    idat = data.find(b"IDAT")
    zeroed = bytearray(data)
    zeroed[idat + 10: idat + 30] = bytes(20)
    flipped = data[:idat + 40] + bytes(b ^ 0x5A for b in data[idat + 40: idat + 240]) + data[idat + 240:]
    return {"zeroed": bytes(zeroed), "flipped": flipped}


@pytest.mark.parametrize("case", ["zeroed", "flipped"])
def test_corrupt_png_says_one_thing_and_prints_nothing(capfd, case):
    data = corrupt_png_bodies()[case]
    capfd.readouterr()
    with pytest.raises(ImageDecodeError) as info:
        load_image(data)
    out, err = capfd.readouterr()
    assert out == "" and err == "", err  # libpng's own "libpng error: ..." no longer reaches fd 2
    message = str(info.value)
    assert message.startswith("could not decode the PNG data (corrupt or truncated): libpng error: ")
    assert "\n" not in message
    # what libpng said is the reason given (unsilenced, it would be on fd 2: checked in a child process)
    code = ("import sys, cv2, numpy as np; cv2.imdecode(np.frombuffer(sys.stdin.buffer.read(), np.uint8), "
            "cv2.IMREAD_UNCHANGED)")
    child = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60)
    assert message.endswith(child.stderr.decode().strip().splitlines()[-1])


def test_decoding_leaves_other_output_on_fd2_alone(capfd):
    """Only the codecs' lines are kept back: anything else written meanwhile still reaches fd 2."""
    with mio._decoder_messages() as said:
        os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\nsomeone else's line\n")
    assert said == ["libpng warning: iCCP: known incorrect sRGB profile"]
    assert capfd.readouterr().err == "someone else's line\n"
    assert load_image(enc(".png", rand((H, W)))).width == W  # fd 2 works after a decode
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"


def test_truncated_jpeg():
    data = enc(".jpg", rand((H, W, 3)))
    for cut in (len(data) - 2, len(data) // 2):
        with pytest.raises(ImageDecodeError, match="^truncated JPEG: no end-of-image marker$"):
            load_image(data[:cut])
    with pytest.raises(ImageDecodeError, match="^truncated or corrupt JPEG header$"):
        load_image(data[:100])


def test_jpeg_exif_thumbnail_does_not_hide_truncation():
    """An EXIF thumbnail holds its own end-of-image marker, before the main scan."""
    thumb = enc(".jpg", rand((8, 8, 3)))
    app1 = b"Exif\x00\x00" + exif(1)[6:] + thumb  # thumbnail bytes inside the APP1 segment
    data = enc(".jpg", rand((H, W, 3)))
    data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]
    assert load_image(data).width == W
    with pytest.raises(ImageDecodeError, match="^truncated JPEG"):
        load_image(data[:-2])


def test_truncated_webp():
    data = enc(".webp", rand((H, W, 3)), (cv2.IMWRITE_WEBP_QUALITY, 101))
    with pytest.raises(ImageDecodeError, match=rf"^truncated WebP: the header declares {len(data)} bytes, got {len(data) - 1}$"):
        load_image(data[:-1])
    with pytest.raises(ImageDecodeError, match="^truncated or corrupt WEBP header$"):
        load_image(data[:20])


@pytest.mark.parametrize("data", [enc(".bmp", rand((H, W, 3))), pil(Image.fromarray(rand((H, W, 3))), "TIFF")],
                         ids=["bmp", "tiff"])
def test_truncated_bmp_tiff_body(data):
    name = sniff(data).upper()
    with pytest.raises(ImageDecodeError, match=rf"^could not decode the {name} data \(corrupt or truncated\)(: .+)?$"):
        load_image(data[: len(data) - 50])


def test_tiff_with_ifd_at_the_end_truncated():
    data = enc(".tiff", rand((H, W, 3)))  # OpenCV writes the IFD after the pixels
    with pytest.raises(ImageDecodeError, match="^truncated or corrupt TIFF header$"):
        load_image(data[: len(data) - 50])


def test_tiff_unassociated_alpha_is_not_premultiplied():
    rgba = rand((H, W, 4))
    data = pil(Image.fromarray(rgba, "RGBA"), "TIFF")  # Pillow writes ExtraSamples = 2 (unassociated)
    assert tiff_ifd0(data)[1][338][:2] == (1, 2)
    img = load_image(data)
    np.testing.assert_array_equal(img.pixels, rgba[:, :, :3])
    np.testing.assert_array_equal(img.mask, rgba[:, :, 3])


def test_empty_and_zero_size():
    with pytest.raises(ImageDecodeError, match=r"^the image data is empty \(0 bytes\)$"):
        load_image(b"")
    with pytest.raises(ImageDecodeError, match="^corrupt PNG header: it declares a 0x5 image$"):
        load_image(bomb_png(0, 5))


# --- sources -------------------------------------------------------------------

@pytest.mark.parametrize("source", [None, 42, 3.0, ["a.png"], np.zeros((4, 4), np.uint8), io.BytesIO(b"x")])
def test_wrong_source_type(source):
    with pytest.raises(TypeError, match=r"source must be a path \(str or os.PathLike\) or bytes-like"):
        load_image(source)


def test_bytes_like_sources():
    bgr = rand((5, 6, 3))
    data = enc(".png", bgr)
    for source in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8).data):
        np.testing.assert_array_equal(load_image(source).pixels, bgr[:, :, ::-1])


def test_paths_including_non_ascii(tmp_path):
    bgr = rand((5, 6, 3))
    path = tmp_path / "ünïcødé 画像 dir" / "фото.png"
    path.parent.mkdir()
    path.write_bytes(enc(".png", bgr))
    for source in (path, str(path)):
        np.testing.assert_array_equal(load_image(source).pixels, bgr[:, :, ::-1])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def test_loaded_image_metadata():
    img = load_image(enc(".png", rand((H, W, 4), np.uint16)))
    assert isinstance(img, LoadedImage)
    d = img.to_dict()
    assert d == {"format": "png", "width": W, "height": H, "channels": 3, "dtype": "uint16", "has_mask": True}
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(AttributeError):
        img.format = "jpeg"


# --- samples/ ------------------------------------------------------------------

TRUTH = json.loads((SAMPLES / "truth.json").read_text())
SAMPLE_FILES = sorted(p.name for p in SAMPLES.iterdir() if p.suffix == ".png")


@pytest.mark.parametrize("entry", [e for e in TRUTH if "angle" in e], ids=lambda e: e["template"])
def test_turned_template_is_the_image_seen_through_its_pose(entry):
    """Truth by construction: the template's pixels are the image sampled at the pose's points."""
    image = load_image(SAMPLES / entry["image"]).pixels.astype(np.float64)
    template = load_image(SAMPLES / entry["template"]).pixels.astype(np.float64)
    h, w = entry["height"], entry["width"]
    assert template.shape == (h, w)
    a = entry["scale"] * np.cos(np.radians(entry["angle"]))
    b = entry["scale"] * np.sin(np.radians(entry["angle"]))
    cx, cy = entry["center"]["x"], entry["center"]["y"]
    for ty, tx in [(0, 0), (h // 2, w // 2), (h - 1, w - 1), (5, w - 7)]:
        dx, dy = tx - (w - 1) / 2, ty - (h - 1) / 2
        x, y = cx + a * dx + b * dy, cy - b * dx + a * dy  # counter-clockwise as displayed
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        near = image[y0:y0 + 2, x0:x0 + 2]
        assert near.min() - 12 <= template[ty, tx] <= near.max() + 12, (ty, tx)


def test_samples_present_and_small():
    named = {e["image"] for e in TRUTH} | {e["template"] for e in TRUTH}
    assert len(named) == 9 and named <= set(SAMPLE_FILES)
    assert sum(p.stat().st_size for p in SAMPLES.iterdir()) < 2_000_000
    readme = (SAMPLES / "README.md").read_text()
    for name in SAMPLE_FILES + ["truth.json", "worked_examples.json"]:
        assert f"`{name}`" in readme


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_sample_loads(name):
    img = load_image(SAMPLES / name)
    assert img.format == "png" and img.dtype == "uint8" and min(img.width, img.height) >= 40
    assert (img.mask is not None) == (name == "coffee_spoon.png")


@pytest.mark.parametrize("entry", [e for e in TRUTH if "x" in e], ids=lambda e: e["template"])
def test_truth_template_equals_image_crop(entry):
    image = load_image(SAMPLES / entry["image"])
    template = load_image(SAMPLES / entry["template"])
    x, y, w, h = entry["x"], entry["y"], entry["width"], entry["height"]
    assert (template.width, template.height) == (w, h)
    assert x + w <= image.width and y + h <= image.height
    np.testing.assert_array_equal(template.pixels, image.pixels[y:y + h, x:x + w])
    assert entry["method"] == "ncc"
    if entry["mask"] == "alpha":
        values = set(np.unique(template.mask).tolist())
        assert values == {0, 255} and 0.2 < (template.mask > 0).mean() < 0.8
    else:
        assert entry["mask"] is None and template.mask is None


def test_coin_matches_cover_24_distinct_coins():
    (coins,) = [e for e in TRUTH if e["image"] == "coins.png"]
    matches = coins["matches"]
    assert len(matches) == 24
    assert {"x": coins["x"], "y": coins["y"], "score": 1.0} in matches
    image = load_image(SAMPLES / "coins.png")
    for i, m in enumerate(matches):
        assert 0 <= m["x"] <= image.width - coins["width"] and 0 <= m["y"] <= image.height - coins["height"]
        for other in matches[i + 1:]:  # no two boxes on the same coin
            assert max(abs(m["x"] - other["x"]), abs(m["y"] - other["y"])) > coins["width"] // 2


def test_worked_examples_by_definition():
    """The numbers in worked_examples.json, recomputed from the definitions with numpy."""
    doc = json.loads((SAMPLES / "worked_examples.json").read_text())
    examples = {e["name"]: e for e in doc["examples"]}
    assert sorted({e["example"] for e in doc["examples"]}) == [1, 2, 3, 4]
    for e in doc["examples"]:
        img, tpl = np.array(e["image"], float), np.array(e["template"], float)
        if img.ndim == 1:
            img, tpl = img[None, :], tpl[None, :]
        if e["mode"] == "convolve":
            tpl = tpl[::-1, ::-1]
        win = np.lib.stride_tricks.sliding_window_view(img, tpl.shape)
        if e["method"] == "ssd":
            s = ((win - tpl) ** 2).sum(axis=(2, 3))
        elif e["method"] == "ccorr":
            s = (win * tpl).sum(axis=(2, 3))
        else:
            d, t = win - win.mean(axis=(2, 3), keepdims=True), tpl - tpl.mean()
            with np.errstate(invalid="ignore", divide="ignore"):
                s = (d * t).sum(axis=(2, 3)) / np.sqrt((d ** 2).sum(axis=(2, 3)) * (t ** 2).sum())
        best = e["best"]
        assert s[best.get("y", 0), best["x"]] == pytest.approx(e["best_score"], abs=doc["tolerance"])
        if e["scores"] is not None:
            np.testing.assert_allclose(s.reshape(np.shape(e["scores"])), e["scores"], rtol=0, atol=doc["tolerance"])
    assert examples["1d_convolve"]["scores"][2] == 2.9
    assert examples["1d_convolve"]["scores"] == examples["1d_correlate_flipped"]["scores"]
    assert examples["2x2_ssd"]["best_score"] == 1
