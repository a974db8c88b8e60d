"""Upper bounds on the full-resolution score over cells of ``b x b`` positions, from ``b x b`` block sums.

The pyramid search (:mod:`matcher.search.pyramid`) scores at full resolution
only the cells whose bound reaches the answer; this module proves that the
others cannot. The bound holds for every window of the cell, whatever its
offset in the cell, so no position is left to luck.

**The identity.** Cut the image into a grid of ``b x b`` blocks; ``M`` is the
block means, ``V = I - M`` (spread over its block) the detail the blocks
remove. All windows ``p = b q + r`` (``0 <= r < b``) of cell ``q`` lie in the
region ``E_q`` of ``nb = ceil(h / b) + 1`` blocks starting at block
``q``. With ``T^r`` the (centred) template placed at offset ``r`` in ``E_q``
and ``S^r`` its block sums,

    <T, W_p> = <T^r, M> + <T^r, V> = <S^r, M_q> + <(1 - P) T^r, V_q>

(``P``: block means; ``V`` sums to 0 in each block). ``S^r`` is the bilinear
spread ``L^r`` of the template's own block sums ``t = S^0`` plus a remainder
``e^r``, and ``<L^r, M_q>`` is the bilinear interpolation of the coarse
correlation ``C = t * M`` between ``C(q)`` and its 3 neighbours below and to
the right. Hence, by Cauchy-Schwarz on the two remainders,

    <T, W_p> <= max(C(q), C(q + (0,1)), C(q + (1,0)), C(q + (1,1)))
                + eps ||M_q - mean||_{E_q} + eta ||V||_{E_q},

``eps = max_r ||e^r||`` and ``eta = max_r ||(1 - P) T^r||`` (template only;
``sum e^r = 0`` when the template is centred, so ``M`` may be centred on
``E_q``). The window's norm is at least that of the ``(h//b - 1) x (w//b - 1)``
blocks every window of the cell contains (the mean minimises the sum of
squares), so dividing gives a bound on ``ncc`` and ``ccorr_normed``; for
``ssd_normed = x + 1/x - 2 ccorr_normed`` (``x = ||W|| / ||T||``, which lies
between the core's and ``E_q``'s norms over ``||T||``) a lower bound follows.
Each channel is bounded separately and the sums added.

Everything is ``O(H W)`` (two block reductions of the image) plus one coarse
correlation of ``(H/b) x (W/b)`` with ``ceil(h/b) x ceil(w/b)``. The block
sums of 8-bit images are exact in float32 (``b <= 16``); others are reduced in
float64. The coarse correlation is float32 (OpenCV): :data:`ROUNDING` times
``sum|t| max|M|`` is added for its rounding.

References
----------
W. Li and E. Salari, "Successive elimination algorithm for motion estimation", IEEE TIP 4(1), 1995.
L. Di Stefano and S. Mattoccia, "Fast template matching using bounded partial correlation", MVA 13, 2003.
S. Mattoccia, F. Tombari, L. Di Stefano, "Fast full-search equivalent template matching by enhanced
bounded correlation", IEEE TIP 17(4), 2008.
W. Ouyang, F. Tombari, S. Mattoccia, L. Di Stefano, W.-K. Cham, "Performance evaluation of full search
equivalent pattern matching algorithms", IEEE TPAMI 34(1), 2012.
"""

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["TemplateTerms", "template_terms", "cell_bounds", "ROUNDING", "BOUNDED_METHODS"]

ROUNDING = 1e-5
"""Relative rounding allowance of the float32 coarse correlation (``sum|t| max|M|`` times this is added)."""
BOUNDED_METHODS = ("ncc", "ccorr_normed", "ssd_normed")
"""Methods :func:`cell_bounds` bounds."""


