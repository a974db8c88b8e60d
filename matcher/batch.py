"""Matching templates in many images: the engine of ``matcher batch``.

Three steps, each usable on its own:

- :func:`collect_images` turns files, directories (walked recursively for
  image extensions) and glob patterns into a list of paths;
- :func:`process_image` reads one image and finds every template in it,
  returning a JSON-ready record; it never raises for a bad image, the error
  goes into the record;
- :func:`run` maps :func:`process_image` over the paths, either on the local
  machine (``"threads"``, ``"processes"`` or ``"sync"``: a pool of
  :mod:`concurrent.futures`, no server needed) or on an existing
  ``dask.distributed`` cluster (``"tcp://host:8786"``), and hands each record
  to a callback *as soon as it is done*, in completion order, so results can
  be streamed to a file.

On the local machine every worker scores one image at a time on one core
(:func:`matcher.set_num_threads` and OpenCV's threads set to the worker's
share of the cores): many images in parallel use the cores better than one
image split into bands, which small images cannot fill. A turned or scaled
search (``angles``, ``scales``) prepares each template once per worker
(:func:`matcher.search.rotated.turned_template`) and reuses it for every image.

A record (one line of ``matcher batch``'s JSONL output) is::

    {"path": "imgs/a.png",
     "image": {"format": "png", "width": 640, "height": 480, "channels": 1, "dtype": "uint8", "has_mask": false},
     "matches": [{"x": ..., "y": ..., "width": ..., "height": ..., "score": ..., "label": "logo", ...}],
     "error": null, "error_type": null, "elapsed_ms": 12.3}

or, when the image cannot be processed, ``"image": null, "matches": null`` and
``"error"``/``"error_type"`` set (e.g. ``"ImageDecodeError"``). ``elapsed_ms``
is the time to read, decode and match that image.
"""

import glob
import itertools
import json
import multiprocessing
import os
import threading
import time
import weakref
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import cv2

from .errors import MatcherError
from .headers import read_header
from .io import load_image
from .options import FindOptions
from .scores.engine import num_threads, set_num_threads

__all__ = [
    "IMAGE_EXTENSIONS",
    "LOCAL_SCHEDULERS",
    "DEFAULT_SCHEDULER",
    "SMALL_IMAGE_PIXELS",
    "choose_scheduler",
    "Template",
    "Job",
    "collect_images",
    "process_image",
    "run",
    "done_paths",
    "is_remote",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".dib", ".tif", ".tiff")
"""File name extensions picked up when walking a directory (case-insensitive)."""

LOCAL_SCHEDULERS = ("auto", "threads", "processes", "sync")
DEFAULT_SCHEDULER = "auto"
"""``"auto"`` asks :func:`choose_scheduler`, from the first images' headers."""
SMALL_IMAGE_PIXELS = 640 * 480
"""``"auto"`` runs processes for images up to this size, threads for larger ones.
Measured with ``bench/bench_batch.py`` (see the README): a small image cannot
fill the cores and holds the GIL for about a third of its time, so threads
gain nothing there (0.90x the loop at 240x180) and processes 1.75-1.77x;
a large one is split into bands that release the GIL, and threads, which
pickle nothing, win (1.65-1.73x against 1.49-1.58x at 1280x960)."""

_QUEUED_PER_WORKER = 4  # tasks waiting per worker: keeps every worker busy, bounds memory on huge runs
_IMAGES_PER_PROCESS_TASK = 8  # at most; fewer round trips to worker processes
_GLOB_CHARS = frozenset("*?[")
_USABLE_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_PREPARED = weakref.WeakKeyDictionary()  # Template -> its PreparedTemplate, for turned searches
_PREPARED_LOCK = threading.Lock()
_WORKER_JOB = None  # the Job of a worker process (set once by _start_worker_process)


@dataclass(frozen=True, eq=False)
class Template:
    """A template ready for matching: ``pixels`` as :func:`matcher.load_image`
    returns them, ``mask`` (alpha channel, a ``--mask`` file, or None) and the
    ``label`` given to its matches."""

    label: str
    pixels: object
    mask: object = None


