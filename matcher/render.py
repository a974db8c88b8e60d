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

from collections import namedtuple
from collections.abc import Mapping

import cv2
import numpy as np

from .scores.inputs import LOWER_IS_BETTER, normalize_method
from .errors import MatcherError

__all__ = ["encode_image", "IMAGE_FORMATS", "draw_matches", "layout_labels", "Label", "score_heatmap", "encode_png", "COLORMAP"]

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


def _turned(match):
    """Whether a match is of a turned or scaled template (drawn as its four corners)."""
    try:
        return (float(_field(match, "angle")), float(_field(match, "scale"))) != (0.0, 1.0)
    except (KeyError, AttributeError, TypeError):
        return False


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


Label = namedtuple("Label", "rank text x y width height")
Label.__doc__ = """A label's place in an annotated picture: ``text`` (one line per row) in the
rectangle whose top-left pixel is ``(x, y)``, ``width`` x ``height`` pixels, all inside the
picture. ``rank`` is the match's rank (1 = best), or None for the legend."""


def _boxes(matches):
    boxes = []
    for m in matches:
        x, y = int(round(float(_field(m, "x")))), int(round(float(_field(m, "y"))))
        w, h = int(round(float(_field(m, "width")))), int(round(float(_field(m, "height"))))
        boxes.append((x, y, max(w, 1), max(h, 1), float(_field(m, "score"))))
    return boxes


def _font(H, W):
    """(scale, thickness, padding) of the label text for an H x W picture."""
    scale = max(0.35, min(H, W) / 1000.0)
    thick = max(1, int(round(scale * 1.5)))
    return scale, thick, 2


def _text_size(lines, scale, thick, pad):
    sizes = [cv2.getTextSize(line, _FONT, scale, thick) for line in lines]
    line_h = max(th + base for (_, th), base in sizes) + 2
    return max(tw for (tw, _), _ in sizes) + 2 * pad, line_h * len(lines) - 2 + 2 * pad, line_h


def _outline_mask(boxes, H, W, t):
    mask = np.zeros((H, W), bool)
    for x, y, w, h, _ in boxes:
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
        if x0 >= x1 or y0 >= y1:
            continue
        mask[y0:y1, x0:x1] = True
        mask[min(y0 + t, y1):max(y1 - t, y0), min(x0 + t, x1):max(x1 - t, x0)] = False
    return mask


def _candidates(x, y, w, h, lw, lh, t, H, W):
    """Top-left corners to try for a lw x lh label of the box (x, y, w, h), in order of preference:
    outside the box (above, below, left, right), so that the matched pixels stay visible, then
    inside it (at the top, at the bottom); each also shifted into the picture."""
    spots = [(x, y - lh), (x + w - lw, y - lh), (x, y + h), (x + w - lw, y + h),
             (x - lw, y), (x + w, y), (x - lw, y + h - lh), (x + w, y + h - lh),
             (x + t, y + t), (x + w - t - lw, y + t), (x + t, y + h - t - lh), (x + w - t - lw, y + h - t - lh)]
    seen = set()
    for cx, cy in spots + [(min(max(cx, 0), W - lw), min(max(cy, 0), H - lh)) for cx, cy in spots]:
        if 0 <= cx <= W - lw and 0 <= cy <= H - lh and (cx, cy) not in seen:
            seen.add((cx, cy))
            yield cx, cy


def layout_labels(matches, image_shape, *, thickness=2):
    """Where :func:`draw_matches` writes its labels: a pure function of the matches and the size.

    Each match gets the label ``rank: score`` at the first free place around or inside its box
    (above, below, beside, then inside at the top or bottom), best match first. A place is free
    when it lies inside the picture and overlaps no label placed before. Four passes, each over the
    matches still without a label: the full label where it touches no outline and no other box;
    the rank alone, the same way; the full label, then the rank alone, where they cover the fewest
    pixels of other boxes (outlines are drawn over labels). Matches labelled with their rank alone
    are listed with their scores in a legend (one more :class:`Label`, ``rank=None``), put where it
    overlaps no label and no outline, nearest a corner; if there is no such place the legend is
    left out, and a box with no room even for its number gets no label.

    Parameters
    ----------
    matches : iterable
        As for :func:`draw_matches`.
    image_shape : tuple
        ``(H, W)`` or ``(H, W, C)`` of the picture.
    thickness : int
        The box outline's width, as for :func:`draw_matches`.

    Returns
    -------
    list of Label
        Pairwise disjoint rectangles inside the picture, in rank order, the legend (if any) last.

    Examples
    --------
    >>> from types import SimpleNamespace as M
    >>> layout_labels([M(x=10, y=30, width=40, height=20, score=0.5)], (60, 80))
    [Label(rank=1, text='1: 0.500', x=10, y=16, width=36, height=14)]
    """
    H, W = _hw("image_shape", image_shape)
    return _layout(_boxes(matches), H, W, thickness)


