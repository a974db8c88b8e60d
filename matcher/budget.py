"""What a search will cost, estimated from sizes alone: peak memory and work, before anything is decoded.

A server (or any caller) that takes images from strangers must refuse a
request it cannot afford *before* paying for it. :func:`search_cost` takes
what a file header says (:func:`matcher.headers.read_header`: size, channels,
bytes per sample) and what is asked (templates, masks, region) and returns a
:class:`SearchCost`:

``memory``
    Bytes of peak working memory: the decoded files (the decoder's buffer
    and the RGB copy :func:`matcher.load_image` makes) plus the engine's
    working set, ``positions * (channels * PER_CHANNEL + PER_POSITION)`` for
    the first template and ``PER_EXTRA_MAP`` more per position for each
    further template of a :func:`matcher.find_many` call (every score map is
    kept until the peaks are ranked), plus the working arrays the engine
    keeps for its next call (at most ``KEPT_BYTES`` of
    :mod:`matcher.scores.workspace`, and at most that working set). The constants are peak RSS measured
    by ``bench/bench_budget.py`` over gray and colour, masked and unmasked,
    8 x 8 to 128 x 128 templates, images to 2048 x 2048, one and two engine
    threads, rounded up; the bench prints the measured / estimated ratio of
    each case (it stays under 1).
``work``
    Abstract units proportional to the engine's time: for each template,
    ``positions * channels * kernels``, ``kernels`` 1 unmasked and
    :data:`MASKED_KERNELS` masked (a masked score needs that many more
    correlations), times ``search_factor``. Bits per sample do not change the
    time (the engine works in float64 either way). On the 2-core reference
    machine a unit cost 50-90 ns at a quiet moment, 115-1500 ns at a load
    average of 8-14 (``bench/bench_budget.py`` prints it).

``search_factor`` is the hook for strategies that search the image more than
once: a turned or scaled search scores every pose of its grid, so its caller
passes the number of poses (or the measured ratio of its time to one plain
search); the memory estimate does not change with it (poses are scored one
after another).

>>> cost = search_cost((2048, 2048), channels=3, bytes_per_sample=2, file_channels=4, templates=[(16, 16, True)])
>>> round(cost.memory / 2**20), cost.work
(1192, 49597068)
"""

from dataclasses import dataclass

from .scores.workspace import KEPT_BYTES

__all__ = ["SearchCost", "search_cost", "template_work", "PER_CHANNEL", "PER_POSITION", "PER_EXTRA_MAP",
           "MASKED_KERNELS"]

PER_CHANNEL = {False: 24, True: 64}
"""Engine bytes per searched position and channel, unmasked / masked (float64 copies, spectra, window sums)."""
PER_POSITION = {False: 48, True: 80}
"""Engine bytes per searched position whatever the channels (the score map, goodness, peaks), unmasked / masked."""
PER_EXTRA_MAP = 24
"""Engine bytes per searched position for each template after the first (its kept score map and sums)."""
MASKED_KERNELS = 4
"""Correlations per channel of a masked score, against one unmasked (as :func:`matcher.choose_algorithm` counts)."""


@dataclass(frozen=True)
class SearchCost:
    """A search's estimated ``memory`` (bytes, peak) and ``work`` (units, see :mod:`matcher.budget`)."""

    memory: int
    work: int


def template_work(positions, channels, masked, search_factor=1.0):
    """Work units of one template searched over ``positions`` windows (the module docstring's formula).

    >>> template_work(1000, 3, True), template_work(1000, 1, False, search_factor=36)
    (12000, 36000)
    """
    return int(positions * channels * (MASKED_KERNELS if masked else 1) * search_factor)


def search_cost(image_hw, *, channels, bytes_per_sample=1, templates, file_channels=None, region=None,
                search_factor=1.0):
    """Estimate a search's peak memory and work from sizes alone.

    Parameters
    ----------
    image_hw : (int, int)
        The image's height and width (from its header).
    channels : int
        Channels the engine matches: 1 (gray, or ``gray=True``) or 3; alpha
        is not matched.
    bytes_per_sample : int, keyword-only
        1 or 2 (8- or 16-bit files).
    templates : sequence of (int, int, bool), keyword-only
        ``(height, width, masked)`` of each template; ``masked`` when a mask is
        sent or the template has an alpha channel.
    file_channels : int, optional, keyword-only
        Channels the decoder returns for the image, alpha included (default
        ``channels``).
    region : (x, y, width, height), optional, keyword-only
        The searched rectangle; default the whole image.
    search_factor : float, keyword-only
        Multiplies the work (a turned or scaled search's number of poses).

    Returns
    -------
    SearchCost
    """
    height, width = image_hw
    file_channels = channels if file_channels is None else file_channels
    decoded = height * width * file_channels * bytes_per_sample
    memory = 2 * decoded + (height * width * bytes_per_sample if channels < file_channels else 0)
    area_h, area_w = (region[3], region[2]) if region is not None else (height, width)
    work, first = 0, True
    for th, tw, masked in templates:
        positions = max(area_h - th + 1, 1) * max(area_w - tw + 1, 1)
        memory += th * tw * (file_channels * bytes_per_sample * 2 + 8 * channels * 3)
        if first:
            area = area_h * area_w
            memory += area * (channels * PER_CHANNEL[masked] + PER_POSITION[masked])
            first = False
        else:
            memory += positions * PER_EXTRA_MAP
        work += template_work(positions, channels, masked, search_factor)
    masked_any = any(m for _, _, m in templates)
    area = area_h * area_w
    if masked_any and not templates[0][2]:  # the first is unmasked, a later one masked: the masked rates
        memory += area * (channels * (PER_CHANNEL[True] - PER_CHANNEL[False]) + PER_POSITION[True] - PER_POSITION[False])
    # the working arrays the engine keeps for its next call (matcher.scores.workspace): they grow by at
    # most their cap, and by at most the engine's own working set
    memory += min(KEPT_BYTES, area * (channels * PER_CHANNEL[masked_any] + PER_POSITION[masked_any]))
    return SearchCost(int(memory), int(work))
