"""Long inputs in overlapping chunks (app.engine.chunked): planning, Sim(3) joins, the pose graph, the bounded cloud,
and `mum-reconstruct --window` end to end (tiny random model at 64 px: these test the mechanics, not accuracy)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import heads
from app.engine.camera_fusion import Similarity
from app.engine.camera_fusion import apply, compose, inverse
from app.engine.chunked import ViewMaps, fit_shared_views
from app.engine.planning import auto_window, default_overlap, owners, plan_chunks
from app.engine.pipeline import reconstruct_views
from app.engine.point_budget import voxel_point_cloud
from app.engine.pose_graph import Edge, chain, optimise_pose_graph
from app.cli import main
from app.engine.pipeline import reconstruct_arrays
from app.engine.options import LongInputOptions, NetworkOptions, PipelineOptions
from app.engine.view_source import ArrayViews
from mum.geometry import look_at

SIZE = 64


def _rotation(axis, angle):
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(axis, float) / np.linalg.norm(axis) * angle).as_matrix()


def _sim(seed: int, scale_range=(0.5, 2.0)) -> Similarity:
    rng = np.random.default_rng(seed)
    return Similarity(float(rng.uniform(*scale_range)), _rotation(rng.normal(size=3), rng.uniform(0.2, 2.5)),
                      rng.normal(size=3) * 3)


def _same_sim(a: Similarity, b: Similarity, tol: float) -> None:
    assert a.scale == pytest.approx(b.scale, rel=tol)
    np.testing.assert_allclose(a.rotation, b.rotation, atol=tol)
    np.testing.assert_allclose(a.translation, b.translation, atol=tol * max(1.0, np.abs(b.translation).max()))


# ------------------------------------------------------------------------------------------------- planning
@pytest.mark.parametrize("S, window, overlap", [(30, 8, 3), (31, 8, 3), (1000, 64, 16), (9, 8, 7), (100, 10, 1)])
def test_plan_covers_every_view_with_overlapping_chunks(S, window, overlap):
    chunks = plan_chunks(S, window, overlap)
    assert len(chunks) > 1
    assert all(len(c) == window for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].stop == S
    for a, b in zip(chunks, chunks[1:]):
        assert b.start > a.start and len(set(a) & set(b)) >= overlap  # every neighbour shares ≥ overlap views
    covered = np.zeros(S, int)
    for c in chunks:
        covered[list(c)] += 1
    assert covered.min() >= 1
    owner = owners(chunks, S)
    assert (owner >= 0).all()
    for v in range(S):  # each view is owned exactly once, by a chunk that holds it
        assert v in chunks[owner[v]]


def test_plan_is_one_chunk_when_every_view_fits():
    assert plan_chunks(12, 12, 3) == [range(0, 12)]
    assert plan_chunks(5, 64, 16) == [range(0, 5)]


def test_window_from_memory_grows_with_memory_and_is_bounded():
    small = auto_window(224 * 168, 640 * 480, available=2 << 30)
    large = auto_window(224 * 168, 640 * 480, available=64 << 30)
    assert 8 <= small < large <= 128
    assert auto_window(224 * 168, 640 * 480, available=1) == 8


# ------------------------------------------------------------------------------------------------- Sim(3)
def _scene_maps(seed: int, views: int = 3, h: int = 24, w: int = 32):
    """Depth maps of a few cameras looking at a bumpy surface, in frame A."""
    rng = np.random.default_rng(seed)
    K = np.array([[30.0, 0, (w - 1) / 2], [0, 30.0, (h - 1) / 2], [0, 0, 1]])
    maps = []
    for i in range(views):
        eye = np.array([0.3 * i, 0.1 * i, -4.0])
        cam = np.eye(4)
        cam[:3] = look_at(eye, np.array([0.0, 0.0, 0.0]) + rng.normal(0, 0.1, 3), up=np.array([0.0, -1.0, 0.0]))
        depth = (4.0 + rng.uniform(-0.5, 0.5, (h, w))).astype(np.float32)
        conf = rng.uniform(1, 5, (h, w)).astype(np.float32)
        maps.append(ViewMaps(depth, conf, K, cam))
    return maps


def _moved(maps, sim: Similarity):
    """The same views in frame B = sim(frame A): cameras placed by sim, depths scaled."""
    return [ViewMaps(m.depth * np.float32(sim.scale), m.conf, m.K, sim.apply_to_cameras(m.cam[None])[0]) for m in maps]


def test_join_recovers_a_known_similarity_exactly():
    maps = _scene_maps(0)
    truth = _sim(1)
    fit = fit_shared_views(maps, _moved(maps, truth))
    _same_sim(fit.sim, truth, 1e-5)
    assert fit.residual < 1e-5


def test_join_is_robust_to_wrong_depth_in_some_pixels():
    maps = _scene_maps(2)
    truth = _sim(3)
    target = _moved(maps, truth)
    rng = np.random.default_rng(4)
    for m in maps:  # 15 % of one chunk's pixels are badly wrong (confident, too)
        bad = rng.random(m.depth.shape) < 0.15
        m.depth[bad] *= rng.uniform(1.5, 3.0, bad.sum()).astype(np.float32)
    fit = fit_shared_views(maps, target)
    _same_sim(fit.sim, truth, 2e-2)
    assert fit.residual < 1e-2


def test_similarity_algebra():
    a, b = _sim(5), _sim(6)
    x = np.random.default_rng(7).normal(size=(10, 3))
    np.testing.assert_allclose(apply(compose(a, b), x), apply(a, apply(b, x)), atol=1e-9)
    np.testing.assert_allclose(apply(inverse(a), apply(a, x)), x, atol=1e-9)


# ------------------------------------------------------------------------------------------------- pose graph
def _drifting_loop(n: int = 8, drift_scale: float = 1.04, drift_angle: float = 0.03):
    """True chunk similarities along a loop, sequential edges with a scale and rotation drift each, and one exact
    loop edge from the last chunk back to the first."""
    truth = [Similarity(1.0, np.eye(3), np.zeros(3))]
    for k in range(1, n):
        angle = 2 * np.pi * k / n
        truth.append(Similarity(1.0, _rotation([0, 1, 0], angle), np.array([np.sin(angle), 0, 1 - np.cos(angle)]) * 5))
    edges = []
    noise = Similarity(drift_scale, _rotation([1, 0.3, 0], drift_angle), np.zeros(3))
    for k in range(1, n):
        exact = compose(inverse(truth[k - 1]), truth[k])  # chunk k → chunk k-1
        edges.append(Edge(k, k - 1, compose(exact, noise)))
    loop = Edge(n - 1, 0, compose(inverse(truth[0]), truth[n - 1]), kind="loop")
    return truth, edges, loop


def _pose_error(est, truth):
    return max(abs(np.log(e.scale / t.scale)) + np.linalg.norm(e.translation - t.translation) / 5
               + np.linalg.norm(e.rotation - t.rotation) for e, t in zip(est, truth))


def test_pose_graph_with_a_loop_closure_reduces_drift():
    truth, edges, loop = _drifting_loop()
    chained = chain(len(truth), edges)
    before = _pose_error(chained, truth)
    optimised, info = optimise_pose_graph(chained, edges + [loop], [5.0] * len(truth))
    after = _pose_error(optimised, truth)
    assert after < 0.5 * before
    assert info["cost_after"] < info["cost_before"]
    _same_sim(optimised[0], Similarity(1.0, np.eye(3), np.zeros(3)), 1e-12)  # the first chunk is held


def test_pose_graph_keeps_consistent_edges():
    truth, edges, loop = _drifting_loop(drift_scale=1.0, drift_angle=0.0)
    optimised, _ = optimise_pose_graph(chain(len(truth), edges), edges + [loop], [5.0] * len(truth))
    for e, t in zip(optimised, truth):
        _same_sim(e, t, 1e-6)


# ------------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return heads.load_model("mum-tiny", device="cpu")


@pytest.fixture(scope="module")
def scene():
    from mum.data.synthetic import SyntheticConfig, generate_scene

    cfg = SyntheticConfig(kinds=("room",), camera_paths=("walk",), photo_fraction=0.0)
    return generate_scene(1_100_000_005, num_views=30, width=80, height=60, config=cfg)


@pytest.fixture(scope="module")
def chunked_fast(tiny, scene):
    stages = []
    options = PipelineOptions(fast=True, fast_consistency=False, network=NetworkOptions(long_side=SIZE),
                              long_input=LongInputOptions(window=8, overlap=3))
    recon = reconstruct_views(tiny, ArrayViews(scene.names, scene.images), options, on_stage=stages.append)
    return recon, stages


def test_chunked_fast_gives_every_view_a_camera(chunked_fast, scene):
    recon, stages = chunked_fast
    S = len(scene.names)
    assert recon.num_views == S and recon.names == scene.names
    assert np.isfinite(recon.cam_from_world).all() and np.isfinite(recon.intrinsics).all()
    np.testing.assert_allclose(recon.cam_from_world[0], np.eye(4), atol=1e-9)  # world = first camera
    R = recon.cam_from_world[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-6)
    chunks = recon.meta["chunks"]
    assert chunks["count"] == len(plan_chunks(S, 8, 3)) and len(chunks["joins"]) == chunks["count"] - 1
    assert recon.meta["dropped"] == []
    assert any("chunk 3/" in s for s in stages)  # progress per chunk
    assert recon.depth.shape[0] == S and (recon.depth > 0).mean() > 0.5


def test_chunk_cameras_are_joined_not_restarted(chunked_fast, tiny, scene):
    """Each chunk restarts at its own first camera; the joins move every chunk after the first away from it."""
    recon, _ = chunked_fast
    starts = [r[0] for r in recon.meta["chunks"]["ranges"]]
    assert all(not np.allclose(recon.cam_from_world[s], np.eye(4), atol=1e-3) for s in starts[1:])


# ---- joins and loop closures with a network that knows the answer (tests/oracle_model.py) ----
@pytest.fixture(scope="module")
def turning_walk():
    """30 views turning a full circle on the spot inside a room (12° apart: the last view sees what the first
    did), 64 × 48 px, exact cameras and depth."""
    from mum.data.synthetic import SyntheticConfig, generate_scene

    cfg = SyntheticConfig(kinds=("room",), camera_paths=("orbit",), overlap=(0.0, 0.01), photo_fraction=0.0)
    return generate_scene(1_100_000_011, num_views=30, width=64, height=48, config=cfg)


def _trajectory_error(recon, scene) -> tuple[float, float]:
    """(ATE after a Sim(3) alignment relative to the cameras' spread, median relative rotation error in °)."""
    from mum.geometry import camera_centers
    from heads.metrics import relative_pose_errors, umeyama_alignment

    est, gt = camera_centers(recon.cam_from_world), camera_centers(scene.extrinsics)
    s, R, t = (x.numpy() for x in umeyama_alignment(torch.from_numpy(est), torch.from_numpy(gt)))
    ate = np.sqrt(np.mean(np.sum((s * est @ R.T + t - gt) ** 2, axis=1)))
    spread = np.sqrt(np.mean(np.sum((gt - gt.mean(0)) ** 2, axis=1)))
    rra, _ = relative_pose_errors(torch.from_numpy(recon.cam_from_world[:, :3]), torch.from_numpy(scene.extrinsics))
    return float(ate / spread), float(rra.median())


def _chunked_oracle(scene, monkeypatch=None, corrupt_chunk: int | None = None, loop_closure: bool = True):
    """The chunked --fast path (window 8, overlap 3: 6 chunks) with the oracle network; ``corrupt_chunk``: the
    join of that chunk to the one before it is turned by 6° about the vertical and scaled by 1.1 (a bad join)."""
    from oracle_model import OracleModel

    import app.engine.chunked as chunked

    if corrupt_chunk is not None:
        real_join = chunked._join
        turn = Similarity(1.1, _rotation([0, 1, 0], np.deg2rad(6.0)), np.zeros(3))  # y: the cameras' vertical

        def bad_join(previous, current):
            edge = real_join(previous, current)
            if current.index == corrupt_chunk:
                edge = Edge(edge.i, edge.j, compose(edge.sim, turn), edge.kind, edge.residual, kind_of_fit=edge.kind_of_fit)
            return edge

        monkeypatch.setattr(chunked, "_join", bad_join)
    oracle = OracleModel(scene)
    options = PipelineOptions(fast=True, fast_consistency=False, network=NetworkOptions(long_side=64),
                              long_input=LongInputOptions(window=8, overlap=3, loop_closure=loop_closure))
    recon = reconstruct_views(oracle, ArrayViews(scene.names, scene.images), options)
    return recon, oracle


def test_joins_place_shared_views_where_the_previous_chunk_put_them(turning_walk):
    """Every chunk comes in its own frame and scale; the joins (fitted on the shared views' depth) put them
    back together: the whole path equals the ground truth up to one similarity, and every join fits exactly."""
    recon, oracle = _chunked_oracle(turning_walk, loop_closure=False)
    chunks = recon.meta["chunks"]
    assert chunks["count"] == 6 and len(oracle.calls) == 6
    assert len({round(s, 6) for s in chunks["scales"]}) == 6  # six different scales were joined
    assert all(j["residual"] is not None and j["residual"] < 1e-4 for j in chunks["joins"])
    ate, rotation = _trajectory_error(recon, turning_walk)
    assert ate < 1e-4 and rotation < 1e-3


def test_loop_closure_is_found_verified_and_repairs_a_bad_join(turning_walk, monkeypatch):
    """The last chunk looks where the first did: the loop between them is a candidate, verified by one more
    network pass and accepted; with one bad join (6°, ×1.1) the pose graph spreads its error over the loop and
    the path is closer to the truth than without loop closure. With exact joins the loop keeps the path exact."""
    exact, _ = _chunked_oracle(turning_walk)
    loops = exact.meta["chunks"]["loops"]
    assert [lp["chunks"] for lp in loops if lp["accepted"]] == [[0, 5]]
    assert exact.meta["chunks"]["pose_graph"]["loops"] == 1
    ate, rotation = _trajectory_error(exact, turning_walk)
    assert ate < 1e-4 and rotation < 1e-3  # kept: an exact loop on exact joins changes nothing

    bad_chain, _ = _chunked_oracle(turning_walk, monkeypatch, corrupt_chunk=3, loop_closure=False)
    repaired, oracle = _chunked_oracle(turning_walk, monkeypatch, corrupt_chunk=3)
    assert len(oracle.calls) == 6 + len(repaired.meta["chunks"]["loops"])  # one network pass per loop candidate
    graph = repaired.meta["chunks"]["pose_graph"]
    assert graph["loops"] == 1 and graph["cost_after"] < 0.5 * graph["cost_before"]
    ate_bad, rot_bad = _trajectory_error(bad_chain, turning_walk)
    ate_fixed, rot_fixed = _trajectory_error(repaired, turning_walk)
    assert rot_bad > 2.0 and ate_bad > 0.05  # the bad join shows without the loop
    assert ate_fixed < 0.7 * ate_bad and rot_fixed < 0.8 * rot_bad  # measured: 0.57× and 0.66×


def test_one_pass_result_is_unchanged_when_every_view_fits(tiny, scene):
    names, arrays = scene.names[:6], scene.images[:6]
    options = PipelineOptions(fast=True, fast_consistency=False, network=NetworkOptions(long_side=SIZE))
    a = reconstruct_arrays(tiny, names, arrays, options)
    b = reconstruct_views(tiny, ArrayViews(names, arrays), replace(options, long_input=LongInputOptions(window=6)))
    assert "chunks" not in b.meta
    np.testing.assert_array_equal(a.cam_from_world, b.cam_from_world)
    np.testing.assert_array_equal(a.depth, b.depth)


def test_voxel_cloud_stays_within_the_budget(chunked_fast):
    recon, _ = chunked_fast
    everything = voxel_point_cloud(recon, 10**9)
    finite = int(np.isfinite(recon.depth).sum())
    assert len(everything) == finite  # no budget pressure: every point kept
    for budget in (500, 3000):
        cloud = voxel_point_cloud(recon, budget)
        assert 0.2 * budget < len(cloud) <= budget
        assert np.isfinite(cloud.xyz).all() and set(np.unique(cloud.view)) <= set(range(recon.num_views))
    half = voxel_point_cloud(recon, 10**9, conf_percentile=50)
    assert 0.4 * finite < len(half) < 0.6 * finite


@pytest.mark.parametrize("spread", [1.0, 1e5, 1e7])  # voxel and point index packed / the voxel alone / rows
# (_first_per_cell); the accumulator splits off the far points of the last two (the central box packed)
def test_voxel_reduction_keeps_the_most_confident_point_of_each_voxel(spread):
    from app.engine.point_budget import _first_per_cell, _first_per_voxel, _VoxelAccumulator

    rng = np.random.default_rng(4)
    far = np.repeat(rng.uniform(-spread, spread, (5, 3)), 2, axis=0)  # in pairs: one voxel each
    xyz = np.concatenate([rng.uniform(0, 1, (3000, 3)), far]).astype(np.float32)
    conf = rng.integers(0, 5, len(xyz)).astype(np.float32)  # many ties: the earlier point wins
    conf[3001::2] = conf[3000::2]
    best: dict = {}
    for i, cell in enumerate(map(tuple, np.floor(xyz / np.float32(0.25)).astype(np.int64))):
        if cell not in best or conf[i] > conf[best[cell]]:
            best[cell] = i
    acc = _VoxelAccumulator(len(best))
    acc.voxel = 0.25  # the grid the first reduction tries: every voxel's best point fits the budget
    n = len(xyz)
    acc.add(xyz, rng.integers(0, 255, (n, 3)).astype(np.uint8), conf, np.arange(n), np.zeros((n, 2)))
    cloud = acc.result()
    assert acc.voxel == 0.25
    np.testing.assert_array_equal(cloud.view, sorted(best.values()))  # the view column carries each point's index
    by_conf = np.argsort(-conf, kind="stable")  # as the accumulator orders them
    np.testing.assert_array_equal(np.sort(by_conf[_first_per_voxel(xyz[by_conf], 0.25)]), sorted(best.values()))
    cells = np.floor(xyz[by_conf] / np.float32(0.25)).astype(np.int64)  # every point in one packing, no split
    cells -= cells.min(0)
    first = _first_per_cell(cells, cells.max(0) + 1)
    np.testing.assert_array_equal(np.sort(by_conf[first]), sorted(best.values()))


def test_streamed_ply_matches_the_cloud(chunked_fast, tmp_path, monkeypatch):
    from plyfile import PlyData

    from app.exports import project_formats as export

    recon, _ = chunked_fast
    cloud = voxel_point_cloud(recon, 2000)
    monkeypatch.setattr(export, "PLY_BLOCK", 333)  # several blocks
    path = export.write_ply(tmp_path / "c.ply", cloud)
    v = PlyData.read(str(path))["vertex"]
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), cloud.xyz)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), cloud.rgb)
    np.testing.assert_array_equal(v["confidence"], cloud.conf)
    assert [p.name for p in tmp_path.iterdir()] == ["c.ply"]  # no temporary left