def _layout(boxes, H, W, thickness):
    scale, thick, pad = _font(H, W)
    outlines = _outline_mask(boxes, H, W, thickness)
    cover = np.zeros((H, W), np.int32)  # how many boxes cover each pixel
    for x, y, w, h, _ in boxes:
        cover[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] += 1
    taken = np.zeros((H, W), bool)
    placed = {}

    def place(rank, text, avoid_outlines):
        lw, lh, _ = _text_size([text], scale, thick, pad)
        x, y, w, h, _ = boxes[rank - 1]
        best = None  # (outline pixels covered, x, y): the first place covering the fewest
        for cx, cy in _candidates(x, y, w, h, lw, lh, thickness, H, W):
            if taken[cy:cy + lh, cx:cx + lw].any():
                continue
            # outline pixels, plus pixels inside another box (where the label would seem that box's)
            crossed = int(outlines[cy:cy + lh, cx:cx + lw].sum())
            others = cover[cy:cy + lh, cx:cx + lw].copy()
            others[max(y - cy, 0):max(y + h - cy, 0), max(x - cx, 0):max(x + w - cx, 0)] -= 1
            crossed += int((others > 0).sum())
            if (crossed == 0 or not avoid_outlines) and (best is None or crossed < best[0]):
                best = (crossed, cx, cy)
                if crossed == 0:
                    break
        if best is None:
            return False
        _, cx, cy = best
        taken[cy:cy + lh, cx:cx + lw] = True
        placed[rank] = Label(rank, text, cx, cy, lw, lh)
        return True

    ranks = range(1, len(boxes) + 1)
    full = {r: f"{r}: {_format_score(boxes[r - 1][4])}" for r in ranks}
    # Off the outlines first, the rank alone before a label crossing another box.
    for short, avoid in ((False, True), (True, True), (False, False), (True, False)):
        for r in ranks:
            if r not in placed:
                place(r, str(r) if short else full[r], avoid)
    labels = [placed[r] for r in ranks if r in placed]
    numbered = [r for r in ranks if r in placed and placed[r].text != full[r]]
    if numbered:
        lines = [full[r] for r in numbered]
        lw, lh, _ = _text_size(lines, scale, thick, pad)
        if lw <= W and lh <= H:
            busy = np.pad((taken | outlines).astype(np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
            ys, xs = np.arange(H - lh + 1), np.arange(W - lw + 1)
            used = (busy[ys[:, None] + lh, xs[None, :] + lw] - busy[ys[:, None], xs[None, :] + lw]
                    - busy[ys[:, None] + lh, xs[None, :]] + busy[ys[:, None], xs[None, :]])
            free = np.argwhere(used == 0)
            if len(free):  # the free place nearest a corner of the picture
                corner = np.minimum(free, [H - lh, W - lw] - free).sum(axis=1)
                cy, cx = (int(v) for v in free[int(np.argmin(corner))])
                labels.append(Label(None, "\n".join(lines), cx, cy, lw, lh))
    return labels


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
        Write ``rank: score`` (rank 1 = best) by each box, where
        :func:`layout_labels` puts it: above the box, else inside it, below
        it or beside it, wherever no other label is; no two labels overlap
        and none leaves the picture. When boxes are too crowded, some are
        numbered only and a legend lists their scores. Labels are drawn
        before the boxes, so no label ever covers a box outline.

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
    boxes = _boxes(matches)
    if labels:
        scale, text_thick, pad = _font(H, W)
        for label in _layout(boxes, H, W, int(thickness)):
            lines = label.text.split("\n")
            _, _, line_h = _text_size(lines, scale, text_thick, pad)
            # on a black ground, so the text reads on any picture (and stays inside its rectangle)
            out[label.y:label.y + label.height, label.x:label.x + label.width] = (0, 0, 0)
            for i, line in enumerate(lines):
                (_, th), _ = cv2.getTextSize(line, _FONT, scale, text_thick)
                origin = (label.x + pad, label.y + pad + th + i * line_h)
                cv2.putText(out, line, origin, _FONT, scale, rgb, text_thick, cv2.LINE_AA)
    for m, (x, y, w, h, _) in zip(matches, boxes):
        if _turned(m):  # the turned box itself (its bounding box placed the label)
            corners = np.round(np.asarray(_field(m, "corners"), np.float64) * 16).astype(np.int32)
            cv2.polylines(out, [corners.reshape(-1, 1, 2)], True, rgb, int(thickness), cv2.LINE_AA, shift=4)
            continue
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


IMAGE_FORMATS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg", ".webp": ".webp", ".bmp": ".bmp",
                 ".tif": ".tiff", ".tiff": ".tiff"}
"""File extensions :func:`encode_image` writes, and the encoder each names."""


def encode_image(array, extension=".png"):
    """Encode an image array in the format a file extension names (:data:`IMAGE_FORMATS`).

    As :func:`encode_png` for the array; JPEG and WebP are written at quality 95,
    and 16-bit data only in PNG and TIFF.

    Raises
    ------
    MatcherError
        An extension outside :data:`IMAGE_FORMATS`.

    Examples
    --------
    >>> encode_image(np.zeros((4, 4), np.uint8), ".jpg")[:2]
    b'\\xff\\xd8'
    """
    ext = IMAGE_FORMATS.get(str(extension).lower())
    if ext is None:
        raise MatcherError(f"cannot write images as {extension!r}: use one of {', '.join(IMAGE_FORMATS)}",
                           param="extension")
    if ext == ".png":
        return encode_png(array)
    a = cv2.imdecode(np.frombuffer(encode_png(array), np.uint8), cv2.IMREAD_UNCHANGED)  # BGR(A), checked
    if a.dtype == np.uint16 and ext != ".tiff":
        a = (a // 257).astype(np.uint8)
    if ext == ".jpg" and a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], ".webp": [cv2.IMWRITE_WEBP_QUALITY, 95]}.get(ext, [])
    ok, buf = cv2.imencode(ext, a, params)
    if not ok:  # pragma: no cover
        raise MatcherError(f"OpenCV could not encode a {a.shape} {a.dtype} array as {ext}")
    return buf.tobytes()


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
