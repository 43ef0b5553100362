"""mum-make-testset: writes re-readable scenes in every format, with a manifest; refuses to overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mum.data.cli import main
from mum.data.readers import read_scene
from mum.data.synthetic import TEST_SEEDS, SyntheticConfig, generate_scene


@pytest.mark.parametrize("fmt", ["folder", "colmap", "transforms", "video"])
def test_make_testset_formats(tmp_path, fmt, capsys):
    out = tmp_path / fmt
    args = [str(out), "--format", fmt, "--scenes", "2", "--views", "3", "--width", "48", "--height", "32", "--kinds", "room,object"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["seed"] for e in manifest["scenes"]] == [TEST_SEEDS[0], TEST_SEEDS[1]]
    entry = manifest["scenes"][0]
    folder = out / entry["folder"]
    scene = read_scene(folder / "video.avi" if fmt == "video" else folder)
    ref = generate_scene(entry["seed"], 3, 48, 32, SyntheticConfig(kinds=("room", "object")))
    assert scene.num_views == 3 and scene.has_cameras and scene.depths is not None and scene.masks is not None
    np.testing.assert_allclose(scene.extrinsics, ref.extrinsics, atol=1e-6)
    np.testing.assert_allclose(scene.intrinsics, ref.intrinsics, atol=1e-6)
    tol = 1e-3 if fmt == "transforms" else 0
    assert max(np.abs(a - b).max() for a, b in zip(scene.depths, ref.depths)) <= tol
    if fmt != "video":
        np.testing.assert_array_equal(scene.image(0), ref.images[0])
    assert main(args) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--contact-sheet", str(tmp_path / "sheet.png")]) == 0
    assert (tmp_path / "sheet.png").stat().st_size > 1000


def test_make_testset_bad_arguments(tmp_path, capsys):
    assert main([str(tmp_path / "x"), "--kinds", "castle"]) == 2
    assert "castle" in capsys.readouterr().err
    assert main([str(tmp_path / "x"), "--scenes", "0"]) == 2


def test_make_testset_keeps_the_old_set_when_the_new_one_fails(tmp_path, capsys):
    """Arguments are checked before anything is removed; a failing run leaves neither a half set nor an
    emptied folder; a contact sheet is not replaced without --overwrite."""
    out = tmp_path / "set"
    small = ["--scenes", "1", "--views", "2", "--width", "32", "--height", "24"]
    assert main([str(out), *small]) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main([str(out), *small, "--overwrite", "--fov", "80", "40"]) == 2
    assert main([str(out), *small, "--overwrite", "--photos", str(tmp_path / "none")]) == 2
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert main([str(tmp_path / "new"), *small, "--photos", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "new").exists()
    (tmp_path / "sheet.png").write_text("mine")
    assert main([str(tmp_path / "other"), *small, "--contact-sheet", str(tmp_path / "sheet.png")]) == 2
    assert (tmp_path / "sheet.png").read_text() == "mine" and not (tmp_path / "other").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "sheet.png"]  # no temporaries left
