"""Block statistics of an image for the pyramid's bounds: block means and block sums of squares.

:func:`block_stats` cuts the image into a grid of ``b x b`` blocks (zero past
the image) and returns each block's mean and sum of squares; :func:`pool_stats`
sums them two by two for the next coarser level. 8-bit images are reduced by
area in float32 (exact: their block sums are integers below 2**24), in
cache-sized bands of block rows; others from float64 integral images. The
bounds (:mod:`matcher.search.bounds`) are built on these.
"""

import cv2
import numpy as np

from ..scores.engine import run_parallel

__all__ = ["block_stats", "pool_stats"]

_BAND_PIXELS = 1 << 19  # 8-bit block sums are taken in bands of about this many pixels (cache-sized float32 copies)


def pool_stats(M, A2):
    """The block statistics of blocks twice as large: each ``2 x 2`` group of blocks summed.

    Parameters
    ----------
    M, A2 : ndarray of float64, shape (gy, gx, C)
        Block means and sums of squares for blocks of ``b x b`` (:func:`block_stats`).

    Returns
    -------
    M2, A22 : ndarray of float64, shape ``(ceil(gy / 2), ceil(gx / 2), C)``
        The same for blocks of ``2b x 2b`` (a missing last row or column counts as zeros,
        as blocks past the image do).

    Examples
    --------
    >>> M, A2 = pool_stats(np.arange(4.0).reshape(2, 2, 1), np.ones((2, 2, 1)))
    >>> float(M[0, 0, 0]), float(A2[0, 0, 0])
    (1.5, 4.0)
    """
    gy, gx, C = M.shape
    ey, ex = gy + gy % 2, gx + gx % 2
    out = []
    for a, scale in ((M, 0.25), (A2, 1.0)):
        if (ey, ex) != (gy, gx):
            a = np.pad(a, ((0, ey - gy), (0, ex - gx), (0, 0)))
        out.append(a.reshape(ey // 2, 2, ex // 2, 2, C).sum(axis=(1, 3)) * scale)
    return out[0], out[1]


def block_stats(image, b, gy, gx, centred, parallel=False):
    """Block means ``M`` and block sums of squares ``A2``, ``(gy, gx, C)`` float64, zero past the image.

    For ``ncc`` the image's mean is removed (the scores do not change; the sums
    of squares keep their digits). 8-bit images: sums and sums of squares
    reduced by area in float32 (exact: integers below 2**24 for blocks of up to
    16 x 16), in bands of block rows, with ``parallel`` on the engine's threads
    (never from a task of that pool: it would wait on its own pool); others
    from float64 integral images.
    """
    img = image[:, :, None] if image.ndim == 2 else image
    H, W, C = img.shape
    ys, xs = np.minimum(np.arange(gy + 1) * b, H), np.minimum(np.arange(gx + 1) * b, W)
    if img.dtype == np.uint8 and b <= 16:
        S1, A2 = _eight_bit_sums(img, b, gy, gx, parallel)
        if centred:  # remove the mean on the sums, in float64 (exact: integers times 2**-k)
            n = _pixels_per_block(ys, xs)
            mu = S1.sum(axis=(0, 1)) / (H * W)
            A2 += -2.0 * mu * S1 + n * mu * mu
            S1 -= n * mu
    else:
        f = img.astype(np.float64)
        if centred:
            f -= f.mean(axis=(0, 1))
        S1 = _block_sums(cv2.integral(f, sdepth=cv2.CV_64F), ys, xs)
        A2 = _block_sums(cv2.integral(f * f, sdepth=cv2.CV_64F), ys, xs)
    return S1 / (b * b), A2


def _eight_bit_sums(img, b, gy, gx, parallel):
    """Block sums and sums of squares of an 8-bit ``(H, W, C)`` image (:func:`_area_sums`), in bands of block
    rows when the image is large (float32 copies of a band stay in cache), with ``parallel`` on the engine's
    threads."""
    H = img.shape[0]
    rows = -(-H // b)  # block rows holding some of the image
    bands = min(max(1, img.size // _BAND_PIXELS), rows)
    S1, A2 = np.zeros((gy, gx, img.shape[2])), np.zeros((gy, gx, img.shape[2]))

    def band(k):
        g0, g1 = rows * k // bands, rows * (k + 1) // bands
        part = img[g0 * b : g1 * b]
        n = g1 - g0 if k < bands - 1 else gy - g0  # the last band: the block rows past the image too
        if n <= 0:
            return
        S1[g0 : g0 + n] = _area_sums(part.astype(np.float32), b, n, gx)
        A2[g0 : g0 + n] = _area_sums(cv2.multiply(part, part, dtype=cv2.CV_32F), b, n, gx)

    if parallel and bands > 1:
        run_parallel(band, bands)
    else:
        for k in range(bands):
            band(k)
    return S1, A2


def _block_sums(Z, ys, xs):
    """Sums over blocks whose corners are ``ys x xs``, from an integral image ``Z``: ``(len(ys) - 1, len(xs) - 1, C)``."""
    Z = Z[:, :, None] if Z.ndim == 2 else Z
    Zc = Z[ys][:, xs].astype(np.float64)
    return Zc[1:, 1:] - Zc[:-1, 1:] - Zc[1:, :-1] + Zc[:-1, :-1]


def _area_sums(a, b, gy, gx):
    """Block sums of a float32 image of integers, ``(gy, gx, C)`` float64, zero past the image: full blocks
    by area reduction (exact while a block's sum is an integer below 2**24), the blocks the image's edge
    cuts by numpy."""
    H, W = a.shape[:2]
    a = a.reshape(H, W, -1)
    C = a.shape[2]
    hb, wb = min(H // b, gy), min(W // b, gx)
    ry, rx = min(-(-H // b), gy), min(-(-W // b), gx)  # blocks holding some of the image
    out = np.zeros((gy, gx, C))
    if hb and wb:
        red = cv2.resize(a[: hb * b, : wb * b], (wb, hb), interpolation=cv2.INTER_AREA)
        out[:hb, :wb] = red.reshape(hb, wb, C) * float(b * b)
    if ry > hb:  # the bottom row of blocks, cut by the image's edge (with the corner)
        cols = np.zeros((rx * b, C))
        part = a[hb * b :, : rx * b].astype(np.float64).sum(axis=0)
        cols[: part.shape[0]] = part
        out[hb, :rx] = cols.reshape(rx, b, C).sum(axis=1)
    if rx > wb and hb:  # the right column of blocks
        out[:hb, wb] = a[: hb * b, wb * b :].astype(np.float64).sum(axis=1).reshape(hb, b, C).sum(axis=1)
    return out


def _pixels_per_block(ys, xs):
    """How many image pixels each block holds, ``(gy, gx, 1)``."""
    return (np.diff(ys)[:, None] * np.diff(xs)[None, :]).astype(np.float64)[:, :, None]
