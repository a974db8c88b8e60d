"""Decoding image files into arrays: the I/O edge of matcher.

One public function, :func:`load_image`. The format is sniffed from the magic
bytes (never from a file name) and checked against an allowlist; the size is
read from the header (:mod:`matcher.headers`) and checked against a pixel
limit *before* decoding, so a small file claiming a huge image costs nothing,
and so is a PNG's compressed data against what that size needs; OpenCV
decodes the pixels.
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
from .headers import check_inflation, read_header, sniff, tiff_ifd0

__all__ = ["load_image", "to_gray", "LoadedImage", "FORMATS", "COLORS", "SAMPLE_TYPES", "DEFAULT_MAX_PIXELS"]

FORMATS = ("png", "jpeg", "webp", "bmp", "tiff")
"""The formats :func:`load_image` decodes; its default allowlist."""
COLORS = ("auto", "gray", "color")
SAMPLE_TYPES = ("uint8", "uint16", "int8", "int16", "int32", "uint32", "float32", "float64")
"""The sample types :func:`load_image` returns, as stored: 8- and 16-bit unsigned for every format; TIFF
also holds signed integers, 32-bit integers and floats (microscopy, depth maps, scientific data)."""
_LUMA = (0.299, 0.587, 0.114)
DEFAULT_MAX_PIXELS = 100_000_000
"""Default limit on width x height: 100 megapixels (300 MB as 8-bit RGB)."""

_OPENCV_MAX_PIXELS = 1 << 30  # default of OpenCV's own limit, env OPENCV_IO_MAX_IMAGE_PIXELS


def load_image(source, *, color="auto", max_pixels=DEFAULT_MAX_PIXELS, formats=FORMATS):
    """Decode a PNG, JPEG, WebP, BMP or TIFF image (8- or 16-bit; TIFF also 32-bit and float).

    Parameters
    ----------
    source : str, os.PathLike or bytes-like
        A file path (read with plain Python I/O, so non-ASCII paths work) or the
        encoded data (bytes, bytearray, memoryview; bytes are never a path).
    color : {"auto", "gray", "color"}
        "auto": gray images ``(H, W)``, colour ones ``(H, W, 3)``; "gray": always
        ``(H, W)`` (:func:`to_gray`); "color": always ``(H, W, 3)``. Colour is in
        **RGB** order, not OpenCV's BGR. WebP has no gray mode, so it is always colour.
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
        samples are of a type not in :data:`SAMPLE_TYPES`.
    ImageTooLargeError
        The header declares more than ``max_pixels`` pixels.
    ImageDecodeError
        The data is empty, truncated or corrupt, or a PNG's compressed data
        inflates past what its header needs (:func:`matcher.headers.check_inflation`).

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
    fmt = sniff(data)
    if fmt not in formats:
        raise UnsupportedFormatError(f"unsupported image format {fmt!r} (detected from the magic bytes); "
                                     f"allowed formats: {', '.join(formats)}")
    header = read_header(data)
    width, height = header.width, header.height
    for limit, name in ((max_pixels, "max_pixels"), (_opencv_limit(), "OpenCV's OPENCV_IO_MAX_IMAGE_PIXELS")):
        if width * height > limit:
            raise ImageTooLargeError(f"image is {width}x{height} = {width * height:,} pixels, "
                                     f"over the limit of {limit:,} pixels ({name})")
    if header.problem:
        raise ImageDecodeError(header.problem)
    check_inflation(data, header)
    pixels, mask = _decode(data, fmt)
    if color == "gray" and pixels.ndim == 3:
        pixels = to_gray(pixels)
    elif color == "color" and pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return LoadedImage(pixels, mask, fmt)


def to_gray(pixels):
    """The luma ``0.299 R + 0.587 G + 0.114 B`` of RGB ``pixels`` ``(H, W, 3)``, in their dtype: ``(H, W)``.

    Integers are rounded (OpenCV's ``cvtColor`` for 8- and 16-bit data, which
    this matches), floats are not; gray ``(H, W)`` pixels are returned as they are.

    >>> to_gray(np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)).tolist()
    [[76, 29]]
    >>> to_gray(np.array([[[1.0, 1.0, 1.0], [-2.0, 0.0, 2.0]]])).round(12).tolist()
    [[1.0, -0.37]]
    """
    if pixels.ndim == 2:
        return pixels
    if pixels.dtype in (np.uint8, np.uint16, np.float32):
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    luma = pixels.astype(np.float64) @ np.array(_LUMA)
    if pixels.dtype.kind == "f":
        return luma.astype(pixels.dtype, copy=False)
    info = np.iinfo(pixels.dtype)
    return np.clip(np.rint(luma), info.min, info.max).astype(pixels.dtype)


def _read(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    raise TypeError("source must be a path (str or os.PathLike) or bytes-like (bytes, bytearray, "
                    f"memoryview), got {type(source).__name__}")


def _opencv_limit():
    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", _OPENCV_MAX_PIXELS))
    except ValueError:
        return _OPENCV_MAX_PIXELS


def _decode(data, fmt):
    """Decode with IMREAD_UNCHANGED (keeps alpha and 16 bits) -> (gray or RGB, alpha or None)."""
    if fmt == "tiff":
        # libtiff premultiplies "unassociated" alpha (ExtraSamples = 2) when OpenCV reads
        # 8-bit TIFF through its RGBA interface; relabel it "unspecified" to get the stored values.
        order, entries = tiff_ifd0(data)
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
    if img.dtype.name not in SAMPLE_TYPES:
        raise UnsupportedFormatError(f"unsupported {fmt.upper()} sample type {img.dtype}; "
                                     f"allowed sample types: {', '.join(SAMPLE_TYPES)}")
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
                orientation = tiff_ifd0(block)[1].get(0x0112, (1, 1))[1]
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
