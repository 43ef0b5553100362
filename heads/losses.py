"""VGGT-style distillation losses on the ``Reconstructor``'s raw training outputs.

Shapes: ``B`` scenes, ``S`` views, ``H × W`` pixels. Targets are in the first camera's frame and normalised
(see :func:`heads.teachers.normalize_targets`); predictions are compared to them directly.

* camera: L1 (or Huber) on the 9-d pose encodings of every refinement iteration, weights ``γᵢ ∝ 0.6^(n-1-i)``
  (later iterations count more), normalised to sum 1;
* depth and points: confidence-weighted regression ``γ · c · ‖pred - gt‖`` plus a gradient term (finite
  differences of the error for depth, normal directions for points) and the regulariser ``-α · log c``, on
  valid pixels whose residual is within the ``valid_quantile`` (98 %) of residuals (outliers dropped).

Every regression term is exactly 0 on a perfect prediction and positive otherwise. The regulariser
``-α log c`` is ≤ 0 by design (``c = 1 + exp(x) > 1``); it is reported separately as ``*_conf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class LossConfig:
    """Weights of the distillation losses (defaults: the paper's frozen-encoder recipe)."""

    camera: float = 5.0
    depth: float = 1.0
    points: float = 1.0
    camera_type: str = "l1"  # l1 | huber
    camera_iter_gamma: float = 0.6
    gamma: float = 1.0  # confidence-weighted regression weight
    alpha: float = 0.2  # -α log(conf)
    grad_weight: float = 1.0
    grad_scales: int = 3
    valid_quantile: float = 0.98


def iteration_weights(n: int, gamma: float) -> list[float]:
    """Weights of ``n`` refinement iterations: ``γ^(n-1-i)`` normalised to sum 1."""
    w = [gamma ** (n - 1 - i) for i in range(n)]
    return [x / sum(w) for x in w]


def camera_loss(pred_encodings: Sequence[Tensor], gt_encoding: Tensor, cfg: LossConfig) -> dict[str, Tensor]:
    """Pose-encoding loss over all iterations. ``pred_encodings``: list of ``[B, S, 9]``; ``gt_encoding``
    ``[B, S, 9]``. Returns ``camera`` (total) and its parts ``camera_T``, ``camera_R``, ``camera_fov``
    (of the last iteration, for logging)."""
    def dist(a: Tensor, b: Tensor) -> Tensor:
        if cfg.camera_type == "huber":
            return F.huber_loss(a, b, reduction="none", delta=1.0).mean()
        return (a - b).abs().mean()

    total = gt_encoding.new_zeros(())
    parts: dict[str, Tensor] = {}
    for w, pred in zip(iteration_weights(len(pred_encodings), cfg.camera_iter_gamma), pred_encodings):
        pred = pred.float()
        parts = {"camera_T": dist(pred[..., :3], gt_encoding[..., :3]),
                 "camera_R": dist(pred[..., 3:7], gt_encoding[..., 3:7]),
                 "camera_fov": dist(pred[..., 7:], gt_encoding[..., 7:])}
        total = total + w * sum(parts.values())
    return {"camera": total, **{k: v.detach() for k, v in parts.items()}}


def quantile_mask(residual: Tensor, valid: Tensor, q: float) -> Tensor:
    """``valid`` restricted to residuals ≤ the ``q``-quantile of the valid residuals (``q >= 1``: all)."""
    if q >= 1 or not bool(valid.any()):
        return valid
    vals = residual.detach()[valid]
    k = max(1, int(round(q * vals.numel())))
    thr = vals.kthvalue(k).values
    return valid & (residual.detach() <= thr)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1)


def gradient_term(err: Tensor, conf: Tensor, valid: Tensor, scales: int) -> Tensor:
    """Multi-scale finite-difference loss of the error map. ``err`` ``[N, H, W, C]`` (pred - gt),
    ``conf``/``valid`` ``[N, H, W]``; 0 iff the error is locally constant (e.g. a perfect prediction)."""
    total = err.new_zeros(())
    for s in range(scales):
        e, c, v = err[:, :: 2**s, :: 2**s], conf[:, :: 2**s, :: 2**s], valid[:, :: 2**s, :: 2**s]
        if min(e.shape[1:3]) < 2:
            break
        for dim in (1, 2):
            n = e.shape[dim] - 1
            de = (e.narrow(dim, 1, n) - e.narrow(dim, 0, n)).abs().sum(-1)
            vv = v.narrow(dim, 1, n) & v.narrow(dim, 0, n)
            total = total + _masked_mean(de * c.narrow(dim, 0, n), vv)
    return total / max(1, scales)


