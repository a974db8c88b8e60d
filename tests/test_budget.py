"""matcher.budget: the estimate grows with what costs, and the peak memory measured stays under it."""

import importlib.util
import pathlib

import pytest

from matcher.budget import MASKED_KERNELS, search_cost, template_work

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cost(**kw):
    args = {"channels": 1, "templates": [(16, 16, False)]} | kw
    return search_cost((1000, 800), **args)


def test_every_factor_of_the_issue_raises_the_estimate():
    base = cost()
    assert cost(channels=3).memory > base.memory and cost(channels=3).work == 3 * base.work
    masked = cost(templates=[(16, 16, True)])
    assert masked.memory > base.memory and masked.work == MASKED_KERNELS * base.work
    deep = cost(bytes_per_sample=2)
    assert deep.memory > base.memory and deep.work == base.work  # 16 bits: more memory, not more time
    alpha = cost(channels=3, file_channels=4)
    assert alpha.memory > cost(channels=3).memory
    many = cost(templates=[(16, 16, False)] * 16)
    assert many.memory > base.memory and many.work == 16 * base.work
    mixed = cost(templates=[(16, 16, False), (16, 16, True)])
    assert mixed.memory >= cost(templates=[(16, 16, True), (16, 16, False)]).memory  # order does not hide a mask


def test_region_and_search_factor():
    base = cost()
    small = cost(region=(0, 0, 100, 100))
    assert small.memory < base.memory and small.work == 85 * 85
    turned = cost(search_factor=36)
    assert turned.work == 36 * base.work and turned.memory == base.memory
    assert template_work(10, 3, True, 2.0) == 10 * 3 * MASKED_KERNELS * 2


def _bench():
    spec = importlib.util.spec_from_file_location("bench_budget", ROOT / "bench" / "bench_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", [
    (768, 3, 2, 32, False, 1, 1),  # colour, 16-bit, unmasked: the tightest ratio in bench_budget's grid
    (768, 3, 1, 16, True, 1, 2),  # masked, two engine threads
    (512, 1, 1, 16, False, 8, 1),  # a batch of 8 templates
], ids=["rgb16", "masked", "batch8"])
def test_measured_peak_memory_stays_under_the_estimate(case):
    # a fresh process per case: decode (load_image) and search, peak RSS above the baseline
    result = _bench().run(case)
    assert 0.3 * result["memory"] < result["peak"] <= result["memory"], result
