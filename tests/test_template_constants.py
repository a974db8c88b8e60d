"""The template's side of the assembly (matcher.scores.template_constants) against definitions written out here.

Kernels are the zero-mean template (ncc, ccoeff), weighted by ``M^2`` with a
mask (Padfield), the raw template otherwise, the template minus the image's
offset for shifted ssd; their energies, norms, residual sums and the
degenerate cases (constant and all-zero templates) follow from them.
"""

import math

import numpy as np
import pytest

from matcher.scores.image_channel import BandChannel
from matcher.scores.inputs import prepare
from matcher.scores.template_constants import TemplateConstants, template_constants

RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 256, (40, 50)).astype(np.uint8)
TEMPLATE = IMAGE[5:14, 7:18].copy()


def constants(method, template=TEMPLATE, image=IMAGE, mask=None, *, float64=True, centred_plane=True):
    p = prepare(image, template, method, mask=mask)
    channels = [BandChannel(c, p.image[c], p.integer_valued) for c in range(p.image.shape[0])]
    return p, channels, template_constants(p, channels, float64=float64, centred_plane=centred_plane)


def test_ncc_kernel_is_the_zero_mean_template_and_its_energy():
    _, channels, k = constants("ncc")
    t = TEMPLATE.astype(np.float64)
    dev = t - t.mean()
    np.testing.assert_allclose(k.kernels[0], dev, rtol=0, atol=1e-12)
    assert k.t_total == pytest.approx(float((dev**2).sum()), rel=1e-14)
    assert k.norms[0] == pytest.approx(math.sqrt((dev**2).sum()), rel=1e-14)
    assert k.n == TEMPLATE.size and k.sw == (float(TEMPLATE.size),)
    assert k.plane_shifts == (channels[0].centre,) and k.planes == ("centred",)
    assert k.residuals[0] >= abs(math.fsum(k.kernels[0].ravel()))  # a bound on the residual sum
    assert k.corrections is None and k.constant is None and not k.template_degenerate


def test_masked_ncc_kernel_is_weighted_by_the_squared_mask():
    mask = np.zeros(TEMPLATE.shape)
    mask[2:7, 1:9] = 1.0
    mask[0, 0] = 0.5
    _, _, k = constants("ncc", mask=mask)
    t = TEMPLATE.astype(np.float64)
    mean = (mask * t).sum() / mask.sum()
    want = mask**2 * (t - mean)
    np.testing.assert_allclose(k.kernels[0], want, rtol=0, atol=1e-10)
    assert k.sw == (float(mask.sum()),)
    assert k.corrections[0] == pytest.approx(math.fsum(want.ravel()) / mask.sum(), abs=1e-12)
    assert k.residuals == (0.0,)


def test_float32_normalised_kernels_have_unit_energy():
    _, _, k = constants("ccorr_normed", float64=False, centred_plane=False)
    assert k.t_total == 1.0
    assert k.norms[0] == pytest.approx(1.0, rel=1e-12)
    t = TEMPLATE.astype(np.float64)
    np.testing.assert_allclose(k.kernels[0], t / np.sqrt((t**2).sum()), rtol=1e-12)


def test_shifted_ssd_kernel_and_energy():
    hazy = (120 + IMAGE // 20).astype(np.uint8)  # a large DC offset: float32 ssd is centred
    tpl = hazy[5:14, 7:18].copy()
    _, channels, k = constants("ssd", template=tpl, image=hazy, float64=False, centred_plane=True)
    shift = channels[0].centre
    assert k.plane_shifts == (shift,) and shift != 0.0
    want = tpl.astype(np.float64) - shift
    np.testing.assert_allclose(k.kernels[0], want, rtol=0, atol=0)
    assert k.t_sq == pytest.approx(float((want**2).sum()), rel=1e-14)
    assert k.num_shifts == (k.raw_shifts[0] - shift,)


def test_colour_channels_each_get_their_kernel():
    img = RNG.integers(0, 256, (30, 30, 3)).astype(np.uint8)
    tpl = img[3:11, 4:12].copy()
    _, _, k = constants("ncc", template=tpl, image=img)
    assert len(k.kernels) == len(k.norms) == len(k.peaks) == 3
    t = tpl.astype(np.float64)
    for c in range(3):
        np.testing.assert_allclose(k.kernels[c], t[..., c] - t[..., c].mean(), rtol=0, atol=1e-12)
    total = sum(((t[..., c] - t[..., c].mean()) ** 2).sum() for c in range(3))
    assert k.t_total == pytest.approx(total, rel=1e-14)


def test_degenerate_templates():
    flat = np.full((6, 6), 7, np.uint8)
    assert constants("ncc", template=flat)[2].constant == 0.0  # no evidence anywhere, not a false 1.0
    assert constants("ccorr_normed", template=np.zeros((6, 6), np.uint8))[2].constant == 0.0
    zero = constants("ssd_normed", template=np.zeros((6, 6), np.uint8))[2]
    assert zero.template_degenerate and zero.constant is None


def test_constants_are_frozen():
    _, _, k = constants("ncc")
    assert isinstance(k, TemplateConstants)
    with pytest.raises(AttributeError):
        k.t_total = 0.0
