"""Numpy in, numpy out: the project's geometry (:mod:`mum.geometry`) for tests that hold numpy scenes."""

from __future__ import annotations

import numpy as np
import torch

from mum.geometry import camera_points_to_pixels, depth_to_world_points, world_points_to_camera_points


def unproject(depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray) -> np.ndarray:
    """z-depth ``[H, W]`` → world points ``[H, W, 3]`` (float64)."""
    as64 = (torch.from_numpy(np.asarray(a, np.float64)) for a in (depth, cam_from_world, K))
    return depth_to_world_points(*as64).numpy()


def project(points: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points ``[..., 3]`` → pixels ``[..., 2]`` and z-depth ``[...]`` in the camera."""
    cam = world_points_to_camera_points(torch.from_numpy(np.asarray(points, np.float64)),
                                        torch.from_numpy(np.asarray(cam_from_world, np.float64)))
    uv = camera_points_to_pixels(cam, torch.from_numpy(np.asarray(K, np.float64)))
    return uv.numpy(), cam[..., 2].numpy()
