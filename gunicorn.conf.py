"""gunicorn settings for matcher's HTTP service (``python -m gunicorn -c gunicorn.conf.py``).

Everything can be overridden by the MATCHER_* variables below (documented in
``service/config.py``) or by gunicorn's own command-line flags.

Two gunicorn servers, one started by the other:

- **the front** (this file as run by that command): one asyncio worker
  (gunicorn's ``asgi`` class) running :mod:`service.front` on MATCHER_BIND.
  It holds every client connection (a slow client costs a coroutine, not a
  thread), reads each request whole, answers health checks, the page and the
  refusals itself, and queues matches for the compute pool in one queue
  (MATCHER_QUEUE): 503 + Retry-After, after the body is read, when it is full.
- **the compute pool** (this file again, with MATCHER_COMPUTE_BIND set, started
  by the front's ``on_starting`` and stopped by its ``on_exit``): MATCHER_WORKERS
  sync workers, one match each at a time, on a private Unix socket. Only an
  idle sync worker accepts, so the socket's backlog spreads the work, and only
  matches reach it, so only matches count towards ``max_requests``.

Sizing: matching is CPU-bound, so one compute worker per usable core. OpenCV,
BLAS and the FFTs get cores // workers threads per worker (at least 1), so the
workers together do not oversubscribe the cores. glibc is told to keep large
blocks in its heap (MATCHER_MALLOC_THRESHOLD), which saves each request the
page faults of fresh score maps. The app is not preloaded: each worker imports
NumPy/OpenCV after the fork (their thread pools do not survive a fork).
"""

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def _int(name, default):
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"gunicorn.conf.py: {name} must be an integer, got {value!r}") from None


_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_here = os.path.dirname(os.path.abspath(__file__))
compute_bind = os.environ.get("MATCHER_COMPUTE_BIND", "")  # set only for the compute pool
compute_workers = _int("MATCHER_WORKERS", _cores)
front_threads = _int("MATCHER_THREADS", 4)

pythonpath = _here
timeout = _int("MATCHER_TIMEOUT", 60)
graceful_timeout = 30
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
preload_app = False
control_socket_disable = True  # gunicorn >= 25's control socket: unused, and its default path is shared
errorlog = "-"
loglevel = os.environ.get("MATCHER_LOG_LEVEL", "info")
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files in memory (a container's /tmp may be a slow overlay)

if compute_bind:  # ---- the compute pool ------------------------------------------------------
    wsgi_app = "service.wsgi:app"
    bind = [compute_bind]
    workers = compute_workers
    worker_class = "sync"  # one match at a time; accepts only when idle
    backlog = 128
    max_requests = 1000  # recycle workers now and then (matches only): bounds any slow leak
    max_requests_jitter = 100  # ...not all at once
    proc_name = "matcher-compute"
else:  # ---- the front ------------------------------------------------------------------------
    wsgi_app = "service.front:create_front()"
    bind = [os.environ.get("MATCHER_BIND", "127.0.0.1:8000")]
    workers = 1  # one process holds the one queue: its asyncio loop keeps thousands of connections
    worker_class = "service.front_worker.FrontWorker"  # gunicorn's asgi worker, errors as problem+json
    backlog = 2048  # connections waiting to be accepted (the kernel caps it at net.core.somaxconn)
    keepalive = 5
    max_requests = 0  # never recycled for the requests it answers (refusals included)
    accesslog = "-"
    proc_name = "matcher-front"

numeric_threads = _int("MATCHER_NUM_THREADS", max(1, _cores // max(compute_workers, 1)))
malloc_threshold = _int("MATCHER_MALLOC_THRESHOLD", 32 << 20)  # bytes; 0 keeps glibc's default
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(numeric_threads))  # read when a worker first imports NumPy


def limit_threads(n):
    """Give this process's numeric work ``n`` threads: OpenCV's pool, matcher's bands and FFTs."""
    import cv2

    import matcher

    cv2.setNumThreads(n)
    matcher.set_num_threads(n)


def keep_large_blocks(threshold):
    """Let glibc serve blocks below ``threshold`` bytes from the heap, and keep freed memory.

    By default glibc maps every large block (a score map, an FFT buffer) with
    mmap and unmaps it on free, so each request pays page faults on fresh
    memory again: measured here, a third of a 1280x720 match went to the
    kernel. With this, the worker reuses the memory instead; its resident size
    stays near its high-water mark (bounded by the limits, and reset when
    max_requests recycles the worker). Returns whether glibc accepted it
    (False on another C library, or for ``threshold`` 0).
    """
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    threshold = min(threshold, 32 << 20)  # glibc's largest mmap threshold on 64-bit
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return threshold > 0 and bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, 4 * threshold))


