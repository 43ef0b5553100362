"""Evaluation metrics of the paper's protocols (used by ``mum-eval`` and the in-training evaluation).

The project's one evaluation-metrics module: relative pose errors (RRA, RTA) and pose AUC over view pairs,
Umeyama Sim(3) alignment, view sampling, depth metrics with per-image median scaling, and the point-cloud
protocol (Umeyama Sim(3) then point-to-point ICP; accuracy, completeness, normal consistency). Functions on
tensors accept arbitrary leading batch dimensions ``...``.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from mum.geometry import rotation_angle_deg


def sample_views(num_available: int, num: int = 10, seed: int = 0) -> list[int]:
    """``num`` view indices drawn without replacement with a fixed seed (sorted; all if fewer)."""
    if num_available <= num:
        return list(range(num_available))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(num_available, size=num, replace=False).tolist())


def pose_auc30(pred_extrinsics: Tensor, gt_extrinsics: Tensor) -> dict[str, float]:
    """AUC@30 (in percent) over all view pairs, plus mean RRA/RTA; extrinsics ``[S, 3, 4]``."""
    rra, rta = relative_pose_errors(pred_extrinsics.double(), gt_extrinsics.double())
    return {"auc30": 100 * float(pose_auc(rra, rta, 30)), "rra": float(rra.mean()), "rta": float(rta.mean())}


def depth_metrics(pred: Tensor, gt: Tensor, valid: Tensor) -> dict[str, float]:
    """AbsRel and δ<1.25 (percent) after per-image median scaling; ``[S, H, W]`` each, averaged over images."""
    absrel, delta = [], []
    for p, g, v in zip(pred.double(), gt.double(), valid.bool()):
        v = v & (g > 0) & torch.isfinite(p) & (p > 0)
        if int(v.sum()) == 0:
            continue
        p, g = p[v], g[v]
        p = p * (g.median() / p.median())
        absrel.append(float(((p - g).abs() / g).mean()))
        delta.append(100 * float((torch.maximum(p / g, g / p) < 1.25).double().mean()))
    return {"abs_rel": float(np.mean(absrel)) if absrel else float("nan"),
            "delta_1.25": float(np.mean(delta)) if delta else float("nan")}


def _cloud(points: np.ndarray):
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    return pc


def pointcloud_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    icp_threshold: Optional[float] = None,
    normal_k: int = 16,
    max_points: int = 200_000,
    seed: int = 0,
) -> dict[str, float]:
    """Paper protocol on corresponding point sets ``pred``/``gt`` ``[N, 3]`` (valid pixels of the same views):
    Umeyama Sim(3) on the correspondences, then point-to-point ICP (``icp_threshold`` default: 5 % of the GT
    extent), then accuracy (pred→GT nearest neighbour), completeness (GT→pred) mean and median, and normal
    consistency (mean |cos| between nearest-neighbour normals, both directions). Units: GT's."""
    import open3d as o3d

    rng = np.random.default_rng(seed)
    if len(pred) > max_points:
        keep = rng.choice(len(pred), max_points, replace=False)
        pred, gt = pred[keep], gt[keep]
    s, R, t = umeyama_alignment(torch.from_numpy(pred).double(), torch.from_numpy(gt).double())
    aligned = (float(s) * pred @ R.numpy().T) + t.numpy()
    extent = float(np.linalg.norm(gt.max(0) - gt.min(0)))
    thr = icp_threshold if icp_threshold is not None else 0.05 * extent
    src, dst = _cloud(aligned), _cloud(gt)
    reg = o3d.pipelines.registration.registration_icp(
        src, dst, thr, np.eye(4), o3d.pipelines.registration.TransformationEstimationPointToPoint())
    src.transform(reg.transformation)
    for pc in (src, dst):
        pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(normal_k))
    p, g = np.asarray(src.points), np.asarray(dst.points)
    pn, gn = np.asarray(src.normals), np.asarray(dst.normals)
    from scipy.spatial import cKDTree

    ig = cKDTree(g).query(p, k=1)[1]
    ip = cKDTree(p).query(g, k=1)[1]
    acc = np.linalg.norm(p - g[ig], axis=1)
    comp = np.linalg.norm(g - p[ip], axis=1)
    nc_acc = np.abs((pn * gn[ig]).sum(1))
    nc_comp = np.abs((gn * pn[ip]).sum(1))
    return {"acc_mean": float(acc.mean()), "acc_median": float(np.median(acc)),
            "comp_mean": float(comp.mean()), "comp_median": float(np.median(comp)),
            "nc_mean": float((nc_acc.mean() + nc_comp.mean()) / 2),
            "nc_median": float((np.median(nc_acc) + np.median(nc_comp)) / 2),
            "icp_fitness": float(reg.fitness)}


# ----------------------------------------------------------------------------------------------------------------
# Similarity alignment
# ----------------------------------------------------------------------------------------------------------------


