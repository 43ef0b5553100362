"""Exports re-read by their ecosystems' readers, checked against the reconstruction they came from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.exports import project_formats as export
from app.engine.reconstruction import Reconstruction
from mum.io import ViewTransform


def look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """cam_from_world 4×4 (OpenCV axes) of a camera at ``center`` looking at ``target``, y down."""
    z = target - center
    z /= np.linalg.norm(z)
    x = np.cross(np.array([0.0, -1.0, 0.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, -R @ center
    return T


def make_recon(S: int = 3, h: int = 12, w: int = 16) -> Reconstruction:
    """A plane at z = 4 seen by S cameras; depth consistent with the cameras."""
    rng = np.random.default_rng(0)
    cams = np.stack([look_at(np.array([0.3 * i, 0.0, 0.0]), np.array([0.0, 0.0, 4.0])) for i in range(S)])
    Kn = np.array([[20.0, 0, w / 2], [0, 20.0, h / 2], [0, 0, 1]])
    scale = 40.0  # original images are 40× larger
    Ko = np.array([[20.0 * scale, 0, (w / 2 + 0.5) * scale - 0.5], [0, 20.0 * scale, (h / 2 + 0.5) * scale - 0.5], [0, 0, 1]])
    depth = np.zeros((S, h, w), np.float32)
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    for i in range(S):
        R, t = cams[i, :3, :3], cams[i, :3, 3]
        rays = np.stack([(u - Kn[0, 2]) / Kn[0, 0], (v - Kn[1, 2]) / Kn[1, 1], np.ones_like(u, float)], -1)
        dirs = rays @ R  # world directions (Rᵀ ray)
        center = -R.T @ t
        s = (4.0 - center[2]) / dirs[..., 2]
        depth[i] = s  # z in camera frame equals the ray scale since ray z = 1
    recon = Reconstruction(
        names=[f"img_{i}.jpg" for i in range(S)],
        image_sizes=[(w * 40, h * 40)] * S,
        cam_from_world=cams,
        intrinsics=np.stack([Ko] * S),
        depth=depth,
        depth_conf=1 + rng.random((S, h, w)).astype(np.float32),
        world_points=np.zeros((S, h, w, 3), np.float32),
        world_points_conf=np.ones((S, h, w), np.float32),
        colors=rng.integers(0, 255, (S, h, w, 3), dtype=np.uint8),
        transforms=[ViewTransform.crop((w * 40, h * 40), (w, h), 0, 0, w * 40, h * 40)] * S,
    )
    np.testing.assert_allclose(recon.network_intrinsics, np.stack([Kn] * S), atol=1e-12)
    recon.world_points = recon.depth_points()
    return recon


def test_depth_points_lie_on_the_plane():
    recon = make_recon()
    np.testing.assert_allclose(recon.depth_points()[..., 2], 4.0, atol=1e-4)


def test_point_cloud_filters():
    recon = make_recon()
    full = recon.point_cloud()
    assert len(full) == 3 * 12 * 16
    half = recon.point_cloud(conf_percentile=50)
    assert 0.45 * len(full) <= len(half) <= 0.55 * len(full)
    assert half.conf.min() >= np.percentile(recon.depth_conf, 50) - 1e-6
    one = recon.point_cloud(frames=[1])
    assert set(one.view.tolist()) == {1}
    # the source pixel of every point projects back onto that point with the original-image intrinsics
    cloud = recon.point_cloud(max_points=50)
    for xyz, view, pix in zip(cloud.xyz, cloud.view, cloud.pixel):
        cam = recon.cam_from_world[view, :3, :3] @ xyz + recon.cam_from_world[view, :3, 3]
        proj = recon.intrinsics[view] @ cam
        np.testing.assert_allclose(proj[:2] / proj[2], pix, atol=1e-3)


def test_point_cloud_keeps_max_points_with_more_sfm_points_than_that():
    """``--max-points`` bounds the whole cloud: SfM points beyond the budget are sampled too (they once all
    joined it: ``--max-points 1`` wrote every SfM point), and with ``frames`` only the chosen views' SfM points
    count towards it."""
    from app.engine.reconstruction import PointCloud

    recon = make_recon()
    rng = np.random.default_rng(1)
    n = 100
    recon.sfm_points = PointCloud(rng.random((n, 3)).astype(np.float32), rng.integers(0, 255, (n, 3), dtype=np.uint8),
                                  np.ones(n, np.float32), np.repeat(np.arange(2), n // 2).astype(np.int32),
                                  rng.random((n, 2)))
    dense = 3 * 12 * 16
    assert len(recon.point_cloud()) == dense + n
    for budget in (1, 30, n, n + 10):
        cloud = recon.point_cloud(max_points=budget)
        assert len(cloud) == budget
    one = recon.point_cloud(frames=[1], max_points=12 * 16 + n // 2)  # view 1's dense pixels and its SfM points
    assert len(one) == 12 * 16 + n // 2 and set(one.view.tolist()) == {1}
    assert recon.point_cloud(max_points=50).xyz.tobytes() == recon.point_cloud(max_points=50).xyz.tobytes()


def test_voxel_cloud_keeps_a_budget_below_eight_points():
    """A long input's cloud (voxel down-sampling) within ``--max-points`` of 1–7: the voxel grew until its keys
    overflowed int64 (a RuntimeWarning on the command's stderr, ~1750 sorts); now the most confident points."""
    import warnings

    from app.engine.point_budget import voxel_point_cloud

    recon = make_recon()  # its points lie on both sides of the world origin: floor() keeps them in 2+ voxels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for budget in (1, 3, 7, 50):
            assert 0 < len(voxel_point_cloud(recon, budget)) <= budget
    one = voxel_point_cloud(recon, 1)
    assert one.conf[0] == recon.depth_conf.max()  # the most confident point


def test_ply_reads_back_in_open3d_and_plyfile(tmp_path):
    from plyfile import PlyData

    recon = make_recon()
    cloud = recon.point_cloud(conf_percentile=25)
    path = export.write_ply(tmp_path / "scene.ply", cloud)
    ply = PlyData.read(str(path))
    v = ply["vertex"]
    assert not ply.text and len(v) == len(cloud)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), cloud.rgb)
    np.testing.assert_allclose(v["confidence"], cloud.conf)
    o3d = pytest.importorskip("open3d")
    pcd = o3d.io.read_point_cloud(str(path))
    np.testing.assert_allclose(np.asarray(pcd.points), cloud.xyz, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pcd.colors) * 255, cloud.rgb, atol=0.51)


