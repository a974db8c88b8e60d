"""The ``matcher`` command line: ``matcher match`` and ``matcher batch``.

Parse, call matcher, format: the matching itself is :func:`matcher.find`,
the batch machinery :mod:`matcher.batch`, the pictures :mod:`matcher.render`.

Exit status, as grep's: 0 a match was found; 1 nothing was found (only
possible with ``--threshold``: without one the best window is always
reported); 2 a usage or input error (bad flag value, missing, unreadable or
corrupt file, template larger than the image or the region, region outside
the image, ...), reported as one line on stderr naming the file or flag; 124
the search ran past ``--timeout`` (the exit status of GNU ``timeout``); 130
interrupted. ``--traceback`` adds the Python traceback to errors. For
``batch``: 0 if any image has a match (or nothing was left to do with
``--resume``), 1 if none has; an image that cannot be read is recorded in
the output with its error and does not change the exit status.

``matcher match --json`` prints one JSON document (keys are only ever added)::

    {"version": "0.1.0", "method": "ncc",
     "image": {"path", "format", "width", "height", "channels", "dtype", "has_mask"},
     "template": {same keys as image, "mask": null | "alpha" | "file", "mask_path": str | null},
     "options": {"threshold", "max_matches" (null: --all), "max_overlap", "region" ([x, y, w, h] | null),
                 "subpixel", "precision", "gray"},
     "matches": [Match.to_dict(): {"label", "x", "y", "width", "height", "score", "center", "method"}, ...],
     "elapsed_ms": time spent in find(), reading the files excluded}

``--jsonl`` prints one match per line: ``{"image": path, "template": path,
"rank": 1, ...Match.to_dict()}``. ``matcher batch`` writes the records of
:mod:`matcher.batch`, one line per image.
"""

import argparse
import json
import os
import re
import sys
import time
import traceback

from . import __version__
from .errors import MatcherError, ParameterTypeError, SearchTimeout
from .io import load_image
from .methods import LOWER_IS_BETTER, NORMALIZED_METHODS
from .options import OPTIONS, FindOptions, OptionSyntaxError

__all__ = ["main", "build_parser"]

PROG = "matcher"
FIND_FLAGS = ("method", "threshold", "max_matches", "max_overlap", "region", "subpixel", "precision", "timeout")
TURN_FLAGS = ("angles", "scales", "angle_step", "scale_step")
"""Options of the turned and scaled search: flags of ``match`` and ``batch`` (which prepares each template
once per worker for them)."""
"""The options of :mod:`matcher.options` that are flags of ``match`` and ``batch`` (``pyramid`` is not:
``batch`` searches with :func:`matcher.find_many`, which has none)."""
_CLI_NOTES = {  # what the command line adds to an option's one-line doc
    "threshold": "exit status 1 when no match passes",
    "max_matches": "default: 1",
    "max_overlap": "default: 0.3",
    "precision": "default: fast",
    "method": "default: ncc",
}


