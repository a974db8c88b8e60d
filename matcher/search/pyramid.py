"""Coarse-to-fine search with a proof: :func:`matcher.find` with ``pyramid=True``.

The exhaustive search scores every window at full resolution. This search
bounds how well any window of a cell of ``s x s`` positions can score
(:func:`matcher.search.bounds.stats_bounds`: block sums of ``s x s`` pixels and
a correlation at ``1/s`` of the resolution), first for every cell of the
coarsest size ``B``, then, only inside the cells whose bound reaches the bar,
for the four cells of half the size each holds, down to the finest size
(:class:`matcher.search.levels.Levels`); the finest cells that may still reach
the bar are scored at full resolution. A cell is skipped only when its own
bound proves that none of its windows can be reported, so the result is the
exhaustive search's.

Rules (the constants below):

- **Cell sizes** (:func:`matcher.search.levels.level_sizes`): the finest is
  4 px (2 px for templates under :data:`FINE_4` px a side); the coarsest, ``B``,
  the largest power of two up to ``2**MAX_LEVELS`` leaving the template
  :data:`TOP_BLOCKS` blocks a side, but at least twice the finest; except that
  templates ending on 4 px cells whose 8 px blocks would number under
  :data:`COARSE_BLOCKS` a side bound their 4 px cells whole, one level. Templates
  under 31 px a side (:func:`pyramid_levels` is 0) use the exhaustive search.
  Coarser levels whose blocks leave much of the template's norm in finer
  detail for the bar (:func:`matcher.search.levels.pruning_levels`) are left
  out: they would prune little.
- **Rounds.** While ``max_matches`` matches are not yet found, each level
  splits (the finest: scores) only its best guesses (the coarse score at the
  cell's corner; ``max(8, 4 * max_matches)`` cells, four times as many each
  round); then, every cell that may reach the bar, except that the finest
  level goes on scoring best guesses while the bar still rises from one round
  to the next and more than :data:`MIN_SCORED` cells may reach it. A finest
  cell bounded without its windows' least energy (a level bounded whole) is
  re-bounded with it (:meth:`matcher.search.levels.Levels.tighten`) before it
  is scored or counted against :data:`MAX_SCORED`, except when the bar is final
  (``max_matches=None``) and all the cells that may reach it fit under the
  limit as they are: then they are all scored untightened (tightening costs a
  pass over each cluster's windows and would only spare some of its cells;
  the board: 25% of the cells, 10% of the clusters, for 6 ms). Scored cells are grouped
  into rectangles (8-connected, cells within ``2 _MERGE`` of each other
  together: a call costs as much as ranking ~1000 cells) and ranked there (products in numpy for small
  rectangles, ``cv2.matchTemplate`` in float32, centred for ``ncc``, for large
  ones); every local peak within :data:`SLACK` of the bar is climbed to a
  local peak of the exact scores (by definition, float64), best first. The bar
  is the ``max_matches``-th exact score after suppression, or the threshold,
  whichever is higher (the threshold alone with ``max_matches=None``). The
  search stops when no cell that may reach the bar is left unsplit (or, on the
  finest level, unscored) and every candidate within :data:`SLACK` of it is climbed.
- **Why it is the exhaustive answer.** A window scoring at least the bar lies
  in a coarsest cell whose bound reaches the bar, so that cell was split, and
  so on down: its finest cell's bound, whether re-bounded with the least energy of its
  windows (at most that window's) or not, reaches the bar too, so it was scored, and every local peak of the full
  score map at or above the bar was climbed to (its ranking score is within
  :data:`SLACK` of its exact one); the greedy suppression over the peaks above
  the ``max_matches``-th kept score only ever looks at those. Candidates nearly
  tied are ranked by their exact scores (the exhaustive search ranks by its
  map, within its error of them: such near-ties may come out in another order).
  Candidates are climbed together (:meth:`matcher.search.ranking.ExactScores.peaks`);
  a candidate's neighbour ranked more than ``2 SLACK`` below it is not scored
  exactly on the first step: by the same allowance it cannot beat it.
- **A whole level** is bounded at once, as a flat search would, when more than
  :data:`MAX_SPLIT` of a level's cells (and more than :data:`MIN_SPLIT`) would
  have to be split (in bands of rows, one per engine thread:
  :data:`matcher.search.levels.PARALLEL_CELLS`).
- **Fallback** to the exhaustive search (``fell_back=True``, ``reason`` says
  which): no coarse level (``levels=0``); a 1-D image; a mask (no bound yet);
  ``max_matches=None`` without a threshold (every peak is wanted); a constant
  template; or more of the finest cells than :data:`MAX_SCORED` of them (at
  least :data:`MIN_SCORED`) would have to be scored (most of the texture's
  energy is in detail finer than the cells, where the bound assumes the worst:
  scattered cells would cost more than the exhaustive search). Once the bar is
  known, if more cells than that may reach it before tightening, their count
  after tightening is estimated first from a sample (:data:`SAMPLE_EVERY`), and
  the search falls back at once if the estimate is over the limit, without
  tightening the rest. Falling back is always sound (the exhaustive search
  answers), so the estimate only decides the cost.

Only the normalised methods (:data:`matcher.methods.NORMALIZED_METHODS`) are
supported: the other scores grow with the template's area and the image's
energy. Others raise :class:`matcher.MatcherError`.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from .. import deadline
from ..errors import MatcherError
from ..methods import NORMALIZED_METHODS
from ..options import FindOptions
from ..scores.inputs import as_array
from .exhaustive import search_exhaustive
from .job import make_job
from .levels import Levels, clusters, level_sizes, pruning_levels
from .peaks import NEIGHBOURS_X, NEIGHBOURS_Y, local_peaks, suppress
from .ranking import ExactScores, ranking_scores
from .report import matches_at

__all__ = ["find_pyramid", "search_pyramid", "PyramidInfo", "pyramid_levels", "pyr_down", "MIN_COARSE_SIZE",
           "MAX_LEVELS", "MAX_SCORED", "MIN_SCORED", "MAX_SPLIT", "MIN_SPLIT", "TOP_BLOCKS", "FINE_4", "COARSE_BLOCKS",
           "SLACK", "SAMPLE_EVERY", "MIN_SAMPLE_CLUSTERS"]

MIN_COARSE_SIZE = 16
"""Smallest template side, in blocks, a level may leave."""
TOP_BLOCKS = 24
"""The coarsest cells' blocks leave the template at least this many blocks a side (unless that is the finest size)."""
FINE_4 = 64
"""Templates at least this large a side end on cells of 4 x 4 positions, smaller ones on 2 x 2."""
COARSE_BLOCKS = 12
"""Templates ending on 4 px cells get coarser levels only if the 8 px blocks leave them at least this many blocks a
side; smaller ones (64-95 px) bound the 4 px cells whole from the start (8 px cells would leave most of them)."""
MAX_LEVELS = 4
"""At most this many halvings (blocks of at most 16 x 16)."""
MAX_SCORED = 0.03
"""Fall back to the exhaustive search when the bounds leave more than this fraction of the cells to score
(or :data:`MIN_SCORED` cells, if more): scoring scattered cells costs more per window than the exhaustive search
(on 2048^2 photos with 64 px templates, 2% of the 4 px cells scored took 0.1 s, the exhaustive search 0.15 s;
the bench's icons, 4%, 0.16-0.2 s against 0.11-0.19 s)."""
MIN_SCORED = 1024
"""Cells the search may always score (small images: a few matches' neighbourhoods are a large fraction)."""
MAX_SPLIT = 0.05
"""Bound the next level whole (as a flat search would) when more than this fraction of a coarser level's cells (or
:data:`MIN_SPLIT`, if more) would have to be split: their halves would cost more to bound box by box."""
MIN_SPLIT = 1024
"""Cells of a coarser level the search may always split."""
SLACK = 1e-3
"""Local peaks of the float32 ranking maps within this of the bar are climbed and scored exactly."""
SAMPLE_EVERY = 8
"""Too many finest cells to score even before tightening: every this-th cluster of them is tightened to estimate
how many would be left (an eighth of the tightening's cost; on the bench's icons the estimates were within 20% of
the counts, all 1.3-1.9 times the limit)."""
MIN_SAMPLE_CLUSTERS = 32
"""With fewer clusters than this, all of them are tightened (a sample of a few would be too coarse)."""
_MERGE = 4  # cells within 2 _MERGE of each other are ranked in one rectangle (a call costs as much as ~1000 cells)


