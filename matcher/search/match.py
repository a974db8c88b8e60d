"""What a search returns: :class:`Match`, one found template."""

from dataclasses import dataclass

import numpy as np

__all__ = ["Match"]


@dataclass(frozen=True)
class Match:
    """One found template.

    ``x``, ``y`` is the top-left corner of the matched window in full-image
    pixel coordinates (column, row; ints, or floats when refined to sub-pixel
    precision), ``width`` x ``height`` its size (the template's), ``score``
    the method's score of that window, computed by definition (float64).
    ``label`` names the template (None for :func:`matcher.find`), ``method``
    the score.

    A match of a turned or scaled template (:func:`matcher.search.rotated.find_rotated`)
    also has ``angle`` (degrees, counter-clockwise as displayed), ``scale``
    and ``corners``: the image points of the template's corner pixels (0, 0),
    (w-1, 0), (w-1, h-1), (0, h-1); ``x, y, width, height`` is then their
    axis-aligned bounding box. An unturned match has angle 0, scale 1 and the
    corners of its box.

    >>> Match(3, 4, 5, 2, 0.9, None, "ncc").center
    (5.0, 4.5)
    >>> Match(3, 4, 5, 2, 0.9).corners
    ((3, 4), (7, 4), (7, 5), (3, 5))
    """

    x: "int | float"
    y: "int | float"
    width: int
    height: int
    score: float
    label: "str | int | None" = None
    method: "str | None" = None
    angle: float = 0.0
    scale: float = 1.0
    corners: "tuple | None" = None

    def __post_init__(self):
        if self.corners is None:  # an unturned match: the corners of its box
            x1, y1 = self.x + self.width - 1, self.y + self.height - 1
            object.__setattr__(self, "corners", ((self.x, self.y), (x1, self.y), (x1, y1), (self.x, y1)))

    @property
    def center(self):
        """``(x, y)`` of the window's centre, in pixel-centre coordinates.

        Pixel ``(i, j)`` has its centre at ``(i, j)``, so a window of width
        ``w`` from ``x`` has its centre at ``x + (w - 1) / 2`` (a 3-pixel wide
        window at 0 is centred on pixel 1). For a turned match, the image point
        where the template's centre lies (the mean of the corners).
        """
        if self.angle == 0.0 and self.scale == 1.0:
            return (self.x + (self.width - 1) / 2, self.y + (self.height - 1) / 2)
        return tuple(float(sum(c[i] for c in self.corners) / 4.0) for i in (0, 1))

    @property
    def box(self):
        """``(x, y, width, height)``, the form ``region`` takes."""
        return (self.x, self.y, self.width, self.height)

    def moved(self, dx, dy):
        """The same match with its position shifted by ``(dx, dy)`` (region to image coordinates)."""
        if dx == 0 and dy == 0:
            return self
        corners = tuple((a + dx, b + dy) for a, b in self.corners)
        return Match(self.x + dx, self.y + dy, self.width, self.height, self.score, self.label, self.method,
                     angle=self.angle, scale=self.scale, corners=corners)

    def to_dict(self):
        """JSON-ready dict of plain Python numbers and strings."""
        cx, cy = self.center
        return {"label": _plain(self.label), "x": _plain(self.x), "y": _plain(self.y),
                "width": int(self.width), "height": int(self.height), "score": float(self.score),
                "center": {"x": float(cx), "y": float(cy)}, "method": self.method,
                "angle": float(self.angle), "scale": float(self.scale),
                "corners": [[float(a), float(b)] for a, b in self.corners]}


def _plain(v):
    """A numpy scalar as the Python number it holds; anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v