# ------------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def frames(scene, tmp_path_factory):
    import cv2

    folder = tmp_path_factory.mktemp("frames")
    for name, image in zip(scene.names, scene.images):
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


CHUNKED = ["--model", "mum-tiny", "--size", str(SIZE), "--window", "8", "--overlap", "3", "--quiet"]


def _cameras(out: Path) -> list[dict]:
    return json.loads((out / "cameras.json").read_text())["images"]


@pytest.mark.parametrize("mode", [["--fast"], []], ids=["fast", "default"])
def test_cli_window_end_to_end(frames, scene, tmp_path, mode, capsys):
    out = tmp_path / "out"
    assert main([str(frames), "-o", str(out), *CHUNKED, *mode, "--json", "--max-points", "4000"]) == 0
    summary = json.loads(capsys.readouterr().out)
    cams = _cameras(out)
    assert [c["name"] for c in cams] == scene.names  # every frame has a camera
    assert all(np.isfinite(np.array(c["cam_from_world"])).all() for c in cams)
    assert summary["chunks"]["count"] == len(plan_chunks(len(scene.names), 8, 3)) and summary["dropped"] == []
    assert summary["mode"] == ("fast" if mode else "default")
    assert 0 < summary["points"] <= 4000
    from plyfile import PlyData

    assert len(PlyData.read(str(out / "scene.ply"))["vertex"]) == summary["points"]
    if not mode:
        assert summary["sfm"]["views"] == len(scene.names) and summary["sfm"]["matching"] == "per chunk"


