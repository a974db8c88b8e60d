"""Decoding image files into arrays: the I/O edge of matcher.

One public function, :func:`load_image`. The format is sniffed from the magic
bytes (never from a file name) and checked against an allowlist; the size is
read from the header and checked against a pixel limit *before* decoding, so a
small file claiming a huge image costs nothing; OpenCV decodes the pixels.
"""

import contextlib
import os
import struct
import tempfile
import threading

import cv2
import numpy as np

from .scores.inputs import check_choice
from .image import LoadedImage
from .errors import ImageDecodeError, ImageTooLargeError, MatcherError, UnsupportedFormatError

__all__ = ["load_image", "LoadedImage", "FORMATS", "COLORS", "DEFAULT_MAX_PIXELS"]

FORMATS = ("png", "jpeg", "webp", "bmp", "tiff")
"""The formats :func:`load_image` decodes; its default allowlist."""
COLORS = ("auto", "gray", "color")
DEFAULT_MAX_PIXELS = 100_000_000
"""Default limit on width x height: 100 megapixels (300 MB as 8-bit RGB)."""

_OPENCV_MAX_PIXELS = 1 << 30  # default of OpenCV's own limit, env OPENCV_IO_MAX_IMAGE_PIXELS
_MAGIC = (  # formats outside FORMATS are sniffed only to name them in the error
    (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"BM", "bmp"), (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"), (b"II+\x00", "bigtiff"), (b"MM\x00+", "bigtiff"), (b"GIF87a", "gif"),
    (b"GIF89a", "gif"), (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"), (b"\xffO\xffQ", "jpeg2000"),
    (b"v/1\x01", "exr"), (b"#?RADIANCE", "hdr"), (b"#?RGBE", "hdr"), (b"\x59\xa6\x6a\x95", "sunraster"),
)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def load_image(source, *, color="auto", max_pixels=DEFAULT_MAX_PIXELS, formats=FORMATS):
    """Decode a PNG, JPEG, WebP, BMP or TIFF image (8- or 16-bit).

    Parameters
    ----------
    source : str, os.PathLike or bytes-like
        A file path (read with plain Python I/O, so non-ASCII paths work) or the
        encoded data (bytes, bytearray, memoryview; bytes are never a path).
    color : {"auto", "gray", "color"}
        "auto": gray images ``(H, W)``, colour ones ``(H, W, 3)``; "gray": always
        ``(H, W)`` (luma ``0.299 R + 0.587 G + 0.114 B``, rounded, as OpenCV's
        ``cvtColor``); "color": always ``(H, W, 3)``. Colour is in **RGB** order,
        not OpenCV's BGR. WebP has no gray mode, so it is always colour.
    max_pixels : int
        Largest accepted ``width * height``, read from the header before
        decoding. OpenCV's own limit (env ``OPENCV_IO_MAX_IMAGE_PIXELS``,
        default ``2**30``) is checked the same way.
    formats : sequence of str
        The allowed formats, a subset of :data:`FORMATS`.

    Returns
    -------
    LoadedImage
        ``mask`` is the alpha channel whenever the decoded image has one (even
        if fully opaque), as stored (0 = transparent), else None. Any EXIF (or
        TIFF) orientation has been applied to pixels and mask.

    Raises
    ------
    TypeError
        ``source`` is neither a path nor bytes-like.
    FileNotFoundError, OSError
        The file cannot be read (as raised by :func:`open`).
    UnsupportedFormatError
        The format (sniffed from the magic bytes) is not in ``formats``, or the
        samples are not 8/16-bit unsigned integers.
    ImageTooLargeError
        The header declares more than ``max_pixels`` pixels.
    ImageDecodeError
        The data is empty, truncated or corrupt.

    Examples
    --------
    >>> import cv2, numpy as np
    >>> bgr = np.full((2, 3, 3), (255, 0, 0), np.uint8)      # OpenCV order: blue
    >>> img = load_image(cv2.imencode(".png", bgr)[1].tobytes())
    >>> img.format, img.width, img.height, img.channels, img.dtype, img.mask
    ('png', 3, 2, 3, 'uint8', None)
    >>> img.pixels[0, 0].tolist()                             # RGB order
    [0, 0, 255]
    """
    check_choice("color", color, COLORS)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise TypeError(f"max_pixels must be an int, got {type(max_pixels).__name__}")
    if max_pixels < 1:
        raise MatcherError(f"max_pixels must be positive, got {max_pixels}")
    if isinstance(formats, str) or not all(isinstance(f, str) for f in formats):
        raise TypeError(f"formats must be a sequence of format names, got {formats!r}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise MatcherError(f"formats must be a subset of {FORMATS}, got unknown {unknown}")

    data = _read(source)
    if not data:
        raise ImageDecodeError("the image data is empty (0 bytes)")
    fmt = _sniff(data)
    if fmt not in formats:
        raise UnsupportedFormatError(f"unsupported image format {fmt!r} (detected from the magic bytes); "
                                     f"allowed formats: {', '.join(formats)}")
    try:
        width, height, problem = _HEADERS[fmt](data)
    except (struct.error, IndexError):
        raise ImageDecodeError(f"truncated or corrupt {fmt.upper()} header") from None
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"corrupt {fmt.upper()} header: it declares a {width}x{height} image")
    for limit, name in ((max_pixels, "max_pixels"), (_opencv_limit(), "OpenCV's OPENCV_IO_MAX_IMAGE_PIXELS")):
        if width * height > limit:
            raise ImageTooLargeError(f"image is {width}x{height} = {width * height:,} pixels, "
                                     f"over the limit of {limit:,} pixels ({name})")
    if problem:
        raise ImageDecodeError(problem)
    pixels, mask = _decode(data, fmt)
    if color == "gray" and pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    elif color == "color" and pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return LoadedImage(pixels, mask, fmt)


def _read(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    raise TypeError("source must be a path (str or os.PathLike) or bytes-like (bytes, bytearray, "
                    f"memoryview), got {type(source).__name__}")


def _sniff(data):
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


def _opencv_limit():
    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", _OPENCV_MAX_PIXELS))
    except ValueError:
        return _OPENCV_MAX_PIXELS


# Header parsers: data -> (width, height, problem); problem is None or the message of a
# truncation seen without decoding. struct.error / IndexError mean the header is cut short.

def _png(data):
    length, ctype, width, height = struct.unpack_from(">I4sII", data, 8)
    if ctype != b"IHDR" or length != 13:
        raise ImageDecodeError("corrupt PNG: the first chunk is not a valid IHDR")
    pos = 8
    while pos + 12 <= len(data):  # walk the chunks (their lengths only) to a complete IEND
        length, ctype = struct.unpack_from(">I4s", data, pos)
        pos += 12 + length
        if ctype == b"IEND" and pos <= len(data):
            return width, height, None
    return width, height, "truncated PNG: the data ends before the IEND chunk"


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
            return size[1], size[0], None if complete else "truncated JPEG: no end-of-image marker"
        else:
            if marker in _JPEG_SOF and size is None:
                size = struct.unpack_from(">HH", data, pos + 5)  # height, width
            pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]


def _webp(data):
    if len(data) < 30:
        raise struct.error("short WebP header")
    riff_size, chunk = struct.unpack_from("<I4x4s", data, 4)
    if chunk == b"VP8X":  # extended: canvas size, 24 bits each, minus one
        width, height = (1 + int.from_bytes(data[i:i + 3], "little") for i in (24, 27))
    elif chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14 bits each, minus one
        bits = struct.unpack_from("<I", data, 21)[0]
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: 14 bits each
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", data, 26))
    else:
        raise ImageDecodeError(f"corrupt WebP: unknown or damaged first chunk {chunk!r}")
    if len(data) < 8 + riff_size:
        return width, height, f"truncated WebP: the header declares {8 + riff_size} bytes, got {len(data)}"
    return width, height, None


def _bmp(data):
    if struct.unpack_from("<I", data, 14)[0] == 12:  # OS/2 core header: unsigned 16-bit
        width, height = struct.unpack_from("<HH", data, 18)
    else:  # signed 32-bit; a negative height means rows stored top-down
        width, height = struct.unpack_from("<ii", data, 18)
    return width, abs(height), None


def _tiff_ifd0(buf):
    """Byte order and the SHORT/LONG entries of a TIFF structure's first IFD:
    {tag: (count, first value, offset of the value field)}."""
    order = "<" if buf[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", buf, 4)[0]
    entries = {}
    for pos in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from(order + "H", buf, ifd)[0], 12):
        tag, typ, count = struct.unpack_from(order + "HHI", buf, pos)
        if typ in (3, 4):  # SHORT, LONG
            entries[tag] = (count, struct.unpack_from(order + "HI"[typ - 3], buf, pos + 8)[0], pos + 8)
    return order, entries


def _tiff(data):
    entries = _tiff_ifd0(data)[1]
    if 256 not in entries or 257 not in entries:
        raise ImageDecodeError("corrupt TIFF: the first IFD has no ImageWidth/ImageLength")
    return entries[256][1], entries[257][1], None


_HEADERS = {"png": _png, "jpeg": _jpeg, "webp": _webp, "bmp": _bmp, "tiff": _tiff}


def _decode(data, fmt):
    """Decode with IMREAD_UNCHANGED (keeps alpha and 16 bits) -> (gray or RGB, alpha or None)."""
    if fmt == "tiff":
        # libtiff premultiplies "unassociated" alpha (ExtraSamples = 2) when OpenCV reads
        # 8-bit TIFF through its RGBA interface; relabel it "unspecified" to get the stored values.
        order, entries = _tiff_ifd0(data)
        if entries.get(338, (0, 0))[:2] == (1, 2):
            data = bytearray(data)
            struct.pack_into(order + "H", data, entries[338][2], 0)
    with _decoder_messages() as said:
        try:
            img, types, meta = cv2.imdecodeWithMetadata(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            img = None
    if img is None or img.size == 0:
        reason = f": {said[-1]}" if said else ""
        raise ImageDecodeError(f"could not decode the {fmt.upper()} data (corrupt or truncated){reason}") from None
    if img.dtype not in (np.uint8, np.uint16):
        raise UnsupportedFormatError(f"unsupported {fmt.upper()} sample type {img.dtype}: "
                                     "only 8- and 16-bit unsigned images are supported")
    mask = None
    if img.ndim == 3 and img.shape[2] in (1, 2):  # gray, gray + alpha
        img, mask = img[:, :, 0], (img[:, :, 1] if img.shape[2] == 2 else None)
    elif img.ndim == 3:
        if img.shape[2] not in (3, 4):
            raise UnsupportedFormatError(f"unsupported {fmt.upper()} image with {img.shape[2]} channels")
        mask = img[:, :, 3] if img.shape[2] == 4 else None
        gray_png = fmt == "png" and data[25] in (0, 4)  # IHDR colour type gray (+ alpha): OpenCV gives BGRA
        img = img[:, :, 0] if gray_png else img[:, :, 2::-1]  # BGR(A) -> RGB
    # IMREAD_UNCHANGED skips the EXIF orientation that OpenCV's other flags apply; apply it
    # here from the EXIF block OpenCV read. OpenCV's TIFF decoder applies its Orientation tag itself.
    orientation = 1
    for kind, block in zip(types, meta):
        if kind == cv2.IMAGE_METADATA_EXIF and fmt != "tiff":
            block = bytes(block.ravel())
            block = block[6:] if block.startswith(b"Exif\x00\x00") else block
            try:
                orientation = _tiff_ifd0(block)[1].get(0x0112, (1, 1))[1]
            except (struct.error, IndexError):
                pass  # unreadable EXIF is ignored, as OpenCV does
    img = np.ascontiguousarray(_orient(img, orientation))
    return img, (None if mask is None else np.ascontiguousarray(_orient(mask, orientation)))


_FD2_LOCK = threading.Lock()
_DECODER_PREFIXES = ("libpng ", "Corrupt JPEG", "Premature end of JPEG", "Invalid JPEG", "Unsupported JPEG",
                     "Bogus ", "TIFF", "[ WARN:", "[ERROR:", "imgcodecs", "OpenCV(")


@contextlib.contextmanager
def _decoder_messages():
    """Keep what the codecs (libpng, libjpeg, libtiff, OpenCV's log) print on file descriptor 2 off
    the terminal while decoding: yield a list that receives their lines, for the error message.

    The C libraries write to fd 2 directly, so ``sys.stderr`` cannot catch them: fd 2 is pointed
    at a temporary file for the duration (one decoder at a time, under a lock) and restored.
    Lines that are not a codec's (another thread's output meanwhile) are written back to fd 2.
    """
    said = []
    with _FD2_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (a daemon without stderr): nothing to protect
            yield said
            return
        try:
            with tempfile.TemporaryFile() as capture:
                os.dup2(capture.fileno(), 2)
                try:
                    yield said
                finally:
                    os.dup2(saved, 2)
                capture.seek(0)
                others = []
                for line in capture.read().decode("utf-8", "replace").splitlines():
                    if line.strip():
                        (said if line.lstrip().startswith(_DECODER_PREFIXES) else others).append(line.strip())
                if others:
                    os.write(2, ("\n".join(others) + "\n").encode())
        finally:
            os.close(saved)


def _orient(a, orientation):
    """Apply EXIF orientation 1-8 to an (H, W[, C]) array, as OpenCV does."""
    if orientation in (5, 6, 7, 8):
        a = a.swapaxes(0, 1)
    if orientation in (2, 3, 6, 7):
        a = a[:, ::-1]
    if orientation in (3, 4, 7, 8):
        a = a[::-1]
    return a
