"""Offscreen pictures of a reconstruction (no GPU, no display): the coloured point cloud splatted through a
virtual camera placed behind and above the input cameras, with each input camera drawn as a frustum."""

from __future__ import annotations

import numpy as np

from app.exports.project_formats import camera_colors
from app.engine.reconstruction import PointCloud, Reconstruction


def _look_at(eye: np.ndarray, target: np.ndarray, down: np.ndarray) -> np.ndarray:
    """cam_from_world 4×4 (OpenCV axes) of a camera at ``eye`` looking at ``target`` with image-down ``down``."""
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(down, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z])
    T[:3, 3] = -T[:3, :3] @ eye
    return T


def virtual_camera(recon: Reconstruction, cloud: PointCloud, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A viewpoint that sees the whole cloud and all cameras: behind the mean camera, raised above it."""
    centres = recon.camera_centers()
    R = recon.cam_from_world[:, :3, :3]
    forward = R[:, 2, :].mean(0)
    forward /= np.linalg.norm(forward)
    down = R[:, 1, :].mean(0)
    down /= np.linalg.norm(down)
    target = np.median(cloud.xyz, axis=0) if len(cloud) else centres.mean(0) + forward
    extent = np.linalg.norm(np.percentile(cloud.xyz, 90, axis=0) - np.percentile(cloud.xyz, 10, axis=0)) if len(cloud) else 1.0
    eye = centres.mean(0) - forward * 0.8 * extent - down * 0.6 * extent
    T = _look_at(eye, target, down)
    f = 0.9 * max(width, height)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    return T, K


def render_reconstruction(
    recon: Reconstruction, cloud: PointCloud, width: int = 640, height: int = 480, point_px: int = 2,
    camera: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``uint8`` RGB ``[height, width, 3]``: points splatted far-to-near (a painter's z-buffer) on white,
    one coloured frustum per input camera; seen from ``camera`` (cam_from_world 4×4, K) or by default from
    :func:`virtual_camera` (pass one camera to compare two clouds from the same place)."""
    import cv2

    T, K = camera if camera is not None else virtual_camera(recon, cloud, width, height)
    image = np.full((height, width, 3), 255, np.uint8)
    cam = cloud.xyz @ T[:3, :3].T + T[:3, 3]
    front = cam[:, 2] > 1e-6
    cam, rgb = cam[front], cloud.rgb[front]
    uv = (cam[:, :2] / cam[:, 2:3]) * K[[0, 1], [0, 1]] + K[:2, 2]
    order = np.argsort(-cam[:, 2])  # far first, near overwrite
    u, v = np.round(uv[order]).astype(int).T
    rgb = rgb[order]
    for du in range(point_px):
        for dv in range(point_px):
            ok = (u + du >= 0) & (u + du < width) & (v + dv >= 0) & (v + dv < height)
            image[v[ok] + dv, u[ok] + du] = rgb[ok]
    # frustum size from the cloud's robust extent (a few stray points must not blow the frustums up)
    scale = 0.08 * np.linalg.norm(np.percentile(cloud.xyz, 95, 0) - np.percentile(cloud.xyz, 5, 0)) if len(cloud) else 0.1
    for i, color in enumerate(camera_colors(recon.num_views)):
        world_from_cam = np.linalg.inv(recon.cam_from_world[i])
        w, h = recon.image_sizes[i]
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float) - 0.5
        rays = np.linalg.solve(recon.intrinsics[i], np.c_[corners, np.ones(4)].T).T
        pts = np.vstack([np.zeros(3), rays / rays[:, 2:3] * scale])
        pts = pts @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]
        pc = pts @ T[:3, :3].T + T[:3, 3]
        if (pc[:, 2] <= 1e-6).any() or not np.isfinite(pc).all():
            continue
        px = np.round((pc[:, :2] / pc[:, 2:3]) * K[[0, 1], [0, 1]] + K[:2, 2]).astype(int)
        line_rgb = tuple(int(c) for c in color[:3])
        for a, b in [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)]:
            cv2.line(image, tuple(px[a]), tuple(px[b]), line_rgb, 2, cv2.LINE_AA)
    return image


def input_strip(recon: Reconstruction, height: int, max_views: int = 8) -> np.ndarray:
    """The network inputs side by side (at most ``max_views``), scaled to ``height``."""
    import cv2

    tiles = []
    for colors in recon.colors[:max_views]:
        h, w = colors.shape[:2]
        tiles.append(cv2.resize(colors, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA))
    return np.concatenate(tiles, axis=1)
