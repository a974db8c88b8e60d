"""The search deadline: ``timeout=`` of find / find_many, checked between pieces of work (matcher.deadline).

No test measures time: a fake clock (``matcher.deadline.time``) advances one
second per reading, so "the deadline passes after the third check" is exact,
and proves that a strategy checks *between* its pieces, not only at the start.
"""

import threading

import numpy as np
import pytest

import matcher
from matcher import deadline, find, find_many, find_with_scores
from matcher.cli import main
from matcher.errors import MatcherError, ParameterTypeError, SearchTimeout
from matcher.scores import engine
from matcher.search.tiled import find_tiled

RNG = np.random.default_rng(7)
IMAGE = RNG.random((300, 320))
TEMPLATE = IMAGE[100:132, 150:190].copy()


class FakeClock:
    """``time`` for matcher.deadline: ``monotonic()`` returns 0, 1, 2, ... (thread-safe)."""

    def __init__(self):
        self.now, self.lock = -1.0, threading.Lock()

    def monotonic(self):
        with self.lock:
            self.now += 1.0
            return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(deadline, "time", fake)
    return fake


def test_a_tiny_timeout_raises_a_search_timeout_for_every_strategy():
    for kwargs in ({}, {"pyramid": True}, {"angles": (-10, 10)}, {"region": (50, 50, 200, 200)}):
        with pytest.raises(SearchTimeout, match="longer than its timeout of 1e-09 s") as info:
            find(IMAGE, TEMPLATE, timeout=1e-9, **kwargs)
        assert info.value.param == "timeout" and info.value.timeout == 1e-9 and info.value.elapsed > 0
    with pytest.raises(SearchTimeout):
        find_many(IMAGE, {"a": TEMPLATE, "b": TEMPLATE[:20]}, timeout=1e-9)
    with pytest.raises(SearchTimeout):
        find_with_scores(IMAGE, TEMPLATE, timeout=1e-9)


def test_a_large_timeout_changes_nothing():
    for kwargs in ({}, {"pyramid": True}, {"angles": (-10, 10)}):
        assert find(IMAGE, TEMPLATE, timeout=1e6, **kwargs) == find(IMAGE, TEMPLATE, **kwargs)
    templates = {"a": TEMPLATE, "b": TEMPLATE[:20]}
    assert find_many(IMAGE, templates, timeout=1e6, max_matches=3) == find_many(IMAGE, templates, max_matches=3)


def test_search_timeout_is_a_timeout_error_not_a_value_error():
    assert issubclass(SearchTimeout, TimeoutError)
    assert not issubclass(SearchTimeout, ValueError) and not issubclass(SearchTimeout, MatcherError)


@pytest.mark.parametrize("value, error", [(0, MatcherError), (-1.0, MatcherError), (float("nan"), MatcherError),
                                          (float("inf"), MatcherError), ("5", ParameterTypeError),
                                          (True, ParameterTypeError)])
def test_bad_timeouts_are_refused_naming_the_option(value, error):
    with pytest.raises(error) as info:
        find(IMAGE, TEMPLATE, timeout=value)
    assert info.value.param == "timeout" and "timeout" in str(info.value)


def test_the_tiled_search_checks_between_tiles(clock):
    # within() reads the clock once (0): the deadline is 5.5. Each tile reads it twice (the tile loop's
    # check, then the engine's): tiles 1 and 2 pass (1-4), tile 3 passes the loop (5) and the engine stops it (6).
    calls = []
    real = engine.match_templates

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("matcher.search.tiled.match_template",
                   lambda *a, **k: counting(a[0], [a[1]], a[2], masks=[k.get("mask")], precision=k["precision"])[0])
        with deadline.within(5.5), pytest.raises(SearchTimeout):
            find_tiled(IMAGE, TEMPLATE, tile=40)
    assert len(calls) == 3 and clock.now == 6.0  # of 7 x 8 tiles


def test_the_engine_checks_between_templates_and_in_its_pool_threads(clock):
    # Bands run in the engine's threads, which do not see the caller's context: the deadline is passed to them.
    previous = engine.set_num_threads(2)
    try:
        with deadline.within(1.5), pytest.raises(SearchTimeout):
            engine.match_templates(np.random.default_rng(0).random((1200, 600)), [TEMPLATE, TEMPLATE[:9]])
    finally:
        engine.set_num_threads(previous)


def test_the_turned_search_checks_between_poses(clock):
    with deadline.within(5.5), pytest.raises(SearchTimeout):
        find(IMAGE, TEMPLATE, angles=(-20, 20))
    assert clock.now == 6.0  # within() read 0, five checks passed, the sixth raised


def test_nesting_never_extends_the_deadline_and_the_context_is_restored(clock):
    with deadline.within(10.0):  # expires at 10
        outer = deadline.current()
        with deadline.within(100.0):  # would expire at 101: the outer one stays
            assert deadline.current() == outer
        with deadline.within(0.5):  # expires at 2.5, before the outer one
            assert deadline.current()[1] == 0.5
        assert deadline.current() == outer
    assert deadline.current() is None and deadline.remaining() is None
    deadline.check()  # no deadline: nothing to raise


def test_cli_timeout_flag(tmp_path, capsys):
    import cv2

    image = (RNG.random((200, 200)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "i.png"), image)
    cv2.imwrite(str(tmp_path / "t.png"), image[50:80, 60:90])
    assert main(["match", tmp_path / "i.png", tmp_path / "t.png", "--timeout", "0.000000001"]) == 124
    assert "--timeout" in capsys.readouterr().err
    assert main(["match", tmp_path / "i.png", tmp_path / "t.png", "--timeout", "60"]) == 0
    assert main(["match", tmp_path / "i.png", tmp_path / "t.png", "--timeout", "-1"]) == 2
    assert "--timeout" in capsys.readouterr().err
    assert "timeout" in matcher.options.OPTIONS


def test_under_a_deadline_a_large_map_is_checked_band_by_band(clock):
    # One template, one engine thread: without the deadline's bands the map would be scored in one piece
    # and checked once, and pass; under it, eight bands each check: 1, 2, 3 pass, 4 is past the deadline
    # of 3.5, and the bands already queued (5-8) stop at their check without scoring.
    previous = engine.set_num_threads(1)
    try:
        image = np.random.default_rng(1).random((1200, 600))
        with deadline.within(3.5), pytest.raises(SearchTimeout):
            engine.match_template(image, TEMPLATE)
        assert clock.now == 8.0
        engine.match_template(image, TEMPLATE)  # no deadline: nothing is checked
        assert clock.now == 8.0
    finally:
        engine.set_num_threads(previous)
