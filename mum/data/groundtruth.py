"""Ground-truth geometry for training samples (torch, any leading batch dims ``...``):

- :func:`to_first_camera_frame` re-expresses extrinsics in the frame of view 0 (view 0 becomes ``[I | 0]``);
- :func:`normalize_by_mean_distance` divides depth, points and translations by the mean distance of valid
  points to the origin (the training convention of docs/architecture.md).
"""

from __future__ import annotations

import torch


def to_first_camera_frame(extrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-from-world ``[..., S, 3, 4]`` → camera-from-first-camera ``[..., S, 3, 4]``."""
    R0, t0 = extrinsics[..., :1, :3, :3], extrinsics[..., :1, :3, 3:]
    R, t = extrinsics[..., :3, :3], extrinsics[..., :3, 3:]
    R0t = R0.transpose(-1, -2)
    # x_i = R (R0ᵀ (x_0 − t0)) + t
    return torch.cat([R @ R0t, t - R @ R0t @ t0], dim=-1)


def mean_valid_distance(points: torch.Tensor, valid: torch.Tensor, sample_dims: int = 4) -> torch.Tensor:
    """Mean ``‖p‖`` over valid points, per sample: ``points [..., S, H, W, 3]``, ``valid [..., S, H, W]`` →
    ``[...]`` (the last ``sample_dims`` of ``points`` form one sample). Samples without valid points give 1."""
    dist = points.norm(dim=-1) * valid
    dims = tuple(range(-(sample_dims - 1), 0))
    count = valid.sum(dim=dims)
    mean = dist.sum(dim=dims) / count.clamp(min=1)
    return torch.where((count > 0) & (mean > 0), mean, torch.ones_like(mean))


def normalize_by_mean_distance(extrinsics: torch.Tensor, depths: torch.Tensor, points: torch.Tensor,
                               valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Divide translations ``[..., S, 3, 4]``, depths ``[..., S, H, W]`` and points ``[..., S, H, W, 3]`` by
    the mean distance of valid points to the origin; returns the three and the scale ``[...]``."""
    scale = mean_valid_distance(points, valid)
    s = scale[..., None, None, None]
    ext = torch.cat([extrinsics[..., :3], extrinsics[..., 3:] / s], dim=-1)
    return ext, depths / s, points / s[..., None], scale