def umeyama_alignment(
    source: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    with_scale: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form least-squares similarity ``target ≈ s R source + t`` (Umeyama 1991), optionally weighted.

    Minimises ``Σ_i w_i ‖target_i - (s R source_i + t)‖²`` with ``R ∈ SO(3)`` (reflections excluded).
    Solved in float64; results are cast back to the input dtype.

    Args:
        source: ``[..., N, 3]`` points to move (e.g. predicted).
        target: ``[..., N, 3]`` corresponding points (e.g. ground truth).
        weights: optional ``[..., N]`` non-negative weights (e.g. a validity mask or confidence).
        with_scale: if False, ``s = 1`` (rigid alignment).

    Returns:
        ``(scale [...], rotation [..., 3, 3], translation [..., 3])``; apply with
        ``scale[..., None, None] * source @ rotation.mT + translation[..., None, :]``.
    """
    if source.shape != target.shape or source.shape[-1] != 3:
        raise ValueError(f"source {tuple(source.shape)} and target {tuple(target.shape)} must both be [..., N, 3]")
    dtype = source.dtype
    x, y = source.double(), target.double()
    w = torch.ones_like(x[..., 0]) if weights is None else weights.double().expand_as(x[..., 0])
    w = w / w.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)

    mean_x = (w[..., None] * x).sum(dim=-2)
    mean_y = (w[..., None] * y).sum(dim=-2)
    xc, yc = x - mean_x[..., None, :], y - mean_y[..., None, :]
    covariance = (w[..., None, None] * yc[..., :, None] * xc[..., None, :]).sum(dim=-3)  # Σ_xy = E[(y-μy)(x-μx)ᵀ]
    u, singular, vh = torch.linalg.svd(covariance)
    sign = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    d = torch.ones_like(singular)
    d[..., 2] = sign  # flip the weakest axis if the best orthogonal fit is a reflection
    rotation = u @ torch.diag_embed(d) @ vh
    if with_scale:
        variance_x = (w * (xc * xc).sum(dim=-1)).sum(dim=-1)
        scale = (singular * d).sum(dim=-1) / variance_x.clamp_min(torch.finfo(torch.float64).tiny)
    else:
        scale = torch.ones_like(mean_x[..., 0])
    translation = mean_y - scale[..., None] * (rotation @ mean_x[..., None]).squeeze(-1)
    return scale.to(dtype), rotation.to(dtype), translation.to(dtype)


# ----------------------------------------------------------------------------------------------------------------
# Pose evaluation (paper protocol)
# ----------------------------------------------------------------------------------------------------------------


def translation_angle_deg(
    translation_a: torch.Tensor, translation_b: torch.Tensor, sign_ambiguous: bool = True, eps: float = 1e-15
) -> torch.Tensor:
    """Angle in degrees between translation directions ``[..., 3]``.

    With ``sign_ambiguous`` (the paper's RTA) the result is ``min(θ, 180° - θ)``. A zero-length translation has
    no direction and scores 90 degrees (as the official evaluation does).
    """
    cross = torch.linalg.cross(translation_a, translation_b, dim=-1).norm(dim=-1)
    dot = (translation_a * translation_b).sum(dim=-1)
    theta = torch.rad2deg(torch.atan2(cross, dot))
    degenerate = (translation_a.norm(dim=-1) <= eps) | (translation_b.norm(dim=-1) <= eps)
    theta = torch.where(degenerate, torch.full_like(theta, 90.0), theta)
    if sign_ambiguous:
        theta = torch.minimum(theta, 180.0 - theta)
    return theta


def relative_pose_errors(
    pred_extrinsics: torch.Tensor, gt_extrinsics: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative rotation and translation errors (RRA, RTA in degrees) over all view pairs ``i < j``.

    For each pair the relative pose ``T_ij = T_j T_i⁻¹`` (camera ``i`` to camera ``j``) is compared between
    prediction and ground truth: RRA = angle between the relative rotations, RTA = angle between the relative
    translation directions as ``min(θ, 180° - θ)``. Both are invariant to a global similarity of either world,
    so no alignment is needed.

    Args:
        pred_extrinsics: ``[..., S, 3, 4]`` (or ``[..., S, 4, 4]``) camera-from-world.
        gt_extrinsics: same shape.

    Returns:
        ``(rra [..., P], rta [..., P])`` with ``P = S (S - 1) / 2`` pairs in ``torch.combinations`` order.
    """
    num_views = pred_extrinsics.shape[-3]
    pairs = torch.combinations(torch.arange(num_views, device=pred_extrinsics.device), r=2)
    first, second = pairs[:, 0], pairs[:, 1]

    def relative(extrinsics: torch.Tensor) -> torch.Tensor:
        rotation, translation = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
        r_ij = rotation[..., second, :, :] @ rotation[..., first, :, :].transpose(-1, -2)
        t_ij = translation[..., second, :] - (r_ij @ translation[..., first, :, None]).squeeze(-1)
        return torch.cat((r_ij, t_ij[..., None]), dim=-1)

    rel_pred, rel_gt = relative(pred_extrinsics), relative(gt_extrinsics)
    rra = rotation_angle_deg(rel_gt[..., :3], rel_pred[..., :3])
    rta = translation_angle_deg(rel_gt[..., 3], rel_pred[..., 3])
    return rra, rta


def pose_auc(rra: torch.Tensor, rta: torch.Tensor, max_threshold: int = 30) -> torch.Tensor:
    """Pose AUC@``max_threshold`` in [0, 1] over the last dim of pair errors (degrees).

    Pair error ``e = max(RRA, RTA)``; with 1-degree bins the AUC is the mean over thresholds ``k = 1..T`` of the
    fraction of pairs with ``e < k`` (``e <= T`` for the last bin), i.e. the mean of the normalised cumulative
    histogram ``np.histogram(e, bins=arange(T + 1))`` as in the official evaluation. NaN errors count as
    failures.

    Args:
        rra, rta: ``[..., P]`` errors in degrees.

    Returns:
        ``[...]`` AUC values.
    """
    errors = torch.maximum(rra, rta)
    errors = torch.where(torch.isnan(errors), torch.full_like(errors, math.inf), errors)
    thresholds = torch.arange(1, max_threshold + 1, dtype=errors.dtype, device=errors.device)
    below = (errors[..., None] >= 0) & (errors[..., None] < thresholds)
    below[..., -1] |= (errors == max_threshold)  # numpy's last bin is closed on the right
    return below.to(errors.dtype).mean(dim=-2).mean(dim=-1)
