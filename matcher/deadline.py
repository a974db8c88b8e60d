"""A wall-clock deadline for one search, checked cooperatively by the engine.

:func:`matcher.find` and :func:`matcher.find_many` take ``timeout=`` (seconds,
default None: no limit). The search runs inside :func:`within`, which sets the
deadline for the current context; the long loops of the engine and of the
search strategies call :func:`check` between pieces of work (bands of a score
map, templates, tiles, pyramid candidates, turned poses) and get a
:class:`~matcher.errors.SearchTimeout` once it has passed. Nothing is
interrupted in the middle of a piece: how late the exception comes is the
length of one piece: a large score map is cut into at least 8 bands when a
deadline is in force (about an eighth of the map's time each), and callers
keep the rest bounded (the service with its work budget, :mod:`matcher.budget`).

Why a context variable rather than a deadline object passed down: the
deadline crosses every layer (find, strategies, engine) and several
strategies that other code also calls; a parameter on each of them would
change a dozen signatures for one cross-cutting concern, and a context
variable is also per thread and per asyncio task, so concurrent searches in
one process (the service's threads) each see their own. Worker threads do
not inherit it: code that hands work to a pool takes the deadline with
:func:`current` in the calling thread and passes it to :func:`check`.

>>> with within(None):
...     check()                 # no deadline: never raises
>>> with within(0.0):
...     check()
Traceback (most recent call last):
...
matcher.errors.SearchTimeout: the search took longer than its timeout of 0 s
"""

import contextlib
import contextvars
import time

from .errors import SearchTimeout

__all__ = ["within", "check", "current", "remaining"]

_DEADLINE = contextvars.ContextVar("matcher_deadline", default=None)  # (expires, timeout, start) or None


@contextlib.contextmanager
def within(timeout):
    """Run the body under a deadline of ``timeout`` seconds from now (None: no new deadline).

    An enclosing deadline that expires earlier stays in force: nesting never
    extends the time allowed.

    Parameters
    ----------
    timeout : float or None
        Seconds, ``>= 0``; checked by the options spec before it gets here.
    """
    if timeout is None:
        yield
        return
    now = time.monotonic()
    mine = (now + float(timeout), float(timeout), now)
    outer = _DEADLINE.get()
    token = _DEADLINE.set(mine if outer is None or mine[0] < outer[0] else outer)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def current():
    """The deadline in force in this context (an opaque value for :func:`check`), or None."""
    return _DEADLINE.get()


def check(deadline=...):
    """Raise :class:`~matcher.errors.SearchTimeout` if the deadline has passed.

    Parameters
    ----------
    deadline : optional
        A value :func:`current` returned (for code running in another thread);
        default: this context's deadline.
    """
    deadline = _DEADLINE.get() if deadline is ... else deadline
    if deadline is not None:
        now = time.monotonic()
        if now >= deadline[0]:
            raise SearchTimeout(f"the search took longer than its timeout of {deadline[1]:g} s",
                                timeout=deadline[1], elapsed=now - deadline[2])


def remaining():
    """Seconds left before this context's deadline (may be negative), or None without one."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline[0] - time.monotonic()
