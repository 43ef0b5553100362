"""mum.geometry: parity with the official VGGT utilities, hand-computed cases and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mum import geometry as g
from heads import metrics

from conftest import REFERENCE as REFERENCES

REFERENCE = REFERENCES / "vggt"
TOL = 1e-5


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    path = REFERENCE / "geometry.npz"
    assert path.is_file(), f"VGGT reference vectors missing: {path}"
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _random_rotations(n: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    q = torch.randn(n, 4, generator=generator, dtype=dtype)
    return g.quat_to_mat(q / q.norm(dim=-1, keepdim=True))


def _random_cameras(batch: tuple[int, ...], height: int, width: int, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    n = math.prod(batch)
    rotation = _random_rotations(n, gen).to(dtype)
    translation = torch.randn(n, 3, 1, generator=gen, dtype=dtype)
    extrinsics = torch.cat((rotation, translation), dim=-1).reshape(*batch, 3, 4)
    focal = (0.6 + torch.rand(n, 2, generator=gen, dtype=dtype)) * max(height, width)
    intrinsics = torch.zeros(n, 3, 3, dtype=dtype)
    intrinsics[:, 0, 0], intrinsics[:, 1, 1] = focal[:, 0], focal[:, 1]
    intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 2, 2] = width / 2, height / 2, 1
    return extrinsics, intrinsics.reshape(*batch, 3, 3)


def _close(actual: torch.Tensor | np.ndarray, expected: np.ndarray, name: str) -> float:
    actual = actual.detach().numpy() if isinstance(actual, torch.Tensor) else actual
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    diff = float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max())
    assert np.allclose(actual, expected, atol=TOL, rtol=TOL), f"{name}: max abs diff {diff:.2e}"
    return diff


# ------------------------------------------------------------------------------------------------ reference parity


def test_pose_encoding_matches_reference(vectors):
    hw = tuple(int(v) for v in vectors["input.image_size_hw"])
    extrinsics = torch.from_numpy(vectors["input.extrinsics"])
    intrinsics = torch.from_numpy(vectors["input.intrinsics"])
    encoding = g.extri_intri_to_pose_encoding(extrinsics, intrinsics, hw)
    _close(encoding, vectors["output.pose_encoding"], "pose_encoding")
    ext, intr = g.pose_encoding_to_extri_intri(encoding, hw)
    _close(ext, vectors["output.extrinsics_from_encoding"], "extrinsics_from_encoding")
    _close(intr, vectors["output.intrinsics_from_encoding"], "intrinsics_from_encoding")
    ext, intr = g.pose_encoding_to_extri_intri(torch.from_numpy(vectors["input.raw_pose_encoding"]), hw)
    _close(ext, vectors["output.extrinsics_from_raw_encoding"], "extrinsics_from_raw_encoding")
    _close(intr, vectors["output.intrinsics_from_raw_encoding"], "intrinsics_from_raw_encoding")


def test_quaternion_conversions_match_reference(vectors):
    _close(g.quat_to_mat(torch.from_numpy(vectors["input.quaternions_xyzw"])), vectors["output.quat_to_mat"], "q2m")
    _close(g.mat_to_quat(torch.from_numpy(vectors["input.rotations"])), vectors["output.mat_to_quat"], "mat_to_quat")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unprojection_matches_reference(vectors, dtype):
    depth = torch.from_numpy(vectors["input.depth"]).to(dtype)
    extrinsics = torch.from_numpy(vectors["input.depth_extrinsics"]).to(dtype)
    intrinsics = torch.from_numpy(vectors["input.depth_intrinsics"]).to(dtype)
    # the official numpy code returns float64 (float32 camera points times a float64 inverse)
    _close(g.depth_to_world_points(depth, extrinsics, intrinsics), vectors["output.world_points"], "world_points")
    _close(g.depth_to_camera_points(depth[0], intrinsics[0]), vectors["output.cam_coords_frame0"], "cam_coords")
    _close(g.closed_form_inverse_se3(extrinsics), vectors["output.closed_form_inverse_se3"], "inverse_se3")


# ------------------------------------------------------------------------------------------------ quaternions


def test_quaternion_hand_computed():
    s = math.sqrt(0.5)
    rz90 = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(g.quat_to_mat(torch.tensor([0.0, 0.0, s, s])), rz90)
    torch.testing.assert_close(g.mat_to_quat(rz90), torch.tensor([0.0, 0.0, s, s]))
    torch.testing.assert_close(g.mat_to_quat(torch.eye(3)), torch.tensor([0.0, 0.0, 0.0, 1.0]))
    rx180 = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    torch.testing.assert_close(g.mat_to_quat(rx180), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    # a quaternion and any non-zero multiple of it, including a negative one, give the same rotation
    q = torch.tensor([0.3, -0.2, 0.5, 0.7])
    torch.testing.assert_close(g.quat_to_mat(-3.5 * q), g.quat_to_mat(q))


def test_quaternion_round_trips():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(4096, 4, generator=gen)
    q = q / q.norm(dim=-1, keepdim=True)
    rotation = g.quat_to_mat(q)
    eye = torch.eye(3).expand_as(rotation)
    torch.testing.assert_close(rotation @ rotation.mT, eye, atol=TOL, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(4096), atol=TOL, rtol=0)
    back = g.mat_to_quat(rotation)
    assert (back[..., 3] >= 0).all()
    torch.testing.assert_close(back, g.standardize_quaternion(q), atol=TOL, rtol=0)
    # 180-degree and near-180-degree rotations survive mat -> quat -> mat
    axes = torch.nn.functional.normalize(torch.randn(64, 3, generator=gen), dim=-1)
    for angle in (math.pi, math.pi - 1e-4):
        quats = torch.cat((axes * math.sin(angle / 2), torch.full((64, 1), math.cos(angle / 2))), dim=-1)
        rotations = g.quat_to_mat(quats)
        torch.testing.assert_close(g.quat_to_mat(g.mat_to_quat(rotations)), rotations, atol=TOL, rtol=0)


# ------------------------------------------------------------------------------------------------ pose encoding


def test_pose_encoding_round_trip_random_cameras():
    height, width = 48, 80
    extrinsics, intrinsics = _random_cameras((4, 6), height, width, seed=2)
    encoding = g.extrinsics_intrinsics_to_pose_encoding(extrinsics, intrinsics, (height, width))
    assert encoding.shape == (4, 6, 9) and (encoding[..., 6] >= 0).all()
    ext, intr = g.pose_encoding_to_extrinsics_intrinsics(encoding, (height, width))
    torch.testing.assert_close(ext, extrinsics, atol=TOL, rtol=TOL)
    torch.testing.assert_close(intr, intrinsics, atol=TOL, rtol=TOL)
    # and encoding -> matrices -> encoding, from raw (non-unit) quaternions
    raw = encoding.clone()
    raw[..., 3:7] *= 2.5
    ext, intr = g.pose_encoding_to_extrinsics_intrinsics(raw, (height, width))
    again = g.extrinsics_intrinsics_to_pose_encoding(ext, intr, (height, width))
    torch.testing.assert_close(again, encoding, atol=TOL, rtol=TOL)


def test_pose_encoding_fov_hand_computed():
    extrinsics = torch.eye(3, 4)[None, None]
    intrinsics = torch.tensor([[[[50.0, 0, 50], [0, 25, 20], [0, 0, 1]]]])
    encoding = g.extrinsics_intrinsics_to_pose_encoding(extrinsics, intrinsics, (40, 100))
    # fov_w = 2 atan(50 / 50) = 90 degrees, fov_h = 2 atan(20 / 25)
    torch.testing.assert_close(encoding[0, 0, 8], torch.tensor(math.pi / 2))
    torch.testing.assert_close(encoding[0, 0, 7], torch.tensor(2 * math.atan(0.8)))
    torch.testing.assert_close(encoding[0, 0, :7], torch.tensor([0.0, 0, 0, 0, 0, 0, 1]))
    ext, intr = g.pose_encoding_to_extrinsics_intrinsics(encoding, (40, 100))
    assert intr.shape == (1, 1, 3, 3) and ext.shape == (1, 1, 3, 4)
    with pytest.raises(NotImplementedError):
        g.pose_encoding_to_extrinsics_intrinsics(encoding, (40, 100), pose_encoding_type="absT_quaR_OneFLM1")
    assert g.pose_encoding_to_extrinsics_intrinsics(encoding, build_intrinsics=False)[1] is None


# ------------------------------------------------------------------------------------------------ transforms


def test_closed_form_inverse_se3():
    extrinsics, _ = _random_cameras((2, 5), 10, 10, seed=3)
    inverse = g.closed_form_inverse_se3(extrinsics)
    assert inverse.shape == (2, 5, 4, 4)
    homogeneous = torch.cat((extrinsics, torch.tensor([0.0, 0, 0, 1]).expand(2, 5, 1, 4)), dim=-2)
    torch.testing.assert_close(homogeneous @ inverse, torch.eye(4).expand(2, 5, 4, 4), atol=TOL, rtol=0)
    torch.testing.assert_close(g.closed_form_inverse_se3(homogeneous), inverse)
    torch.testing.assert_close(g.closed_form_inverse_se3(inverse)[..., :3, :], extrinsics, atol=TOL, rtol=0)


def test_unprojection_hand_computed():
    intrinsics = torch.tensor([[100.0, 0, 2], [0, 50, 1], [0, 0, 1]])
    depth = torch.full((3, 5), 2.0)
    points = g.depth_to_camera_points(depth, intrinsics)
    assert points.shape == (3, 5, 3)
    torch.testing.assert_close(points[1, 2], torch.tensor([0.0, 0.0, 2.0]))  # principal point (u=2, v=1)
    torch.testing.assert_close(points[2, 4], torch.tensor([2 * 2 / 100, 1 * 2 / 50, 2.0]))  # u=4, v=2
    # a camera at world (0, 0, -1) looking along +z: X_world = X_cam + (0, 0, -1)
    extrinsics = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]])
    world = g.depth_to_world_points(depth[..., None], extrinsics, intrinsics)
    torch.testing.assert_close(world, points - torch.tensor([0.0, 0.0, 1.0]))


def test_depth_points_depth_round_trip():
    height, width = 24, 40
    extrinsics, intrinsics = _random_cameras((2, 3), height, width, seed=4)
    depth = 0.5 + 4 * torch.rand(2, 3, height, width, 1, generator=torch.Generator().manual_seed(5))
    world = g.depth_to_world_points(depth, extrinsics, intrinsics)
    assert world.shape == (2, 3, height, width, 3)
    torch.testing.assert_close(g.depth_to_world_points(depth[..., 0], extrinsics, intrinsics), world)
    camera = g.world_points_to_camera_points(world, extrinsics)
    torch.testing.assert_close(camera[..., 2:], depth, atol=TOL, rtol=TOL)
    pixels = g.camera_points_to_pixels(camera, intrinsics)
    grid = g.pixel_grid(height, width).expand(2, 3, height, width, 2)
    torch.testing.assert_close(pixels, grid, atol=1e-3, rtol=0)  # pixels: 1e-3 px at fx ~ 40
    with pytest.raises(ValueError):
        g.depth_to_world_points(depth[0], extrinsics, intrinsics)


# ------------------------------------------------------------------------------------------------ Umeyama


def _apply(scale, rotation, translation, points):
    return scale[..., None, None] * points @ rotation.mT + translation[..., None, :]


def test_umeyama_recovers_known_similarity():
    gen = torch.Generator().manual_seed(6)
    source = torch.randn(3, 200, 3, generator=gen)
    rotation = _random_rotations(3, gen, dtype=torch.float32)
    scale = torch.tensor([0.3, 1.0, 7.5])
    translation = torch.randn(3, 3, generator=gen) * 5
    target = _apply(scale, rotation, translation, source)
    s, r, t = metrics.umeyama_alignment(source, target)
    torch.testing.assert_close(s, scale, atol=TOL, rtol=TOL)
    torch.testing.assert_close(r, rotation, atol=TOL, rtol=TOL)
    torch.testing.assert_close(t, translation, atol=1e-4, rtol=TOL)
    torch.testing.assert_close(_apply(s, r, t, source), target, atol=1e-4, rtol=TOL)


def test_umeyama_weights_ignore_outliers_and_no_reflection():
    gen = torch.Generator().manual_seed(7)
    source = torch.randn(100, 3, generator=gen, dtype=torch.float64)
    rotation = _random_rotations(1, gen)[0]
    target = 2.0 * source @ rotation.T + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    target[:20] += 50 * torch.randn(20, 3, generator=gen, dtype=torch.float64)  # outliers
    weights = torch.ones(100, dtype=torch.float64)
    weights[:20] = 0
    s, r, t = metrics.umeyama_alignment(source, target, weights)
    torch.testing.assert_close(s, torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(r, rotation)
    s_unweighted, _, _ = metrics.umeyama_alignment(source, target)
    assert abs(float(s_unweighted) - 2.0) > 1e-2
    # a mirrored target: the best proper rotation is returned, never a reflection
    mirrored = source * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    _, r, _ = metrics.umeyama_alignment(source, mirrored)
    torch.testing.assert_close(torch.linalg.det(r), torch.tensor(1.0, dtype=torch.float64))
    # rigid mode keeps scale 1
    s, r, t = metrics.umeyama_alignment(source, source @ rotation.T + 1.0, with_scale=False)
    assert float(s) == 1.0
    torch.testing.assert_close(r, rotation)


# ------------------------------------------------------------------------------------------------ pose metrics


def test_relative_pose_errors_zero_under_global_similarity():
    extrinsics, _ = _random_cameras((10,), 10, 10, seed=8, dtype=torch.float64)
    # move the world by a similarity X' = s G X + c; cameras become R G^T, s t - R G^T c
    gen = torch.Generator().manual_seed(9)
    gauge = _random_rotations(1, gen)[0]
    scale, shift = 3.0, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    rotation, translation = extrinsics[..., :3], extrinsics[..., 3]
    rotation2 = rotation @ gauge.T
    translation2 = scale * translation - (rotation2 @ shift)
    moved = torch.cat((rotation2, translation2[..., None]), dim=-1)
    rra, rta = metrics.relative_pose_errors(moved, extrinsics)
    assert rra.shape == rta.shape == (45,)
    assert float(rra.max()) < 1e-5 and float(rta.max()) < 1e-5
    assert float(metrics.pose_auc(rra, rta)) == pytest.approx(1.0)


def test_relative_pose_errors_hand_computed():
    identity = torch.eye(3, 4, dtype=torch.float64)
    gt = torch.stack((identity, identity.clone()))
    gt[1, 0, 3] = 1.0  # second camera shifted along x
    pred = gt.clone()
    angle = math.radians(10)
    pred[1, :3, :3] = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]], dtype=torch.float64
    )
    pred[1, :3, 3] = torch.tensor([-1.0, 0.0, 0.0])  # translation direction flipped: ambiguous, RTA 0
    rra, rta = metrics.relative_pose_errors(pred, gt)
    torch.testing.assert_close(rra, torch.tensor([10.0], dtype=torch.float64))
    torch.testing.assert_close(rta, torch.tensor([0.0], dtype=torch.float64))
    pred[1, :3, 3] = torch.tensor([1.0, 1.0, 0.0])  # 45 degrees off
    _, rta = metrics.relative_pose_errors(pred, gt)
    torch.testing.assert_close(rta, torch.tensor([45.0], dtype=torch.float64))
    assert float(metrics.translation_angle_deg(torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]))) == pytest.approx(90)
    assert float(metrics.translation_angle_deg(torch.zeros(3), torch.tensor([0.0, 1, 0]))) == 90.0
    assert float(g.rotation_angle_deg(torch.eye(3), torch.diag(torch.tensor([1.0, -1, -1])))) == pytest.approx(180)


def test_pose_auc_matches_numpy_histogram():
    rng = np.random.default_rng(10)
    rra = rng.uniform(0, 45, size=500)
    rta = rng.uniform(0, 45, size=500)
    rra[:5] = [0.0, 1.0, 29.0, 30.0, 30.5]  # bin edges
    errors = np.maximum(rra, rta)
    histogram, _ = np.histogram(errors, bins=np.arange(31))
    expected = np.mean(np.cumsum(histogram / len(errors)))
    assert float(metrics.pose_auc(torch.from_numpy(rra), torch.from_numpy(rta))) == pytest.approx(expected, abs=1e-12)
    zeros = torch.zeros(7)
    assert float(metrics.pose_auc(zeros, zeros)) == 1.0
    assert float(metrics.pose_auc(zeros + 31, zeros)) == 0.0
    batched = metrics.pose_auc(torch.stack((zeros, zeros + 31)), torch.zeros(2, 7))
    torch.testing.assert_close(batched, torch.tensor([1.0, 0.0]))


def test_depth_shape_checked_against_camera_batch():
    K = torch.eye(3).expand(2, 3, 3, 3)
    assert g.depth_to_camera_points(torch.ones(2, 3, 4, 5, 1), K).shape == (2, 3, 4, 5, 3)
    with pytest.raises(ValueError, match="does not match"):
        g.depth_to_camera_points(torch.ones(2, 4, 4, 5), K)
