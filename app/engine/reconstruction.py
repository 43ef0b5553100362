"""A reconstructed scene in the user's coordinates: what every export and front end consumes.

Cameras are camera-from-world 4×4 (OpenCV axes, world = first camera, or the given cameras' world when
poses were kept from a cameras file: ``meta["world"] == "given"``) with intrinsics in pixels of the
*original* images; dense maps (depth, points, confidences, colours) share one grid of ``h × w`` per view (the
network's, or a finer one after geometric fitting). Each view keeps the :class:`~mum.io.ViewTransform` between
its original pixels and that grid (the crop and scale the network input was made with), the one map every
conversion between the two uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np

from mum.geometry import camera_centers
from mum.io import ViewTransform

# The confidence filter every front end starts with: the default path's points are already cross-checked
# between views, so none are dropped by confidence; --fast (the network's confidence is its only filter) drops
# the lower half.
DEFAULT_CONF_PERCENTILE = 0.0
FAST_CONF_PERCENTILE = 50.0


def not_background(rgb: np.ndarray) -> np.ndarray:
    """``[...]`` bool for ``uint8`` colours ``[..., 3]``: neither near-black nor near-white (``--mask-background``)."""
    bright = rgb.astype(np.int32).sum(-1)
    return (bright > 3 * 16) & (bright < 3 * 240)


def default_conf_percentile(fast: bool) -> float:
    """The confidence percentile a run starts with: 0 on the default path, 50 with ``fast``."""
    return FAST_CONF_PERCENTILE if fast else DEFAULT_CONF_PERCENTILE


@dataclass
class PointCloud:
    """``xyz`` ``[M, 3]`` float32 (world), ``rgb`` ``[M, 3]`` uint8, ``conf`` ``[M]``, ``view`` ``[M]`` source view,
    ``pixel`` ``[M, 2]`` source pixel centre (u, v) in original-image pixels (centres at integers)."""

    xyz: np.ndarray
    rgb: np.ndarray
    conf: np.ndarray
    view: np.ndarray
    pixel: np.ndarray

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


@dataclass
class Reconstruction:
    names: list[str]
    image_sizes: list[tuple[int, int]]  # original (width, height) per view
    cam_from_world: np.ndarray  # [S, 4, 4] float64, OpenCV axes
    intrinsics: np.ndarray  # [S, 3, 3] float64, original-image pixels
    depth: np.ndarray  # [S, h, w] float32, z in the camera frame
    depth_conf: np.ndarray  # [S, h, w] float32 (≥ 1)
    world_points: np.ndarray  # [S, h, w, 3] float32 from the point head
    world_points_conf: np.ndarray  # [S, h, w] float32 (≥ 1)
    colors: np.ndarray  # [S, h, w, 3] uint8, the network input
    transforms: list[ViewTransform]  # per view: original pixels ↔ dense-map pixels (network input, or a finer grid)
    meta: dict = field(default_factory=dict)
    camera_sources: Optional[list[str]] = None  # per view pose source "given", "sfm" or "network" (None: network)
    intrinsics_sources: Optional[list[str]] = None  # per view "given", "exif", "sfm" or "network" (None: network)
    valid: Optional[np.ndarray] = None  # [S, h, w] bool: pixels whose depth other views confirm (None: all)
    sfm_points: Optional[PointCloud] = None  # triangulated SfM points (world), added to every cloud

    def pose_origins(self) -> list[str]:
        """Where each view's pose came from: ``"given"`` (a cameras file, kept), ``"sfm"`` or ``"network"``."""
        return list(self.camera_sources) if self.camera_sources is not None else ["network"] * self.num_views

    def intrinsics_origins(self) -> list[str]:
        """Where each view's intrinsics came from: ``"given"``, ``"exif"``, ``"sfm"`` or ``"network"``."""
        if self.intrinsics_sources is None:
            return ["network"] * self.num_views
        return list(self.intrinsics_sources)

    @property
    def num_views(self) -> int:
        return len(self.names)

    @property
    def network_intrinsics(self) -> np.ndarray:
        """``[S, 3, 3]`` float64: the intrinsics in pixels of the dense-map grid."""
        return np.stack([tf.intrinsics_to_network(K) for tf, K in zip(self.transforms, self.intrinsics)])

    @property
    def depth_size(self) -> tuple[int, int]:
        """``(w, h)`` of the dense maps (depth, points, confidences, colours): the network's output grid, or the
        finer grid of the geometric fitting. The network's input size is ``meta["network_size"]``."""
        return int(self.depth.shape[2]), int(self.depth.shape[1])

    def camera_centers(self) -> np.ndarray:
        """``[S, 3]`` camera centres in world coordinates, ``-Rᵀt``."""
        return camera_centers(self.cam_from_world)

    def depth_points(self) -> np.ndarray:
        """World points ``[S, h, w, 3]`` float32 unprojected from depth with the predicted cameras (pixel centres at
        integer coordinates, the project convention); computed in float64 a view at a time (all views at once
        held 56 bytes a pixel more of every view: the dense stage's peak)."""
        import torch

        from mum.geometry import depth_to_world_points

        out = np.empty(self.depth.shape + (3,), np.float32)
        intrinsics = self.network_intrinsics
        for i in range(len(out)):
            out[i] = depth_to_world_points(
                torch.from_numpy(self.depth[i].astype(np.float64)),
                torch.from_numpy(self.cam_from_world[i, :3, :]),
                torch.from_numpy(intrinsics[i]),
            ).numpy()
        return out

    def point_cloud(
        self,
        conf_percentile: float = 0.0,
        frames: Optional[Sequence[int]] = None,
        mask_background: bool = False,
        source: Literal["depth", "pointmap"] = "depth",
        max_points: Optional[int] = None,
        seed: int = 0,
    ) -> PointCloud:
        """Coloured points, keeping those above the ``conf_percentile``-th percentile of confidence (0 keeps all),
        from the chosen ``frames`` (default all), dropping near-black/near-white pixels if ``mask_background``.
        ``source``: unproject depth with the predicted cameras, or take the point head's pointmap."""
        pts = self.depth_points() if source == "depth" else self.world_points
        conf = self.depth_conf if source == "depth" else self.world_points_conf
        S, h, w = conf.shape
        keep = np.isfinite(pts).all(-1)
        if self.valid is not None:
            keep &= self.valid
        if frames is not None:
            chosen = np.zeros(S, bool)
            chosen[list(frames)] = True
            keep &= chosen[:, None, None]
        if conf_percentile > 0 and keep.any():
            keep &= conf >= np.percentile(conf[keep], conf_percentile)
        if mask_background:
            keep &= not_background(self.colors)
        view, vy, vx = np.nonzero(keep)
        extra = self._sfm_points_of(frames, max_points, seed)
        if max_points is not None and extra is not None:  # SfM points count towards the budget
            max_points = max_points - len(extra)
        if max_points is not None and view.size > max_points:
            idx = np.sort(np.random.default_rng(seed).choice(view.size, max_points, replace=False))
            view, vy, vx = view[idx], vy[idx], vx[idx]
        pixel = np.empty((view.size, 2))  # pixel centres in the original images, by each view's transform
        bounds = np.searchsorted(view, np.arange(S + 1))  # np.nonzero lists the points view by view
        for i, tf in enumerate(self.transforms):
            a, b = bounds[i], bounds[i + 1]
            pixel[a:b] = tf.points_to_original(np.stack([vx[a:b], vy[a:b]], -1))
        cloud = PointCloud(
            xyz=pts[view, vy, vx].astype(np.float32),
            rgb=self.colors[view, vy, vx],
            conf=conf[view, vy, vx].astype(np.float32),
            view=view.astype(np.int32),
            pixel=pixel,
        )
        return self._with_sfm_points(cloud, extra)

    def _sfm_points_of(self, frames: Optional[Sequence[int]], max_points: Optional[int], seed: int
                       ) -> Optional[PointCloud]:
        """The SfM points of the chosen ``frames`` (all: ``None``), at most ``max_points`` of them (a seeded
        sample); ``None`` without any."""
        extra = self.sfm_points
        if extra is None or len(extra) == 0:
            return None
        chosen = np.ones(len(extra), bool) if frames is None else np.isin(extra.view, list(frames))
        if max_points is not None and chosen.sum() > max_points:
            chosen = np.flatnonzero(chosen)
            chosen = np.sort(np.random.default_rng(seed).choice(chosen, max_points, replace=False))
        return PointCloud(extra.xyz[chosen], extra.rgb[chosen], extra.conf[chosen], extra.view[chosen], extra.pixel[chosen])

    @staticmethod
    def _with_sfm_points(cloud: PointCloud, extra: Optional[PointCloud]) -> PointCloud:
        """``cloud`` plus the SfM points ``extra``, at the cloud's highest confidence."""
        if extra is None or len(extra) == 0:
            return cloud
        top = float(cloud.conf.max()) if len(cloud) else 1.0
        return PointCloud(
            xyz=np.concatenate([cloud.xyz, extra.xyz.astype(np.float32)]),
            rgb=np.concatenate([cloud.rgb, extra.rgb]),
            conf=np.concatenate([cloud.conf, np.full(len(extra), top, np.float32)]),
            view=np.concatenate([cloud.view, extra.view.astype(np.int32)]),
            pixel=np.concatenate([cloud.pixel, extra.pixel]),
        )