@dataclass(frozen=True, eq=False)
class Job:
    """Everything a worker needs besides the image path: the templates, the
    colour mode to read images in (``"gray"`` or ``"color"``, that of the
    templates), keyword arguments for :func:`matcher.find`, and the pixel
    limit for decoding. Sent once to each worker of a cluster."""

    templates: tuple
    color: str = "gray"
    find_options: dict = field(default_factory=dict)
    max_pixels: "int | None" = None


def collect_images(inputs, *, extensions=IMAGE_EXTENSIONS):
    """Expand files, directories and glob patterns into a list of image paths.

    Parameters
    ----------
    inputs : iterable of str
        A file is taken as is (whatever its extension: if it is not an image
        its record will say so); a directory is walked recursively, in sorted
        order, for files with one of ``extensions``; anything else that
        contains ``*``, ``?`` or ``[`` is expanded as a glob pattern
        (``**`` matches any depth), for shells that do not expand them.
    extensions : tuple of str

    Returns
    -------
    list of str
        Without duplicates, in the order given.

    Raises
    ------
    MatcherError
        An input does not exist, or a pattern matches nothing.
    """
    exts = tuple(e.lower() for e in extensions)
    seen, out = set(), []

    def add(path):
        key = path_key(path)
        if key not in seen:
            seen.add(key)
            out.append(path)

    def expand(path):
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(exts):
                        add(os.path.join(root, name))
        else:
            add(path)

    for item in inputs:
        item = os.fspath(item)
        if os.path.exists(item):
            expand(item)
        elif _GLOB_CHARS.intersection(item):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise MatcherError(f"{item}: no file matches this pattern")
            for path in found:
                expand(path)
        else:
            raise MatcherError(f"{item}: no such file or directory")
    return out


