"""Multi-view stereo on known cameras (app/engine/stereo.py, app/engine/depth_fusion.py, app/engine/multiview_stereo.py,
app/engine/view_selection.py) against exact depth from the synthetic renderer, and the ``--dense`` options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.engine.depth_fusion import geometric_consistency
from app.engine.dense_options import DenseOptions
from app.engine.multiview_stereo import FILL_CONFIDENCE
from app.engine.stereo import StereoOptions, View, match_view
from mum.data.meshes import Material, MeshBuilder
from mum.data.render import Background, Light, World, render_views
from mum.data.textures import procedural_texture
from mum.geometry import intrinsics_from_fov, look_at

ROOT = Path(__file__).resolve().parents[1]
W, H = 192, 144


def _world() -> World:
    """A textured slanted wall, a textured ball in front of it and a floor (non-periodic procedural textures)."""
    rng = np.random.default_rng(4)
    mb = MeshBuilder()
    mb.quad([-4, 3, -1], [8, 0, 0], [0, 1.5, 4], 0, uv_scale=0.6)  # wall, leaning back
    mb.quad([-4, -2, -1], [8, 0, 0], [0, 5, 0], 1, uv_scale=0.8)  # floor
    mb.sphere([0.4, 1.2, 0.3], 0.6, 2, 24, 48)
    textures = [procedural_texture(rng, kind) for kind in ("noise", "voronoi", "marble")]
    sky = Background(np.ones(3, np.float32), np.ones(3, np.float32), np.ones(3, np.float32))
    return World(mb.build(), [Material(0), Material(1), Material(2)], textures,
                 [Light("dir", np.array([0.3, -1.0, 2.0]), np.full(3, 1.5, np.float32))], np.full(3, 0.4, np.float32),
                 np.full(3, 0.2, np.float32), sky)


@pytest.fixture(scope="module")
def scene():
    """Three views of the world (a reference between two sources, baselines ≈ 0.35 m at ≈ 3 m), exact depth."""
    eyes = [[0.0, -2.6, 0.6], [-0.35, -2.65, 0.7], [0.35, -2.55, 0.55]]
    E = np.stack([look_at(np.array(e), np.array([0.2, 1.5, 0.4])) for e in eyes])
    K = np.stack([intrinsics_from_fov(np.deg2rad(60), W, H)] * 3)
    out = render_views(_world(), E, K, W, H)
    cams = np.tile(np.eye(4), (3, 1, 1))
    cams[:, :3] = E
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255 for im in out["images"]]
    return {"images": out["images"], "grey": grey, "depth": out["depths"].astype(np.float64), "K": K, "cams": cams}


def _views(scene):
    return [View(g, scene["K"][i], scene["cams"][i]) for i, g in enumerate(scene["grey"])]


def _distorted(depth: np.ndarray) -> np.ndarray:
    """A prior like the network's fitted depth: the right shape up to a smooth error of −2 % to +20 %."""
    v, u = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]] / depth.shape[0]
    return (depth * np.exp(0.08 + 0.1 * np.sin(2.5 * u + 0.3) * np.cos(2 * v))).astype(np.float32)


def _relative_error(depth: np.ndarray, truth: np.ndarray) -> np.ndarray:
    ok = truth > 0
    return np.abs(depth[ok] - truth[ok]) / truth[ok]


@pytest.mark.parametrize("with_prior", [False, True])
def test_stereo_recovers_exact_depth(scene, with_prior):
    """Plane sweep (no prior) and hypotheses around a prior that is 15 % off both recover the exact depth of
    the reference view: the median pixel within 1 % (≈ 0.14 px of disparity at this size) and 80 % of them within
    3 %, where the prior alone has few."""
    views = _views(scene)
    truth = scene["depth"][0]
    prior = _distorted(truth) if with_prior else None
    match = match_view(views[0], views[1:], prior, (1.0, 12.0), StereoOptions(sweep_planes=0 if with_prior else 64))
    err = _relative_error(match.depth, truth)
    assert np.median(err) < 0.01 and np.mean(err < 0.03) > 0.8, (np.median(err), np.mean(err < 0.03))
    if with_prior:
        assert np.mean(_relative_error(prior, truth) < 0.03) < 0.3  # what stereo improved on


