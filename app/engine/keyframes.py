"""Keyframes of a video: the frames that structure-from-motion maps; the others are registered to them.

Corners of the last keyframe are followed frame by frame (:mod:`app.engine.frame_tracks`); a frame becomes the next
keyframe when the view has moved enough since the last one, by either measure:

* **parallax**: the median displacement of the followed corners reaches ``parallax`` × the image diagonal
  (KITTI 07, driving at 0.57 m a frame: a keyframe every few frames; a slow pan: every dozen or so);
* **overlap**: fewer than ``min_tracked`` of the keyframe's corners are still followed (a fast turn, an
  occlusion, a cut).

The first and the last frame are keyframes, so every other frame lies between two. A camera that stands still
adds no keyframes. Work is linear in the frames: one optical-flow step per frame at most ``max_side`` px.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from app.engine.frame_tracks import corners, grey, track


@dataclass(frozen=True)
class KeyframeOptions:
    """``parallax``: median corner displacement since the last keyframe, as a fraction of the image diagonal,
    that makes a keyframe; ``min_tracked``: the fraction of the keyframe's corners still followed below which a
    frame becomes a keyframe; ``corners`` detected per keyframe, at least ``min_distance`` (fraction of the
    diagonal) apart; tracking runs on the frames scaled to at most ``max_side`` px."""

    parallax: float = 0.004
    min_tracked: float = 0.7
    corners: int = 600
    min_distance: float = 0.01
    max_side: int = 640


@dataclass
class KeyframeSelection:
    """``keyframes``: frame indices (sorted, first and last included); per frame, the ``parallax`` (fraction of
    the diagonal) and ``tracked`` fraction measured against its keyframe; per keyframe, why it is one."""

    keyframes: list[int]
    parallax: np.ndarray
    tracked: np.ndarray
    reasons: list[str] = field(default_factory=list)

    def bracket(self, frame: int) -> tuple[int, int]:
        """The keyframes just before (or at) and just after (or at) ``frame``."""
        k = int(np.searchsorted(self.keyframes, frame, side="right")) - 1
        before = self.keyframes[k]
        return before, before if before == frame else self.keyframes[k + 1]


def _small(image: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    g = grey(image)
    s = max_side / max(g.shape)
    return g if s >= 1 else cv2.resize(g, (round(g.shape[1] * s), round(g.shape[0] * s)), interpolation=cv2.INTER_AREA)


def _parallax(start: np.ndarray, points: np.ndarray) -> float:
    """Median displacement (px) of the followed corners that a homography (RANSAC) does not explain: a
    rotation alone, or a plane, moves every point by one homography and gives none; ``inf`` when too few
    corners are left to tell."""
    import cv2

    if len(points) < 8:
        return float("inf")
    H, _ = cv2.findHomography(start, points, cv2.RANSAC, 2.0, maxIters=200, confidence=0.99)
    if H is None:
        return float(np.median(np.linalg.norm(points - start, axis=1)))
    mapped = cv2.perspectiveTransform(start.reshape(-1, 1, 2).astype(np.float64), H).reshape(-1, 2)
    return float(np.median(np.linalg.norm(points - mapped, axis=1)))


def select_keyframes(frames: Iterable[np.ndarray], options: KeyframeOptions = KeyframeOptions(),
                     progress: Callable[[int], None] | None = None) -> KeyframeSelection:
    """Keyframes of ``frames`` (``uint8`` RGB or grey, in order, consumed once); ``progress(i)`` after frame ``i``."""
    keyframes, reasons, parallax, tracked = [], [], [], []
    initial = 0
    previous = start = points = None
    diagonal = 1.0
    count = 0
    for i, frame in enumerate(frames):
        image = _small(frame, options.max_side)
        count = i + 1
        if previous is None:
            diagonal = float(np.hypot(*image.shape[:2]))
            decision = "first"
        else:
            t = track(previous, image, points)
            points, start = t.points[t.ok], start[t.ok]
            moved = _parallax(start, points) / diagonal
            followed = len(points) / max(initial, 1)
            parallax.append(moved)
            tracked.append(followed)
            decision = "parallax" if moved >= options.parallax else "overlap" if followed < options.min_tracked else ""
        if decision:
            keyframes.append(i)
            reasons.append(decision)
            if decision == "first":
                parallax.append(0.0)
                tracked.append(1.0)
            points = corners(image, options.corners, options.min_distance * diagonal)
            start, initial = points.copy(), len(points)
        previous = image
        if progress is not None:
            progress(i)
    if count and keyframes[-1] != count - 1:
        keyframes.append(count - 1)
        reasons.append("last")
    return KeyframeSelection(keyframes, np.asarray(parallax), np.asarray(tracked), reasons)
