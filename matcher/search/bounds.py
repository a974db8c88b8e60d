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
``sum e^r = 0``: ``S^r`` and ``L^r`` both hold the template's sum, so ``M``
may be centred on ``E_q``). The window's norm is at least that of the ``(h//b - 1) x (w//b - 1)``
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

from .block_stats import block_stats

__all__ = ["TemplateTerms", "template_terms", "cell_bounds", "stats_bounds", "ROUNDING",
           "BOUNDED_METHODS", "BoundParts", "bound_parts", "bound_from_parts"]

ROUNDING = 1e-5
"""Relative rounding allowance of the float32 coarse correlation (``sum|t| max|M|`` times this is added)."""
BOUNDED_METHODS = ("ncc", "ccorr_normed", "ssd_normed")
"""Methods :func:`cell_bounds` bounds."""


@dataclass(frozen=True)
class TemplateTerms:
    """The template's side of the bound for block size ``b`` (arrays have a trailing channel axis).

    ``t``: block sums (float32, ``ceil(h/b) x ceil(w/b) x C``); ``eps``, ``eta``:
    per channel, the largest norms of the remainders over the ``b**2`` offsets;
    ``tau``: per block of ``E_q`` (``nb`` x C, float32), the largest norm of ``(1 - P) T^r`` in it;
    ``norm2``: the template's (centred, for ``ncc``) energy per channel;
    ``nb``: blocks per side of the region ``E_q``; ``core``: blocks per side
    every window of a cell contains; ``centred``: ``ncc`` (means removed).
    """

    b: int
    shape: tuple
    t: np.ndarray
    eps: np.ndarray
    eta: np.ndarray
    tau: np.ndarray
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
    detail = np.maximum(_shifted_block_sums(T * T, b, nby, nbx) - S**2 / b**2, 0.0)  # per offset and block
    eta = np.sqrt(np.maximum(norm2 - (S**2).sum(axis=(2, 3)) / b**2, 0.0)).max(axis=(0, 1))
    tau = np.ascontiguousarray(np.sqrt(detail).max(axis=(0, 1)), np.float32)
    return TemplateTerms(b, (h, w), np.ascontiguousarray(t[:kby, :kbx], np.float32), eps, eta, tau, norm2,
                         (nby, nbx), (h // b - 1, w // b - 1), centred)


def _shifted_block_sums(T, b, nby, nbx):
    """``S[ry, rx, Qy, Qx, c]``: sums of block Q of the template placed at offset (ry, rx), zero outside."""
    h, w, C = T.shape
    Z = np.zeros((nby * b + b + 1, nbx * b + b + 1, C))
    Z[b + 1 : b + 1 + h, b + 1 : b + 1 + w] = T.cumsum(0).cumsum(1)
    Z[b + 1 + h :, b + 1 : b + 1 + w] = Z[b + h : b + 1 + h, b + 1 : b + 1 + w]  # integral image: rows past the end
    Z[:, b + 1 + w :] = Z[:, b + w : b + 1 + w]
    r = np.arange(b)
    ys = b * np.arange(nby + 1)[None, :] - r[:, None] + b  # (b, nby + 1): block Q's first row for offset r is ys[r, Q]
    xs = b * np.arange(nbx + 1)[None, :] - r[:, None] + b
    # the integral image at every block corner, for every offset: two takes along one axis each (a gather
    # with four broadcast indices cost twice as much), then (b, b, nby + 1, nbx + 1, C)
    E = Z.take(ys, axis=0).take(xs, axis=2).transpose(0, 2, 1, 3, 4)
    return E[:, :, 1:, 1:] - E[:, :, :-1, 1:] - E[:, :, 1:, :-1] + E[:, :, :-1, :-1]


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
    bound : ndarray of float64, shape ``((H - h) // b + 1, (W - w) // b + 1)``
        Cell ``(i, j)`` holds positions ``y in [b i, b i + b)``, ``x in [b j, b j + b)``
        (those inside the score map): none of them scores better.
    estimate : ndarray of float64, same shape
        The coarse correlation at ``b q`` over the norms of the template and of
        the window there: a guess of the cell's best score, to decide which
        cells to look at first (not a bound).
    """
    b, (h, w) = terms.b, terms.shape
    H, W = image.shape[:2]
    ncy, ncx = (H - h) // b + 1, (W - w) // b + 1
    nby, nbx = terms.nb
    M, A2 = block_stats(image, b, ncy + nby, ncx + nbx, terms.centred)
    return stats_bounds(M, A2, terms, method, ncy, ncx)


def stats_bounds(M, A2, terms, method, ncy, ncx, energy=None):
    """:func:`cell_bounds` of ``ncy x ncx`` cells from the block statistics of the blocks they see.

    Parameters
    ----------
    M, A2 : ndarray of float64, shape ``(ncy + nb[0], ncx + nb[1], C)`` at least
        Block means and block sums of squares (:func:`matcher.search.block_stats.block_stats`, or
        :func:`~matcher.search.block_stats.pool_stats` of finer ones), starting at the first cell's block:
        a slice of a whole image's statistics bounds the cells of that slice.
    terms : TemplateTerms
        For the same block size.
    method : str
        One of :data:`BOUNDED_METHODS`.
    ncy, ncx : int
        Cells to bound.
    energy : ndarray of float64, shape (ncy, ncx), optional
        A lower bound of the energy of every window of each cell (centred for
        ``ncc``, summed over the channels; :func:`matcher.search.levels.window_energy_min`),
        used where it is above the blocks' (the blocks every window holds miss up to ``b - 1``
        rows and columns of it).

    Returns
    -------
    bound, estimate : ndarray of float64, shape ``(ncy, ncx)``
        As :func:`cell_bounds`.
    """
    parts = bound_parts(M, A2, terms, ncy, ncx)
    return bound_from_parts(parts, terms, method, energy), parts.estimate


@dataclass(frozen=True)
class BoundParts:
    """The pieces of :func:`stats_bounds` for some cells, before the division by the norms (each ``(ncy, ncx)`` float64).

    ``numerator``: the bound of ``<T, W_p>`` over the cell's windows (``>= 0``);
    ``core2``, ``ext2``: lower and upper bounds of their energy (the core's
    blocks, ``E_q``'s); ``estimate``: the guess of the cell's best score.
    Storing them lets a better energy bound (the windows' least energy) be
    used later without the block statistics (:func:`bound_from_parts`).
    """

    numerator: np.ndarray
    core2: np.ndarray
    ext2: np.ndarray
    estimate: np.ndarray


def bound_parts(M, A2, terms, ncy, ncx):
    """:class:`BoundParts` of ``ncy x ncx`` cells from block statistics (as :func:`stats_bounds`)."""
    nby, nbx = terms.nb
    if M.shape[0] < ncy + nby or M.shape[1] < ncx + nbx or M.shape != A2.shape:
        raise ValueError(f"block statistics {M.shape} and {A2.shape} do not cover {ncy}x{ncx} cells of "
                         f"{nby}x{nbx} blocks")
    M, A2 = M[: ncy + nby, : ncx + nbx], A2[: ncy + nby, : ncx + nbx]
    corner, at_q, rest, core2, ext2, aligned2 = _cell_sums(M, A2, terms, ncy, ncx)
    tnorm = np.sqrt(terms.norm2.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(aligned2 > 0, at_q / (tnorm * np.sqrt(aligned2)), 0.0)
    return BoundParts(np.maximum(corner + rest, 0.0), core2, ext2, estimate)


def bound_from_parts(parts, terms, method, energy=None):
    """The bound of each cell's goodness from its :class:`BoundParts`.

    With ``N`` the numerator bound, ``E`` the energy's lower bound (the
    core's, or ``energy`` where larger) and ``||T||`` the template's norm:
    ``ncc``, ``ccorr_normed`` ``<= min(1, N / (||T|| sqrt(E)))`` (1 where
    ``E = 0``); ``ssd_normed = x + 1/x - 2 ccorr_normed`` with
    ``x = ||W|| / ||T||`` clipped to ``[sqrt(E), sqrt(ext2)] / ||T||``: minus
    its lower bound (goodness).
    """
    core2 = parts.core2 if energy is None else np.maximum(parts.core2, energy)
    tnorm = np.sqrt(terms.norm2.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.where(core2 > 0, tnorm * np.sqrt(core2), np.inf)
        cn = np.where(core2 > 0, parts.numerator / den, 1.0)
        if method == "ssd_normed":
            x = np.clip(1.0, np.sqrt(core2) / tnorm, np.sqrt(parts.ext2) / tnorm)
            lower = np.minimum(x + 1.0 / x - 2.0 * np.minimum(cn, 1.0), 1.0)
            return -np.maximum(lower, 0.0)
    return np.minimum(cn, 1.0)


def _box(Z, ky, kx, y0, x0, ny, nx):
    """Sums over ``ky x kx`` blocks starting at ``(y0 + i, x0 + j)``, ``i < ny``, ``j < nx``, from the integral image ``Z``."""
    ys, xs = slice(y0, y0 + ny), slice(x0, x0 + nx)
    ye, xe = slice(y0 + ky, y0 + ky + ny), slice(x0 + kx, x0 + kx + nx)
    out = Z[ye, xe] - Z[ys, xe]
    out -= Z[ye, xs]
    out += Z[ys, xs]
    return out


def _integral(a):
    """The integral image of ``a`` (2-D, or 3-D with channels last), float64, of the same number of axes."""
    Z = cv2.integral(np.ascontiguousarray(a), sdepth=cv2.CV_64F)
    return Z[:, :, None] if Z.ndim == 2 and a.ndim == 3 else Z


def _cell_sums(M, A2, terms, ncy, ncx):
    """Per cell: the coarse correlation's part of the numerator bound, the coarse correlation at ``q``, the
    remainders' part (and the coarse correlation's rounding), the window energy's lower (core) and upper
    (``E_q``) bounds, and the energy of the window at ``b q``.

    The arithmetic is done in place where it can be (the same operations in the same order: the same
    values; fresh arrays of a whole level's cells cost as much as the arithmetic), one channel in 2-D.
    """
    b, (nby, nbx), (ky, kx) = terms.b, terms.nb, terms.core
    m32, t32 = np.ascontiguousarray(M, np.float32), terms.t
    C = cv2.matchTemplate(m32 if m32.shape[2] > 1 else m32[:, :, 0],
                          t32 if t32.shape[2] > 1 else t32[:, :, 0], cv2.TM_CCORR)
    corner = np.maximum(C[:ncy, :ncx], C[1 : ncy + 1, :ncx])
    np.maximum(corner, np.maximum(C[:ncy, 1 : ncx + 1], C[1 : ncy + 1, 1 : ncx + 1]), out=corner)
    rounding = ROUNDING * float(np.abs(t32).sum()) * float(np.abs(M).max())
    one = M.shape[2] == 1
    M2d, A2d = (M[:, :, 0], A2[:, :, 0]) if one else (M, A2)
    ZM, ZM2, ZA2 = _integral(M2d), _integral(M2d * M2d), _integral(A2d)
    sm, sm2, ext = (_box(Z, nby, nbx, 0, 0, ncy, ncx) for Z in (ZM, ZM2, ZA2))
    m_energy = _spread(sm2, sm, nby * nbx)  # sum(e^r) = 0: M may be centred on E_q
    v_energy = sm2  # the detail's energy in E_q (+ float64 rounding); sm2 is not needed any more
    v_energy *= b * b
    np.subtract(ext, v_energy, out=v_energy)
    np.maximum(v_energy, 0.0, out=v_energy)
    v_energy += 1e-12 * ext
    detail = _by_channel(np.sqrt(v_energy, out=v_energy), terms.eta, one)
    np.minimum(detail, _blockwise_detail(M, A2, terms, ncy, ncx), out=detail)
    rest = _by_channel(np.sqrt(m_energy, out=m_energy), terms.eps, one)
    rest += detail
    rest += rounding
    s1 = _box(ZM, ky, kx, 1, 1, ncy, ncx)
    s1 *= b * b
    s2 = _box(ZA2, ky, kx, 1, 1, ncy, ncx)
    core = _spread(s2, s1, ky * kx * b * b) if terms.centred else s2
    ty, tx = terms.t.shape[:2]  # the window at b q, for the estimate
    a1, a2 = _box(ZM, ty, tx, 0, 0, ncy, ncx), _box(ZA2, ty, tx, 0, 0, ncy, ncx)
    a1 *= b * b
    aligned = _spread(a2, a1, ty * tx * b * b) if terms.centred else a2
    at_q = C[:ncy, :ncx].astype(np.float64)
    if one:
        return corner.astype(np.float64), at_q, rest, core, ext, aligned
    return corner.astype(np.float64), at_q, rest, core.sum(axis=2), ext.sum(axis=2), aligned.sum(axis=2)


def _spread(s2, s1, n):
    """``max(s2 - s1**2 / n, 0)``, the energy about the mean of ``n`` values from their sums, in ``s1``'s array."""
    s1 *= s1
    s1 /= n
    np.subtract(s2, s1, out=s1)
    return np.maximum(s1, 0.0, out=s1)


def _by_channel(a, v, one):
    """``a @ v``: the per-channel values of ``a`` (the last axis, or ``a`` itself with ``one`` channel) weighted by ``v``."""
    if one:
        a *= v[0]
        return a
    return a @ v


def _blockwise_detail(M, A2, terms, ncy, ncx):
    """``sum_Q tau(Q) ||V||_Q`` over the blocks of ``E_q``: Cauchy-Schwarz block by block (tighter where the
    template's detail and the image's lie in different blocks), float32 rounding included."""
    b = terms.b
    nu = M * (b * b)  # A2 - (b * b) M M, in place
    nu *= M
    np.subtract(A2, nu, out=nu)
    nu = np.sqrt(np.maximum(nu, 0.0, out=nu), out=nu).astype(np.float32)
    tau = terms.tau
    out = cv2.matchTemplate(nu if nu.shape[2] > 1 else nu[:, :, 0], tau if tau.shape[2] > 1 else tau[:, :, 0],
                            cv2.TM_CCORR)[:ncy, :ncx].astype(np.float64)
    return out * (1 + ROUNDING) + ROUNDING * float(tau.sum()) * float(nu.max())
