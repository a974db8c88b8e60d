"""Validation and normalisation of the engine's inputs (private).

Everything the public functions accept is checked here once and turned into
one canonical form: channel-first arrays ``(C, H, W)``. Templates and masks
are float64; images keep a compact dtype OpenCV works with (uint8, int8,
uint16, int16, float32, float64; bool becomes uint8, anything else float64),
so that a large image is not copied into float64 before it is needed.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import MatcherError, ParameterTypeError, TemplateTooLargeError
from ..methods import LOWER_IS_BETTER, METHODS, normalize_method  # noqa: F401 (re-exported until callers move)

MODES = ("correlate", "convolve")
PRECISIONS = ("fast", "exact")
ALGORITHMS = ("auto", "direct", "fft")

_ACCEPTED_KINDS = "biuf"  # bool, signed, unsigned, float


@dataclass(frozen=True)
class Problem:
    """A validated matching problem in canonical form.

    ``image`` is ``(C, H, W)`` in a compact dtype (see the module docstring);
    ``template`` and ``weights`` are ``(C, h, w)`` float64. ``weights`` is None when no mask was given. ``integer_valued``
    says the image holds integers (its window sums are exact in float64).
    """

    image: np.ndarray
    template: np.ndarray
    weights: "np.ndarray | None"
    method: str
    one_d: bool
    integer_valued: bool

    @property
    def out_shape(self):
        _, H, W = self.image.shape
        _, h, w = self.template.shape
        return (H - h + 1, W - w + 1)


def check_choice(name, value, allowed):
    """Raise unless ``value`` is one of the strings in ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise MatcherError(f"{name} must be one of {allowed}, got {value!r}", param=name)
    return value


def as_array(name, a):
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except Exception as exc:  # ragged lists and the like
            raise ParameterTypeError(f"{name} must be a numpy array, got {type(a).__name__}: {exc}",
                                     param=name) from None
    if arr.dtype.kind not in _ACCEPTED_KINDS:
        raise ParameterTypeError(
            f"{name} dtype must be bool, integer or float (uint8, uint16, int, float32, float64), got {arr.dtype}",
            param=name,
        )
    if arr.size == 0:
        raise MatcherError(f"{name} is empty (shape {arr.shape})", param=name)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise MatcherError(f"{name} contains NaN or infinite values; only finite values are allowed", param=name)
    return arr


_IMAGE_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.float32, np.float64)


def channels_first(name, arr, dtype=np.float64):
    """(N,) -> (1, 1, N); (H, W) -> (1, H, W); (H, W, C) -> (C, H, W), contiguous, in ``dtype``."""
    if arr.ndim == 1:
        arr = arr[None, :, None]
    elif arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3:
        if not 1 <= arr.shape[2] <= 4:
            raise MatcherError(f"{name} must have 1 to 4 channels in its last axis, got shape {arr.shape}",
                               param=name)
    else:
        raise MatcherError(f"{name} must be 1-D (N,), 2-D (H, W) or 3-D (H, W, C), got {arr.ndim}-D shape {arr.shape}",
                           param=name)
    return np.ascontiguousarray(np.moveaxis(arr, 2, 0), dtype=dtype)


def mask_weights(mask, template_shape, channels):
    mask = as_array("mask", mask)
    if mask.ndim == 1:
        mask = mask[None, :]
    hw = template_shape[1:]
    if mask.shape[:2] != hw or mask.ndim > 3 or (mask.ndim == 3 and mask.shape[2] not in (1, channels)):
        allowed = f"{hw}" if channels == 1 else f"{hw} or {hw + (channels,)}"
        raise MatcherError(f"mask shape {mask.shape} does not match the template: expected {allowed}", param="mask")
    if mask.dtype.kind in "biu":
        weights = (mask != 0).astype(np.float64)
    else:
        lo, hi = float(mask.min()), float(mask.max())
        if lo < 0 or hi > 1:
            raise MatcherError(f"float mask weights must lie in [0, 1], got values in [{lo:g}, {hi:g}]", param="mask")
        weights = mask.astype(np.float64)
    if weights.ndim == 2:
        weights = weights[:, :, None]
    weights = np.ascontiguousarray(np.broadcast_to(np.moveaxis(weights, 2, 0), (channels,) + hw))
    if not (weights > 0).any(axis=(1, 2)).all():
        raise MatcherError("mask selects no pixel (all zero) in at least one channel; at least one non-zero weight is required",
                           param="mask")
    return weights


def prepare_image(image):
    """Validate an image: ``(pixels (C, H, W), original shape, one_d, integer_valued)``.

    The pixels keep the image's dtype if it is one of ``_IMAGE_DTYPES``;
    bool becomes uint8, anything else float64.
    """
    img = as_array("image", image)
    dtype = np.uint8 if img.dtype == np.bool_ else img.dtype if img.dtype in _IMAGE_DTYPES else np.float64
    return channels_first("image", img, dtype), img.shape, img.ndim == 1, img.dtype.kind in "biu"


def prepare(image, template, method, *, mask=None, mode="correlate", prepared_image=None):
    """Validate the public arguments and return a :class:`Problem`.

    ``prepared_image`` is :func:`prepare_image`'s result for ``image``, to
    validate and convert an image once for several templates.
    """
    method = normalize_method(method)
    check_choice("mode", mode, MODES)
    img_c, img_shape, one_d, integer_valued = prepared_image or prepare_image(image)
    tpl = as_array("template", template)
    if tpl.ndim == 1:
        tpl = tpl[None, :]
    if one_d and tpl.shape[0] != 1:
        raise MatcherError(f"a 1-D image needs a 1-D template (or one row), got template shape {tpl.shape}",
                           param="template")
    tpl_c = channels_first("template", tpl)
    if img_c.shape[0] != tpl_c.shape[0]:
        raise MatcherError(
            f"template has {tpl_c.shape[0]} channel(s) but image has {img_c.shape[0]}; they must be equal",
            param="template",
        )
    if tpl_c.shape[1] > img_c.shape[1] or tpl_c.shape[2] > img_c.shape[2]:
        shown_t = tpl.shape if not one_d else (tpl.shape[-1],)
        raise TemplateTooLargeError(
            f"template {tuple(shown_t)} is larger than image {tuple(img_shape)}; "
            "the template must fit inside the image in every dimension",
            param="template",
        )
    weights = None if mask is None else mask_weights(mask, tpl_c.shape, tpl_c.shape[0])
    if mode == "convolve":
        tpl_c = np.ascontiguousarray(tpl_c[:, ::-1, ::-1])
        if weights is not None:
            weights = np.ascontiguousarray(weights[:, ::-1, ::-1])
    return Problem(img_c, tpl_c, weights, method, one_d, integer_valued)
