"""The service's configuration, its gunicorn settings, and the direction of dependencies."""

import pathlib
import runpy
import subprocess
import sys

import pytest

import service.config
from service import ConfigError, create_app
from service.config import SETTINGS, load_config

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_defaults_are_safe_and_documented():
    config = load_config(environ={})
    for s in SETTINGS:
        assert s.name in service.config.__doc__, f"{s.name} is not documented in service/config.py"
        assert config[s.name] == s.default
    assert config["MATCHER_API_KEYS"] == ()  # no auth by default...
    assert config["MATCHER_FORMATS"] == ("png", "jpeg", "webp", "bmp")
    assert config["MAX_CONTENT_LENGTH"] == config["MATCHER_MAX_REQUEST_BYTES"] == 64 << 20
    assert config["MAX_FORM_PARTS"] == 64 and config["MAX_FORM_MEMORY_SIZE"] == 512 << 10
    assert config["MATCHER_MAX_PIXELS"] < 10**8  # tighter than load_image's own default


def test_environment_overrides_defaults_and_config_overrides_both(monkeypatch):
    monkeypatch.setenv("MATCHER_MAX_PIXELS", "1_000_000")
    monkeypatch.setenv("MATCHER_MAX_REQUEST_BYTES", "123456")
    monkeypatch.setenv("MATCHER_API_KEYS", " a, b ,,")
    monkeypatch.setenv("MATCHER_FORMATS", "png, jpeg")
    app = create_app({"MATCHER_MAX_CONCURRENT": 5})
    assert app.config["MATCHER_MAX_PIXELS"] == 1_000_000
    assert app.config["MAX_CONTENT_LENGTH"] == 123456
    assert app.config["MATCHER_API_KEYS"] == ("a", "b")
    assert app.config["MATCHER_FORMATS"] == ("png", "jpeg")
    assert app.extensions["matcher"].gate.limit == 5
    assert create_app({"MATCHER_MAX_PIXELS": "77"}).config["MATCHER_MAX_PIXELS"] == 77


@pytest.mark.parametrize("name, value", [
    ("MATCHER_MAX_PIXELS", "lots"), ("MATCHER_MAX_WORK", "0"), ("MATCHER_MAX_CONCURRENT", "-1"),
    ("MATCHER_FORMATS", "png,gif"), ("MATCHER_FORMATS", ""), ("MATCHER_MAX_FORM_MEMORY", "1000"),
    ("MATCHER_API_KEYS", "caf\u00e9"), ("MATCHER_API_KEYS_FILE", "/nonexistent/keys"),
])
def test_malformed_settings_stop_the_app_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_config(environ={name: value})


def _gunicorn_settings(monkeypatch, **env):
    for key in ("MATCHER_BIND", "MATCHER_WORKERS", "MATCHER_THREADS", "MATCHER_NUM_THREADS", "MATCHER_MAX_CONCURRENT",
                "MATCHER_MALLOC_THRESHOLD", "MATCHER_COMPUTE_BIND",
                "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(key, "")  # records the original value, so that undo restores it...
        monkeypatch.delenv(key)  # ...even if gunicorn.conf.py sets it
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_settings(monkeypatch):
    """The front (the default role): one asyncio worker on MATCHER_BIND, never recycled; the compute
    pool (MATCHER_COMPUTE_BIND set): MATCHER_WORKERS sync workers on that socket, recycled."""
    cores = len(__import__("os").sched_getaffinity(0))
    conf = _gunicorn_settings(monkeypatch)
    assert conf["bind"] == ["127.0.0.1:8000"] and conf["wsgi_app"] == "service.front:create_front()"
    assert conf["workers"] == 1 and conf["worker_class"] == "service.front_worker.FrontWorker"
    assert conf["max_requests"] == 0 and conf["compute_workers"] == cores and conf["front_threads"] == 4
    assert conf["numeric_threads"] == 1 and conf["preload_app"] is False
    assert conf["timeout"] > 0 and conf["graceful_timeout"] > 0
    assert __import__("os").environ["OPENBLAS_NUM_THREADS"] == "1"
    conf = _gunicorn_settings(monkeypatch, MATCHER_COMPUTE_BIND="unix:/tmp/x.sock")
    assert conf["bind"] == ["unix:/tmp/x.sock"] and conf["wsgi_app"] == "service.wsgi:app"
    assert conf["workers"] == cores and conf["worker_class"] == "sync"
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]
    conf = _gunicorn_settings(monkeypatch, MATCHER_BIND="127.0.0.1:9999", MATCHER_WORKERS="1", MATCHER_THREADS="3")
    assert conf["bind"] == ["127.0.0.1:9999"] and conf["numeric_threads"] == cores and conf["front_threads"] == 3
    assert conf["compute_workers"] == 1


def test_gunicorn_post_fork_sizes_the_thread_pools(monkeypatch):
    import cv2
    import matcher

    conf = _gunicorn_settings(monkeypatch, MATCHER_NUM_THREADS="1", MATCHER_MALLOC_THRESHOLD="0")
    assert conf["malloc_threshold"] == 0 and conf["keep_large_blocks"](0) is False
    before_cv, before_matcher = cv2.getNumThreads(), matcher.set_num_threads(None)
    matcher.set_num_threads(before_matcher)
    server = type("Server", (), {"log": type("Log", (), {"info": lambda *a: None})()})()
    try:
        conf["post_fork"](server, type("Worker", (), {"pid": 1})())
        assert cv2.getNumThreads() == 1 and matcher.set_num_threads(before_matcher) == 1
    finally:
        cv2.setNumThreads(before_cv)
        matcher.set_num_threads(before_matcher)


def test_gunicorn_malloc_tuning_in_a_fresh_process():
    code = ("import runpy; conf = runpy.run_path('gunicorn.conf.py'); "
            "assert conf['malloc_threshold'] == 32 << 20; assert conf['keep_large_blocks'](1 << 40)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_matcher_never_imports_flask_or_the_service():
    code = ("import sys, matcher, matcher.search.find, matcher.render, matcher.io; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'service')]; "
            "sys.exit(f'matcher imported {bad}' if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for path in (ROOT / "matcher").glob("*.py"):
        text = path.read_text()
        assert "import flask" not in text.lower() and "from service" not in text, path


def test_python_m_service_help():
    result = subprocess.run([sys.executable, "-m", "service", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "--bind" in result.stdout and "--dev" in result.stdout
