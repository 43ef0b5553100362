"""Points followed from frame to frame of a video (pyramidal Lucas-Kanade optical flow, OpenCV).

Used by the sequence path (:mod:`app.engine.sequence`) twice: to measure how far the view has moved since the last
keyframe (:mod:`app.engine.keyframes`), and to carry a keyframe's SfM observations into the frames between keyframes,
which are then registered by PnP against the keyframe map. Every track is checked forward and backward: a point
is kept only when tracking it back lands within ``max_fb_error`` pixels of where it started.

Conventions: ``uint8`` grey images ``[H, W]``; points ``[N, 2]`` float32 (x, y) pixel centres at integer
coordinates (OpenCV's, the project's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LK_WINDOW = 15  # px: the patch Lucas-Kanade matches
LK_LEVELS = 4  # pyramid levels: motions up to ~2^4 windows


def grey(image: np.ndarray) -> np.ndarray:
    """``uint8`` RGB ``[H, W, 3]`` (or grey ``[H, W]``) → grey ``[H, W]``."""
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def corners(image: np.ndarray, count: int, min_distance: float) -> np.ndarray:
    """Up to ``count`` Shi-Tomasi corners ``[N, 2]`` of a grey image, at least ``min_distance`` px apart."""
    import cv2

    found = cv2.goodFeaturesToTrack(image, maxCorners=count, qualityLevel=0.01, minDistance=min_distance, blockSize=7)
    return np.zeros((0, 2), np.float32) if found is None else found.reshape(-1, 2).astype(np.float32)


@dataclass
class Tracked:
    """Where the points went (``points`` ``[N, 2]``) and which of them are trusted (``ok`` ``[N]``)."""

    points: np.ndarray
    ok: np.ndarray


def track(previous: np.ndarray, current: np.ndarray, points: np.ndarray, max_fb_error: float = 1.0) -> Tracked:
    """Follow ``points`` from the grey image ``previous`` to ``current``; a point is ``ok`` when both directions
    converge, it stays inside the image and the backward track returns within ``max_fb_error`` px."""
    import cv2

    points = np.ascontiguousarray(points, np.float32).reshape(-1, 2)
    if not len(points):
        return Tracked(points.copy(), np.zeros(0, bool))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    params = dict(winSize=(LK_WINDOW, LK_WINDOW), maxLevel=LK_LEVELS, criteria=criteria)
    forward, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, points, None, **params)
    back, status_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, forward, None, **params)
    h, w = current.shape[:2]
    ok = (status.ravel() == 1) & (status_back.ravel() == 1)
    ok &= np.linalg.norm(back - points, axis=1) <= max_fb_error
    ok &= (forward[:, 0] >= 0) & (forward[:, 0] <= w - 1) & (forward[:, 1] >= 0) & (forward[:, 1] <= h - 1)
    return Tracked(forward.reshape(-1, 2), ok)