@dataclass(frozen=True)
class PyramidInfo:
    """How :func:`find_pyramid` found its matches.

    ``levels``: the coarsest cells are ``2**levels`` positions a side (0: exhaustive only);
    ``candidates``: finest cells scored at full resolution; ``fell_back``: the
    exhaustive search produced the result; ``reason``: why it fell back ("" when
    it did not); ``cells``: finest cells in all.
    """

    levels: int
    candidates: int
    fell_back: bool
    reason: str = ""
    cells: int = 0


def pyramid_levels(height, width, min_size=MIN_COARSE_SIZE, max_levels=MAX_LEVELS):
    """Halvings (``cv2.pyrDown``: ``n -> (n + 1) // 2``) keeping both sides ``>= min_size``.

    >>> pyramid_levels(64, 64), pyramid_levels(30, 200), pyramid_levels(128, 100)
    (2, 0, 2)
    """
    levels = 0
    while levels < max_levels:
        height, width = (height + 1) // 2, (width + 1) // 2
        if height < min_size or width < min_size:
            break
        levels += 1
    return levels


def find_pyramid(image, template, method="ncc", *, threshold=None, max_matches=1, max_overlap=0.3,
                 region=None, subpixel=False, mask=None, precision="fast"):
    """:func:`matcher.find` by the bounded coarse-to-fine search: ``(matches, info)``.

    Arguments and the list of matches are as in :func:`matcher.find` (the
    exhaustive search's matches, see the module docstring); ``info`` is a
    :class:`PyramidInfo` saying which path was taken.

    Raises
    ------
    MatcherError
        As :func:`matcher.find`; a method that is not normalised.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = cv2.GaussianBlur(rng.random((200, 240)), (0, 0), 2.0)
    >>> found, info = find_pyramid(image, image[50:114, 70:134].copy())
    >>> (found[0].x, found[0].y, round(found[0].score, 6)), info.fell_back
    ((70, 50, 1.0), False)
    """
    options = FindOptions.check(method=method, threshold=threshold, max_matches=max_matches,
                                max_overlap=max_overlap, region=region, subpixel=subpixel, precision=precision)
    job = make_job(image, [template], [mask], [None], options)
    found, info = search_pyramid(job)
    return job.to_image(found), info


