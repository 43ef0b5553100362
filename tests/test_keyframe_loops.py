"""The pose graph over a sequence's keyframes (app/engine/keyframe_loops.py): a map that drifted in rotation and
scale along a path that goes round twice is pulled back onto the truth by loops measured between the two
rounds; a loop model that disagrees with the map within a side, or with the other loops, is not used; points
move with their keyframe."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from app.engine.camera_fusion import Similarity, apply
from app.engine.keyframe_loops import Loop, close_drifting_loops, correct_map, odometry_edges, PoseGraphOptions
from app.engine.keyframe_map import KeyframeMap
from app.engine.sfm import SfmResult
from heads.metrics import umeyama_alignment
from mum.geometry import camera_centers, look_at

PER_ROUND = 24  # keyframes per round of the circle
ROUNDS = 2
K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _truth() -> np.ndarray:
    """``[n, 4, 4]``: keyframes on a circle of radius 2 (twice round), looking outwards at a wall 3 further."""
    cams = []
    for k in range(PER_ROUND * ROUNDS):
        a = 2 * np.pi * k / PER_ROUND
        eye = np.array([2 * np.cos(a), 2 * np.sin(a), 0.0])
        T = np.eye(4)
        T[:3] = look_at(eye, 2.5 * eye)
        cams.append(T)
    return np.stack(cams)


def _drift(k: int, scale_rate: float = 0.01) -> Similarity:
    """The map's error at keyframe ``k``: rotation about z and scale (``scale_rate`` a keyframe, in log) growing
    along the path."""
    return Similarity(float(np.exp(scale_rate * k)), _rot_z(np.radians(0.3) * k), np.array([0.003 * k, 0.0, 0.0]))


def _drifted_map(truth: np.ndarray, rng: np.random.Generator, scale_rate: float = 0.01) -> KeyframeMap:
    """A map with the truth's pixels: each keyframe's 30 points (seen by it and the next two) placed in front of
    it, both moved by that keyframe's drift (so each keyframe's reprojections are exact)."""
    kmap = KeyframeMap(K=K.copy())
    points, seen = [], {k: ([], []) for k in range(len(truth))}
    for k, T in enumerate(truth):
        kmap.poses[k] = _drift(k, scale_rate).apply_to_cameras(T[None])[0]
        pixels = rng.uniform([20, 20], [300, 220], (30, 2))
        depth = rng.uniform(2.5, 4.0, 30)
        in_camera = np.c_[(pixels - K[:2, 2]) / K[0, 0], np.ones(30)] * depth[:, None]
        world = (in_camera - T[:3, 3]) @ T[:3, :3]  # x = Rᵀ (x_c − t)
        ids = 30 * k + np.arange(30)  # keyframe k's own points follow the earlier keyframes' 30 each
        points.append(apply(_drift(k, scale_rate), world))
        for j in (k, k + 1, k + 2):
            if j < len(truth):
                Tj = truth[j]
                xc = world @ Tj[:3, :3].T + Tj[:3, 3]
                front = xc[:, 2] > 0.1
                uv = xc[front, :2] / xc[front, 2:] * K[0, 0] + K[:2, 2]
                seen[j][0].append(ids[front])
                seen[j][1].append(uv)
    kmap.points = np.concatenate(points)
    kmap.colors = np.zeros((len(kmap.points), 3), np.uint8)
    kmap.observations = {k: (np.concatenate(i), np.concatenate(u)) for k, (i, u) in seen.items()}
    return kmap


def _loop(truth: np.ndarray, a: int, b: int, offset: np.ndarray | None = None, tilt: float = 0.0) -> Loop:
    """A loop model of keyframes ``a-1..a+1`` and ``b-1..b+1`` with the true cameras in a frame of its own;
    ``offset``: side b moved as a whole (a wrong loop that each side still agrees with); ``tilt``: one camera of
    side b turned (degrees), so that side b disagrees with the map."""
    frames = [a - 1, a, a + 1, b - 1, b, b + 1]
    cams = truth[frames].copy()
    if offset is not None:
        cams[3:, :3, 3] -= cams[3:, :3, :3] @ offset
    if tilt:
        cams[4, :3, :3] = _rot_z(np.radians(tilt)) @ cams[4, :3, :3]
    own_frame = Similarity(0.7, _rot_z(1.0), np.array([5.0, -3.0, 1.0]))
    model = SfmResult(registered=np.ones(6, bool), cam_from_world=own_frame.apply_to_cameras(cams),
                      intrinsics=np.repeat(K[None], 6, 0), points=np.zeros((0, 3)), point_colors=np.zeros((0, 3), np.uint8),
                      observations=[(np.zeros(0, np.int64), np.zeros((0, 2)))] * 6, pairs_matched=0, pairs_verified=0)
    return Loop(model, frames, [0, 1, 2], [3, 4, 5], {"keyframes": [a, b]})


def _ate(kmap: KeyframeMap, truth: np.ndarray) -> float:
    """RMS centre error after a similarity fit, relative to the circle's radius."""
    est = torch.from_numpy(camera_centers(np.stack([kmap.poses[k] for k in range(len(truth))])))
    gt = torch.from_numpy(camera_centers(truth))
    s, R, t = umeyama_alignment(est, gt)
    return float(torch.sqrt(((s * est @ R.T + t - gt) ** 2).sum(1).mean())) / 2.0


