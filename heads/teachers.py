"""Distillation teachers: where the student's targets come from.

A teacher maps a batch (``images`` ``[B, S, 3, H, W]`` in [0, 1], ``index`` ``[B]``, and for posed sources
``extrinsics``/``intrinsics``/``depth``/``valid``) to normalised targets (:func:`normalize_targets`):
``pose_enc`` ``[B, S, 9]``, ``extrinsics`` ``[B, S, 3, 4]``, ``intrinsics`` ``[B, S, 3, 3]``, ``depth``
``[B, S, H, W]``, ``world_points`` ``[B, S, H, W, 3]``, ``valid`` ``[B, S, H, W]`` bool, and for model
teachers ``depth_conf``/``world_points_conf`` ``[B, S, H, W]``.

* :class:`GroundTruthTeacher` — exact cameras and dense depth of the synthetic scene engine;
* :class:`ColmapTeacher` — COLMAP poses/intrinsics and sparse depth from its triangulated points;
* :class:`ModelTeacher` — any model with the ``Reconstructor`` interface (a ``vggt-1b`` checkpoint or a
  project checkpoint) run under ``no_grad`` on the same views;
* :class:`CachedTeacher` — wraps a teacher and stores its targets per sample as compressed ``.npz``
  (float16, confidences kept), so a student can train later without the teacher in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mum.data.groundtruth import normalize_by_mean_distance, to_first_camera_frame
from mum.geometry import (
    depth_to_world_points,
    extrinsics_intrinsics_to_pose_encoding,
    pose_encoding_to_extrinsics_intrinsics,
    transform_points,
)

Targets = dict[str, Tensor]


class Teacher(Protocol):
    def __call__(self, batch: Mapping[str, Any]) -> Targets: ...


def _homogeneous(extrinsics: Tensor) -> Tensor:
    out = torch.zeros(*extrinsics.shape[:-2], 4, 4, dtype=extrinsics.dtype, device=extrinsics.device)
    out[..., :3, :4] = extrinsics[..., :3, :4]
    out[..., 3, 3] = 1
    return out


def normalize_targets(
    extrinsics: Tensor, intrinsics: Tensor, depth: Tensor, valid: Tensor, world_points: Optional[Tensor] = None
) -> Targets:
    """Express cameras and points in the first camera's frame and divide every length by the mean distance of
    the valid points to that origin (per scene).

    ``extrinsics`` ``[B, S, 3, 4]`` camera-from-world, ``intrinsics`` ``[B, S, 3, 3]``, ``depth`` ``[B, S, H, W]``,
    ``valid`` ``[B, S, H, W]`` bool; ``world_points`` ``[B, S, H, W, 3]`` in the same world (default: unprojected
    depth). Returns the target dict described in the module docstring (without confidences)."""
    H, W = depth.shape[-2:]
    rel = to_first_camera_frame(extrinsics.float())  # cam_i-from-cam0
    depth = depth.float()
    if world_points is None:
        points = depth_to_world_points(depth, rel, intrinsics.float())
    else:
        points = transform_points(_homogeneous(extrinsics.float())[:, :1], world_points.float())  # world → cam0
    v = valid.bool() & torch.isfinite(points).all(-1) & (depth > 0)
    points = torch.where(v[..., None], points, torch.zeros_like(points))
    rel, depth, points, scale = normalize_by_mean_distance(rel, depth, points, v)
    depth = torch.where(v, depth, torch.zeros_like(depth))
    return {
        "pose_enc": extrinsics_intrinsics_to_pose_encoding(rel, intrinsics.float(), (H, W)),
        "extrinsics": rel,
        "intrinsics": intrinsics.float(),
        "depth": depth,
        "world_points": points,
        "valid": v,
        "scale": scale,
    }


class GroundTruthTeacher:
    """Targets from exact ground truth carried by the batch (synthetic scene engine)."""

    def __call__(self, batch: Mapping[str, Any]) -> Targets:
        return normalize_targets(batch["extrinsics"], batch["intrinsics"], batch["depth"], batch["valid"])


class ColmapTeacher(GroundTruthTeacher):
    """COLMAP poses and intrinsics with sparse depth (``valid`` only where a triangulated point projects, see
    :func:`mum.geometry.sparse_depth`). Same normalisation as ground truth; the dense gradient terms see few neighbours."""


class ModelTeacher:
    """Run a ``Reconstructor``-like model (``forward(images) -> raw dict``) without gradients; resize the views
    to the teacher's patch multiple and the outputs back. Valid pixels: point confidence at or above the
    per-view ``conf_percentile``."""

    def __init__(self, model: nn.Module, conf_percentile: float = 0.0, precision: str = "bf16") -> None:
        self.model = model.eval().requires_grad_(False)
        self.conf_percentile = conf_percentile
        self.precision = precision

    def _patch(self) -> int:
        for attr in ("patch_size",):
            if hasattr(self.model, attr):
                return int(getattr(self.model, attr))
        enc = getattr(self.model, "encoder", None)
        return int(getattr(enc, "patch_size", 16))

    @torch.no_grad()
    def __call__(self, batch: Mapping[str, Any]) -> Targets:
        images = batch["images"]
        B, S, _, H, W = images.shape
        p = self._patch()
        th, tw = max(p, round(H / p) * p), max(p, round(W / p) * p)
        x = images if (th, tw) == (H, W) else F.interpolate(images.flatten(0, 1), (th, tw), mode="bilinear",
                                                             align_corners=False).view(B, S, 3, th, tw)
        dev = images.device
        ctx = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" and self.precision == "bf16"
               else torch.autocast("cpu", enabled=False))
        with ctx:
            out = self.model(x)
        pose = (out["pose_enc_list"][-1] if "pose_enc_list" in out else out["pose_enc"]).float()

        def back(t: Tensor) -> Tensor:  # [B, S, h, w, C] → [B, S, H, W, C]
            t = t.float()
            if t.shape[2:4] == (H, W):
                return t
            C = t.shape[-1]
            r = F.interpolate(t.flatten(0, 1).permute(0, 3, 1, 2), (H, W), mode="bilinear", align_corners=False)
            return r.permute(0, 2, 3, 1).reshape(B, S, H, W, C)

        depth = back(out["depth"])[..., 0]
        points = back(out["world_points"])
        conf = back(out["world_points_conf"][..., None])[..., 0]
        dconf = back(out["depth_conf"][..., None])[..., 0]
        extr, intr = pose_encoding_to_extrinsics_intrinsics(pose, (H, W))
        valid = torch.ones_like(conf, dtype=torch.bool)
        if self.conf_percentile > 0:
            thr = torch.quantile(conf.flatten(2), self.conf_percentile / 100, dim=-1)[..., None, None]
            valid = conf >= thr
        t = normalize_targets(extr, intr, depth, valid, world_points=points)
        t["depth_conf"], t["world_points_conf"] = dconf, conf
        return t


class CachedTeacher:
    """Cache another teacher's targets per sample in ``cache_dir/<split>/<index>_<views>.npz`` (compressed,
    float16, with confidences). On a full cache hit the inner teacher is not run (and may be ``None``)."""

    KEYS = ("pose_enc", "extrinsics", "intrinsics", "depth", "world_points", "valid", "scale",
            "depth_conf", "world_points_conf")

    def __init__(self, inner: Optional[Teacher], cache_dir: str | Path, split: str = "train") -> None:
        self.inner, self.dir = inner, Path(cache_dir) / split
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, index: int, views: int) -> Path:
        return self.dir / f"{index:09d}_{views:02d}.npz"

    def __call__(self, batch: Mapping[str, Any]) -> Targets:
        S = batch["images"].shape[1]
        dev = batch["images"].device
        paths = [self._path(int(i), S) for i in batch["index"]]
        if all(p.exists() for p in paths):
            loaded = [np.load(p) for p in paths]
            return {k: torch.stack([torch.from_numpy(f[k].astype(bool if k == "valid" else np.float32)) for f in loaded]).to(dev)
                    for k in self.KEYS if k in loaded[0].files}
        if self.inner is None:
            raise FileNotFoundError(f"teacher cache miss ({paths[0]}) and no teacher to fill it")
        t = self.inner(batch)
        for b, p in enumerate(paths):
            arrays = {k: (t[k][b].cpu().numpy() if k == "valid" else t[k][b].float().cpu().numpy().astype(np.float16))
                      for k in self.KEYS if k in t}
            arrays["scale"] = t["scale"][b].float().cpu().numpy().astype(np.float32)
            tmp = p.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **arrays)
            tmp.replace(p)
        return t
