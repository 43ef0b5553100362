"""Units of the default path's geometry: similarity placement of network cameras, depth fitting, correction
field, warping, fusion, agreement, pair selection, and the view transform's finer grid."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.camera_fusion import Similarity, fill_unregistered, fit_similarity
from app.engine.dense_fit import (
    depth_agreement,
    fit_correction_field,
    fit_depth,
    fuse_depths,
    nanmedian_first_axis,
    overlap_neighbours,
    warp_depth,
)
from mum.geometry import camera_centers
from mum.io import ViewTransform, warp_view
from app.engine.pair_selection import pairs_from_neighbours, retrieval_neighbours, select_pairs, sequential_neighbours


def _rotation(rng: np.random.Generator, degrees: float | None = None) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(degrees if degrees is not None else rng.uniform(0, 180))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def _cameras_looking_at_origin(n: int, rng: np.random.Generator, radius: float = 4.0) -> np.ndarray:
    """Cameras on a ring around the origin, looking at it: camera-from-world ``[n, 4, 4]``."""
    cams = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        a = 2 * np.pi * i / n * 0.25  # a quarter circle: views overlap
        centre = np.array([radius * np.sin(a), 0.3 * rng.normal(), -radius * np.cos(a)])
        z = -centre / np.linalg.norm(centre)
        x = np.cross([0, 1, 0], z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        cams[i, :3, :3], cams[i, :3, 3] = R, -R @ centre
    return cams


def test_similarity_recovered_from_cameras_with_an_outlier():
    rng = np.random.default_rng(0)
    target = _cameras_looking_at_origin(8, rng)
    truth = Similarity(2.5, _rotation(rng), np.array([1.0, -2.0, 0.5]))
    # source-frame cameras whose similarity to target is ``truth``: invert the mapping on the cameras
    inverse = Similarity(1 / truth.scale, truth.rotation.T, -truth.rotation.T @ truth.translation / truth.scale)
    source = inverse.apply_to_cameras(target)
    source[3, :3, :3] = _rotation(rng, 60) @ source[3, :3, :3]  # one wrong network camera
    fit = fit_similarity(source, target)
    assert fit.scale == pytest.approx(truth.scale, rel=1e-6)
    np.testing.assert_allclose(fit.rotation, truth.rotation, atol=1e-6)
    np.testing.assert_allclose(fit.translation, truth.translation, atol=1e-5)
    placed = fit.apply_to_cameras(source)
    np.testing.assert_allclose(camera_centers(placed)[[0, 1, 2, 4]], camera_centers(target)[[0, 1, 2, 4]], atol=1e-5)


def test_fill_unregistered_keeps_sfm_cameras_and_places_the_rest():
    rng = np.random.default_rng(1)
    sfm = _cameras_looking_at_origin(6, rng)
    network = Similarity(0.3, _rotation(rng), np.array([0.2, 0.1, -0.4])).apply_to_cameras(sfm)
    registered = np.array([True, True, False, True, True, False])
    sfm_with_gaps = sfm.copy()
    sfm_with_gaps[~registered] = np.nan
    cams, sources, similarity = fill_unregistered(network, sfm_with_gaps, registered)
    assert sources == ["sfm", "sfm", "network", "sfm", "sfm", "network"]
    assert similarity.scale == pytest.approx(1 / 0.3)  # network depth in SfM units
    np.testing.assert_allclose(cams, sfm, atol=1e-6)  # the placed network cameras land on the true ones
    with pytest.raises(ValueError):
        fill_unregistered(network, sfm, np.zeros(6, bool))


def test_depth_fit_recovers_scale_and_shift_despite_outliers():
    rng = np.random.default_rng(2)
    depth = rng.uniform(1, 5, (30, 40))
    uv = np.stack([rng.uniform(0, 39, 300), rng.uniform(0, 29, 300)], 1)
    from app.engine.dense_fit import sample_bilinear

    z = 3.0 * sample_bilinear(depth, uv) + 0.0
    z[:30] *= rng.uniform(2, 4, 30)  # 10 % gross outliers
    fit = fit_depth(depth, uv, z)
    assert fit.scale == pytest.approx(3.0, rel=1e-3) and fit.points == 300
    z_affine = 2.0 * sample_bilinear(depth, uv) + 4.0
    fit = fit_depth(depth, uv, z_affine)
    assert fit.scale == pytest.approx(2.0, rel=1e-2) and fit.shift == pytest.approx(4.0, abs=5e-2)
    assert fit_depth(depth, uv[:5], z[:5]) is None  # too few points


def test_correction_field_removes_a_smooth_bend():
    h, w = 48, 64
    depth = np.full((h, w), 2.0)
    v, u = np.mgrid[0:h, 0:w]
    bend = np.exp(0.3 * (u / w) - 0.2 * (v / h) ** 2)  # the network's floor is tilted and bent
    rng = np.random.default_rng(3)
    uv = np.stack([rng.uniform(0, w - 1, 400), rng.uniform(0, h - 1, 400)], 1)
    from app.engine.dense_fit import sample_bilinear

    z = sample_bilinear(depth * bend, uv)
    field = fit_correction_field(depth, uv, z)
    assert field.shape == (h, w)
    before = np.median(np.abs(depth - depth * bend) / (depth * bend))
    after = np.median(np.abs(depth * field - depth * bend) / (depth * bend))
    assert before > 0.05 and after < 0.01


def _plane_scene(n: int = 4, h: int = 24, w: int = 32):
    """Cameras in front of the plane z = 5 (world), their exact depth maps and intrinsics."""
    rng = np.random.default_rng(4)
    cams = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        R = _rotation(rng, 4)
        centre = np.array([0.3 * i, 0.1 * i, 0.0])
        cams[i, :3, :3], cams[i, :3, 3] = R, -R @ centre
    K = np.tile(np.array([[30.0, 0, (w - 1) / 2], [0, 30.0, (h - 1) / 2], [0, 0, 1]]), (n, 1, 1))
    depth = np.zeros((n, h, w))
    v, u = np.mgrid[0:h, 0:w]
    for i in range(n):
        rays = np.stack([(u - K[i, 0, 2]) / K[i, 0, 0], (v - K[i, 1, 2]) / K[i, 1, 1], np.ones_like(u, float)], -1)
        R, t = cams[i, :3, :3], cams[i, :3, 3]
        centre = -R.T @ t
        world_dirs = rays @ R  # Rᵀ·ray for each pixel
        s = (5.0 - centre[2]) / world_dirs[..., 2]  # ray parameter where it meets z = 5
        depth[i] = s  # rays have z = 1 in the camera, so camera depth equals the parameter
    return depth, K, cams


def test_warp_and_agreement_on_exact_depths():
    depth, K, cams = _plane_scene()
    warped = warp_depth(depth[1], K[1], cams[1], K[0], cams[0])
    ok = np.isfinite(warped)
    assert ok.mean() > 0.5
    np.testing.assert_allclose(warped[ok], depth[0][ok], rtol=0.03)  # nearest-pixel splatting
    neighbours = overlap_neighbours(depth, K, cams, 2)
    assert all(len(n) == 2 for n in neighbours)
    exact = depth_agreement(depth, K, cams, neighbours)
    assert exact.median_disagreement < 0.01 and exact.pairs == 8
    assert (exact.agreeing >= 1).mean() > 0.9
    noisy = depth * np.random.default_rng(5).uniform(0.8, 1.2, depth.shape)
    worse = depth_agreement(noisy, K, cams, neighbours)
    assert worse.median_disagreement > 0.05 and (worse.agreeing >= 1).mean() < (exact.agreeing >= 1).mean()


def test_fusion_lowers_disagreement_of_noisy_depths():
    depth, K, cams = _plane_scene(n=5)
    noisy = depth * np.random.default_rng(6).uniform(0.9, 1.1, depth.shape)
    neighbours = overlap_neighbours(noisy, K, cams, 4)
    before = depth_agreement(noisy, K, cams, neighbours).median_disagreement
    fused = fuse_depths(noisy, K, cams, neighbours)
    after = depth_agreement(fused, K, cams, neighbours).median_disagreement
    assert after < 0.7 * before
    assert np.median(np.abs(fused - depth) / depth) < np.median(np.abs(noisy - depth) / depth)


def test_nanmedian_matches_numpy():
    rng = np.random.default_rng(7)
    stack = rng.random((5, 20, 30))
    stack[stack < 0.3] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(stack, axis=0)
    np.testing.assert_allclose(nanmedian_first_axis(stack), expected, equal_nan=True)


def test_pair_selection():
    desc = np.eye(4)[[0, 0, 1, 1, 2, 3]] + 0.01 * np.arange(6)[:, None]
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    near = retrieval_neighbours(desc, 1)
    assert near[0] == [1] and near[2] == [3]
    assert sequential_neighbours(4, 2) == [[1, 2], [2, 3], [3], []]
    assert pairs_from_neighbours([[1], [0]], [[], [2], []]) == [(0, 1), (1, 2)]
    pairs = select_pairs(desc, [[5], [], [], [], [], []], retrieval_count=1, sequential_window=1)
    assert (0, 5) in pairs and (0, 1) in pairs and (2, 3) in pairs and all(i < j for i, j in pairs)
    assert len(pairs) < 6 * 5 // 2


def test_view_transform_finer_grid_keeps_pixel_centres():
    tf = ViewTransform((400, 300), (128, 96), 0.0, 0.0, 128 / 400, 96 / 300)
    fine = tf.scaled(2)
    assert fine.grid_size == (256, 192)
    uv = np.array([[0.0, 0.0], [127.0, 95.0], [63.5, 40.25]])
    np.testing.assert_allclose(fine.points_to_original(fine.points_to_network(tf.points_to_original(uv))),
                               tf.points_to_original(uv))
    # network pixel u of the coarse grid is pixel (u + ½)·2 − ½ of the fine grid
    np.testing.assert_allclose(fine.points_to_network(tf.points_to_original(uv)), (uv + 0.5) * 2 - 0.5)
    image = np.random.default_rng(8).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    assert warp_view(image, fine).shape == (192, 256, 3)


def test_guided_filter_matches_kornia_and_upsampling_keeps_edges():
    kornia = pytest.importorskip("kornia")  # a test-only dependency: the independent reference
    import torch

    from app.engine.dense_fit import guided_filter, upsample_depth

    rng = np.random.default_rng(9)
    guide = rng.random((48, 64)).astype(np.float32)
    source = rng.random((48, 64)).astype(np.float32)
    ours = guided_filter(guide, source, 3, 1e-3)
    reference = kornia.filters.guided_blur(torch.from_numpy(guide)[None, None], torch.from_numpy(source)[None, None],
                                           (7, 7), eps=1e-3)[0, 0].numpy()
    np.testing.assert_allclose(ours[7:-7, 7:-7], reference[7:-7, 7:-7], atol=1e-5)  # borders: padding differs
    # a depth step that the image shows: upsampling keeps it sharper than bilinear interpolation does
    depth = np.where(np.arange(16)[None, :] < 8, 2.0, 4.0).repeat(12, 0)
    image = np.where(np.arange(64)[None, :, None] < 32, 30, 220).repeat(48, 0).repeat(3, 2).astype(np.uint8)
    fine = upsample_depth(depth, image, 4)
    assert fine.shape == (48, 64)
    assert fine[24, 30] < 2.3 and fine[24, 33] > 3.5  # two pixels either side of the edge


def test_another_sfm_model_is_joined_by_the_network_link_and_keeps_its_own_geometry():
    """Two parts of a scene: SfM maps views 0-3 (the kept model) and 4-6 (another model, its own frame and
    scale). Network cameras exact up to a similarity: the joined part lands on the true cameras, its points move
    with it (they reproject as before) and their observations index the appended points."""
    from app.engine.cameras import join_other_models
    from app.engine.sfm import OtherModel, SfmResult, reprojection_errors

    rng = np.random.default_rng(7)
    truth = _cameras_looking_at_origin(7, rng)
    K = np.tile(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), (7, 1, 1))
    points = rng.uniform(-1, 1, (40, 3))
    network = Similarity(0.3, _rotation(rng), np.array([0.2, 0.1, -0.4])).apply_to_cameras(truth)
    own = Similarity(4.0, _rotation(rng), np.array([3.0, -1.0, 2.0]))  # the other model's frame
    part = np.arange(4, 7)

    def observe(cams, pts, views):
        obs = []
        for i in views:
            x = pts @ cams[i, :3, :3].T + cams[i, :3, 3]
            obs.append((np.arange(len(pts)), x[:, :2] / x[:, 2:] * 500 + [320, 240]))
        return obs

    kept_obs = observe(truth, points, range(4)) + [(np.zeros(0, np.int64), np.zeros((0, 2)))] * 3
    sfm_cams = truth.copy()
    sfm_cams[part] = np.nan
    other_cams = own.apply_to_cameras(truth[part])
    other_points = (points + 0.5) @ own.rotation.T * own.scale + own.translation  # points of its own part
    other = OtherModel(part, other_cams, K[part], other_points, np.zeros((40, 3), np.uint8),
                       observe(np.concatenate([np.zeros((4, 4, 4)), other_cams]), other_points, range(4, 7)))
    sfm = SfmResult(np.arange(7) < 4, sfm_cams, K.copy(), points, np.zeros((40, 3), np.uint8), kept_obs, 0, 0,
                    other_models=[other])
    _, _, to_sfm = fill_unregistered(network, sfm.cam_from_world, sfm.registered)
    joined, records = join_other_models(network, sfm, to_sfm, [1 / own.scale])
    assert records[0]["joined"] and records[0]["view_indices"] == [4, 5, 6]
    assert records[0]["rotation_disagreement_deg"] == pytest.approx(0.0, abs=1e-4)
    assert joined.registered.all() and not joined.other_models
    np.testing.assert_allclose(joined.cam_from_world, truth, atol=1e-6)
    assert len(joined.points) == 80
    errors = reprojection_errors(joined.cam_from_world, joined.intrinsics, joined.points, joined.observations)
    assert errors.size == 7 * 40 and errors.max() < 1e-6
