"""Bundle-adjustment refinement improves perturbed cameras on a real scene with reference poses, and falls back
to COLMAP's incremental mapping when the predicted cameras are too far off to triangulate anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.io import load_views
from app.reconstruction import Reconstruction

SCENE = Path(__file__).resolve().parents[1] / "demo" / "tum_freiburg"


def _rotation_error_deg(A: np.ndarray, B: np.ndarray) -> float:
    cos = (np.trace(A[:3, :3] @ B[:3, :3].T) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def _scene(views: int = 6):
    """Names, images, reference cam_from_world (world = first camera) and intrinsics of the first views."""
    ref = json.loads((SCENE / "cameras_reference.json").read_text())["cameras"]
    names, arrays = load_views(sorted((SCENE / "images").iterdir())[:views])  # neighbouring frames overlap well
    T_ref = np.stack([np.array(ref[n]["extrinsic"], dtype=np.float64) for n in names])
    T_ref = T_ref @ np.linalg.inv(T_ref[0])  # world = first camera, as predictions are
    # COLMAP's principal point is corner-based; the project's is centre-based
    K_ref = np.stack([np.array(ref[n]["intrinsic"], dtype=np.float64) for n in names])
    K_ref[:, :2, 2] -= 0.5
    return names, arrays, T_ref, K_ref


def _recon(names, arrays, T, K) -> Reconstruction:
    S, h, w = len(names), 12, 16
    return Reconstruction(
        names=names, image_sizes=[(a.shape[1], a.shape[0]) for a in arrays], cam_from_world=T.copy(),
        intrinsics=K.copy(),
        depth=np.ones((S, h, w), np.float32), depth_conf=np.ones((S, h, w), np.float32),
        world_points=np.zeros((S, h, w, 3), np.float32), world_points_conf=np.ones((S, h, w), np.float32),
        colors=np.zeros((S, h, w, 3), np.uint8), network_intrinsics=np.tile(np.eye(3), (S, 1, 1)),
    )


def _rotate(T: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Every camera but the first turned by ``degrees`` about a random axis."""
    T = T.copy()
    for i in range(1, len(T)):
        angle = np.radians(degrees)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        Kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        T[i, :3, :3] = (np.eye(3) + np.sin(angle) * Kx + (1 - np.cos(angle)) * Kx @ Kx) @ T[i, :3, :3]
    return T


def test_refine_from_useless_cameras_falls_back_to_colmap_mapping():
    """Cameras 40° off triangulate nothing; the refinement then starts from COLMAP's own incremental model
    and still returns good rotations for every view."""
    pytest.importorskip("pycolmap")
    from app.refine import refine_cameras

    names, arrays, T_ref, K_ref = _scene()
    T_bad = _rotate(T_ref, 40.0, np.random.default_rng(1))
    recon = _recon(names, arrays, T_bad, K_ref)
    report = refine_cameras(recon, arrays)
    assert report["before"]["initialised_by"] == "incremental mapping" and report["registered_views"] == len(names)
    relative = [_rotation_error_deg(a, b) for a, b in zip(recon.cam_from_world[1:], T_ref[1:])]
    assert max(relative) < 3.0, relative


def test_refine_reduces_pose_error():
    pytest.importorskip("pycolmap")
    from app.refine import refine_cameras

    names, arrays, T_ref, K_ref = _scene()
    T_noisy = _rotate(T_ref, 1.0, np.random.default_rng(0))
    recon = _recon(names, arrays, T_noisy, K_ref)
    report = refine_cameras(recon, arrays)
    assert "initialised_by" not in report["before"]  # 1° off: the predicted cameras triangulate
    assert report["after"]["reprojection_px"] < report["before"]["reprojection_px"]
    assert report["after"]["reprojection_px"] < 1.5
    before = np.mean([_rotation_error_deg(a, b) for a, b in zip(T_noisy[1:], T_ref[1:])])
    after = np.mean([_rotation_error_deg(a, b) for a, b in zip(recon.cam_from_world[1:], T_ref[1:])])
    assert after < 0.5 * before
    np.testing.assert_allclose(recon.cam_from_world[0], np.eye(4), atol=1e-9)


def test_native_log_lines_leave_the_terminal_alone(tmp_path, capfd):
    """Native writes to file descriptor 2 (COLMAP's glog) go to the log; Python's stderr still reaches the user."""
    import os
    import sys

    from app.native_stderr import native_stderr_to

    log = tmp_path / "colmap.log"
    with native_stderr_to(log):
        os.write(2, b"I20261202 bundle_adjustment.cc:46] === Global bundle adjustment ===\n")
        print("refine: progress for the user", file=sys.stderr)
    print("after", file=sys.stderr)
    err = capfd.readouterr().err
    assert "bundle_adjustment.cc" in log.read_text() and "bundle_adjustment.cc" not in err
    assert "refine: progress for the user" in err and "after" in err
