"""A decoded image and its alpha channel: what :func:`matcher.load_image` returns.

Kept apart from the decoding (:mod:`matcher.io`) so that the search can take a
``LoadedImage`` as it is (its pixels, and its alpha channel as the template's
mask) without importing the file machinery.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["LoadedImage"]


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded image: ``pixels`` ``(H, W)`` gray or ``(H, W, 3)`` **RGB**, uint8 or
    uint16 as stored (a TIFF may also hold signed or 32-bit integers or floats:
    :data:`matcher.io.SAMPLE_TYPES`); ``mask`` the alpha channel ``(H, W)`` (same dtype) or None;
    ``format`` one of :data:`FORMATS`. ``width``, ``height``, ``channels`` (1 or 3)
    and ``dtype`` (e.g. ``"uint8"``) are derived from ``pixels``."""

    pixels: np.ndarray
    mask: "np.ndarray | None"
    format: str

    height = property(lambda self: int(self.pixels.shape[0]))
    width = property(lambda self: int(self.pixels.shape[1]))
    channels = property(lambda self: 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2]))
    dtype = property(lambda self: str(self.pixels.dtype))

    @property
    def matching_mask(self):
        """The mask matching should use: the alpha channel, or None without one or when it is fully
        opaque (it would mask nothing). :func:`matcher.find` applies it to a ``LoadedImage`` template,
        and so do the command line and the service: one rule."""
        if self.mask is None:
            return None
        opaque = 1.0 if self.mask.dtype.kind == "f" else np.iinfo(self.mask.dtype).max  # float alpha: 1 is opaque
        return None if self.mask.min() >= opaque else self.mask

    def to_dict(self):
        """JSON-ready metadata (no pixel data)."""
        return {"format": self.format, "width": self.width, "height": self.height,
                "channels": self.channels, "dtype": self.dtype, "has_mask": self.mask is not None}
