"""Validation and normalisation of the public arguments.

Every caller error is a ``MatcherError`` (a ``ValueError``) or a
``TypeError`` whose message names the offending value and what is allowed;
the messages are pinned here. The accepted forms (method aliases, 1-D input,
(h, w, 1) colour, masks broadcast to the channels, lists) are checked against
independent results, not merely for running.
"""

import re

import cv2
import numpy as np
import pytest

import matcher
from matcher import (
    ALGORITHMS,
    METHODS,
    MODES,
    PRECISIONS,
    MatcherError,
    TemplateTooLargeError,
    match_template,
    match_template_reference,
)

FUNCS = pytest.mark.parametrize("func", [match_template, match_template_reference], ids=["engine", "reference"])
METHODS_MSG = "('ssd', 'ssd_normed', 'ccorr', 'ccorr_normed', 'ccoeff', 'ncc')"


def _data(colour=False, seed=0):
    rng = np.random.default_rng(seed)
    shape = (20, 24, 3) if colour else (20, 24)
    image = rng.normal(50.0, 10.0, shape)
    return image, image[3:7, 5:10].copy() + rng.normal(0, 1, (4, 5) + shape[2:])


def raises(exc, message):
    """pytest.raises with the whole message (escaped) or a regex (re.Pattern)."""
    pattern = message.pattern if isinstance(message, re.Pattern) else re.escape(message)
    return pytest.raises(exc, match=pattern)


# ---------------------------------------------------------------------------
# the public constants and the exception hierarchy
# ---------------------------------------------------------------------------


def test_constants():
    assert METHODS == ("ssd", "ssd_normed", "ccorr", "ccorr_normed", "ccoeff", "ncc")
    assert MODES == ("correlate", "convolve")
    assert PRECISIONS == ("fast", "exact")
    assert ALGORITHMS == ("auto", "direct", "fft")
    assert matcher.LOWER_IS_BETTER == ("ssd", "ssd_normed")
    opencv = [cv2.TM_SQDIFF, cv2.TM_SQDIFF_NORMED, cv2.TM_CCORR, cv2.TM_CCORR_NORMED, cv2.TM_CCOEFF, cv2.TM_CCOEFF_NORMED]
    assert [METHODS.index(m) for m in METHODS] == opencv


def test_exception_hierarchy():
    assert issubclass(MatcherError, ValueError)
    assert issubclass(TemplateTooLargeError, MatcherError)


# ---------------------------------------------------------------------------
# method: names, OpenCV constants and OpenCV names
# ---------------------------------------------------------------------------

OPENCV_NAMES = ("TM_SQDIFF", "TM_SQDIFF_NORMED", "TM_CCORR", "TM_CCORR_NORMED", "TM_CCOEFF", "TM_CCOEFF_NORMED")


@pytest.mark.parametrize("index", range(6))
def test_method_aliases_select_the_same_score(index):
    image, template = _data()
    name = METHODS[index]
    expected = match_template(image, template, name, precision="exact")
    for alias in (index, np.int64(index), np.uint8(index), OPENCV_NAMES[index], OPENCV_NAMES[index].lower()):
        got = match_template(image, template, alias, precision="exact")
        np.testing.assert_array_equal(got, expected, err_msg=repr(alias))
    # and the constant means what OpenCV means by it
    opencv = cv2.matchTemplate(image.astype(np.float32), template.astype(np.float32), index)
    np.testing.assert_allclose(expected, opencv, rtol=0, atol=1e-4 * float(np.ptp(opencv)) + 1e-6 * np.abs(opencv).max())


def test_default_method_is_ncc():
    image, template = _data()
    np.testing.assert_array_equal(match_template(image, template), match_template(image, template, "ncc"))
    np.testing.assert_array_equal(match_template_reference(image, template),
                                  match_template_reference(image, template, "ncc"))


@FUNCS
@pytest.mark.parametrize("method", ["foo", "TM_FOO", "", "NCC ", 6, -1, np.int32(7)])
def test_unknown_method(func, method):
    image, template = _data()
    expected = f"method must be one of {METHODS_MSG} or an OpenCV TM_* constant 0-5, got {method!r}"
    with raises(MatcherError, expected):
        func(image, template, method)


@FUNCS
@pytest.mark.parametrize("method", [True, False, np.bool_(True)])
def test_bool_method_is_a_type_error(func, method):
    image, template = _data()
    with raises(TypeError, f"method must be one of {METHODS_MSG} or an OpenCV TM_* constant 0-5, got {method!r}"):
        func(image, template, method)


