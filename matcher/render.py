"""Pictures of results: matches drawn on an image, score maps as heat maps, PNG bytes.

Used by the command line (``matcher match --annotate/--heatmap``) and by the
HTTP service. Every function returns a new array (inputs are never modified);
colours are **RGB**, like :func:`matcher.load_image`'s output.

>>> import numpy as np
>>> from types import SimpleNamespace as M
>>> out = draw_matches(np.zeros((20, 30), np.uint8), [M(x=5, y=4, width=10, height=8, score=0.9)], labels=False)
>>> out.shape, out.dtype, out[4, 5].tolist(), out[11, 14].tolist(), out[8, 9].tolist()
((20, 30, 3), dtype('uint8'), [255, 0, 0], [255, 0, 0], [0, 0, 0])
>>> encode_png(out)[:8]
b'\\x89PNG\\r\\n\\x1a\\n'
"""

from collections.abc import Mapping

import cv2
import numpy as np

from .scores.inputs import LOWER_IS_BETTER, normalize_method
from .errors import MatcherError

__all__ = ["draw_matches", "score_heatmap", "encode_png", "COLORMAP"]

COLORMAP = cv2.COLORMAP_VIRIDIS
"""The OpenCV colour map of :func:`score_heatmap`: dark purple (worst) to yellow (best)."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def to_display_rgb(image):
    """Convert an image to an ``(H, W, 3)`` uint8 RGB copy for display.

    uint8 is kept; uint16 is scaled by 255/65535; bool maps to 0/255; float
    data within [0, 1] is scaled by 255; any other data (floats outside
    [0, 1], other integer types outside [0, 255]) is stretched linearly from
    its min to its max (a constant image becomes black). Gray ``(H, W)`` or
    ``(H, W, 1)`` is repeated into three channels; a fourth (alpha) channel is
    dropped; a 1-D array is shown as one row.
    """
    a = np.asarray(image)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"image dtype must be bool, integer or float, got {a.dtype}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[:, :, :1] if a.shape[2] == 1 else a[:, :, :3]
    elif a.ndim != 2:
        raise MatcherError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.size == 0:
        raise MatcherError(f"image is empty (shape {a.shape})")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.uint16:
        u8 = np.round(a / 257.0).astype(np.uint8)
    elif a.dtype.kind == "b":
        u8 = a.astype(np.uint8) * 255
    else:
        f = a.astype(np.float64)
        finite = np.isfinite(f)
        lo, hi = (float(f[finite].min()), float(f[finite].max())) if finite.any() else (0.0, 0.0)
        if a.dtype.kind == "f" and lo >= 0 and hi <= 1:
            scaled = f * 255.0
        elif a.dtype.kind in "iu" and lo >= 0 and hi <= 255:
            scaled = f
        elif hi > lo:
            scaled = (f - lo) * (255.0 / (hi - lo))
        else:
            scaled = np.zeros_like(f)
        u8 = np.round(np.clip(np.where(finite, scaled, 0.0), 0, 255)).astype(np.uint8)
    if u8.ndim == 2:
        u8 = u8[:, :, None]
    if u8.shape[2] == 1:
        return np.repeat(u8, 3, axis=2)
    return np.array(u8, dtype=np.uint8, copy=True, order="C")


def _field(match, name):
    if isinstance(match, Mapping):
        return match[name]
    return getattr(match, name)


def _check_color(color):
    try:
        rgb = tuple(int(c) for c in color)
    except TypeError:
        raise TypeError(f"color must be an (R, G, B) tuple of ints, got {color!r}") from None
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise MatcherError(f"color must be an (R, G, B) tuple of ints in 0..255, got {color!r}")
    return rgb


def _format_score(score):
    score = float(score)
    if score == int(score) and abs(score) < 1e6:
        return str(int(score))
    return f"{score:.3f}" if abs(score) < 100 else f"{score:.4g}"


def draw_matches(image, matches, *, color=(255, 0, 0), thickness=2, labels=True):
    """Draw every match on a copy of ``image``.

    Parameters
    ----------
    image : array_like, shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
        Gray, RGB or RGBA; uint8, uint16, bool or float (converted for
        display as described in :func:`to_display_rgb`).
    matches : iterable
        Items with attributes (or keys) ``x``, ``y``, ``width``, ``height``,
        ``score``, best first (as :func:`matcher.find` returns them);
        sub-pixel coordinates are rounded to the nearest pixel.
    color : (R, G, B) tuple of ints
        Colour of boxes and labels.
    thickness : int
        Width of the box outline in pixels. The outline is drawn *inside* the
        match's window, so a box covers exactly the matched pixels.
    labels : bool
        Write ``rank: score`` (rank 1 = best) above each box (or inside it at
        the top when there is no room above). Labels are drawn before the
        boxes, so no label ever covers a box outline.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        RGB picture; ``image`` itself is never modified.
    """
    out = to_display_rgb(image)
    rgb = _check_color(color)
    if isinstance(thickness, bool) or not isinstance(thickness, (int, np.integer)) or thickness < 1:
        raise MatcherError(f"thickness must be a positive int, got {thickness!r}")
    H, W = out.shape[:2]
    boxes = []
    for m in matches:
        x, y = int(round(float(_field(m, "x")))), int(round(float(_field(m, "y"))))
        w, h = int(round(float(_field(m, "width")))), int(round(float(_field(m, "height"))))
        boxes.append((x, y, max(w, 1), max(h, 1), float(_field(m, "score"))))
    if labels:
        scale = max(0.35, min(H, W) / 1000.0)
        text_thick = max(1, int(round(scale * 1.5)))
        for rank, (x, y, w, h, score) in enumerate(boxes, start=1):
            text = f"{rank}: {_format_score(score)}"
            (tw, th), base = cv2.getTextSize(text, _FONT, scale, text_thick)
            tx = min(max(x, 0), max(W - tw, 0))
            ty = y - 3 if y - 3 - th >= 0 else min(y + thickness + th + 2, H - base)
            # dark halo first, so the text reads on any background
            cv2.putText(out, text, (tx, ty), _FONT, scale, (0, 0, 0), text_thick + 2, cv2.LINE_AA)
            cv2.putText(out, text, (tx, ty), _FONT, scale, rgb, text_thick, cv2.LINE_AA)
    for x, y, w, h, _ in boxes:
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
        if x0 >= x1 or y0 >= y1:
            continue
        t = thickness
        if y >= 0:
            out[y0:min(y0 + t, y1), x0:x1] = rgb
        if y + h <= H:
            out[max(y1 - t, y0):y1, x0:x1] = rgb
        if x >= 0:
            out[y0:y1, x0:min(x0 + t, x1)] = rgb
        if x + w <= W:
            out[y0:y1, max(x1 - t, x0):x1] = rgb
    return out


def score_heatmap(scores, image_shape, template_shape, *, method="ncc"):
    """Colour-map a score map into a picture aligned with the image.

    Parameters
    ----------
    scores : array_like, shape (H - h + 1, W - w + 1)
        :func:`matcher.match_template`'s output for an image of ``image_shape``
        and a template of ``template_shape`` (a 1-D map is one row).
    image_shape, template_shape : tuple
        ``(H, W)`` or ``(H, W, C)``, and ``(h, w)`` or ``(h, w, C)``.
    method : str, keyword-only
        The score's method. For lower-is-better methods (``"ssd"``,
        ``"ssd_normed"``) the colours are inverted, so the best match is
        always the hot (yellow) colour.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        RGB picture (colour map :data:`COLORMAP`). The score of the window
        whose top-left corner is ``(x, y)`` is painted at the window's centre,
        pixel ``(x + (w - 1) // 2, y + (h - 1) // 2)``; the border where no
        window centre falls gets the lowest (worst) colour. Scores are scaled
        from the map's minimum to its maximum; a constant map (no evidence
        either way) is painted all in the lowest colour. Non-finite scores
        are painted as the worst.

    Examples
    --------
    >>> import numpy as np
    >>> rgb = score_heatmap(np.array([[0.0, 1.0]]), (3, 4), (3, 3))
    >>> rgb.shape, (rgb[1, 2] != rgb[1, 1]).any(), (rgb[0, 0] == rgb[1, 1]).all()
    ((3, 4, 3), np.True_, np.True_)
    """
    method = normalize_method(method)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2:
        raise MatcherError(f"scores must be a 2-D score map, got shape {s.shape}")
    H, W = _hw("image_shape", image_shape)
    h, w = _hw("template_shape", template_shape)
    expected = (H - h + 1, W - w + 1)
    if s.shape != expected:
        raise MatcherError(
            f"scores shape {s.shape} does not fit image {(H, W)} and template {(h, w)}: expected {expected}"
        )
    finite = np.isfinite(s)
    level = np.zeros(s.shape, np.float64)
    if finite.any():
        lo, hi = float(s[finite].min()), float(s[finite].max())
        if hi > lo:
            level = (np.where(finite, s, lo) - lo) / (hi - lo)
            if method in LOWER_IS_BETTER:
                level = np.where(finite, 1.0 - level, 0.0)
    canvas = np.zeros((H, W), np.uint8)
    cy, cx = (h - 1) // 2, (w - 1) // 2
    canvas[cy:cy + s.shape[0], cx:cx + s.shape[1]] = np.round(level * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(canvas, COLORMAP)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _hw(name, shape):
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple like (H, W) or (H, W, C), got {shape!r}") from None
    if len(dims) == 1:
        dims = (1,) + dims
    if len(dims) not in (2, 3) or dims[0] < 1 or dims[1] < 1:
        raise MatcherError(f"{name} must be (H, W) or (H, W, C) with positive sizes, got {shape!r}")
    return dims[0], dims[1]


def encode_png(array):
    """Encode an image array as PNG bytes.

    Parameters
    ----------
    array : ndarray, shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
        Gray, RGB or RGBA (RGB order, as everywhere in matcher); uint8 or
        uint16 (stored as 16-bit PNG); bool is stored as 0/255.

    Returns
    -------
    bytes
    """
    a = np.asarray(array)
    if a.dtype.kind == "b":
        a = a.astype(np.uint8) * 255
    if a.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"encode_png needs uint8, uint16 or bool data, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2BGR)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGBA2BGRA)
    elif a.ndim != 2:
        raise MatcherError(f"encode_png needs an (H, W), (H, W, 3) or (H, W, 4) array, got shape {a.shape}")
    if a.size == 0:
        raise MatcherError(f"cannot encode an empty image (shape {a.shape})")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
    if not ok:  # pragma: no cover - OpenCV only fails on unsupported layouts, excluded above
        raise MatcherError(f"OpenCV could not encode a {a.shape} {a.dtype} array as PNG")
    return buf.tobytes()
