"""What an image file promises, read from its header without decoding it.

:func:`read_header` sniffs the format from the magic bytes and reads the
size, the channels the decoder will produce and the bytes per sample, so that
a caller can refuse a file (too many pixels, too much memory or work:
:mod:`matcher.budget`) before paying for its decoding. :func:`check_inflation`
refuses compressed data that inflates to more than the header's image needs
(a PNG decompression bomb: a small image followed by gigabytes of zeros that
the decoder would inflate and throw away). :func:`matcher.load_image` calls both.

>>> import cv2, numpy as np
>>> data = cv2.imencode(".png", np.zeros((2, 3, 4), np.uint16))[1].tobytes()
>>> read_header(data)
ImageHeader(format='png', width=3, height=2, channels=4, bytes_per_sample=2, problem=None)
"""

import struct
import zlib
from dataclasses import dataclass

from .errors import ImageDecodeError, UnsupportedFormatError

__all__ = ["ImageHeader", "read_header", "sniff", "check_inflation", "tiff_ifd0", "PARSED_FORMATS",
           "INFLATION_SLACK"]

PARSED_FORMATS = ("png", "jpeg", "webp", "bmp", "tiff")
"""The formats whose headers :func:`read_header` reads."""
INFLATION_SLACK = 1 << 16
"""Bytes a PNG's image data may inflate to beyond what its header needs (interlacing, encoder padding)."""

