"""``mum-features``: encoder features of an image folder saved as .npz + PCA picture, without clobbering files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.features import main

DEMO = Path(__file__).resolve().parents[1] / "demo" / "tum_freiburg" / "images"


def test_features_npz_and_picture(tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert main([str(DEMO), "-o", str(out), "--preset", "tiny", "--size", "64", "--layers", "1", "--device", "cpu"]) == 0
    data = np.load(out)
    n = len(list(DEMO.iterdir()))
    S, P, C = data["patch_tokens"].shape
    assert S == n and C == 192 and P == int(np.prod(data["grid_hw"]))
    assert data["layer_1"].shape == (S, P, C) and data["cls_token"].shape == (S, C)
    assert np.isfinite(data["patch_tokens"]).all()
    assert (tmp_path / "f.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npz", "f.png"]  # no temporaries left


def test_features_refuse_to_overwrite_the_picture_too(tmp_path, capsys):
    out = tmp_path / "f.npz"
    (tmp_path / "f.png").write_text("my picture")
    assert main([str(DEMO), "-o", str(out), "--preset", "tiny", "--size", "64", "--device", "cpu"]) != 0
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "f.png").read_text() == "my picture" and not out.exists()
