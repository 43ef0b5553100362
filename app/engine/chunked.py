"""Inputs of any length: overlapping chunks of views, each reconstructed on its own, joined by Sim(3).

One network pass over all views needs memory (and, through global attention, time) that grows with the
number of views; a long video or a folder of a thousand photos does not fit. :func:`reconstruct_in_chunks` runs
the views in chunks of ``window`` consecutive views, consecutive chunks sharing ``overlap`` views:

1. **plan** (:mod:`app.engine.planning`, :func:`~app.engine.planning.plan_chunks`): chunks of equal size
   stepping by ``window - overlap``, the last one ending at the last view; every view lies in one or two chunks
   and is *owned* by the chunk where it is most central (its camera and dense maps come from there).
   ``window`` defaults to what the memory allows (:func:`~app.engine.planning.auto_window`); when every view
   fits, the orchestrator (:mod:`app.engine.pipeline`) makes one pass and this module is not used.
2. **each chunk** is reconstructed like a short input: the network (``--fast``), or the network then the
   geometry path (SfM with sequential + network-guided pairs, guided matching, bundle adjustment, then the dense
   stage with the user's ``--dense``: multi-view stereo on the chunk's views by default; the same stages as one
   pass, :func:`app.engine.cameras.add_cameras` then :func:`app.engine.dense_geometry.add_dense_geometry`, at one
   grid for every chunk: :func:`chunk_dense_options`). A chunk's frame is its first camera, at its own scale.
   Only the chunk's decoded images are in memory (:mod:`app.engine.view_source`), and of its dense maps only
   those of the views it owns are kept (a view in two chunks: the maps of the chunk where it is most central,
   with partners on both sides), on disk (:class:`ViewStore`).
3. **join** (:func:`fit_shared_views`): the similarity between consecutive chunks from their shared views —
   the same pixels of the same image unprojected in both chunks give 3D-3D correspondences, fitted by a
   confidence-weighted Umeyama (:func:`heads.metrics.umeyama_alignment`) with iteratively reweighted
   (Cauchy) residuals; its median residual relative to depth says how well the chunks agree. Chained, these
   give every chunk's similarity to the first chunk's frame.
4. **loop closures** (:func:`find_loop_closures`): chunks that are not neighbours but whose views look alike
   (cosine similarity of the network's retrieval descriptors) get one extra network pass over the best
   matching views of both; it is accepted when it fits both chunks (low residual) and when, inside it, the two
   chunks' views agree in depth; the edge it gives joins the two chunks directly.
5. **pose graph** (:func:`app.engine.pose_graph.optimise_pose_graph`): the chunks' similarities are refined by least squares over
   all edges (sequential and loop; rotation vector, translation relative to the chunk's depth, log scale),
   the first chunk held fixed: a loop spreads the drift it measures over the path.

Every view gets a camera (its chunk's, placed by the chunk's similarity). The cloud is bounded by a voxel
down-sampling to the point budget (:func:`app.engine.point_budget.voxel_point_cloud`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
import torch

from app.engine.camera_fusion import Similarity, apply, compose, fit_similarity, inverse
from app.engine.dense_fit import _unproject, depth_agreement
from app.engine.frame_store import frames_on_disk, release_pages
from app.engine.known_cameras import KnownCameras
from app.engine.pose_graph import Edge, chain, optimise_pose_graph
from app.engine.reconstruction import PointCloud, Reconstruction
from app.engine.planning import owners
from app.engine.runtime import progress_bar
from app.engine.stage_clock import StageClock

if TYPE_CHECKING:
    from app.engine.dense_options import DenseOptions
    from app.engine.options import NetworkOptions, PipelineOptions
    from app.engine.planning import Plan
    from app.engine.view_source import ViewSource

LOOP_SIMILARITY = 0.9  # descriptor cosine similarity that makes two distant chunks a loop-closure candidate
LOOP_MAX_RESIDUAL = 0.1  # a loop pass is accepted when it fits both chunks this well (relative to depth) ...
LOOP_MAX_DISAGREEMENT = 0.1  # ... and the two chunks' views agree in depth inside it this well


@dataclass
class ViewMaps:
    """One view's dense maps in one chunk's frame (network grid)."""

    depth: np.ndarray  # [h, w] float32 (NaN: unknown)
    conf: np.ndarray  # [h, w]
    K: np.ndarray  # [3, 3] grid pixels
    cam: np.ndarray  # [4, 4] camera-from-chunk-world
    valid: Optional[np.ndarray] = None  # [h, w] bool: the pixels the cloud keeps, the only ones joins fit (None: all)


@dataclass
class Fit:
    """A similarity from one chunk's frame to another's, how well it fits (median residual relative to depth)
    and on how many points."""

    sim: Similarity
    residual: float
    points: int


def _points(maps: ViewMaps, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    depth = maps.depth if maps.valid is None else np.where(maps.valid, maps.depth, np.nan)
    pts, pix = _unproject(depth, maps.K, maps.cam, step)
    conf = maps.conf[pix[:, 0], pix[:, 1]].astype(np.float64)
    depth = maps.depth[pix[:, 0], pix[:, 1]].astype(np.float64)
    return pts.astype(np.float64), conf, depth


def _correspondences(source: Sequence[ViewMaps], target: Sequence[ViewMaps], step: int):
    """Source points, target points, confidence weights and target depths of the pixels both frames know."""
    xs, xt, w, dt = [], [], [], []
    for s, t in zip(source, target):
        if s.depth.shape != t.depth.shape:
            continue
        ps, cs, _ = _points(s, step)
        pt, ct, d = _points(t, step)
        ok = np.isfinite(ps).all(1) & np.isfinite(pt).all(1) & (d > 0) & np.isfinite(d)
        xs.append(ps[ok])
        xt.append(pt[ok])
        w.append(np.sqrt(cs[ok] * ct[ok]))
        dt.append(d[ok])
    if not xs:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(a) for a in (xs, xt, w, dt))


def point_residual(sim: Similarity, source: Sequence[ViewMaps], target: Sequence[ViewMaps], step: int = 2) -> float:
    """Median distance, relative to the target depth, between the shared pixels' points moved by ``sim`` and
    the target's (NaN without shared depth)."""
    xs, xt, _, dt = _correspondences(source, target, step)
    if not len(xs):
        return float("nan")
    return float(np.median(np.linalg.norm(apply(sim, xs) - xt, axis=1) / dt))


