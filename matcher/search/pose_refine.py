"""Joint sub-pixel, sub-step refinement of a turned, scaled template's pose at full resolution.

:func:`refine_pose` takes a pose found on a grid (centre, angle, scale) to the
continuous optimum of the method's score, all free parameters at once (refining
each alone biases the angle, see issue 13):

- **Gauss-Newton on the normalised residual** [1]_ [2]_. With ``a`` the image
  seen through the pose at the template's used pixels (centred per channel for
  ``ncc``) and ``t`` the same of the template, ``|a/|a| - t/|t||**2 = 2 - 2 r``
  where ``r`` is the normalised correlation: minimising the residual maximises
  the score exactly. The pose is updated compositionally (forward
  compositional algorithm [2]_): composed with a small similarity about the
  template's centre (shift, turn, log-scale), whose Jacobian at the identity is
  the gradient of the seen image itself (the resampled patch, two pixels wider
  on every side, differentiated by the five-point stencil) times the motion of
  each template pixel: one resampling per iteration, no finite differences in
  the parameters. Steps are damped (Levenberg-Marquardt) and taken only when
  ``r`` improves. Long ridges of poses scoring alike (a scale change
  compensated by a shift) are followed in a few steps. (The inverse
  compositional algorithm, whose Jacobian is the template's and computed once,
  was tried: with noise in the template its fixed point is not the score's
  maximum, scale errors up to 0.0075 on bench_rotated's cases.)
- For ``ssd_normed`` (whose optimum is near but not at ``ccorr_normed``'s) a few
  Newton steps on finite differences of the score itself finish
  (:func:`newton_maximise`).

The image is resampled by cubic interpolation (``cv2.warpAffine``); the
reported score is the method's score by definition
(:func:`matcher.scores.reference.window_scores`) at the final pose.

References
----------
.. [1] B. D. Lucas, T. Kanade, "An iterative image registration technique with
   an application to stereo vision", IJCAI 1981.
.. [2] S. Baker, I. Matthews, "Lucas-Kanade 20 years on: a unifying
   framework", IJCV 56(3), 2004 (forward compositional algorithm, section 3.1).
"""

import math

import cv2
import numpy as np

from ..scores.inputs import channels_first
from ..scores.reference import window_scores
from .poses import pose_matrix, template_corners

__all__ = ["refine_pose", "pose_score", "newton_maximise"]

_NEWTON_ITERATIONS = 3
_TRUST = 2.0  # largest finite-difference Newton step, in units


def refine_pose(prepared, image, pose):
    """The pose ``(cx, cy, angle, scale)`` refined jointly: ``(score, cx, cy, angle, corners, scale)``.

    Parameters
    ----------
    prepared : PreparedTemplate
    image : ndarray, float32, shape (H, W) or (H, W, C)
    pose : tuple of float
        Start ``(cx, cy, angle, scale)``; an angle or scale range of one value is fixed.

    Returns
    -------
    tuple
        The score by definition (None outside the image is reported as the
        worst score), the centre, the angle (wrapped into the range for the
        full circle), the corners (a (4, 2) array) and the scale.

    Notes
    -----
    Near a quarter turn at scale 1, the pose with its corner on the nearest
    whole pixel is tried too and kept if it scores at least as well: an exact
    copy lands exactly on its pixels.
    """
    free = np.array([True, True, prepared.angles[1] > prepared.angles[0], prepared.scales[1] > prepared.scales[0]])
    start = np.array([pose[0], pose[1], pose[2] if free[2] else prepared.angles[0],
                      pose[3] if free[3] else prepared.scales[0]], float)
    best = _forward_compositional(prepared, image, start, free)
    if prepared.method.name == "ssd_normed":
        unit = np.array([0.5, 0.5, prepared.angle_step, prepared.scale_step])[free]

        def at(u):
            v = best.copy()
            v[free] += u * unit
            return v

        u, _ = newton_maximise(lambda u: _goodness(prepared, image, at(u)), int(free.sum()))
        best = at(u)
    h, w = prepared.shape
    x0, y0 = best[0] - (w - 1) / 2.0, best[1] - (h - 1) / 2.0  # the corner pixel's position
    snapped = np.array([round(x0) + (w - 1) / 2.0, round(y0) + (h - 1) / 2.0, best[2], best[3]])
    on_pixels = (abs((best[2] + 45.0) % 90.0 - 45.0) < 0.5 * prepared.angle_step
                 and abs(best[3] - 1.0) < 0.5 * prepared.scale_step)  # a quarter turn, scale 1: pixels land on pixels
    if on_pixels and np.any(snapped != best) and (
            _goodness(prepared, image, snapped) >= _goodness(prepared, image, best)):
        best = snapped
    best = tuple(float(v) for v in best)
    score = pose_score(prepared, image, best)
    if score is None:
        score = 1.0 if prepared.method.lower_is_better else -1.0
    lo = prepared.angles[0]
    angle = (best[2] - lo) % 360.0 + lo if prepared.full_circle else best[2]
    corners = template_corners(pose_matrix(best[:2], angle, best[3], prepared.shape), prepared.shape)
    return score, best[0], best[1], angle, corners, best[3]


