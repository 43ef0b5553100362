"""Fill-in by the scene's dominant planes: where multi-view stereo keeps nothing inside a plane it matched around
the hole (a textureless floor between the lines of its pattern, a plain wall, a table top), the exported depth
maps take that plane's depth instead of the network's prior (:func:`fill_planes`).

1. **Planes** (:func:`dominant_planes`): RANSAC on the kept stereo points of every view (a seeded sample), up to
   ``max_planes`` planes one after the other, each holding at least ``min_share`` of the points within
   ``distance``; each refined by least squares on its inliers; its extent is the rectangle its inliers cover.
2. **Inliers** per view and plane: the kept pixels whose depth lies within ``tolerance`` (relative) of the
   plane's depth along their ray.
3. **Holes**: the connected (4-neighbour) regions of pixels that stereo did not keep, where the plane lies in
   front of the camera, no other plane's extent lies in front of it along the ray, and the log of the plane's
   depth over the network's prior changes by less than ``max_gradient`` a pixel (a larger change is a depth
   edge the network sees and the plane does not have: an object's silhouette; such pixels bound the holes).
4. **Closing**: a hole takes the plane's depth when at least ``min_boundary`` of the pixels around it are the
   plane's inliers (the others: kept pixels off the plane, and the depth edges of step 3); around a textureless
   object standing on a floor, the object's own kept pixels and silhouette outvote the floor.
5. **Free space**: and when the other views (the view's stereo neighbours) do not see through it: of the hole's
   points on the plane that land on another view's kept stereo depth, at most ``see_through`` may have that
   depth beyond them (by more than ``tolerance``: the plane would hide what that view matched); the others agree
   with it. A facade's plane extended over the sky and the domes behind it (Sacré-Cœur, seen from below: the
   views from the front match the domes) is not filled.

Planes are taken largest first; a pixel one plane filled is not refilled by another. The plane ``n·X + d = 0``
for world points ``X`` (``|n| = 1``); cameras camera-from-world (OpenCV); depth is camera z. Measured on the
data engine's held-out scenes (``benchmarks/dense.py``, ``stereo`` against ``stereo_no_plane_fill``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from app.engine.dense_fit import _project
from mum.geometry import ray_basis

EXTENT_MARGIN = 0.1  # a plane's extent: its inliers' rectangle widened by this share of its size on each side
SCORE_POINTS = 5000  # RANSAC counts each hypothesis' inliers on this many points (a seeded sample), the best on all


@dataclass(frozen=True)
class PlaneFillOptions:
    """``max_planes``, ``min_share``: planes sought and the share of the kept points each must hold;
    ``distance``: RANSAC inlier distance as a share of the points' spread (their 90th-percentile distance to the
    median); ``samples``: points RANSAC sees (seeded); ``hypotheses``: RANSAC draws per plane; ``tolerance``:
    relative depth within which a kept pixel is the plane's; ``max_gradient``: the largest change a pixel of
    log(plane depth / prior) inside a hole; ``min_boundary``: the share of a hole's surrounding pixels that must
    be the plane's inliers for it to be filled; ``see_through``: the largest share of a hole's points that other
    views see through."""

    max_planes: int = 3
    min_share: float = 0.1
    distance: float = 0.01
    samples: int = 100_000
    hypotheses: int = 512
    tolerance: float = 0.05
    max_gradient: float = 0.02
    min_boundary: float = 0.5
    see_through: float = 0.2


@dataclass(frozen=True)
class Plane:
    """A plane ``n·X + d = 0`` (``coefficients`` ``[4]`` = ``(n, d)``, ``|n| = 1``, world) and the extent of its
    points: ``axes`` ``[2, 3]`` (orthonormal, in the plane), ``origin`` ``[3]`` and the rectangle ``low``–``high``
    ``[2]`` in those axes that holds its inliers (1st–99th percentiles, widened by ``EXTENT_MARGIN`` of its size
    on each side)."""

    coefficients: np.ndarray
    axes: np.ndarray
    origin: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of_points(cls, coefficients: np.ndarray, points: np.ndarray) -> "Plane":
        """The plane ``coefficients`` with the extent of ``points`` ``[N, 3]`` (its inliers)."""
        normal = coefficients[:3]
        first = np.cross(normal, [1.0, 0, 0] if abs(normal[0]) < 0.9 else [0, 1.0, 0])
        first /= np.linalg.norm(first)
        axes = np.stack([first, np.cross(normal, first)])
        origin = points.mean(0) - (points.mean(0) @ normal + coefficients[3]) * normal
        uv = (points - origin) @ axes.T
        low, high = np.percentile(uv, 1, axis=0), np.percentile(uv, 99, axis=0)
        margin = EXTENT_MARGIN * (high - low)
        return cls(coefficients, axes, origin, low - margin, high + margin)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """``[...]`` bool: whether ``points`` ``[..., 3]`` (on the plane) fall within its extent."""
        uv = (np.asarray(points, np.float64) - self.origin) @ self.axes.T
        return self.spans(uv[..., 0], uv[..., 1])

    def spans(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Whether the in-plane coordinates ``first``, ``second`` (along ``axes``, from ``origin``; any shape) lie
        within the extent."""
        return (first >= self.low[0]) & (first <= self.high[0]) & (second >= self.low[1]) & (second <= self.high[1])