def fit_shared_views(source: Sequence[ViewMaps], target: Sequence[ViewMaps], step: int = 2, iterations: int = 10,
                     conf_quantile: float = 0.3) -> Optional[Fit]:
    """The similarity from the source chunk's frame to the target's, from the views both hold (same images,
    same grid: the same pixel unprojected in both frames is one 3D-3D correspondence). Weighted by both
    confidences (the least confident ``conf_quantile`` of the pixels are left out), then reweighted by a
    Cauchy function of the residuals (zero beyond five scales), which are measured relative to the target depth.
    ``None`` without enough points."""
    from heads.metrics import umeyama_alignment

    xs, xt, w, dt = _correspondences(source, target, step)
    if len(xs) < 10:
        return None
    keep = w >= np.quantile(w, conf_quantile)
    xs, xt, w, dt = xs[keep], xt[keep], w[keep], dt[keep]
    if len(xs) < 10:
        return None
    weights = w.copy()
    for _ in range(iterations):
        scale, R, t = (a.numpy() for a in umeyama_alignment(torch.from_numpy(xs), torch.from_numpy(xt),
                                                              torch.from_numpy(weights)))
        sim = Similarity(float(scale), R, t)
        rel = np.linalg.norm(apply(sim, xs) - xt, axis=1) / dt
        c = max(2.0 * float(np.median(rel)), 1e-6)
        weights = w / (1.0 + (rel / c) ** 2)
        weights[rel > 5 * c] = 0.0  # far outside: another surface, not noise
    if not (np.isfinite(sim.scale) and sim.scale > 0):
        return None
    return Fit(sim, float(np.median(rel)), int(len(xs)))


# ------------------------------------------------------------------------------------------------- chunks
@dataclass
class ChunkResult:
    """What is kept of one chunk: cameras of all its views (chunk frame), the dense maps of the views in
    ``maps`` (global view index → :class:`ViewMaps`), and per-view extras."""

    index: int
    views: list[int]
    cams: np.ndarray
    intrinsics: np.ndarray
    transforms: list  # per view: original pixels ↔ dense-map pixels (mum.io.ViewTransform)
    sources: list[str]
    intrinsics_sources: list[str]
    descriptors: np.ndarray
    maps: dict[int, ViewMaps]
    colors: dict[int, np.ndarray]
    valid: dict[int, np.ndarray]
    pointmaps: dict[int, np.ndarray]
    sfm_points: Optional[PointCloud]
    meta: dict
    length: float  # typical depth (median over the chunk's views), the pose graph's unit of translation


