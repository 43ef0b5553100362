"""Cameras of the frames between keyframes: registered by PnP against the keyframe map.

For the frames between two registered keyframes ``A`` and ``B``, the keyframes' observations of map points are
followed frame by frame (optical flow, :mod:`app.engine.frame_tracks`), forwards from ``A`` and backwards from ``B``;
each frame then has 2D–3D correspondences, and its pose is estimated robustly and refined
(``pycolmap.estimate_and_refine_absolute_pose``: P3P in LO-RANSAC, seeded, then non-linear refinement) with
the map's intrinsics. The inlier correspondences are the frame's observations, to which its depth is fitted
(:mod:`app.engine.dense_fit`), exactly as a keyframe's SfM observations are.

Conventions: camera-from-world ``[4, 4]``; pixels in the original frames with centres at integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from app.engine.frame_tracks import grey, track


@dataclass(frozen=True)
class RegistrationOptions:
    """``max_error``: RANSAC inlier threshold (px); a pose needs ``min_inliers`` inliers making at least
    ``min_inlier_ratio`` of the correspondences; tracking runs on frames scaled to at most ``max_side`` px."""

    max_error: float = 4.0
    min_inliers: int = 30
    min_inlier_ratio: float = 0.25
    max_side: int = 1600
    random_seed: int = 0


@dataclass
class Registered:
    """A frame's pose, its PnP inliers: their pixels ``[n, 2]`` and map point indices ``[n]``."""

    cam_from_world: np.ndarray
    inliers: int
    pixels: np.ndarray
    point_ids: np.ndarray


def _scale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    import cv2

    g = grey(image)
    s = min(1.0, max_side / max(g.shape))
    if s < 1.0:
        g = cv2.resize(g, (round(g.shape[1] * s), round(g.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return g, s


def _follow(images: Iterator[tuple[int, np.ndarray, float]], pixels: np.ndarray, ids: np.ndarray
            ) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """The pixels (original pixels) of the first of ``images`` (``(frame, grey image, scale)``, one at a time)
    followed through the later ones: per later frame, (pixels, their point ids). Stops once no point is left,
    so the frames after that are not decoded."""
    k, previous, s = next(images)
    at = ((pixels + 0.5) * s - 0.5).astype(np.float32)
    for k, current, _ in images:
        t = track(previous, current, at)
        at, ids = t.points[t.ok], ids[t.ok]
        if not len(ids):
            return
        yield k, ((at.astype(np.float64) + 0.5) / s - 0.5, ids)
        previous = current


def estimate_pose(pixels: np.ndarray, ids: np.ndarray, points: np.ndarray, K: np.ndarray, size: tuple[int, int],
                  options: RegistrationOptions = RegistrationOptions()) -> Registered | None:
    """The camera-from-world pose from 2D–3D correspondences (``[n, 2]`` original pixels, the ids ``[n]`` of
    their ``points``), or ``None`` with too few inliers."""
    from mum.pycolmap_import import import_pycolmap
    pycolmap = import_pycolmap()

    from app.engine.keyframe_map import pinhole_camera

    if len(pixels) < options.min_inliers:
        return None
    estimation = pycolmap.AbsolutePoseEstimationOptions()
    estimation.ransac.max_error = options.max_error
    estimation.ransac.random_seed = options.random_seed
    result = pycolmap.estimate_and_refine_absolute_pose(pixels + 0.5, points[ids], pinhole_camera(K, *size), estimation)
    if result is None:
        return None
    mask = np.asarray(result["inlier_mask"], bool)
    if mask.sum() < options.min_inliers or mask.mean() < options.min_inlier_ratio:
        return None
    T = np.eye(4)
    T[:3, :] = result["cam_from_world"].matrix()
    return Registered(T, int(mask.sum()), pixels[mask], ids[mask])


def register_between(frames: Sequence[np.ndarray], first: int, start: tuple[np.ndarray, np.ndarray] | None,
                     end: tuple[np.ndarray, np.ndarray] | None, points: np.ndarray, K: np.ndarray,
                     options: RegistrationOptions = RegistrationOptions()) -> dict[int, Registered]:
    """Register the frames of ``frames`` (``uint8`` images of frames ``first, first + 1, …``) that are not
    keyframes of the map: ``start``/``end`` are the observations (point ids ``[n]``, pixels ``[n, 2]``) of the
    first/last frame when it is a keyframe of the map, else ``None`` (the run of frames before the first or
    after the last keyframe: that end is registered too); ``points`` ``[P, 3]`` the map's points. Returns the
    frames registered. ``frames`` is indexed one frame at a time, forwards then backwards, and no image is kept
    beyond the next one: a sequence that decodes a frame when indexed bounds the memory to two frames, however
    long the gap between keyframes."""
    n = len(frames)
    lo, hi = (0 if start is None else 1), (n - 1 if end is None else n - 2)  # the frames to register
    if hi < lo or (start is None and end is None):
        return {}
    size: list[tuple[int, int]] = []

    def greys(order: Iterable[int]) -> Iterator[tuple[int, np.ndarray, float]]:
        for k in order:
            image = frames[k]
            size[:] = [(image.shape[1], image.shape[0])]
            yield (k, *_scale(image, options.max_side))

    found: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in range(lo, hi + 1)}
    if start is not None and len(start[0]):
        for k, pair in _follow(greys(range(hi + 1)), start[1], start[0]):
            found[k].append(pair)
    if end is not None and len(end[0]):
        for k, pair in _follow(greys(range(n - 1, lo - 1, -1)), end[1], end[0]):
            found[k].append(pair)
    out = {}
    for k, pairs in found.items():
        if not pairs:
            continue
        pixels = np.concatenate([p for p, _ in pairs])
        ids = np.concatenate([i for _, i in pairs])
        _, first_seen = np.unique(ids, return_index=True)  # a point followed from both keyframes: once
        first_seen.sort()
        registered = estimate_pose(pixels[first_seen], ids[first_seen], points, K, size[0], options)
        if registered is not None:
            out[first + k] = registered
    return out
