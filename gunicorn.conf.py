"""gunicorn settings for matcher's HTTP service (``python -m gunicorn -c gunicorn.conf.py service.wsgi:app``).

Everything can be overridden by the MATCHER_* variables below (documented in
``service/config.py``) or by gunicorn's own command-line flags.

Sizing: matching is CPU-bound, so one worker process per usable core, each
with MATCHER_THREADS threads (gthread): MATCHER_MAX_CONCURRENT of them may
compute at once (the app answers 503 beyond that), the others keep health
checks and refusals fast. OpenCV, BLAS and the FFTs get cores // workers
threads per worker (at least 1), so the workers together do not oversubscribe
the cores. glibc is told to keep large blocks in its heap (MATCHER_MALLOC_THRESHOLD),
which saves each request the page faults of fresh score maps. The app is not
preloaded: each worker imports NumPy/OpenCV after the fork (their thread
pools do not survive a fork).

gunicorn should sit behind a reverse proxy that buffers requests (nginx, a
cloud load balancer): a client that sends its body slowly holds a thread.
"""

import ctypes
import ctypes.util
import os


def _int(name, default):
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"gunicorn.conf.py: {name} must be an integer, got {value!r}") from None


_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

wsgi_app = "service.wsgi:app"
bind = [os.environ.get("MATCHER_BIND", "127.0.0.1:8000")]
workers = _int("MATCHER_WORKERS", _cores)
worker_class = "gthread"
threads = _int("MATCHER_THREADS", _int("MATCHER_MAX_CONCURRENT", 2) + 2)
worker_connections = 64 * threads  # open connections per worker (keep-alive ones included)
backlog = 128  # connections waiting to be accepted
timeout = _int("MATCHER_TIMEOUT", 60)
graceful_timeout = 30
keepalive = 5
max_requests = 1000  # recycle workers now and then: bounds any slow leak
max_requests_jitter = 100  # ...not all at once
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
preload_app = False
control_socket_disable = True  # gunicorn >= 25's control socket: unused, and its default path is shared
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("MATCHER_LOG_LEVEL", "info")
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files in memory (a container's /tmp may be a slow overlay)

numeric_threads = _int("MATCHER_NUM_THREADS", max(1, _cores // max(workers, 1)))
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


def post_fork(server, worker):
    """Size the numeric thread pools of each new worker (before it loads the app); tune malloc."""
    limit_threads(numeric_threads)
    kept = keep_large_blocks(malloc_threshold)
    server.log.info("worker %s: %d numeric thread(s), large blocks %s", worker.pid, numeric_threads,
                    "kept in the heap" if kept else "mapped per block (glibc default)")