class UsageError(Exception):
    """A problem with the command's arguments or input files: one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (not after the whole usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------- argument types

def _spec_type(option):
    """An argparse ``type`` parsing the string form of a :mod:`matcher.options` option."""
    def parse(text):
        try:
            return option.parse(text)
        except OptionSyntaxError as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None
    parse.__name__ = option.name
    return parse


_positive_int = _spec_type(OPTIONS["max_matches"])  # --workers: the same form as --max-matches


def _scheduler(text):
    from .batch import LOCAL_SCHEDULERS, is_remote

    if text in LOCAL_SCHEDULERS or is_remote(text):
        return text
    raise argparse.ArgumentTypeError(
        f"must be one of {', '.join(LOCAL_SCHEDULERS)} or a Dask scheduler address like tcp://HOST:8786, got {text!r}")


# ---------------------------------------------------------------- parser

def _add_find_options(p):
    """The matching flags, one per option of :data:`FIND_FLAGS`, from :data:`matcher.options.OPTIONS`."""
    g = p.add_argument_group("matching options (as matcher.find)")
    for name in FIND_FLAGS:
        option = OPTIONS[name]
        text = "; ".join(filter(None, [option.doc, _CLI_NOTES.get(name)]))
        if option.kind == "bool":
            g.add_argument(option.flag, action="store_true" if option.default is False else argparse.BooleanOptionalAction,
                           default=option.default, help=text)
        elif option.kind == "choice":
            g.add_argument(option.flag, choices=option.choices, default=option.default, help=text)
        elif option.nullable and option.default is not None:  # None (all) has a flag of its own: --all
            n = g.add_mutually_exclusive_group()
            n.add_argument(option.flag, type=_spec_type(option), default=option.default, metavar=option.metavar,
                           help=text)
            n.add_argument("--all", action="store_true",
                           help="report every match (non-overlapping peaks; use with --threshold)")
        else:
            g.add_argument(option.flag, type=_spec_type(option), default=option.default, metavar=option.metavar,
                           help=text)
    g.add_argument("--mask", metavar="FILE",
                   help="mask image, same size as the template: non-zero pixels are matched, zero ones "
                        "ignored (default: the template's alpha channel, if it has one)")
    g.add_argument("--gray", action="store_true", help="convert image and template to gray first")


_VALUE_FLAGS = tuple(OPTIONS[n].flag for n in FIND_FLAGS + TURN_FLAGS if OPTIONS[n].metavar)


def _join_negative_values(argv):
    """``--region -5,0,9,9`` as ``--region=-5,0,9,9``: argparse would take ``-5,0,9,9`` for a flag.

    So a negative value reaches the option's parser, which says what is wrong with it.
    """
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return out + argv[i:]
        if arg in _VALUE_FLAGS and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _add_common(p):
    p.add_argument("--traceback", action="store_true", help="show the Python traceback of errors")


def build_parser():
    """The ``matcher`` argument parser, with its ``match`` and ``batch`` subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Find a template image in other images.",
        epilog="Exit status: 0 found, 1 not found, 2 usage or input error, 124 --timeout passed. "
               "Run 'matcher COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    m = sub.add_parser("match", help="find a template in one image",
                       description="Find TEMPLATE in IMAGE and print the matches, best first.")
    m.add_argument("image", metavar="IMAGE", help="image to search (PNG, JPEG, WebP, BMP, TIFF)")
    m.add_argument("template", metavar="TEMPLATE",
                   help="template to find; a PNG's alpha channel is used as the mask")
    _add_find_options(m)
    m.add_argument("--pyramid", action="store_true", help=OPTIONS["pyramid"].doc + " (normalised methods)")
    _add_turn_options(m)
    out = m.add_argument_group("output")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON document (stable, for scripts)")
    fmt.add_argument("--jsonl", action="store_true", help="print one JSON object per match, one per line")
    out.add_argument("--annotate", metavar="OUT.png",
                     help="write the image with every match drawn on it (the format the extension names: "
                          ".png, .jpg, .webp, .bmp or .tif)")
    out.add_argument("--heatmap", metavar="OUT.png",
                     help="write the score map, colour-mapped and aligned with the image (bright = good "
                          "match; the format the extension names)")
    _add_common(m)
    m.set_defaults(handler=_cmd_match)

    b = sub.add_parser(
        "batch", help="find templates in many images",
        usage="%(prog)s TEMPLATE IMAGES_OR_DIRS... --out FILE [--template TEMPLATE ...] [options]",
        description="Find TEMPLATE (and every --template) in every image: files, directories (walked "
                    "recursively for image files) and glob patterns. One JSON line per image is appended to "
                    "--out as soon as it is done: path, image size, matches (each labelled with its "
                    "template's file name) or error, elapsed_ms. Unreadable images are recorded with their "
                    "error and never stop the run.")
    b.add_argument("paths", nargs="+", metavar="TEMPLATE IMAGES_OR_DIRS",
                   help="the template, then images, directories or glob patterns")
    b.add_argument("--template", action="append", default=[], metavar="TEMPLATE",
                   help="another template to find (repeatable)")
    b.add_argument("--out", required=True, metavar="FILE",
                   help="JSONL results file (overwritten unless --resume; '-' for stdout)")
    b.add_argument("--resume", action="store_true",
                   help="append to --out, skipping the images already recorded in it")
    b.add_argument("--scheduler", type=_scheduler, default=None, metavar="S",
                   help="'auto' (default: processes for images up to 640x480, threads for larger ones), 'threads' or "
                        "'processes' for a pool on this machine, 'sync' for one image at a time, "
                        "or the address of a Dask distributed scheduler, e.g. tcp://HOST:8786, whose workers "
                        "read the images (paths must be valid there)")
    b.add_argument("--workers", type=_positive_int, metavar="N",
                   help="threads or processes of the local pool (default: one per core)")
    b.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal)")
    _add_find_options(b)
    _add_turn_options(b)
    _add_common(b)
    b.set_defaults(handler=_cmd_batch)
    return parser


