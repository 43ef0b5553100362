"""Point clouds of any number of views within a point budget: built a block of views at a time and voxel
down-sampled (the most confident point per voxel, on the finest grid that fits), so memory stays about twice
the budget plus one block whatever the number of views."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from app.engine.dense_fit import _unproject
from app.engine.frame_store import release_pages
from app.engine.options import CloudOptions
from app.engine.reconstruction import PointCloud, Reconstruction, not_background


def bounded_point_cloud(recon: Reconstruction, options: CloudOptions = CloudOptions()) -> PointCloud:
    """The cloud the exports and the web viewer take (:class:`~app.engine.options.CloudOptions`: at most
    ``options.max_points`` points, filtered as :meth:`Reconstruction.point_cloud`): a long input's
    (``recon.meta`` has ``chunks`` or ``sequence``: its maps may be on disk) by :func:`voxel_point_cloud`, a block
    of views at a time; one pass's by :meth:`Reconstruction.point_cloud` (a seeded random sample of the points)."""
    o = options
    if "chunks" in recon.meta or "sequence" in recon.meta:
        return voxel_point_cloud(recon, o.max_points, conf_percentile=o.conf_percentile,
                                 mask_background=o.mask_background, source=o.source, frames=o.frames)
    return recon.point_cloud(conf_percentile=o.conf_percentile, frames=o.frames, mask_background=o.mask_background,
                             source=o.source, max_points=o.max_points)  # type: ignore[arg-type]


def voxel_point_cloud(recon: Reconstruction, max_points: int, conf_percentile: float = 0.0,
                      mask_background: bool = False, source: str = "depth", frames: Optional[Sequence[int]] = None,
                      block: int = 32) -> PointCloud:
    """The cloud of :meth:`Reconstruction.point_cloud` (same filters), built ``block`` views at a time and
    kept within ``max_points`` by voxel down-sampling: the finest grid (each step 1.5× coarser) at which the
    points fit, the most confident point of each voxel kept (SfM points first). Memory: about twice the budget
    plus one block, whatever the number of views."""
    S, h, w = recon.depth_conf.shape
    chosen = np.ones(S, bool) if frames is None else np.isin(np.arange(S), list(frames))
    use_pointmap = source == "pointmap" and np.isfinite(recon.world_points[:1, :1, :1]).all()
    conf_all = recon.world_points_conf if use_pointmap else recon.depth_conf
    blocks = [range(start, min(S, start + block)) for start in range(0, S, block)]
    arrays = [a for a in (recon.depth, conf_all, recon.valid, recon.colors) if a is not None]
    threshold = -np.inf
    if conf_percentile > 0:  # on every other pixel, a block at a time (maps on disk stay there)
        samples = []
        for views in blocks:
            sample = conf_all[views.start:views.stop, ::2, ::2][chosen[views.start:views.stop]]
            ok = (np.isfinite(recon.depth[views.start:views.stop, ::2, ::2][chosen[views.start:views.stop]])
                  if not use_pointmap else np.ones_like(sample, bool))
            if recon.valid is not None:
                ok &= recon.valid[views.start:views.stop, ::2, ::2][chosen[views.start:views.stop]]
            samples.append(sample[ok])
            release_pages(*arrays)
        sample = np.concatenate(samples)
        if sample.size:
            threshold = float(np.percentile(sample, conf_percentile))
    acc = _VoxelAccumulator(max_points)
    extra = recon.sfm_points
    highest = []
    for views in blocks:
        highest.append(np.nanmax(conf_all[views.start:views.stop]))
        release_pages(*arrays)
    top = float(np.nanmax(highest)) if conf_all.size else 1.0
    if extra is not None and len(extra):
        keep = chosen[extra.view]
        acc.add(extra.xyz[keep], extra.rgb[keep], np.full(int(keep.sum()), top + 1, np.float32), extra.view[keep],
                extra.pixel[keep])
    network_K = recon.network_intrinsics  # [S, 3, 3], derived from the transforms: computed once
    for views in blocks:
        for v in (v for v in views if chosen[v]):
            if use_pointmap:
                pts = recon.world_points[v].reshape(-1, 3)
                vy, vx = np.divmod(np.arange(h * w), w)
            else:
                pts, pix = _unproject(recon.depth[v], network_K[v], recon.cam_from_world[v], 1)
                vy, vx = pix[:, 0], pix[:, 1]
            conf = conf_all[v, vy, vx]
            keep = np.isfinite(pts).all(1) & (conf >= threshold)
            if recon.valid is not None:
                keep &= recon.valid[v, vy, vx]
            rgb = recon.colors[v, vy, vx]
            if mask_background:
                keep &= not_background(rgb)
            vy, vx = vy[keep], vx[keep]
            pixels = recon.transforms[v].points_to_original(np.stack([vx, vy], -1).astype(np.float64))
            acc.add(pts[keep].astype(np.float32), rgb[keep], conf[keep].astype(np.float32),
                    np.full(len(vy), v, np.int32), pixels)
        release_pages(*arrays)
    cloud = acc.result()
    if extra is not None and len(cloud):
        cloud.conf = np.minimum(cloud.conf, np.float32(top))  # SfM points at the cloud's highest confidence
    return cloud