def test_stereo_fails_with_a_wrong_warp_or_cost(scene, monkeypatch):
    """The check above has teeth: a warp with the source cameras swapped (wrong geometry) or a cost that
    prefers the worst match loses the depth."""
    import app.engine.stereo as stereo

    views = _views(scene)
    truth = scene["depth"][0]
    swapped = [View(views[1].image, views[1].K, views[2].cam_from_world), View(views[2].image, views[2].K, views[1].cam_from_world)]
    match = match_view(views[0], swapped, None, (1.0, 12.0))
    assert np.mean(_relative_error(match.depth, truth) < 0.03) < 0.5
    original = stereo._Reference.ncc
    monkeypatch.setattr(stereo._Reference, "ncc", lambda self, warped, valid: -original(self, warped, valid))
    match = match_view(views[0], views[1:], None, (1.0, 12.0))
    assert np.mean(_relative_error(match.depth, truth) < 0.03) < 0.5


def test_views_matched_on_threads_give_each_view_its_own_match(scene):
    """``match_views`` with several workers yields every view's match, in view order, equal to matching the views
    one after another (a view's result does not depend on the threads); views without neighbours are skipped."""
    from app.engine.multiview_stereo import match_views

    views = _views(scene)
    # views 3-5: view 0 upside down, the others again: more views than twice the workers are in flight
    views = views + [View(views[0].image[::-1].copy(), views[0].K, views[0].cam_from_world), views[1], views[2]]
    neighbours = [[1, 2], [], [0, 1], [0, 2], [0, 2], [0, 1]]
    ranges = [(1.0, 12.0)] * 6
    one = list(match_views(views, neighbours, None, ranges, StereoOptions(), 1))
    two = list(match_views(views, neighbours, None, ranges, StereoOptions(), 2))
    assert [i for i, _ in one] == [i for i, _ in two] == [0, 2, 3, 4, 5]
    for (_, a), (_, b) in zip(one, two):
        assert np.array_equal(a.depth, b.depth) and np.array_equal(a.score, b.score)
    assert not np.allclose(one[0][1].depth, one[2][1].depth)  # the views' matches differ: a mix-up would show
    assert DenseOptions().stereo_workers >= 1
    with pytest.raises(ValueError):
        DenseOptions(workers=-1)


def test_memory_bounds_the_views_worked_on_at_once():
    """The dense stage works on fewer views at once when memory is short, and refuses in one line when even one
    does not fit beside the maps."""
    from app.engine.multiview_stereo import BYTES_PER_DENSE_PIXEL, BYTES_PER_WORKING_PIXEL, check_memory
    from mum.errors import UserError

    pixels = 640 * 480
    maps, working = 10 * pixels * BYTES_PER_DENSE_PIXEL, pixels * BYTES_PER_WORKING_PIXEL
    assert check_memory(10, 640, 480, 4, available=2 * (maps + 4 * working)) == 4
    assert check_memory(10, 640, 480, 4, available=2 * (maps + 2.5 * working)) == 2
    assert check_memory(10, 640, 480, 4, available=2 * (maps + working)) == 1
    with pytest.raises(UserError, match="need about"):
        check_memory(10, 640, 480, 4, available=2 * (maps + 0.9 * working))