def raise_open_files(limit=65536):
    """Raise this process's soft limit on open files towards ``limit`` (within the hard limit): the
    front holds one per connection, and the usual soft default (1024) is soon reached. Returns it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def post_fork(server, worker):
    """Size the numeric thread pools of each new worker (before it loads the app); tune malloc;
    let the front hold many connections."""
    limit_threads(numeric_threads)
    kept = keep_large_blocks(malloc_threshold)
    server.log.info("worker %s: %d numeric thread(s), large blocks %s", worker.pid, numeric_threads,
                    "kept in the heap" if kept else "mapped per block (glibc default)")
    if not compute_bind:
        server.log.info("worker %s: up to %d open files (connections)", worker.pid, raise_open_files())


def post_worker_init(worker):
    """Say when a worker has loaded the app and takes requests (the worker-kill runs time recovery by
    it); a compute worker also leaves a ready-PID file next to its socket, which the front waits for."""
    worker.log.info("worker %s ready", worker.pid)
    if compute_bind.startswith("unix:"):
        with open(os.path.join(os.path.dirname(compute_bind[5:]), f"ready-{worker.pid}"), "w"):
            pass


def _die_with_parent():
    """In the compute pool's master, before exec: get SIGTERM if the front's master dies (Linux)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_compute = {}  # the compute pool's master process, its directory, and whether the front is stopping
_compute_lock = threading.Lock()


def start_compute_pool(log, wait=60):
    """Start the compute pool on a private Unix socket; wait until its workers have loaded the app.

    (Waiting also keeps a stop that comes right after the start from reaching a worker that is still
    booting: gunicorn's workers ignore SIGTERM until they have set their signal handlers, and the
    pool would then take graceful_timeout to stop.) Sets the variables the front worker reads
    (service.front.FRONT_VARIABLES).
    """
    directory = tempfile.mkdtemp(prefix="matcher-")
    path = os.path.join(directory, "compute.sock")
    proc, ready = _launch_compute_pool(directory, path, wait)
    if proc.poll() is not None or not os.path.exists(path):
        stop_compute_pool(log)
        raise SystemExit(f"gunicorn.conf.py: the compute pool did not start (exit status {proc.poll()})")
    if ready < compute_workers:
        log.warning("compute pool: %d of %d workers ready after %d s; starting anyway", ready, compute_workers,
                    wait)
    os.environ.update(MATCHER_COMPUTE_SOCKET=path, MATCHER_COMPUTE_SLOTS=str(compute_workers),
                      MATCHER_FRONT_THREADS=str(front_threads), MATCHER_COMPUTE_TIMEOUT=str(timeout + 15))
    log.info("compute pool: %d sync worker(s) on %s (pid %d)", compute_workers, path, proc.pid)
    threading.Thread(target=_watch_compute_pool, args=(log, directory, path), name="compute-watch",
                     daemon=True).start()


def _launch_compute_pool(directory, path, wait):
    """Start the compute pool's master on ``path``; wait up to ``wait`` s for its workers. Returns
    (process, workers ready)."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):  # a previous pool's ready files (its socket: gunicorn replaces it)
        if name.startswith("ready-"):
            os.remove(os.path.join(directory, name))
    env = os.environ | {"MATCHER_COMPUTE_BIND": f"unix:{path}"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", os.path.abspath(__file__)], env=env,
                            preexec_fn=_die_with_parent)
    _compute["proc"], _compute["directory"] = proc, directory
    deadline = time.monotonic() + wait
    ready = lambda: sum(name.startswith("ready-") for name in os.listdir(directory))  # noqa: E731
    while time.monotonic() < deadline and proc.poll() is None and ready() < compute_workers:
        time.sleep(0.1)
    return proc, ready() if os.path.isdir(directory) else 0


def _watch_compute_pool(log, directory, path, every=0.5):
    """In the front's master: start the compute pool again, on the same socket, whenever its master
    exits while the front runs (killed, or crashed); matches meanwhile get 503 and /readyz says why."""
    while True:
        time.sleep(every)
        with _compute_lock:
            proc = _compute.get("proc")
            if _compute.get("stopping") or proc is None:
                return
            if proc.poll() is None:
                continue
            log.error("compute pool: its master (pid %d) exited with status %s; starting it again",
                      proc.pid, proc.returncode)
            proc, ready = _launch_compute_pool(directory, path, 60)
            log.info("compute pool: restarted, %d of %d worker(s) ready on %s (pid %d)", ready, compute_workers,
                     path, proc.pid)
        if proc.poll() is not None:  # it could not start: try again later, not in a tight loop
            time.sleep(10)


def stop_compute_pool(log):
    """SIGTERM the compute pool (it finishes its matches), SIGKILL it if it hangs; remove its directory."""
    _compute["stopping"] = True  # the watcher stops watching (and restarts nothing)
    with _compute_lock:
        proc = _compute.pop("proc", None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(graceful_timeout + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    directory = _compute.pop("directory", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def on_starting(server):
    """The front's master, before it binds MATCHER_BIND: start the compute pool."""
    if compute_bind:
        return
    given = getattr(server.app, "app_uri", wsgi_app)
    if given != wsgi_app:  # e.g. the old command, with service.wsgi:app after it: the front must run
        raise SystemExit(f"gunicorn.conf.py runs the front ({wsgi_app}), which starts the compute pool; "
                         f"drop the application argument {given!r}: python -m gunicorn -c gunicorn.conf.py")
    start_compute_pool(server.log)


def on_exit(server):
    """The front's master, after its worker finished: stop the compute pool. The compute pool's
    master: remove its private directory (also when it stops because the front's master died)."""
    if not compute_bind:
        stop_compute_pool(server.log)
    elif compute_bind.startswith("unix:"):
        shutil.rmtree(os.path.dirname(compute_bind[5:]), ignore_errors=True)
