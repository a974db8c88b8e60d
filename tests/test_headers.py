"""matcher.headers: what a header promises (channels, bytes per sample) and the PNG decompression-bomb check."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

import matcher.io as mio
from matcher import ImageDecodeError, UnsupportedFormatError, load_image
from matcher.headers import INFLATION_SLACK, check_inflation, read_header

RNG = np.random.default_rng(3)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_idat(width, height, idat, *, bits=8, colour=0, interlace=0):
    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zeros_stream(rows_bytes, extra):
    """A zlib stream of ``rows_bytes`` zero bytes (the image) then ``extra`` more (the bomb)."""
    z = zlib.compressobj(9)
    parts = [z.compress(b"\0" * rows_bytes)]
    block = b"\0" * (1 << 24)
    for _ in range(extra // len(block)):
        parts.append(z.compress(block))
    return b"".join(parts) + z.flush()


@pytest.fixture
def no_decode(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("OpenCV decoder called")
    monkeypatch.setattr(mio.cv2, "imdecodeWithMetadata", boom)


def test_a_png_decompression_bomb_is_refused_before_decoding(no_decode):
    data = png_with_idat(64, 64, zeros_stream(64 * 65, 32 << 20))  # ~32 KB that inflate to 32 MiB
    assert len(data) < 40_000
    with pytest.raises(ImageDecodeError, match=r"inflates to more than the 4,160 bytes its 64x64 header needs"):
        load_image(data)


def test_idat_split_over_many_chunks_is_counted_whole(no_decode):
    stream = zeros_stream(64 * 65, 16 << 20)
    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + b"".join(chunk(b"IDAT", stream[i:i + 1000]) for i in range(0, len(stream), 1000))
            + chunk(b"IEND", b""))
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(data)


def test_exactly_what_the_header_needs_loads():
    data = png_with_idat(64, 64, zeros_stream(64 * 65, 0))
    assert load_image(data).pixels.shape == (64, 64)
    slack = png_with_idat(64, 64, zlib.compress(b"\0" * (64 * 65 + INFLATION_SLACK)))
    check_inflation(slack, read_header(slack))  # within the slack: not refused here


@pytest.mark.parametrize("level", [0, 1, 9])
def test_real_pngs_pass_whatever_their_compression(level):
    rgba16 = RNG.integers(0, 65536, (50, 70, 4), dtype=np.uint16)
    data = cv2.imencode(".png", rgba16, [cv2.IMWRITE_PNG_COMPRESSION, level])[1].tobytes()
    img = load_image(data)
    assert img.pixels.shape == (50, 70, 3) and img.mask is not None


def test_corrupt_compressed_data_is_left_to_the_decoder():
    data = png_with_idat(64, 64, b"\x78\x9c" + b"\xff" * 5000)
    check_inflation(data, read_header(data))  # no verdict here
    with pytest.raises(ImageDecodeError, match="could not decode the PNG data"):
        load_image(data)


def test_header_layouts():
    def png(a, **kw):
        return cv2.imencode(".png", a)[1].tobytes()

    cases = {
        "gray8": (png(np.zeros((3, 5), np.uint8)), ("png", 5, 3, 1, 1)),
        "gray16": (png(np.zeros((3, 5), np.uint16)), ("png", 5, 3, 1, 2)),
        "rgba16": (png(np.zeros((3, 5, 4), np.uint16)), ("png", 5, 3, 4, 2)),
        "jpeg": (cv2.imencode(".jpg", np.zeros((3, 5, 3), np.uint8))[1].tobytes(), ("jpeg", 5, 3, 3, 1)),
        "webp": (cv2.imencode(".webp", np.zeros((3, 5, 3), np.uint8))[1].tobytes(), ("webp", 5, 3, 3, 1)),
        "bmp32": (cv2.imencode(".bmp", np.zeros((3, 5, 4), np.uint8))[1].tobytes(), ("bmp", 5, 3, 4, 1)),
    }
    for name, (data, expected) in cases.items():
        h = read_header(data)
        assert (h.format, h.width, h.height, h.channels, h.bytes_per_sample) == expected, name
    assert read_header(cases["rgba16"][0]).decoded_bytes == 5 * 3 * 4 * 2


def test_palette_with_transparency_counts_an_alpha_channel():
    import io

    im = Image.new("P", (4, 4))
    im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=0)
    header = read_header(buf.getvalue())
    assert header.channels == 4
    assert load_image(buf.getvalue()).mask is not None


def test_unknown_formats_and_cut_headers():
    with pytest.raises(UnsupportedFormatError, match="'gif'"):
        read_header(b"GIF89a" + b"\0" * 20)
    with pytest.raises(ImageDecodeError, match="truncated or corrupt PNG header"):
        read_header(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0")