def _fit_plane(points: np.ndarray) -> np.ndarray:
    """Least-squares plane ``[4]`` of ``points`` ``[N, 3]`` (N >= 3): the normal is the direction of least spread."""
    centre = points.mean(0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][-1]
    return np.append(normal, -normal @ centre)


def dominant_planes(points: np.ndarray, options: PlaneFillOptions = PlaneFillOptions(), seed: int = 0
                    ) -> list[Plane]:
    """Up to ``options.max_planes`` planes of ``points`` ``[N, 3]`` (see the module docstring), largest
    first; none when there are too few points. Seeded: the same points give the same planes."""
    points = np.asarray(points, np.float64)
    points = points[np.isfinite(points).all(1)]
    rng = np.random.default_rng(seed)
    if len(points) > options.samples:
        points = points[np.sort(rng.choice(len(points), options.samples, replace=False))]
    if len(points) < 3 / max(options.min_share, 1e-9) or len(points) < 3:
        return []
    spread = float(np.percentile(np.linalg.norm(points - np.median(points, 0), axis=1), 90))
    distance = options.distance * spread
    need = options.min_share * len(points)
    planes: list[Plane] = []
    rest = points
    for _ in range(options.max_planes):
        if len(rest) < max(need, 3):
            break
        triples = rest[rng.integers(0, len(rest), (options.hypotheses, 3))]  # [M, 3, 3]
        normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
        length = np.linalg.norm(normals, axis=1)
        normals, triples = normals[length > 1e-12] / length[length > 1e-12, None], triples[length > 1e-12]
        if not len(normals):
            break
        offsets = -np.einsum("md,md->m", normals, triples[:, 0])
        scored = rest if len(rest) <= SCORE_POINTS else rest[np.sort(rng.choice(len(rest), SCORE_POINTS, replace=False))]
        counts = (np.abs(scored @ normals.T + offsets) < distance).sum(0)  # [M], on a sample of the points
        best = int(np.argmax(counts))
        inliers = np.abs(rest @ normals[best] + offsets[best]) < distance
        if inliers.sum() < need:
            break
        plane = _fit_plane(rest[inliers])
        inliers = np.abs(rest @ plane[:3] + plane[3]) < distance  # refit's inliers
        if inliers.sum() < need:
            break
        planes.append(Plane.of_points(plane, rest[inliers]))
        rest = rest[~inliers]
    return planes


