"""The map of a video's keyframes: SfM in chunks of keyframes, one set of tracks, one bundle adjustment.

The keyframes (:mod:`app.engine.keyframes`) are mapped by :func:`app.engine.sfm.run_sfm` a chunk at a time, consecutive
chunks sharing some keyframes. The first chunk maps freely; every later one is mapped with the shared
keyframes' poses held as they are in the map so far (``--fix-poses``' machinery: points triangulated from
them, the chunk's other keyframes registered to them), so the map's frame and **scale carry over** from chunk
to chunk through the shared keyframes, and the camera's intrinsics are the first chunk's. Every chunk's points
join one set of tracks (:class:`KeyframeMap`): SIFT on the same image gives the same keypoints, so an
observation at the same pixel of the same keyframe is the same keypoint, and the points of two chunks (or of a
loop closure's model) observed at it are one point. A **bundle adjustment over all keyframes** at the end
(:func:`adjust`) then refines every pose, point and the focal length together, so chunk boundaries leave no
seams.

Memory: each chunk's images only while its SfM runs; the map itself holds poses, points and 2D observations
(a few tens of bytes per observation).

Conventions: camera-from-world ``[4, 4]`` (OpenCV axes), ``K`` in original-image pixels with pixel centres at
integers (COLMAP's half-integer centres are converted where the map meets pycolmap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.engine.sfm import SfmResult

UV_DECIMALS = 3  # observations of one keypoint agree to far better than a thousandth of a pixel


@dataclass
class KeyframeMap:
    """Registered keyframes (``poses``: frame index → camera-from-world), the shared intrinsics ``K``, the
    points (``[P, 3]`` world, ``colors`` ``[P, 3]`` uint8) and per keyframe its observations (``observations``:
    frame → (point indices ``[n]``, pixels ``[n, 2]``))."""

    K: np.ndarray
    poses: dict[int, np.ndarray] = field(default_factory=dict)
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    observations: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def frames(self) -> list[int]:
        return sorted(self.poses)

    def add(self, frames: Sequence[int], sfm: SfmResult, keep_poses: bool = True) -> dict:
        """Join ``sfm`` (a model of the keyframes ``frames``, in this map's world frame) to the map: its poses
        for keyframes the map does not have yet (all of them unless ``keep_poses``), its points merged with the
        map's where they share an observation (same keyframe, same pixel). Returns counts."""
        index = {f: {tuple(np.round(uv, UV_DECIMALS)): int(p) for p, uv in zip(*self.observations[f])}
                 for f in frames if f in self.observations}
        P = len(self.points)
        parent = np.arange(P + len(sfm.points))  # union-find over the map's points and the model's (offset P)

        def root(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        merged = 0
        for i, f in enumerate(frames):
            if f not in index or not sfm.registered[i]:
                continue
            for p, uv in zip(*sfm.observations[i]):
                g = index[f].get(tuple(np.round(uv, UV_DECIMALS)))
                if g is None:
                    continue
                a, b = root(P + int(p)), root(g)
                if a != b:
                    parent[max(a, b)] = min(a, b)  # the map's (older) point is the root
                    merged += 1
        roots = np.array([root(x) for x in range(len(parent))], dtype=np.int64)
        keep = roots == np.arange(len(parent))  # points that stay: every root
        new_id = np.cumsum(keep) - 1
        remap = new_id[roots]
        self.points = np.concatenate([self.points, sfm.points])[keep]
        self.colors = np.concatenate([self.colors, sfm.point_colors])[keep]
        for f in list(self.observations):
            idx, uv = self.observations[f]
            self.observations[f] = (remap[idx], uv)
        added = 0
        for i, f in enumerate(frames):
            if not sfm.registered[i]:
                continue
            if f not in self.poses or not keep_poses:
                added += f not in self.poses
                self.poses[f] = sfm.cam_from_world[i].copy()
            idx, uv = sfm.observations[i]
            mine = remap[P + idx]
            if f in self.observations:
                seen = set(index.get(f, {}))
                new = np.array([tuple(np.round(u, UV_DECIMALS)) not in seen for u in uv], bool)
                old_idx, old_uv = self.observations[f]
                self.observations[f] = (np.concatenate([old_idx, mine[new]]), np.concatenate([old_uv, uv[new]]))
            else:
                self.observations[f] = (mine, uv.copy())
        self._drop_duplicates()
        return {"keyframes_added": added, "points": int(len(self.points)), "merged": merged}

    def _drop_duplicates(self) -> None:
        """One observation per point and keyframe (two keypoints of one image merged into a point through
        different chunks: the first is kept)."""
        for f, (idx, uv) in self.observations.items():
            _, first = np.unique(idx, return_index=True)
            if len(first) < len(idx):
                first.sort()
                self.observations[f] = (idx[first], uv[first])

    def track_lengths(self) -> np.ndarray:
        counts = np.zeros(len(self.points), np.int64)
        for idx, _ in self.observations.values():
            np.add.at(counts, idx, 1)
        return counts

    def points_seen_by(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """The observations of ``frame``: pixels ``[n, 2]`` and their world points ``[n, 3]``."""
        idx, uv = self.observations.get(frame, (np.zeros(0, np.int64), np.zeros((0, 2))))
        return uv, self.points[idx]


def pinhole_camera(K: np.ndarray, width: int, height: int, camera_id: int = 1):
    """A pycolmap camera for ``K`` (COLMAP's half-integer pixel centres): SIMPLE_PINHOLE (one focal length)
    when ``fx = fy``, else PINHOLE."""
    from mum.pycolmap_import import import_pycolmap
    pycolmap = import_pycolmap()

    if K[0, 0] == K[1, 1]:
        return pycolmap.Camera(model="SIMPLE_PINHOLE", width=width, height=height, camera_id=camera_id,
                               params=[K[0, 0], K[0, 2] + 0.5, K[1, 2] + 0.5])
    return pycolmap.Camera(model="PINHOLE", width=width, height=height, camera_id=camera_id,
                           params=[K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5])


PRINCIPAL_POINT_MIN_FRAMES = 50  # frames of one camera that make its principal point worth refining
PRINCIPAL_POINT_MAX_SHIFT = 0.1  # a principal point farther than this (fraction of the size) from the centre: kept
MIN_TRIANGULATION_ANGLE = 1.5  # degrees: a point whose rays meet at less is dropped after the adjustment (COLMAP's)


def adjust(kmap: KeyframeMap, size: tuple[int, int], max_error: float = 4.0, refine_focal: bool = True,
           refine_principal_point: bool = False, iterations: int = 1) -> dict:
    """Bundle adjustment over every registered frame of the map (keyframes and the frames registered to them),
    every point and (``refine_focal``, ``refine_principal_point``) the shared intrinsics, in place: the
    observations behind their camera are dropped, then a Cauchy loss of 1 px, then the observations reprojecting
    more than ``max_error`` px away and the points whose rays meet at less than :data:`MIN_TRIANGULATION_ANGLE`
    (their depth is unknown: on a 200-frame walk two landed 10⁶ times the scene away) are dropped (``iterations``
    rounds). The gauge: the first two frames' poses.
    A principal point that moves more than :data:`PRINCIPAL_POINT_MAX_SHIFT` of the image size from the centre
    is not trusted: the adjustment runs again from the start with it held. Returns a summary."""
    if refine_principal_point:
        before = (dict(kmap.poses), kmap.points.copy(), dict(kmap.observations), kmap.K.copy(), kmap.colors)
        summary = _adjust(kmap, size, max_error, refine_focal, True, iterations)
        centre = np.array([(size[0] - 1) / 2, (size[1] - 1) / 2])
        if np.all(np.abs(kmap.K[:2, 2] - centre) <= PRINCIPAL_POINT_MAX_SHIFT * np.asarray(size)):
            return {**summary, "principal_point": [round(float(c), 2) for c in kmap.K[:2, 2]]}
        kmap.poses, kmap.points, kmap.observations, kmap.K, kmap.colors = before
    return _adjust(kmap, size, max_error, refine_focal, False, iterations)


def _adjust(kmap: KeyframeMap, size: tuple[int, int], max_error: float, refine_focal: bool,
            refine_principal_point: bool, iterations: int) -> dict:
    from mum.pycolmap_import import import_pycolmap
    pycolmap = import_pycolmap()

    frames = kmap.frames
    lengths = kmap.track_lengths()
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pinhole_camera(kmap.K, *size))
    ids = {f: k + 1 for k, f in enumerate(frames)}
    local: dict[int, dict[int, int]] = {}  # frame → point index → point2D index in that image
    for f in frames:
        idx, uv = kmap.observations.get(f, (np.zeros(0, np.int64), np.zeros((0, 2))))
        use = lengths[idx] >= 2
        idx, uv = idx[use], uv[use]
        kmap.observations[f] = (idx, uv)
        image = pycolmap.Image(name=str(f), keypoints=uv + 0.5, camera_id=1, image_id=ids[f])
        T = kmap.poses[f]
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(T[:3, :3]), T[:3, 3]))
        local[f] = {int(p): k for k, p in enumerate(idx)}
    tracks: dict[int, list] = {}
    for f in frames:
        for p, k in local[f].items():
            tracks.setdefault(p, []).append(pycolmap.TrackElement(ids[f], k))
    point_id = {}
    for p, elements in tracks.items():
        if len(elements) < 2:
            continue
        track = pycolmap.Track()
        track.add_elements(elements)
        point_id[p] = rec.add_point3D(kmap.points[p], track, kmap.colors[p])
    # an observation behind its camera (a point placed by one part of the map, seen by a frame that a join, the
    # scale-break repair or the pose graph moved past it) has no reprojection to adjust: dropped first, as
    # COLMAP's global adjustment does (a point left with one observation goes with it)
    behind = pycolmap.ObservationManager(rec).filter_observations_with_negative_depth()
    rec.update_point_3d_errors()
    before = rec.compute_mean_reprojection_error()
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_focal_length = refine_focal
    options.refine_principal_point = refine_principal_point
    options.refine_extra_params = False
    options.print_summary = False
    options.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
    options.ceres.loss_function_scale = 1.0
    options.ceres.solver_options.num_threads = 1  # several threads sum in the order they finish: a new map every run
    filtered = 0
    for _ in range(iterations):
        config = pycolmap.BundleAdjustmentConfig()
        for image_id in rec.reg_image_ids():
            config.add_image(image_id)
        config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
        pycolmap.create_default_bundle_adjuster(options, config, rec).solve()
        filtered += pycolmap.ObservationManager(rec).filter_all_points3D(max_error, MIN_TRIANGULATION_ANGLE)
    after = rec.compute_mean_reprojection_error()
    # back into the map: poses, focal length, the points that survived and their observations
    camera = rec.cameras[1]
    fx, fy = (camera.params[0], camera.params[1]) if camera.model.name == "PINHOLE" else (camera.params[0],) * 2
    kmap.K = kmap.K.copy()
    kmap.K[0, 0], kmap.K[1, 1] = fx, fy
    kmap.K[:2, 2] = np.asarray(camera.params[-2:]) - 0.5
    for f in frames:
        kmap.poses[f] = np.vstack([rec.images[ids[f]].cam_from_world().matrix(), [0, 0, 0, 1]])
    alive = {p: q for p, q in point_id.items() if rec.exists_point3D(q)}
    order = sorted(alive)
    new_index = {p: k for k, p in enumerate(order)}
    kmap.points = np.array([rec.points3D[alive[p]].xyz for p in order], np.float64).reshape(-1, 3)
    kmap.colors = kmap.colors[order] if order else np.zeros((0, 3), np.uint8)
    for f in frames:
        image = rec.images[ids[f]]
        idx, uv = kmap.observations[f]
        keep = np.array([image.points2D[k].has_point3D() for k in range(len(idx))], bool)
        kmap.observations[f] = (np.array([new_index[int(p)] for p in idx[keep]], np.int64), uv[keep])
    return {"keyframes": len(frames), "points": len(order), "observations_behind": int(behind),
            "observations_dropped": int(filtered),
            "reprojection_px_before": round(float(before), 3), "reprojection_px_after": round(float(after), 3),
            "focal_px": round(float(np.sqrt(fx * fy)), 2)}
