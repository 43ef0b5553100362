"""Pose graph over Sim(3) frames: chunks of a long input (:mod:`app.engine.chunked`) are nodes, measured similarities
between their frames (sequential joins and loop closures) are edges; :func:`optimise_pose_graph` finds the
similarities to the first frame that agree best with all edges (least squares on rotation vector, translation
relative to the chunk's depth and log scale), which spreads the drift a loop measures over the path."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from app.engine.camera_fusion import Similarity, compose, identity, inverse


@dataclass
class Edge:
    """Chunk ``i``'s frame → chunk ``j``'s, measured (``kind``: ``"sequential"`` or ``"loop"``)."""

    i: int
    j: int
    sim: Similarity
    kind: str = "sequential"
    residual: float = 0.0
    weight: float = 1.0
    kind_of_fit: str = "points"  # fitted on: "points" (shared depth), "cameras" (SfM's), "network cameras"
    scale_weight: Optional[float] = None  # the log-scale term's weight where it is not ``weight``


def _rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def chain(num_chunks: int, edges: Sequence[Edge]) -> list[Similarity]:
    """Every chunk's similarity to the first chunk's frame along the sequential edges ``k → k-1``."""
    out = [identity()]
    seq = {e.i: e for e in edges if e.kind == "sequential" and e.j == e.i - 1}
    for k in range(1, num_chunks):
        out.append(compose(out[k - 1], seq[k].sim))
    return out


def _measured_inverse(edges: Sequence[Edge]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The edges' nodes ``I``, ``J`` and their measurements inverted, ``E⁻¹``: rotations ``[m, 3, 3]``,
    translations ``[m, 3]``, log scales ``[m]``."""
    E_inv = [inverse(e.sim) for e in edges]
    return (np.array([e.i for e in edges]), np.array([e.j for e in edges]), np.stack([e.rotation for e in E_inv]),
            np.stack([e.translation for e in E_inv]), np.log([e.scale for e in E_inv]))


def _edge_residuals(R: np.ndarray, t: np.ndarray, log_s: np.ndarray, measured: tuple) -> np.ndarray:
    """``[m, 7]``: each edge's ``E⁻¹ ∘ S_j⁻¹ ∘ S_i`` as (rotation vector, translation, log scale), for nodes
    with rotations ``R`` ``[n, 3, 3]``, translations ``t`` ``[n, 3]`` and log scales ``[n]``."""
    from scipy.spatial.transform import Rotation

    I, J, Re, te, log_se = measured
    # S_j⁻¹ ∘ S_i: scale s_i / s_j, rotation R_jᵀ R_i, translation R_jᵀ (t_i − t_j) / s_j
    RjT = np.transpose(R[J], (0, 2, 1))
    t_a = np.einsum("mab,mb->ma", RjT, t[I] - t[J]) * np.exp(-log_s[J])[:, None]
    # E⁻¹ ∘ (S_j⁻¹ ∘ S_i)
    t_err = np.exp(log_se)[:, None] * np.einsum("mab,mb->ma", Re, t_a) + te
    return np.c_[Rotation.from_matrix(Re @ RjT @ R[I]).as_rotvec(), t_err, log_se + log_s[I] - log_s[J]]


def edge_errors(nodes: Sequence[Similarity], edges: Sequence[Edge], lengths: Sequence[float]) -> np.ndarray:
    """``[m, 3]``: how far each edge is from what ``nodes`` say: rotation (degrees), translation / ``lengths[i]``,
    |log scale| (unweighted)."""
    if not edges:
        return np.zeros((0, 3))
    measured = _measured_inverse(edges)
    r = _edge_residuals(np.stack([s.rotation for s in nodes]), np.stack([s.translation for s in nodes]),
                        np.log([s.scale for s in nodes]), measured)
    return np.c_[np.degrees(np.linalg.norm(r[:, :3], axis=1)),
                 np.linalg.norm(r[:, 3:6], axis=1) / np.asarray(lengths, float)[measured[0]], np.abs(r[:, 6])]


def optimise_pose_graph(initial: Sequence[Similarity], edges: Sequence[Edge], lengths: Sequence[float]
                        ) -> tuple[list[Similarity], dict]:
    """Least squares over the nodes' similarities to the first node's frame (held fixed): each edge
    ``i → j`` wants ``S_j ∘ E = S_i``; its residual ``E⁻¹ ∘ S_j⁻¹ ∘ S_i`` is measured as (rotation vector,
    translation / ``lengths[i]`` (the node's typical depth), log scale), times ``√weight``. Vectorised over the
    edges, with the Jacobian's sparsity (an edge's 7 residuals depend on its two nodes only): hundreds of
    nodes (the keyframes of a sequence, :mod:`app.engine.keyframe_loops`) take about a second. Returns the
    similarities and a summary (the cost before and after)."""
    from scipy.optimize import least_squares
    from scipy.sparse import lil_matrix
    from scipy.spatial.transform import Rotation

    n, m = len(initial), len(edges)
    if n <= 1 or not edges:
        return list(initial), {"edges": m, "cost_before": 0.0, "cost_after": 0.0}
    measured = _measured_inverse(edges)
    I, J = measured[0], measured[1]
    weights = np.array([(e.weight, e.weight, e.weight if e.scale_weight is None else e.scale_weight) for e in edges])
    norm = np.sqrt(weights / np.c_[np.ones(m), np.asarray(lengths, float)[I] ** 2, np.ones(m)])[:, [0, 0, 0, 1, 1, 1, 2]]

    def nodes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = np.vstack([np.zeros(7), x.reshape(n - 1, 7)])  # node 0: the identity
        return Rotation.from_rotvec(p[:, :3]).as_matrix(), p[:, 3:6], p[:, 6]

    def residuals(x: np.ndarray) -> np.ndarray:
        return (_edge_residuals(*nodes(x), measured) * norm).ravel()

    sparsity = lil_matrix((7 * m, 7 * (n - 1)), dtype=np.int8)
    for k, (i, j) in enumerate(zip(I, J)):
        for node in (i, j):
            if node > 0:
                sparsity[7 * k: 7 * k + 7, 7 * (node - 1): 7 * node] = 1
    x0 = np.concatenate([np.concatenate([_rotvec(s.rotation), s.translation, [math.log(s.scale)]])
                         for s in initial[1:]])
    before = float(np.sum(residuals(x0) ** 2))
    # lsmr's default tolerances stop each step early on long chains (hundreds of iterations): solve them fully
    result = least_squares(residuals, x0, jac_sparsity=sparsity, method="trf", max_nfev=200 * len(x0),
                           tr_options={"atol": 1e-12, "btol": 1e-12, "regularize": False})
    after = float(np.sum(result.fun ** 2))
    R, t, log_s = nodes(result.x)
    out = [identity()] + [Similarity(float(np.exp(log_s[k])), R[k], t[k].copy()) for k in range(1, n)]
    return out, {"edges": m, "cost_before": before, "cost_after": after}