def test_a_dense_stage_too_large_for_memory_is_refused_before_the_network(tmp_path, capsys, monkeypatch):
    """The dense stage's memory check is made when the run is planned: one error line, no output, and neither
    the network nor SfM ran (they took seconds on the demo, minutes on hundreds of photos)."""
    import app.engine.multiview_stereo
    import app.engine.pipeline
    from app.cli import main

    images = sorted((Path(__file__).resolve().parents[1] / "demo" / "tum_freiburg" / "images").iterdir())[:3]
    monkeypatch.setattr(app.engine.multiview_stereo, "MEMORY_FRACTION", 1e-9)  # no memory for any dense map
    monkeypatch.setattr(app.engine.pipeline, "predict_arrays", lambda *a, **k: pytest.fail("the network ran"))
    out = tmp_path / "scene.ply"
    assert main([*map(str, images), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: dense maps of 3 views at") and "--dense-size" in err[-1]
    assert not [line for line in err[:-1] if line.startswith("error")] and not out.exists()


def test_geometric_consistency_on_threads_equals_one_thread(scene):
    """Views checked on two threads give the same confirmations, fused depth and sampled differences (drawn in
    view order) as one after another."""
    depth = scene["depth"] * (1 + 0.01 * np.random.default_rng(0).standard_normal(scene["depth"].shape))
    neighbours = [[1, 2], [0, 2], [0, 1]]
    one = geometric_consistency(depth, scene["K"], scene["cams"], neighbours, min_angle=1.0)
    two = geometric_consistency(depth, scene["K"], scene["cams"], neighbours, min_angle=1.0, workers=2)
    assert np.array_equal(one.confirmed, two.confirmed) and np.array_equal(one.depth, two.depth, equal_nan=True)
    assert len(one.differences) == len(two.differences) == 3
    for (rel_a, flat_a), (rel_b, flat_b) in zip(one.differences, two.differences):
        assert np.array_equal(rel_a, rel_b) and np.array_equal(flat_a, flat_b)
    assert not np.array_equal(one.confirmed[0], one.confirmed[1])  # views differ: a mix-up would show


def test_geometric_consistency_confirms_exact_depth_and_rejects_errors(scene):
    """Exact depth maps confirm each other (round trip within 1 px and 1 %); a view whose depth is 3 % off
    is confirmed almost nowhere, and the fused depth of exact maps stays exact."""
    depth = np.where(scene["depth"] > 0, scene["depth"], np.nan).astype(np.float32)
    neighbours = [[1, 2], [0, 2], [0, 1]]
    exact = geometric_consistency(depth, scene["K"], scene["cams"], neighbours)
    seen = np.isfinite(depth[0])
    assert np.mean(exact.confirmed[0][seen] >= 1) > 0.8
    fused_error = np.abs(exact.depth[0][seen] - depth[0][seen]) / depth[0][seen]
    assert np.median(fused_error) < 1e-4 and np.mean(fused_error < 2e-3) > 0.99
    off = depth.copy()
    off[0] *= 1.03
    wrong = geometric_consistency(off, scene["K"], scene["cams"], neighbours)
    assert np.mean(wrong.confirmed[0][seen] >= 1) < 0.05


def _reconstruction(scene, prior_scale: float = 1.0):
    """A Reconstruction as the default path hands it to the dense stage: exact cameras, a distorted prior on a
    grid of half the images' resolution, the images as the originals."""
    from app.engine.reconstruction import Reconstruction
    from mum.io import ViewTransform

    tf = ViewTransform.crop((W, H), (W // 2, H // 2), 0, 0, W, H)
    K_orig = scene["K"].copy()
    prior = np.stack([cv2.resize(_distorted(d), (W // 2, H // 2), interpolation=cv2.INTER_NEAREST) for d in scene["depth"]])
    prior = np.where(prior > 0, prior * prior_scale, np.nan).astype(np.float32)
    colors = np.stack([cv2.resize(im, (W // 2, H // 2), interpolation=cv2.INTER_AREA) for im in scene["images"]])
    return Reconstruction(names=["a.png", "b.png", "c.png"], image_sizes=[(W, H)] * 3, cam_from_world=scene["cams"].copy(),
                          intrinsics=K_orig, depth=prior, depth_conf=np.ones_like(prior), world_points=np.zeros(prior.shape + (3,), np.float32),
                          world_points_conf=np.ones_like(prior), colors=colors, transforms=[tf] * 3,
                          valid=np.isfinite(prior))


@pytest.fixture(scope="module")
def stereo_recon(scene):
    """The stereo stage run on :func:`_reconstruction` at the images' size, holes filled by the network's prior
    only (the planes' fill: :func:`test_planes_fill_the_holes_on_the_wall_and_the_floor`; its pixels, accurate
    but outside the cloud, have confidence 0 like the prior's)."""
    from app.engine.multiview_stereo import add_stereo

    recon = _reconstruction(scene)
    add_stereo(recon, list(scene["images"]), recon.transforms, None, np.zeros((0, 3)),
               DenseOptions(size=W, neighbours=2, plane_fill=False), lambda line: None)
    return recon


def test_planes_fill_the_holes_on_the_wall_and_the_floor(scene, stereo_recon):
    """The default fill-in: the holes stereo leaves on the wall and the floor take those planes' depth (found
    from the kept points): the filled pixels' median error falls below 1 %, from over 2 % with the prior alone;
    the cloud (stereo's pixels) is the same."""
    from app.engine.multiview_stereo import add_stereo

    recon = _reconstruction(scene)
    lines = []
    add_stereo(recon, list(scene["images"]), recon.transforms, None, np.zeros((0, 3)), DenseOptions(size=W, neighbours=2),
               lines.append)
    np.testing.assert_array_equal(recon.valid, stereo_recon.valid)
    truth = scene["depth"]
    filled = (truth > 0) & ~recon.valid & np.isfinite(recon.depth) & np.isfinite(stereo_recon.depth)
    with_planes = np.median(np.abs(recon.depth - truth)[filled] / truth[filled])
    prior_only = np.median(np.abs(stereo_recon.depth - truth)[filled] / truth[filled])
    assert with_planes < 0.01 and prior_only > 0.02, (with_planes, prior_only)
    assert recon.meta["stereo"]["planes"] == 2 and recon.meta["stereo"]["pixels_plane_filled"] > 0.05
    assert "filled by 2 planes" in lines[-1]


def test_dense_stage_keeps_accurate_depth_and_confidence_ranks_it(scene, stereo_recon):
    """The whole stereo stage (neighbours by overlap, matching, consistency, fill-in): the kept depth is
    accurate, and confidence is higher where the depth is right: pixels within 1 % of the truth have higher
    confidence than pixels more than 3 % off (rank AUC), and the top half by confidence is more accurate."""
    recon = stereo_recon
    assert recon.depth.shape == (3, H, W) and recon.depth_conf.shape == (3, H, W)
    truth = scene["depth"]
    seen = (truth > 0) & np.isfinite(recon.depth)
    err = np.abs(recon.depth - truth) / np.where(truth > 0, truth, 1)
    kept = seen & recon.valid
    matched = kept & (recon.depth_conf > FILL_CONFIDENCE)  # the filled pixels' confidence is at most that
    assert matched.sum() > 0.4 * seen.sum()
    assert np.median(err[matched]) < 0.005 and np.mean(err[matched] < 0.02) > 0.8
    assert np.median(err[kept]) < 0.005  # with the fill-in
    conf = recon.depth_conf[seen]
    good, bad = conf[err[seen] < 0.01], conf[err[seen] > 0.03]
    assert len(bad) > 50
    auc = np.mean(good[:, None] > bad[None, :]) + 0.5 * np.mean(good[:, None] == bad[None, :])
    assert auc > 0.8, auc
    order = np.argsort(conf)
    assert np.median(err[seen][order[len(order) // 2:]]) < np.median(err[seen][order[: len(order) // 2]])
    assert 0 <= recon.depth_conf.min() and recon.depth_conf.max() <= 1
    assert recon.meta["stereo"]["size"] == [W, H]


def test_fill_modes(scene, stereo_recon):
    """``fill="maps"`` (default): complete depth maps, the cloud only stereo-confirmed pixels; ``"cloud"``: filled
    pixels near matched ones join it at the lowest confidence; ``"none"``: holes (NaN) where stereo keeps nothing."""
    from app.engine.multiview_stereo import add_stereo

    maps = stereo_recon
    assert np.isfinite(maps.depth[scene["depth"] > 0]).mean() > 0.99
    assert (maps.depth_conf[~maps.valid] == 0).all()
    runs = {}
    for fill in ("cloud", "none"):
        recon = _reconstruction(scene)
        add_stereo(recon, list(scene["images"]), recon.transforms, None, np.zeros((0, 3)),
                   DenseOptions(size=W, neighbours=2, fill=fill), lambda line: None)
        runs[fill] = recon
    cloud, none = runs["cloud"], runs["none"]
    np.testing.assert_array_equal(none.valid, maps.valid)  # the same stereo pixels
    assert np.isnan(none.depth[~none.valid]).all()
    added = cloud.valid & ~maps.valid
    assert added.sum() > 0 and (cloud.valid >= maps.valid).all()
    assert (cloud.depth_conf[added] <= FILL_CONFIDENCE).all() and (cloud.depth_conf[added] > 0).all()
    with pytest.raises(ValueError):
        DenseOptions(fill="everywhere")


def test_fill_refits_the_prior_to_the_views_stereo(scene, monkeypatch):
    """The fill-in of a view's holes: a prior with the network's usual error (its inverse depth scaled and shifted,
    and a gentle bend) is refitted to the view's kept stereo depth before it fills. Stereo keeps the left half of
    the view and a sparse 2 % of the rest; in the holes, the refitted fill-in is within 1.5 % of the truth at the
    median, and more than twice as close as the same fill without the refit (the prior only scaled locally)."""
    import app.engine.multiview_stereo as mvs

    truth = scene["depth"][0].astype(np.float32)
    seen = truth > 0
    v, u = np.mgrid[0:H, 0:W]
    bend = np.exp(0.03 * np.sin(3 * u / W + 0.5) * np.cos(2 * v / H))
    prior = np.where(seen, bend / (0.6 / np.where(seen, truth, 1) + 0.15), np.nan).astype(np.float32)
    kept = seen & ((u < 0.5 * W) | (np.random.default_rng(1).random((H, W)) < 0.02))
    stereo = np.where(kept, truth, np.nan).astype(np.float32)
    holes = seen & ~kept

    def hole_error() -> float:
        filled = mvs.fill_from_prior(prior, stereo, kept)
        return float(np.median(np.abs(filled[holes] - truth[holes]) / truth[holes]))

    after = hole_error()
    monkeypatch.setattr(mvs, "refit_prior", lambda prior, stereo, kept: prior)
    before = hole_error()
    assert after < 0.015 and 2 * after < before, (after, before)


def test_confidence_is_exported_and_filters_the_cloud(scene, stereo_recon, tmp_path):
    """``depth/NAME.conf.npy`` holds the stereo confidence at the original resolution, and ``--conf-percentile``
    (``point_cloud(conf_percentile=...)``) keeps the more accurate points."""
    from app.exports.project_formats import write_depth_maps

    recon = stereo_recon
    write_depth_maps(tmp_path, recon)
    conf = np.load(tmp_path / "a.conf.npy")
    assert conf.shape == (H, W)
    np.testing.assert_array_equal(conf, recon.depth_conf[0])  # the dense grid is the original's here
    def cloud_error(percentile: float) -> float:
        cloud = recon.point_cloud(conf_percentile=percentile)
        u, v = np.round(cloud.pixel).astype(int).T
        z = np.einsum("nj,nj->n", cloud.xyz, recon.cam_from_world[cloud.view, 2, :3]) + recon.cam_from_world[cloud.view, 2, 3]
        truth = scene["depth"][cloud.view, v, u]
        ok = truth > 0
        return float(np.mean(np.abs(z[ok] - truth[ok]) / truth[ok]))

    assert len(recon.point_cloud(conf_percentile=50)) < len(recon.point_cloud())
    assert cloud_error(50) < cloud_error(0)


def test_view_selection_prefers_shared_points_at_useful_angles():
    """Covisibility scores count shared points, weighted down at tiny triangulation angles: a neighbour on
    nearly the same ray as the view loses against one with a real baseline."""
    from app.engine.view_selection import covisibility_scores, select_neighbours

    rng = np.random.default_rng(0)
    points = rng.uniform([-1, -1, 4], [1, 1, 6], (300, 3))
    cams = np.tile(np.eye(4), (4, 1, 1))
    cams[1, 0, 3] = -0.01  # 1 cm to the side: angles ≈ 0.1°
    cams[2, 0, 3] = -0.5  # 50 cm: ≈ 6°
    cams[3, 0, 3] = -0.5
    observed = [np.arange(300), np.arange(300), np.arange(300), np.arange(100)]  # view 3 shares a third
    scores = covisibility_scores(cams, points, observed)
    assert scores[0, 2] > scores[0, 3] > scores[0, 1]
    assert select_neighbours(scores, 2)[0] == [2, 3]
    assert select_neighbours(np.zeros((2, 2)), 1, fallback=[[1], [0]]) == [[1], [0]]


def test_dense_options_are_validated():
    assert DenseOptions().mode == "stereo" and DenseOptions().long_side == 640
    assert DenseOptions(mode="fitted").long_side == 256
    for bad in (dict(mode="mvs"), dict(size=-1), dict(size=100_000), dict(neighbours=0), dict(min_score=2.0),
                dict(stereo=StereoOptions(window=4)), dict(stereo=StereoOptions(levels=0))):
        with pytest.raises(ValueError):
            DenseOptions(**bad)


@pytest.mark.parametrize("argv, message", [
    (["--dense", "mvs"], "invalid choice"),
    (["--dense-size", "-5"], "--dense-size"),
    (["--dense-size", "99999"], "--dense-size"),
    (["--fast", "--dense", "stereo"], "--fast"),
    (["--fast", "--dense-size", "320"], "--fast"),
])
def test_cli_refuses_bad_dense_options_before_work(tmp_path, argv, message):
    out = subprocess.run([sys.executable, "-m", "app.cli", str(ROOT / "demo" / "tum_freiburg" / "images"), "-o",
                          str(tmp_path / "x.ply"), *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.ply").exists()


@pytest.mark.parametrize("out_name, argv", [("cameras.json", []), ("x.ply", ["--dense", "none"])])
def test_cli_refuses_a_dense_size_without_a_dense_stage(tmp_path, out_name, argv):
    """``--dense-size`` where no dense stage runs (a cameras.json output, ``--dense none``) would be ignored
    silently: one line instead, before any work."""
    out = subprocess.run([sys.executable, "-m", "app.cli", str(ROOT / "demo" / "tum_freiburg" / "images"), "-o",
                          str(tmp_path / out_name), "--dense-size", "320", *argv], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "--dense-size" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / out_name).exists()


def test_sampling_many_points_matches_bilinear_interpolation():
    """``depth_fusion.sample`` (cv2.remap folded into rows: remap refuses maps of 32767 or more a side) gives
    the bilinear value at each of 100 000 points, NaN outside the image."""
    from app.engine.depth_fusion import sample

    rng = np.random.default_rng(1)
    image = rng.random((50, 70)).astype(np.float32)
    u, v = rng.uniform(-2, 71, 100_000).astype(np.float32), rng.uniform(-2, 51, 100_000).astype(np.float32)
    got = sample(image, u, v)
    inside = (u >= 0) & (v >= 0) & (u <= 68.99) & (v <= 48.99)
    u0, v0 = np.floor(u[inside]).astype(int), np.floor(v[inside]).astype(int)
    fu, fv = u[inside] - u0, v[inside] - v0
    want = (image[v0, u0] * (1 - fu) * (1 - fv) + image[v0, u0 + 1] * fu * (1 - fv)
            + image[v0 + 1, u0] * (1 - fu) * fv + image[v0 + 1, u0 + 1] * fu * fv)
    np.testing.assert_allclose(got[inside], want, atol=2e-3)  # remap's bilinear weights are 5-bit fixed point
    assert np.isnan(got[(u < -1) | (v < -1) | (u > 70) | (v > 50)]).all()
    assert sample(image, u[:0], v[:0]).shape == (0,)  # no points (a view without any depth to check)


def test_consistency_of_views_without_depth():
    """A view with no depth at all (nothing matched) is checked without error and confirms nothing."""
    depth = np.full((2, 8, 10), np.nan, np.float32)
    depth[1] = 3.0
    K = np.array([[10.0, 0, 5], [0, 10, 4], [0, 0, 1]])
    cams = np.tile(np.eye(4), (2, 1, 1))
    cams[1, 0, 3] = 0.5
    out = geometric_consistency(depth, np.stack([K, K]), cams, [[1], [0]], min_angle=1.0)
    assert out.confirmed.sum() == 0 and np.isnan(out.depth[0]).all()
    assert np.isnan(out.median_disagreement(np.zeros((2, 8, 10), bool)))
