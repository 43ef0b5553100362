"""The sequence path (app.engine.sequence): keyframes by parallax and overlap, optical-flow tracks, the keyframe map's
merged tracks and bundle adjustment, PnP registration of the frames between keyframes, and the whole path on a
rendered walk (data engine: exact cameras and depth)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from app.engine.frame_registration import RegistrationOptions, estimate_pose, register_between
from app.engine.frame_tracks import corners, grey, track
from app.engine.keyframe_map import KeyframeMap, adjust
from app.engine.keyframes import KeyframeOptions, select_keyframes
from app.engine.sequence import plan_keyframe_chunks
from app.engine.planning import is_sequence, use_sequence_path
from app.engine.sfm import SfmResult
from app.engine.view_source import ArrayViews
from mum.geometry import camera_centers


@pytest.fixture(scope="module")
def walk():
    """48 frames of a walk through a room (non-periodic textures), 192 × 144 px, with depth."""
    from mum.data.synthetic import SyntheticConfig, generate_scene

    cfg = SyntheticConfig(kinds=("room",), camera_paths=("walk",), photo_fraction=0.0, overlap=(0.9, 0.95),
                          fov_deg=(60.0, 65.0))
    return generate_scene(1_100_000_021, num_views=48, width=192, height=144, config=cfg)


def _texture(h=120, w=160, seed=0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((h // 4, w // 4)).astype(np.float32)
    return (cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def _pose(R, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def _rotation(axis, angle) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(axis, float) / np.linalg.norm(axis) * angle).as_matrix()


# ------------------------------------------------------------------------------------------------- input
@pytest.mark.parametrize("names, expected", [
    ([f"{i:06d}.jpg" for i in range(5)], True),
    ([f"frame_{i}.png" for i in (1, 2, 3, 10)], True),
    (["1341847980.722988.png", "1341847981.726650.png", "1341847982.730674.png"], True),
    (["frame_1.png", "frame_10.png", "frame_2.png"], False),  # sorted by name, not by number: not in order
    (["f_1.png", "f_01.png", "f_2.png"], False),  # one number twice: the order is not known
    (["a_1.png", "b_2.png", "c_3.png"], False),  # different prefixes
    (["cat.png", "dog.png", "eel.png"], False),
])
def test_is_sequence_by_names(names, expected):
    arrays = [np.zeros((4, 4, 3), np.uint8)] * len(names)
    source = ArrayViews(names, arrays)
    source.photos = list(names)  # image files, not a video's frames
    assert is_sequence(source) is expected


def test_video_frames_are_a_sequence_and_auto_needs_31():
    from app.engine.options import PipelineOptions

    source = ArrayViews([f"x{i}" for i in range(40)], [np.zeros((4, 4, 3), np.uint8)] * 40)
    source.photos = None  # a video's decoded frames
    assert is_sequence(source)
    assert use_sequence_path(source, PipelineOptions(), None, None)
    assert not use_sequence_path(source, PipelineOptions(fast=True), None, None)
    assert not use_sequence_path(source, PipelineOptions(), None, False)
    short = ArrayViews(source.names[:20], source.arrays[:20])
    short.photos = None
    assert not use_sequence_path(short, PipelineOptions(), None, None)
    assert use_sequence_path(short, PipelineOptions(), None, True)


@pytest.mark.parametrize("count, size, shared", [(54, 48, 8), (100, 48, 8), (1000, 40, 8), (61, 48, 8), (9, 4, 2)])
def test_keyframe_chunks_are_even_and_share(count, size, shared):
    chunks = plan_keyframe_chunks(count, size, shared)
    assert chunks[0].start == 0 and chunks[-1].stop == count
    assert all(len(c) <= max(size, size * 5 // 4 if len(chunks) == 1 else size) for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert a.stop - b.start == shared  # consecutive chunks share exactly `shared` keyframes
    if len(chunks) > 1:
        lengths = [len(c) for c in chunks]
        assert max(lengths) - min(lengths) <= 1


# ------------------------------------------------------------------------------------------------- tracks
def test_track_follows_a_shift_and_drops_what_leaves():
    image = _texture()
    shifted = np.roll(image, (3, 5), axis=(0, 1))  # 5 px right, 3 px down
    points = corners(image, 200, 5)
    t = track(image, shifted, points)
    inside = (points[:, 0] < image.shape[1] - 12) & (points[:, 1] < image.shape[0] - 8) & (points.min(1) > 8)
    assert t.ok[inside].mean() > 0.9
    error = np.linalg.norm(t.points[t.ok & inside] - points[t.ok & inside] - [5.0, 3.0], axis=1)
    assert np.median(error) < 0.02 and np.quantile(error, 0.95) < 0.2
    unrelated = _texture(seed=1)
    assert track(image, unrelated, points).ok.mean() < 0.3  # the forward-backward check refuses what is not there


def test_keyframes_follow_motion_not_time(walk):
    frames = walk.images
    still = select_keyframes([frames[0]] * 20)
    assert still.keyframes == [0, 19]  # a camera standing still adds none (first and last only)
    moving = select_keyframes(frames, KeyframeOptions())
    assert moving.keyframes[0] == 0 and moving.keyframes[-1] == len(frames) - 1
    assert 3 <= len(moving.keyframes) < len(frames)  # fewer keyframes than frames, more than the ends
    gaps = np.diff(moving.keyframes)
    assert gaps.max() > gaps.min()  # not a fixed stride
    stricter = select_keyframes(frames, KeyframeOptions(parallax=0.5 * KeyframeOptions().parallax, min_tracked=0.85))
    assert len(stricter.keyframes) > len(moving.keyframes)


def test_a_rotation_alone_makes_no_parallax_keyframe():
    """A camera turning on the spot moves every point by one homography: keyframes come from lost overlap only."""
    import cv2

    big = _texture(480, 640, seed=2)
    K = np.array([[300.0, 0, 320], [0, 300, 240], [0, 0, 1]])
    frames = []
    for k in range(12):
        H = K @ _rotation([0, 1, 0], np.deg2rad(1.5 * k)) @ np.linalg.inv(K)
        frames.append(cv2.warpPerspective(big, H, (640, 480))[120:360, 160:480])
    selection = select_keyframes(frames)
    assert "parallax" not in selection.reasons
    assert np.nanmax(selection.parallax[np.isfinite(selection.parallax)]) < KeyframeOptions().parallax


# ------------------------------------------------------------------------------------------------- the map
def _camera_grid(n=5):
    K = np.array([[200.0, 0, 96], [0, 200, 72], [0, 0, 1]])
    poses = [_pose(_rotation([0, 1, 0], 0.02 * k), np.array([-0.2 * k, 0, 0])) for k in range(n)]
    rng = np.random.default_rng(0)
    points = rng.uniform([-2, -1.5, 4], [3, 1.5, 8], size=(300, 3))
    return K, poses, points


def _project(K, T, X):
    x = (T[:3, :3] @ X.T).T + T[:3, 3]
    uv = (K @ x.T).T
    return uv[:, :2] / uv[:, 2:]


def test_map_merges_points_seen_at_the_same_keypoint():
    K, poses, points = _camera_grid(4)

    def model(views, ids):
        obs = [(np.arange(len(ids)), _project(K, poses[v], points[ids])) for v in views]
        return SfmResult(registered=np.ones(len(views), bool), cam_from_world=np.stack([poses[v] for v in views]),
                         intrinsics=np.repeat(K[None], len(views), 0), points=points[ids],
                         point_colors=np.zeros((len(ids), 3), np.uint8), observations=obs, pairs_matched=0,
                         pairs_verified=0)

    kmap = KeyframeMap(K=K)
    kmap.add([0, 1, 2], model([0, 1, 2], np.arange(0, 200)))
    info = kmap.add([2, 3], model([2, 3], np.arange(100, 300)))  # points 100-199 again, seen in shared keyframe 2
    assert info["merged"] == 100 and len(kmap.points) == 300
    lengths = kmap.track_lengths()
    assert lengths.max() == 4 and (lengths == 4).sum() == 100  # the shared points' tracks span all keyframes
    assert sorted(kmap.poses) == [0, 1, 2, 3]


def test_bundle_adjustment_pulls_noisy_cameras_and_points_back():
    K, poses, points = _camera_grid(6)
    rng = np.random.default_rng(1)
    kmap = KeyframeMap(K=K.copy())
    for f, T in enumerate(poses):
        noisy = T.copy()
        if f >= 2:  # the gauge: the first two stay
            noisy[:3, :3] = _rotation(rng.normal(size=3), 0.01) @ T[:3, :3]
            noisy[:3, 3] += rng.normal(scale=0.02, size=3)
        kmap.poses[f] = noisy
        kmap.observations[f] = (np.arange(len(points)), _project(K, T, points) + rng.normal(scale=0.3, size=(len(points), 2)))
    kmap.points = points + rng.normal(scale=0.05, size=points.shape)
    kmap.colors = np.zeros((len(points), 3), np.uint8)
    before = np.abs(camera_centers(np.stack([kmap.poses[f] for f in range(6)])) - camera_centers(np.stack(poses))).max()
    summary = adjust(kmap, (192, 144), refine_focal=False)
    after = np.abs(camera_centers(np.stack([kmap.poses[f] for f in range(6)])) - camera_centers(np.stack(poses))).max()
    assert summary["reprojection_px_after"] < 0.5 < summary["reprojection_px_before"]
    assert after < 0.25 * before


def test_bundle_adjustment_drops_observations_behind_their_camera_first():
    """Points a join left behind the cameras that see them (here 20 of 300, mirrored behind the rig) have no
    reprojection to adjust: their observations are dropped before the adjustment (COLMAP's order), so the error
    reported before it is the map's, not infinity's, and the cameras are adjusted as without them."""
    K, poses, points = _camera_grid(6)
    rng = np.random.default_rng(3)
    kmap = KeyframeMap(K=K.copy())
    for f, T in enumerate(poses):
        noisy = T.copy()
        if f >= 2:
            noisy[:3, 3] += rng.normal(scale=0.02, size=3)
        kmap.poses[f] = noisy
        noise = rng.normal(scale=0.3, size=(len(points), 2))
        kmap.observations[f] = (np.arange(len(points)), _project(K, T, points) + noise)
    kmap.points = points.copy()
    kmap.colors = np.zeros((len(points), 3), np.uint8)
    without = copy.deepcopy(kmap)  # the same map without those 20 points
    without.points, without.colors = points[20:], kmap.colors[20:]
    without.observations = {f: (idx[20:] - 20, uv[20:]) for f, (idx, uv) in kmap.observations.items()}
    kmap.points[:20, 2] = -kmap.points[:20, 2]  # behind every camera (they sit near z = 0 looking along +z)
    summary = adjust(kmap, (192, 144), refine_focal=False)
    reference = adjust(without, (192, 144), refine_focal=False)
    assert summary["observations_behind"] == 20 * 5  # a point's last observation goes with the point, uncounted
    assert summary["reprojection_px_before"] == reference["reprojection_px_before"] < 5
    assert summary["points"] == reference["points"] and all(np.all(idx < 280) for idx, _ in kmap.observations.values())
    for f in range(6):
        np.testing.assert_allclose(kmap.poses[f], without.poses[f], atol=1e-9)


def test_bundle_adjustment_drops_points_whose_rays_barely_meet():
    """A point a hundred times farther than the rig is wide reprojects fine anywhere along its rays: its depth is
    unknown (on a 200-frame walk two such landed 10⁶ times the scene away and swamped the cloud's bounds); the
    adjustment drops the points seen at less than MIN_TRIANGULATION_ANGLE, as COLMAP does, and keeps the rest."""
    K, poses, points = _camera_grid(6)
    far = np.array([[0.5, 0.0, 400.0], [-0.5, 0.2, 900.0]])  # rays across the 1-unit rig: < 0.15°
    everything = np.concatenate([points, far])
    kmap = KeyframeMap(K=K.copy(), points=everything.copy(), colors=np.zeros((len(everything), 3), np.uint8))
    for f, T in enumerate(poses):
        kmap.poses[f] = T.copy()
        kmap.observations[f] = (np.arange(len(everything)), _project(K, T, everything))
    summary = adjust(kmap, (192, 144), refine_focal=False)
    assert summary["points"] == len(points)
    assert np.abs(kmap.points).max() < 10  # the far two are gone, every observation points at a kept point
    assert all(len(idx) == len(points) and idx.max() < len(points) for idx, _ in kmap.observations.values())


def test_pose_from_correspondences():
    K, poses, points = _camera_grid(3)
    T = poses[2]
    uv = _project(K, T, points)
    ids = np.arange(len(points))
    rng = np.random.default_rng(2)
    uv[:60] = rng.uniform([0, 0], [192, 144], size=(60, 2))  # 20 % outliers
    found = estimate_pose(uv, ids, points, K, (192, 144))
    np.testing.assert_allclose(found.cam_from_world, T, atol=1e-3)
    assert found.inliers >= 230 and not set(found.point_ids.tolist()) & set(range(30))
    assert estimate_pose(uv[:10], ids[:10], points, K, (192, 144)) is None  # too few to trust


def test_keyframe_sfm_also_matches_keyframes_far_apart_on_the_path(monkeypatch):
    """A chunk's keyframes are matched with their next five and, as COLMAP's sequential matching does by
    default, with the ones 10, 20, 40 … keyframes further on: a camera that turns back to what it saw a while
    ago stays in one model (the data engine's room walk: benchmarks/results/long_video_quadratic_cpu.json)."""
    import app.engine.sfm as sfm_module
    from app.engine.options import PipelineOptions
    from app.engine.sequence import SequenceOptions, _map_chunk

    class Matched(Exception):
        pass

    def matched_pairs(arrays, focal, pairs, options, say, known=None):
        raise Matched(set(pairs))

    monkeypatch.setattr(sfm_module, "run_sfm", matched_pairs)
    frames = list(range(0, 150, 3))  # 50 keyframes of 150 frames
    source = ArrayViews([f"{i:05d}.png" for i in range(150)], [np.zeros((8, 8, 3), np.uint8)] * 150)
    with pytest.raises(Matched) as caught:
        _map_chunk(None, frames, source, np.full(len(frames), 10.0), PipelineOptions(), SequenceOptions(), None, print)
    pairs = caught.value.args[0]
    assert {(i, j) for i in range(50) for j in range(i + 1, min(50, i + 6))} <= pairs  # the next five
    assert {(0, 10), (39, 49), (0, 20), (29, 49), (0, 40), (9, 49)} <= pairs  # 10, 20, 40 further on
    assert (0, 6) not in pairs and (0, 30) not in pairs and len(pairs) == 235 + 40 + 30 + 10


def test_a_chunks_other_models_are_joined_through_each_windows_network_cameras():
    """Keyframe SfM of a chunk maps frames 0-7 (the kept model) and, after cuts, frames 8-13 and 14-17 as two
    other models, each in its own frame and scale; frames 18-23 make a fourth model, in a window of its own. The
    network's cameras and depth come per window of 6 frames, each window in its own frame and scale (exact up to
    that similarity). The first other model is linked to the kept one through the window they share (frames
    6-11); once joined, its frames 12-13 place the next window, which links the second; both land on the true
    cameras with their points. The fourth, which no window links to the rest, is left out."""
    from app.engine.camera_fusion import Similarity
    from app.engine.sequence import FrameMaps, _join_parts
    from app.engine.sfm import OtherModel, reprojection_errors
    from mum.io import ViewTransform

    rng = np.random.default_rng(3)
    S, f, size = 24, 500.0, (640, 480)
    truth = np.stack([_pose(_rotation([0, 1, 0], 0.01 * i), [-0.2 * i, 0.05 * np.sin(i), 0.0]) for i in range(S)])
    K = np.array([[f, 0, 320], [0, f, 240], [0, 0, 1.0]])
    windows = [range(0, 6), range(6, 12), range(12, 18), range(18, 24)]
    parts = {"kept": range(0, 8), "cut": range(8, 14), "second cut": range(14, 18), "far": range(18, 24)}
    points = {name: np.column_stack([rng.uniform(-2.5, 2.5, 60) + 0.2 * np.mean(fr), rng.uniform(-1.5, 1.5, 60),
                                     np.full(60, 6.0)]) for name, fr in parts.items()}

    def observe(cams, pts):
        x = np.einsum("nij,pj->npi", cams[:, :3, :3], pts) + cams[:, None, :3, 3]
        return [(np.arange(len(pts)), xi[:, :2] / xi[:, 2:] * f + [320, 240]) for xi in x]

    tf = ViewTransform.crop(size, (64, 48), 0, 0, *size)
    grid = np.stack(np.meshgrid(np.arange(64.0), np.arange(48.0)), -1).reshape(-1, 2)
    maps = FrameMaps(windows=windows, transforms=[tf] * S, depth=np.zeros((S, 48, 64), np.float32))
    for w, window in enumerate(windows):  # each window: the network's own frame and scale
        sim = Similarity(0.2 + 0.3 * w, _rotation(rng.normal(size=3), 0.5 + w), rng.normal(size=3))
        maps.network_cams += list(sim.apply_to_cameras(truth[list(window)]))
        for i in window:  # the depth of the plane z = 6 seen from camera i, in the window's units
            rays = np.column_stack([(tf.points_to_original(grid) - [320, 240]) / f, np.ones(len(grid))])
            world_dirs = rays @ truth[i, :3, :3]  # Rᵀ r
            centre = camera_centers(truth[i:i + 1])[0]
            maps.depth[i] = ((6.0 - centre[2]) / world_dirs[:, 2]).reshape(48, 64) * sim.scale
    registered = np.isin(np.arange(S), list(parts["kept"]))
    cams = np.where(registered[:, None, None], truth, np.nan)
    empty = (np.zeros(0, np.int64), np.zeros((0, 2)))
    kept_obs = [o if r else empty for o, r in zip(observe(truth, points["kept"]), registered)]
    others = []
    for name, scale in (("cut", 3.0), ("second cut", 0.5), ("far", 2.0)):
        own = Similarity(scale, _rotation(rng.normal(size=3), 1.0), rng.normal(size=3))
        views = np.array(list(parts[name]))
        own_cams = own.apply_to_cameras(truth[views])
        own_points = points[name] @ own.rotation.T * own.scale + own.translation
        others.append(OtherModel(views, own_cams, np.repeat(K[None], len(views), 0), own_points,
                                 np.zeros((60, 3), np.uint8), observe(own_cams, own_points)))
    sfm = SfmResult(registered, cams, np.repeat(K[None], S, 0), points["kept"], np.zeros((60, 3), np.uint8), kept_obs,
                    0, 0, other_models=others)
    joined, records = _join_parts(sfm, list(range(100, 100 + S)), _offset_frames(maps, 100))
    assert [r["joined"] for r in records] == [True, True, False]
    assert [r["view_indices"] for r in records] == [list(range(108, 114)), list(range(114, 118)),
                                                    list(range(118, 124))]
    assert records[0]["scale"] == pytest.approx(1 / 3.0, rel=1e-3)
    assert records[1]["scale"] == pytest.approx(2.0, rel=1e-3)
    assert joined.registered.tolist() == [True] * 18 + [False] * 6 and not joined.other_models
    np.testing.assert_allclose(joined.cam_from_world[:18], truth[:18], atol=1e-3)
    assert len(joined.points) == 180
    errors = reprojection_errors(joined.cam_from_world, joined.intrinsics, joined.points, joined.observations)
    assert errors.size == 18 * 60 and errors.max() < 1e-6


def _offset_frames(maps, offset: int):
    """``maps`` of frames ``offset …``: a chunk's keyframes are frame numbers, not positions."""
    from app.engine.sequence import FrameMaps

    pad = lambda items: [None] * offset + list(items)  # noqa: E731
    depth = np.concatenate([np.zeros((offset,) + maps.depth.shape[1:], maps.depth.dtype), maps.depth])
    return FrameMaps(depth=depth, transforms=pad(maps.transforms), network_cams=pad(maps.network_cams),
                     windows=[range(w.start + offset, w.stop + offset) for w in maps.windows])


def test_stage_progress_says_the_time_left_from_the_units_done(monkeypatch):
    """Progress of a long stage: the stage, the bar, the units done and the time left in the stage from the time
    the finished units took (units 2 of 5 in 10 s: about 15 s left); at most one line per ``every`` seconds
    unless forced; the last line says how long the stage took."""
    import app.engine.sequence
    from app.engine.sequence import StageProgress

    now = [100.0]
    monkeypatch.setattr(app.engine.sequence.time, "perf_counter", lambda: now[0])
    lines: list[str] = []
    progress = StageProgress(lines.append, 7, 7, "dense", 5, "window")
    for done, t in ((1, 101.0), (2, 110.0), (3, 112.0), (4, 130.0), (5, 190.0)):
        now[0] = t
        progress.update(done, "frames 0–31")
    assert len(lines) == 3  # units 1 and 3 came within 5 s of the line before: no line
    assert lines[0].startswith("stage 7/7 dense |") and "window 2/5, about 15 s left; frames 0–31" in lines[0]
    assert "window 4/5, about 8 s left" in lines[1] and "window 5/5, done in 1 min 30 s" in lines[2]


def test_a_long_gap_between_keyframes_is_registered_a_frame_at_a_time():
    """Frames between two keyframes (here 120 frames of 640 × 480, a still camera) are decoded when indexed and
    at most two are held at once, each decoded at most twice (forwards from one keyframe, backwards from the
    other): peak memory of a few frames (before, every frame's grey image: 42 MB here, after the sequence path
    had decoded the whole gap at once), and the same poses as from frames already in memory."""
    import tracemalloc
    from collections.abc import Sequence

    base = np.repeat(_texture(480, 640, seed=5)[..., None], 3, axis=2)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    pixels = corners(grey(base), 300, 8).astype(np.float64)
    rays = np.column_stack([(pixels - [320, 240]) / 500, np.ones(len(pixels))])
    points = rays * np.random.default_rng(0).uniform(4, 6, (len(pixels), 1))  # seen from the identity pose
    ids = np.arange(len(pixels))
    decoded: list[int] = []

    class Decoded(Sequence):
        def __len__(self):
            return 122

        def __getitem__(self, k):
            if not 0 <= k < 122:
                raise IndexError(k)
            decoded.append(k)
            return base.copy()

    tracemalloc.start()
    found = register_between(Decoded(), 0, (ids, pixels), (ids, pixels), points, K)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sorted(found) == list(range(1, 121))
    assert all(np.allclose(r.cam_from_world, np.eye(4), atol=1e-6) for r in found.values())
    assert peak < 10 * base.nbytes and max(np.bincount(decoded)) <= 2
    assert register_between([base] * 122, 0, (ids, pixels), (ids, pixels), points, K).keys() == found.keys()


def test_frames_between_keyframes_registered_by_tracks(walk):
    """Keyframes 0 and 6 with exact observations (ground-truth depth): the frames between get their poses by
    optical flow + PnP within a small fraction of the step between frames."""
    S = 7
    E = np.concatenate([walk.extrinsics[:S], np.tile([[[0, 0, 0, 1.0]]], (S, 1, 1))], axis=1)
    K = walk.intrinsics[0]
    points, obs, offset = [], {}, 0
    for f in (0, S - 1):
        px = corners(grey(walk.images[f]), 400, 4).astype(np.float64)
        d = walk.depths[f][px[:, 1].round().astype(int), px[:, 0].round().astype(int)]
        px, d = px[d > 0], d[d > 0]
        rays = np.linalg.solve(K, np.concatenate([px, np.ones((len(px), 1))], 1).T).T * d[:, None]
        world = (rays - E[f][:3, 3]) @ E[f][:3, :3]  # R^T (x - t)
        obs[f] = (np.arange(offset, offset + len(px)), px)
        offset += len(px)
        points.append(world)
    points = np.concatenate(points)
    found = register_between(walk.images[:S], 0, obs[0], obs[S - 1], points, K, RegistrationOptions(min_inliers=20))
    assert sorted(found) == list(range(1, S - 1))
    step = np.linalg.norm(np.diff(camera_centers(E), axis=0), axis=1).mean()
    for f, r in found.items():
        assert np.linalg.norm(camera_centers(r.cam_from_world[None]) - camera_centers(E[f:f + 1])) < 0.2 * step


# ------------------------------------------------------------------------------------------------- end to end
def _ate_of_extent(cameras_json: Path, extrinsics: np.ndarray) -> float:
    """ATE of the cameras in ``cameras_json`` after a Sim(3) fit on the true ``extrinsics`` ``[S, 3 or 4, 4]``, as a
    fraction of the true path's extent."""
    import torch

    from heads.metrics import umeyama_alignment

    cams = json.loads(cameras_json.read_text())["images"]
    est = camera_centers(np.stack([np.array(c["cam_from_world"]) for c in cams]))
    gt = camera_centers(extrinsics if extrinsics.shape[1] == 4 else
                        np.concatenate([extrinsics, np.tile([[[0, 0, 0, 1.0]]], (len(extrinsics), 1, 1))], 1))
    s, R, t = umeyama_alignment(torch.from_numpy(est), torch.from_numpy(gt))
    ate = np.sqrt(np.mean(np.sum(((s * torch.from_numpy(est) @ R.T + t).numpy() - gt) ** 2, 1)))
    return float(ate / max(np.linalg.norm(gt - c, axis=1).max() for c in gt))


def _write_frames(images, folder: Path) -> Path:
    """RGB ``images`` as numbered PNG files in ``folder`` (an ordered input)."""
    import cv2

    folder.mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def test_cameras_alone_on_the_sequence_path_skip_the_dense_stage(walk, tmp_path, capsys):
    """``-o cameras.json`` on numbered frames: the sequence path without its dense stage (``--dense none``,
    which used to end in a KeyError there), every frame a camera."""
    from app.cli import main

    folder = _write_frames(walk.images, tmp_path / "frames")
    assert main([str(folder), "-o", str(tmp_path / "cameras.json"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "sequence" in summary and "stereo" not in summary
    assert summary["cameras"]["sfm"] == len(walk.images)
    assert len(json.loads((tmp_path / "cameras.json").read_text())["images"]) == len(walk.images)


def test_sequence_path_end_to_end(walk, tmp_path, capsys, monkeypatch):
    """The command on numbered frames: the sequence path, every frame a camera, ATE small against the walk; the
    frames' dense maps reach the exports on disk (memory holds a window of them) and the cloud is built a block
    of frames at a time within the point budget."""
    import app.cli
    from app.cli import main
    from app.engine.frame_store import on_disk

    import app.engine.sequence

    exported, allocated = [], []
    on_disk_maps = app.engine.sequence.frames_on_disk
    monkeypatch.setattr(app.engine.sequence, "frames_on_disk", lambda shape, dtype: allocated.append(
        int(np.prod(shape)) * np.dtype(dtype).itemsize) or on_disk_maps(shape, dtype))
    write_exports = app.cli.write_exports
    monkeypatch.setattr(app.cli, "write_exports", lambda out, recon, *a, **k: exported.append(recon)
                        or write_exports(out, recon, *a, **k))

    folder = _write_frames(walk.images, tmp_path / "frames")
    out = tmp_path / "out"
    assert main([str(folder), "-o", str(out), "--json", "--max-points", "20000"]) == 0
    summary = json.loads(capsys.readouterr().out)
    seq = summary["sequence"]
    assert 3 <= seq["keyframes"] < len(walk.images)
    assert summary["cameras"]["sfm"] == len(walk.images) and seq["network_placed"] == 0
    assert seq["scale_breaks"] == []  # the network's depth finds no jump in a map that has none
    assert all(0 <= chunk["corner_distortion"] < 1 and chunk["distortion_dropped"] in (True, False)
               for chunk in seq["chunks"])
    assert list(seq["peak_rss_mib"]) == list(seq["seconds"])  # the process's peak memory after each stage
    assert all(v > 0 for v in seq["peak_rss_mib"].values())
    assert len(allocated) == 7 and abs(seq["maps_on_disk_mb"] - sum(allocated) / 2**20) < 0.05  # checked up front
    recon, = exported
    assert all(on_disk(a) for a in (recon.depth, recon.depth_conf, recon.valid, recon.colors))
    assert 0 < summary["points"] <= 20000
    assert _ate_of_extent(out / "cameras.json", walk.extrinsics) < 0.05


@pytest.mark.parametrize("where", ["within a window", "at a window boundary"])
def test_a_scale_break_in_the_keyframe_map_is_repaired(tmp_path, capsys, monkeypatch, where):
    """Stage 3's wiring (app/engine/scale_breaks.py): the keyframe SfM comes out with the map from one keyframe
    on shrunk tenfold and sharing no points with the keyframes before (as after a turn on the spot; injected
    here), from the fourth keyframe (the first window) or from the first of the second window (frame 32 on: the
    windows' depth units tied by a bridge pass); the network's depth finds the jump where it was made, with a
    factor within three times the truth, and the cameras come out right. (Here the frames between the keyframes,
    registered by PnP to both sides, would also let the final bundle adjustment undo the injected break; the
    unit tests in tests/test_scale_breaks.py check the repair itself.)"""
    from dataclasses import replace

    import app.engine.sequence as sequence
    from app.cli import main
    from mum.data.synthetic import SyntheticConfig, generate_scene

    cfg = SyntheticConfig(kinds=("room",), camera_paths=("walk",), photo_fraction=0.0, overlap=(0.9, 0.95),
                          fov_deg=(60.0, 65.0))
    walk = generate_scene(1_100_000_021, num_views=48, width=320, height=240, config=cfg)  # keyframes see more points
    map_chunk = sequence._map_chunk
    shrunk = {}

    def broken(kmap, frames, *args, **kwargs):
        sfm = map_chunk(kmap, frames, *args, **kwargs)
        first = 3 if where == "within a window" else next(i for i, f in enumerate(frames) if f >= 32)
        assert sfm.registered.all() and first >= 3 and len(frames) - first >= 3  # three keyframes either side
        pivot = camera_centers(sfm.cam_from_world[first - 1][None])[0]
        cams = sfm.cam_from_world.copy()
        for i in range(first, len(frames)):  # each camera's centre 10× closer to the pivot, its points with it
            centre = pivot + 0.1 * (camera_centers(cams[i][None])[0] - pivot)
            cams[i, :3, 3] = -cams[i, :3, :3] @ centre
        seen_first = np.full(len(sfm.points), len(frames))
        for i, (idx, _) in enumerate(sfm.observations):
            seen_first[idx] = np.minimum(seen_first[idx], i)
        after = seen_first >= first
        points = sfm.points.copy()
        points[after] = pivot + 0.1 * (points[after] - pivot)
        observations = [(idx, uv) if i < first else (idx[after[idx]], uv[after[idx]])
                        for i, (idx, uv) in enumerate(sfm.observations)]
        shrunk["first"] = frames[first]
        return replace(sfm, cam_from_world=cams, points=points, observations=observations)

    monkeypatch.setattr(sequence, "_map_chunk", broken)
    folder = _write_frames(walk.images, tmp_path / "frames")
    assert main([str(folder), "-o", str(tmp_path / "cameras.json"), "--json", "--sequence", "on"]) == 0
    summary = json.loads(capsys.readouterr().out)
    record, = summary["sequence"]["scale_breaks"]
    assert record["first_keyframe"] == shrunk["first"] and 10 / 3 < record["factor"] < 30  # within 3x of the truth
    bound = 0.05 if where == "within a window" else 0.1  # the factor across windows: rougher
    assert _ate_of_extent(tmp_path / "cameras.json", walk.extrinsics) < bound


def test_a_loop_with_drift_goes_through_the_pose_graph_and_joins_the_map(tmp_path, capsys, monkeypatch):
    """Stage 4's wiring: a verified loop whose drift exceeds ``loop_max_drift`` (lowered here) is closed
    by the keyframe pose graph, measured again on the corrected map (closer), and its tracks join the map;
    ``--json`` records it and the pose graph; the cameras stay right (the loop's model: the true cameras)."""
    import functools

    import app.engine.pipeline
    import app.engine.sequence as sequence
    from app.cli import main
    from app.engine.keyframe_loops import Loop, PoseGraphOptions

    from mum.data.synthetic import SyntheticConfig, generate_scene

    cfg = SyntheticConfig(kinds=("room",), camera_paths=("walk",), photo_fraction=0.0, overlap=(0.9, 0.95),
                          fov_deg=(60.0, 65.0))
    walk = generate_scene(1_100_000_021, num_views=48, width=320, height=240, config=cfg)  # the fixture's, larger
    truth = np.concatenate([walk.extrinsics, np.tile([[[0, 0, 0, 1.0]]], (len(walk.images), 1, 1))], 1)
    # the map's own error at the loop (about 1°) is drift enough; its small frames' map lies up to 7 % of a side's
    # spread from the truth
    monkeypatch.setattr(app.engine.pipeline, "SequenceOptions",
                        functools.partial(sequence.SequenceOptions, loop_max_drift=(0.5, 0.015, 0.01),
                                          pose_graph=PoseGraphOptions(side_tolerance=0.1)))
    monkeypatch.setattr(sequence, "_loop_candidates", lambda keyframes, descriptors, seq: [(1, len(keyframes) - 2, 0.99)])

    def verify(kmap, keyframes, a, b, source, focal, options, seq, say):
        frames = [keyframes[i] for i in (a - 1, a, a + 1, b - 1, b, b + 1)]
        model = SfmResult(registered=np.ones(6, bool), cam_from_world=truth[frames], intrinsics=np.repeat(kmap.K[None], 6, 0),
                          points=np.zeros((0, 3)), point_colors=np.zeros((0, 3), np.uint8),
                          observations=[(np.zeros(0, np.int64), np.zeros((0, 2)))] * 6, pairs_matched=0, pairs_verified=0)
        loop = Loop(model, frames, [0, 1, 2], [3, 4, 5], {"keyframes": [keyframes[a], keyframes[b]], "accepted": True})
        sequence._align_loop(kmap, loop, seq)
        return loop, frames, loop.info

    monkeypatch.setattr(sequence, "_verify_loop", verify)
    folder = _write_frames(walk.images, tmp_path / "frames")
    out = tmp_path / "out"
    assert main([str(folder), "-o", str(out), "--json", "--sequence", "on", "--dense", "fitted"]) == 0
    summary = json.loads(capsys.readouterr().out)
    loop, = summary["sequence"]["loops"]
    graph = summary["sequence"]["pose_graph"]
    assert loop["pose_graph"] == "used" and loop["closed"] and graph["loops"] == 1
    assert graph["cost_after"] < graph["cost_before"]
    before = loop["drift_before_pose_graph"]
    assert loop["drift_rotation_deg"] < 0.5 < before["drift_rotation_deg"]
    assert loop["keyframes_added"] == 0 and "merged" in loop  # joined to the map (this model has no points)
    assert summary["cameras"]["sfm"] == len(walk.images)
    assert _ate_of_extent(out / "cameras.json", truth) < 0.05


def test_a_disk_too_small_for_the_maps_is_one_error_line_before_the_long_work(walk, tmp_path, capsys, monkeypatch):
    """TMPDIR's disk cannot hold every frame's maps: the command refuses with one line naming TMPDIR once the
    keyframes are chosen, before the network runs (the maps' files are made later, the dense ones at the end)."""
    import collections

    import app.engine.frame_store
    import app.engine.sequence
    from app.cli import main

    folder = _write_frames(walk.images, tmp_path / "frames")
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(app.engine.frame_store.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    monkeypatch.setattr(app.engine.sequence, "_network", lambda *a, **k: pytest.fail("the network ran"))
    assert main([str(folder), "-o", str(tmp_path / "out"), "--sequence", "on"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error" in line]
    assert errors == err[-1:] and err[-1].startswith("error: ") and "the maps of 48 frames need about" in err[-1]
    assert "1 MB are free; set TMPDIR" in err[-1] and not (tmp_path / "out").exists()


def test_auto_takes_the_sequence_path_only_for_frames_that_follow_each_other(walk, monkeypatch):
    """A video's frames (or numbered files) go the sequence path when they move little from one to the next;
    numbered photos far apart (most frames would be keyframes) go the unordered path; --sequence on insists."""
    import app.engine.pipeline
    import app.engine.sequence
    from app.engine.options import LongInputOptions, PipelineOptions
    from app.engine.pipeline import reconstruct_views
    from app.engine.sequence import choose_keyframes, is_continuous, SequenceOptions

    class SequencePath(Exception):
        pass

    def network(*args, **kwargs):  # the sequence path's first stage after the keyframes and the continuity check
        raise SequencePath

    monkeypatch.setattr(app.engine.sequence, "_network", network)
    monkeypatch.setattr(app.engine.pipeline, "reconstruct_arrays", lambda *a, **k: "unordered path")
    frames = ArrayViews([f"{i:05d}.png" for i in range(len(walk.images))], walk.images)
    frames.photos = list(frames.names)
    rng = np.random.default_rng(3)
    photos = ArrayViews(frames.names, [np.repeat(_texture(144, 192, seed=int(s))[..., None], 3, -1)
                                       for s in rng.integers(0, 10**6, len(walk.images))])
    photos.photos = list(photos.names)
    assert is_continuous(choose_keyframes(frames, SequenceOptions(), print))
    assert not is_continuous(choose_keyframes(photos, SequenceOptions(), print))

    class Model:  # only its input size is read before the routing
        cfg = type("cfg", (), {"image_size": 64})
        patch_size = 16

    def options(sequence=None):
        return PipelineOptions(long_input=LongInputOptions(window=100, sequence=sequence))

    with pytest.raises(SequencePath):
        reconstruct_views(Model(), frames, options())
    assert reconstruct_views(Model(), photos, options()) == "unordered path"
    with pytest.raises(SequencePath):
        reconstruct_views(Model(), photos, options(sequence=True))
    assert reconstruct_views(Model(), frames, options(sequence=False)) == "unordered path"


def test_sequence_on_where_it_cannot_run_is_one_error_line(walk, tmp_path, capsys):
    from app.cli import main

    folder = _write_frames(walk.images[:5], tmp_path / "frames")
    assert main([str(folder), "-o", str(tmp_path / "a.ply"), "--sequence", "on", "--fast"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --sequence on: --fast")


def test_a_sequence_sfm_cannot_map_goes_the_unordered_path(walk, monkeypatch):
    """SfM registering fewer than two keyframes: one warning line, and the frames are reconstructed as unordered
    views (the chunked path's fall-backs), not left at one pose."""
    import heads
    import app.engine.pipeline
    import app.engine.sequence
    from app.engine.options import LongInputOptions, NetworkOptions, PipelineOptions
    from app.engine.pipeline import reconstruct_views

    def nothing(kmap, frames, *args, **kwargs):
        n = len(frames)
        return SfmResult(np.zeros(n, bool), np.full((n, 4, 4), np.nan), np.repeat(np.eye(3)[None], n, 0),
                         np.zeros((0, 3)), np.zeros((0, 3), np.uint8), [(np.zeros(0, int), np.zeros((0, 2)))] * n, 0, 0)

    monkeypatch.setattr(app.engine.sequence, "_map_chunk", nothing)
    monkeypatch.setattr(app.engine.pipeline, "reconstruct_arrays", lambda *a, **k: "unordered path")
    frames = ArrayViews([f"{i:05d}.png" for i in range(len(walk.images))], walk.images)
    frames.photos = None
    warnings = []
    tiny = heads.load_model("mum-tiny", device="cpu")
    options = PipelineOptions(network=NetworkOptions(long_side=64), long_input=LongInputOptions(window=100))
    assert reconstruct_views(tiny, frames, options, warn=warnings.append) == "unordered path"
    assert len(warnings) == 1 and "registered 0 of the" in warnings[0]