@FUNCS
@pytest.mark.parametrize("method, type_name", [(5.0, "float"), (None, "NoneType"), (b"ncc", "bytes"), (["ncc"], "list")])
def test_method_of_another_type(func, method, type_name):
    image, template = _data()
    with raises(TypeError, f"method must be a string or an int, got {type_name}"):
        func(image, template, method)


# ---------------------------------------------------------------------------
# mode, precision, algorithm
# ---------------------------------------------------------------------------


@FUNCS
@pytest.mark.parametrize("mode", ["x", "Convolve", "", None, 1])
def test_unknown_mode(func, mode):
    image, template = _data()
    with raises(MatcherError, f"mode must be one of ('correlate', 'convolve'), got {mode!r}"):
        func(image, template, "ncc", mode=mode)


@pytest.mark.parametrize("precision", ["x", "EXACT", "", None, 1e-9])
def test_unknown_precision(precision):
    image, template = _data()
    with raises(MatcherError, f"precision must be one of ('fast', 'exact'), got {precision!r}"):
        match_template(image, template, "ncc", precision=precision)


@pytest.mark.parametrize("algorithm", ["gpu", "FFT", "", None])
def test_unknown_algorithm(algorithm):
    image, template = _data()
    with raises(MatcherError, f"algorithm must be one of ('auto', 'direct', 'fft'), got {algorithm!r}"):
        match_template(image, template, "ncc", algorithm=algorithm)


# ---------------------------------------------------------------------------
# sizes: template too large, empty arrays
# ---------------------------------------------------------------------------


@FUNCS
@pytest.mark.parametrize(
    "image_shape, template_shape",
    [
        ((100, 640), (120, 80)),  # too tall
        ((100, 640), (50, 641)),  # too wide
        ((20, 30), (25, 40)),  # larger in both dims: OpenCV would silently swap the two
        ((10, 10, 3), (12, 5, 3)),
        ((3,), (5,)),
    ],
)
def test_template_too_large(func, image_shape, template_shape):
    image, template = np.zeros(image_shape), np.ones(template_shape)
    def size(shape):  # as people write it: width x height (x channels); a 1-D signal's length
        return str(shape[0]) if len(shape) == 1 else "x".join(map(str, (shape[1], shape[0]) + shape[2:]))

    unit = {1: "samples", 2: "width x height", 3: "width x height x channels"}[len(image_shape)]
    expected = (f"template {size(template_shape)} is larger than image {size(image_shape)} ({unit}); "
                "the template must fit inside the image in every dimension")
    with raises(TemplateTooLargeError, expected):
        func(image, template, "ssd")


def test_opencv_swaps_a_larger_template_but_we_do_not():
    rng = np.random.default_rng(1)
    image = rng.random((20, 30)).astype(np.float32)
    template = rng.random((25, 40)).astype(np.float32)
    # OpenCV matches the image inside the "template" instead: a (6, 11) map, no error
    assert cv2.matchTemplate(image, template, cv2.TM_SQDIFF).shape == (6, 11)
    with pytest.raises(TemplateTooLargeError):
        match_template(image, template, "ssd")
    with pytest.raises(ValueError):  # still a ValueError for plain callers
        match_template(image, template, "ssd")


@FUNCS
@pytest.mark.parametrize("which, shape", [("image", (0, 5)), ("image", (0,)), ("template", (3, 0)), ("template", (0, 0, 3))])
def test_empty_arrays(func, which, shape):
    image, template = _data()
    args = {"image": image, "template": template, which: np.zeros(shape)}
    with raises(MatcherError, f"{which} is empty (shape {shape})"):
        func(args["image"], args["template"], "ncc")


@FUNCS
def test_empty_list_image(func):
    with raises(MatcherError, "image is empty (shape (0,))"):
        func([], [1.0], "ssd")


@FUNCS
def test_empty_mask(func):
    image, template = _data()
    with raises(MatcherError, "mask is empty (shape (0, 5))"):
        func(image, template, "ncc", mask=np.zeros((0, 5)))


# ---------------------------------------------------------------------------
# values: NaN and infinity
# ---------------------------------------------------------------------------