SFM_OUTLIER_FACTOR = 2.5  # a chunk's SfM disagreeing with the network this many times more than the
SFM_OUTLIER_MIN_DEG = 30.0  # other chunks' do (and by more than this) keeps the network's cameras


def sfm_network_disagreement(sfm_cams: np.ndarray, network_cams: np.ndarray, registered: np.ndarray) -> float:
    """Median pair error (max of relative rotation and translation-direction angles, degrees) between SfM's
    and the network's cameras over the registered views: NaN with fewer than three."""
    from heads.metrics import relative_pose_errors

    idx = np.nonzero(registered)[0]
    if len(idx) < 3:
        return float("nan")
    rra, rta = relative_pose_errors(torch.from_numpy(sfm_cams[idx, :3]), torch.from_numpy(network_cams[idx, :3]))
    return float(torch.median(torch.maximum(rra, rta)))


def _run_chunk(model, source: ViewSource, views: Sequence[int], k: int, network: NetworkOptions, aspect,
               options: PipelineOptions, say, warnings: list[str], keep_pointmaps: bool,
               history: Optional[list[float]] = None, known: Optional[KnownCameras] = None,
               clock: Optional[StageClock] = None, dense_parts: Optional[DenseOptions] = None) -> ChunkResult:
    """One chunk: the network, then unless ``options.fast`` the geometry path on its views. A chunk whose SfM
    cameras disagree with the network's far more than the earlier chunks' did (``history``: their median pair
    errors, see :data:`SFM_OUTLIER_FACTOR`) keeps the network's cameras: SfM on a few dozen views without the
    rest of the sequence can settle on a wrong model (a turn on the spot: right rotations, wrong translations)
    that a global SfM would have refused. Relative, not absolute: where the network is poor everywhere (the
    bundled model on real photos), every chunk disagrees alike and none is overruled. ``clock``: the run's
    stage clock, lapped after each stage. ``dense_parts``: the dense stage's options with the grid every chunk
    shares (:func:`chunk_dense_options`; default: from ``options.dense``)."""
    import copy

    from app.engine.cameras import add_cameras, apply_known_intrinsics
    from app.engine.dense_geometry import add_dense_geometry
    from app.engine.network import predict_arrays

    arrays = source.load(views)
    names = [source.names[v] for v in views]
    clock = clock or StageClock()
    dense_parts = dense_parts or chunk_dense_options(options.dense, source)
    recon, transforms, descriptors = predict_arrays(model, names, arrays, network, say, aspect)
    clock.lap("network")
    if known is not None:
        apply_known_intrinsics(recon, known)
    rejected = None
    if not options.fast:
        network_only = copy.deepcopy(recon)
        chunk_warnings: list[str] = []
        fit = add_cameras(recon, arrays, descriptors, options.cameras, say,
                          lambda msg: chunk_warnings.append(f"chunk {k + 1}: {msg.removeprefix('warning: ')}"), known=known)
        clock.lap("cameras")
        registered = np.array([s == "sfm" for s in recon.pose_origins()])
        disagreement = sfm_network_disagreement(recon.cam_from_world, network_only.cam_from_world, registered)
        history = [] if history is None else history
        earlier = [d for d in history if np.isfinite(d)]
        if np.isfinite(disagreement) and len(earlier) >= 2:
            reference = float(np.median(earlier))
            if disagreement > max(SFM_OUTLIER_MIN_DEG, SFM_OUTLIER_FACTOR * reference):
                rejected = round(disagreement, 1)
                chunk_warnings = [f"chunk {k + 1}: its SfM cameras disagree with the network's by {disagreement:.0f}° "
                                  f"(median pair error; the earlier chunks' {reference:.0f}°): it keeps the network's cameras"]
                recon = network_only
        history.append(disagreement)
        # the dense stage as on one pass (options.dense, stereo by default) on the chunk's views, at the grid every
        # chunk shares (dense_parts: DenseOptions.for_parts); a chunk that keeps the network's cameras gets the
        # network's depth at that grid (no SfM points: scale 1, cross-checked, no stereo)
        if rejected is None:
            add_dense_geometry(recon, arrays, transforms, fit.sfm, fit.points, fit.depth_scale, dense_parts, say)
        else:
            add_dense_geometry(recon, arrays, transforms, None, np.zeros((0, 3)), 1.0, dense_parts, say)
        clock.lap("dense")
        warnings.extend(chunk_warnings)
    del arrays
    return chunk_result(k, views, recon, descriptors, keep_pointmaps, rejected)