def plane_depth(plane: Plane, K: np.ndarray, cam_from_world: np.ndarray, shape: tuple[int, int],
                extent: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``[H, W]`` float64: the camera z where each pixel's ray meets ``plane`` (NaN where it meets it behind the
    camera or not at all), and ``[H, W]`` bool: where that point lies within the plane's extent (``None``
    unless ``extent``). ``K`` ``[3, 3]`` in pixels of ``shape`` (pixel centres at integers).

    In closed form on the pixel grid (:func:`~mum.geometry.ray_basis`: the ray of pixel ``(u, v)`` is
    ``c + z M [u, v, 1]``): ``n·X + d = 0`` gives ``z = −(n·c + d) / ((Mᵀn)·[u, v, 1])``, and the point's
    coordinates in the plane's axes ``A`` are ``A (c − origin) + z (A M) [u, v, 1]``: affine maps of ``u`` and
    ``v``, so no per-pixel ray is stored."""
    H, W = shape
    centre, M = ray_basis(K, cam_from_world)
    u, v = np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64)[:, None]
    normal, offset = plane.coefficients[:3], plane.coefficients[3]
    a, b, e = M.T @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        z = -(normal @ centre + offset) / (a * u + b * v + e)
    z = np.where(np.isfinite(z) & (z > 0), z, np.nan)
    if not extent:
        return z, None
    base, P = plane.axes @ (centre - plane.origin), plane.axes @ M
    zero = np.nan_to_num(z)
    first, second = (base[k] + zero * (P[k, 0] * u + P[k, 1] * v + P[k, 2]) for k in range(2))
    return z, plane.spans(first, second) & np.isfinite(z)


def _points_at(depth: np.ndarray, pixels: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray) -> np.ndarray:
    """World points ``[N, 3]`` float64 of the flat pixel indices ``pixels`` ``[N]`` of ``depth`` ``[H, W]`` (camera
    z; :func:`~mum.geometry.ray_basis`)."""
    centre, M = ray_basis(K, cam_from_world)
    v, u = np.divmod(pixels, depth.shape[1])
    directions = np.stack([u, v, np.ones(len(pixels))], -1).astype(np.float64) @ M.T
    return centre + depth.reshape(-1)[pixels, None] * directions


def kept_points(depth: np.ndarray, kept: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray, count: int,
                seed: int = 0) -> np.ndarray:
    """Up to ``count`` world points ``[N, 3]`` of the ``kept`` pixels of ``depth`` ``[S, H, W]`` (a seeded sample,
    about as many from every view); ``K`` ``[S, 3, 3]``, ``cam_from_world`` ``[S, 4, 4]``."""
    S, H, W = depth.shape
    rng = np.random.default_rng(seed)
    per_view = max(1, count // max(S, 1))
    out = []
    for i in range(S):
        flat = np.flatnonzero(kept[i] & np.isfinite(depth[i]))
        if len(flat) > per_view:
            flat = np.sort(rng.choice(flat, per_view, replace=False))
        out.append(_points_at(depth[i], flat, K[i], cam_from_world[i]))
    return np.concatenate(out) if out else np.zeros((0, 3))


def _boundary_counts(label: np.ndarray, count: int, good: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per component of ``label`` (``[H, W]``, 0 = none), how many of its pixels' 4-neighbours outside it are
    ``good`` and how many are ``bad`` (a pixel counted once per neighbour)."""
    good_n, bad_n = np.zeros(count, np.int64), np.zeros(count, np.int64)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        a = label[max(dy, 0):label.shape[0] + min(dy, 0), max(dx, 0):label.shape[1] + min(dx, 0)]
        b = (slice(max(-dy, 0), label.shape[0] + min(-dy, 0)), slice(max(-dx, 0), label.shape[1] + min(-dx, 0)))
        inside = a > 0
        good_n += np.bincount(a[inside & good[b]], minlength=count)
        bad_n += np.bincount(a[inside & bad[b]], minlength=count)
    return good_n, bad_n