def pose_score(prepared, image, pose):
    """The method's score by definition of the template against the image seen through ``pose``
    (``(cx, cy, angle, scale)``), over the template's own pixels; None outside the image."""
    seen = _seen(prepared, image, pose, remap=True)
    if seen is None:
        return None
    windows = channels_first("image", seen)[None]
    return float(window_scores(windows, prepared.channels, prepared.weights, prepared.method.name)[0])


def _inside(prepared, image_shape, pose):
    """Whether the template's pixels under ``pose`` ``(cx, cy, angle, scale)`` all lie inside the image."""
    cx, cy, angle, scale = pose
    h, w = prepared.shape
    # the turned box's half extents about the centre, in plain floats (called many times per search)
    a, b = scale * math.cos(math.radians(angle)), scale * math.sin(math.radians(angle))
    ex = 0.5 * ((w - 1) * abs(a) + (h - 1) * abs(b))
    ey = 0.5 * ((w - 1) * abs(b) + (h - 1) * abs(a))
    return cx - ex >= 0 and cy - ey >= 0 and cx + ex <= image_shape[1] - 1 and cy + ey <= image_shape[0] - 1


def _seen(prepared, image, pose, remap=False, margin=0):
    """The image resampled (cubic) at the template's pixels under ``pose`` (and ``margin`` more pixels on
    every side, for derivatives: the image's edge is replicated there); None when the turned template
    reaches outside the image."""
    if not _inside(prepared, image.shape, pose):
        return None
    cx, cy, angle, scale = pose
    h, w = prepared.shape
    m = pose_matrix((cx, cy), angle, scale, prepared.shape)
    if remap:  # the reported score: an explicit map per pixel
        yy, xx = prepared.pixel_grid
        map_x = (m[0, 0] * xx + m[0, 1] * yy + m[0, 2]).astype(np.float32)
        map_y = (m[1, 0] * xx + m[1, 1] * yy + m[1, 2]).astype(np.float32)
        return cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if margin:
        m[:, 2] -= margin * (m[:, 0] + m[:, 1])
    return cv2.warpAffine(image, m, (w + 2 * margin, h + 2 * margin), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def _goodness(prepared, image, pose):
    seen = _seen(prepared, image, pose)
    return -np.inf if seen is None else prepared.goodness(seen)


_FC_ITERATIONS = 12
_FC_DONE = 0.03  # the last step: it moves the template's farthest pixel by less than this (pixels)


_STENCIL = np.array([[1.0, -8.0, 0.0, 8.0, -1.0]], np.float32) / 12.0  # the five-point derivative


def _derivatives(patch):
    """The x and y derivatives of ``patch`` (float32, (h + 4, w + 4[, C])) at its inner (h, w) pixels (the
    five-point stencil, float32)."""
    gx = cv2.filter2D(patch, -1, _STENCIL, borderType=cv2.BORDER_REPLICATE)[2:-2, 2:-2]
    gy = cv2.filter2D(patch, -1, _STENCIL.T, borderType=cv2.BORDER_REPLICATE)[2:-2, 2:-2]
    return gx, gy


def _dot(x, y):
    """``x . y`` of two long vectors by einsum: OpenBLAS splits long dot products over threads, which stall
    for milliseconds on a busy machine."""
    return float(np.einsum("i,i", x, y))


def _gram(rows):
    """``rows @ rows.T`` (a few long rows) by :func:`_dot`."""
    n = len(rows)
    out = np.empty((n, n))
    for i in range(n):
        for k in range(i, n):
            out[i, k] = out[k, i] = _dot(rows[i], rows[k])
    return out


def _forward_compositional(prepared, image, start, free):
    """Levenberg-Marquardt on ``|a/|a| - t/|t||**2`` over the ``free`` parameters, the pose composed with a
    small similarity about the template's centre, the Jacobian from the resampled patch's own gradient: the
    improved pose ``(cx, cy, angle, scale)``.

    The similarity's parameters are a shift ``(tx, ty)`` in template pixels and a turn and a log-scale
    times ``far`` (the farthest pixel's distance from the centre), so that each unit moves that pixel by
    about a pixel. At the identity a template point ``(u, v)`` from the centre moves by ``(1, 0)``,
    ``(0, 1)``, ``(v, -u) / far`` and ``(u, v) / far`` per unit of each (the turn counter-clockwise as
    displayed, as :func:`~matcher.search.poses.pose_matrix`)."""
    used = None if prepared.used.all() else prepared.used
    n_used = prepared.reference.shape[0]
    t_hat = (prepared.reference / prepared.reference_norm).reshape(-1)
    centre = prepared.method.name == "ncc"
    h, w = prepared.shape
    channels = prepared.reference.shape[1]
    pick = ((lambda x: x.reshape(n_used, channels)) if used is None
            else (lambda x: x[used].reshape(n_used, channels)))
    far = max(0.5 * math.hypot(w - 1, h - 1), 1.0)
    yy, xx = prepared.pixel_grid
    u = ((xx - (w - 1) / 2.0) / far)[prepared.used][:, None]  # (n, 1): the same for every channel
    v = ((yy - (h - 1) / 2.0) / far)[prepared.used][:, None]

    def correlation(p):
        """(r, a_hat, |a|, patch) at pose p, or None (outside the image, or a flat window)."""
        patch = _seen(prepared, image, p, margin=2)
        if patch is None:
            return None
        a = pick(patch[2:-2, 2:-2]).astype(np.float64)
        if centre:
            a -= a.mean(axis=0)
        a = a.reshape(-1)
        norm = math.sqrt(_dot(a, a))
        return None if norm == 0 else (_dot(a, t_hat) / norm, a / norm, norm, patch)

    def linearise(seen):
        corr, a_hat, norm, patch = seen
        gx, gy = (pick(g).astype(np.float64) for g in _derivatives(patch))
        jac = np.empty((int(free.sum()), n_used, channels))  # one row per free parameter
        jac[0], jac[1] = gx, gy
        k = 2
        if free[2]:
            np.subtract(gx * v, gy * u, out=jac[k])
            k += 1
        if free[3]:
            np.add(gx * u, gy * v, out=jac[k])
        jac = jac.reshape(len(jac), -1)
        jtj = _gram(jac)
        if centre:  # the Jacobian of the centred samples: each row centred per channel
            means = jac.reshape(len(jac), n_used, channels).mean(axis=1)
            jtj -= n_used * np.einsum("ic,kc->ik", means, means)
        # a_hat and t_hat are centred already: centring the rows does not change these products
        j_a = np.array([_dot(row, a_hat) for row in jac])
        jtj -= np.outer(j_a, j_a)
        residual = corr * a_hat - t_hat
        jtr = np.array([_dot(row, residual) for row in jac])
        return corr, jtj / norm**2, jtr / norm

    def compose(p, d):
        full = np.zeros(4)
        full[free] = d
        tx, ty = full[0], full[1]
        a, b = p[3] * math.cos(math.radians(p[2])), p[3] * math.sin(math.radians(p[2]))
        angle = p[2] + math.degrees(full[2] / far)
        scale = p[3] * math.exp(full[3] / far)
        if not prepared.full_circle:
            angle = min(max(angle, prepared.angles[0]), prepared.angles[1])
        scale = min(max(scale, prepared.scales[0]), prepared.scales[1])
        return np.array([p[0] + a * tx + b * ty, p[1] - b * tx + a * ty, angle, scale])

    p = np.asarray(start, float).copy()
    seen = correlation(p)
    if seen is None:
        return p
    state = linearise(seen)
    lam = 1e-3
    for _ in range(_FC_ITERATIONS):
        corr, jtj, jtr = state
        damped = jtj + lam * np.diag(np.diag(jtj) + 1e-12)
        try:
            step = -np.linalg.solve(damped, jtr)
        except np.linalg.LinAlgError:
            break
        q = compose(p, step)
        if np.abs(step).max() < _FC_DONE:  # a step this small is taken without checking (it would cost a resampling)
            return q if _inside(prepared, image.shape, q) else p
        seen = correlation(q)
        if seen is not None and seen[0] >= corr:
            p = q
            state = linearise(seen)
            lam = max(lam / 4.0, 1e-6)
        else:
            lam *= 8.0
            if lam > 1e6:
                break
    return p


def newton_maximise(f, n, iterations=_NEWTON_ITERATIONS, trust=_TRUST):
    """Maximise ``f`` near ``u = 0`` (``n`` parameters in comparable units) by Newton steps: ``(u, f(u))``.

    Each iteration estimates the gradient and Hessian by central differences
    on a stencil of ``1 + n (n + 3) / 2`` points at spacing 1/2 and steps
    towards the quadratic model's vertex, damped (Levenberg-Marquardt) where
    the Hessian is not negative definite and at most ``trust`` long, or to the
    best stencil point if that is better (a step that does not improve ``f``
    is not taken). It stops after a step below 0.02. ``f`` may return
    ``-inf`` (outside the domain).

    >>> u, v = newton_maximise(lambda u: -((u[0] - 0.7) ** 2) - 2 * (u[1] + 0.3) ** 2 - u[0] * u[1], 2)
    >>> np.round(u, 6).tolist(), round(float(v), 6)
    ([0.971429, -0.542857], 0.335714)
    """
    u = np.zeros(n)
    fu = f(u)
    eye = np.eye(n)
    h = 0.5
    for _ in range(iterations):
        plus = np.array([f(u + h * e) for e in eye])
        minus = np.array([f(u - h * e) for e in eye])
        with np.errstate(invalid="ignore"):  # -inf - -inf: outside the domain, caught below
            hess = np.diag((plus - 2.0 * fu + minus) / h**2)
            for i in range(n):
                for j in range(i + 1, n):
                    hess[i, j] = hess[j, i] = (f(u + h * (eye[i] + eye[j])) - plus[i] - plus[j] + fu) / h**2
            grad = (plus - minus) / (2.0 * h)
        options = [(fu, u)] + [(v, u + h * e) for v, e in zip(plus, eye)] + [(v, u - h * e) for v, e in zip(minus, eye)]
        if not (np.all(np.isfinite(hess)) and np.all(np.isfinite(grad))):
            fu, u = max(options, key=lambda o: o[0])
            continue
        top = np.linalg.eigvalsh(hess).max()
        if top >= 0:  # not concave here: damped towards the gradient (Levenberg-Marquardt)
            hess = hess - (top + 0.1 * max(abs(np.diag(hess)).max(), 1e-12)) * eye
        step = -np.linalg.solve(hess, grad)
        step *= min(1.0, trust / max(np.abs(step).max(), 1e-300))
        options.append((f(u + step), u + step))
        fu, u = max(options, key=lambda o: o[0])
        if top < 0 and np.abs(step).max() < 0.02:
            break
    return u, fu