@FUNCS
@pytest.mark.parametrize("which", ["image", "template", "mask"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_finite_values(func, which, bad, dtype):
    image, template = _data()
    mask = np.ones(template.shape)
    arrays = {"image": image.astype(dtype), "template": template.astype(dtype), "mask": mask.astype(dtype)}
    arrays[which][1, 2] = bad
    with raises(MatcherError, f"{which} contains NaN or infinite values; only finite values are allowed"):
        func(arrays["image"], arrays["template"], "ncc", mask=arrays["mask"])


# ---------------------------------------------------------------------------
# shapes and channels
# ---------------------------------------------------------------------------


@FUNCS
@pytest.mark.parametrize(
    "image_shape, template_shape, n_template, n_image",
    [((20, 24), (4, 5, 3), 3, 1), ((20, 24, 3), (4, 5), 1, 3), ((20, 24, 4), (4, 5, 2), 2, 4), ((20, 24, 1), (4, 5, 3), 3, 1)],
)
def test_channel_mismatch(func, image_shape, template_shape, n_template, n_image):
    with raises(MatcherError, f"template has {n_template} channel(s) but image has {n_image}; they must be equal"):
        func(np.zeros(image_shape), np.ones(template_shape), "ssd")


@FUNCS
@pytest.mark.parametrize("image_shape, template_shape, which, bad_shape", [
    ((10, 10, 5), (3, 3, 5), "image", (10, 10, 5)),
    ((10, 10, 3), (3, 3, 5), "template", (3, 3, 5)),
    ((10, 10, 6), (3, 3), "image", (10, 10, 6)),
])
def test_too_many_channels(func, image_shape, template_shape, which, bad_shape):
    with raises(MatcherError, f"{which} must have 1 to 4 channels in its last axis, got shape {bad_shape}"):
        func(np.zeros(image_shape), np.ones(template_shape), "ssd")


@FUNCS
def test_zero_channels_is_empty(func):
    with raises(MatcherError, "image is empty (shape (10, 10, 0))"):
        func(np.zeros((10, 10, 0)), np.ones((3, 3)), "ssd")


@FUNCS
@pytest.mark.parametrize("which, value, ndim, shape", [
    ("image", np.zeros((2, 3, 4, 1)), 4, (2, 3, 4, 1)),
    ("image", np.float64(3.0), 0, ()),
    ("template", np.ones((1, 1, 1, 1)), 4, (1, 1, 1, 1)),
])
def test_wrong_number_of_dimensions(func, which, value, ndim, shape):
    arrays = {"image": np.zeros((10, 10)), "template": np.ones((2, 2)), which: value}
    with raises(MatcherError, f"{which} must be 1-D (N,), 2-D (H, W) or 3-D (H, W, C), got {ndim}-D shape {shape}"):
        func(arrays["image"], arrays["template"], "ssd")


@pytest.mark.parametrize("method", METHODS)
def test_single_channel_colour_is_gray(method):
    image, template = _data()
    mask = np.random.default_rng(3).random(template.shape)
    expected = match_template(image, template, method, mask=mask, precision="exact")
    for img, tpl, msk in [
        (image[:, :, None], template[:, :, None], mask),
        (image[:, :, None], template, mask[:, :, None]),
        (image, template[:, :, None], mask),
    ]:
        got = match_template(img, tpl, method, mask=msk, precision="exact")
        assert got.shape == expected.shape == (17, 20)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * max(float(np.ptp(expected)), 1.0))


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("method", ["ssd", "ccorr"])
def test_colour_scores_sum_over_channels(method, channels):
    """ssd and ccorr of a C-channel image are the sums of the per-channel scores (as in OpenCV)."""
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, (15, 18, channels)).astype(np.uint8)
    template = image[2:7, 3:9].copy()
    mask = rng.random((5, 6)) < 0.6
    mask[0, 0] = True
    got = match_template(image, template, method, mask=mask, precision="exact")
    per_channel = sum(
        match_template(image[:, :, c], template[:, :, c], method, mask=mask, precision="exact") for c in range(channels)
    )
    np.testing.assert_allclose(got, per_channel, rtol=1e-12)


# ---------------------------------------------------------------------------
# 1-D input
# ---------------------------------------------------------------------------