def test_glb_has_points_and_one_frustum_per_camera(tmp_path):
    import trimesh

    recon = make_recon()
    cloud = recon.point_cloud()
    path = export.write_glb(tmp_path / "scene.glb", recon, cloud)
    scene = trimesh.load(str(path))
    geoms = scene.geometry
    clouds = [g for g in geoms.values() if isinstance(g, trimesh.PointCloud)]
    meshes = [g for g in geoms.values() if isinstance(g, trimesh.Trimesh)]
    assert len(clouds) == 1 and len(clouds[0].vertices) == len(cloud)
    assert len(meshes) == recon.num_views
    # glTF axes: OpenCV y and z flipped
    pts = scene.dump(concatenate=False)
    world = [g for g in pts if isinstance(g, trimesh.PointCloud)][0].vertices
    np.testing.assert_allclose(np.sort(world[:, 2]), np.sort(-cloud.xyz[:, 2]), atol=1e-5)


def test_cameras_json_schema(tmp_path):
    recon = make_recon()
    data = json.loads(export.write_cameras_json(tmp_path / "cameras.json", recon).read_text())
    assert len(data["images"]) == 3
    for entry, K, T in zip(data["images"], recon.intrinsics, recon.cam_from_world):
        assert set(entry) == {"name", "width", "height", "K", "cam_from_world", "source", "pose_source", "intrinsics_source"}
        assert entry["source"] == "network"  # make_recon has no SfM cameras
        assert (entry["width"], entry["height"]) == (640, 480)
        np.testing.assert_allclose(entry["K"], K)
        np.testing.assert_allclose(entry["cam_from_world"], T)