def process_image(path, job, source=None):
    """Read one image and find every template of ``job`` in it.

    Parameters
    ----------
    path : str
        The path recorded in the result.
    job : Job
    source : str, optional
        Where to read the image from, if not ``path`` (e.g. its absolute path,
        for workers on a cluster whose working directory differs).

    Returns
    -------
    dict
        The record described in the module docstring. Errors (unreadable,
        corrupt or too large image, template larger than the image, ...) are
        recorded, never raised; matches of all templates are listed together,
        each template's best first, in template order, each with its label.
    """
    from .search.find import find  # deferred: workers import what they need on first use

    start = time.perf_counter()
    try:
        kwargs = {} if job.max_pixels is None else {"max_pixels": job.max_pixels}
        img = load_image(source or path, color=job.color, **kwargs)
        matches = []
        for t in job.templates:
            found = find(img.pixels, searched_template(t, job), mask=t.mask, **job.find_options)
            matches.extend(replace(m, label=t.label).to_dict() for m in found)
        record = {"path": path, "image": img.to_dict(), "matches": matches, "error": None, "error_type": None}
    except Exception as exc:  # noqa: BLE001 - a bad image must never stop the run
        record = error_record(path, exc)
    record["elapsed_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
    return record


def searched_template(template, job):
    """What :func:`matcher.find` searches for ``template`` (a :class:`Template`): its pixels, or for a turned
    or scaled search (``angles``, ``scales``) its :class:`~matcher.search.rotated.PreparedTemplate`, made
    on first use and kept for the next images (the turned banks are built once per worker, not per image)."""
    options = FindOptions.check(**job.find_options)
    if not options.turned:
        return template.pixels
    prepared = _PREPARED.get(template)
    if prepared is None:
        from .search.rotated import turned_template  # deferred: most runs never turn

        with _PREPARED_LOCK:
            prepared = _PREPARED.get(template)
            if prepared is None:
                turn = (options.angles, options.scales, options.angle_step, options.scale_step)
                prepared = _PREPARED[template] = turned_template(template.pixels, options.method, turn,
                                                                 mask=template.mask)
    return prepared


def error_record(path, exc):
    """The record of an image that could not be processed because of ``exc``."""
    if isinstance(exc, OSError) and exc.strerror:
        message = exc.strerror
    else:
        message = str(exc) or type(exc).__name__
    return {"path": path, "image": None, "matches": None, "error": message,
            "error_type": type(exc).__name__, "elapsed_ms": None}


def is_remote(scheduler):
    """True if ``scheduler`` is a cluster address (``"tcp://host:8786"``, ...), not a local scheduler name."""
    return isinstance(scheduler, str) and "://" in scheduler


def run(paths, job, on_record, *, scheduler=DEFAULT_SCHEDULER, num_workers=None, connect_timeout=10):
    """Process every path and call ``on_record(record)`` for each as it completes.

    Parameters
    ----------
    paths : sequence of str
    job : Job
    on_record : callable
        Called in the calling thread, once per path, in completion order.
    scheduler : str
        ``"auto"`` (the default) picks ``"processes"`` or ``"threads"`` by the
        first images' sizes (:func:`choose_scheduler`). ``"threads"`` or
        ``"processes"`` run a pool of that many workers on
        this machine (processes start the platform's default way: forked on
        Linux; each receives the job once), ``"sync"`` one image at a time in
        this thread (for debugging); while a local pool runs, each worker
        scores with its share of the cores (:func:`matcher.set_num_threads`
        and OpenCV's threads; with ``"threads"`` that setting is the whole
        process's until the run ends). An address such as
        ``"tcp://10.0.0.5:8786"`` uses an existing ``dask.distributed``
        scheduler: the job (templates) is scattered to every worker once and
        the workers read the images themselves (so the paths must be valid on
        the workers; they are made absolute).
    num_workers : int, optional
        Threads or processes of the local pool (default: one per core).
    connect_timeout : float
        Seconds to wait for a remote scheduler.
    """
    paths = list(paths)
    if not paths:
        return None
    if is_remote(scheduler):
        return _run_distributed(paths, job, on_record, scheduler, connect_timeout)
    if scheduler not in LOCAL_SCHEDULERS:
        raise MatcherError(f"scheduler must be one of {LOCAL_SCHEDULERS} or an address like tcp://host:8786, "
                           f"got {scheduler!r}")
    return _run_local(paths, job, on_record, scheduler, num_workers)


def _need(module, what):
    try:
        return __import__(module)
    except ImportError:
        raise MatcherError(f"{what} needs the {module!r} package: pip install {module}") from None


def choose_scheduler(pixels, *, start_method=None):
    """The local pool ``scheduler="auto"`` runs: ``"processes"`` for small images, ``"threads"`` for large ones.

    Processes are chosen only where they start by forking (Linux): a worker
    that must start a new interpreter and import matcher (``"spawn"``,
    ``"forkserver"``) costs more than a small image's whole search. Forked
    workers score with one thread each (matcher's and OpenCV's), so no
    thread pool inherited from the parent is used in them.

    Parameters
    ----------
    pixels : sequence of int
        The pixel counts of the first images (from their headers); empty if
        none could be read.
    start_method : str, optional, keyword-only
        The multiprocessing start method; default: the platform's.

    Returns
    -------
    str
        ``"processes"`` if the median of ``pixels`` is at most
        :data:`SMALL_IMAGE_PIXELS` and workers are forked, else ``"threads"``.

    Examples
    --------
    >>> choose_scheduler([240 * 180, 320 * 240], start_method="fork")
    'processes'
    >>> choose_scheduler([1280 * 960], start_method="fork")
    'threads'
    >>> choose_scheduler([240 * 180], start_method="spawn")
    'threads'
    """
    method = start_method or multiprocessing.get_start_method(allow_none=False)
    sizes = sorted(int(n) for n in pixels)
    if method != "fork" or not sizes:
        return "threads"
    return "processes" if sizes[len(sizes) // 2] <= SMALL_IMAGE_PIXELS else "threads"


def _header_pixels(paths, count=8):
    """Pixel counts of the first ``count`` readable image headers among ``paths`` (files that cannot be read
    are skipped: their records will say why)."""
    sizes = []
    for path in paths[:count]:
        try:
            with open(path, "rb") as f:
                header = read_header(f.read(1 << 16))
        except (OSError, MatcherError):
            continue
        sizes.append(header.pixels)
    return sizes


def _run_local(paths, job, on_record, scheduler, num_workers):
    if scheduler == "auto":
        scheduler = choose_scheduler(_header_pixels(paths))
    if scheduler == "sync":
        for path in paths:
            on_record(process_image(path, job))
        return
    workers = min(num_workers or _USABLE_CORES, len(paths))  # a single image gets every core
    threads_each = max(1, _USABLE_CORES // workers)  # each worker's share of the cores
    if scheduler == "threads":
        with _engine_threads(threads_each), ThreadPoolExecutor(workers, thread_name_prefix="matcher-batch") as pool:
            _stream(pool, [[p] for p in paths], lambda chunk: pool.submit(_process_chunk, chunk, job), on_record,
                    workers)
        return
    # The platform's default start method (fork on Linux: workers start in milliseconds, with matcher
    # imported); the job goes to each worker once, then chunks of paths.
    size = max(1, min(_IMAGES_PER_PROCESS_TASK, len(paths) // (workers * _QUEUED_PER_WORKER)))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    # A forked child inherits OpenCV's thread pool but not its threads: the first change of its thread count
    # (or a parallel call) then waits forever for threads that do not exist there. Set to one thread,
    # OpenCV's pthreads pool joins its workers at once, so the children start from an empty pool and make
    # their own. This process only collects records meanwhile.
    with _opencv_threads(1), ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(),
                                                 initializer=_start_worker_process,
                                                 initargs=(job, threads_each)) as pool:
        _stream(pool, chunks, lambda chunk: pool.submit(_process_chunk, chunk), on_record, workers)


def _stream(pool, chunks, submit, on_record, workers):
    """Submit ``chunks`` a few per worker at a time; hand over each record as its chunk completes."""
    it = iter(chunks)
    pending = {submit(c) for c in itertools.islice(it, workers * _QUEUED_PER_WORKER)}
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                for record in future.result():
                    on_record(record)
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(submit(nxt))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def _process_chunk(paths, job=None):
    """:func:`process_image` for each path (with the worker process's job when ``job`` is None)."""
    job = _WORKER_JOB if job is None else job
    return [process_image(p, job) for p in paths]


def _start_worker_process(job, threads):
    """A worker process's start: keep the job, and score with ``threads`` threads (matcher's and OpenCV's)."""
    global _WORKER_JOB
    _WORKER_JOB = job
    set_num_threads(threads)
    cv2.setNumThreads(threads)


@contextmanager
def _opencv_threads(threads):
    """OpenCV's thread count set to ``threads`` for the block (process-wide), then restored."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


@contextmanager
def _engine_threads(threads):
    """matcher's and OpenCV's thread counts set to ``threads`` for the block (process-wide), then restored."""
    if threads >= num_threads():
        yield
        return
    previous = set_num_threads(threads)
    try:
        with _opencv_threads(threads):
            yield
    finally:
        set_num_threads(previous)


def _run_distributed(paths, job, on_record, address, connect_timeout):
    _need("distributed", "a Dask cluster (--scheduler ADDRESS)")
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout=connect_timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise MatcherError(f"cannot connect to the Dask scheduler at {address}: {exc}") from None
    with client:
        job_future = client.scatter(job, broadcast=True)
        window = _window(client)
        pending = {}
        done = as_completed(loop=client.loop)
        it = iter(paths)

        def submit(path):
            fut = client.submit(process_image, path, job_future, os.path.abspath(path), pure=False)
            pending[fut.key] = path
            done.add(fut)

        for path in itertools.islice(it, window):
            submit(path)
        for fut in done:
            path = pending.pop(fut.key)
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker lost or killed: record it and go on
                record = error_record(path, exc)
            fut.release()
            on_record(record)
            nxt = next(it, None)
            if nxt is not None:
                submit(nxt)


def _window(client):
    """How many images to keep in flight on a cluster: enough to keep every worker busy."""
    return max(64, 8 * sum(client.nthreads().values()))


def done_paths(out_path):
    """The paths already recorded in a JSONL output file, for ``--resume``.

    A last line cut short by an interruption is removed from the file (so
    appending continues on a fresh line) and its image is processed again.

    Returns
    -------
    set of str
        Normalised absolute paths (compare with :func:`path_key`).
    """
    if not os.path.exists(out_path):
        return set()
    with open(out_path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # partial last line
            f.truncate(end)
    done = set()
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("path"), str):
            done.add(path_key(record["path"]))
    return done


def path_key(path):
    """Normalised absolute form of ``path``, to recognise an image however it was named."""
    return os.path.normcase(os.path.abspath(path))
