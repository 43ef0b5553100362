"""Scale breaks: where the keyframe map's scale jumps, found by the network's depth and repaired.

A camera that turns on the spot gives SfM no baseline: the points it triangulates there have no reliable depth,
and the map after the turn can come out at another scale, many times smaller or larger, with nothing in the
geometry to tell (a monocular map's scale is carried only by points seen on both sides). The network's depth
can: within one window (:mod:`app.engine.sequence`, stage 2) the network predicts every frame's depth in one
pass, at one scale. Per keyframe, the map's depth of the points it observes over the network's depth at their
pixels (map units per network unit: :func:`app.engine.sequence.keyframe_ratios`) is about constant
along a window when the map's scale is; the network's depth is rough (on the synthetic walks this ratio wanders
by some tens of percent along a window), so only a jump of several times (:attr:`ScaleBreakOptions.min_jump`)
between the keyframes before a point of the window and those after it is taken for a break. Ratios are
compared within a window, or across the boundary of two neighbouring windows once their depth units are tied by
a short network pass over the frames either side of it (``ties``: :func:`app.engine.sequence.window_ties`);
two windows' depths are otherwise at unrelated scales.

A break is repaired by scaling every keyframe from it on, and every point that one of them sees first, about
the camera centre of the last keyframe before it (:func:`app.engine.keyframe_loops.correct_map`): the map's
reprojections in those keyframes stay as they were; the final bundle adjustment settles the few points seen on
both sides. The best-fitting break is repaired first and the ratios after it rescaled with the map, until no jump
is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from app.engine.camera_fusion import Similarity, compose, inverse
from app.engine.keyframe_loops import correct_map, rigid
from app.engine.keyframe_map import KeyframeMap


@dataclass(frozen=True)
class ScaleBreakOptions:
    """``min_jump``: the factor between the median ratios either side of a point of a window that makes a break,
    with at least ``min_side`` keyframes' ratios on each side, each from at least ``min_observations`` points."""

    min_jump: float = 3.0
    min_side: int = 2
    min_observations: int = 20


def strongest_break(ratios: np.ndarray, windows: np.ndarray, options: ScaleBreakOptions = ScaleBreakOptions(),
                    ties: np.ndarray | None = None) -> tuple[int, float] | None:
    """The best break: a position ``k`` (between keyframes ``k - 1`` and ``k``) that splits the log ratios of
    their window into two runs fitted best by their medians (the least mean absolute deviation), among the splits
    whose medians differ by ``options.min_jump`` or more, with ``options.min_side`` ratios on each side; and the
    factor that brings the map from ``k`` on to the scale before it (median before / median after). ``None`` when
    there is none. ``ratios`` ``[n]`` (NaN: unknown), ``windows`` ``[n]``: each keyframe's window; ``ties``
    ``[W]``: window ``w``'s unit of depth in window ``w - 1``'s (NaN: unknown), which lets a split at the
    boundary of the two compare their keyframes."""
    best: tuple[float, int, float] | None = None
    finite = np.isfinite(ratios) & (ratios > 0)
    logs = np.log(np.where(finite, ratios, 1.0))
    for k in range(1, len(ratios)):
        w = windows[k]
        if windows[k - 1] == w:
            same, run = np.nonzero((windows == w) & finite)[0], logs
        elif windows[k - 1] == w - 1 and ties is not None and np.isfinite(ties[w]) and ties[w] > 0:
            same = np.nonzero(((windows == w - 1) | (windows == w)) & finite)[0]
            run = logs - np.log(ties[w]) * (windows == w)  # window w's ratios in window w - 1's unit
        else:
            continue
        before, after = run[same[same < k]], run[same[same >= k]]
        if len(before) < options.min_side or len(after) < options.min_side:
            continue
        jump = float(np.median(before) - np.median(after))
        if abs(jump) < np.log(options.min_jump):
            continue
        cost = float(np.abs(before - np.median(before)).sum() + np.abs(after - np.median(after)).sum()) / len(same)
        if best is None or cost < best[0]:
            best = (cost, k, float(np.exp(jump)))
    return None if best is None else best[1:]


def rescale_after(kmap: KeyframeMap, frames: Sequence[int], k: int, factor: float) -> None:
    """In place: keyframes ``frames[k:]`` and the points they see first scaled by ``factor`` about the camera
    centre of ``frames[k - 1]`` (rotations kept)."""
    first = rigid(kmap.poses[frames[0]])
    nodes = [compose(first, inverse(rigid(kmap.poses[f]))) for f in frames]  # camera frame → the first camera's
    pivot = nodes[k - 1].translation
    about_pivot = Similarity(factor, np.eye(3), (1.0 - factor) * pivot)
    correct_map(kmap, list(frames), nodes[:k] + [compose(about_pivot, node) for node in nodes[k:]])


def repair_scale_breaks(kmap: KeyframeMap, ratios: np.ndarray, windows: Sequence[int],
                        options: ScaleBreakOptions = ScaleBreakOptions(), ties: np.ndarray | None = None
                        ) -> list[dict]:
    """Find and repair the map's scale breaks (see the module docstring), in place. ``ratios`` ``[n]``: per
    keyframe of ``kmap.frames`` its map units per unit of the network's depth (NaN: unknown; the sequence path
    measures them, :func:`app.engine.sequence.keyframe_ratios`), ``windows`` ``[n]``: its network window;
    ``ties``: see :func:`strongest_break`. Returns one record per break: the last keyframe before it, the first
    after it, the factor, the window of the first."""
    frames = kmap.frames
    ratios, windows = np.array(ratios, np.float64), np.asarray(windows)
    records = []
    for _ in range(len(frames)):
        found = strongest_break(ratios, windows, options, ties)
        if found is None:
            break
        k, factor = found
        rescale_after(kmap, frames, k, factor)
        ratios[k:] *= factor  # the map's depths from k on scaled by the factor
        records.append({"after_keyframe": int(frames[k - 1]), "first_keyframe": int(frames[k]),
                        "factor": round(factor, 4), "window": int(windows[k])})
    return records