# ---------------------------------------------------------------- main

def main(argv=None):
    """Run the ``matcher`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 found, 1 not found, 2 usage or input error, 124 the search ran past
        ``--timeout`` (as GNU ``timeout``), 130 interrupted.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = parser.parse_args(_join_negative_values(argv))
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a command is required (match or batch)", file=sys.stderr)
        return 2
    where = f"{PROG} {args.command}"
    try:
        return args.handler(args)
    except (UsageError, MatcherError) as exc:
        if args.traceback:
            traceback.print_exc()
        print(f"{where}: error: {exc}", file=sys.stderr)
        return 2
    except SearchTimeout as exc:
        print(f"{where}: error: {exc} (--timeout)", file=sys.stderr)
        return 124
    except KeyboardInterrupt as exc:
        print(f"{where}: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into head: stop quietly, with the status of a process SIGPIPE ended
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:  # pragma: no cover
            pass
        return 141  # 128 + SIGPIPE (13), as the shell reports a process that signal ended
    except Exception as exc:  # noqa: BLE001 - a bug: still one line unless --traceback
        if args.traceback:
            traceback.print_exc()
        print(f"{where}: internal error: {type(exc).__name__}: {exc}"
              + ("" if args.traceback else " (run again with --traceback for details)"), file=sys.stderr)
        return 2


# ---------------------------------------------------------------- shared helpers

def _load(role, path, color):
    """load_image with errors turned into one-line messages naming the file."""
    try:
        return load_image(path, color=color)
    except FileNotFoundError as exc:
        raise UsageError(f"{role} {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{role} {path}: is a directory, not an image file") from exc
    except OSError as exc:
        raise UsageError(f"{role} {path}: cannot read: {exc.strerror or exc}") from exc
    except MatcherError as exc:
        raise UsageError(f"{role} {path}: {exc}") from exc


def _add_turn_options(p):
    """The flags of :data:`TURN_FLAGS`, in their own group."""
    turn = p.add_argument_group("turned and scaled templates (normalised methods)")
    for name in TURN_FLAGS:
        option = OPTIONS[name]
        turn.add_argument(option.flag, type=_spec_type(option), default=None, metavar=option.metavar, help=option.doc)


def _find_options(args):
    """The flags of :data:`FIND_FLAGS` as :func:`matcher.find`'s keyword arguments (``--all``: ``max_matches=None``).

    ``--all`` needs ``--threshold``: without one every local peak of the map
    would be listed, down to the worst.
    """
    options = {name: getattr(args, name) for name in FIND_FLAGS}
    if args.all:
        if args.threshold is None:
            raise UsageError("--all lists every match past --threshold; give one too (e.g. --threshold 0.8 with "
                             "ncc), or ask for the best few with --max-matches N")
        options["max_matches"] = None
    if getattr(args, "pyramid", False):
        options["pyramid"] = True
    for name in TURN_FLAGS:
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    return options


def _checked_options(args):
    """:func:`_find_options`, checked by :meth:`matcher.options.FindOptions.check` (errors name the flag)."""
    options = _find_options(args)
    try:
        FindOptions.check(**options)
    except (MatcherError, ParameterTypeError) as exc:
        raise UsageError(_find_error(exc, args)) from exc
    return options


def _load_mask(path, template, template_path):
    mask = _load("--mask", path, "gray")
    if (mask.height, mask.width) != (template.height, template.width):
        raise UsageError(f"--mask {path}: the mask is {mask.width}x{mask.height} but template "
                         f"{template_path} is {template.width}x{template.height}; they must be the same size")
    return mask.pixels


def _encoded(flag, path, picture):
    """``picture`` encoded in the format ``path``'s extension names (PNG, JPEG, WebP, BMP, TIFF)."""
    from .render import encode_image

    return encode_image(picture, _image_extension(flag, path))


