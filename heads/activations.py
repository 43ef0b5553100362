"""Output activations of the VGGT heads (names as in the official configs).

- Dense values: ``inv_log`` = sign(x)·(exp|x| − 1) (world points), ``exp`` (depth), ``linear``, ``relu``,
  ``sigmoid``, ``norm_exp`` (direction · expm1(‖x‖)), ``norm``, ``xy_inv_log``.
- Confidence: ``expp1`` = 1 + exp(x) (always > 1), ``expp0`` = exp(x), ``sigmoid``.
- Pose parts (camera head): ``linear``, ``inv_log``, ``exp``, ``relu``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["activate_confidence", "activate_dense", "activate_head", "activate_pose", "inverse_log_transform"]


def inverse_log_transform(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) · (exp(|x|) − 1)``: the inverse of ``sign(y) · log(1 + |y|)``."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def activate_dense(x: torch.Tensor, activation: str) -> torch.Tensor:
    """Activate dense predictions ``[..., C]`` (channels last)."""
    if activation == "inv_log":
        return inverse_log_transform(x)
    if activation == "exp":
        return torch.exp(x)
    if activation == "linear":
        return x
    if activation == "relu":
        return F.relu(x)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if activation == "norm_exp":
        norm = x.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        return x / norm * torch.expm1(norm)
    if activation == "norm":
        return x / x.norm(dim=-1, keepdim=True)
    if activation == "xy_inv_log":
        xy, z = x.split([x.shape[-1] - 1, 1], dim=-1)
        z = inverse_log_transform(z)
        return torch.cat((xy * z, z), dim=-1)
    raise ValueError(f"unknown activation {activation!r}")


def activate_confidence(x: torch.Tensor, conf_activation: str) -> torch.Tensor:
    """Activate a confidence logit of any shape."""
    if conf_activation == "expp1":
        return 1 + torch.exp(x)
    if conf_activation == "expp0":
        return torch.exp(x)
    if conf_activation == "sigmoid":
        return torch.sigmoid(x)
    raise ValueError(f"unknown conf_activation {conf_activation!r}")


def activate_head(
    out: torch.Tensor, activation: str = "inv_log", conf_activation: str = "expp1"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a dense head output ``[N, C, H, W]`` into values ``[N, H, W, C-1]`` and confidence ``[N, H, W]``.

    The last channel is the confidence logit; the others are activated with ``activation``.
    """
    channels_last = out.permute(0, 2, 3, 1)
    values, conf = channels_last[..., :-1], channels_last[..., -1]
    return activate_dense(values, activation), activate_confidence(conf, conf_activation)


def activate_pose(
    pose_encoding: torch.Tensor, trans_act: str = "linear", quat_act: str = "linear", fl_act: str = "linear"
) -> torch.Tensor:
    """Activate ``[..., 9]`` pose encodings part by part: translation ``[:3]``, quaternion ``[3:7]``, FoV ``[7:]``."""

    def act(x: torch.Tensor, name: str) -> torch.Tensor:
        if name not in ("linear", "inv_log", "exp", "relu"):
            raise ValueError(f"unknown pose activation {name!r}")
        return activate_dense(x, name)

    translation, quaternion, fov = pose_encoding[..., :3], pose_encoding[..., 3:7], pose_encoding[..., 7:]
    return torch.cat((act(translation, trans_act), act(quaternion, quat_act), act(fov, fl_act)), dim=-1)