def chunk_dense_options(dense: DenseOptions, source: ViewSource) -> DenseOptions:
    """The dense stage's options for every chunk: ``dense`` at one grid for all of them
    (:meth:`~app.engine.dense_options.DenseOptions.for_parts`, no finer than the smallest image); ``--dense none``:
    the fitted depth on the network's grid (the joins and loop closures fit chunks on their depth;
    :func:`reconstruct_in_chunks` then leaves every dense pixel out of the cloud, as one pass does)."""
    if dense.mode == "none":
        return replace(dense, mode="fitted", size=0)
    return dense.for_parts(min(max(size) for size in source.sizes))


def chunk_result(k: int, views: Sequence[int], recon: Reconstruction, descriptors: np.ndarray, keep_pointmaps: bool,
                 rejected: Optional[float] = None) -> ChunkResult:
    """What is kept of chunk ``k`` (its ``views``) from its reconstruction ``recon`` and the network's retrieval
    ``descriptors`` ``[len(views), C]``: every view's maps, in memory until :func:`store_owned` moves them. The depth
    is kept whole (stereo's maps are completed by the fitted depth, out of the cloud: ``recon.valid``); the joins
    fit only the valid pixels."""
    depth = recon.depth.astype(np.float32)
    valid = np.isfinite(depth) if recon.valid is None else (recon.valid & np.isfinite(depth))
    K_grid = recon.network_intrinsics  # derived from the transforms on each access: once
    maps = {v: ViewMaps(depth[i], recon.depth_conf[i].astype(np.float32), K_grid[i], recon.cam_from_world[i], valid[i])
            for i, v in enumerate(views)}
    sfm = recon.sfm_points
    if sfm is not None:
        sfm = replace(sfm, view=np.asarray(views)[sfm.view])  # global view indices
    finite = depth[valid]
    return ChunkResult(
        index=k, views=list(views), cams=recon.cam_from_world.copy(), intrinsics=recon.intrinsics.copy(),
        transforms=list(recon.transforms), sources=recon.pose_origins(), intrinsics_sources=recon.intrinsics_origins(),
        descriptors=descriptors / np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12),
        maps=maps, colors={v: recon.colors[i] for i, v in enumerate(views)},
        valid={v: valid[i] for i, v in enumerate(views)},
        pointmaps={v: recon.world_points[i].astype(np.float32) for i, v in enumerate(views)} if keep_pointmaps else {},
        sfm_points=sfm, meta={"inference_s": recon.meta.get("inference_s", 0.0), "sfm": recon.meta.get("sfm"),
                              "network_size": recon.meta.get("network_size"), "sfm_rejected": rejected,
                              "stereo": recon.meta.get("stereo")},
        length=float(np.median(finite)) if finite.size else 1.0,
    )


@dataclass
class ViewStore:
    """Every view's dense maps from the chunk that owns it, ``[S, h, w]`` (colours ``[S, h, w, 3]``) on disk
    (:func:`app.engine.frame_store.frames_on_disk`): depth (in the owning chunk's frame until
    :func:`_assemble` scales it into the first chunk's), confidence, validity and colours."""

    depth: np.ndarray
    conf: np.ndarray
    valid: np.ndarray
    colors: np.ndarray

    @classmethod
    def for_views(cls, S: int, h: int, w: int) -> "ViewStore":
        return cls(frames_on_disk((S, h, w), np.float32), frames_on_disk((S, h, w), np.float32),
                   frames_on_disk((S, h, w), bool), frames_on_disk((S, h, w, 3), np.uint8))

    def release(self) -> None:
        release_pages(self.depth, self.conf, self.valid, self.colors)


def store_owned(chunk: ChunkResult, owner: np.ndarray, store: ViewStore) -> None:
    """Move the maps of the views ``chunk`` owns into ``store`` (its maps then view the store's rows, out of
    memory) and copy the others' (the next join needs them; :func:`_keep_only` drops them after it), so that
    nothing keeps the chunk's own arrays alive: memory holds one chunk's maps and its neighbours' shared views,
    whatever the number of views."""
    for v in chunk.views:
        maps = chunk.maps[v]
        if owner[v] == chunk.index:
            store.depth[v], store.conf[v] = maps.depth, maps.conf
            store.valid[v], store.colors[v] = chunk.valid[v], chunk.colors[v]
            chunk.maps[v] = ViewMaps(store.depth[v], store.conf[v], maps.K, maps.cam, store.valid[v])
            chunk.valid[v], chunk.colors[v] = store.valid[v], store.colors[v]
        else:
            chunk.valid[v], chunk.colors[v] = chunk.valid[v].copy(), chunk.colors[v].copy()
            chunk.maps[v] = ViewMaps(maps.depth.copy(), maps.conf.copy(), maps.K, maps.cam, chunk.valid[v])
    store.release()


