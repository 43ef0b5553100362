"""The default path end to end on real photos with reference cameras (bundled model + SfM + dense fitting),
and its fall-backs: 1 view, 2 views, textureless and unrelated photos give a result and at most one warning
line, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import heads
from mum.io import load_views
from app.engine.pipeline import reconstruct_arrays
from app.engine.options import CameraOptions, MatchingOptions, PipelineOptions
from app.engine.sfm import reprojection_errors
from heads.metrics import pose_auc, relative_pose_errors

ROOT = Path(__file__).resolve().parents[1]
TUM = ROOT / "demo" / "tum_freiburg"


@pytest.fixture(scope="module")
def model():
    return heads.load_model(heads.DEFAULT_MODEL, device="cpu")


def _reference(scene: Path, names: list[str]) -> np.ndarray:
    ref = json.loads((scene / "cameras_reference.json").read_text())["cameras"]
    return np.stack([np.array(ref[n]["extrinsic"], dtype=np.float64)[:3] for n in names])


def _auc30(cams: np.ndarray, ref: np.ndarray) -> float:
    rra, rta = relative_pose_errors(torch.from_numpy(cams[:, :3]), torch.from_numpy(ref))
    return 100 * float(pose_auc(rra, rta, 30))


@pytest.fixture(scope="module")
def tum_default(model):
    paths = sorted((TUM / "images").iterdir())[:12:2]  # 6 views, every other frame
    names, arrays = load_views(paths)
    warnings: list[str] = []
    options = PipelineOptions(cameras=CameraOptions(native_log="/dev/null"))
    recon = reconstruct_arrays(model, names, arrays, options=options, warn=warnings.append)
    return names, arrays, recon, warnings


def test_default_path_gives_reference_cameras(tum_default):
    names, _, recon, warnings = tum_default
    assert warnings == [] and recon.pose_origins() == ["sfm"] * len(names)
    assert _auc30(recon.cam_from_world, _reference(TUM, names)) > 90  # the network alone: ~0
    np.testing.assert_allclose(recon.cam_from_world[0], np.eye(4), atol=1e-9)  # world = first camera
    np.testing.assert_allclose(recon.intrinsics[:, 0, 0], recon.intrinsics[:, 1, 1])  # square pixels
    ref_K = json.loads((TUM / "cameras_reference.json").read_text())["cameras"][names[0]]["intrinsic"]
    assert recon.intrinsics[0, 0, 0] == pytest.approx(ref_K[0][0], rel=0.05)


def test_reported_figures_describe_the_exported_cameras(tum_default):
    _, _, recon, _ = tum_default
    sfm = recon.meta["sfm"]
    assert sfm["registered_views"] == 6 and sfm["matching"] == "exhaustive" and sfm["points3D"] > 100
    cloud = recon.sfm_points
    # re-project the exported SfM points into the exported cameras: each point's first observation
    errors = reprojection_errors(recon.cam_from_world, recon.intrinsics, cloud.xyz.astype(np.float64),
                                 [(np.nonzero(cloud.view == i)[0], cloud.pixel[cloud.view == i]) for i in range(6)])
    assert np.median(errors) < 2.0 and sfm["reprojection_px_mean"] < 2.0


def test_dense_maps_agree_across_views_and_are_fine(tum_default, model):
    names, arrays, recon, _ = tum_default
    w, h = recon.depth_size
    assert max(w, h) >= 256 and recon.valid.shape == recon.depth.shape
    fast = reconstruct_arrays(model, names, arrays, options=PipelineOptions(fast=True))
    default = recon.meta["consistency"]["median_depth_disagreement"]
    assert default < fast.meta["consistency"]["median_depth_disagreement"]
    # stereo keeps the pixels another view confirms (a quarter of them on these six frames: the desk, not the
    # blank walls and the floor in shadow); the exported maps are complete (the network fills the rest)
    assert 0.15 < recon.meta["consistency"]["pixels_kept"] <= 1.0
    assert np.isfinite(recon.depth).mean() > 0.99
    cloud = recon.point_cloud()
    assert len(cloud) == int(recon.valid.sum()) + len(recon.sfm_points)
    # the dense depth meets the SfM points where each view sees them (the network's own is ~20 % off there)
    from app.engine.dense_fit import sample_bilinear

    sfm_xyz = recon.sfm_points.xyz.astype(np.float64)
    residuals = []
    for i in range(recon.num_views):
        x = sfm_xyz @ recon.cam_from_world[i, :3, :3].T + recon.cam_from_world[i, :3, 3]
        uvw = x @ recon.network_intrinsics[i].T
        uv = uvw[:, :2] / uvw[:, 2:]
        d = sample_bilinear(recon.depth[i].astype(np.float64), uv)
        seen = np.isfinite(d) & (x[:, 2] > 0)
        residuals.append(np.abs(d[seen] - x[seen, 2]) / x[seen, 2])
    assert np.median(np.concatenate(residuals)) < 0.1


def test_network_guided_matching_path(model):
    """Beyond ``MatchingOptions.exhaustive_up_to`` views only retrieval/overlap/sequential pairs are matched; the cameras
    still come from SfM."""
    names, arrays = load_views(sorted((TUM / "images").iterdir())[:8])
    matching = MatchingOptions(exhaustive_up_to=4, retrieval_neighbours=2, overlap_neighbours=2, sequential_window=1)
    options = PipelineOptions(cameras=CameraOptions(matching=matching, native_log="/dev/null"))
    recon = reconstruct_arrays(model, names, arrays, options=options)
    sfm = recon.meta["sfm"]
    assert sfm["matching"] == "network-guided" and sfm["pairs_matched"] < 8 * 7 // 2
    assert sfm["registered_views"] == 8
    assert _auc30(recon.cam_from_world, _reference(TUM, names)) > 90


def _cli(args: list[str], tmp: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args, "--json"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=None if env is None else {**os.environ, **env})


def _images(folder: Path, arrays: list[np.ndarray]) -> Path:
    import cv2

    folder.mkdir()
    for i, a in enumerate(arrays):
        cv2.imwrite(str(folder / f"{i}.png"), a[..., ::-1])
    return folder


def _turned_on_the_spot(folder: Path) -> Path:
    """Four views of one TUM photo as a camera turned on the spot sees them (yaw −9° to 9°: the homographies
    ``K R K⁻¹``, cropped inside the photo): no baseline, nothing to triangulate."""
    import cv2

    folder.mkdir()
    image = cv2.imread(str(sorted((TUM / "images").iterdir())[8]))
    K = np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])
    for i, yaw in enumerate([-9, -3, 3, 9]):
        R = cv2.Rodrigues(np.array([0, np.radians(yaw), 0.0]))[0]
        turned = cv2.warpPerspective(image, K @ R @ np.linalg.inv(K), (640, 480), flags=cv2.INTER_LINEAR)
        cv2.imwrite(str(folder / f"{i}.png"), turned[60:420, 120:520])
    return folder


@pytest.mark.parametrize("case", ["one view", "textureless", "unrelated", "turned on the spot", "the same photo twice"])
def test_fallbacks_warn_once_and_succeed(tmp_path, case):
    """Inputs SfM cannot place: one warning line, the network's cameras. Views turned on the spot: SfM
    registered 3 of them with no point (arbitrary positions), on which stereo kept 1 % of the pixels, 12 %
    apart between views (depth invented from a baseline that is not there). The same photo twice matches
    perfectly: the line says that no baseline, not too few matches, is why."""
    if case == "one view":
        inputs = [str(sorted((TUM / "images").iterdir())[0])]
    elif case == "the same photo twice":
        (tmp_path / "twice").mkdir()
        for name in ("a.png", "b.png"):
            shutil.copy(sorted((TUM / "images").iterdir())[0], tmp_path / "twice" / name)
        inputs = [str(tmp_path / "twice")]
    elif case == "textureless":
        inputs = [str(_images(tmp_path / "grey", [np.full((240, 320, 3), 128, np.uint8)] * 3))]
    elif case == "turned on the spot":
        inputs = [str(_turned_on_the_spot(tmp_path / "turned"))]
    else:  # three photos of three different places
        inputs = [str(sorted((ROOT / "demo" / s / "images").iterdir())[0]) for s in ("tum_freiburg", "sacre_coeur")]
        inputs.append(str(_images(tmp_path / "noise", [np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)])))
    out = tmp_path / "out"  # a folder: the cloud is built (cameras.json alone skips the dense stage)
    proc = _cli([*inputs, "-o", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning:"), proc.stderr
    if case in ("turned on the spot", "the same photo twice"):
        assert "baseline" in lines[0] and "too few matches" not in lines[0], lines[0]
    summary = json.loads(proc.stdout)
    assert summary["cameras"]["sfm"] == 0 and summary["points"] > 0
    cams = json.loads((out / "cameras.json").read_text())["images"]
    assert {c["source"] for c in cams} == {"network"}


def test_cameras_without_baseline_warn_that_the_cloud_is_empty(tmp_path):
    """Given poses that all share one position (``--cameras`` with ``--fix-poses``): nothing can be
    triangulated, stereo confirms no pixel and the cloud is empty; the run still succeeds, and one `warning:` line
    says so (an empty scene.ply with exit 0 and nothing said looked like success)."""
    paths = sorted((TUM / "images").iterdir())[4:7]
    K = [[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]]
    cameras = {"images": [{"name": p.name, "width": 640, "height": 480, "K": K,
                           "cam_from_world": np.eye(4).tolist()} for p in paths]}
    (tmp_path / "cameras.json").write_text(json.dumps(cameras))
    proc = _cli([*map(str, paths), "-o", str(tmp_path / "scene.ply"), "--cameras", str(tmp_path / "cameras.json"),
                 "--fix-poses"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["points"] == 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the point cloud is empty"), proc.stderr


def test_two_views_get_sfm_cameras(tmp_path):
    """Two frames that mapping refuses: the relative pose of their two-view geometry, adjusted; and nothing left
    in ``$TMPDIR`` (pycolmap.bundle_adjustment turned glog's logtostderr off: a log file was left there)."""
    paths = sorted((TUM / "images").iterdir())[4:6]
    out = tmp_path / "cameras.json"
    (tmp_path / "tmp").mkdir()
    proc = _cli([str(p) for p in paths] + ["-o", str(out)], tmp_path, env={"TMPDIR": str(tmp_path / "tmp")})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == []
    cams = json.loads(out.read_text())["images"]
    assert [c["source"] for c in cams] == ["sfm", "sfm"]
    T = np.stack([np.array(c["cam_from_world"]) for c in cams])
    ref = _reference(TUM, [p.name for p in paths])
    rra, rta = relative_pose_errors(torch.from_numpy(T[:, :3]), torch.from_numpy(ref))
    assert float(rra.max()) < 2 and float(rta.max()) < 10
