"""Evaluation metrics of the paper's protocols (used by ``mum-eval`` and the in-training evaluation).

Pose AUC and relative pose errors come from :mod:`heads.geometry` (``relative_pose_errors``, ``pose_auc``);
this module adds what that one lacks: view sampling, depth metrics with per-image median scaling, and the
point-cloud protocol (Umeyama Sim(3) then point-to-point ICP; accuracy, completeness, normal consistency).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .geometry import pose_auc, relative_pose_errors, umeyama_alignment


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