@FUNCS
def test_1d_image_and_template(func):
    signal = np.array([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0])
    got = func(signal, [3, 4, 5], "ssd")
    assert got.shape == (12,)
    np.testing.assert_allclose(got, [((signal[i : i + 3] - [3, 4, 5]) ** 2).sum() for i in range(12)], atol=1e-9)
    # a one-row template with a 1-D image: still 1-D out
    np.testing.assert_array_equal(func(signal, [[3, 4, 5]], "ssd"), got)
    # a one-row 2-D image keeps its 2-D shape, a 1-D template is one row
    two_d = func(signal[None, :], [3, 4, 5], "ssd")
    assert two_d.shape == (1, 12)
    np.testing.assert_array_equal(two_d[0], got)


@FUNCS
def test_1d_mask(func):
    signal = np.array([5.0, 1, 2, 9, 3, 4, 0, 7])
    got = func(signal, [1.0, 100.0, 2.0], "ssd", mask=[1, 0, 1])
    expected = [(signal[i] - 1) ** 2 + (signal[i + 2] - 2) ** 2 for i in range(6)]
    np.testing.assert_allclose(got, expected, atol=1e-9)


@FUNCS
def test_1d_image_needs_a_one_row_template(func):
    with raises(MatcherError, "a 1-D image needs a 1-D template (or one row), got template shape (2, 3)"):
        func(np.arange(10.0), np.ones((2, 3)), "ssd")


# ---------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------


@FUNCS
@pytest.mark.parametrize("colour, mask_shape, expected", [
    (False, (3, 3), "(4, 5)"),
    (False, (5, 4), "(4, 5)"),
    (False, (4, 5, 3), "(4, 5)"),
    (True, (3, 3), "(4, 5) or (4, 5, 3)"),
    (True, (4, 5, 2), "(4, 5) or (4, 5, 3)"),
    (True, (4, 5, 3, 1), "(4, 5) or (4, 5, 3)"),
    (False, (7,), "(4, 5)"),
])
def test_mask_shape_mismatch(func, colour, mask_shape, expected):
    image, template = _data(colour)
    with raises(MatcherError, f"mask shape {mask_shape if len(mask_shape) > 1 else (1,) + mask_shape} "
                              f"does not match the template: expected {expected}"):
        func(image, template, "ncc", mask=np.ones(mask_shape))


@FUNCS
@pytest.mark.parametrize("low, high", [(-0.5, 1.0), (0.0, 1.5), (-2.0, 3.0)])
def test_float_mask_weights_out_of_range(func, low, high):
    image, template = _data()
    mask = np.full(template.shape, 0.5)
    mask[0, 0], mask[-1, -1] = low, high
    with raises(MatcherError, f"float mask weights must lie in [0, 1], got values in [{low:g}, {high:g}]"):
        func(image, template, "ncc", mask=mask)


@FUNCS
@pytest.mark.parametrize("mask", [
    np.zeros((4, 5), bool),
    np.zeros((4, 5), np.uint8),
    np.zeros((4, 5)),
    np.dstack([np.ones((4, 5)), np.zeros((4, 5)), np.ones((4, 5))]),  # one channel selects nothing
], ids=["bool", "uint8", "float", "one-channel-empty"])
def test_mask_selecting_nothing(func, mask):
    image, template = _data(colour=mask.ndim == 3)
    with raises(MatcherError, "mask selects no pixel (all zero) in at least one channel; "
                              "at least one non-zero weight is required"):
        func(image, template, "ncc", mask=mask)


@pytest.mark.parametrize("method", METHODS)
def test_mask_broadcasts_to_the_channels(method):
    image, template = _data(colour=True)
    mask = np.random.default_rng(4).random((4, 5))
    mask[1, 1] = 0.0
    expected = match_template_reference(image, template, method, mask=np.repeat(mask[:, :, None], 3, axis=2))
    for m in (mask, mask[:, :, None], mask.tolist()):
        got = match_template(image, template, method, mask=m, precision="exact")
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * max(float(np.ptp(expected)), 1.0))


@pytest.mark.parametrize("method", METHODS)
def test_integer_and_bool_masks_mean_used_or_not(method):
    """Any non-zero integer selects the pixel with weight 1: same as a bool mask and as 0/1 float weights."""
    image, template = _data()
    used = np.random.default_rng(5).random(template.shape) < 0.6
    used[0, 0] = True
    expected = match_template(image, template, method, mask=used.astype(np.float64), precision="exact")
    scale = 1e-9 * max(float(np.ptp(expected)), 1.0)
    for m in (used, used.astype(np.uint8) * 255, used.astype(np.int64) * -7, used.astype(np.uint16) * 3):
        got = match_template(image, template, method, mask=m, precision="exact")
        np.testing.assert_allclose(got, expected, rtol=0, atol=scale, err_msg=str(m.dtype))
    # and a mask of all ones is no mask at all
    ones = match_template(image, template, method, mask=np.ones(template.shape, bool), precision="exact")
    np.testing.assert_allclose(ones, match_template(image, template, method, precision="exact"), rtol=0, atol=scale)


