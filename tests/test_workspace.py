"""Working arrays lent between calls (matcher.scores.workspace), and the engine that borrows them."""

import functools
import os
import threading

import numpy as np
import pytest

from matcher import match_template
from matcher.scores.engine import match_templates
from matcher.scores import workspace
from matcher.scores.reference import match_template_reference


def run_in_fresh_thread(fn):
    """Run ``fn`` in a new thread (nothing kept yet) and return its result; its exceptions are raised here."""
    result, errors = [], []

    def target():
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller)
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return result[0]


def in_fresh_thread(test):
    """A test run in a new thread (whose workspace holds nothing yet)."""
    return functools.wraps(test)(lambda: run_in_fresh_thread(test))


@in_fresh_thread
def test_a_name_gets_the_same_memory_in_the_next_session():
    with workspace.session():
        first = workspace.empty("a", (40, 50), np.float64)
        other = workspace.empty("b", (40, 50), np.float64)
    with workspace.session():
        again = workspace.empty("a", (30, 20), np.float32)
    assert np.shares_memory(first, again)
    assert not np.shares_memory(first, other)
    assert again.shape == (30, 20) and again.dtype == np.float32


@in_fresh_thread
def test_a_larger_request_gets_a_larger_buffer():
    with workspace.session():
        small = workspace.empty("grow", (10, 10))
    with workspace.session():
        large = workspace.empty("grow", (100, 100))
        large[...] = 1.0  # all of it is writable memory of its own
    assert large.shape == (100, 100) and not np.shares_memory(small, large)


def test_outside_a_session_arrays_are_fresh():
    a = workspace.empty("a", (8, 8))
    b = workspace.empty("a", (8, 8))
    assert not np.shares_memory(a, b)


@in_fresh_thread
def test_a_nested_session_shares_nothing_with_the_outer_one():
    with workspace.session():
        outer = workspace.empty("x", (16, 16))
        with workspace.session():
            inner = workspace.empty("x", (16, 16))
            with workspace.session():  # nested twice: still not the outer's
                deeper = workspace.empty("x", (16, 16))
        assert not np.shares_memory(outer, inner) and not np.shares_memory(outer, deeper)
        assert np.shares_memory(outer, workspace.empty("x", (16, 16)))  # the outer session again


def test_large_arrays_are_not_kept():
    side = int(np.sqrt(workspace.LARGEST_BYTES // 8)) + 1
    with workspace.session():
        a = workspace.empty("big", (side, side))
    with workspace.session():
        b = workspace.empty("big", (side, side))
    assert not np.shares_memory(a, b)


def test_a_thread_keeps_at_most_kept_bytes_and_then_the_new_work():
    n = workspace.LARGEST_BYTES // 2 // 8  # float64 values in half the largest kept array
    count = 2 * workspace.KEPT_BYTES // (n * 8) + 2  # twice what may be kept

    def sessions(names, times):
        lent = []
        for _ in range(times):
            with workspace.session():
                lent.append([workspace.empty(name, (n,)) for name in names])
        return lent

    def run():
        many = sessions([f"n{i}" for i in range(count)], 2)
        few = sessions(["a", "b", "c"], 2)  # a smaller job after the large one: kept
        return many, few

    many, few = run_in_fresh_thread(run)
    kept = sum(np.shares_memory(a, b) for a, b in zip(*many))
    assert kept <= workspace.KEPT_BYTES // (n * 8)
    assert all(np.shares_memory(a, b) for a, b in zip(*few))


def test_work_larger_than_kept_bytes_keeps_reusing_its_first_arrays():
    """A session that needs more than KEPT_BYTES (a colour frame's split sums, say) keeps its first arrays
    from call to call and allocates the rest afresh: forgetting everything whenever the budget overflowed
    made every call fault all of its arrays in again (a 640x480 colour exact ncc: 55 -> 70 ms)."""
    n = workspace.LARGEST_BYTES // 2 // 8
    fit = workspace.KEPT_BYTES // (n * 8)
    names = [f"n{i}" for i in range(2 * fit + 2)]

    def run():
        calls = []
        for _ in range(3):
            with workspace.session():
                calls.append([workspace.empty(name, (n,)) for name in names])
        return calls

    first, second, third = run_in_fresh_thread(run)
    for a, b in ((first, second), (second, third)):
        shared = [np.shares_memory(x, y) for x, y in zip(a, b)]
        assert shared == [True] * fit + [False] * (len(names) - fit)


def test_threads_do_not_share_buffers():
    arrays = {}

    def run(key):
        with workspace.session():
            arrays[key] = workspace.empty("same", (32, 32))
            arrays[key][...] = key
            barrier.wait()
            assert (arrays[key] == key).all()

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=run, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not np.shares_memory(arrays[1], arrays[2])


def test_returned_maps_are_not_overwritten_by_the_next_call():
    rng = np.random.default_rng(0)
    first_image = rng.integers(0, 256, (240, 320), dtype=np.uint8)
    second_image = rng.integers(0, 256, (240, 320), dtype=np.uint8)
    template = first_image[40:56, 60:76].copy()
    first = match_template(first_image, template)
    kept = first.copy()
    match_template(second_image, template)
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("method", ["ncc", "ccorr_normed", "ssd", "ssd_normed", "ccoeff"])
def test_calls_of_changing_shapes_and_channels_agree_with_the_reference(method):
    """Buffers lent by name across calls whose shapes, dtypes and channels change, and several templates per call."""
    rng = np.random.default_rng(1)
    cases = [((240, 320), np.uint8, 16), ((200, 300, 3), np.float32, 9), ((240, 320), np.float32, 24),
             ((100, 130, 3), np.uint8, 12), ((240, 320), np.uint8, 16)]
    for shape, dtype, side in cases:
        image = (rng.random(shape) * 255).astype(dtype)
        templates = [image[10 : 10 + side, 20 : 20 + side].copy(), image[30 : 30 + side // 2, 5 : 5 + side].copy()]
        maps = match_templates(image, templates, method)
        for template, scores in zip(templates, maps):
            expected = match_template_reference(image, template, method)
            scale = max(1.0, float(np.abs(expected).max())) if method in ("ssd", "ccoeff") else 1.0
            np.testing.assert_allclose(scores, expected, rtol=0, atol=2e-4 * scale)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_its_own_copy_of_the_kept_buffers():
    """Batch forks workers after the parent has scored maps: their kept buffers must not be shared memory."""
    def run():
        with workspace.session():
            workspace.empty("fork-test", (64,))[...] = 1.0
        pid = os.fork()
        if pid == 0:  # the child lends the same name and writes it
            with workspace.session():
                workspace.empty("fork-test", (64,))[...] = 2.0
            os._exit(0)
        os.waitpid(pid, 0)
        with workspace.session():
            return workspace.empty("fork-test", (64,)).copy()

    assert (run_in_fresh_thread(run) == 1.0).all()