def test_cli_long_video(scene, tmp_path, capsys):
    import cv2

    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for image in scene.images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "cams.json"
    assert main([str(video), "-o", str(out), *CHUNKED, "--fast", "--json"]) == 0
    cams = json.loads(out.read_text())["images"]
    assert [c["name"] for c in cams] == [f"frame_{i:06d}.png" for i in range(len(scene.names))]


def test_cli_interrupted_mid_chunk_leaves_nothing(frames, tmp_path, monkeypatch):
    import app.engine.chunked as chunked

    calls = []
    original = chunked._run_chunk

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(chunked, "_run_chunk", interrupt_second)
    out = tmp_path / "out"
    status = main([str(frames), "-o", str(out), *CHUNKED, "--fast"])
    assert status != 0 and len(calls) == 2
    assert list(tmp_path.iterdir()) == []  # no output, no temporary


def test_cli_refuses_a_bad_window(frames, tmp_path):
    assert main([str(frames), "-o", str(tmp_path / "a.ply"), "--window", "1", "--quiet"]) == 2
    assert main([str(frames), "-o", str(tmp_path / "a.ply"), "--window", "4", "--overlap", "4", "--quiet"]) == 2


# ------------------------------------------------------------------------------------------------- web app
def test_web_app_runs_long_inputs_in_chunks(tmp_path, frames, scene):
    """The web app takes many views the same way: beyond its window they run in joined chunks, every view gets
    a camera in the table, and the filters re-render the chunked result."""
    pytest.importorskip("gradio")
    from app.web.handlers import Handlers, WebConfig
    from app.web.model_cache import ModelCache

    torch.manual_seed(0)
    model = heads.load_model("mum-tiny", device="cpu")
    models = ModelCache("cpu", model="tiny", loader=lambda *a, **k: model, presets=["tiny"])
    h = Handlers(WebConfig(work_root=tmp_path / "work", long_side=SIZE, window=8, max_views=64), models)
    files = [str(p) for p in sorted(frames.iterdir())]
    calls = []
    out = h.run(files, None, 1, None, True, 50, True, False, "depth", None,
                progress=lambda fraction, desc=None: calls.append(desc))
    table, status, web_scene = out[2], out[5], out[6]
    recon = web_scene.recon
    assert recon.meta["chunks"]["count"] == len(plan_chunks(len(files), 8, default_overlap(8)))
    assert len(table) == len(files) and np.isfinite(recon.cam_from_world).all()
    assert any(d and d.startswith("chunk 2/") for d in calls)
    assert f"{recon.meta['chunks']['count']} chunks of 8 views joined" in status
    _glb, _files, text, _state = h.rerender(web_scene, 0, [0, 1], True, False, "pointmap")
    assert "points" in text


