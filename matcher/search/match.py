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

    >>> Match(3, 4, 5, 2, 0.9, None, "ncc").center
    (5.0, 4.5)
    """

    x: "int | float"
    y: "int | float"
    width: int
    height: int
    score: float
    label: "str | int | None" = None
    method: "str | None" = None

    @property
    def center(self):
        """``(x, y)`` of the window's centre, in pixel-centre coordinates.

        Pixel ``(i, j)`` has its centre at ``(i, j)``, so a window of width
        ``w`` from ``x`` has its centre at ``x + (w - 1) / 2`` (a 3-pixel wide
        window at 0 is centred on pixel 1).
        """
        return (self.x + (self.width - 1) / 2, self.y + (self.height - 1) / 2)

    @property
    def box(self):
        """``(x, y, width, height)``, the form ``region`` takes."""
        return (self.x, self.y, self.width, self.height)

    def moved(self, dx, dy):
        """The same match with its position shifted by ``(dx, dy)`` (region to image coordinates)."""
        if dx == 0 and dy == 0:
            return self
        return Match(self.x + dx, self.y + dy, self.width, self.height, self.score, self.label, self.method)

    def to_dict(self):
        """JSON-ready dict of plain Python numbers and strings."""
        cx, cy = self.center
        return {"label": _plain(self.label), "x": _plain(self.x), "y": _plain(self.y),
                "width": int(self.width), "height": int(self.height), "score": float(self.score),
                "center": {"x": float(cx), "y": float(cy)}, "method": self.method}


def _plain(v):
    """A numpy scalar as the Python number it holds; anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v