def point_normals(points: Tensor) -> tuple[Tensor, Tensor]:
    """Unit normals ``[N, H-1, W-1, 3]`` of a point map ``[N, H, W, 3]`` from right/down neighbours, and where
    they are defined (non-degenerate)."""
    dx = points[:, :-1, 1:] - points[:, :-1, :-1]
    dy = points[:, 1:, :-1] - points[:, :-1, :-1]
    n = torch.linalg.cross(dx, dy, dim=-1)
    norm = n.norm(dim=-1)
    return n / norm.clamp_min(1e-12)[..., None], norm > 1e-12


def normal_term(pred: Tensor, gt: Tensor, conf: Tensor, valid: Tensor, scales: int) -> Tensor:
    """Multi-scale ``1 - cos(n_pred, n_gt)`` of point-map normals, confidence-weighted; inputs as
    :func:`gradient_term` with ``C = 3``."""
    total = pred.new_zeros(())
    for s in range(scales):
        p, g, c, v = (t[:, :: 2**s, :: 2**s] for t in (pred, gt, conf, valid))
        if min(p.shape[1:3]) < 2:
            break
        np_, okp = point_normals(p)
        ng, okg = point_normals(g)
        vv = v[:, :-1, :-1] & v[:, 1:, :-1] & v[:, :-1, 1:] & okg
        cos = (np_ * ng).sum(-1).clamp(-1, 1)
        total = total + _masked_mean((1 - cos) * c[:, :-1, :-1], vv)
    return total / max(1, scales)


def dense_loss(
    pred: Tensor, conf: Tensor, gt: Tensor, valid: Tensor, cfg: LossConfig, grad: str, name: str
) -> dict[str, Tensor]:
    """Confidence-weighted regression + gradient term + ``-α log c`` for a dense map.

    ``pred`` ``[B, S, H, W, C]``, ``conf`` ``[B, S, H, W]``, ``gt`` ``[B, S, H, W, C]``, ``valid``
    ``[B, S, H, W]`` bool; ``grad`` is ``"grad"`` (depth) or ``"normal"`` (points)."""
    B, S, H, W, C = pred.shape
    pred, gt, conf = pred.float().reshape(B * S, H, W, C), gt.float().reshape(B * S, H, W, C), conf.float().reshape(B * S, H, W)
    residual = (pred - gt).norm(dim=-1)
    valid = quantile_mask(residual, valid.reshape(B * S, H, W), cfg.valid_quantile)
    reg = _masked_mean(cfg.gamma * conf * residual, valid)
    if grad == "normal":
        g = normal_term(pred, gt, conf, valid, cfg.grad_scales)
    else:
        g = gradient_term(pred - gt, conf, valid, cfg.grad_scales)
    conf_term = -cfg.alpha * _masked_mean(torch.log(conf), valid)
    return {name: reg + cfg.grad_weight * g + conf_term, f"{name}_reg": reg.detach(), f"{name}_grad": g.detach(),
            f"{name}_conf": conf_term.detach()}


def distillation_loss(pred: Mapping[str, object], targets: Mapping[str, Tensor], cfg: LossConfig) -> dict[str, Tensor]:
    """All losses and their weighted sum ``loss``.

    ``pred``: the ``Reconstructor``'s raw outputs: ``pose_enc_list`` (list of ``[B, S, 9]``), ``depth``
    ``[B, S, H, W, 1]``, ``depth_conf`` ``[B, S, H, W]``, ``world_points`` ``[B, S, H, W, 3]``,
    ``world_points_conf`` ``[B, S, H, W]``. ``targets``: ``pose_enc`` ``[B, S, 9]``, ``depth``
    ``[B, S, H, W]``, ``world_points`` ``[B, S, H, W, 3]``, ``valid`` ``[B, S, H, W]`` bool."""
    out: dict[str, Tensor] = {}
    total = targets["pose_enc"].new_zeros(())
    if cfg.camera > 0:
        out.update(camera_loss(pred["pose_enc_list"], targets["pose_enc"], cfg))  # type: ignore[arg-type]
        total = total + cfg.camera * out["camera"]
    if cfg.depth > 0 and pred.get("depth") is not None:
        out.update(dense_loss(pred["depth"], pred["depth_conf"], targets["depth"][..., None], targets["valid"], cfg,
                              "grad", "depth"))
        total = total + cfg.depth * out["depth"]
    if cfg.points > 0 and pred.get("world_points") is not None:
        out.update(dense_loss(pred["world_points"], pred["world_points_conf"], targets["world_points"],
                              targets["valid"], cfg, "normal", "points"))
        total = total + cfg.points * out["points"]
    out["loss"] = total
    return out
