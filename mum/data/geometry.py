"""Numpy camera geometry used by the data engine (OpenCV axes, camera-from-world ``[R | t]``, pixel centres
at integer coordinates)."""

from __future__ import annotations

import numpy as np


def intrinsics_from_fov(fov_x: float, width: int, height: int, aspect: float = 1.0) -> np.ndarray:
    """``[3, 3]`` pinhole intrinsics with horizontal field of view ``fov_x`` (radians), square pixels scaled by
    ``aspect`` (fy = fx · aspect) and the principal point at the image centre ``((W-1)/2, (H-1)/2)``."""
    fx = 0.5 * width / np.tan(0.5 * fov_x)
    return np.array([[fx, 0.0, (width - 1) / 2.0], [0.0, fx * aspect, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0]), roll: float = 0.0) -> np.ndarray:
    """Camera-from-world ``[3, 4]`` for a camera at ``eye`` looking at ``target`` (OpenCV axes: z forward,
    y down, so the image's up is as close as possible to world ``up``); ``roll`` in radians about z."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:  # looking along up: pick any perpendicular
        x = np.cross(z, np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ R
    return np.concatenate([R, (-R @ eye)[:, None]], axis=1)


def camera_center(cam_from_world: np.ndarray) -> np.ndarray:
    """``[..., 3, 4]`` → camera centres in world ``[..., 3]``."""
    R, t = cam_from_world[..., :3, :3], cam_from_world[..., :3, 3]
    return -np.einsum("...ji,...j->...i", R, t)


def invert_extrinsics(cam_from_world: np.ndarray) -> np.ndarray:
    """``[..., 3, 4]`` camera-from-world → world-from-camera ``[..., 3, 4]``."""
    R, t = cam_from_world[..., :3, :3], cam_from_world[..., :3, 3:]
    Rt = np.swapaxes(R, -1, -2)
    return np.concatenate([Rt, -Rt @ t], axis=-1)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a ∘ b`` for ``[..., 3, 4]`` rigid transforms."""
    R = a[..., :3, :3] @ b[..., :3, :3]
    t = a[..., :3, :3] @ b[..., :3, 3:] + a[..., :3, 3:]
    return np.concatenate([R, t], axis=-1)


def pixel_rays(K: np.ndarray, cam_from_world: np.ndarray, width: int, height: int) -> np.ndarray:
    """World rays ``[H, W, 6]`` float32 (origin, direction) through pixel centres, directions scaled so that
    the ray parameter equals the z-depth in the camera (camera-frame direction ``K⁻¹ [u, v, 1]``).
    Batched: ``K [..., 3, 3]`` and ``cam_from_world [..., 3, 4]`` give ``[..., H, W, 6]``."""
    K, E = np.asarray(K, np.float64), np.asarray(cam_from_world, np.float64)
    M = (np.swapaxes(E[..., :3, :3], -1, -2) @ np.linalg.inv(K)).astype(np.float32)  # world direction = M [u, v, 1]
    batch = M.shape[:-2]
    pixels = np.ones((height, width, 3), np.float32)
    pixels[..., 0] = np.arange(width, dtype=np.float32)
    pixels[..., 1] = np.arange(height, dtype=np.float32)[:, None]
    rays = np.empty(batch + (height * width, 6), np.float32)
    rays[..., :3] = camera_center(E).astype(np.float32)[..., None, :]
    rays[..., 3:] = pixels.reshape(-1, 3) @ np.swapaxes(M, -1, -2)
    return rays.reshape(batch + (height, width, 6))


def depth_to_world(depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray) -> np.ndarray:
    """z-depth ``[H, W]`` → world points ``[H, W, 3]``."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    cam = (pix @ np.linalg.inv(K).T) * depth[..., None]
    world_from_cam = invert_extrinsics(cam_from_world)
    return cam @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]


def project(points: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points ``[..., 3]`` → pixels ``[..., 2]`` and z-depth ``[...]`` in the camera."""
    cam = points @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
    z = cam[..., 2]
    pix = cam @ K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = pix[..., :2] / pix[..., 2:3]
    return uv, z


def rotation_about_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation ``[3, 3]``."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def sparse_depth(points3d: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Project world points ``[P, 3]`` into each camera (``[S, 3, 4]``, ``[S, 3, 3]``): nearest z per pixel.

    Returns ``depth`` ``[S, H, W]`` float32 (0 = unknown) and ``valid`` ``[S, H, W]`` bool. No visibility test
    beyond keeping the nearest point per pixel (COLMAP tracks would be exact; points are usually few)."""
    S = extrinsics.shape[0]
    depth = np.full((S, height, width), np.inf, dtype=np.float32)
    for i in range(S):
        cam = points3d @ extrinsics[i, :3, :3].T + extrinsics[i, :3, 3]
        z = cam[:, 2]
        ok = z > 1e-6
        uv = cam[ok] @ intrinsics[i].T
        u = np.rint(uv[:, 0] / uv[:, 2]).astype(np.int64)
        v = np.rint(uv[:, 1] / uv[:, 2]).astype(np.int64)
        inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
        np.minimum.at(depth[i], (v[inside], u[inside]), z[ok][inside].astype(np.float32))
    valid = np.isfinite(depth)
    return np.where(valid, depth, 0).astype(np.float32), valid
