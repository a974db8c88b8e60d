"""Joint sub-pixel, sub-step refinement of a turned, scaled template's pose at full resolution.

:func:`refine_pose` takes a pose found on a grid (centre, angle, scale) to the
continuous optimum of the method's score, all free parameters at once (refining
each alone biases the angle, see issue 13):

- **Gauss-Newton on the normalised residual** [1]_ [2]_. With ``a`` the image
  seen through the pose at the template's used pixels (centred per channel for
  ``ncc``) and ``t`` the same of the template, ``|a/|a| - t/|t||**2 = 2 - 2 r``
  where ``r`` is the normalised correlation: minimising the residual maximises
  the score exactly. Its Jacobian comes from central differences of the seen
  image itself in each parameter (half a unit either side: the cubic
  interpolant's own derivative, no gradient filter's smoothing); steps are damped (Levenberg-Marquardt) and taken
  only when ``r`` improves. Long ridges of poses scoring alike (a scale change
  compensated by a shift) are followed in a few steps, where finite differences
  of the score crawl.
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
   framework", IJCV 56(3), 2004 (forward additive algorithm, section 2).
"""

import math

import cv2
import numpy as np

from ..scores.inputs import channels_first
from ..scores.reference import window_scores
from .poses import pose_matrix, template_corners

__all__ = ["refine_pose", "pose_score", "newton_maximise"]

_GN_ITERATIONS = 12
_GN_DONE = 0.002  # stop when a step moves every parameter by less than this (units: half a pixel, one step)
_JACOBIAN_STEP = 0.5  # units; finer differences see the resampling's 1/32-pixel quantisation
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
    best = _gauss_newton(prepared, image, start, free)
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


def _seen(prepared, image, pose, remap=False):
    """The image resampled (cubic) at the template's pixels under ``pose``; None when the turned template
    reaches outside the image."""
    cx, cy, angle, scale = pose
    h, w = prepared.shape
    # the turned box's half extents about the centre, in plain floats (called many times per search)
    a, b = scale * math.cos(math.radians(angle)), scale * math.sin(math.radians(angle))
    ex = 0.5 * ((w - 1) * abs(a) + (h - 1) * abs(b))
    ey = 0.5 * ((w - 1) * abs(b) + (h - 1) * abs(a))
    if cx - ex < 0 or cy - ey < 0 or cx + ex > image.shape[1] - 1 or cy + ey > image.shape[0] - 1:
        return None
    m = pose_matrix((cx, cy), angle, scale, prepared.shape)
    if remap:  # the reported score: an explicit map per pixel
        yy, xx = prepared.pixel_grid
        map_x = (m[0, 0] * xx + m[0, 1] * yy + m[0, 2]).astype(np.float32)
        map_y = (m[1, 0] * xx + m[1, 1] * yy + m[1, 2]).astype(np.float32)
        return cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def _goodness(prepared, image, pose):
    seen = _seen(prepared, image, pose)
    return -np.inf if seen is None else prepared.goodness(seen)


def _gauss_newton(prepared, image, start, free):
    """Levenberg-Marquardt on ``|a/|a| - t/|t||**2`` over the free parameters: the improved pose."""
    used = None if prepared.used.all() else prepared.used
    n_used = prepared.reference.shape[0]
    t_hat = prepared.reference / prepared.reference_norm
    centre = prepared.method.name == "ncc"
    unit = np.array([0.5, 0.5, prepared.angle_step, prepared.scale_step])
    wide = 1e9 if prepared.full_circle else 0.0
    bounds = ([prepared.angles[0] - wide, prepared.scales[0]], [prepared.angles[1] + wide, prepared.scales[1]])
    moves = [_JACOBIAN_STEP * unit[k] * np.eye(4)[k] for k in np.flatnonzero(free)]

    def values(p):
        seen = _seen(prepared, image, p)
        if seen is None:
            return None
        return (seen if used is None else seen[used]).reshape(n_used, -1)

    def correlation(p):
        """(r, a / |a|, |a|) at pose p, or None (outside the image, or a flat window)."""
        a = values(p)
        if a is None:
            return None
        a = a.astype(np.float64)
        if centre:
            a = a - a.mean(axis=0)
        norm = float(np.sqrt((a * a).sum()))
        return None if norm == 0 else (float((a * t_hat).sum()) / norm, a / norm, norm)

    def linearise(p, seen):
        """(r, J^T J, J^T residual) of the normalised residual at pose p, or None; ``seen`` is
        :func:`correlation`'s answer there."""
        if seen is None:
            return None
        corr, a_hat, norm = seen
        # d seen / d parameter (per unit) by central differences of the resampled image itself (float32)
        jac = np.empty(a_hat.shape + (len(moves),), np.float32)
        for i, d in enumerate(moves):
            plus, minus = values(p + d), values(p - d)
            if plus is None or minus is None:
                return None
            np.subtract(plus, minus, out=jac[..., i])
        jac *= np.float32(0.5 / _JACOBIAN_STEP)
        if centre:
            jac -= jac.mean(axis=0)
        jac = jac.reshape(-1, len(moves))
        # with P = I - a_hat a_hat^T the Jacobian of a / |a| is P J / |a|, and P (a_hat - t_hat) = r a_hat - t_hat
        j_a = jac.T @ a_hat.reshape(-1).astype(np.float32)
        jtj = (jac.T @ jac).astype(np.float64) - np.outer(j_a, j_a)
        jtr = jac.T @ (corr * a_hat - t_hat).reshape(-1).astype(np.float32)
        return corr, jtj / norm**2, jtr.astype(np.float64) / norm

    p = start.copy()
    state = linearise(p, correlation(p))
    if state is None:
        return p
    lam = 1e-3
    for _ in range(_GN_ITERATIONS):
        corr, jtj, jtr = state
        damped = jtj + lam * np.diag(np.diag(jtj) + 1e-12)
        try:
            step = -np.linalg.solve(damped, jtr)
        except np.linalg.LinAlgError:
            break
        q = p.copy()
        q[free] += step * unit[free]
        q[2:] = np.clip(q[2:], *bounds)  # within the ranges asked
        moved = np.abs((q - p)[free] / unit[free]).max()
        seen = correlation(q)
        if seen is not None and seen[0] >= corr and moved < _GN_DONE:
            return q  # converged: no need for the Jacobian there
        trial = None if seen is None or seen[0] < corr else linearise(q, seen)
        if trial is not None:
            p, state = q, trial
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