def test_sfm_network_disagreement_separates_agreeing_from_unrelated_cameras():
    """The figure that overrules a chunk's SfM: ~0 for the same cameras up to a similarity, large for cameras
    unrelated to them, NaN with fewer than three registered views."""
    from app.engine.chunked import sfm_network_disagreement

    rng = np.random.default_rng(8)
    cams = np.tile(np.eye(4), (12, 1, 1))
    for i in range(12):
        cams[i, :3, :3] = _rotation(rng.normal(size=3), rng.uniform(0, 0.5))
        cams[i, :3, 3] = rng.normal(size=3)
    moved = _sim(9).apply_to_cameras(cams)
    registered = np.ones(12, bool)
    assert sfm_network_disagreement(moved, cams, registered) < 1e-4
    unrelated = cams.copy()
    unrelated[:, :3, 3] = rng.normal(size=(12, 3))
    assert sfm_network_disagreement(unrelated, cams, registered) > 20
    assert np.isnan(sfm_network_disagreement(moved, cams, np.arange(12) < 2))


def test_cli_progress_shows_each_chunk_with_its_bar(frames, tmp_path, capsys):
    """The stage printer (rich) shows every chunk and its bar (square brackets would be taken for markup)."""
    out = tmp_path / "c.json"
    assert main([str(frames), "-o", str(out), *[a for a in CHUNKED if a != "--quiet"], "--fast"]) == 0
    err = capsys.readouterr().err
    n = len(plan_chunks(30, 8, 3))
    for k in range(1, n + 1):
        assert f"chunk {k}/{n} |" in err
    assert "|" + "#" * 20 + "|" in err  # the bar at the end of the chunks


