"""Known cameras (``--cameras FILE``, ``--fix-poses``, EXIF focal lengths): the three file formats, every refusal
of a bad file (one ``error:`` line naming the entry), EXIF focal lengths (also of a rotated photo), and round
trips through the exports (cameras.json, COLMAP sparse/0, transforms.json) that give back the same cameras.

The network is the tiny random-weight model at 112 px: these tests are about the cameras, which come from the
file and SfM, not from the network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.exports import project_formats as export
from app.exports import colmap_nerfstudio as export_formats
from app.engine.camera_fusion import Similarity
from app.cli import main
from app.engine.known_cameras import exif_focal, known_cameras, read_cameras_file
from mum.errors import UserError
from tests.test_export import make_recon

ROOT = Path(__file__).resolve().parents[1]
TUM = ROOT / "demo" / "tum_freiburg" / "images"
TINY = ["--model", "mum-tiny", "--size", "112", "--quiet"]


def _cams(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())["images"]


def _image(path: Path, size=(48, 32), seed: int = 0, exif: Image.Exif | None = None) -> Path:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    im.save(path, **({"exif": exif} if exif is not None else {}))
    return path


# ------------------------------------------------------------------------------------------ formats
@pytest.fixture()
def exported(tmp_path):
    """One scene written as cameras.json, COLMAP sparse/0 (binary and text) and transforms.json."""
    recon = make_recon()
    recon.intrinsics[1, 1, 1] *= 1.01  # fx != fy: kept exactly
    recon.intrinsics[2, :2, 2] += [3.25, -1.5]  # an off-centre principal point
    cloud = recon.point_cloud()
    export.write_cameras_json(tmp_path / "cameras.json", recon)
    export_formats.write_colmap(tmp_path, recon, cloud)
    export_formats.write_transforms_json(tmp_path, recon, cloud)
    return recon, tmp_path


@pytest.mark.parametrize("which", ["cameras.json", "sparse/0", "transforms.json", "."])
def test_every_format_reads_back_the_exported_cameras(exported, which):
    recon, folder = exported
    entries = read_cameras_file(folder / which)
    prefix = "images/" if which == "transforms.json" else ""  # transforms.json: the file_path as written
    assert [e.name for e in entries] == [prefix + n for n in recon.names]
    for e, K, T, size in zip(entries, recon.intrinsics, recon.cam_from_world, recon.image_sizes):
        assert (e.width, e.height) == size
        np.testing.assert_allclose(e.K, K, rtol=0, atol=1e-9)
        np.testing.assert_allclose(e.cam_from_world, T, rtol=0, atol=1e-9)


def test_colmap_text_model_and_rescaled_resolution(exported, tmp_path):
    recon, folder = exported
    text = tmp_path / "text"
    text.mkdir()
    for name in ("cameras", "images", "points3D"):
        shutil.copy(folder / "sparse" / "0" / f"{name}.txt", text)
    entries = read_cameras_file(text)
    np.testing.assert_allclose(entries[0].K, recon.intrinsics[0], atol=1e-6)
    # a model made at half the resolution (COLMAP's images_2) fits the full-size image: K scaled about corners
    w, h = recon.image_sizes[0]
    half = dict(zip(recon.names, [(w // 2, h // 2)] * 3))
    data = json.loads((folder / "transforms.json").read_text())
    for frame in data["frames"]:
        frame["w"], frame["h"] = half[Path(frame["file_path"]).name]
        frame["fl_x"], frame["fl_y"], frame["cx"], frame["cy"] = (frame["fl_x"] / 2, frame["fl_y"] / 2,
                                                                   frame["cx"] / 2, frame["cy"] / 2)
    (tmp_path / "half.json").write_text(json.dumps(data))
    known = known_cameras(recon.names, recon.image_sizes, cameras_file=tmp_path / "half.json")
    np.testing.assert_allclose(known.K, recon.intrinsics, atol=1e-9)


def test_names_match_by_file_name_and_unnamed_views_fall_back(exported):
    recon, folder = exported
    data = json.loads((folder / "cameras.json").read_text())
    data["images"] = data["images"][:2]
    data["images"][0]["name"] = "some/folder/" + data["images"][0]["name"]  # a path: its file name matches
    (folder / "two.json").write_text(json.dumps(data))
    known = known_cameras(recon.names, recon.image_sizes, cameras_file=folder / "two.json")
    assert known.intrinsics_source == ["given", "given", ""]
    assert not known.posed.any()  # poses are kept only with fix_poses
    assert known_cameras(recon.names, recon.image_sizes, cameras_file=folder / "two.json", fix_poses=True).posed.tolist() \
        == [True, True, False]


# ------------------------------------------------------------------------------------------- errors
def _bad(entry: dict, case: str) -> None:
    if case == "unknown name":
        entry["name"] = "not_an_input.png"
    elif case == "wrong size":
        entry["width"] += 7
    elif case == "NaN in K":
        entry["K"][0][0] = float("nan")
    elif case == "infinite pose":
        entry["cam_from_world"][0][3] = float("inf")
    elif case == "non-orthonormal rotation":
        entry["cam_from_world"][0][0] *= 1.1
    elif case == "reflection":
        entry["cam_from_world"][0] = [-x for x in entry["cam_from_world"][0][:3]] + [entry["cam_from_world"][0][3]]
    elif case == "negative focal length":
        entry["K"][1][1] = -5.0
    elif case == "K of the wrong shape":
        entry["K"] = [[1, 0], [0, 1]]
    elif case == "missing K":
        del entry["K"]


@pytest.fixture()
def small_inputs(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        _image(imgs / f"v{i}.png", seed=i)
    recon = make_recon()
    recon.names = [f"v{i}.png" for i in range(3)]
    (w, h), recon.image_sizes = recon.image_sizes[0], [(48, 32)] * 3
    recon.intrinsics[:, 0] *= 48 / w  # the cameras of the 48 x 32 images
    recon.intrinsics[:, 1] *= 32 / h
    return imgs, recon


@pytest.mark.parametrize("case", ["unknown name", "wrong size", "NaN in K", "infinite pose", "non-orthonormal rotation",
                                  "reflection", "negative focal length", "K of the wrong shape", "missing K"])
def test_a_bad_cameras_json_ends_with_one_error_line_naming_the_entry(small_inputs, tmp_path, capsys, case):
    imgs, recon = small_inputs
    data = export.cameras_dict(recon)
    _bad(data["images"][1], case)
    (tmp_path / "cams.json").write_text(json.dumps(data))
    code = main([str(imgs), "-o", str(tmp_path / "out.ply"), "--cameras", str(tmp_path / "cams.json"), *TINY, "--fast"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and "images[1]" in err[0], err
    assert not (tmp_path / "out.ply").exists()


def test_bad_colmap_and_transforms_entries_are_named(small_inputs, tmp_path, capsys):
    imgs, recon = small_inputs
    cloud = recon.point_cloud()
    recon.names[2] = "elsewhere.png"
    export_formats.write_colmap(tmp_path / "colmap", recon, cloud)
    assert main([str(imgs), "-o", str(tmp_path / "a.ply"), "--cameras", str(tmp_path / "colmap" / "sparse" / "0"),
                 *TINY, "--fast"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'elsewhere.png'" in err[0] and "no input image" in err[0], err
    recon.names[2] = "v2.png"
    data = export_formats.transforms_dict(recon)
    M = np.array(data["frames"][0]["transform_matrix"])
    M[:3, :3] *= 2.0  # a scaled rotation
    data["frames"][0]["transform_matrix"] = M.tolist()
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    assert main([str(imgs), "-o", str(tmp_path / "b.ply"), "--cameras", str(tmp_path / "transforms.json"),
                 *TINY, "--fast"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'images/v0.png'" in err[0] and "orthonormal" in err[0], err


def test_fix_poses_needs_poses(small_inputs, tmp_path, capsys):
    imgs, recon = small_inputs
    data = export.cameras_dict(recon)
    for entry in data["images"]:
        del entry["cam_from_world"]
    (tmp_path / "k.json").write_text(json.dumps(data))
    for extra in (["--cameras", str(tmp_path / "k.json")], []):
        assert main([str(imgs), "-o", str(tmp_path / "o.ply"), *extra, "--fix-poses", *TINY, "--fast"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --fix-poses"), err
    # without --fix-poses a file of intrinsics only is fine
    assert main([str(imgs), "-o", str(tmp_path / "o.json"), "--cameras", str(tmp_path / "k.json"), *TINY, "--fast"]) == 0
    out = _cams(tmp_path / "o.json")
    assert [e["intrinsics_source"] for e in out] == ["given"] * 3
    for e, K in zip(out, recon.intrinsics):
        np.testing.assert_array_equal(e["K"], K)


# --------------------------------------------------------------------------------------------- EXIF
def _exif(orientation: int = 1, focal_mm=None, plane_res=None, unit=None, pixel_x=None, f35=None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    ifd = exif.get_ifd(0x8769)
    for tag, value in ((0x920A, focal_mm), (0xA20E, plane_res), (0xA210, unit), (0xA002, pixel_x), (0xA405, f35)):
        if value is not None:
            ifd[tag] = value
    return exif


def test_exif_focal_lengths(tmp_path):
    # 4.25 mm at 1000 px/cm = 100 px/mm → 425 px; PixelXDimension 80 for a 48 px wide file: half of that
    assert exif_focal(_image(tmp_path / "a.jpg", exif=_exif(focal_mm=4.25, plane_res=1000.0, unit=3))) \
        == pytest.approx(425.0)
    assert exif_focal(_image(tmp_path / "b.jpg", exif=_exif(focal_mm=4.25, plane_res=1000.0, unit=3, pixel_x=96))) \
        == pytest.approx(212.5)
    # 35 mm equivalent, COLMAP's rule: f35 / 35 · max(w, h)
    assert exif_focal(_image(tmp_path / "c.jpg", exif=_exif(f35=28))) == pytest.approx(28 / 35 * 48)
    # the physical focal length wins over the 35 mm one; rotation changes nothing in pixels
    assert exif_focal(_image(tmp_path / "d.jpg", exif=_exif(6, focal_mm=4.25, plane_res=1000.0, unit=3, f35=28))) \
        == pytest.approx(425.0)
    assert exif_focal(_image(tmp_path / "e.jpg")) is None  # no EXIF
    assert exif_focal(_image(tmp_path / "f.jpg", exif=_exif(focal_mm=4.25))) is None  # no sensor size
    assert exif_focal(_image(tmp_path / "g.jpg", exif=_exif(f35=100000))) is None  # implausible


def test_exif_focal_lengths_are_used_and_recorded(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    _image(imgs / "a.jpg", seed=1, exif=_exif(1, f35=28))
    _image(imgs / "b.jpg", seed=2, exif=_exif(6, f35=28))  # stored 48×32, shown 32×48
    _image(imgs / "c.jpg", seed=3)  # no EXIF: the network's
    assert main([str(imgs), "-o", str(tmp_path / "c.json"), *TINY, "--fast"]) == 0
    cams = _cams(tmp_path / "c.json")
    assert [c["intrinsics_source"] for c in cams] == ["exif", "exif", "network"]
    focal = 28 / 35 * 48
    np.testing.assert_allclose(cams[0]["K"], [[focal, 0, 23.5], [0, focal, 15.5], [0, 0, 1]])
    assert (cams[1]["width"], cams[1]["height"]) == (32, 48)
    np.testing.assert_allclose(cams[1]["K"], [[focal, 0, 15.5], [0, focal, 23.5], [0, 0, 1]])


# ---------------------------------------------------------------------------------- default path runs
@pytest.fixture(scope="module")
def tum_run(tmp_path_factory):
    """4 views of demo/tum_freiburg reconstructed on the default path into a folder."""
    root = tmp_path_factory.mktemp("tum")
    imgs = root / "imgs"
    imgs.mkdir()
    for p in sorted(TUM.iterdir())[:8:2]:
        shutil.copy(p, imgs / p.name)
    assert main([str(imgs), "-o", str(root / "out") + "/", *TINY]) == 0
    cams = _cams(root / "out" / "cameras.json")
    assert [c["pose_source"] for c in cams] == ["sfm"] * 4  # the round trips below need SfM cameras
    return imgs, root


def _assert_same_cameras(a: list[dict], b: list[dict], atol: float = 1e-6) -> None:
    assert [x["name"] for x in a] == [y["name"] for y in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(y["K"], x["K"], rtol=0, atol=atol)
        np.testing.assert_allclose(y["cam_from_world"], x["cam_from_world"], rtol=0, atol=atol)


@pytest.mark.parametrize("given", ["cameras.json", "sparse/0", "transforms.json"])
def test_round_trip_with_fixed_poses_gives_the_same_cameras(tum_run, given):
    imgs, root = tum_run
    out = root / f"rt_{Path(given).name}.json"
    assert main([str(imgs), "-o", str(out), "--cameras", str(root / "out" / given), "--fix-poses", *TINY]) == 0
    cams = _cams(out)
    assert {c["pose_source"] for c in cams} == {"given"} and {c["intrinsics_source"] for c in cams} == {"given"}
    _assert_same_cameras(_cams(root / "out" / "cameras.json"), cams)
    assert json.loads(out.read_text())["convention"].endswith("world frame and scale = the given cameras'")
    assert "given cameras" in json.loads(out.read_text())["convention"]


def test_views_without_a_pose_are_registered_to_the_given_ones(tum_run):
    imgs, root = tum_run
    # the given frame moved, turned and scaled: a similarity of the exported world
    similarity = Similarity(2.5, np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), np.array([0.3, -0.2, 1.0]))
    data = json.loads((root / "out" / "cameras.json").read_text())
    expected = similarity.apply_to_cameras(np.array([e["cam_from_world"] for e in data["images"]]))
    for k, entry in enumerate(data["images"]):
        entry["cam_from_world"] = expected[k].tolist()
        if k % 2:
            del entry["cam_from_world"]
    (root / "half.json").write_text(json.dumps(data))
    out = root / "half_out.json"
    assert main([str(imgs), "-o", str(out), "--cameras", str(root / "half.json"), "--fix-poses", *TINY]) == 0
    cams = _cams(out)
    assert [c["pose_source"] for c in cams] == ["given", "sfm", "given", "sfm"]
    for k, (c, T) in enumerate(zip(cams, expected)):
        got = np.array(c["cam_from_world"])
        if k % 2 == 0:
            np.testing.assert_array_equal(got, T)
        else:  # registered by SfM to the given poses (the frame is the file's moved one, not the first camera's): close to where the full run put it (in the new frame)
            angle = np.degrees(np.arccos(np.clip((np.trace(got[:3, :3] @ T[:3, :3].T) - 1) / 2, -1, 1)))
            centre, ref = -got[:3, :3].T @ got[:3, 3], -T[:3, :3].T @ T[:3, 3]
            baseline = np.linalg.norm(-expected[0][:3, :3].T @ expected[0][:3, 3] - (-expected[2][:3, :3].T @ expected[2][:3, 3]))
            assert angle < 1.0 and np.linalg.norm(centre - ref) < 0.1 * baseline, (angle, centre, ref)


def test_given_intrinsics_are_kept_and_sfm_gives_the_poses(tum_run):
    imgs, root = tum_run
    out = root / "intrinsics.json"
    data = json.loads((root / "out" / "cameras.json").read_text())
    for entry in data["images"]:
        entry["K"][1][1] *= 1.002  # fx != fy, as a calibration may give
    (root / "k.json").write_text(json.dumps(data))
    assert main([str(imgs), "-o", str(out), "--cameras", str(root / "k.json"), *TINY]) == 0
    cams = _cams(out)
    assert [c["pose_source"] for c in cams] == ["sfm"] * 4 and [c["intrinsics_source"] for c in cams] == ["given"] * 4
    for c, e in zip(cams, data["images"]):
        np.testing.assert_array_equal(c["K"], e["K"])
        R = np.array(c["cam_from_world"])[:3, :3] @ np.array(e["cam_from_world"])[:3, :3].T  # same world frame
        assert np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))) < 1.0


def test_fast_with_fixed_poses_keeps_them(tum_run):
    imgs, root = tum_run
    out = root / "fast.json"
    assert main([str(imgs), "-o", str(out), "--cameras", str(root / "out" / "cameras.json"), "--fix-poses", *TINY,
                 "--fast"]) == 0
    cams = _cams(out)
    assert {c["pose_source"] for c in cams} == {"given"}
    _assert_same_cameras(_cams(root / "out" / "cameras.json"), cams, atol=0)


def test_unknown_cameras_file(tmp_path, capsys):
    with pytest.raises(UserError, match="no such cameras file"):
        read_cameras_file(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text('{"something": 1}')
    with pytest.raises(UserError, match="not a cameras file"):
        read_cameras_file(tmp_path / "x.json")


# ------------------------------------------------------------------------------------------------ SfM
def test_sfm_holds_given_intrinsics_and_shares_cameras_by_what_is_known():
    from mum.io import load_views
    from app.engine.known_cameras import KnownCameras
    from mum.geometry import centred_intrinsics
    from app.engine.sfm import _camera_groups, run_sfm

    names, arrays = load_views(sorted(TUM.iterdir())[:8:2])
    known = KnownCameras.empty(4)
    K = np.array([[560.0, 0, 322.0], [0, 560.0, 236.0], [0, 0, 1]])  # ~5 % off the reference, off-centre
    for i in (0, 1):
        known.K[i], known.intrinsics_source[i] = K, "given"
    known.K[2], known.intrinsics_source[2] = centred_intrinsics(500.0, 640, 480), "exif"
    groups = sorted((sorted(g), single) for g, single in _camera_groups(arrays, known))
    assert groups == [([0, 1], True), ([2, 3], False)]  # given K shared; the EXIF view and the unknown one alone
    assert _camera_groups(arrays, None) == [([0, 1, 2, 3], True)]
    sfm = run_sfm(arrays, np.full(4, 520.0), known=known)
    assert sfm.registered.all()
    for i in (0, 1):  # held by every bundle adjustment, not merely overwritten afterwards
        np.testing.assert_allclose(sfm.intrinsics[i], K, atol=1e-6)
    assert abs(sfm.intrinsics[2, 0, 0] - 500.0) > 1e-3  # an EXIF focal length is a prior that SfM refines


def test_entries_of_inputs_left_out_by_sampling_are_not_an_error(small_inputs, tmp_path):
    imgs, recon = small_inputs
    export.write_cameras_json(tmp_path / "cams.json", recon)
    assert main([str(imgs), "-o", str(tmp_path / "o.json"), "--cameras", str(tmp_path / "cams.json"), "--stride", "2",
                 "--fix-poses", *TINY, "--fast"]) == 0
    cams = _cams(tmp_path / "o.json")
    assert [c["name"] for c in cams] == ["v0.png", "v2.png"]
    assert [c["pose_source"] for c in cams] == ["given", "given"]
    for c, i in zip(cams, (0, 2)):
        np.testing.assert_array_equal(c["cam_from_world"], recon.cam_from_world[i])


def test_one_given_pose_anchors_the_sfm_cameras(tum_run):
    imgs, root = tum_run
    data = json.loads((root / "out" / "cameras.json").read_text())
    full = [np.array(e["cam_from_world"]) for e in data["images"]]
    turn = np.eye(4)
    turn[:3, :3] = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # the one given pose: turned by 90°, moved
    turn[:3, 3] = [1.0, 2.0, 3.0]
    for k, entry in enumerate(data["images"]):
        if k:
            del entry["cam_from_world"]
        else:
            entry["cam_from_world"] = (full[0] @ turn).tolist()
    (root / "one.json").write_text(json.dumps(data))
    out = root / "one_out.json"
    assert main([str(imgs), "-o", str(out), "--cameras", str(root / "one.json"), "--fix-poses", *TINY]) == 0
    cams = _cams(out)
    assert [c["pose_source"] for c in cams] == ["given", "sfm", "sfm", "sfm"]
    np.testing.assert_array_equal(cams[0]["cam_from_world"], full[0] @ turn)
    for c, T in zip(cams[1:], full[1:]):  # SfM's cameras moved rigidly with the given one
        R = np.array(c["cam_from_world"])[:3, :3] @ (T @ turn)[:3, :3].T
        assert np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))) < 1.0


@pytest.mark.parametrize("k", [0.0, 0.05])
def test_lens_distortion_in_a_colmap_model_is_dropped_with_a_note(tmp_path, k):
    import pycolmap

    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model="SIMPLE_RADIAL", width=48, height=32,
                                                    params=[40.0, 24.0, 16.0, k], camera_id=1))
    rec.add_image_with_trivial_frame(pycolmap.Image(name="v0.png", camera_id=1, image_id=1), pycolmap.Rigid3d())
    rec.write_text(str(tmp_path))
    lines = []
    known = known_cameras(["v0.png"], [(48, 32)], cameras_file=tmp_path, fix_poses=True, say=lines.append)
    np.testing.assert_allclose(known.K[0], [[40.0, 0, 23.5], [0, 40.0, 15.5], [0, 0, 1]])  # the pinhole part
    np.testing.assert_allclose(known.cam_from_world[0], np.eye(4))
    assert any("models lens distortion" in line for line in lines) == (k != 0)


def test_a_name_that_ends_several_inputs_says_so():
    """``x y.png`` with inputs ``a b/x y.png`` and ``c/x y.png``: it names both, which the message says (it used
    to say that no input had the name); a longer path picks one."""
    from app.engine.known_cameras import CameraEntry, match_entries

    names, sizes = ["a b/x y.png", "c/x y.png", "d.png"], [(48, 32)] * 3
    entry = CameraEntry("x y.png", 48, 32, np.eye(3), None, "images[0]")
    with pytest.raises(UserError, match=r"images\[0\]: 2 input images end with this name \(a b/x y.png, c/x y.png\)"):
        match_entries([entry], names, sizes)
    longer = CameraEntry("c/x y.png", 48, 32, np.eye(3), None, "images[0]")
    assert list(match_entries([longer], names, sizes)) == [1]
    with pytest.raises(UserError, match="no input image has this name"):
        match_entries([CameraEntry("e.png", 48, 32, np.eye(3), None, "images[0]")], names, sizes)


def _text_model(folder: Path, out: Path) -> Path:
    out.mkdir()
    for f in (folder / "sparse" / "0").glob("*.txt"):
        (out / f.name).write_text(f.read_text())
    return out


def test_a_zero_rotation_quaternion_is_refused(exported, tmp_path):
    """COLMAP text with ``QW QX QY QZ = 0 0 0 0`` for one frame: pycolmap keeps it, and its matrix is the identity
    (a view silently given the world's orientation); refused by the quaternion's norm."""
    recon, folder = exported
    text = _text_model(folder, tmp_path / "zero")
    lines = (text / "frames.txt").read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("2 "))
    fields = lines[k].split()
    fields[2:6] = ["0", "0", "0", "0"]  # FRAME_ID RIG_ID QW QX QY QZ ...
    lines[k] = " ".join(fields)
    (text / "frames.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=f"image '{recon.names[1]}': its rotation quaternion has norm 0"):
        read_cameras_file(text)
    assert len(read_cameras_file(_text_model(folder, tmp_path / "intact"))) == len(recon.names)


def test_images_txt_without_its_points_lines_is_refused(exported, tmp_path):
    """Every image's second line (its 2D points) left out: pycolmap reads every second image as the points of
    the one before and loses its camera, without a word; refused, naming the line."""
    recon, folder = exported
    text = _text_model(folder, tmp_path / "text")
    lines = [line for line in (text / "images.txt").read_text().splitlines() if not line.startswith("#")]
    images = lines[0::2]  # each image's first line
    assert len(images) == len(recon.names) >= 3
    (text / "images.txt").write_text("\n".join(images) + "\n")
    with pytest.raises(UserError, match=r"images.txt: line 2 is not the 2D points"):
        read_cameras_file(text)


@pytest.mark.parametrize("focal", [{"fl_x": 60.0, "fl_y": 60.0}, {"camera_angle_x": 2 * np.arctan(24 / 60.0)}],
                         ids=["fl_x", "camera_angle_x"])
def test_a_transforms_json_without_sizes_takes_them_from_the_inputs(tmp_path, focal):
    """A ``transforms.json`` without ``w``/``h`` kept apart from its images (the web app keeps each upload in its
    own folder): its frames took their size from an image beside the file, and failed ('its image is not
    readable') although the image was an input. The matched input's size serves; the focal length follows."""
    from app.engine.known_cameras import known_cameras

    names, sizes = ["t0.jpg", "t1.jpg", "t2.jpg"], [(48, 32)] * 3
    frames = [{"file_path": f"images/{n}", "transform_matrix": np.eye(4).tolist()} for n in names[:2]]
    (tmp_path / "cams").mkdir()
    (tmp_path / "cams" / "transforms.json").write_text(json.dumps({**focal, "cx": 24.0, "cy": 16.0,
                                                                    "frames": frames}))
    known = known_cameras(names, sizes, cameras_file=tmp_path / "cams" / "transforms.json")
    assert known.intrinsics_source == ["given", "given", ""]
    np.testing.assert_allclose(known.K[0], [[60.0, 0, 23.5], [0, 60.0, 15.5], [0, 0, 1]], atol=1e-9)
    with pytest.raises(UserError, match="has no 'w'/'h' and its image is not readable"):
        known_cameras(["x.jpg"], [(48, 32)], cameras_file=tmp_path / "cams" / "transforms.json")