_MAGIC = (  # formats outside PARSED_FORMATS are sniffed only to name them in errors
    (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"BM", "bmp"), (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"), (b"II+\x00", "bigtiff"), (b"MM\x00+", "bigtiff"), (b"GIF87a", "gif"),
    (b"GIF89a", "gif"), (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"), (b"\xffO\xffQ", "jpeg2000"),
    (b"v/1\x01", "exr"), (b"#?RADIANCE", "hdr"), (b"#?RGBE", "hdr"), (b"\x59\xa6\x6a\x95", "sunraster"),
)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels decoded (palette: RGB)
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # IHDR colour type -> samples per pixel stored (palette: an index)
_INFLATE_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header promises.

    ``channels`` counts what the decoder produces, alpha included (an upper
    bound where the header cannot tell: a palette PNG with transparency
    counts 4, a BMP 3 or 4); ``bytes_per_sample`` is 1 or 2 (more for TIFF
    sample types the decoder then refuses); ``problem`` is the message of a
    truncation seen without decoding, or None.
    """

    format: str
    width: int
    height: int
    channels: int
    bytes_per_sample: int
    problem: "str | None" = None

    @property
    def pixels(self):
        """``width * height``."""
        return self.width * self.height

    @property
    def decoded_bytes(self):
        """Bytes of the decoded image as the decoder returns it (all channels)."""
        return self.pixels * self.channels * self.bytes_per_sample


def sniff(data):
    """The format named by the magic bytes (``"png"``, ..., ``"gif"``, ``"unknown"``).

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n..."), sniff(b"GIF89a..."), sniff(b"hello")
    ('png', 'gif', 'unknown')
    """
    data = bytes(data[:16])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        return "avif" if data[8:12] in (b"avif", b"avis") else "heif/mp4"
    if len(data) > 2 and data[:1] == b"P" and data[1:2] in b"1234567Ff":
        return "pnm"
    return "unknown"


def read_header(data):
    """Read the header of an image file (bytes) without decoding its pixels.

    Returns
    -------
    ImageHeader

    Raises
    ------
    UnsupportedFormatError
        The format is not one of :data:`PARSED_FORMATS`.
    ImageDecodeError
        The header is cut short or corrupt, or declares an empty image.
    """
    fmt = sniff(data)
    if fmt not in _PARSERS:
        raise UnsupportedFormatError(f"unsupported image format {fmt!r} (detected from the magic bytes)")
    try:
        width, height, channels, nbytes, problem = _PARSERS[fmt](data)
    except (struct.error, IndexError):
        raise ImageDecodeError(f"truncated or corrupt {fmt.upper()} header") from None
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"corrupt {fmt.upper()} header: it declares a {width}x{height} image")
    return ImageHeader(fmt, width, height, channels, nbytes, problem)


def check_inflation(data, header):
    """Refuse a PNG whose compressed image data inflates to more than its header's image needs.

    The decoder inflates every byte of the image data, even past the last
    row, so 15 MiB of compressed zeros after a 64 x 64 image would cost
    gigabytes of inflating. Here the data is inflated in 1 MiB pieces that
    are counted and dropped, and the work stops as soon as the count passes
    what the header needs (plus :data:`INFLATION_SLACK`): the cost is bounded
    by the image's own size. Data too small to inflate past that (deflate
    expands at most 1032 times) is not inflated at all. Other formats: no check
    (their decoders stop at the declared size).

    Raises
    ------
    ImageDecodeError
        The data would inflate past what the header promises.
    """
    if header.format != "png":
        return
    bits = data[24]
    row = (header.width * _PNG_SAMPLES.get(data[25], 4) * bits + 7) // 8 + 1  # a filter byte per row
    needed = header.height * row + (8 * (header.height + 8) if data[28] else 0)  # Adam7: 7 passes' filter bytes
    limit = needed + INFLATION_SLACK
    pieces, total, pos = [], 0, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            pieces.append((pos + 8, min(pos + 8 + length, len(data))))
            total += length
        pos += 12 + length
    if total * 1032 <= limit:
        return
    inflater, produced = zlib.decompressobj(), 0
    for start, end in pieces:
        for at in range(start, end, _INFLATE_CHUNK):
            chunk = data[at:min(at + _INFLATE_CHUNK, end)]
            while chunk and not inflater.eof:
                try:
                    produced += len(inflater.decompress(chunk, _INFLATE_CHUNK))
                except zlib.error:
                    return  # corrupt data: the decoder reports it
                if produced > limit:
                    raise ImageDecodeError(
                        f"PNG image data inflates to more than the {needed:,} bytes its "
                        f"{header.width}x{header.height} header needs (a decompression bomb?)")
                chunk = inflater.unconsumed_tail
            if inflater.eof:
                return


def tiff_ifd0(buf):
    """Byte order and the SHORT/LONG entries of a TIFF structure's first IFD:
    ``(order, {tag: (count, first value, offset of the value field)})``.

    Raises ``struct.error`` or ``IndexError`` when the structure is cut short.
    """
    order = "<" if buf[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", buf, 4)[0]
    entries = {}
    for pos in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from(order + "H", buf, ifd)[0], 12):
        tag, typ, count = struct.unpack_from(order + "HHI", buf, pos)
        if typ in (3, 4):  # SHORT, LONG
            entries[tag] = (count, struct.unpack_from(order + "HI"[typ - 3], buf, pos + 8)[0], pos + 8)
    return order, entries


# Parsers: data -> (width, height, channels, bytes per sample, problem); problem is None or the
# message of a truncation seen without decoding. struct.error / IndexError: the header is cut short.

def _png(data):
    length, ctype, width, height, bits, colour = struct.unpack_from(">I4sIIBB", data, 8)
    if ctype != b"IHDR" or length != 13:
        raise ImageDecodeError("corrupt PNG: the first chunk is not a valid IHDR")
    channels = _PNG_CHANNELS.get(colour, 4)
    pos, problem = 8, "truncated PNG: the data ends before the IEND chunk"
    while pos + 12 <= len(data):  # walk the chunks (their lengths only) to a complete IEND
        length, kind = struct.unpack_from(">I4s", data, pos)
        pos += 12 + length
        if kind == b"tRNS" and channels in (1, 3):  # transparency: the decoder adds an alpha channel
            channels += 1
        if kind == b"IEND" and pos <= len(data):
            problem = None
            break
    return width, height, channels, 2 if bits == 16 else 1, problem


def _jpeg(data):
    pos, size = 2, None
    while True:
        if data[pos] != 0xFF:
            raise ImageDecodeError(f"corrupt JPEG: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        elif marker == 0xDA:  # start of scan; EOI must follow it (not just an EXIF thumbnail's)
            if size is None:
                raise ImageDecodeError("corrupt JPEG: no SOF marker before the scan data")
            complete = data.rfind(b"\xff\xd9") > pos
            height, width, bits, components = size
            return (width, height, max(components, 1), 2 if bits > 8 else 1,
                    None if complete else "truncated JPEG: no end-of-image marker")
        else:
            if marker in _JPEG_SOF and size is None:
                bits, height, width, components = struct.unpack_from(">BHHB", data, pos + 4)
                size = (height, width, bits, components)
            pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]


def _webp(data):
    if len(data) < 30:
        raise struct.error("short WebP header")
    riff_size, chunk = struct.unpack_from("<I4x4s", data, 4)
    if chunk == b"VP8X":  # extended: canvas size, 24 bits each, minus one; flags say alpha
        width, height = (1 + int.from_bytes(data[i:i + 3], "little") for i in (24, 27))
        channels = 4 if data[20] & 0x10 else 3
    elif chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14 bits each, minus one, then alpha_is_used
        bits = struct.unpack_from("<I", data, 21)[0]
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        channels = 4 if bits >> 28 & 1 else 3
    elif chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: 14 bits each, no alpha
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", data, 26))
        channels = 3
    else:
        raise ImageDecodeError(f"corrupt WebP: unknown or damaged first chunk {chunk!r}")
    if len(data) < 8 + riff_size:
        return width, height, channels, 1, f"truncated WebP: the header declares {8 + riff_size} bytes, got {len(data)}"
    return width, height, channels, 1, None


def _bmp(data):
    if struct.unpack_from("<I", data, 14)[0] == 12:  # OS/2 core header: unsigned 16-bit
        width, height, bits = struct.unpack_from("<HH2xH", data, 18)
    else:  # signed 32-bit; a negative height means rows stored top-down
        width, height, bits = struct.unpack_from("<ii2xH", data, 18)
    return width, abs(height), 4 if bits == 32 else 3, 1, None


def _tiff(data):
    order, entries = tiff_ifd0(data)
    if 256 not in entries or 257 not in entries:
        raise ImageDecodeError("corrupt TIFF: the first IFD has no ImageWidth/ImageLength")
    samples = entries.get(277, (1, 1))[1]
    count, bits, _ = entries.get(258, (1, 8, 0))
    if count > 2:  # one SHORT per sample, stored elsewhere: the value field is their offset
        bits = struct.unpack_from(order + "H", data, bits)[0]
    return entries[256][1], entries[257][1], max(samples, 1), max(1, (bits + 7) // 8), None


_PARSERS = {"png": _png, "jpeg": _jpeg, "webp": _webp, "bmp": _bmp, "tiff": _tiff}