def search_pyramid(job):
    """The bounded coarse-to-fine search of ``job`` (one template): ``(matches, info)``, in the searched image's coordinates.

    Bounds the coarsest cells (:class:`matcher.search.levels.Levels`), splits and
    scores cells, the best guesses first, until none left can reach the bar
    (:class:`_Cells`), then suppresses and reports. Any step may give up, with its reason: then the
    exhaustive search answers.
    """
    method = job.method
    if not method.normalised:
        raise MatcherError(f"pyramid=True needs a normalised method {NORMALIZED_METHODS}, got {method.name!r}",
                           param="method")
    arr, tpl = as_array("image", job.image), as_array("template", job.templates[0])
    reason, sizes = _unsupported(job, arr, tpl)
    if reason:
        return _exhaustive(job, int(np.log2(sizes[0])) if sizes else 0, reason)
    bar = 1.0 if job.floor is None else 1.0 + job.floor / 2 if method.lower_is_better else job.floor  # in ncc terms
    sizes, terms = pruning_levels(tpl, sizes, method.name == "ncc", bar)
    levels = int(np.log2(sizes[0]))
    nested = Levels(arr, tpl, method.name, sizes, terms)
    if not nested.norm2.sum() > 0:
        return _exhaustive(job, levels, "constant template: every window scores the same")
    cells = _Cells(job, arr, tpl, nested)
    outcome = cells.search()
    if isinstance(outcome, str):
        return _exhaustive(job, levels, outcome, cells)
    return outcome, PyramidInfo(levels, cells.scored_count, False, "", cells.scored.size)


