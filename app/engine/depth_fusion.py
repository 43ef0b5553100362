"""Geometric consistency of per-view depth maps across views, and their fusion (:func:`geometric_consistency`).

A pixel ``p`` of view ``i`` with depth ``D_i(p)`` is *confirmed* by a neighbour view ``j`` when the round trip
closes, as in COLMAP's and OpenMVS's fusion: its 3D point projects into ``j`` at ``q`` (sub-pixel); ``j``'s depth
there (bilinear, so a depth edge between the four pixels around ``q`` breaks the trip) is unprojected from ``q``
and projected back into ``i``, landing within ``pixel_tolerance`` pixels of ``p`` at a depth within
``depth_tolerance`` (relative) of ``D_i(p)``, the two viewing rays meeting at ``min_angle`` or more. The fused
depth of a pixel is the mean of its own depth and the round-trip depths of the neighbours that confirm it
(independent matching errors average out).

Depth is camera z (NaN: unknown); ``K`` ``[S, 3, 3]`` in pixels of the depth grid (pixel centres at integers);
``cam_from_world`` ``[S, 4, 4]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from app.engine.view_threads import ordered_map

DIFFERENCE_SAMPLES = 20_000  # relative depth differences kept per view pair for the disagreement figures


@dataclass
class Consistency:
    """``confirmed`` ``[S, H, W]`` int16: how many neighbours confirm each pixel; ``depth`` ``[S, H, W]``
    float32: the fused depth (the own depth where none confirms; NaN where unknown); ``checked`` ``[S]``: how
    many neighbours each view was checked against; ``differences``: per view, a sample of the relative depth
    differences ``|D_j(q) − z_j| / D_j(q)`` of its pixels that land inside a neighbour, and those pixels' flat
    indices (the multi-view disagreement figures)."""

    confirmed: np.ndarray
    depth: np.ndarray
    checked: np.ndarray
    differences: list[tuple[np.ndarray, np.ndarray]]

    def median_disagreement(self, mask: Optional[np.ndarray] = None) -> float:
        """The median of the sampled relative depth differences, over the pixels in ``mask`` ``[S, H, W]``
        (default all); NaN when no view overlaps another."""
        values = []
        for i, (rel, flat) in enumerate(self.differences):
            values.append(rel if mask is None else rel[mask[i].reshape(-1)[flat]])
        values = np.concatenate(values) if values else np.zeros(0)
        return float(np.median(values)) if len(values) else float("nan")


def sample(image: np.ndarray, u: np.ndarray, v: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` ``[H, W]`` float32 at pixel coordinates ``u, v`` ``[n]`` (bilinear by default; NaN outside).
    ``cv2.remap`` wants maps under 32767 a side: the points are folded into rows of 1024."""
    n = len(u)
    if n == 0:
        return np.zeros(0, np.float32)
    rows = -(-n // 1024)
    maps = np.full((2, rows * 1024), -1, np.float32)
    maps[0, :n], maps[1, :n] = u, v
    out = cv2.remap(image, maps[0].reshape(rows, 1024), maps[1].reshape(rows, 1024), interpolation,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    return out.reshape(-1)[:n]


def _transfer(depth: np.ndarray, u: np.ndarray, v: np.ndarray, K_from: np.ndarray, K_to: np.ndarray,
              to_from: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels ``(u, v)`` of one view with ``depth`` (arrays of one shape) → pixel coordinates and depth in
    another view (``to_from``: its camera-from-this-camera 4×4)."""
    M = (K_to @ to_from[:3, :3] @ np.linalg.inv(K_from)).astype(np.float32)
    b = (K_to @ to_from[:3, 3]).astype(np.float32)
    x = depth * (M[0, 0] * u + M[0, 1] * v + M[0, 2]) + b[0]
    y = depth * (M[1, 0] * u + M[1, 1] * v + M[1, 2]) + b[1]
    z = depth * (M[2, 0] * u + M[2, 1] * v + M[2, 2]) + b[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / z, y / z, z


def geometric_consistency(depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray,
                          neighbours: Sequence[Sequence[int]], pixel_tolerance: float = 1.0,
                          depth_tolerance: float = 0.01, min_angle: float = 0.0,
                          mask: Optional[np.ndarray] = None, workers: int = 1) -> Consistency:
    """Check the pixels of every view (those in ``mask`` ``[S, H, W]``, default every pixel with a depth)
    against its ``neighbours`` (see the module docstring). A neighbour confirms a pixel only where the two
    viewing rays of its point meet at ``min_angle`` degrees or more (COLMAP's minimum triangulation angle: below
    it the round trip closes for almost any depth, e.g. on a sky or a backdrop at infinity). ``workers`` views
    are checked at once on threads (the result does not depend on it)."""
    S, H, W = depth.shape
    depth = depth.astype(np.float32)
    confirmed = np.zeros((S, H, W), np.int16)
    fused = depth.copy()
    differences = []
    min_cos = np.float32(np.cos(np.radians(min_angle)))

    def check(i: int):
        """View ``i``: its checked pixels (flat indices), their confirmations and fused depth, and per neighbour
        the pixels that land on its depth with their relative differences."""
        chosen = np.isfinite(depth[i]) & (depth[i] > 0)
        if mask is not None:
            chosen &= mask[i]
        flat = np.flatnonzero(chosen)
        d = depth[i].reshape(-1)[flat]
        u = (flat % W).astype(np.float32)
        v = (flat // W).astype(np.float32)
        total, count = d.copy(), np.zeros(d.shape, np.int16)
        landed = []
        if min_angle > 0:  # the ray from view i's centre to each pixel's point, in view i's frame, and its length²
            ray = ((u - K[i, 0, 2]) / K[i, 0, 0] * d, (v - K[i, 1, 2]) / K[i, 1, 1] * d, d.astype(np.float64))
            ray_sq = ray[0] * ray[0] + ray[1] * ray[1] + ray[2] * ray[2]
        for j in neighbours[i]:
            j_from_i = cam_from_world[j] @ np.linalg.inv(cam_from_world[i])
            uj, vj, zj = _transfer(d, u, v, K[i], K[j], j_from_i)
            inside = np.isfinite(uj) & (zj > 0) & (uj >= 0) & (vj >= 0) & (uj <= W - 1) & (vj <= H - 1)
            map_u, map_v = np.where(inside, uj, -1).astype(np.float32), np.where(inside, vj, -1).astype(np.float32)
            dj = sample(depth[j], map_u, map_v)
            back_u, back_v, back_z = _transfer(dj, map_u, map_v, K[j], K[i], np.linalg.inv(j_from_i))
            with np.errstate(invalid="ignore"):
                du, dv = back_u - u, back_v - v
                ok = (inside & (du * du + dv * dv <= np.float32(pixel_tolerance) ** 2)
                      & (np.abs(back_z - d) <= depth_tolerance * d))
            if min_angle > 0:  # the rays from both camera centres to the point: r and o = r − c (c: j's centre)
                c = np.linalg.inv(j_from_i)[:3, 3].astype(np.float32).astype(np.float64)
                r_dot_c = c[0] * ray[0] + c[1] * ray[1] + c[2] * ray[2]
                with np.errstate(invalid="ignore", divide="ignore"):  # r·o / (|r| |o|), |o|² = |r|² − 2 r·c + |c|²
                    cos = (ray_sq - r_dot_c) / np.sqrt(ray_sq * (ray_sq - 2 * r_dot_c + c @ c))
                ok &= cos <= min_cos
            total += np.where(ok, back_z, 0)
            count += ok
            seen = np.flatnonzero(inside & np.isfinite(dj) & (dj > 0))
            landed.append((seen, np.abs(zj[seen] - dj[seen]) / dj[seen]))
        return flat, count, np.where(count > 0, total / (1 + count), d), landed

    rng = np.random.default_rng(0)  # drawn in view order, here: the samples do not depend on the threads
    for i, (flat, count, depth_i, landed) in enumerate(ordered_map(check, range(S), workers)):
        confirmed[i].reshape(-1)[flat] = count
        fused[i].reshape(-1)[flat] = depth_i
        rel_sample, flat_sample = [], []
        for seen, rel in landed:
            if len(seen) > DIFFERENCE_SAMPLES:  # positions in ``seen`` (increasing): the same as sorting the pixels
                pick = np.sort(rng.choice(len(seen), DIFFERENCE_SAMPLES, replace=False))
                seen, rel = seen[pick], rel[pick]
            rel_sample.append(rel)
            flat_sample.append(flat[seen])
        differences.append((np.concatenate(rel_sample) if rel_sample else np.zeros(0, np.float32),
                            np.concatenate(flat_sample) if flat_sample else np.zeros(0, np.int64)))
    return Consistency(confirmed, fused, np.array([len(n) for n in neighbours]), differences)