# ---------------------------------------------------------------------------
# non-array inputs and dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_lists_and_tuples_work(method):
    image, template = _data(colour=True)
    expected = match_template(image, template, method, precision="exact")
    np.testing.assert_array_equal(match_template(image.tolist(), template.tolist(), method, precision="exact"), expected)
    as_tuples = tuple(tuple(tuple(px) for px in row) for row in template.tolist())
    np.testing.assert_array_equal(match_template(image, as_tuples, method, precision="exact"), expected)


@FUNCS
@pytest.mark.parametrize("which", ["image", "template", "mask"])
@pytest.mark.parametrize("bad, dtype_name", [
    (lambda s: np.full(s, "a"), "<U1"),
    (lambda s: np.ones(s, dtype=object), "object"),
    (lambda s: np.ones(s, dtype=complex), "complex128"),
    (lambda s: np.ones(s, dtype="datetime64[s]"), "datetime64[s]"),
], ids=["str", "object", "complex", "datetime"])
def test_unsupported_dtypes_are_type_errors(func, which, bad, dtype_name):
    image, template = _data()
    arrays = {"image": image, "template": template, "mask": None}
    arrays[which] = bad(template.shape if which != "image" else image.shape)
    with raises(TypeError, f"{which} dtype must be bool, integer or float "
                           f"(uint8, uint16, int, float32, float64), got {dtype_name}"):
        func(arrays["image"], arrays["template"], "ssd", mask=arrays["mask"])


@FUNCS
def test_non_numeric_objects_are_type_errors(func):
    image, template = _data()
    with pytest.raises(TypeError, match=re.escape("image dtype must be bool, integer or float")):
        func(None, template, "ssd")
    with pytest.raises(TypeError, match=re.escape("template dtype must be bool, integer or float")):
        func(image, "abc", "ssd")
    with pytest.raises(TypeError, match=re.escape("image must be a numpy array, got list")):
        func([[1.0, 2.0], [3.0]], [[1.0]], "ssd")  # ragged


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32,
                                   np.float16, np.float32, np.float64])
@pytest.mark.parametrize("method", ["ssd", "ncc"])
def test_accepted_dtypes_give_the_float64_result(dtype, method):
    rng = np.random.default_rng(6)
    values = rng.integers(0, 2 if dtype is np.bool_ else 100, (16, 18))
    image = values.astype(dtype)
    template = image[4:9, 2:8].copy()
    got = match_template(image, template, method, precision="exact")
    expected = match_template_reference(values.astype(np.float64), template.astype(np.float64), method)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * max(float(np.ptp(expected)), 1.0))


def test_inputs_are_not_modified_and_output_is_fresh():
    image, template = _data(colour=True)
    mask = np.random.default_rng(7).random((4, 5))
    before = (image.copy(), template.copy(), mask.copy())
    for method in METHODS:
        for mode in MODES:
            out = match_template(image, template, method, mask=mask, mode=mode)
            assert out.flags.writeable and not np.shares_memory(out, image)
    np.testing.assert_array_equal(image, before[0])
    np.testing.assert_array_equal(template, before[1])
    np.testing.assert_array_equal(mask, before[2])


def test_non_contiguous_and_strided_inputs():
    rng = np.random.default_rng(8)
    big = rng.normal(0, 1, (60, 80, 3))
    image = big[::2, ::3]  # strided view
    template = np.asfortranarray(image[5:10, 7:13])
    expected = match_template_reference(np.ascontiguousarray(image), np.ascontiguousarray(template), "ncc")
    got = match_template(image, template, "ncc", precision="exact")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * float(np.ptp(expected)))
    # a transposed view is a different image
    got_t = match_template(image.transpose(1, 0, 2), template.transpose(1, 0, 2), "ncc", precision="exact")
    np.testing.assert_allclose(got_t, expected.T, rtol=0, atol=1e-9 * float(np.ptp(expected)))
