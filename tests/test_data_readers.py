"""Readers and writers: round trips of every format, the demo scenes, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mum.data.readers import (
    read_colmap,
    read_image_folder,
    read_scene,
    read_transforms_json,
    read_video,
    write_colmap,
    write_image_folder,
    write_transforms_json,
    write_video,
)
from mum.data.scene import Scene
from mum.data.synthetic import SyntheticConfig, generate_scene
from mum.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scene() -> Scene:
    s = generate_scene(21, 3, 64, 48, SyntheticConfig(kinds=("object",)))
    s.intrinsics[1, 0, 2] += 3.25  # distinct, off-centre intrinsics per view
    s.intrinsics[2, 1, 1] *= 1.1
    return s


def _same_cameras(a: Scene, b: Scene, atol: float = 1e-6) -> None:
    np.testing.assert_allclose(a.extrinsics, b.extrinsics, atol=atol)
    np.testing.assert_allclose(a.intrinsics, b.intrinsics, atol=atol)
    np.testing.assert_array_equal(a.widths, b.widths)
    np.testing.assert_array_equal(a.heights, b.heights)


def test_folder_round_trip(scene, tmp_path):
    write_image_folder(scene, tmp_path / "f")
    back = read_image_folder(tmp_path / "f")
    assert back.num_views == 3 and back.image_paths is not None
    _same_cameras(scene, back, 1e-12)
    for i in range(3):
        np.testing.assert_array_equal(back.image(i), scene.images[i])
        np.testing.assert_array_equal(back.depths[i], scene.depths[i])
        np.testing.assert_array_equal(back.masks[i], scene.masks[i])
    with pytest.raises(UserError, match="not empty"):
        write_image_folder(scene, tmp_path / "f")
    write_image_folder(scene, tmp_path / "f", overwrite=True)


@pytest.mark.parametrize("kind", ["binary", "text"])
def test_colmap_round_trip(scene, tmp_path, kind):
    scene = Scene(**{**scene.__dict__, "points3d": np.random.default_rng(0).normal(size=(5, 3)),
                     "points_rgb": np.full((5, 3), 200, np.uint8)})
    write_colmap(scene, tmp_path / "c", binary=kind == "binary", text=kind == "text")
    model = tmp_path / "c" / "sparse" / "0"
    assert (model / ("cameras.bin" if kind == "binary" else "cameras.txt")).is_file()
    back = read_colmap(tmp_path / "c")
    _same_cameras(scene, back, 1e-6)
    np.testing.assert_allclose(back.points3d, scene.points3d, atol=1e-6)
    np.testing.assert_array_equal(back.points_rgb, scene.points_rgb)
    for i in range(3):
        np.testing.assert_array_equal(back.image(i), scene.images[i])
    assert read_scene(tmp_path / "c").num_views == 3  # auto-detected


def test_transforms_round_trip(scene, tmp_path):
    write_transforms_json(scene, tmp_path / "t")
    data = json.loads((tmp_path / "t" / "transforms.json").read_text())
    c2w = np.array(data["frames"][0]["transform_matrix"])
    # OpenGL camera axes: the camera looks along −z of its transform
    forward_cv = scene.extrinsics[0, 2, :3]
    np.testing.assert_allclose(-c2w[:3, 2], forward_cv, atol=1e-9)
    assert data["frames"][1]["cx"] == pytest.approx(scene.intrinsics[1, 0, 2] + 0.5)
    back = read_transforms_json(tmp_path / "t" / "transforms.json")
    _same_cameras(scene, back, 1e-9)
    unit = data["depth_unit_scale_factor"]
    for i in range(3):
        np.testing.assert_array_equal(back.image(i), scene.images[i])
        assert np.max(np.abs(back.depths[i] - scene.depths[i])) <= unit * 0.51
        np.testing.assert_array_equal(back.masks[i], scene.masks[i])
    assert read_scene(tmp_path / "t").num_views == 3


def test_instant_ngp_style_file(tmp_path, scene):
    """camera_angle_x, extensionless file paths and a 3×4 matrix, as the NeRF synthetic scenes have them."""
    write_image_folder(scene, tmp_path / "n")
    c2w = np.eye(4)
    c2w[:3, 3] = [1, 2, 3]
    frames = [{"file_path": "./images/000", "transform_matrix": c2w[:3].tolist()}]
    (tmp_path / "n" / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.9, "frames": frames}))
    s = read_transforms_json(tmp_path / "n" / "transforms.json")
    assert s.names == ["000.png"]
    assert s.intrinsics[0, 0, 0] == pytest.approx(32 / np.tan(0.45))
    np.testing.assert_allclose(s.intrinsics[0, :2, 2], [31.5, 23.5])
    # OpenGL → OpenCV flips y and z of the camera: the centre is preserved
    centre = -s.extrinsics[0, :, :3].T @ s.extrinsics[0, :, 3]
    np.testing.assert_allclose(centre, [1, 2, 3])
    np.testing.assert_allclose(s.extrinsics[0, :, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-12)


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_video_round_trip(scene, tmp_path, suffix):
    path = write_video(scene, tmp_path / f"v{suffix}", fps=5)
    back = read_video(path)
    assert back.names == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    _same_cameras(scene, back, 1e-12)
    for i in range(3):
        err = np.abs(back.images[i].astype(float) - scene.images[i].astype(float)).mean()
        assert err < 12, err  # lossy codec
    assert read_video(path, num_frames=2).names == ["frame_000000.png", "frame_000002.png"]
    assert read_video(path, stride=2).names == ["frame_000000.png", "frame_000002.png"]
    with pytest.raises(UserError):
        write_video(scene, path)


def test_demo_scenes_read():
    demo = REPO / "demo"
    if not demo.is_dir():
        pytest.skip("no demo folder")
    for name in ("tum_freiburg", "sacre_coeur", "buddha"):
        if not (demo / name).is_dir():
            continue
        s = read_scene(demo / name)
        assert s.has_cameras and s.num_views >= 10
        R = s.extrinsics[:, :, :3]
        np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-6)
        assert np.all(s.intrinsics[:, 0, 2] < s.widths) and np.all(s.intrinsics[:, 1, 2] < s.heights)
    tum = demo / "tum_freiburg"
    if tum.is_dir():
        a, b = read_colmap(tum), read_image_folder(tum)  # COLMAP model vs cameras_reference.json
        np.testing.assert_allclose(a.intrinsics, b.intrinsics, atol=1e-6)
        np.testing.assert_allclose(a.extrinsics, b.extrinsics, atol=1e-6)


# ---------------------------------------------------------------------------------------------- bad input
def test_folder_bad_inputs(scene, tmp_path):
    write_image_folder(scene, tmp_path / "f")
    (tmp_path / "f" / "images" / "zz_broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="zz_broken.png"):
        s = read_image_folder(tmp_path / "f")
    assert s.num_views == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        read_image_folder(tmp_path / "empty")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "a.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.warns(UserWarning), pytest.raises(UserError, match="no readable images"):
        read_image_folder(only_bad)


def test_colmap_missing_images(scene, tmp_path):
    write_colmap(scene, tmp_path / "c")
    (tmp_path / "c" / "images" / "001.png").unlink()
    with pytest.warns(UserWarning, match="001.png"):
        s = read_colmap(tmp_path / "c")
    assert s.names == ["000.png", "002.png"]
    with pytest.raises(UserError, match="001.png"):
        read_colmap(tmp_path / "c", strict=True)
    shutil.rmtree(tmp_path / "c" / "images")
    with pytest.warns(UserWarning), pytest.raises(UserError, match="no registered image"):
        read_colmap(tmp_path / "c")
    with pytest.raises(UserError, match="no COLMAP model"):
        read_colmap(tmp_path)


def test_video_that_cannot_be_decoded(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    with pytest.raises(UserError, match="broken.mp4"):
        read_video(bad)
    with pytest.raises(UserError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")


def test_transforms_missing_fields(scene, tmp_path):
    write_transforms_json(scene, tmp_path / "t")
    path = tmp_path / "t" / "transforms.json"
    data = json.loads(path.read_text())
    broken = json.loads(json.dumps(data))
    del broken["frames"][1]["transform_matrix"]
    path.write_text(json.dumps(broken))
    with pytest.raises(UserError, match=r"transforms.json: frames\[1\] \('images/001.png'\): lacks 'transform_matrix'"):
        read_transforms_json(path)
    broken = json.loads(json.dumps(data))
    for f in broken["frames"]:
        del f["fl_x"]
    path.write_text(json.dumps(broken))
    with pytest.raises(UserError, match="focal length"):
        read_transforms_json(path)
    path.write_text(json.dumps({"camera_angle_x": 1.0}))
    with pytest.raises(UserError, match="frames"):
        read_transforms_json(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="JSON"):
        read_transforms_json(path)
    broken = json.loads(json.dumps(data))
    broken["frames"][0]["file_path"] = "images/gone.png"
    path.write_text(json.dumps(broken))
    with pytest.warns(UserWarning, match="gone.png"):
        assert read_transforms_json(path).num_views == 2


def test_read_scene_dispatch_errors(tmp_path):
    with pytest.raises(UserError, match="no such"):
        read_scene(tmp_path / "nothing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserError):
        read_scene(tmp_path / "x.txt")


def test_overwrite_replaces_only_the_scene_entries(tmp_path):
    """Writing a scene over an existing folder with overwrite=True replaces its images/cameras but keeps files
    the writer does not own, and removes a linked entry without touching what it points to."""
    from mum.data.readers import write_image_folder
    from mum.data.scene import Scene

    rng = np.random.default_rng(0)
    scene = Scene(names=["a.png", "b.png"], widths=[10, 10], heights=[8, 8],
                  images=[rng.integers(0, 255, (8, 10, 3), dtype=np.uint8) for _ in range(2)])
    out = tmp_path / "scene"
    write_image_folder(scene, out)
    (out / "images" / "stale.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (out / "depth").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Exception, match="not empty"):
        write_image_folder(scene, out)
    write_image_folder(scene, out, overwrite=True)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.png", "b.png"]
    assert (out / "notes.txt").read_text() == "mine" and (outside / "keep.txt").read_text() == "keep"
    assert not (out / "depth").exists()