def _check_outputs(args):
    """Refuse output files of unknown formats before any work is done."""
    for flag in ("--annotate", "--heatmap"):
        path = getattr(args, flag[2:], None)
        if path:
            _image_extension(flag, path)


def _image_extension(flag, path):
    """``path``'s extension if it names an image format :func:`matcher.render.encode_image` writes."""
    from .render import IMAGE_FORMATS

    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_FORMATS:
        raise UsageError(f"{flag} {path}: the extension {ext or '(none)'!r} names no image format this writes; "
                         f"use one of {', '.join(IMAGE_FORMATS)}")
    return ext


def _write_file(flag, path, data):
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from exc


def _dumps(obj):
    return json.dumps(obj, allow_nan=False)


# ---------------------------------------------------------------- match

def _cmd_match(args):
    from .search.find import find_with_scores

    options = _checked_options(args)
    _check_outputs(args)
    template = _load("template", args.template, "gray" if args.gray else "auto")
    color = "gray" if template.channels == 1 else "color"
    image = _load("image", args.image, color)
    if args.mask is not None:
        mask, mask_kind = _load_mask(args.mask, template, args.template), "file"
    else:
        mask = template.matching_mask  # the library's rule: the alpha channel unless fully opaque
        mask_kind = "alpha" if mask is not None else None

    start = time.perf_counter()
    try:
        matches, scores = find_with_scores(image.pixels, template.pixels, mask=mask, **options)
    except MatcherError as exc:
        raise UsageError(_find_error(exc, args)) from exc
    elapsed_ms = (time.perf_counter() - start) * 1000.0

    if args.annotate:
        _write_annotation(args, image, color, matches)
    if args.heatmap:
        _write_heatmap(args, image, template, mask, scores)

    if args.json:
        doc = {
            "version": __version__,
            "method": args.method,
            "image": {"path": args.image, **image.to_dict()},
            "template": {"path": args.template, **template.to_dict(), "mask": mask_kind,
                         "mask_path": args.mask},
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items() if k != "method"}
            | {"gray": args.gray},
            "matches": [m.to_dict() for m in matches],
            "elapsed_ms": round(elapsed_ms, 3),
        }
        print(_dumps(doc))
    elif args.jsonl:
        for rank, m in enumerate(matches, start=1):
            print(_dumps({"image": args.image, "template": args.template, "rank": rank, **m.to_dict()}))
    else:
        _print_table(args, image, template, matches, elapsed_ms)
    return 0 if matches else 1


