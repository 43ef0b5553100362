"""Loops that drift: a pose graph over the keyframes of a sequence (:mod:`app.engine.sequence`, stage 4).

A verified loop whose two sides the map has far apart (more drift than ``SequenceOptions.loop_max_drift``)
cannot be closed by the bundle adjustment alone: it starts too far from the answer. The drift is spread over
the path first, as monocular SLAM does (Strasdat et al., *Scale drift-aware large scale monocular SLAM*, RSS
2010), by :func:`app.engine.pose_graph.optimise_pose_graph`:

- **nodes**: the map's keyframes, each camera's frame as a similarity to the first keyframe's (scale included:
  a map made from one camera drifts in scale too);
- **odometry edges**: each keyframe to the next and to the one after, as the map has them; an edge between
  keyframes that share fewer than ``min_shared`` map points is weak: the only link there is the network's (a
  part joined after a cut). Its rotation and translation, the network's cameras, are weak (``weak_weight``): a
  loop may move them freely. Its scale, the network's depth, is not (``weak_scale_weight``): SfM's own scale
  drifts along a path too (on the 1000-frame synthetic walk, eighteenfold over the 40 keyframes after a turn on
  the spot, where the network's link was within twice), and a scale link as weak as the rotation would take
  all of a loop's scale correction at the cut;
- **loop edges**: every keyframe of the loop's side a to every one of its side b, as the loop's own SfM model
  has them, with the scale between the map's units at the two sides.

A loop is used only when each side of its model agrees with the map on its own (a similarity fit of the side's
cameras: centres within ``side_tolerance`` of the side's spread, rotations within ``side_max_rotation_deg``):
a model that disagrees with the map within one side is wrong there (a repeated texture matched), or the map is,
and neither is a loop to close. After the least squares, the loop whose edges are still the farthest off
(``max_loop_residual``) contradicts the others: it is dropped and the graph solved again from the start. The
keyframes then take the new poses and each point moves with the first keyframe that sees it, so every
reprojection stays as it was; the loop's tracks are joined afterwards and the final bundle adjustment refines
everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.engine.camera_fusion import Similarity, compose, fit_similarity, inverse
from app.engine.keyframe_map import KeyframeMap
from app.engine.pose_graph import Edge, edge_errors, optimise_pose_graph
from app.engine.sfm import SfmResult


@dataclass(frozen=True)
class PoseGraphOptions:
    """See the module docstring. ``max_loop_residual``: (degrees, translation / the keyframe's typical depth,
    |log scale|) that a used loop's edges may keep after the optimisation."""

    min_shared: int = 15
    weak_weight: float = 1e-4
    weak_scale_weight: float = 1.0
    side_tolerance: float = 0.05
    side_max_rotation_deg: float = 2.0
    max_loop_residual: tuple[float, float, float] = (2.0, 0.05, 0.1)


@dataclass
class Loop:
    """A verified loop: its SfM model ``model`` (any frame) of the keyframes ``frames``; ``side_a`` and
    ``side_b``: indices into ``frames`` of each side's registered keyframes; ``info``: its ``--json`` record."""

    model: SfmResult
    frames: list[int]
    side_a: list[int]
    side_b: list[int]
    info: dict = field(default_factory=dict)

    def cams(self, side: list[int]) -> np.ndarray:
        return self.model.cam_from_world[side]

    def map_cams(self, kmap: KeyframeMap, side: list[int]) -> np.ndarray:
        return np.stack([kmap.poses[self.frames[i]] for i in side])


def side_agreement(model_cams: np.ndarray, map_cams: np.ndarray) -> tuple[float, float, Similarity]:
    """How far cameras ``[n, 4, 4]`` of a model lie from the map's cameras of the same frames after the best
    similarity: the largest centre distance relative to the map cameras' spread, the largest rotation
    (degrees), and the similarity (model frame → map frame)."""
    import torch

    from mum.geometry import camera_centers, rotation_angle_deg

    sim = fit_similarity(model_cams, map_cams)
    moved = sim.apply_to_cameras(model_cams)
    mine, theirs = camera_centers(moved), camera_centers(map_cams)
    spread = max(float(np.linalg.norm(theirs - theirs.mean(0), axis=1).max()), 1e-9)
    angle = float(rotation_angle_deg(torch.from_numpy(moved[:, :3, :3]), torch.from_numpy(map_cams[:, :3, :3])).max())
    return float(np.linalg.norm(mine - theirs, axis=1).max()) / spread, angle, sim


def rigid(cam_from_world: np.ndarray) -> Similarity:
    return Similarity(1.0, cam_from_world[:3, :3].copy(), cam_from_world[:3, 3].copy())


def _scaling(scale: float) -> Similarity:
    return Similarity(float(scale), np.eye(3), np.zeros(3))


def loop_edges(kmap: KeyframeMap, loop: Loop, position: dict[int, int], options: PoseGraphOptions
               ) -> tuple[list[Edge], dict]:
    """The loop's edges (none when a side disagrees with the map) and how well each side agrees."""
    fits = [side_agreement(loop.cams(side), loop.map_cams(kmap, side)) for side in (loop.side_a, loop.side_b)]
    record = {"side_agreement": [[round(err, 4), round(deg, 3)] for err, deg, _ in fits]}
    if any(err > options.side_tolerance or deg > options.side_max_rotation_deg for err, deg, _ in fits):
        return [], record
    scale_a, scale_b = fits[0][2].scale, fits[1][2].scale  # map units per model unit at each side
    edges = []
    for p in loop.side_a:
        for q in loop.side_b:
            # camera p's frame (map units at side a) → camera q's frame (map units at side b)
            relative = compose(rigid(loop.model.cam_from_world[q]), inverse(rigid(loop.model.cam_from_world[p])))
            measured = compose(_scaling(scale_b), compose(relative, _scaling(1.0 / scale_a)))
            edges.append(Edge(position[loop.frames[p]], position[loop.frames[q]], measured, kind="loop"))
    return edges, record


