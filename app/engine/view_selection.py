"""Which views to match each view against in multi-view stereo: its best neighbours by SfM covisibility.

As COLMAP's ``GetMaxOverlappingImages`` (the source images of its PatchMatch stereo) and OpenMVS's neighbour
selection, two views are good partners when they observe many of the same SfM points from usefully different
directions: each shared point counts with a weight of its triangulation angle ``θ`` (the angle between the two
viewing rays) — ``min(θ / good_angle, 1)²``, so points seen along nearly the same ray (no depth information) count
little, times ``exp(-(θ - max_angle)² / (2 · 10°²))`` beyond ``max_angle`` (wide baselines distort the
matching windows). Views without enough shared points (e.g. placed from the network, not registered by SfM) take
the views their depth overlaps most (:func:`app.engine.dense_fit.overlap_neighbours`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mum.geometry import camera_centers


def covisibility_scores(cam_from_world: np.ndarray, points: np.ndarray, observed: Sequence[np.ndarray],
                        good_angle: float = 5.0, max_angle: float = 40.0) -> np.ndarray:
    """``[S, S]`` symmetric scores (0 on the diagonal): the angle-weighted count of SfM points both views
    observe. ``points`` ``[P, 3]`` world, ``observed[i]`` the indices of the points view ``i`` observes; angles in
    degrees."""
    S = len(cam_from_world)
    centres = camera_centers(cam_from_world)
    scores = np.zeros((S, S))
    unique = [np.unique(np.asarray(idx, np.int64)) for idx in observed]
    for i in range(S):
        if len(unique[i]) == 0 or not np.isfinite(centres[i]).all():
            continue
        for j in range(i + 1, S):
            if len(unique[j]) == 0 or not np.isfinite(centres[j]).all():
                continue
            shared = np.intersect1d(unique[i], unique[j], assume_unique=True)
            if len(shared) == 0:
                continue
            a, b = points[shared] - centres[i], points[shared] - centres[j]
            cos = np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
            angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
            weight = np.minimum(angle / good_angle, 1) ** 2 * np.exp(-np.maximum(angle - max_angle, 0) ** 2 / 200)
            scores[i, j] = scores[j, i] = float(weight.sum())
    return scores


def select_neighbours(scores: np.ndarray, count: int, min_score: float = 5.0,
                      fallback: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
    """For each view, up to ``count`` other views, best ``scores`` first, each scoring at least ``min_score``;
    a view with none takes ``fallback[i]`` (e.g. by depth overlap) when given."""
    out = []
    for i in range(len(scores)):
        order = [int(j) for j in np.argsort(-scores[i], kind="stable") if j != i and scores[i, j] >= min_score]
        if not order and fallback is not None:
            order = [int(j) for j in fallback[i] if j != i]
        out.append(order[:count])
    return out