class _VoxelAccumulator:
    """Points reduced to one per voxel whenever they exceed twice the budget (and at the end to the budget)."""

    def __init__(self, budget: int) -> None:
        self.budget = max(1, int(budget))
        self.parts: list[tuple] = []
        self.count = 0
        self.voxel: Optional[float] = None

    def add(self, xyz, rgb, conf, view, pixel) -> None:
        if len(xyz) == 0:
            return
        self.parts.append((xyz.astype(np.float32), rgb, conf.astype(np.float32), view.astype(np.int32),
                           np.asarray(pixel, np.float64)))
        self.count += len(xyz)
        if self.count > 2 * self.budget:
            self._reduce(self.budget)

    def _merged(self):
        if not self.parts:
            return (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.float32),
                    np.zeros(0, np.int32), np.zeros((0, 2)))
        merged = tuple(np.concatenate([p[i] for p in self.parts]) for i in range(5))
        self.parts = [merged]
        return merged

    def _reduce(self, target: int) -> None:
        xyz, rgb, conf, view, pixel = self._merged()
        if len(xyz) <= target:
            return
        if self.voxel is None:
            lo, hi = np.percentile(xyz, 2, axis=0), np.percentile(xyz, 98, axis=0)
            extent = float(np.linalg.norm(hi - lo)) or 1.0
            self.voxel = extent / math.sqrt(target) / 4
        by_conf = np.argsort(-conf, kind="stable")  # most confident first, ties in input order
        ordered = xyz[by_conf]
        bounds = ordered.min(0), ordered.max(0)
        span = float((bounds[1] - bounds[0]).max())
        while True:
            first = _first_per_voxel(ordered, self.voxel, bounds)
            if len(first) <= target:
                kept = np.sort(by_conf[first])
                break
            if self.voxel > 2 * span:  # at most 8 voxels left (2 a side), more than a budget below 8: the most
                # confident of them (growing on, the voxel overflowed the keys: ~1750 sorts and a RuntimeWarning)
                kept = np.sort(by_conf[first])
                kept = np.sort(kept[np.argsort(-conf[kept], kind="stable")[:target]])
                break
            self.voxel *= 1.5
        self.parts = [(xyz[kept], rgb[kept], conf[kept], view[kept], pixel[kept])]
        self.count = len(kept)

    def result(self) -> PointCloud:
        self._reduce(self.budget)
        xyz, rgb, conf, view, pixel = self._merged()
        return PointCloud(xyz, rgb, conf, view, pixel)


def _first_per_voxel(xyz: np.ndarray, voxel: float, bounds: Optional[tuple] = None) -> np.ndarray:
    """Indices of the first point of ``xyz`` ``[n, 3]`` (in input order) in each voxel of side ``voxel``, in no
    particular order; ``bounds``: ``xyz``'s per-axis minimum and maximum, if known. The voxels are keyed by one
    packed integer (:func:`_first_per_cell`); where the bounds span too many voxels to pack (a handful of points
    a thousand times farther than the rest), those within the box of the central 99 % on each axis are, and the
    few beyond it are sorted as rows."""
    lo, hi = bounds if bounds is not None else (xyz.min(0), xyz.max(0))
    low, high = np.floor(lo / voxel), np.floor(hi / voxel)  # the floor is monotone: the lowest cell is lo's
    cells = np.floor(xyz / voxel)
    if float(np.prod(high - low + 1, dtype=np.float64)) < 2.0 ** 40:
        return _first_per_cell(cells.astype(np.int64) - low.astype(np.int64), (high - low).astype(np.int64) + 1)
    low, high = np.floor(np.percentile(xyz, 0.5, axis=0) / voxel), np.floor(np.percentile(xyz, 99.5, axis=0) / voxel)
    inside = np.all((cells >= low) & (cells <= high), axis=1)  # a voxel lies wholly inside or wholly outside
    within, beyond = np.flatnonzero(inside), np.flatnonzero(~inside)
    first = within[_first_per_cell(cells[within].astype(np.int64) - low.astype(np.int64),
                                   (high - low).astype(np.int64) + 1)]
    return np.concatenate([first, beyond[np.unique(cells[beyond], axis=0, return_index=True)[1]]])


def _first_per_cell(cells: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Indices of the first row of ``cells`` ``[n, 3]`` (integers in ``[0, sizes)``) with each value, in no
    particular order: the three packed into one integer, with the row's index where both fit in 62 bits (one
    unstable sort), else a stable sort of the keys; rows sorted where not even the keys fit."""
    total = float(np.prod(sizes, dtype=np.float64))
    if total >= 2.0 ** 62:
        return np.unique(cells, axis=0, return_index=True)[1]
    key = (cells[:, 0] * sizes[1] + cells[:, 1]) * sizes[2] + cells[:, 2]
    bits = max(1, (len(cells) - 1).bit_length())
    if total >= 2.0 ** (62 - bits):
        return np.unique(key, return_index=True)[1]  # a stable sort: each key's first row
    packed = key << bits | np.arange(len(cells))
    packed.sort()  # by key, then by row: each key's first row leads
    key_of = packed >> bits
    first = np.ones(len(packed), bool)
    first[1:] = key_of[1:] != key_of[:-1]
    return packed[first] & ((1 << bits) - 1)
