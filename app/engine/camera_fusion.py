"""Combine the network's cameras with the SfM cameras: place the views SfM could not register.

The network's cameras live in their own frame (world = first camera, arbitrary scale). A similarity
``x_sfm = s·R·x_net + t`` is fitted on the views both have — ``R`` by a robust chordal mean of the per-view
rotation offsets (the network's rotations are better than its translations), then ``s`` and ``t`` from the
camera centres by medians — and applied to the network cameras of the other views. Cameras are OpenCV
camera-from-world ``[S, 4, 4]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mum.geometry import camera_centers, rotation_angle_deg


@dataclass
class Similarity:
    """``x_target = scale · rotation · x_source + translation``."""

    scale: float
    rotation: np.ndarray  # [3, 3]
    translation: np.ndarray  # [3]

    def apply_to_cameras(self, cam_from_world: np.ndarray) -> np.ndarray:
        """Camera-from-source-world ``[N, 4, 4]`` → camera-from-target-world, camera frames scaled by ``scale``
        (so that depths are in target units): ``R' = R_c Rᵀ``, ``t' = s·t_c − R_c Rᵀ t``."""
        out = np.tile(np.eye(4), (len(cam_from_world), 1, 1))
        Rc, tc = cam_from_world[:, :3, :3], cam_from_world[:, :3, 3]
        out[:, :3, :3] = Rc @ self.rotation.T
        out[:, :3, 3] = self.scale * tc - np.einsum("nij,j->ni", out[:, :3, :3], self.translation)
        return out


# Sim(3) algebra (free functions: the pose graph composes many of them)
def compose(a: Similarity, b: Similarity) -> Similarity:
    """``a ∘ b``: ``x → a(b(x))``."""
    return Similarity(a.scale * b.scale, a.rotation @ b.rotation, a.scale * a.rotation @ b.translation + a.translation)


def inverse(a: Similarity) -> Similarity:
    """``a⁻¹``."""
    return Similarity(1.0 / a.scale, a.rotation.T, -(a.rotation.T @ a.translation) / a.scale)


def identity() -> Similarity:
    return Similarity(1.0, np.eye(3), np.zeros(3))


def apply(sim: Similarity, points: np.ndarray) -> np.ndarray:
    """``[N, 3]`` points through ``sim``."""
    return sim.scale * points @ sim.rotation.T + sim.translation


def _project_to_rotation(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """Robust similarity from cameras ``source`` to ``target`` (``[N, 4, 4]`` camera-from-world of the same
    views in two frames, ``N ≥ 1``). With one view the scale is 1."""
    Rs, Rt = source[:, :3, :3], target[:, :3, :3]
    offsets = np.einsum("nji,njk->nik", Rt, Rs)  # R = R_tᵀ R_s per view (R_c,t = R_c,s Rᵀ)
    keep = np.ones(len(offsets), bool)
    for _ in range(3):  # chordal mean, then drop views far from it
        R = _project_to_rotation(offsets[keep].sum(0))
        residual = rotation_angle_deg(torch.from_numpy(R), torch.from_numpy(offsets)).numpy()  # angle of Rᵀ·offset
        new_keep = residual <= max(5.0, 2.0 * float(np.median(residual)))
        if new_keep.sum() == 0 or (new_keep == keep).all():
            break
        keep = new_keep
    cs, ct = camera_centers(source)[keep], camera_centers(target)[keep]
    rotated = cs @ R.T
    scale = 1.0
    if len(cs) >= 2:
        ds = np.linalg.norm(rotated - np.median(rotated, 0), axis=1)
        dt = np.linalg.norm(ct - np.median(ct, 0), axis=1)
        valid = ds > 1e-9 * max(1.0, float(ds.max()))
        if valid.any() and float(np.median(dt[valid])) > 0:
            scale = float(np.median(dt[valid]) / np.median(ds[valid]))
    translation = np.median(ct - scale * rotated, axis=0)
    return Similarity(scale, R, translation)


def fill_unregistered(network: np.ndarray, sfm: np.ndarray, registered: np.ndarray
                      ) -> tuple[np.ndarray, list[str], Similarity]:
    """Cameras for every view: SfM's where ``registered`` ``[S]``, the network's placed by the fitted
    similarity elsewhere. Returns ``[S, 4, 4]`` in the SfM frame, each view's source (``"sfm"`` or
    ``"network"``) and the similarity (its scale maps network depth to SfM units). Needs at least one
    registered view."""
    if not registered.any():
        raise ValueError("no registered view to align the network's cameras to")
    sim = fit_similarity(network[registered], sfm[registered])
    placed = sim.apply_to_cameras(network)
    out = np.where(registered[:, None, None], sfm, placed)
    return out, ["sfm" if r else "network" for r in registered], sim