def odometry_edges(kmap: KeyframeMap, frames: list[int], options: PoseGraphOptions) -> list[Edge]:
    """Each keyframe to the next and to the one after, as the map has them (weak where they share fewer than
    ``min_shared`` points: ``weak_weight``, their scale term ``weak_scale_weight``)."""
    seen = [set(kmap.observations.get(f, (np.zeros(0, np.int64), None))[0].tolist()) for f in frames]
    edges = []
    for j in range(len(frames)):
        for i in (j + 1, j + 2):
            if i < len(frames):
                measured = compose(rigid(kmap.poses[frames[j]]), inverse(rigid(kmap.poses[frames[i]])))
                if len(seen[i] & seen[j]) >= options.min_shared:
                    edges.append(Edge(i, j, measured))
                else:
                    edges.append(Edge(i, j, measured, weight=options.weak_weight, scale_weight=options.weak_scale_weight))
    return edges


def typical_depths(kmap: KeyframeMap, frames: list[int]) -> np.ndarray:
    """``[n]`` median depth of the points each keyframe sees (1 where it sees none in front)."""
    out = np.ones(len(frames))
    for k, f in enumerate(frames):
        _, points = kmap.points_seen_by(f)
        T = kmap.poses[f]
        z = points @ T[2, :3] + T[2, 3]
        if (z > 0).any():
            out[k] = float(np.median(z[z > 0]))
    return out


def correct_map(kmap: KeyframeMap, frames: list[int], nodes: list[Similarity]) -> None:
    """In place: keyframe ``frames[k]`` takes node ``k``'s pose (``nodes[k]``: its camera frame → the first
    keyframe's, scaled), and each point moves with the first of ``frames`` that sees it (its coordinates in that
    camera, scaled by the node's scale): the map's reprojections stay as they were."""
    first = kmap.poses[frames[0]].copy()
    first_inverse = np.linalg.inv(first)
    old = {f: kmap.poses[f].copy() for f in frames}
    owner = np.full(len(kmap.points), -1)
    for k, f in enumerate(frames):
        idx = kmap.observations.get(f, (np.zeros(0, np.int64), None))[0]
        free = idx[owner[idx] < 0]
        owner[free] = k
    points = kmap.points.copy()
    for k, f in enumerate(frames):
        node = nodes[k]
        pose = np.eye(4)  # camera-from-first-camera, rigid: x_c = Rᵀ (x − t) (the node's scale goes to the points)
        pose[:3, :3] = node.rotation.T
        pose[:3, 3] = -node.rotation.T @ node.translation
        kmap.poses[f] = pose @ first
        mine = owner == k
        in_camera = kmap.points[mine] @ old[f][:3, :3].T + old[f][:3, 3]
        in_first = node.scale * in_camera @ node.rotation.T + node.translation
        points[mine] = in_first @ first_inverse[:3, :3].T + first_inverse[:3, 3]
    kmap.points = points


def close_drifting_loops(kmap: KeyframeMap, loops: list[Loop], options: PoseGraphOptions = PoseGraphOptions()
                         ) -> tuple[list[Loop], dict]:
    """Spread the drift ``loops`` measure over the map's keyframes (in place; see the module docstring).
    Returns the loops the corrected map agrees with and a summary for ``--json``."""
    frames = kmap.frames
    position = {f: k for k, f in enumerate(frames)}
    odometry = odometry_edges(kmap, frames, options)
    depths = typical_depths(kmap, frames)
    initial = [compose(rigid(kmap.poses[frames[0]]), inverse(rigid(kmap.poses[f]))) for f in frames]
    candidates = []
    for loop in loops:
        edges, record = loop_edges(kmap, loop, position, options)
        loop.info.update(record)
        if edges:
            candidates.append((loop, edges))
        else:
            loop.info["pose_graph"] = "a side disagrees with the map"
    summary: dict = {"keyframes": len(frames), "odometry_edges": len(odometry),
                     "weak_edges": sum(e.weight < 1 for e in odometry), "loops": 0}
    limit = np.asarray(options.max_loop_residual)
    while candidates:
        edges = odometry + [e for _, loop_edge_list in candidates for e in loop_edge_list]
        nodes, info = optimise_pose_graph(initial, edges, depths)
        worst = [float((edge_errors(nodes, loop_edge_list, depths) / limit).max()) for _, loop_edge_list in candidates]
        k = int(np.argmax(worst))
        if worst[k] <= 1.0:
            correct_map(kmap, frames, nodes)
            for loop, _ in candidates:
                loop.info["pose_graph"] = "used"
            summary.update(loops=len(candidates), cost_before=round(info["cost_before"], 6),
                           cost_after=round(info["cost_after"], 6))
            return [loop for loop, _ in candidates], summary
        candidates[k][0].info["pose_graph"] = "contradicts the other loops"
        del candidates[k]
    return [], summary