def _unsupported(job, arr, tpl):
    """Why the bounded search cannot serve ``job`` ("" if it can), and the levels it would use."""
    if arr.ndim == 1 or tpl.ndim == 1:
        return "1-D image or template", 0
    size = job.sizes[0]
    if pyramid_levels(*size) == 0:
        return (f"template {size[1]}x{size[0]} too small: a coarse level would be under "
                f"{MIN_COARSE_SIZE} px"), []
    if tpl.shape[0] > arr.shape[0] or tpl.shape[1] > arr.shape[1] or arr.ndim != tpl.ndim:
        return "shapes the engine rejects", []  # the engine raises the documented error
    finest = 2 if min(size) < FINE_4 else 4
    sizes = level_sizes(*size, top_blocks=TOP_BLOCKS, finest=finest, largest=2**MAX_LEVELS)
    if finest == 4 and min(size) // sizes[-2] < COARSE_BLOCKS:
        sizes = sizes[-1:]  # coarser blocks would leave too few of them to prune: the finest level, whole
    if job.masks[0] is not None:
        return "a mask: no bound for masked scores", sizes
    if job.max_matches is None and job.floor is None:
        return "max_matches=None without a threshold asks for every peak", sizes
    return "", sizes


def _exhaustive(job, levels, reason, cells=None):
    scored = 0 if cells is None else cells.scored_count
    total = 0 if cells is None else cells.scored.size
    return search_exhaustive(job), PyramidInfo(levels, scored, True, reason, total)


