"""Planning an input: which path its views take and how many views one network pass holds.

* **the sequence path** (:mod:`app.engine.sequence`) for a video or numbered frames (:func:`use_sequence_path`);
* **one pass** when every view fits in memory (:func:`auto_window`), else
* **chunks** of ``window`` consecutive views sharing ``overlap`` (:func:`plan_chunks`), each view owned by the
  chunk where it is most central (:func:`owners`), joined by :mod:`app.engine.chunked`.

:func:`plan_views` decides all of it before anything large is allocated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from app.engine.options import PipelineOptions
from app.engine.runtime import available_memory
from mum.errors import UserError

if TYPE_CHECKING:
    from app.engine.known_cameras import KnownCameras
    from app.engine.view_source import ViewSource

# What one view costs during a network pass, per pixel of the network input (activations, dense heads, their
# outputs): measured with the bundled model on the CPU, 200 vs 50 views at 224 and 112 px (68-97 bytes); the
# decoded original image comes on top.
BYTES_PER_NETWORK_PIXEL = 100
MEMORY_FRACTION = 0.25  # of the available memory, for one pass
MIN_WINDOW = 8
MAX_AUTO_WINDOW = 128  # global attention makes a pass's time quadratic in its views: more is rarely faster
MIN_SEQUENCE_VIEWS = 31  # fewer views: every pair is matched anyway (the default path's exhaustive matching)


def auto_window(network_pixels: int, original_pixels: int, device: str = "cpu",
                available: Optional[int] = None) -> int:
    """Views per network pass that fit in :data:`MEMORY_FRACTION` of the available memory, between
    :data:`MIN_WINDOW` and :data:`MAX_AUTO_WINDOW`."""
    available = available_memory(device) if available is None else available
    per_view = network_pixels * BYTES_PER_NETWORK_PIXEL + 3 * original_pixels
    return int(min(MAX_AUTO_WINDOW, max(MIN_WINDOW, MEMORY_FRACTION * available // max(per_view, 1))))


def default_overlap(window: int) -> int:
    """Views shared by consecutive chunks: a quarter of the window, at least 3 (a robust fit), at most half."""
    return max(1, min(window // 2, max(3, window // 4)))


def plan_chunks(num_views: int, window: int, overlap: int) -> list[range]:
    """Consecutive chunks of ``window`` views, each sharing at least ``overlap`` views with the previous one,
    the last ending at the last view; one chunk when every view fits."""
    if window < 2 and num_views > window:
        raise UserError("a window of views per pass must hold at least 2 views")
    if num_views <= window:
        return [range(0, num_views)]
    overlap = max(1, min(overlap, window - 1))
    step = window - overlap
    starts = list(range(0, num_views - window + 1, step))
    if starts[-1] + window < num_views:
        starts.append(num_views - window)
    return [range(s, s + window) for s in starts]


def owners(chunks: Sequence[range], num_views: int) -> np.ndarray:
    """``[num_views]``: the chunk each view is most central in (its camera and maps come from there)."""
    best = np.full(num_views, -1)
    margin = np.full(num_views, -1)
    for k, chunk in enumerate(chunks):
        for v in chunk:
            m = min(v - chunk.start, chunk.stop - 1 - v)
            if m > margin[v]:
                best[v], margin[v] = k, m
    return best


_NUMBERED = re.compile(r"^(.*?)(\d+(?:\.\d+)?)$")


def is_sequence(source: ViewSource) -> bool:
    """A video's frames, or image files named by one prefix and increasing numbers (``frame_000123.png``,
    ``000123.jpg``, timestamps ``1341847980.722988.png``): an ordered sequence."""
    if source.photos is None:
        return True
    stems = [name.rsplit("/", 1)[-1].rsplit(".", 1)[0] for name in source.names]
    parts = [_NUMBERED.match(s) for s in stems]
    if len(stems) < 2 or not all(parts) or len({p.group(1) for p in parts}) != 1:
        return False
    numbers = [float(p.group(2)) for p in parts]
    return all(b > a for a, b in zip(numbers, numbers[1:]))


def use_sequence_path(source: ViewSource, options: PipelineOptions, known: Optional[KnownCameras],
                      sequence: Optional[bool]) -> bool:
    """Whether :func:`app.engine.sequence.reconstruct_sequence` runs: asked for (``sequence=True``), or by
    default (``None``) for a sequence (:func:`is_sequence`) of at least :data:`MIN_SEQUENCE_VIEWS` frames of one
    size on the default path (not ``--fast``) without poses to keep. ``True`` where it cannot run is a :class:`UserError`."""
    reasons = []
    if options.fast:
        reasons.append("--fast has no SfM")
    if known is not None and known.posed.any():
        reasons.append("--fix-poses keeps given poses in one pass")
    if len(set(source.sizes)) != 1:
        reasons.append("the frames differ in size")
    if len(source) < 3:
        reasons.append("fewer than 3 frames")
    if sequence:
        if reasons:
            raise UserError(f"--sequence on: {'; '.join(reasons)}")
        return True
    return sequence is None and not reasons and len(source) >= MIN_SEQUENCE_VIEWS and is_sequence(source)


@dataclass(frozen=True)
class Plan:
    """How an input's views are reconstructed. ``sequence``: the sequence path first (it may hand the views
    back: :func:`app.engine.sequence.reconstruct_sequence`); ``chunks``: the views of each network pass (one
    range: every view in one pass), ``window`` views each, ``overlap`` shared by neighbours; ``aspect``: the
    network input's width / height; ``note``: the line that says why the views are chunked (``None``: a window
    was given, or every view fits)."""

    sequence: bool
    chunks: list[range]
    window: int
    overlap: int
    aspect: float
    note: Optional[str] = None

    @property
    def one_pass(self) -> bool:
        return len(self.chunks) == 1


def plan_views(model: Any, source: ViewSource, options: PipelineOptions, known: Optional[KnownCameras]) -> Plan:
    """The plan for ``source`` with ``model`` (a ``heads.Reconstructor``; its input size and patch size) and
    ``options.long_input`` (:class:`~app.engine.options.LongInputOptions`): ``window`` default
    :func:`auto_window` (for ``options.network``'s size and device), ``overlap`` default :func:`default_overlap`,
    ``sequence`` as :func:`use_sequence_path` takes it. Given poses (``known.posed``) need every view in one
    pass: a :class:`UserError` otherwise; so does a one-pass run whose dense stage would not fit in memory
    (:func:`app.engine.multiview_stereo.check_memory_before_the_network`, checked here, before the network)."""
    from mum.io import network_size

    S = len(source)
    window, overlap = options.long_input.window, options.long_input.overlap
    use_sequence = use_sequence_path(source, options, known, options.long_input.sequence)
    size = options.network.long_side or model.cfg.image_size
    aspect = source.aspect()
    W, H = network_size(round(1_000_000 * aspect), 1_000_000, size, model.patch_size)
    note = None
    if window is None:
        largest = max(w * h for w, h in source.sizes)
        window = auto_window(W * H, largest, options.network.device)
        if S > window:
            note = f"{S} views: {window} views per pass fit in memory ({W} × {H} px each; --window to change)"
    if S > window and known is not None and known.posed.any():
        raise UserError(f"--fix-poses keeps given poses in one network pass, and {S} views make {window} per pass: "
                        f"give --window {S} (memory permitting) or fewer views")
    overlap = default_overlap(window) if overlap is None else overlap
    if S <= window and not use_sequence and not options.fast and options.dense.mode == "stereo":
        from app.engine.multiview_stereo import check_memory_before_the_network

        check_memory_before_the_network((W, H), source.sizes, options.dense)  # a refusal before the network runs
    return Plan(use_sequence, plan_chunks(S, window, overlap), window, overlap, aspect, note)