@dataclass(frozen=True)
class OtherView:
    """Another view's kept stereo depth, for the free-space check: ``depth`` ``[H, W]`` (NaN where not kept),
    ``K`` ``[3, 3]`` in its pixels, ``cam_from_world`` ``[4, 4]``."""

    depth: np.ndarray
    K: np.ndarray
    cam_from_world: np.ndarray


def _free_space_votes(points: np.ndarray, label: np.ndarray, count: int, others: Sequence[OtherView],
                      tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Per hole (``label`` ``[N]`` of the world ``points`` ``[N, 3]``): how many of its points other views see
    where they are (their kept depth within ``tolerance``) and how many they see through (their kept depth
    beyond: the point would hide what they matched)."""
    agree, through = np.zeros(count, np.int64), np.zeros(count, np.int64)
    for view in others:
        z, u, v, inside = _project(points, view.K, view.cam_from_world, view.depth.shape)
        seen = np.full(len(points), np.nan)
        seen[inside] = view.depth[v[inside].astype(int), u[inside].astype(int)]
        with np.errstate(invalid="ignore"):
            agree += np.bincount(label[np.abs(seen - z) <= tolerance * z], minlength=count)
            through += np.bincount(label[seen > (1 + tolerance) * z], minlength=count)
    return agree, through


def fill_planes(filled: np.ndarray, prior: np.ndarray, depth: np.ndarray, kept: np.ndarray,
                planes: Sequence[Plane], K: np.ndarray, cam_from_world: np.ndarray,
                options: PlaneFillOptions = PlaneFillOptions(), others: Sequence[OtherView] = ()
                ) -> tuple[np.ndarray, np.ndarray]:
    """One view's ``filled`` depth ``[H, W]`` (the prior-based fill-in) with the holes that ``planes`` close
    (see the module docstring) set to the plane's depth; ``prior`` the network's (fitted, upsampled) depth,
    ``depth`` the kept stereo depth, ``kept`` where stereo kept it. Returns the depth and where planes filled it."""
    H, W = kept.shape
    out = filled.astype(np.float32)
    taken = np.zeros((H, W), bool)
    depths = [plane_depth(plane, K, cam_from_world, (H, W), extent=len(planes) > 1) for plane in planes]
    for p, (z, _) in enumerate(depths):
        ok = np.isfinite(z) & np.isfinite(prior) & (prior > 0)
        for q, (other, within) in enumerate(depths):  # another plane's patch in front of this one hides it
            if q != p:
                ok &= ~(within & (other * (1 + options.tolerance) < z))
        if not ok.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            inliers = kept & ok & (np.abs(z / depth - 1) < options.tolerance)
        if not inliers.any():
            continue
        log_ratio = np.where(ok, np.log(np.where(ok, z, 1) / np.where(ok, prior, 1)), 0).astype(np.float32)
        gradient = np.hypot(cv2.Sobel(log_ratio, cv2.CV_32F, 1, 0, ksize=3),
                            cv2.Sobel(log_ratio, cv2.CV_32F, 0, 1, ksize=3)) / 8  # per pixel
        smooth = gradient < options.max_gradient
        hole = ~kept & ~taken & ok & smooth
        count, label = cv2.connectedComponents(hole.astype(np.uint8), connectivity=4)
        ridge = ~kept & ok & ~smooth  # where the network sees a depth edge the plane does not have
        on, off = _boundary_counts(label, count, inliers, (kept & ~inliers) | ridge)
        closed = (on >= options.min_boundary * np.maximum(on + off, 1)) & (on > 0)
        closed[0] = False
        if others and closed.any():  # other views must not see through the plane where it would fill
            pixels = np.flatnonzero(closed[label].ravel())
            world = _points_at(z, pixels, K, cam_from_world)
            agree, through = _free_space_votes(world, label.ravel()[pixels], count, others, options.tolerance)
            closed &= through <= options.see_through * (agree + through)
        fill = closed[label]
        out[fill] = z[fill]
        taken |= fill
    return out, taken
