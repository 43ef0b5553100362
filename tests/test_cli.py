"""`mum-reconstruct` end to end on demo images with a tiny random-weight model: every export is produced
and re-read by its ecosystem's reader; user errors end with one line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

DEMO = Path(__file__).resolve().parents[1] / "demo" / "tum_freiburg" / "images"
# the network alone (--fast): these tests are about the command and its exports, not the SfM path
FAST = ["--model", "mum-tiny", "--size", "112", "--max-frames", "3", "--quiet", "--fast"]


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "scene"
    assert main([str(DEMO), "-o", str(out), *FAST, "--conf-percentile", "20"]) == 0
    return out


def test_folder_gets_every_export(out_dir):
    names = {p.name for p in out_dir.iterdir()}
    assert names == {"scene.ply", "scene.glb", "cameras.json", "depth", "sparse", "transforms.json"}


def test_exports_agree_with_each_other(out_dir):
    import pycolmap
    import trimesh
    from plyfile import PlyData

    cams = json.loads((out_dir / "cameras.json").read_text())["images"]
    assert len(cams) == 3 and all((c["width"], c["height"]) == (640, 480) for c in cams)
    ply = PlyData.read(str(out_dir / "scene.ply"))["vertex"]
    # 20th percentile of confidence over 3 views of 112x84 px keeps about 80 % of the pixels
    assert 0.7 * 3 * 112 * 84 < len(ply) <= 0.85 * 3 * 112 * 84
    assert {p.name for p in ply.properties} == {"x", "y", "z", "red", "green", "blue", "confidence"}
    glb = trimesh.load(str(out_dir / "scene.glb"))
    clouds = [g for g in glb.geometry.values() if isinstance(g, trimesh.PointCloud)]
    assert len(clouds[0].vertices) == len(ply) and len(glb.geometry) == 1 + 3
    rec = pycolmap.Reconstruction(str(out_dir / "sparse" / "0"))
    assert rec.num_images() == 3 and rec.num_points3D() == len(ply)
    for c in cams:
        image = rec.find_image_with_name(c["name"])
        np.testing.assert_allclose(image.cam_from_world().matrix(), np.array(c["cam_from_world"])[:3], atol=1e-6)
        fx, fy, cx, cy = rec.cameras[image.camera_id].params
        np.testing.assert_allclose([fx, fy, cx - 0.5, cy - 0.5], np.array(c["K"])[[0, 1, 0, 1], [0, 1, 2, 2]], rtol=1e-6)
    frames = json.loads((out_dir / "transforms.json").read_text())["frames"]
    assert [Path(f["file_path"]).name for f in frames] == [c["name"] for c in cams]
    assert len(list((out_dir / "depth").glob("*.depth.npy"))) == 3
    depth = np.load(next((out_dir / "depth").glob("*.depth.npy")))
    assert depth.shape == (480, 640)


def test_single_file_outputs_and_overwrite(tmp_path, capsys):
    ply = tmp_path / "s.ply"
    assert main([str(DEMO), "-o", str(ply), *FAST]) == 0
    first = ply.read_bytes()
    assert main([str(DEMO), "-o", str(ply), *FAST]) == 2
    assert "already exists" in capsys.readouterr().err and ply.read_bytes() == first
    assert main([str(DEMO), "-o", str(ply), *FAST, "--overwrite", "--max-frames", "2"]) == 0
    assert ply.read_bytes() != first
    cams = tmp_path / "cameras.json"
    assert main([str(DEMO), "-o", str(cams), *FAST]) == 0
    assert len(json.loads(cams.read_text())["images"]) == 3


def test_json_summary(tmp_path, capsys):
    assert main([str(DEMO), "-o", str(tmp_path / "x.glb"), "--model", "mum-tiny", "--size", "112", "--max-frames", "2",
                 "--json", "--fast"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["views"] == 2 and summary["points"] > 0 and summary["outputs"] == [str(tmp_path / "x.glb")]
    assert summary["mode"] == "fast" and summary["cameras"] == {"given": 0, "sfm": 0, "network": 2} and "sfm" not in summary
    assert {"median_depth_disagreement", "cloud_median_depth_disagreement"} <= set(summary["consistency"])


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing", "no such file"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no images"),
        (lambda d: (d / "bad.jpg").write_bytes(b"garbage") and d / "bad.jpg", "not a readable image"),
        (lambda d: (d / "clip.mp4").write_bytes(b"\x00" * 64) and d / "clip.mp4", "video"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, make_input, message):
    target = make_input(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", str(target), "-o", str(tmp_path / "o.ply"), *FAST],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not (tmp_path / "o.ply").exists()


def test_bad_weights_and_model(tmp_path, capsys):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x00" * 10)
    assert main([str(DEMO), "-o", str(tmp_path / "o.ply"), *FAST, "--weights", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert main([str(DEMO), "-o", str(tmp_path / "o.ply"), "--model", "no-such-model", "--quiet"]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_help_is_complete(capsys):
    from app.cli import build_parser

    parser = build_parser()
    assert all(action.help for action in parser._actions)
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and text.count("mum-reconstruct ") >= 4 and "--overwrite" in text


def test_nonpositive_numbers_are_user_errors(tmp_path, capsys):
    assert main([str(DEMO), "-o", str(tmp_path / "o.ply"), *FAST, "--stride", "0"]) == 2
    assert "--stride must be at least 1" in capsys.readouterr().err


def test_cameras_alone_skip_the_dense_stage_and_keep_the_cameras(tmp_path, capsys):
    """``-o cameras.json`` without ``--dense``: no multi-view stereo (nothing it makes is written), the same
    cameras as with it."""
    args = ["--model", "mum-tiny", "--size", "112", "--max-frames", "8", "--json"]
    assert main([str(DEMO), "-o", str(tmp_path / "a.json"), *args]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main([str(DEMO), "-o", str(tmp_path / "b.json"), *args, "--dense", "stereo"]) == 0
    with_stereo = json.loads(capsys.readouterr().out)
    assert "stereo" in with_stereo and "stereo" not in alone
    assert alone["cameras"]["sfm"] == 8
    first, second = (json.loads((tmp_path / f"{n}.json").read_text())["images"] for n in "ab")
    assert [c["cam_from_world"] for c in first] == [c["cam_from_world"] for c in second]
    assert [c["K"] for c in first] == [c["K"] for c in second]
