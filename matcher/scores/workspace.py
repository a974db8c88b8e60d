"""Working arrays kept between calls, one set per thread (private).

A score map's assembly needs a dozen arrays the size of the map (window sums,
planes, denominators, bounds, row-chunk buffers) that die when it returns.
Freshly allocated, each one's pages are faulted in on first touch: about a
microsecond per 4 KiB page, a third of the whole time of a small map
(320x240). :func:`session` lends the arrays under 4 MiB instead from
buffers the thread keeps from its previous call, by name:

    with session():
        plane = empty("plane/0", shape, np.float32)  # the same memory as last call's "plane/0"

Arrays are lent only inside a session and for its duration: a name must
belong to one live array at a time, and nothing lent may be returned to the
caller. A session opened inside another on the same thread lends nothing
(the outer one's arrays are in use). Outside a session
:func:`empty` is ``np.empty``. Each thread keeps at most :data:`KEPT_BYTES`
(past that it forgets the buffers its current session has not used, and
allocates afresh what still does not fit),
in buffers under :data:`LARGEST_BYTES`, mapped beside malloc's heap (inside
it they fragmented it: the large arrays of the next calls found no room
and were faulted in afresh, 10% on 2048^2 maps); larger arrays are allocated as
without a session (:func:`lend` says so with None, and OpenCV then
allocates its own outputs: NumPy's huge pages fault in slower).
"""

import mmap
import threading
from contextlib import contextmanager
from math import prod

import numpy as np

__all__ = ["session", "lend", "empty", "LARGEST_BYTES", "KEPT_BYTES"]

LARGEST_BYTES = 4 << 20
"""Arrays of this size and larger are not kept between calls (NumPy's threshold for huge pages)."""
KEPT_BYTES = 32 << 20
"""At most this many bytes are kept per thread."""

_LOCAL = threading.local()


class _Buffers:
    """One thread's kept buffers, by name, and the names lent in its current session."""

    def __init__(self):
        self.arrays = {}
        self.kept = 0
        self.used = set()

    def lend(self, name, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = prod(shape) * dtype.itemsize
        if nbytes >= LARGEST_BYTES:
            return None
        buf = self.arrays.get(name)
        if buf is None or buf.nbytes < nbytes:
            grown = self.kept - (0 if buf is None else buf.nbytes) + nbytes
            if grown > KEPT_BYTES:  # the work changed: forget the buffers this session has not used
                for stale in [n for n in self.arrays if n not in self.used and n != name]:
                    grown -= self.arrays.pop(stale).nbytes  # (arrays lent from them stay valid)
                if grown > KEPT_BYTES:  # this session's own work is larger: the rest is allocated afresh
                    return None
            # beside malloc's heap, not inside it; private: a forked child writes its own copy
            buf = np.frombuffer(mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE), np.uint8)
            self.arrays[name], self.kept = buf, grown
        self.used.add(name)
        return buf[:nbytes].view(dtype).reshape(shape)


@contextmanager
def session():
    """Lend working arrays to this thread's code until the block ends (see the module's notes)."""
    depth = getattr(_LOCAL, "depth", 0)
    _LOCAL.depth = depth + 1
    if depth == 0 and getattr(_LOCAL, "buffers", None) is not None:
        _LOCAL.buffers.used.clear()  # a new session: every kept buffer may be stale again
    try:
        yield
    finally:
        _LOCAL.depth = depth


def lend(name, shape, dtype=np.float64):
    """The array of ``shape`` and ``dtype`` the thread's session lends under ``name``, uninitialised; None
    outside a session, inside a nested one (at any depth: the outermost one's arrays are in use), or for
    arrays too large to keep (the caller allocates as it would without a session: OpenCV its own outputs,
    which it faults in faster than NumPy's huge pages)."""
    if getattr(_LOCAL, "depth", 0) != 1:
        return None
    kept = getattr(_LOCAL, "buffers", None)
    if kept is None:
        kept = _LOCAL.buffers = _Buffers()
    return kept.lend(name, tuple(shape), dtype)


def empty(name, shape, dtype=np.float64):
    """:func:`lend`, or ``np.empty`` where it lends nothing."""
    lent = lend(name, shape, dtype)
    return np.empty(shape, dtype) if lent is None else lent
