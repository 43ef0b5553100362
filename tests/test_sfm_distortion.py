"""SfM's guard against a degenerate lens distortion (``SfmOptions.max_corner_distortion``): how far a camera's
distortion moves the image corners, and the mapping without distortion that replaces an implausible model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUM = ROOT / "demo" / "tum_freiburg" / "images"


def _reconstruction_with(model: str, params: list[float], width: int = 640, height: int = 480):
    import pycolmap

    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model=model, width=width, height=height, params=params,
                                                    camera_id=1))
    return rec


@pytest.mark.parametrize("k", [0.7, 0.05, -0.2])
def test_corner_distortion_is_the_radial_models_displacement_of_the_corner(k):
    from app.engine.sfm import corner_distortion

    f, cx, cy, w, h = 600.0, 320.0, 240.0, 640, 480
    # SIMPLE_RADIAL maps an undistorted normalised radius u to u (1 + k u²); the corner's distorted radius is its
    # pinhole radius p, so u solves k u³ + u - p = 0 (the real root nearest p); the share moved is (p - u) / p
    p = np.hypot(cx, cy) / f
    roots = np.roots([k, 0.0, 1.0, -p])
    u = min((r.real for r in roots if abs(r.imag) < 1e-9 and r.real > 0), key=lambda r: abs(r - p))
    expected = abs(p - u) / p
    got = corner_distortion(_reconstruction_with("SIMPLE_RADIAL", [f, cx, cy, k], w, h))
    assert got == pytest.approx(expected, rel=1e-6)
    assert corner_distortion(_reconstruction_with("SIMPLE_PINHOLE", [f, cx, cy], w, h)) == 0.0


def test_an_implausible_distortion_is_mapped_again_without_it_and_the_better_model_kept():
    """Forced (``max_corner_distortion`` below any model's): the pinhole mapping runs on the same matches and
    registers every view; it is kept exactly when it fits better (lower mean reprojection error)."""
    from mum.io import load_views
    from app.engine.sfm import SfmOptions, reprojection_errors, run_sfm

    _, arrays = load_views(sorted(TUM.iterdir())[:8:2])
    plain = run_sfm(arrays, np.full(4, 520.0), options=SfmOptions(max_corner_distortion=np.inf))
    lines: list[str] = []
    forced = run_sfm(arrays, np.full(4, 520.0), options=SfmOptions(max_corner_distortion=-1.0), say=lines.append)
    assert any("mapping again without it" in line for line in lines)
    assert plain.registered.all() and forced.registered.all()
    assert not plain.distortion_dropped and plain.corner_distortion > 0
    if forced.distortion_dropped:
        assert forced.corner_distortion == 0.0
    else:
        assert forced.corner_distortion == pytest.approx(plain.corner_distortion)
    # either way the cameras agree: the same matches, the same scene
    centres = lambda r: np.einsum("sji,sj->si", r.cam_from_world[:, :3, :3], -r.cam_from_world[:, :3, 3])  # noqa: E731
    a, b = centres(plain), centres(forced)
    a, b = a - a.mean(0), b - b.mean(0)
    cos = (a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cos > 0.99
    assert np.median(reprojection_errors(forced.cam_from_world, forced.intrinsics, forced.points,
                                         forced.observations)) < 1.0


def test_the_sequence_paths_keyframes_keep_the_pinhole_model_when_the_distortion_is_implausible():
    """``pinhole_when_implausible`` (the sequence path's keyframe SfM, whose map is one pinhole camera): the
    pinhole mapping is kept although the distorted model fits these four TUM views better (kept without the
    option)."""
    from mum.io import load_views
    from app.engine.sfm import SfmOptions, run_sfm

    _, arrays = load_views(sorted(TUM.iterdir())[:8:2])
    fits_better = run_sfm(arrays, np.full(4, 520.0), options=SfmOptions(max_corner_distortion=-1.0))
    pinhole = run_sfm(arrays, np.full(4, 520.0), options=SfmOptions(max_corner_distortion=-1.0,
                                                                    pinhole_when_implausible=True))
    assert not fits_better.distortion_dropped and fits_better.corner_distortion > 0
    assert pinhole.distortion_dropped and pinhole.corner_distortion == 0.0 and pinhole.registered.all()


@pytest.mark.slow
def test_a_held_out_walk_whose_shared_radial_camera_degenerates_gets_the_right_cameras(tmp_path):
    """The data engine's held-out scene 1100000004 (a room walk, 12 pinhole views in two groups): the shared
    ``SIMPLE_RADIAL`` camera converges to k ≈ 0.7 and wrong poses (AUC@30 0 over the 7 views it registers); the
    guard's pinhole mapping registers the same 7 views with the right poses (AUC@30 ≈ 31.8, all 21 of their
    pairs right out of 66)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.real_scenes import load_scene, pose_aucs
    from mum.io import load_views
    from app.engine.sfm import SfmOptions, run_sfm

    subprocess.run([sys.executable, "-m", "mum.data.cli", str(tmp_path), "--format", "colmap", "--scenes", "1",
                    "--views", "12", "--width", "640", "--height", "480", "--start", "4", "--kinds", "room,object"],
                   check=True, capture_output=True)
    scene = load_scene(tmp_path / "scene_1100000004")
    _, arrays = load_views([str(scene.root / "images" / n) for n in scene.names])
    focal = np.full(len(arrays), 1.2 * 640)
    guarded = run_sfm(arrays, focal)
    assert guarded.distortion_dropped
    assert pose_aucs(guarded.cam_from_world, scene.extrinsics)[0] > 25
    unguarded = run_sfm(arrays, focal, options=SfmOptions(max_corner_distortion=np.inf))
    assert pose_aucs(unguarded.cam_from_world, scene.extrinsics)[0] < 10