class _Cells:
    """The cells of one search: their bounds, which are scored, the candidates found and their exact scores.

    Scores are goodness (higher is better). ``pool_*``: local peaks of the
    ranking maps (float32); ``exact``: climbed local peaks of the exact scores.
    """

    def __init__(self, job, arr, tpl, levels):
        self.job, self.arr, self.tpl, self.levels = job, arr, tpl, levels
        self.b = levels.sizes[-1]
        self.scored = np.zeros(levels.shapes[-1], bool)
        self.scored_count = 0
        self.sign = -1.0 if job.method.lower_is_better else 1.0
        self.map_shape = (arr.shape[0] - tpl.shape[0] + 1, arr.shape[1] - tpl.shape[1] + 1)
        self.pool_y, self.pool_x, self.pool_g = [np.zeros(0, np.intp)] * 2 + [np.zeros(0)]
        self.pool_ranks = np.zeros((0, 9))  # each candidate's 3 x 3 ranking neighbourhood (NaN: not ranked)
        self.pool_done = np.zeros(0, bool)
        self.exact = {}
        self.exact_scores = ExactScores(arr, tpl, job.method.name, self.sign)
        self.final = job.max_matches is None  # the bar is the threshold: it never rises
        self.known = job.max_matches is None  # the bar is final but for rising: max_matches matches were kept

    def search(self):
        """Split and score cells until none left can reach the bar: the matches, or a reason to fall back.

        Each round climbs the most promising candidates, or else, level by
        level, bounds the halves of the cells that may reach the bar and scores
        the finest such cells (while ``max_matches`` are wanted, the best
        guesses first, a few more each round: the bar rises early; with
        ``max_matches=None``, whose bar is the threshold, all of them).
        """
        k, levels = self.job.max_matches, self.levels
        chunk = max(8, 4 * (k or 1))
        last = len(levels.sizes) - 1
        limits = [max(MAX_SPLIT * levels.bounds[i].size, MIN_SPLIT) for i in range(last)]
        limits.append(max(MAX_SCORED * self.scored.size, MIN_SCORED))
        done = [0] * (last + 1)  # cells split, per level; cells scored on the finest
        risen = -np.inf  # the bar when the finest level last scored its best guesses
        while True:
            deadline.check()  # between rounds of cells (matcher.deadline)
            bar = self.bar()
            if self.climb(bar):
                continue
            progress = False
            for level in range(last):
                todo = levels.open(level, bar)
                if todo.size == 0:
                    continue
                if done[level] + todo.size <= limits[level] and (self.known or todo.size <= chunk):
                    pass  # all of them
                elif not self.known and done[level] + chunk <= limits[level]:  # the best guesses: a bar to start
                    todo = self.best_guesses(level, todo, chunk)
                else:  # too many to split: bound the next level whole, as a flat search would
                    levels.bound_all(level + 1)
                    progress = True
                    continue
                done[level] += todo.size
                progress = True
                levels.refine(level, todo)
            todo = self.unscored(bar)
            if self.known and done[last] + todo.size > limits[last]:  # too many even before tightening?
                reason = self.overflow(todo, bar, limits[last] - done[last])
                if reason:
                    return reason
            # the best guesses first: for a first bar, then, among many cells, while the bar rises
            rising = not self.known or (bar > risen and todo.size > MIN_SCORED)
            risen = bar
            if todo.size > chunk and rising and not self.final and done[last] + chunk <= limits[last]:
                todo = self.best_guesses(last, todo, chunk)
            if not (self.final and done[last] + todo.size <= limits[last]):  # else all are scored: no need
                progress |= levels.tighten(todo) > 0  # the windows' least energy, where the bound has not used it yet
            todo = todo[levels.bounds[last].flat[todo] >= bar - 1e-9]
            if done[last] + todo.size > limits[last]:
                todo = self.unscored(bar)
                size = levels.sizes[last]
                return (f"the bounds left {todo.size} of {self.scored.size} cells of {size}x{size} positions "
                        f"that may reach {self.sign * bar:.4f}, more than {limits[last]:.0f}: "
                        f"detail finer than {size} px dominates")
            if todo.size:
                done[last] += todo.size
                progress = True
                self.score(todo)
            if not progress:
                return self.report()
            chunk *= 4

    def overflow(self, cells, bar, room):
        """Why the finest ``cells`` (flat indices) that may reach ``bar`` are too many to score ("" if not): their
        count once tightened, estimated from every :data:`SAMPLE_EVERY`-th cluster of them (all if fewer than
        :data:`MIN_SAMPLE_CLUSTERS`; :meth:`matcher.search.levels.Levels.tighten`, kept), over ``room``."""
        mask = np.zeros(self.scored.shape, bool)
        mask.flat[cells] = True
        boxes = clusters(mask, _MERGE)
        sample = cells
        if len(boxes) >= MIN_SAMPLE_CLUSTERS:
            picked = np.zeros(mask.shape, bool)
            for y0, y1, x0, x1 in boxes[SAMPLE_EVERY // 2 :: SAMPLE_EVERY]:
                picked[y0:y1, x0:x1] = True
            sample = np.flatnonzero(mask & picked)
        self.levels.tighten(sample)
        kept = np.count_nonzero(self.levels.bounds[-1].flat[sample] >= bar - 1e-9)
        estimate, size = kept * cells.size / max(sample.size, 1), self.levels.sizes[-1]
        return "" if estimate <= room else (
            f"the bounds left about {estimate:.0f} of {self.scored.size} cells of {size}x{size} positions that may "
            f"reach {self.sign * bar:.4f} ({kept} of a sample of {sample.size}), more than {room:.0f}: detail finer "
            f"than {size} px dominates")

    def best_guesses(self, level, cells, count):
        """The ``count`` of ``cells`` (flat indices at ``level``) whose coarse score is the highest."""
        if cells.size <= count:
            return cells
        return cells[np.argpartition(-self.levels.estimate[level].flat[cells], count - 1)[:count]]

    def unscored(self, bar):
        """Flat indices of the finest cells that may reach ``bar``, every cell holding them split, not scored yet."""
        last = len(self.levels.sizes) - 1
        return np.flatnonzero(~self.scored & self.levels.live[last] & (self.levels.bounds[last] >= bar - 1e-9))

    def score(self, cells):
        """Rank every position of ``cells`` (flat indices) in float32, grouped in rectangles: their local peaks join the pool."""
        mask = np.zeros(self.scored.shape, bool)
        mask.flat[cells] = True
        self.scored.flat[cells] = True
        self.scored_count += len(cells)
        b, (ny, nx) = self.b, self.map_shape
        floor = None if self.job.floor is None else self.job.floor - SLACK
        found = [(self.pool_y, self.pool_x, self.pool_g, self.pool_ranks)]
        for cy0, cy1, cx0, cx1 in clusters(mask, _MERGE):
            y0, y1 = cy0 * b, min(cy1 * b, ny) - 1
            x0, x1 = cx0 * b, min(cx1 * b, nx) - 1
            g = ranking_scores(self.arr, self.tpl, self.job.method.name, self.sign, y0, y1, x0, x1)
            ys, xs, vals = local_peaks(g, floor)
            padded = np.pad(g, 1, constant_values=np.nan)
            around = padded[ys[:, None] + 1 + NEIGHBOURS_Y, xs[:, None] + 1 + NEIGHBOURS_X]
            found.append((ys + y0, xs + x0, vals, around))
        self.pool_y, self.pool_x, self.pool_g, self.pool_ranks = (np.concatenate(a) for a in zip(*found))
        self.pool_done = np.concatenate([self.pool_done, np.zeros(len(self.pool_g) - len(self.pool_done), bool)])

    def climb(self, bar):
        """Climb the pool's candidates that may reach ``bar`` (with ``max_matches``, the best ``2 max_matches``): whether any was."""
        todo = np.flatnonzero(~self.pool_done & (self.pool_g >= bar - SLACK))
        if self.job.max_matches is not None:  # the best few first: the bar rises
            todo = todo[np.argsort(-self.pool_g[todo], kind="stable")[: 2 * self.job.max_matches]]
        ys, xs, values = self.exact_scores.peaks(self.pool_y[todo], self.pool_x[todo], self.pool_ranks[todo],
                                                 2 * SLACK)  # all at once
        for y, x, value in zip(ys.tolist(), xs.tolist(), values.tolist()):
            self.exact[y, x] = value
        self.pool_done[todo] = True
        return todo.size > 0

    def ranked(self):
        """Exact local peaks reaching the threshold, best first, and those suppression keeps (indices)."""
        pos = sorted(self.exact, key=lambda p: (-self.exact[p], p))
        if self.job.floor is not None:
            pos = [p for p in pos if self.exact[p] >= self.job.floor]
        ys = np.array([p[0] for p in pos], np.intp)
        xs = np.array([p[1] for p in pos], np.intp)
        if not pos:
            return ys, xs, np.zeros(0, np.intp)
        kept = suppress(ys, xs, np.zeros(len(pos), np.intp), [self.tpl.shape[:2]], [self.map_shape],
                        self.job.max_overlap, self.job.max_matches)
        return ys, xs, kept

    def bar(self):
        """The score a window must reach to be reported: the threshold, or the ``max_matches``-th kept score."""
        floor = -np.inf if self.job.floor is None else self.job.floor
        k = self.job.max_matches
        self.known = k is None
        if k is None:
            return floor
        ys, xs, kept = self.ranked()
        self.known = len(kept) >= k
        if not self.known:
            return floor
        y, x = int(ys[kept[k - 1]]), int(xs[kept[k - 1]])
        return max(floor, self.exact[y, x])

    def report(self):
        """The matches, scored by definition (:func:`matcher.search.report.matches_at`)."""
        ys, xs, kept = self.ranked()
        found = matches_at(self.job, ys[kept], xs[kept], np.zeros(len(kept), np.intp))
        if self.job.floor is not None:  # the reported scores decide, to the last bit
            found = [m for m in found if self.job.method.goodness(m.score) >= self.job.floor]
        return found


def pyr_down(a):
    """``cv2.pyrDown`` (each side halved, rounding up), keeping a trailing channel axis of length 1.

    >>> pyr_down(np.zeros((9, 8, 1), np.float32)).shape
    (5, 4, 1)
    """
    out = cv2.pyrDown(a)
    return out[:, :, None] if a.ndim == 3 and out.ndim == 2 else out