def _keep_only(chunk: ChunkResult, views: set[int]) -> None:
    """Drop the dense maps of the views another chunk owns (memory stays bounded by the owned views)."""
    for store in (chunk.maps, chunk.colors, chunk.valid, chunk.pointmaps):
        for v in [v for v in store if v not in views]:
            del store[v]


MIN_SFM_SHARED = 3  # shared views with SfM cameras in both chunks that join them by their cameras


def _join(previous: ChunkResult, current: ChunkResult) -> Edge:
    """The edge ``current → previous`` from their shared views: by the cameras when at least
    :data:`MIN_SFM_SHARED` of them have SfM cameras in both chunks (bundle-adjusted poses are more precise than
    the depth the network gives them), else by their points, else (no shared depth) by whatever cameras."""
    shared = [v for v in current.views if v in previous.maps]
    ci = [current.views.index(v) for v in shared]
    pi = [previous.views.index(v) for v in shared]
    source, target = [current.maps[v] for v in shared], [previous.maps[v] for v in shared]
    both = [k for k in range(len(shared)) if current.sources[ci[k]] == "sfm" and previous.sources[pi[k]] == "sfm"]
    if len(both) >= MIN_SFM_SHARED:
        sim = fit_similarity(current.cams[[ci[k] for k in both]], previous.cams[[pi[k] for k in both]])
        return Edge(current.index, previous.index, sim, "sequential", point_residual(sim, source, target), kind_of_fit="cameras")
    fit = fit_shared_views(source, target)
    if fit is None:
        sim = fit_similarity(current.cams[ci], previous.cams[pi])
        return Edge(current.index, previous.index, sim, "sequential", float("nan"), kind_of_fit="network cameras")
    return Edge(current.index, previous.index, fit.sim, "sequential", fit.residual)


# ------------------------------------------------------------------------------------------------- loops
@dataclass
class LoopCandidate:
    a: int
    b: int
    similarity: float
    views_a: list[int]
    views_b: list[int]


def loop_candidates(chunks: Sequence[ChunkResult], per_side: int, threshold: float = LOOP_SIMILARITY,
                    max_loops: Optional[int] = None) -> list[LoopCandidate]:
    """Pairs of non-neighbouring chunks with a pair of owned views whose descriptors are at least
    ``threshold`` alike, most alike first; each with the ``per_side`` owned views of either chunk that are most
    alike to the other chunk."""
    found = []
    for a in range(len(chunks)):
        for b in range(a + 2, len(chunks)):
            va, vb = list(chunks[a].maps), list(chunks[b].maps)
            if not va or not vb:
                continue
            da = chunks[a].descriptors[[chunks[a].views.index(v) for v in va]]
            db = chunks[b].descriptors[[chunks[b].views.index(v) for v in vb]]
            sim = da @ db.T
            best = float(sim.max())
            if best < threshold:
                continue
            pick_a = np.argsort(-sim.max(1))[:per_side]
            pick_b = np.argsort(-sim.max(0))[:per_side]
            found.append(LoopCandidate(a, b, best, sorted(va[i] for i in pick_a), sorted(vb[i] for i in pick_b)))
    found.sort(key=lambda c: -c.similarity)
    return found[:max_loops] if max_loops is not None else found


def on_grid(maps: ViewMaps, transform, K: np.ndarray, shape: tuple[int, int]) -> ViewMaps:
    """``maps`` (on the network's grid of ``transform``, a :class:`mum.io.ViewTransform`; ``K`` the view's
    intrinsics in original pixels) resampled to the finer grid ``shape`` ``(h, w)`` a whole factor finer (the same
    crop, :meth:`~mum.io.ViewTransform.scaled`: bilinear, pixel centres aligned); unchanged when already there."""
    import cv2

    h, w = maps.depth.shape
    if (h, w) == tuple(shape):
        return maps
    factor = shape[0] // h
    if factor * h != shape[0] or factor * w != shape[1]:
        raise ValueError(f"dense maps of {shape[1]} × {shape[0]} px are not a whole multiple of {w} × {h}")
    size = (shape[1], shape[0])
    return ViewMaps(cv2.resize(maps.depth, size, interpolation=cv2.INTER_LINEAR),
                    cv2.resize(maps.conf.astype(np.float32), size, interpolation=cv2.INTER_LINEAR),
                    transform.scaled(factor).intrinsics_to_network(K), maps.cam,
                    None if maps.valid is None else cv2.resize(maps.valid.astype(np.uint8), size,
                                                               interpolation=cv2.INTER_NEAREST) > 0)