def _find_error(exc, args):
    """One line for an error raised by find, naming the flag (from ``exc.param``) or files it is about."""
    text, param = str(exc), getattr(exc, "param", None)
    if param == "mask":
        flag = f"--mask {args.mask}" if args.mask is not None else f"template {args.template} (its alpha channel)"
    elif param == "max_matches" and args.all:
        flag = "--all"
    elif param in FIND_FLAGS + TURN_FLAGS or param == "pyramid":
        option = OPTIONS[param]
        flag = f"{option.flag} {option.format(getattr(args, param, None))}".rstrip()
    else:
        return f"template {args.template} in image {args.image}: {text}"
    return f"{flag}: {text}"


def _write_annotation(args, image, color, matches):
    from .render import draw_matches

    pixels = image.pixels
    if color == "gray":  # converted to gray for matching? draw on the image as stored
        original = _load("image", args.image, "auto")
        pixels = original.pixels
    _write_file("--annotate", args.annotate, _encoded("--annotate", args.annotate, draw_matches(pixels, matches)))


def _write_heatmap(args, image, template, mask, scores=None):
    """The heat map of the searched area's scores (``find_with_scores`` gives them; scored here only
    when the search never scored every window)."""
    import numpy as np

    from .scores.engine import match_template
    from .render import score_heatmap

    H, W = image.height, image.width
    h, w = template.height, template.width
    x, y, rw, rh = args.region if args.region is not None else (0, 0, W, H)
    if scores is None:
        crop = image.pixels[y:y + rh, x:x + rw]
        scores = match_template(crop, template.pixels, args.method, mask=mask, precision=args.precision)
    if scores.shape != (H - h + 1, W - w + 1):  # a region: the rest of the map is the worst score
        worst = scores.max() if args.method in LOWER_IS_BETTER else scores.min()
        full = np.full((H - h + 1, W - w + 1), worst)
        full[y:y + scores.shape[0], x:x + scores.shape[1]] = scores
        scores = full
    picture = score_heatmap(scores, (H, W), (h, w), method=args.method)
    _write_file("--heatmap", args.heatmap, _encoded("--heatmap", args.heatmap, picture))


def _format_coord(v):
    return f"{v:.2f}" if isinstance(v, float) else str(v)  # sub-pixel positions are floats


def _format_score(method, score):
    return f"{score:.4f}" if method in NORMALIZED_METHODS else f"{score:.6g}"


def _print_table(args, image, template, matches, elapsed_ms):
    count = f"{len(matches)} match" + ("" if len(matches) == 1 else "es")
    if not matches and args.threshold is not None:
        bound = "<=" if args.method in LOWER_IS_BETTER else ">="
        count = f"no match (none scores {bound} {args.threshold:g})"
    print(f"{args.image} ({image.width}x{image.height}), template {args.template} "
          f"({template.width}x{template.height}), {args.method}: {count} in {elapsed_ms:.1f} ms")
    if not matches:
        return
    turned = any(getattr(args, name, None) is not None for name in TURN_FLAGS)
    rows = [("rank", "x", "y", "width", "height", "score") + (("center", "angle", "scale") if turned else ())]
    for rank, m in enumerate(matches, start=1):
        pose = ((f"{m.center[0]:.2f},{m.center[1]:.2f}", f"{m.angle:.2f}", f"{m.scale:.4f}") if turned else ())
        rows.append((str(rank), _format_coord(m.x), _format_coord(m.y), str(m.width), str(m.height),
                     _format_score(args.method, m.score)) + pose)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.rjust(wd) for cell, wd in zip(r, widths)).rstrip())


# ---------------------------------------------------------------- batch

