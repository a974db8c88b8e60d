"""Validation and normalisation of the engine's inputs (private).

Everything the public functions accept is checked here once and turned into
one canonical form: channel-first arrays ``(C, H, W)``. Templates and masks
are float64; images keep a compact dtype OpenCV works with (uint8, int8,
uint16, int16, float32, float64; bool becomes uint8, anything else float64),
so that a large image is not copied into float64 before it is needed.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import MatcherError, ParameterTypeError, TemplateTooLargeError
from ..methods import LOWER_IS_BETTER, METHODS, get_method, normalize_method  # noqa: F401 (re-exported until callers move)

MODES = ("correlate", "convolve")
PRECISIONS = ("fast", "exact")
ALGORITHMS = ("auto", "direct", "fft")
CONTRACT = {"fast": 1e-4, "exact": 1e-9}
"""What each precision promises: the largest error against the float64 definition, of the score range."""
RECOMPUTE = {
    "fast": {"float32": CONTRACT["fast"], "float64": CONTRACT["fast"] / 100},
    "exact": {"float64": CONTRACT["exact"] / 10},
}
"""Windows whose error bound exceeds this (of the score range) are recomputed (in float64 or by definition),
by precision and by the arithmetic of the correlation: float32 ("fast" on large maps) from the contract
itself, float64 from a hundredth of it (its bounds rarely reach that: cheap, and "fast" stays close to
"exact" where it can); "exact" from a tenth of its contract."""

_ACCEPTED_KINDS = "biuf"  # bool, signed, unsigned, float


@dataclass(frozen=True)
class Problem:
    """A validated matching problem in canonical form.

    ``image`` is ``(C, H, W)`` in a compact dtype (see the module docstring);
    ``template`` and ``weights`` are ``(C, h, w)`` float64. ``weights`` is None when no mask was given. ``integer_valued``
    says the image holds integers (its window sums are exact in float64).
    Float data of extreme magnitude has been scaled by powers of two (see
    :func:`magnitude_shift`); the scores of the scaled problem times
    ``2**result_shift`` are the scores asked for (:func:`scale_back`).
    """

    image: np.ndarray
    template: np.ndarray
    weights: "np.ndarray | None"
    method: str
    one_d: bool
    integer_valued: bool
    result_shift: int = 0

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
        arr = arr.reshape(1, 1, -1)
    elif arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3:
        if not 1 <= arr.shape[2] <= 4:
            raise MatcherError(f"{name} must have 1 to 4 channels in its last axis, got shape {arr.shape}",
                               param=name)
        arr = arr.transpose(2, 0, 1)
    else:
        raise MatcherError(f"{name} must be 1-D (N,), 2-D (H, W) or 3-D (H, W, C), got {arr.ndim}-D shape {arr.shape}",
                           param=name)
    return np.ascontiguousarray(arr, dtype=dtype)  # a view, no copy, when already contiguous in dtype


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


# Float data whose largest magnitude lies outside [2**-_SAFE_EXPONENT, 2**_SAFE_EXPONENT]
# is scaled by a power of two (exact) into [0.5, 1): products of four values
# (the normalised scores' denominators) then neither overflow nor underflow.
_SAFE_EXPONENT = 64


def magnitude_shift(magnitude):
    """The exponent ``k`` to scale values of largest magnitude ``magnitude`` by ``2**-k``; 0 to leave them.

    Values within ``2**-64`` to ``2**64`` are left alone; others are brought
    into [0.5, 1). Multiplying by a power of two is exact (barring underflow
    of values far below the largest), so the scores of the scaled data are
    those of the original, scaled back by :func:`scale_back`.

    >>> magnitude_shift(1e300), magnitude_shift(3.0), magnitude_shift(0.0)
    (997, 0, 0)
    """
    magnitude = float(magnitude)
    if magnitude == 0.0 or 2.0**-_SAFE_EXPONENT <= magnitude <= 2.0**_SAFE_EXPONENT:
        return 0
    return math.frexp(magnitude)[1]


def _largest_magnitude(a):
    """``max |a|`` of contiguous ``(C, H, W)`` pixels (0 for integer data, which is never scaled)."""
    if a.dtype.kind != "f":
        return 0.0
    lo, hi, _, _ = cv2.minMaxLoc(a.reshape(-1, a.shape[-1]))  # one pass
    return max(hi, -lo)


def result_shift(method, image_shift, template_shift):
    """The power of two the scores of data scaled by ``2**-image_shift`` and ``2**-template_shift`` are off by.

    Normalised scores do not change (ssd_normed needs one common shift);
    ssd scales with the common factor squared, ccorr and ccoeff with the
    product of the two factors.
    """
    m = get_method(method)
    if m.normalised:
        return 0
    return 2 * template_shift if m.name == "ssd" else image_shift + template_shift


def scale_back(scores, shift, method):
    """``scores * 2**shift``, exactly; raise if a score overflows float64.

    Raises
    ------
    MatcherError
        A score beyond float64's largest value (``param="image"``).
    """
    if shift == 0:
        return scores
    with np.errstate(over="ignore"):
        out = np.ldexp(scores, shift)
    if not np.isfinite(out).all():
        largest = float(np.abs(scores).max())
        exponent = math.log10(largest) + shift * math.log10(2.0) if largest > 0 else float(shift) * math.log10(2.0)
        raise MatcherError(
            f"{method} scores overflow float64: the largest would be about 1e{exponent:.0f}, got image and template "
            f"values that large; {method} sums products of pixel values, so it allows scores up to "
            f"{np.finfo(np.float64).max:.3g} (values up to about 1e150 for small templates); "
            "the normalised methods (ncc, ccorr_normed, ssd_normed) accept any finite magnitude",
            param="image",
        )
    return out


def prepare_image(image, *, scale=True):
    """Validate an image: ``(pixels (C, H, W), original shape, one_d, integer_valued, magnitude, shift)``.

    The pixels keep the image's dtype if it is one of ``_IMAGE_DTYPES``;
    bool becomes uint8, anything else float64. ``magnitude`` is the largest
    absolute value of float data (0 for integers); with ``scale``, float
    pixels of extreme magnitude are divided by ``2**shift``
    (:func:`magnitude_shift`), else ``shift`` is 0.
    """
    img = as_array("image", image)
    dtype = np.uint8 if img.dtype == np.bool_ else img.dtype if img.dtype in _IMAGE_DTYPES else np.float64
    pixels = channels_first("image", img, dtype)
    magnitude = _largest_magnitude(pixels)
    shift = magnitude_shift(magnitude) if scale else 0
    if shift:
        pixels = np.ldexp(pixels, -shift).astype(pixels.dtype, copy=False)
    return pixels, img.shape, img.ndim == 1, img.dtype.kind in "biu", magnitude, shift


def prepare(image, template, method, *, mask=None, mode="correlate", prepared_image=None, scale=True):
    """Validate the public arguments and return a :class:`Problem`.

    ``prepared_image`` is :func:`prepare_image`'s result for ``image``, to
    validate and convert an image once for several templates. With
    ``scale`` (the default), float data of extreme magnitude is scaled by
    powers of two and ``Problem.result_shift`` says how to scale the scores
    back; ``scale=False`` keeps the values as given.
    """
    record = get_method(method)
    method = record.name
    if mode != "correlate":
        check_choice("mode", mode, MODES)
    img_c, img_shape, one_d, integer_valued, img_magnitude, img_shift = prepared_image or prepare_image(image, scale=scale)
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
        raise TemplateTooLargeError(
            f"template {_size(tpl.shape, one_d)} is larger than image {_size(img_shape, one_d)} "
            f"({'samples' if one_d else 'width x height' + (' x channels' if len(img_shape) == 3 else '')}); "
            "the template must fit inside the image in every dimension",
            param="template",
        )
    weights = None if mask is None else mask_weights(mask, tpl_c.shape, tpl_c.shape[0])
    t_magnitude = max(float(tpl_c.max()), -float(tpl_c.min()))
    t_shift = magnitude_shift(t_magnitude) if scale else 0
    if scale and record.lower_is_better:  # the ssd family subtracts T - I: one common factor
        t_shift = magnitude_shift(max(img_magnitude, t_magnitude))
        if t_shift != img_shift:  # rare: image and template of very different magnitudes
            img_c = np.ldexp(img_c if img_c.dtype.kind == "f" else img_c.astype(np.float64), img_shift - t_shift)
            integer_valued = integer_valued and t_shift <= img_shift
            img_shift = t_shift
    if t_shift:
        tpl_c = np.ldexp(tpl_c, -t_shift)
    if mode == "convolve":
        tpl_c = np.ascontiguousarray(tpl_c[:, ::-1, ::-1])
        if weights is not None:
            weights = np.ascontiguousarray(weights[:, ::-1, ::-1])
    shift = result_shift(record, img_shift, t_shift) if img_shift or t_shift else 0
    return Problem(img_c, tpl_c, weights, method, one_d, integer_valued, shift)


def _size(shape, one_d):
    """A shape as people write it: ``WxH`` (``WxHxC`` with channels), ``N`` for a 1-D signal.

    >>> _size((303, 384), False), _size((10, 12, 3), False), _size((1, 5), True)
    ('384x303', '12x10x3', '5')
    """
    if one_d:
        return str(shape[-1])
    return "x".join(str(n) for n in (shape[1], shape[0]) + tuple(shape[2:]))