def test_depth_maps_at_original_resolution(tmp_path):
    import cv2

    recon = make_recon()
    folder = export.write_depth_maps(tmp_path / "depth", recon)
    d = np.load(folder / "img_1.depth.npy")
    assert d.shape == (480, 640)
    scale = json.loads((folder / "depth_scale.json").read_text())["png_depth_unit"]["img_1.jpg"]
    png = cv2.imread(str(folder / "img_1.depth.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16
    ok = png > 0
    np.testing.assert_allclose(png[ok] * scale, d[ok], rtol=1e-3)
    # the centre of the original image has the depth of the centre of the network map
    np.testing.assert_allclose(d[240, 320], recon.depth[1, 6, 8], rtol=0.02)


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "scene.ply"
    target.write_text("precious")
    with pytest.raises(RuntimeError):
        with export.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "precious"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_writes_get_the_umask_permissions_of_a_plain_write(tmp_path):
    """Results are as readable as ``open(path, "w")`` would make them (not mkstemp's owner-only 0o600)."""
    import os
    import stat

    from mum.files import atomic_dir

    old = os.umask(0o022)
    try:
        with export.atomic_path(tmp_path / "scene.ply") as tmp:
            tmp.write_text("points")
        with atomic_dir(tmp_path / "exports") as tmp:
            (tmp / "cameras.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "scene.ply").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "exports").stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "scene.ply"]  # no temporaries left


def test_colmap_model_reads_back_in_pycolmap(tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    from app.exports.colmap_nerfstudio import write_colmap

    recon = make_recon()
    cloud = recon.point_cloud(conf_percentile=50)
    folder = write_colmap(tmp_path, recon, cloud)
    assert {p.name for p in folder.iterdir()} >= {"cameras.bin", "images.bin", "points3D.bin", "cameras.txt", "images.txt", "points3D.txt"}
    rec = pycolmap.Reconstruction(str(folder))
    assert rec.num_images() == recon.num_views and rec.num_points3D() == len(cloud)
    # each observation reprojects onto its 3D point: poses, intrinsics and the +0.5 convention agree
    assert rec.compute_mean_reprojection_error() < 1e-3
    for i in range(recon.num_views):
        image = rec.find_image_with_name(recon.names[i])
        np.testing.assert_allclose(image.cam_from_world().matrix(), recon.cam_from_world[i][:3], atol=1e-9)
    colors = np.array([p.color for p in rec.points3D.values()])
    assert sorted(map(tuple, colors)) == sorted(map(tuple, cloud.rgb))
    text = pycolmap.Reconstruction()
    text.read_text(str(folder))
    assert text.num_points3D() == len(cloud)


def test_transforms_json_is_opengl(tmp_path):
    from app.exports.colmap_nerfstudio import write_transforms_json

    recon = make_recon()
    data = json.loads(write_transforms_json(tmp_path, recon).read_text())
    assert len(data["frames"]) == recon.num_views
    for frame, T, K in zip(data["frames"], recon.cam_from_world, recon.intrinsics):
        c2w = np.array(frame["transform_matrix"])
        # OpenGL camera looks down -z: its -z axis is the OpenCV +z (viewing direction)
        np.testing.assert_allclose(-c2w[:3, 2], T[2, :3], atol=1e-9)
        np.testing.assert_allclose(c2w[:3, 3], -T[:3, :3].T @ T[:3, 3], atol=1e-9)
        assert frame["cx"] == pytest.approx(K[0, 2] + 0.5) and frame["w"] == 640