def _reprojection(kmap: KeyframeMap, frame: int, owned: np.ndarray) -> np.ndarray:
    idx, uv = kmap.observations[frame]
    keep = np.isin(idx, owned)
    T = kmap.poses[frame]
    xc = kmap.points[idx[keep]] @ T[:3, :3].T + T[:3, 3]
    return np.linalg.norm(xc[:, :2] / xc[:, 2:] * K[0, 0] + K[:2, 2] - uv[keep], axis=1)


@pytest.fixture
def scene():
    truth = _truth()
    return truth, _drifted_map(truth, np.random.default_rng(0))


def test_loops_between_the_rounds_pull_the_drifted_map_onto_the_truth(scene):
    truth, kmap = scene
    before = _ate(kmap, truth)
    loops = [_loop(truth, a, a + PER_ROUND) for a in (4, 12, 20)]
    used, summary = close_drifting_loops(kmap, loops)
    after = _ate(kmap, truth)
    assert before > 0.1  # the drift is large: a tenth of the circle's radius and more
    assert len(used) == 3 and summary["loops"] == 3 and summary["weak_edges"] == 0
    assert after < 0.1 * before, (before, after)
    assert all(loop.info["pose_graph"] == "used" for loop in loops)


def test_points_move_with_the_first_keyframe_that_sees_them(scene):
    truth, kmap = scene
    owned = np.arange(30, 60)  # keyframe 1's own points (keyframe 0 does not see them)
    assert _reprojection(kmap, 1, owned).max() < 1e-6
    rng = np.random.default_rng(1)
    nodes = [Similarity(float(np.exp(rng.normal(0, 0.2))), _rot_z(rng.normal(0, 0.3)), rng.normal(0, 1, 3))
             for _ in kmap.frames]
    nodes[0] = Similarity(1.0, np.eye(3), np.zeros(3))
    correct_map(kmap, kmap.frames, nodes)
    assert _reprojection(kmap, 1, owned).max() < 1e-6
    assert not np.allclose(kmap.poses[1], _drifted_map(truth, np.random.default_rng(0)).poses[1])


def test_a_loop_whose_side_disagrees_with_the_map_is_not_used(scene):
    truth, kmap = scene
    poses = {k: T.copy() for k, T in kmap.poses.items()}
    loop = _loop(truth, 12, 12 + PER_ROUND, tilt=8.0)
    used, summary = close_drifting_loops(kmap, [loop])
    assert used == [] and summary["loops"] == 0
    assert loop.info["pose_graph"] == "a side disagrees with the map"
    assert all(np.array_equal(kmap.poses[k], poses[k]) for k in poses)


def test_a_loop_that_contradicts_the_others_is_dropped(scene):
    truth, kmap = scene
    good = [_loop(truth, a, a + PER_ROUND) for a in (4, 12, 20)]
    wrong = _loop(truth, 8, 8 + PER_ROUND, offset=np.array([0.0, 0.0, 1.5]))  # side b placed 1.5 too far out
    used, summary = close_drifting_loops(kmap, good + [wrong])
    assert wrong.info["pose_graph"] == "contradicts the other loops"
    assert used == good and summary["loops"] == 3
    assert _ate(kmap, truth) < 0.02


def test_keyframes_that_share_no_points_are_linked_weakly(scene):
    truth, kmap = scene
    assert all(e.weight == 1.0 for e in odometry_edges(kmap, kmap.frames, PoseGraphOptions()))
    cut = 30  # keyframes from 30 on see other points than those before (a part joined after a cut)
    _cut(kmap, cut)
    weak = [e for e in odometry_edges(kmap, kmap.frames, PoseGraphOptions()) if e.weight < 1]
    assert sorted((e.j, e.i) for e in weak) == [(cut - 2, cut), (cut - 1, cut), (cut - 1, cut + 1)]
    assert all(e.scale_weight == PoseGraphOptions().weak_scale_weight == 1.0 for e in weak)


def _cut(kmap: KeyframeMap, cut: int) -> None:
    """Keyframes ``cut`` and ``cut + 1`` no longer see the points of the keyframes before ``cut`` (a part joined
    after a cut: the edges across it are weak)."""
    for f in range(cut, cut + 2):
        idx, uv = kmap.observations[f]
        keep = idx >= 30 * cut
        kmap.observations[f] = (idx[keep], uv[keep])


def test_a_weak_link_keeps_its_scale_and_the_loops_spread_the_scale_drift_along_the_path():
    """The map's scale drifts twofold a round, growing along the path; a cut at keyframe 30, inside the loops'
    cycles, links its two sides by the network's cameras (weak) and the network's depth (the scale term, at full
    weight). The loops spread the scale correction over the path, as the drift grew: the map comes out about as
    well as without the cut. With the scale as weak as the rotation, the correction goes to the cut instead."""
    truth = _truth()
    kept = PoseGraphOptions(side_tolerance=0.15)  # a side's own drift: up to 11 % of its spread
    weak = replace(kept, weak_scale_weight=kept.weak_weight)
    results = {}
    for name, cut, options in (("no cut", None, kept), ("scale kept", 30, kept), ("scale weak", 30, weak)):
        kmap = _drifted_map(truth, np.random.default_rng(0), scale_rate=0.03)
        if cut is not None:
            _cut(kmap, cut)
        loops = [_loop(truth, a, a + PER_ROUND) for a in (4, 12, 20)]
        used, summary = close_drifting_loops(kmap, loops, options)
        assert summary["weak_edges"] == (3 if cut else 0) and len(used) == 3
        results[name] = _ate(kmap, truth)
    assert results["scale kept"] < 1.1 * results["no cut"]
    assert results["scale weak"] > 1.3 * results["scale kept"]  # 0.049 against 0.033 of the radius