def verify_loop(model, source: ViewSource, candidate: LoopCandidate, chunks: Sequence[ChunkResult],
                network: NetworkOptions, aspect, say) -> tuple[Optional[Edge], dict]:
    """One network pass over the candidate's views of both chunks; the edge ``a → b`` when the pass fits both
    chunks and, inside it, the two chunks' views agree in depth."""
    from app.engine.network import predict_arrays

    views = candidate.views_a + candidate.views_b
    arrays = source.load(views)
    recon, transforms, _ = predict_arrays(model, [source.names[v] for v in views], arrays, network,
                                          lambda _m: None, aspect)
    del arrays
    depth = recon.depth.astype(np.float32)
    K_grid = recon.network_intrinsics  # derived from the transforms on each access: once
    loop_maps = {v: ViewMaps(depth[i], recon.depth_conf[i], K_grid[i], recon.cam_from_world[i])
                 for i, v in enumerate(views)}
    chunk_maps = {v: chunks[candidate.a].maps[v] for v in candidate.views_a}
    chunk_maps.update({v: chunks[candidate.b].maps[v] for v in candidate.views_b})
    for i, v in enumerate(views):  # the chunks' dense maps can be finer (stereo): the pass's maps on their grid
        loop_maps[v] = on_grid(loop_maps[v], transforms[i], recon.intrinsics[i], chunk_maps[v].depth.shape)
    fit_a = fit_shared_views([loop_maps[v] for v in candidate.views_a], [chunk_maps[v] for v in candidate.views_a])
    fit_b = fit_shared_views([loop_maps[v] for v in candidate.views_b], [chunk_maps[v] for v in candidate.views_b])
    na = len(candidate.views_a)
    neighbours = [list(range(na, len(views))) if i < na else list(range(na)) for i in range(len(views))]
    cross = depth_agreement(depth, K_grid, recon.cam_from_world, neighbours, step=2)
    info = {"chunks": [candidate.a, candidate.b], "similarity": round(candidate.similarity, 4),
            "residual_a": None if fit_a is None else round(fit_a.residual, 4),
            "residual_b": None if fit_b is None else round(fit_b.residual, 4),
            "cross_disagreement": None if not np.isfinite(cross.median_disagreement) else round(cross.median_disagreement, 4)}
    ok = (fit_a is not None and fit_b is not None and fit_a.residual <= LOOP_MAX_RESIDUAL
          and fit_b.residual <= LOOP_MAX_RESIDUAL and np.isfinite(cross.median_disagreement)
          and cross.median_disagreement <= LOOP_MAX_DISAGREEMENT)
    info["accepted"] = bool(ok)
    if not ok:
        return None, info
    # x_a = A(x_loop), x_b = B(x_loop)  →  x_b = B(A⁻¹(x_a))
    edge = Edge(candidate.a, candidate.b, compose(fit_b.sim, inverse(fit_a.sim)), "loop",
                max(fit_a.residual, fit_b.residual))
    return edge, info