@dataclass(frozen=True)
class TemplateTerms:
    """The template's side of the bound for block size ``b`` (arrays have a trailing channel axis).

    ``t``: block sums (float32, ``ceil(h/b) x ceil(w/b) x C``); ``eps``, ``eta``:
    per channel, the largest norms of the remainders over the ``b**2`` offsets;
    ``norm2``: the template's (centred, for ``ncc``) energy per channel;
    ``nb``: blocks per side of the region ``E_q``; ``core``: blocks per side
    every window of a cell contains; ``centred``: ``ncc`` (means removed).
    """

    b: int
    shape: tuple
    t: np.ndarray
    eps: np.ndarray
    eta: np.ndarray
    norm2: np.ndarray
    nb: tuple
    core: tuple
    centred: bool


def template_terms(template, b, centred):
    """:class:`TemplateTerms` of ``template`` (``(h, w)`` or ``(h, w, C)``) for blocks of ``b x b``.

    Examples
    --------
    A template constant on its blocks has no remainder ``e^r``: its block sums
    move bilinearly with the offset.

    >>> blocky = np.kron(np.arange(16.0).reshape(4, 4), np.ones((2, 2)))
    >>> terms = template_terms(blocky, 2, True)
    >>> terms.t.shape, terms.nb, terms.core, float(terms.eps[0])
    ((4, 4, 1), (5, 5), (3, 3), 0.0)
    """
    T = np.asarray(template, np.float64)
    T = T[:, :, None] if T.ndim == 2 else T
    if centred:
        T = T - T.mean(axis=(0, 1))
    h, w, _ = T.shape
    kby, kbx = -(-h // b), -(-w // b)
    nby, nbx = kby + 1, kbx + 1  # E_q: every offset fits, and t's spread stays inside
    S = _shifted_block_sums(T, b, nby, nbx)  # (b, b, nby, nbx, C)
    t = S[0, 0]
    e = S - _bilinear_spread(t, b)
    eps = np.sqrt((e**2).sum(axis=(2, 3))).max(axis=(0, 1))
    norm2 = (T**2).sum(axis=(0, 1))
    eta = np.sqrt(np.maximum(norm2 - (S**2).sum(axis=(2, 3)) / b**2, 0.0)).max(axis=(0, 1))
    return TemplateTerms(b, (h, w), np.ascontiguousarray(t[:kby, :kbx], np.float32), eps, eta, norm2,
                         (nby, nbx), (h // b - 1, w // b - 1), centred)


def _shifted_block_sums(T, b, nby, nbx):
    """``S[ry, rx, Qy, Qx, c]``: sums of block Q of the template placed at offset (ry, rx), zero outside."""
    h, w, C = T.shape
    Z = np.zeros((nby * b + b + 1, nbx * b + b + 1, C))
    Z[b + 1 : b + 1 + h, b + 1 : b + 1 + w] = T.cumsum(0).cumsum(1)
    Z[b + 1 + h :, b + 1 : b + 1 + w] = Z[b + h : b + 1 + h, b + 1 : b + 1 + w]  # integral image: rows past the end
    Z[:, b + 1 + w :] = Z[:, b + w : b + 1 + w]
    r = np.arange(b)
    y0 = b * np.arange(nby)[None, :] - r[:, None] + b  # (b, nby): first row of block Q for offset r
    x0 = b * np.arange(nbx)[None, :] - r[:, None] + b
    Y0, X0 = y0[:, None, :, None], x0[None, :, None, :]
    return Z[Y0 + b, X0 + b] - Z[Y0, X0 + b] - Z[Y0 + b, X0] + Z[Y0, X0]


def _bilinear_spread(t, b):
    """``L[ry, rx, Q]``: block sums ``t`` spread over the blocks by offset ``r`` (weights ``(b - r)/b``, ``r/b``)."""
    nby, nbx = t.shape[:2]
    frac = np.arange(b) / b
    wts = np.stack([1.0 - frac, frac], axis=1)  # (b, 2)
    out = np.zeros((b, b) + t.shape)
    for cy in (0, 1):
        for cx in (0, 1):
            moved = np.zeros_like(t)
            moved[cy:, cx:] = t[: nby - cy, : nbx - cx]
            out += wts[:, cy, None, None, None, None] * wts[None, :, cx, None, None, None] * moved
    return out


def cell_bounds(image, terms, method):
    """Upper bounds of the goodness (higher is better) over each cell of ``b x b`` positions.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        The searched image (``H >= h``, ``W >= w``).
    terms : TemplateTerms
    method : str
        One of :data:`BOUNDED_METHODS`.

    Returns
    -------
    ndarray of float64, shape ``((H - h) // b + 1, (W - w) // b + 1)``
        Cell ``(i, j)`` holds positions ``y in [b i, b i + b)``, ``x in [b j, b j + b)``
        (those inside the score map): none of them scores better.
    """
    b, (h, w) = terms.b, terms.shape
    H, W = image.shape[:2]
    ncy, ncx = (H - h) // b + 1, (W - w) // b + 1
    nby, nbx = terms.nb
    M, A2 = _block_stats(image, b, ncy + nby, ncx + nbx, terms.centred)
    num = _numerator_bound(M, A2, terms, ncy, ncx)
    core2, ext2 = _window_energy_bounds(M, A2, terms, ncy, ncx)
    tnorm = np.sqrt(terms.norm2.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "ssd_normed":
            cn = np.where(core2 > 0, num / (tnorm * np.sqrt(core2)), 1.0)
            cn = np.minimum(cn, 1.0)
            x = np.clip(1.0, np.sqrt(core2) / tnorm, np.sqrt(ext2) / tnorm)
            lower = np.minimum(x + 1.0 / x - 2.0 * cn, 1.0)
            return -np.maximum(lower, 0.0)
        ub = np.where(core2 > 0, np.maximum(num, 0.0) / (tnorm * np.sqrt(core2)), 1.0)
    return np.minimum(ub, 1.0)


def _block_stats(image, b, gy, gx, centred):
    """Block means ``M`` and block sums of squares ``A2``, ``(gy, gx, C)`` float64, zero past the image.

    For ``ncc`` the image's mean is removed first (the scores do not change;
    the sums of squares keep their digits).
    """
    img = image[:, :, None] if image.ndim == 2 else image
    H, W, C = img.shape
    hb, wb = min(H // b, gy), min(W // b, gx)
    M = np.zeros((gy, gx, C))
    A2 = np.zeros((gy, gx, C))
    exact32 = img.dtype == np.uint8 and b <= 16  # block sums of 8-bit values and squares are exact in float32
    for c in range(C):
        plane = img[:, :, c]
        if exact32:
            f = plane.astype(np.float32)
            sq = f * f
        else:
            f = plane.astype(np.float64)
            if centred:
                f -= f.mean()
            sq = f * f
        M[:hb, :wb, c] = _block_mean(f[: hb * b, : wb * b], b)
        A2[:hb, :wb, c] = _block_mean(sq[: hb * b, : wb * b], b) * (b * b)
        _partial_blocks(M[:, :, c], A2[:, :, c], f, sq, b, hb, wb)
        if exact32 and centred:  # remove the mean on the coarse sums, in float64 (exact: integers / 2**k)
            mu = float(M[:hb, :wb, c].mean())
            inside = _pixels_per_block(H, W, b, gy, gx)
            A2[:, :, c] += -2.0 * mu * M[:, :, c] * (b * b) + mu * mu * inside
            M[:, :, c] -= mu * inside / (b * b)
    return M, A2


def _block_mean(a, b):
    if a.size == 0:
        return np.zeros((a.shape[0] // b, a.shape[1] // b))
    return cv2.resize(a, (a.shape[1] // b, a.shape[0] // b), interpolation=cv2.INTER_AREA).astype(np.float64)


def _partial_blocks(M, A2, f, sq, b, hb, wb):
    """Blocks cut by the image's bottom and right edges (the rest of the block counts as zeros)."""
    H, W = f.shape
    gy, gx = M.shape
    if hb < gy and H > hb * b:
        rows = slice(hb * b, H)
        for j in range(min(-(-W // b), gx)):
            cols = slice(j * b, min(j * b + b, W))
            M[hb, j] = f[rows, cols].astype(np.float64).sum() / (b * b)
            A2[hb, j] = sq[rows, cols].astype(np.float64).sum()
    if wb < gx and W > wb * b:
        cols = slice(wb * b, W)
        for i in range(min(hb, gy)):
            rows = slice(i * b, i * b + b)
            M[i, wb] = f[rows, cols].astype(np.float64).sum() / (b * b)
            A2[i, wb] = sq[rows, cols].astype(np.float64).sum()


def _pixels_per_block(H, W, b, gy, gx):
    """How many image pixels each block of the ``gy x gx`` grid holds."""
    ny = np.clip(H - b * np.arange(gy), 0, b)
    nx = np.clip(W - b * np.arange(gx), 0, b)
    return (ny[:, None] * nx[None, :]).astype(np.float64)


def _box(a, ky, kx, y0, x0, ny, nx):
    """Sums of ``a`` (``(gy, gx, C)``) over ``ky x kx`` blocks starting at ``(y0 + i, x0 + j)``, ``i < ny``, ``j < nx``."""
    Z = np.zeros((a.shape[0] + 1, a.shape[1] + 1, a.shape[2]))
    Z[1:, 1:] = a.cumsum(0).cumsum(1)
    ys, xs = slice(y0, y0 + ny), slice(x0, x0 + nx)
    ye, xe = slice(y0 + ky, y0 + ky + ny), slice(x0 + kx, x0 + kx + nx)
    return Z[ye, xe] - Z[ys, xe] - Z[ye, xs] + Z[ys, xs]


def _numerator_bound(M, A2, terms, ncy, ncx):
    """Upper bound of ``<T, W_p>`` (summed over channels) for every position of each cell."""
    b = terms.b
    nby, nbx = terms.nb
    m32 = np.ascontiguousarray(M, np.float32)
    t32 = terms.t
    C = cv2.matchTemplate(m32 if m32.shape[2] > 1 else m32[:, :, 0],
                          t32 if t32.shape[2] > 1 else t32[:, :, 0], cv2.TM_CCORR).astype(np.float64)
    corner = np.maximum(np.maximum(C[:ncy, :ncx], C[1 : ncy + 1, :ncx]),
                        np.maximum(C[:ncy, 1 : ncx + 1], C[1 : ncy + 1, 1 : ncx + 1]))
    corner += ROUNDING * float(np.abs(t32).sum()) * float(np.abs(M).max())
    blocks = nby * nbx
    sm, sm2 = _box(M, nby, nbx, 0, 0, ncy, ncx), _box(M * M, nby, nbx, 0, 0, ncy, ncx)
    m_energy = np.maximum(sm2 - sm**2 / blocks, 0.0) if terms.centred else sm2
    detail = np.maximum(A2 - (b * b) * M * M, 0.0)
    v_energy = _box(detail, nby, nbx, 0, 0, ncy, ncx)
    return corner + (np.sqrt(m_energy) * terms.eps).sum(axis=2) + (np.sqrt(v_energy) * terms.eta).sum(axis=2)


def _window_energy_bounds(M, A2, terms, ncy, ncx):
    """Per cell: a lower bound of every window's energy (its core blocks'), and an upper bound (``E_q``'s)."""
    b = terms.b
    ky, kx = terms.core
    n = ky * kx * b * b
    s1 = _box(M, ky, kx, 1, 1, ncy, ncx) * (b * b)
    s2 = _box(A2, ky, kx, 1, 1, ncy, ncx)
    core = np.maximum(s2 - s1**2 / n, 0.0) if terms.centred else s2
    ext = _box(A2, terms.nb[0], terms.nb[1], 0, 0, ncy, ncx)
    return core.sum(axis=2), ext.sum(axis=2)