def _cmd_batch(args):
    from . import batch

    template_paths = [args.paths[0], *args.template]
    inputs = args.paths[1:]
    if not inputs:
        raise UsageError("no images given: expected TEMPLATE IMAGES_OR_DIRS... (at least one image, "
                         "directory or pattern after the template)")
    if args.mask is not None and len(template_paths) > 1:
        raise UsageError(f"--mask {args.mask}: --mask needs a single template, got {len(template_paths)}")
    if args.resume and args.out == "-":
        raise UsageError("--resume needs an --out file, not '-' (stdout)")
    if args.workers is not None and batch.is_remote(args.scheduler):
        raise UsageError(f"--workers applies to the local scheduler; the cluster at {args.scheduler} "
                         "has its own workers")

    options = _checked_options(args)
    templates, color = _batch_templates(args, template_paths)
    job = batch.Job(templates=templates, color=color, find_options=options)
    try:
        paths = batch.collect_images(inputs)
    except MatcherError as exc:
        raise UsageError(str(exc)) from exc
    if not paths:
        raise UsageError(f"no image files (extensions {', '.join(batch.IMAGE_EXTENSIONS)}) in "
                         f"{', '.join(inputs)}")
    todo = paths
    if args.resume:
        try:
            done = batch.done_paths(args.out)
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot read: {exc.strerror or exc}") from exc
        todo = [p for p in paths if batch.path_key(p) not in done]
    return _run_batch(args, job, paths, todo)


def _batch_templates(args, template_paths):
    """Load the templates in one colour mode, gray if --gray or all are gray, else colour:
    ``(tuple of batch.Template, color)``; images are then read in that mode."""
    from .batch import Template

    loaded = [_load("template", p, "gray" if args.gray else "auto") for p in template_paths]
    color = "gray" if all(t.channels == 1 for t in loaded) else "color"
    loaded = [t if t.channels == (1 if color == "gray" else 3) else _load("template", p, color)
              for t, p in zip(loaded, template_paths)]
    stems = [os.path.splitext(os.path.basename(p))[0] for p in template_paths]
    labels = stems if len(set(stems)) == len(stems) else list(template_paths)
    masks = [t.matching_mask for t in loaded]
    if args.mask is not None:
        masks = [_load_mask(args.mask, loaded[0], template_paths[0])]
    return tuple(Template(label, t.pixels, m) for label, t, m in zip(labels, loaded, masks)), color


def _run_batch(args, job, paths, todo):
    from . import batch

    show = not args.no_progress and sys.stderr.isatty()
    skipped = len(paths) - len(todo)
    counts = {"images": 0, "found": 0, "errors": 0}
    out_name = "stdout" if args.out == "-" else args.out
    try:
        out = sys.stdout if args.out == "-" else open(args.out, "a" if args.resume else "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write: {exc.strerror or exc}") from exc
    bar = None
    if show:
        try:
            from tqdm import tqdm
        except ImportError:  # no progress bar without tqdm; the run itself does not need it
            tqdm = None
    if show and tqdm is not None:
        bar = tqdm(total=len(paths), initial=skipped, unit="img", file=sys.stderr, dynamic_ncols=True)

    def on_record(record):
        out.write(_dumps(record) + "\n")
        out.flush()
        counts["images"] += 1
        counts["errors"] += record["error"] is not None
        counts["found"] += bool(record["matches"])
        if bar is not None:
            bar.update(1)

    start = time.perf_counter()
    try:
        batch.run(todo, job, on_record, scheduler=args.scheduler or batch.DEFAULT_SCHEDULER,
                  num_workers=args.workers)
    except MatcherError as exc:
        raise UsageError(f"--scheduler: {exc}" if batch.is_remote(args.scheduler) else str(exc)) from exc
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"interrupted after {counts['images']} images; their results are in {out_name}; "
                                "run again with --resume to continue") from None
    finally:
        if bar is not None:
            bar.close()
        if out is not sys.stdout:
            out.close()
    elapsed = time.perf_counter() - start
    if show:
        rate = counts["images"] / elapsed if elapsed > 0 else float("inf")
        print(f"{PROG} batch: {counts['images']} images in {elapsed:.1f} s ({rate:.1f} images/s)"
              + (f", {skipped} already done" if skipped else "")
              + f"; {counts['found']} with matches, {counts['errors']} errors; results in {out_name}",
              file=sys.stderr)
    if not todo or counts["found"]:
        return 0
    return 1