# ------------------------------------------------------------------------------------------------- the path
def reconstruct_in_chunks(
    model: Any,
    source: ViewSource,
    plan: Plan,
    options: PipelineOptions,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    known: Optional[KnownCameras] = None,
) -> Reconstruction:
    """Reconstruct every view of ``source`` in the chunks of ``plan`` (:func:`app.engine.planning.plan_views`:
    ``window`` views each, neighbours sharing ``overlap``), each chunk by the same stages as a short input, joined
    into one scene; see the module docstring. ``known``: given or EXIF intrinsics, used in every chunk (poses
    are kept in one pass only: the planning refuses them here). ``options.network``: every pass's;
    ``options.long_input``: ``loop_closure``, ``max_loops``, ``keep_pointmaps``."""
    network, long_input = options.network, options.long_input
    loop_closure, max_loops, keep_pointmaps = long_input.loop_closure, long_input.max_loops, long_input.keep_pointmaps
    S = len(source)
    window, overlap, aspect, chunks_plan = plan.window, plan.overlap, plan.aspect, plan.chunks
    if plan.note:
        say(plan.note)
    owner = owners(chunks_plan, S)
    n = len(chunks_plan)
    say(f"{S} views in {n} chunks of {window} views, {overlap}+ shared between neighbours"
        + ("" if options.fast else f" (each: network, SfM, dense {options.dense.mode})"))
    dense_parts = chunk_dense_options(options.dense, source)
    t0 = time.perf_counter()
    clock = StageClock()
    store: Optional[ViewStore] = None  # every view's maps from its owner, on disk (made with the first chunk)
    warnings: list[str] = []
    results: list[ChunkResult] = []
    edges: list[Edge] = []
    disagreements: list[float] = []
    for k, views in enumerate(chunks_plan):
        prefix = f"chunk {k + 1}/{n} {progress_bar(k, n)}"
        say(f"{prefix} views {views.start}–{views.stop - 1}")
        chunk = _run_chunk(model, source, views, k, network, aspect, options,
                           lambda m, p=prefix: say(f"{p} {m}") if m.startswith("sfm: ") and "registered" in m else None,
                           warnings, keep_pointmaps, disagreements, None if known is None else known.subset(views), clock,
                           dense_parts)
        if store is None:
            h, w = chunk.maps[chunk.views[0]].depth.shape
            store = ViewStore.for_views(S, h, w)
        store_owned(chunk, owner, store)
        if results:
            edge = _join(results[-1], chunk)
            edges.append(edge)
            if edge.kind_of_fit == "network cameras":
                warnings.append(f"chunk {k + 1}: its shared views gave no depth to fit; joined by their cameras")
            _keep_only(results[-1], {v for v in results[-1].views if owner[v] == k - 1})
        results.append(chunk)
    _keep_only(results[-1], {v for v in results[-1].views if owner[v] == n - 1})
    say(f"chunks {progress_bar(n, n)} {n}/{n} done in {time.perf_counter() - t0:.1f} s; join residuals (median, "
        f"relative to depth): {', '.join(f'{e.residual:.3f}' for e in edges)}")
    sims = chain(n, edges)
    loops_info: list[dict] = []
    graph_info: dict = {"edges": len(edges), "loops": 0}
    if loop_closure and n >= 3:
        per_side = max(2, min(window // 2, 2 * overlap))
        candidates = loop_candidates(results, per_side, max_loops=max_loops if max_loops is not None else max(1, n // 2))
        say(f"loop closures: {len(candidates)} candidate(s) from the network's descriptors")
        for c, cand in enumerate(candidates):
            edge, info = verify_loop(model, source, cand, results, network, aspect, say)
            loops_info.append(info)
            say(f"loop {c + 1}/{len(candidates)} {progress_bar(c + 1, len(candidates))} chunks {cand.a + 1}↔{cand.b + 1}: "
                + ("accepted" if edge else "rejected") + f" (residuals {info['residual_a']}, {info['residual_b']}; "
                f"depth disagreement {info['cross_disagreement']})")
            if edge is not None:
                edges.append(edge)
        if any(e.kind == "loop" for e in edges):
            sims, graph_info = optimise_pose_graph(sims, edges, [r.length for r in results])
            graph_info["loops"] = sum(e.kind == "loop" for e in edges)
            say(f"pose graph: {len(edges)} edges ({graph_info['loops']} loop), cost {graph_info['cost_before']:.4g} → "
                f"{graph_info['cost_after']:.4g}")
    for message in warnings:
        warn(f"warning: {message}")
    clock.lap("cameras")  # joins, loop closures, the pose graph
    recon = _assemble(source, results, sims, owner, keep_pointmaps, store)
    clock.lap("dense")
    recon.meta.update(
        stage_seconds=clock.summary(),
        inference_s=sum(r.meta["inference_s"] for r in results), device=network.device,
        network_size=results[0].meta["network_size"],
        chunks={"window": window, "overlap": overlap, "count": n,
                "ranges": [[c.start, c.stop - 1] for c in chunks_plan],
                "joins": [{"chunks": [e.j, e.i], "fit": e.kind_of_fit,
                           "residual": None if not np.isfinite(e.residual) else round(e.residual, 4)}
                          for e in edges if e.kind == "sequential"],
                "loops": loops_info, "pose_graph": graph_info, "scales": [round(s.scale, 5) for s in sims]},
        dropped=[],
    )
    if not options.fast:
        from app.engine.multiview_stereo import combine_stereo_meta

        recon.meta["sfm"] = _sfm_summary(results, owner, S)
        stereo = combine_stereo_meta([r.meta.get("stereo") for r in results],
                                     sum(1 for r in results for v in r.views if owner[v] == r.index and r.meta.get("stereo")))
        if stereo is not None:
            recon.meta["stereo"] = stereo
        if options.dense.mode == "none":  # the cloud holds the SfM points only, as on one pass
            recon.valid = np.zeros(recon.depth.shape, bool)
    return recon


def _sfm_summary(results: Sequence[ChunkResult], owner: np.ndarray, S: int) -> dict:
    per = [r.meta.get("sfm") or {} for r in results]
    registered = sum(1 for r in results for i, v in enumerate(r.views) if owner[v] == r.index and r.sources[i] == "sfm")
    seconds: dict[str, float] = {}
    for p in per:
        for key, value in (p.get("seconds") or {}).items():
            seconds[key] = round(seconds.get(key, 0.0) + value, 3)
    means = [p["reprojection_px_mean"] for p in per if p.get("reprojection_px_mean") is not None
             and np.isfinite(p["reprojection_px_mean"])]
    return {"registered_views": registered, "views": S, "points3D": int(sum(p.get("points3D", 0) for p in per)),
            "chunks_with_sfm": sum(1 for p in per if p),
            "chunks_sfm_overruled": [r.index for r in results if r.meta.get("sfm_rejected") is not None], "reprojection_px_mean": float(np.mean(means)) if means else float("nan"),
            "pairs_matched": int(sum(p.get("pairs_matched", 0) for p in per)), "matching": "per chunk",
            "seconds": seconds}


def _assemble(source: ViewSource, results: Sequence[ChunkResult], sims: Sequence[Similarity], owner: np.ndarray,
              keep_pointmaps: bool, store: ViewStore) -> Reconstruction:
    """One :class:`Reconstruction` in the first chunk's frame: each view from the chunk that owns it, its maps
    those of ``store`` (on disk; depth scaled into the first chunk's frame in place, a chunk at a time)."""
    S = len(source)
    h, w = store.depth.shape[1:]
    cams = np.zeros((S, 4, 4))
    K = np.zeros((S, 3, 3))
    transforms: list = [None] * S
    intrinsics_sources = [""] * S
    points = np.empty((S, h, w, 3), np.float32) if keep_pointmaps else None
    all_valid = True
    sources = [""] * S
    sfm_clouds = []
    for r, sim in zip(results, sims):
        placed = sim.apply_to_cameras(r.cams)
        for i, v in enumerate(r.views):
            if owner[v] != r.index:
                continue
            cams[v], K[v], transforms[v], sources[v] = placed[i], r.intrinsics[i], r.transforms[i], r.sources[i]
            intrinsics_sources[v] = r.intrinsics_sources[i]
            store.depth[v] *= np.float32(sim.scale)
            all_valid = all_valid and bool(store.valid[v].all())
            if points is not None:
                points[v] = apply(sim, r.pointmaps[v].reshape(-1, 3).astype(np.float64)).reshape(h, w, 3)
        if r.sfm_points is not None and len(r.sfm_points):
            mine = owner[r.sfm_points.view] == r.index
            c = r.sfm_points
            sfm_clouds.append(PointCloud(apply(sim, c.xyz[mine].astype(np.float64)).astype(np.float32), c.rgb[mine],
                                         c.conf[mine], c.view[mine], c.pixel[mine]))
        _keep_only(r, set())  # the result holds the store's maps now
        store.release()
    sfm_points = None
    if sfm_clouds:
        sfm_points = PointCloud(*(np.concatenate([getattr(c, f) for c in sfm_clouds])
                                  for f in ("xyz", "rgb", "conf", "view", "pixel")))
    # world = the first view's camera (as on the default path; with trained weights the network's is already)
    first_cam = cams[0].copy()
    cams = cams @ np.linalg.inv(first_cam)
    to_first = Similarity(1.0, first_cam[:3, :3], first_cam[:3, 3])
    if sfm_points is not None:
        sfm_points.xyz = apply(to_first, sfm_points.xyz.astype(np.float64)).astype(np.float32)
    if points is None:  # pointmaps are not kept on the long path unless asked for (--points-from pointmap)
        points = np.broadcast_to(np.float32(np.nan), (S, h, w, 3))
    else:
        for v in range(S):
            points[v] = apply(to_first, points[v].reshape(-1, 3).astype(np.float64)).reshape(h, w, 3)
    recon = Reconstruction(
        names=list(source.names), image_sizes=list(source.sizes), cam_from_world=cams, intrinsics=K, depth=store.depth,
        depth_conf=store.conf, world_points=points, world_points_conf=store.conf, colors=store.colors,
        transforms=transforms, camera_sources=sources, intrinsics_sources=intrinsics_sources,
        valid=None if all_valid else store.valid, sfm_points=sfm_points,
    )
    return recon
