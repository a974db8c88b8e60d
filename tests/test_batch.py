"""``matcher batch`` and matcher.batch: many images, bad ones recorded, streaming, resume, Dask.

Every scheduler (sync, threads, processes, a dask.distributed LocalCluster)
must give the records a plain sequential loop of ``find`` calls gives.
"""

import io
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from matcher import batch
from matcher.cli import main
from matcher.errors import MatcherError
from matcher.search.find import find
from matcher.io import load_image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CAMERA, CAMCORDER = SAMPLES / "camera.png", SAMPLES / "camera_camcorder.png"
COINS, COIN = SAMPLES / "coins.png", SAMPLES / "coins_coin.png"
LABEL = "camera_camcorder"


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """A tree of images with the camcorder at known places, and a few bad files.

    Returns (root, expected) with expected {relative path: (x, y) or error type}.
    """
    root = tmp_path_factory.mktemp("images")
    camera = cv2.imread(str(CAMERA), cv2.IMREAD_UNCHANGED)
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty_dir").mkdir()
    cv2.imwrite(str(root / "a.png"), camera)
    cv2.imwrite(str(root / "sub" / "b.png"), camera[100:400, 150:450])
    cv2.imwrite(str(root / "sub" / "deeper" / "c.bmp"), camera[50:300, 200:400])
    cv2.imwrite(str(root / "d.PNG"), np.roll(camera, (-40, 30), axis=(0, 1)))
    cv2.imwrite(str(root / "small.png"), camera[:50, :50])
    data = CAMERA.read_bytes()
    (root / "corrupt.png").write_bytes(data[: len(data) // 3])
    (root / "sub" / "not_an_image.jpg").write_text("hello\n")
    (root / "notes.txt").write_text("not picked up: not an image extension\n")
    expected = {
        "a.png": (248, 132), "sub/b.png": (98, 32), "sub/deeper/c.bmp": (48, 82), "d.PNG": (278, 92),
        "small.png": "TemplateTooLargeError", "corrupt.png": "ImageDecodeError",
        "sub/not_an_image.jpg": "UnsupportedFormatError",
    }
    return root, expected


def oracle(path, templates=((LABEL, CAMCORDER),), **options):
    """What a record's matches must be: a plain sequential find per template (or the error type)."""
    try:
        pixels = load_image(path, color="gray").pixels
        out = []
        for label, template in templates:
            out += [dict(m.to_dict(), label=label) for m in find(pixels, load_image(template).pixels, **options)]
        return out
    except (MatcherError, OSError) as exc:
        return type(exc).__name__


def read_records(path):
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines]


def by_path(records, root):
    return {os.path.relpath(r["path"], root).replace(os.sep, "/"): r for r in records}


def check_record(rec):
    assert set(rec) == {"path", "image", "matches", "error", "error_type", "elapsed_ms"}
    if rec["error"] is None:
        assert rec["error_type"] is None and isinstance(rec["matches"], list)
        assert {"width", "height", "channels", "format"} <= set(rec["image"])
        assert rec["elapsed_ms"] > 0
    else:
        assert rec["matches"] is None and rec["image"] is None
        assert isinstance(rec["error"], str) and rec["error"] and isinstance(rec["error_type"], str)


def assert_same_as_sequential(records, root, expected):
    got = by_path(records, root)
    assert sorted(got) == sorted(expected)
    for rel, rec in got.items():
        check_record(rec)
        want = oracle(root / rel)
        if isinstance(want, str):
            assert rec["error_type"] == want == expected[rel], rel
        else:
            assert rec["matches"] == want, rel
            assert (want[0]["x"], want[0]["y"]) == expected[rel]


# ---------------------------------------------------------------- collecting the images

def test_collect_images_walks_directories_and_expands_globs(image_dir):
    root, _ = image_dir
    rel = lambda paths: [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]  # noqa: E731
    walked = rel(batch.collect_images([str(root)]))
    # sorted, a directory's files before its subdirectories; only image extensions (any case)
    assert walked == ["a.png", "corrupt.png", "d.PNG", "small.png", "sub/b.png", "sub/not_an_image.jpg",
                      "sub/deeper/c.bmp"]
    # a file given explicitly is taken whatever its extension; duplicates are dropped
    assert rel(batch.collect_images([str(root / "notes.txt"), str(root / "a.png"), str(root)]))[:3] == \
        ["notes.txt", "a.png", "corrupt.png"]
    assert len(batch.collect_images([str(root / "a.png"), str(root)])) == 7
    assert rel(batch.collect_images([str(root / "*.png")])) == ["a.png", "corrupt.png", "small.png"]
    assert rel(batch.collect_images([str(root / "**" / "*.bmp")])) == ["sub/deeper/c.bmp"]
    assert rel(batch.collect_images([str(root / "su?")])) == ["sub/b.png", "sub/not_an_image.jpg", "sub/deeper/c.bmp"]
    assert batch.collect_images([str(root / "empty_dir")]) == []
    with pytest.raises(MatcherError, match="missing: no such file or directory"):
        batch.collect_images([str(root / "missing")])
    with pytest.raises(MatcherError, match=r"\*\.gif: no file matches this pattern"):
        batch.collect_images([str(root / "*.gif")])


# ---------------------------------------------------------------- running

@pytest.mark.parametrize("scheduler", [None, "sync", "processes"])
def test_batch_over_a_directory_records_every_image(image_dir, tmp_path, capsys, scheduler):
    root, expected = image_dir
    out = tmp_path / "results.jsonl"
    argv = ["batch", str(CAMCORDER), str(root), "--out", str(out)]
    if scheduler:
        argv += ["--scheduler", scheduler]
    assert main(argv) == 0
    assert capsys.readouterr() == ("", "")  # not a terminal: no progress bar, no summary
    records = read_records(out)
    assert_same_as_sequential(records, root, expected)
    got = by_path(records, root)
    assert all(m["label"] == LABEL for r in records if r["matches"] for m in r["matches"])
    assert "truncated PNG" in got["corrupt.png"]["error"]
    assert "larger than image" in got["small.png"]["error"]
    assert got["a.png"]["image"]["width"] == 512 and got["sub/b.png"]["image"]["height"] == 300


def test_options_are_passed_to_find(image_dir, tmp_path):
    root, _ = image_dir
    out = tmp_path / "r.jsonl"
    options = ["--method", "ssd_normed", "--max-matches", "2", "--max-overlap", "0.1", "--subpixel"]
    assert main(["batch", str(CAMCORDER), str(root / "a.png"), str(root / "sub"), "--out", str(out), *options]) == 0
    for rec in read_records(out):
        if rec["error"] is None:
            want = oracle(rec["path"], method="ssd_normed", max_matches=2, max_overlap=0.1, subpixel=True)
            assert rec["matches"] == want and len(want) == 2 and isinstance(want[0]["x"], float)


def test_several_templates_are_labelled(tmp_path):
    out = tmp_path / "r.jsonl"
    assert main(["batch", str(CAMCORDER), str(CAMERA), str(COINS), "--template", str(COIN), "--out", str(out)]) == 0
    got = {Path(r["path"]).name: r for r in read_records(out)}
    assert sorted(got) == ["camera.png", "coins.png"]
    for name, rec in got.items():
        assert [m["label"] for m in rec["matches"]] == ["camera_camcorder", "coins_coin"]
        assert rec["matches"] == oracle(rec["path"], ((LABEL, CAMCORDER), ("coins_coin", COIN)))
    camcorder = got["camera.png"]["matches"][0]
    coin = got["coins.png"]["matches"][1]
    assert (camcorder["x"], camcorder["y"]) == (248, 132) and (coin["x"], coin["y"]) == (270, 233)


def test_nothing_found_exits_1(tmp_path):
    out = tmp_path / "r.jsonl"
    assert main(["batch", str(CAMCORDER), str(COINS), "--threshold", "0.9", "--out", str(out)]) == 1
    (rec,) = read_records(out)
    assert rec["matches"] == [] and rec["error"] is None


def test_out_dash_writes_to_stdout(image_dir, capsys):
    root, expected = image_dir
    assert main(["batch", str(CAMCORDER), str(root), "--out", "-", "--scheduler", "sync"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert_same_as_sequential([json.loads(line) for line in out.splitlines()], root, expected)


def test_a_rerun_without_resume_overwrites(image_dir, tmp_path):
    root, expected = image_dir
    out = tmp_path / "r.jsonl"
    for _ in range(2):
        assert main(["batch", str(CAMCORDER), str(root), "--out", str(out)]) == 0
    assert len(read_records(out)) == len(expected)


# ---------------------------------------------------------------- streaming and resume

def test_an_interrupted_run_keeps_its_results_and_resume_finishes_it(image_dir, tmp_path, monkeypatch, capsys):
    root, expected = image_dir
    out = tmp_path / "r.jsonl"
    real = batch.process_image
    calls = []

    def interrupted_after_3(path, job, source=None):
        calls.append(path)
        if len(calls) == 4:
            # the first three records are already on disk, mid-run (written and flushed one by one)
            assert out.read_text().count("\n") == 3
            raise KeyboardInterrupt
        return real(path, job, source)

    monkeypatch.setattr(batch, "process_image", interrupted_after_3)
    argv = ["batch", str(CAMCORDER), str(root), "--out", str(out), "--scheduler", "sync"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted after 3 images" in err and "--resume" in err
    first = out.read_text()
    assert first.count("\n") == 3  # streamed and flushed as they came
    with open(out, "a") as f:  # and a line cut short by a kill -9
        f.write('{"path": "' + str(root / "a.p"))

    calls.clear()
    monkeypatch.setattr(batch, "process_image", lambda *a: calls.append(a[0]) or real(*a))
    assert main(argv + ["--resume"]) == 0
    assert len(calls) == len(expected) - 3  # only the missing ones were processed
    text = out.read_text()
    assert text.startswith(first) and text.endswith("\n")
    records = read_records(out)
    assert len(records) == len(expected)  # each image exactly once
    assert_same_as_sequential(records, root, expected)

    calls.clear()
    assert main(argv + ["--resume"]) == 0  # nothing left to do
    assert calls == [] and out.read_text() == text


def test_resume_recognises_paths_however_they_are_written(image_dir, tmp_path, monkeypatch):
    root, expected = image_dir
    out = tmp_path / "r.jsonl"
    assert main(["batch", str(CAMCORDER), str(root), "--out", str(out)]) == 0
    monkeypatch.chdir(root)
    calls = []
    real = batch.process_image
    monkeypatch.setattr(batch, "process_image", lambda *a: calls.append(a[0]) or real(*a))
    assert main(["batch", str(CAMCORDER), ".", "--out", str(out), "--resume", "--scheduler", "sync"]) == 0
    assert calls == [] and len(read_records(out)) == len(expected)


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_and_summary_only_on_a_terminal(image_dir, tmp_path, monkeypatch):
    root, expected = image_dir
    stderr = FakeTTY()
    monkeypatch.setattr("sys.stderr", stderr)
    assert main(["batch", str(CAMCORDER), str(root), "--out", str(tmp_path / "r.jsonl")]) == 0
    text = stderr.getvalue()
    assert f"{len(expected)}/{len(expected)}" in text and "img" in text  # tqdm's bar
    assert f"matcher batch: {len(expected)} images in" in text and "4 with matches, 3 errors" in text
    stderr = FakeTTY()
    monkeypatch.setattr("sys.stderr", stderr)
    assert main(["batch", str(CAMCORDER), str(root), "--out", str(tmp_path / "r.jsonl"), "--no-progress"]) == 0
    assert stderr.getvalue() == ""


# ---------------------------------------------------------------- usage errors

@pytest.mark.parametrize("argv, needle", [
    (["{cam}", "{root}/missing", "--out", "{tmp}/r.jsonl"], "missing: no such file or directory"),
    (["{cam}", "{root}/*.gif", "--out", "{tmp}/r.jsonl"], "*.gif: no file matches this pattern"),
    (["{cam}", "{root}/empty_dir", "--out", "{tmp}/r.jsonl"], "no image files"),
    (["{root}/corrupt.png", "{root}", "--out", "{tmp}/r.jsonl"], "template {root}/corrupt.png: truncated PNG"),
    (["{cam}", "--out", "{tmp}/r.jsonl"], "no images given"),
    (["{cam}", "{root}", "--out", "{tmp}/no/such/dir/r.jsonl"], "--out {tmp}/no/such/dir/r.jsonl: cannot write"),
    (["{cam}", "{root}", "--out", "-", "--resume"], "--resume needs an --out file"),
    (["{cam}", "{root}", "--out", "{tmp}/r.jsonl", "--template", "{coin}", "--mask", "{cam}"],
     "--mask needs a single template"),
    (["{cam}", "{root}", "--out", "{tmp}/r.jsonl", "--scheduler", "gpu"], "argument --scheduler: must be one of"),
    (["{cam}", "{root}", "--out", "{tmp}/r.jsonl", "--workers", "0"], "argument --workers: must be at least 1"),
    (["{cam}", "{root}"], "the following arguments are required: --out"),
])
def test_batch_usage_errors_exit_2(image_dir, tmp_path, capsys, argv, needle):
    root, _ = image_dir
    fill = {"{cam}": str(CAMCORDER), "{coin}": str(COIN), "{root}": str(root), "{tmp}": str(tmp_path)}

    def sub(s):
        for k, v in fill.items():
            s = s.replace(k, v)
        return s

    code = main(["batch", *map(sub, argv)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert sub(needle) in err and "Traceback" not in err


def test_unreachable_scheduler_is_an_error(tmp_path):
    job = batch.Job(templates=(batch.Template(LABEL, load_image(CAMCORDER).pixels),))
    with pytest.raises(MatcherError, match="cannot connect to the Dask scheduler at tcp://127.0.0.1:9"):
        batch.run([str(CAMERA)], job, print, scheduler="tcp://127.0.0.1:9", connect_timeout=1)


# ---------------------------------------------------------------- a Dask cluster

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  protocol="tcp://", dashboard_address=None) as c:
        yield c


def test_cluster_gives_the_sequential_results(image_dir, tmp_path, cluster, monkeypatch):
    import distributed

    root, expected = image_dir
    scattered, submitted = [], []
    real_scatter, real_submit = distributed.Client.scatter, distributed.Client.submit

    def spy_scatter(self, data, *a, **kw):
        scattered.append((data, kw))
        return real_scatter(self, data, *a, **kw)

    def spy_submit(self, fn, *args, **kw):
        submitted.append(args)
        return real_submit(self, fn, *args, **kw)

    monkeypatch.setattr(distributed.Client, "scatter", spy_scatter)
    monkeypatch.setattr(distributed.Client, "submit", spy_submit)
    out = tmp_path / "r.jsonl"
    # relative paths: the workers get them made absolute, the records keep them as given
    monkeypatch.chdir(root)
    assert main(["batch", str(CAMCORDER), ".", "--out", str(out), "--scheduler", cluster.scheduler_address]) == 0
    records = read_records(out)
    assert all(not os.path.isabs(r["path"]) for r in records)
    assert_same_as_sequential(records, root, expected)
    # the template was sent once, to every worker; each task got a reference to it, not a copy
    ((data, kw),) = scattered
    assert isinstance(data, batch.Job) and kw.get("broadcast") is True
    assert len(submitted) == len(expected)
    assert all(isinstance(args[1], distributed.Future) and os.path.isabs(args[2]) for args in submitted)


def test_cluster_with_more_images_than_the_window(tmp_path, cluster, monkeypatch):
    """More tasks than are kept in flight: new ones are submitted as others complete."""
    monkeypatch.setattr(batch, "_window", lambda client: 3)
    for i in range(10):
        shutil.copy(SAMPLES / "camera.png" if i % 2 else SAMPLES / "coins.png", tmp_path / f"img{i}.png")
    seen = []
    job = batch.Job(templates=(batch.Template(LABEL, load_image(CAMCORDER).pixels),))
    batch.run(sorted(map(str, tmp_path.glob("*.png"))), job, seen.append, scheduler=cluster.scheduler_address)
    assert sorted(Path(r["path"]).name for r in seen) == [f"img{i}.png" for i in range(10)]
    for r in seen:
        assert r["matches"] == oracle(r["path"])


def test_python_dash_m_matcher_batch_with_processes(tmp_path):
    """A real process with a pool of spawned worker processes, which must import matcher themselves."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "r.jsonl"
    proc = subprocess.run([sys.executable, "-m", "matcher", "batch", str(CAMCORDER), str(CAMERA), str(COINS),
                           "--out", str(out), "--scheduler", "processes", "--workers", "2"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    records = read_records(out)
    assert sorted(Path(r["path"]).name for r in records) == ["camera.png", "coins.png"]
    for r in records:
        assert r["matches"] == oracle(r["path"])


# ---------------------------------------------------------------- local pools

def test_threads_leave_the_thread_settings_as_they_were(image_dir):
    from matcher.scores.engine import num_threads

    root, _ = image_dir
    before = (num_threads(), cv2.getNumThreads())
    seen = []
    job = batch.Job((batch.Template(LABEL, load_image(CAMCORDER).pixels),))
    batch.run([str(root / "a.png"), str(root / "d.PNG")], job, seen.append, scheduler="threads", num_workers=2)
    assert (num_threads(), cv2.getNumThreads()) == before
    assert sorted((m["x"], m["y"]) for r in seen for m in r["matches"]) == [(248, 132), (278, 92)]


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_a_turned_search_prepares_each_template_once(tmp_path, monkeypatch, scheduler):
    """With angles, each template is prepared once (its turned banks built once) for all the images, and
    every record is what find() with the template's pixels gives."""
    from matcher.search import rotated

    made = []

    class Counted(rotated.PreparedTemplate):
        def __init__(self, *args, **kwargs):
            made.append(args[0].shape)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(rotated, "PreparedTemplate", Counted)
    camera = cv2.imread(str(CAMERA), cv2.IMREAD_GRAYSCALE)
    template = camera[140:180, 250:290].copy()
    paths = []
    for k, angle in enumerate((0.0, 7.0, -9.0, 4.0)):
        turn = cv2.getRotationMatrix2D((270.0, 160.0), angle, 1.0)
        turned = cv2.warpAffine(camera, turn, camera.shape[::-1], flags=cv2.INTER_CUBIC)[60:260, 150:390]
        paths.append(str(tmp_path / f"turned{k}.png"))
        cv2.imwrite(paths[-1], turned)
    options = {"angles": (-12.0, 12.0), "max_matches": 1}
    job = batch.Job((batch.Template("part", template),), find_options=options)
    seen = []
    batch.run(paths, job, seen.append, scheduler=scheduler, num_workers=2)
    assert made == [template.shape]
    monkeypatch.undo()  # the oracle: find() with the pixels, prepared anew for every image
    for rec in seen:
        want = [dict(m.to_dict(), label="part") for m in find(load_image(rec["path"]).pixels, template, **options)]
        assert rec["matches"] == want
        assert want[0]["score"] > 0.95
    angles = sorted(round(r["matches"][0]["angle"]) for r in seen)
    assert angles == [-9, 0, 4, 7]


def test_batch_takes_the_turn_flags(tmp_path):
    """``--angles`` reaches every image's search: the records are find()'s with the same angles."""
    camera = cv2.imread(str(CAMERA), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "part.png"), camera[140:180, 250:290])
    turn = cv2.getRotationMatrix2D((270.0, 160.0), -8.0, 1.0)
    cv2.imwrite(str(tmp_path / "turned.png"), cv2.warpAffine(camera, turn, camera.shape[::-1], flags=cv2.INTER_CUBIC))
    out = tmp_path / "r.jsonl"
    assert main(["batch", str(tmp_path / "part.png"), str(tmp_path / "turned.png"), "--angles", "-12,12",
                 "--out", str(out), "--scheduler", "sync"]) == 0
    (rec,) = read_records(out)
    want = find(load_image(tmp_path / "turned.png").pixels, load_image(tmp_path / "part.png").pixels,
                angles=(-12.0, 12.0))
    assert rec["matches"] == [dict(m.to_dict(), label="part") for m in want]
    assert round(rec["matches"][0]["angle"]) == -8


# ---------------------------------------------------------------- the "auto" scheduler

def test_choose_scheduler_picks_processes_for_small_forked_images_only():
    small = batch.SMALL_IMAGE_PIXELS
    assert batch.choose_scheduler([small], start_method="fork") == "processes"
    assert batch.choose_scheduler([small + 1], start_method="fork") == "threads"
    # the median decides: one huge image among small ones does not
    assert batch.choose_scheduler([100, 200, 10**8], start_method="fork") == "processes"
    assert batch.choose_scheduler([100, 10**8, 10**8], start_method="fork") == "threads"
    # nothing readable, or workers that would start a new interpreter: threads
    assert batch.choose_scheduler([], start_method="fork") == "threads"
    for method in ("spawn", "forkserver"):
        assert batch.choose_scheduler([100], start_method=method) == "threads"


@pytest.fixture
def pools(monkeypatch):
    """Which local pool ran: the names of the executors batch.run created."""
    made = []

    class Threads(batch.ThreadPoolExecutor):
        def __init__(self, *args, **kwargs):
            made.append("threads")
            super().__init__(*args, **kwargs)

    class Processes(batch.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            made.append("processes")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(batch, "ThreadPoolExecutor", Threads)
    monkeypatch.setattr(batch, "ProcessPoolExecutor", Processes)
    return made


@pytest.mark.skipif(batch.multiprocessing.get_start_method() != "fork", reason="auto forks processes on Linux only")
def test_auto_runs_processes_for_small_images_and_threads_for_large_ones(tmp_path, pools):
    camera = cv2.imread(str(CAMERA), cv2.IMREAD_GRAYSCALE)  # 512 x 512: small
    large = cv2.resize(camera, (1400, 1000), interpolation=cv2.INTER_CUBIC)  # 1.4 MP: large
    job = batch.Job((batch.Template(LABEL, load_image(CAMCORDER).pixels),))
    for name, pixels, want in (("small", camera, "processes"), ("large", large, "threads")):
        paths = []
        for k in range(4):
            paths.append(str(tmp_path / f"{name}{k}.png"))
            cv2.imwrite(paths[-1], np.roll(pixels, 7 * k, axis=1))
        pools.clear()
        seen = []
        threads_before = cv2.getNumThreads()
        batch.run(paths, job, seen.append)  # scheduler="auto" is the default
        assert pools == [want], name
        assert cv2.getNumThreads() == threads_before  # stopped for the forks (processes), then restored
        assert sorted(r["path"] for r in seen) == sorted(paths)
        for r in seen:
            assert r["matches"] == oracle(r["path"])


def test_one_image_gets_every_core(tmp_path, pools, monkeypatch):
    """A pool never has more workers than images, so one image is scored with all the cores."""
    shares = []
    monkeypatch.setattr(batch, "_engine_threads", lambda threads: (shares.append(threads), _null())[1])
    job = batch.Job((batch.Template(LABEL, load_image(CAMCORDER).pixels),))
    seen = []
    batch.run([str(CAMERA)], job, seen.append, scheduler="threads", num_workers=2)
    assert shares == [max(1, batch._USABLE_CORES // 1)]
    assert seen[0]["matches"] == oracle(str(CAMERA))


def _null():
    import contextlib

    return contextlib.nullcontext()


FORK_AFTER_THREADS = r"""
import json, sys
import cv2, numpy as np, scipy.fft
from matcher import batch, match_template, set_num_threads
from matcher.io import load_image

# every thread pool the parent can have started before it forks: OpenCV's, scipy.fft's, matcher's bands
cv2.setNumThreads(2)
set_num_threads(2)
rng = np.random.default_rng(0)
big = rng.random((1100, 1100)).astype(np.float32)
cv2.matchTemplate(big, big[:64, :64].copy(), cv2.TM_CCOEFF_NORMED)
scipy.fft.rfft2(big.astype(np.float64), workers=2)
match_template(big, big[100:140, 200:240], "ncc")             # banded: matcher's thread pool
match_template(big, big[100:140, 200:240], "ncc", precision="exact")
cv2.GaussianBlur(big, (5, 5), 1.0)  # the last call before the fork: OpenCV's worker threads waiting for the next
job = batch.Job((batch.Template("t", load_image(sys.argv[2]).pixels),))
seen = []
batch.run(sys.argv[3:], job, seen.append, scheduler="processes", num_workers=2)
json.dump(seen, open(sys.argv[1], "w"))
"""


def test_processes_forked_after_every_thread_pool_ran(tmp_path):
    """Forking a parent whose OpenCV, FFT and matcher thread pools already ran must not hang the workers,
    and their records are the loop's. (A child inherits OpenCV's pool with worker threads that do not
    exist in it: setting its thread count, or a parallel call, then waits for them forever, unless the
    parent stopped them before forking.)"""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    camera = cv2.imread(str(CAMERA), cv2.IMREAD_GRAYSCALE)
    paths = []
    for k in range(12):
        paths.append(str(tmp_path / f"img{k}.png"))
        cv2.imwrite(paths[-1], np.roll(camera, (3 * k, -5 * k), axis=(0, 1)))
    out = tmp_path / "seen.json"
    proc = subprocess.run([sys.executable, "-c", FORK_AFTER_THREADS, str(out), str(CAMCORDER), *paths],
                          capture_output=True, text=True, env=env, timeout=90)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(out.read_text())
    assert sorted(r["path"] for r in seen) == sorted(paths)
    for r in seen:
        assert r["matches"] == oracle(r["path"], (("t", CAMCORDER),)) != []
