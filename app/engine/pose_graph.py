"""Pose graph over Sim(3) frames: chunks of a long input (:mod:`app.engine.chunked`) are nodes, measured similarities
between their frames (sequential joins and loop closures) are edges; :func:`optimise_pose_graph` finds the
similarities to the first frame that agree best with all edges (least squares on rotation vector, translation
relative to the chunk's depth and log scale), which spreads the drift a loop measures over the path."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

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


def _rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def _matrix(rotvec: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rotvec).as_matrix()


def chain(num_chunks: int, edges: Sequence[Edge]) -> list[Similarity]:
    """Every chunk's similarity to the first chunk's frame along the sequential edges ``k → k-1``."""
    out = [identity()]
    seq = {e.i: e for e in edges if e.kind == "sequential" and e.j == e.i - 1}
    for k in range(1, num_chunks):
        out.append(compose(out[k - 1], seq[k].sim))
    return out


def optimise_pose_graph(initial: Sequence[Similarity], edges: Sequence[Edge], lengths: Sequence[float]
                        ) -> tuple[list[Similarity], dict]:
    """Least squares over the chunks' similarities to the first chunk's frame (held fixed): each edge
    ``i → j`` wants ``S_j ∘ E = S_i``; its residual ``E⁻¹ ∘ S_j⁻¹ ∘ S_i`` is measured as (rotation vector,
    translation / ``lengths[i]`` (the chunk's typical depth), log scale). Returns the similarities and a
    summary (edge errors before and after)."""
    from scipy.optimize import least_squares

    n = len(initial)

    def unpack(x: np.ndarray) -> list[Similarity]:
        sims = [identity()]
        for k in range(1, n):
            p = x[7 * (k - 1): 7 * k]
            sims.append(Similarity(float(np.exp(p[6])), _matrix(p[:3]), p[3:6].copy()))
        return sims

    def residuals(x: np.ndarray) -> np.ndarray:
        sims = unpack(x)
        out = []
        for e in edges:
            err = compose(inverse(e.sim), compose(inverse(sims[e.j]), sims[e.i]))
            r = np.concatenate([_rotvec(err.rotation), err.translation / lengths[e.i], [math.log(err.scale)]])
            out.append(math.sqrt(e.weight) * r)
        return np.concatenate(out) if out else np.zeros(0)

    x0 = np.concatenate([np.concatenate([_rotvec(s.rotation), s.translation, [math.log(s.scale)]])
                         for s in initial[1:]]) if n > 1 else np.zeros(0)
    if n <= 1 or not edges:
        return list(initial), {"edges": len(edges), "cost_before": 0.0, "cost_after": 0.0}
    before = float(np.sum(residuals(x0) ** 2))
    result = least_squares(residuals, x0, method="lm" if len(x0) <= 7 * len(edges) else "trf", max_nfev=200 * len(x0))
    after = float(np.sum(result.fun ** 2))
    return unpack(result.x), {"edges": len(edges), "cost_before": before, "cost_after": after}
