"""The fill-in by dominant planes (app/engine/plane_fill.py): RANSAC finds the scene's planes from noisy points
with outliers, seeded; a view's holes on a floor whose stereo kept only the lines of its pattern take the floor's
exact depth, while a textureless box standing on it, whose own edges stereo kept, keeps the fill it had."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.plane_fill import Plane, PlaneFillOptions, dominant_planes, fill_planes, kept_points, plane_depth
from mum.geometry import intrinsics_from_fov, look_at

W, H = 160, 120


def _plane_points(rng, count, origin, a, b, noise):
    s, t = rng.uniform(-1, 1, (2, count))
    normal = np.cross(a, b)
    return origin + s[:, None] * a + t[:, None] * b + rng.normal(0, noise, count)[:, None] * normal / np.linalg.norm(normal)


def _angle_deg(n, m):
    return np.degrees(np.arccos(min(1.0, abs(float(n @ m)) / np.linalg.norm(n) / np.linalg.norm(m))))


def test_dominant_planes_finds_the_floor_and_the_wall_among_outliers_and_is_seeded():
    rng = np.random.default_rng(1)
    floor = _plane_points(rng, 6000, np.array([0, 0, 0.0]), np.array([3.0, 0, 0]), np.array([0, 3.0, 0]), 0.003)
    wall = _plane_points(rng, 3000, np.array([0, 3.0, 1.5]), np.array([3.0, 0, 0]), np.array([0, 0, 1.5]), 0.003)
    clutter = rng.uniform([-3, -3, 0], [3, 3, 3], (1500, 3))
    points = np.concatenate([floor, wall, clutter])
    planes = dominant_planes(points)
    assert len(planes) == 2  # the clutter holds no third plane of 10 % of the points
    assert _angle_deg(planes[0].coefficients[:3], np.array([0, 0, 1.0])) < 0.5  # the largest first
    assert abs(planes[0].coefficients[3]) < 0.01
    assert _angle_deg(planes[1].coefficients[:3], np.array([0, 1.0, 0])) < 0.5
    assert abs(abs(planes[1].coefficients[3]) - 3.0) < 0.01
    assert np.allclose(np.linalg.norm(planes[0].coefficients[:3]), 1)
    assert planes[0].contains(np.array([[2.5, -2.5, 0.0]]))[0] and not planes[0].contains(np.array([[9.0, 0, 0]]))[0]
    again = dominant_planes(points)
    np.testing.assert_array_equal(again[0].coefficients, planes[0].coefficients)
    np.testing.assert_array_equal(again[1].coefficients, planes[1].coefficients)
    assert dominant_planes(clutter) == []  # points in a box hold no plane


def test_plane_depth_puts_every_pixel_on_the_plane_to_float64_precision():
    """Each pixel's depth, unprojected the textbook way (``X = Rᵀ (z K⁻¹ [u, v, 1] − t)``), lies on the plane, also
    where the rays graze it (float32 rays were 1.6 % off there); behind the camera: NaN; the extent is the one
    :meth:`Plane.contains` gives the unprojected points."""
    rng = np.random.default_rng(3)
    size = (48, 64)
    v, u = np.mgrid[:size[0], :size[1]].astype(np.float64)
    checked = 0
    for _ in range(20):
        K = intrinsics_from_fov(np.deg2rad(rng.uniform(30, 90)), size[1], size[0])
        K[:2, 2] += rng.normal(0, 3, 2)
        cam = np.eye(4)
        cam[:3] = look_at(rng.normal(0, 3, 3), rng.normal(0, 1, 3))
        normal = rng.normal(size=3)
        normal /= np.linalg.norm(normal)
        points = rng.normal(0, 2, (300, 3))
        points -= np.outer(points @ normal + 0.5, normal)
        plane = Plane.of_points(np.append(normal, 0.5), points)
        z, within = plane_depth(plane, K, cam, size)
        X = (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T * z[..., None] - cam[:3, 3]) @ cam[:3, :3]
        ok = np.isfinite(z)
        assert (z[ok] > 0).all()
        scale = np.linalg.norm(X[ok] - cam_centre(cam), axis=-1)
        np.testing.assert_array_less(np.abs(X[ok] @ normal + 0.5), 1e-9 * scale)
        direction = (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T) @ cam[:3, :3]
        behind = -(cam_centre(cam) @ normal + 0.5) / (direction @ normal) <= 0
        np.testing.assert_array_equal(~ok, behind)
        np.testing.assert_array_equal(within[ok], plane.contains(X[ok]))
        assert not within[~ok].any()
        checked += int(ok.sum())
    assert checked > 10_000


def cam_centre(cam: np.ndarray) -> np.ndarray:
    return -cam[:3, :3].T @ cam[:3, 3]


@pytest.fixture(scope="module")
def floor_view():
    """A camera looking down at the floor z = 0 and a box standing on it (its face: the vertical plane through the
    floor's point seen at row 79, filling rows 24–79 and columns 64–95 of the image): the floor's depth alone and
    with the box ``[H, W]``, the box's pixels, ``K``, camera-from-world."""
    K = intrinsics_from_fov(np.deg2rad(60), W, H)
    cam = np.eye(4)
    cam[:3] = look_at(np.array([0, -3.0, 1.5]), np.array([0, 1.0, 0]))
    floor_points = _plane_points(np.random.default_rng(0), 2000, np.zeros(3), np.array([5.0, 0, 0]), np.array([0, 5.0, 0]), 0)
    floor = plane_depth(Plane.of_points(np.array([0, 0, 1.0, 0]), floor_points), K, cam, (H, W))[0]
    box = np.zeros((H, W), bool)
    box[24:80, 64:96] = True
    ray = np.linalg.inv(cam[:3, :3]) @ (np.linalg.inv(K) @ np.array([80.0, 79.0, 1.0]) * floor[79, 80] - cam[:3, 3])
    face = plane_depth(Plane.of_points(np.array([0, 1.0, 0, -ray[1]]), floor_points), K, cam, (H, W))[0]
    truth = floor.copy()
    truth[box] = np.fmin(face, floor)[box]
    return {"floor": floor, "truth": truth, "box": box, "K": K, "cam": cam}


def _lines() -> np.ndarray:
    """The floor pattern's lines, every 16 px: what stereo keeps on a textureless floor."""
    lines = np.zeros((H, W), bool)
    lines[::16, :] = lines[:, ::16] = True
    return lines


def _edges(box: np.ndarray, bottom: bool = True) -> np.ndarray:
    """The box's outline, 2 px wide (without its bottom edge, where it stands on the floor, unless ``bottom``)."""
    inner = box.copy()
    inner[:, :2] = inner[:2, :] = False
    inner = inner & np.roll(box, -2, 1) & np.roll(box, 2, 1) & np.roll(box, 2, 0) & (np.roll(box, -2, 0) if bottom else True)
    return box & ~inner


def _planes(depth, kept, v):
    return dominant_planes(kept_points(depth[None], kept[None], v["K"][None], v["cam"][None], 100_000))


def test_holes_on_the_floor_take_its_depth_and_a_textureless_box_keeps_its_fill(floor_view):
    v = floor_view
    truth, box = v["truth"], v["box"]
    on_floor = np.isfinite(truth) & ~box
    kept = (_lines() & on_floor) | _edges(box)  # stereo keeps the floor's lines and the box's edges
    prior = (0.7 * truth).astype(np.float32)  # the network's depth, 30 % off (nearer: never the floor's behind the box)
    filled = prior.copy()  # the prior-based fill-in the caller made
    planes = _planes(truth, kept, v)
    assert 1 <= len(planes) <= 2 and abs(planes[0].coefficients[2]) > 0.999  # the floor first (the box's face next)
    depth, by_plane = fill_planes(filled, prior, truth, kept, planes, v["K"], v["cam"])
    holes = on_floor & ~kept
    assert by_plane[holes].mean() > 0.9
    assert np.median(np.abs(depth[holes] / truth[holes] - 1)) < 0.005  # the prior: 0.3
    off_floor = box & ~kept & (np.abs(v["floor"] / truth - 1) > 0.2)  # the box where the floor is > 20 % off
    assert off_floor.sum() > 500
    assert not np.any(np.abs(depth[off_floor] / v["floor"][off_floor] - 1) < 0.01)  # never the floor's depth
    assert not by_plane[kept].any()


def test_the_boundary_vote_keeps_the_floor_out_of_a_box_the_network_missed(floor_view):
    """The box's bottom edge, where it stands on the floor, not kept, and a prior that does not see the box (no
    depth edge to stop the fill): the box's inside is a hole that the floor's lines below it and its own kept
    edges, off the floor, surround. Their vote keeps the floor out; without it, the floor floods the box."""
    v = floor_view
    truth, box = v["truth"], v["box"]
    kept = (_lines() & np.isfinite(truth) & ~box) | _edges(box, bottom=False)
    prior = v["floor"].astype(np.float32)
    planes = _planes(truth, kept, v)[:1]  # the floor alone (the box's face, a plane in front, would hide it too)
    off_floor = box & ~kept & (np.abs(v["floor"] / truth - 1) > 0.2)  # (near where it stands: within the tolerances)
    floor_depth = lambda d: np.abs(d[off_floor] / v["floor"][off_floor] - 1) < 0.01  # noqa: E731
    filled = (0.7 * truth).astype(np.float32)  # 30 % off, nearer: never the floor behind the box
    voted, _ = fill_planes(filled, prior, truth, kept, planes, v["K"], v["cam"])
    assert not floor_depth(voted).any()
    unvoted, _ = fill_planes(filled, prior, truth, kept, planes, v["K"], v["cam"], PlaneFillOptions(min_boundary=0.0))
    assert floor_depth(unvoted).mean() > 0.9


def test_a_nearer_plane_hides_the_one_behind_it(floor_view):
    """A second plane whose extent lies in front of the floor along some rays: there the floor does not fill."""
    v = floor_view
    floor = v["floor"]
    kept = _lines() & np.isfinite(floor)
    planes = _planes(floor, kept, v)
    screen = _plane_points(np.random.default_rng(2), 500, np.array([0, -1.0, 0.5]), np.array([0.3, 0, 0]),
                           np.array([0, 0, 0.3]), 0)
    wall = Plane.of_points(np.array([0, 1.0, 0, 1.0]), screen)  # y = -1: a small patch in front of the camera
    z_wall, within = plane_depth(wall, v["K"], v["cam"], (H, W))
    hidden = within & (z_wall < floor) & ~kept
    assert hidden.sum() > 50
    prior = floor.astype(np.float32)
    _, alone = fill_planes(prior.copy(), prior, floor, kept, planes, v["K"], v["cam"])
    _, with_wall = fill_planes(prior.copy(), prior, floor, kept, planes + [wall], v["K"], v["cam"])
    assert alone[hidden].mean() > 0.9
    assert not with_wall[hidden].any()


def test_a_plane_that_another_view_sees_through_does_not_fill(floor_view):
    """The free-space check: another view whose kept stereo depth lies beyond the plane where a hole would be
    filled (it matched something behind it: the plane is not there) vetoes the hole; one that sees the plane there
    agrees with it."""
    v = floor_view
    floor = v["floor"]
    kept = _lines() & np.isfinite(floor)
    planes = _planes(floor, kept, v)
    prior = floor.astype(np.float32)
    other_cam = np.eye(4)
    other_cam[:3] = look_at(np.array([0.4, -3.0, 1.6]), np.array([0.3, 1.0, 0]))
    seen_floor = plane_depth(planes[0], v["K"], other_cam, (H, W))[0]
    from app.engine.plane_fill import OtherView

    agrees = OtherView(np.where(_lines(), seen_floor, np.nan), v["K"], other_cam)
    through = OtherView(np.where(_lines(), 1.5 * seen_floor, np.nan), v["K"], other_cam)
    holes = np.isfinite(floor) & ~kept
    _, with_agreeing = fill_planes(prior.copy(), prior, floor, kept, planes, v["K"], v["cam"], others=[agrees])
    _, seen_through = fill_planes(prior.copy(), prior, floor, kept, planes, v["K"], v["cam"], others=[through])
    assert with_agreeing[holes].mean() > 0.9
    assert seen_through[holes].mean() < 0.1