# ------------------------------------------------------------------------------------------------- known cameras
def _cameras_file(scene, path: Path, poses: bool) -> Path:
    """The scene's true cameras as a cameras.json (K scaled by 1.1, so that they differ from any prediction)."""
    images = []
    for name, K, E in zip(scene.names, scene.intrinsics, scene.extrinsics):
        K = np.array(K, dtype=np.float64)
        K[:2, :2] *= 1.1
        entry = {"name": name, "width": 80, "height": 60, "K": K.tolist()}
        if poses:
            entry["cam_from_world"] = np.vstack([np.asarray(E, np.float64)[:3], [0, 0, 0, 1]]).tolist()
        images.append(entry)
    path.write_text(json.dumps({"images": images}))
    return path


@pytest.mark.parametrize("mode", [["--fast"], []], ids=["fast", "default"])
def test_chunks_use_the_given_intrinsics(frames, scene, tmp_path, mode):
    given = _cameras_file(scene, tmp_path / "given.json", poses=False)
    out = tmp_path / "out"
    assert main([str(frames), "-o", str(out), *CHUNKED, *mode, "--cameras", str(given)]) == 0
    exported = {c["name"]: c for c in _cameras(out)}
    for entry in json.loads(given.read_text())["images"]:  # every chunk's views, the given K exactly
        np.testing.assert_allclose(exported[entry["name"]]["K"], entry["K"], atol=1e-9)
        assert exported[entry["name"]]["intrinsics_source"] == "given"


def test_chunked_inputs_refuse_fixed_poses_with_one_line(frames, scene, tmp_path, capsys):
    given = _cameras_file(scene, tmp_path / "given.json", poses=True)
    out = tmp_path / "o.ply"
    assert main([str(frames), "-o", str(out), *CHUNKED, "--fast", "--cameras", str(given), "--fix-poses"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--window" in err[0]
    assert not out.exists()
