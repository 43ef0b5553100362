"""Ordered inputs — a video, or numbered frames — reconstructed as one sequence.

Consecutive frames of a video overlap almost entirely: mapping every one of them is slow and adds little.
:func:`reconstruct_sequence` maps a few **keyframes** and registers every other frame to them:

1. **keyframes** (:mod:`app.engine.keyframes`): corners followed by optical flow; a frame becomes a keyframe when the
   view has moved enough since the last one (parallax that no homography explains, or lost overlap);
2. **network** on every frame, in windows of consecutive frames: depth, confidence, colours, a focal length
   and the retrieval descriptors (one pass per window; only that window's images are decoded);
3. **keyframe SfM** (:mod:`app.engine.keyframe_map`): the keyframes in chunks, each keyframe matched with its next
   ``sequential_pairs`` keyframes; chunks share keyframes whose poses are held, which carries the frame and scale
   from chunk to chunk; all chunks' points make one set of tracks; the map's scale is then checked against the
   network's depth within each window and across each window boundary (one short network pass over the frames
   either side of it ties the two windows' units), and a jump (as after a turn on the spot) rescaled
   (:mod:`app.engine.scale_breaks`);
4. **loop closures**: keyframes far apart in time whose retrieval descriptors are alike are matched and mapped
   together (SIFT, geometric verification, SfM of both neighbourhoods); a loop whose model registers both sides
   with little drift joins their tracks; loops with more drift are first closed by a pose graph over the
   keyframes (:mod:`app.engine.keyframe_loops`: the drift, scale included, spread over the path; a loop whose
   model disagrees with the map within one side, or with the other loops, is not used), then join their tracks;
5. **the other frames** (:mod:`app.engine.frame_registration`): the keyframes' observations followed by optical flow
   into them, PnP against the map;
6. **bundle adjustment** of every registered frame, every point and the intrinsics at once (the principal point
   too with 50 frames or more): no seams between chunks;
7. **dense**: each window's dense stage as on the default path (``--dense``: multi-view stereo by default):
   the depth fitted to the observations of its frames (keyframes: SfM's; the others: their PnP inliers) and
   cross-checked between the window's frames, then stereo among the window's registered frames (partners by the
   map points they share at useful angles); frames nothing registered keep the fitted depth.

Every frame gets a camera: SfM (keyframes) or PnP (others) where possible (``"sfm"``), else the network's
camera placed by a similarity fitted on its window's registered frames (``"network"``). Memory is bounded by
one window's network pass, one chunk's SfM and one window's dense stage: every frame's dense maps (the
network's, then the dense ones the exports read) are on disk (:mod:`app.engine.frame_store`, 11 and 12 bytes a
pixel of each grid per frame: :func:`disk_needed`, checked against ``TMPDIR``'s free space once the keyframes
are chosen) and in memory a window at a time; the map's points, observations and cameras grow with the frames
(small).
Work grows linearly with the frames, except the final bundle adjustment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from app.engine.camera_fusion import Similarity, apply, fill_unregistered, fit_similarity, identity
from app.engine.frame_registration import RegistrationOptions, register_between
from app.engine.frame_store import check_room, frames_on_disk, release_pages
from app.engine.keyframe_loops import Loop, PoseGraphOptions, close_drifting_loops
from app.engine.keyframe_map import PRINCIPAL_POINT_MIN_FRAMES, KeyframeMap, adjust
from app.engine.keyframes import KeyframeOptions, KeyframeSelection, select_keyframes
from app.engine.known_cameras import KnownCameras
from app.engine.reconstruction import PointCloud, Reconstruction
from app.engine.scale_breaks import ScaleBreakOptions, repair_scale_breaks
from app.engine.sfm import SfmResult
from app.engine.stage_clock import StageClock

if TYPE_CHECKING:
    from app.engine.options import NetworkOptions, PipelineOptions
    from app.engine.view_source import ViewSource



@dataclass(frozen=True)
class SequenceOptions:
    """How a sequence is reconstructed. ``window``: frames per network pass; ``chunk_keyframes`` keyframes
    per SfM chunk, consecutive chunks sharing ``shared_keyframes``; each keyframe matched with its next
    ``sequential_pairs`` and (``quadratic_pairs``, COLMAP's sequential default) with the ones ``2^k ×
    sequential_pairs`` keyframes further on: longer tracks, and a camera that turns back to what it saw a while
    ago stays in one model (``benchmarks/results/long_video_quadratic_cpu.json``); loop candidates: keyframes
    at least ``loop_min_gap`` keyframes apart whose descriptors' cosine similarity reaches ``loop_similarity``
    (at most ``max_loops``), verified by SfM of ``loop_neighbours`` keyframes on each side, accepted when at
    least ``loop_min_points`` points are seen from both sides."""

    keyframes: KeyframeOptions = field(default_factory=KeyframeOptions)
    registration: RegistrationOptions = field(default_factory=RegistrationOptions)
    window: int = 32
    sift_first_octave: int = 0  # SIFT at the frames' own resolution (the default path upsamples once: 4× the work)
    init_min_tri_angle: float = 8.0  # degrees: keyframes of a forward-moving camera rarely see 16° (COLMAP's)
    chunk_keyframes: int = 48
    shared_keyframes: int = 8
    sequential_pairs: int = 5
    quadratic_pairs: bool = True
    loop_closure: bool = True
    loop_similarity: float = 0.95
    loop_min_gap: int = 30
    max_loops: int = 8
    loop_neighbours: int = 2
    loop_min_points: int = 50
    loop_max_drift: tuple[float, float, float] = (3.0, 0.1, 0.05)  # degrees, translation / spread, |log scale|
    pose_graph: PoseGraphOptions = field(default_factory=PoseGraphOptions)  # loops with more drift than that
    scale_breaks: ScaleBreakOptions = field(default_factory=ScaleBreakOptions)  # the map's scale checked by the network


# ------------------------------------------------------------------------------------------------- progress
class StageProgress:
    """Progress lines ``stage 3/7 keyframe SfM |#####---| chunk 2/4, about 1 min 10 s left``: the stage, the
    unit of work, and the time left in the stage from the time its finished units took."""

    def __init__(self, say: Callable[[str], None], index: int, stages: int, name: str, total: int, unit: str,
                 every: float = 5.0) -> None:
        self.say, self.prefix, self.total, self.unit, self.every = say, f"stage {index}/{stages} {name}", total, unit, every
        self.start = self.last = time.perf_counter()

    def update(self, done: int, detail: str = "", force: bool = False) -> None:
        from app.engine.runtime import progress_bar

        now = time.perf_counter()
        if not force and done < self.total and now - self.last < self.every:
            return
        self.last = now
        left = ""
        if 0 < done < self.total:
            left = f", about {_duration((now - self.start) / done * (self.total - done))} left"
        elif done >= self.total:
            left = f", done in {_duration(now - self.start)}"
        self.say(f"{self.prefix} {progress_bar(done, self.total)} {self.unit} {done}/{self.total}{left}"
                 + (f"; {detail}" if detail else ""))


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


STAGES = 7


# ------------------------------------------------------------------------------------------------- network
@dataclass
class FrameMaps:
    """Every frame's network outputs: dense maps at the network grid (``[S, h, w]``, colours ``[S, h, w, 3]``, on
    disk: :func:`app.engine.frame_store.frames_on_disk`), the view transforms, the network's own cameras (per
    window frame), focal lengths (original pixels), retrieval descriptors, and each frame's window."""

    depth: Optional[np.ndarray] = None
    conf: Optional[np.ndarray] = None
    colors: Optional[np.ndarray] = None
    transforms: list = field(default_factory=list)
    network_cams: list = field(default_factory=list)
    focal: list = field(default_factory=list)
    descriptors: list = field(default_factory=list)
    windows: list[range] = field(default_factory=list)
    inference_s: float = 0.0
    network_size: Any = None


def _network(model, source: ViewSource, windows: Sequence[range], network: NetworkOptions, aspect,
             progress: StageProgress) -> FrameMaps:
    from app.engine.network import predict_arrays

    maps = FrameMaps(windows=list(windows))
    S = len(source)
    for w, frames in enumerate(windows):
        arrays = source.load(frames)
        recon, transforms, descriptors = predict_arrays(model, [source.names[f] for f in frames], arrays, network,
                                                        lambda _m: None, aspect)
        del arrays
        if maps.depth is None:  # the grid is known after the first window: every frame's maps go to disk
            h, w_ = recon.depth.shape[1:]
            maps.depth, maps.conf = frames_on_disk((S, h, w_), np.float32), frames_on_disk((S, h, w_), np.float32)
            maps.colors = frames_on_disk((S, h, w_, 3), np.uint8)
        index = slice(frames.start, frames.stop)
        maps.depth[index], maps.conf[index], maps.colors[index] = recon.depth, recon.depth_conf, recon.colors
        release_pages(maps.depth, maps.conf, maps.colors)
        maps.transforms += list(transforms)
        maps.network_cams += list(recon.cam_from_world)
        maps.focal += list(recon.intrinsics[:, 0, 0])
        norm = np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
        maps.descriptors += list((descriptors / norm).astype(np.float32))
        maps.inference_s += recon.meta["inference_s"]
        maps.network_size = recon.meta["network_size"]
        progress.update(w + 1, f"frames {frames.start}–{frames.stop - 1}")
    return maps


# ------------------------------------------------------------------------------------------------- keyframe SfM
def _sequential_pairs(count: int, neighbours: int, quadratic: bool = False) -> list[tuple[int, int]]:
    """Each keyframe with its next ``neighbours``; with ``quadratic`` also with the ones ``2^k`` further on
    (COLMAP's quadratic overlap: longer tracks, less drift)."""
    pairs = {(i, j) for i in range(count) for j in range(i + 1, min(count, i + neighbours + 1))}
    if quadratic:
        k = 1
        while (step := neighbours * 2 ** k) < count:
            pairs |= {(i, i + step) for i in range(count - step)}
            k += 1
    return sorted(pairs)


def _moved(sfm: SfmResult, sim: Similarity) -> SfmResult:
    """``sfm`` in another frame: cameras and points through ``sim``."""
    cams = np.where(sfm.registered[:, None, None], sim.apply_to_cameras(np.nan_to_num(sfm.cam_from_world)), np.nan)
    return replace(sfm, cam_from_world=cams, points=apply(sim, sfm.points))


def _join_parts(sfm: SfmResult, frames: list[int], maps: FrameMaps) -> tuple[SfmResult, list[dict]]:
    """A chunk's SfM with the mapper's other models (``sfm.other_models``: keyframes that share no verified match
    with the kept model, as after a cut) joined to it through the network, as the one-pass path joins them
    (:func:`app.engine.cameras.join_other_models`): each part keeps SfM's cameras and points relative to each
    other; the link is the network's. The network's cameras come per window, each window in its own frame, so a
    window's network cameras of the chunk's keyframes are placed in the chunk's frame by the similarity fitted on
    that window's registered keyframes (at least two), and a model is linked through its keyframes in such
    windows; its scale (kept-model units per model unit) is measured through the network's depth within one
    window at a time (the median over the windows that hold registered keyframes and the model's). Models are
    joined one at a time, the largest linkable first, and each joined model's keyframes then place their
    windows too: a part after a second cut is reached through the part after the first. A model no window
    links is left out. Returns the result (``other_models`` emptied) and one record per model (view indices:
    frames)."""
    from app.engine.cameras import join_other_models, units_per_network_depth

    if not sfm.other_models or sfm.num_registered < 2:
        return replace(sfm, other_models=[]), []
    n = len(frames)
    window_of = np.array([w for f in frames for w, window in enumerate(maps.windows) if f in window])  # [n]
    depth = {i: maps.depth[frames[i]] for i in range(n)}  # one chunk's keyframes (read from disk)
    transforms = {i: maps.transforms[frames[i]] for i in range(n)}
    network = np.stack([maps.network_cams[f] for f in frames])

    def units(views: np.ndarray, cams: np.ndarray, points: np.ndarray, observations) -> float:
        return units_per_network_depth(depth, transforms, views, cams, points, observations)

    current, pending, records = replace(sfm, other_models=[]), list(sfm.other_models), []
    while pending:
        placed = np.full((n, 4, 4), np.nan)
        for w in np.unique(window_of):
            idx = np.nonzero(window_of == w)[0]
            if current.registered[idx].sum() >= 2:
                placed[idx] = fill_unregistered(network[idx], np.nan_to_num(current.cam_from_world[idx]),
                                                current.registered[idx])[0]
        joined = None
        for model in pending:
            ratios = []
            for w in np.unique(window_of[model.views]):
                kept = np.nonzero(current.registered & (window_of == w))[0]
                mine = np.nonzero(window_of[model.views] == w)[0]
                if len(kept):
                    ratios.append(units(kept, current.cam_from_world[kept], current.points,
                                        [current.observations[i] for i in kept])
                                  / units(model.views[mine], model.cam_from_world[mine], model.points,
                                          [model.observations[k] for k in mine]))
            finite = [r for r in ratios if np.isfinite(r)]
            if finite and np.isfinite(placed[model.views]).all(axis=(1, 2)).any():
                joined = model
                current, (record,) = join_other_models(placed, replace(current, other_models=[model]), identity(),
                                                       [float(np.median(finite))])
                records.append(record)
                break
        if joined is None:
            break
        pending = [m for m in pending if m is not joined]
    records += [{"views": len(m.views), "view_indices": m.views.tolist(), "joined": False} for m in pending]
    for record in records:
        record["view_indices"] = [frames[i] for i in record["view_indices"]]
    return current, records


def _map_chunk(kmap: KeyframeMap | None, frames: list[int], source: ViewSource, focal: np.ndarray,
               options: PipelineOptions, seq: SequenceOptions, known: Optional[KnownCameras], say) -> SfmResult:
    """SfM of one chunk of keyframes: freely for the first; later ones with the keyframes the map already has
    held at their poses (and the map's intrinsics), so that the chunk comes out in the map's frame and scale.
    If that registers fewer than half of the chunk, it is mapped freely and moved into the map's frame by the
    similarity of the shared keyframes' cameras."""
    from mum.native_stderr import native_stderr_to
    from app.engine.sfm import run_sfm

    arrays = source.load(frames)
    pairs = _sequential_pairs(len(frames), seq.sequential_pairs, seq.quadratic_pairs)
    base = KnownCameras.empty(len(frames)) if known is None else known.subset(frames)
    with native_stderr_to(options.cameras.native_log):
        if kmap is None:
            return run_sfm(arrays, focal, pairs, options.cameras.sfm, say, known=base)
        held = [i for i, f in enumerate(frames) if f in kmap.poses]
        given = replace(base, K=np.where(base.known_intrinsics[:, None, None], base.K, kmap.K[None]),
                        intrinsics_source=[s or "given" for s in base.intrinsics_source],
                        cam_from_world=np.stack([kmap.poses.get(f, np.full((4, 4), np.nan)) for f in frames]),
                        fix_poses=True)
        sfm = None
        if len(held) >= 2:
            sfm = run_sfm(arrays, focal, pairs, options.cameras.sfm, say, known=given)
            new = [i for i in range(len(frames)) if i not in held]
            if sum(sfm.registered[i] for i in new) * 2 >= len(new):
                return sfm
        free = run_sfm(arrays, focal, pairs, options.cameras.sfm, say, known=replace(given, fix_poses=False))
        both = [i for i in held if free.registered[i]]
        if len(both) < 3:
            return sfm if sfm is not None else free
        sim = fit_similarity(free.cam_from_world[both], np.stack([kmap.poses[frames[i]] for i in both]))
        return _moved(free, sim)


def keyframe_ratios(kmap: KeyframeMap, depth, transforms, options: ScaleBreakOptions = ScaleBreakOptions()
                    ) -> np.ndarray:
    """``[n]``: per keyframe of ``kmap.frames``, the map's units per unit of the network's depth at the points it
    observes (:func:`app.engine.cameras.view_units_per_network_depth`; ``depth[f]`` ``[h, w]``, ``transforms[f]``:
    frame ``f``'s network depth and view transform); NaN where it observes fewer than
    ``options.min_observations`` points. What :mod:`app.engine.scale_breaks` checks the map's scale by."""
    from app.engine.cameras import view_units_per_network_depth

    frames = kmap.frames
    out = np.full(len(frames), np.nan)
    for k, f in enumerate(frames):
        observations = kmap.observations.get(f, (np.zeros(0, np.int64), np.zeros((0, 2))))
        if len(observations[0]) >= options.min_observations:
            out[k] = view_units_per_network_depth(depth[f], transforms[f], kmap.poses[f], kmap.points, observations)
    return out


BRIDGE_FRAMES = 4  # frames on each side of a window boundary that tie the two windows' depth units


def _depth_units(depth, bridge: np.ndarray, frames: list[int], window: range) -> float:
    """A window's units of network depth per unit of a bridge pass over ``frames`` (``bridge`` ``[n, h, w]``):
    per frame of the window the median ratio over the pixels both have, then the median over the frames (NaN
    when none)."""
    ratios = []
    for k, f in enumerate(frames):
        if f in window:
            mine, theirs = np.asarray(depth[f], np.float64), bridge[k].astype(np.float64)
            ok = np.isfinite(mine) & np.isfinite(theirs) & (mine > 0) & (theirs > 0)
            if ok.any():
                ratios.append(float(np.median(mine[ok] / theirs[ok])))
    return float(np.median(ratios)) if ratios else float("nan")


def window_ties(model, source: ViewSource, maps: FrameMaps, network: NetworkOptions, aspect) -> np.ndarray:
    """``[W]``: window ``w``'s unit of network depth in window ``w - 1``'s (NaN for the first window, and where a
    boundary could not be tied). Per boundary, one network pass over the :data:`BRIDGE_FRAMES` frames on each
    side of it: its depth of a frame against the frame's own window's (:func:`_depth_units`) ties each of the two
    windows' units to the pass's, hence to each other. :mod:`app.engine.scale_breaks` compares the keyframes
    either side of a boundary with it."""
    from app.engine.network import predict_arrays

    ties = np.full(len(maps.windows), np.nan)
    for w in range(1, len(maps.windows)):
        before, after = maps.windows[w - 1], maps.windows[w]
        frames = list(range(max(before.start, after.start - BRIDGE_FRAMES), min(after.stop, after.start + BRIDGE_FRAMES)))
        recon, _, _ = predict_arrays(model, [source.names[f] for f in frames], source.load(frames), network,
                                     lambda _m: None, aspect)
        ties[w] = _depth_units(maps.depth, recon.depth, frames, before) / _depth_units(maps.depth, recon.depth,
                                                                                        frames, after)
    return ties


def _loop_candidates(keyframes: list[int], descriptors: np.ndarray, seq: SequenceOptions) -> list[tuple[int, int, float]]:
    """Pairs of keyframe positions ``(a, b)``, ``b - a ≥ loop_min_gap``, whose descriptors are most alike
    (at least ``loop_similarity``): per later keyframe its best earlier match, then the most alike first,
    at most ``max_loops``, no two within ``loop_neighbours`` of each other on both sides."""
    n = len(keyframes)
    if n <= seq.loop_min_gap:
        return []
    sim = descriptors @ descriptors.T
    found = []
    for b in range(seq.loop_min_gap, n):
        a = int(np.argmax(sim[b, : b - seq.loop_min_gap + 1]))
        if sim[b, a] >= seq.loop_similarity:
            found.append((a, b, float(sim[b, a])))
    found.sort(key=lambda c: -c[2])
    chosen: list[tuple[int, int, float]] = []
    r = seq.loop_neighbours * 2
    for a, b, s in found:
        if all(abs(a - a2) > r or abs(b - b2) > r for a2, b2, _ in chosen):
            chosen.append((a, b, s))
        if len(chosen) >= seq.max_loops:
            break
    return chosen


def _verify_loop(kmap: KeyframeMap, keyframes: list[int], a: int, b: int, source: ViewSource, focal: np.ndarray,
                 options: PipelineOptions, seq: SequenceOptions, say) -> tuple[Optional[Loop], list[int], dict]:
    """Geometric verification of a loop candidate: SfM of the two keyframes alone (the map's intrinsics) must
    register both with at least ``loop_min_points`` points; then SfM (every pair matched) of the keyframes
    around positions ``a`` and ``b`` must register two or more of each side and see at least
    ``loop_min_points`` points from both. The accepted model is moved into the map's frame (:func:`_align_loop`:
    its drift)."""
    k = seq.loop_neighbours
    info: dict = {"keyframes": [keyframes[a], keyframes[b]], "accepted": False}
    pair = [keyframes[a], keyframes[b]]
    if not all(f in kmap.poses for f in pair):
        return None, pair, info
    two = _sfm_with_map_intrinsics(kmap, pair, source, focal, options)
    info["pair_points"] = len(two.points) if two.num_registered == 2 else 0
    if info["pair_points"] < seq.loop_min_points:
        return None, pair, info
    side_a = [i for i in range(a - k, a + k + 1) if 0 <= i < len(keyframes) and keyframes[i] in kmap.poses]
    side_b = [i for i in range(b - k, b + k + 1) if 0 <= i < len(keyframes) and keyframes[i] in kmap.poses]
    frames = [keyframes[i] for i in side_a + side_b]
    sfm = _sfm_with_map_intrinsics(kmap, frames, source, focal, options)
    na = len(side_a)
    ia = [i for i in range(na) if sfm.registered[i]]
    ib = [i for i in range(na, len(frames)) if sfm.registered[i]]
    seen_a = set(np.concatenate([sfm.observations[i][0] for i in ia]).tolist()) if ia else set()
    seen_b = set(np.concatenate([sfm.observations[i][0] for i in ib]).tolist()) if ib else set()
    both = len(seen_a & seen_b)
    info.update(registered=[len(ia), len(ib)], points_seen_from_both=both)
    if len(ia) < 2 or len(ib) < 2 or both < seq.loop_min_points:
        return None, frames, info
    loop = Loop(sfm, frames, ia, ib, info)
    info.update(accepted=True)
    _align_loop(kmap, loop, seq)
    return loop, frames, info


def _align_loop(kmap: KeyframeMap, loop: Loop, seq: SequenceOptions) -> None:
    """Move ``loop``'s model into the map's frame by the similarity fitted on its side a, and record how far its
    side b then lies from where the map has it (rotation, translation relative to the sides' spread, scale): the
    drift the loop measures; ``closed`` when within ``seq.loop_max_drift``."""
    import torch

    from mum.geometry import camera_centers, rotation_angle_deg

    ia, ib = loop.side_a, loop.side_b
    to_map = fit_similarity(loop.cams(ia), loop.map_cams(kmap, ia))
    loop.model = _moved(loop.model, to_map)
    drift = fit_similarity(loop.map_cams(kmap, ib), loop.cams(ib))
    centres = camera_centers(loop.map_cams(kmap, ia + ib))
    spread = max(float(np.linalg.norm(centres - centres.mean(0), axis=1).max()), 1e-9)
    angle = float(rotation_angle_deg(torch.from_numpy(drift.rotation), torch.from_numpy(np.eye(3))))
    loop.info.update(drift_rotation_deg=round(angle, 3), drift_scale=round(drift.scale, 4),
                     drift_translation=round(float(np.linalg.norm(drift.translation)) / spread, 3))
    deg, shift, scale = seq.loop_max_drift
    loop.info["closed"] = bool(loop.info["drift_rotation_deg"] <= deg and loop.info["drift_translation"] <= shift
                               and abs(np.log(loop.info["drift_scale"])) <= scale)


def _sfm_with_map_intrinsics(kmap: KeyframeMap, frames: list[int], source: ViewSource, focal: np.ndarray,
                             options: PipelineOptions) -> SfmResult:
    """SfM of ``frames`` (every pair matched) with the map's intrinsics held."""
    from app.engine.sfm import run_sfm
    from mum.native_stderr import native_stderr_to

    known = KnownCameras(np.repeat(kmap.K[None], len(frames), 0), ["given"] * len(frames),
                         np.full((len(frames), 4, 4), np.nan))
    with native_stderr_to(options.cameras.native_log):
        return run_sfm(source.load(frames), focal[frames], None, options.cameras.sfm, lambda _m: None, known=known)


# ------------------------------------------------------------------------------------------------- the path
NETWORK_BYTES_PER_PIXEL = 11  # the network's maps of a frame: depth and confidence (float32), colours (3 × uint8)
DENSE_BYTES_PER_PIXEL = 12  # the dense maps: the same and validity (bool)


def disk_needed(model: Any, source: ViewSource, options: PipelineOptions) -> int:
    """Bytes the sequence's maps take on the disk of ``TMPDIR`` until the run ends (:mod:`app.engine.frame_store`):
    every frame's network maps (:data:`NETWORK_BYTES_PER_PIXEL` a pixel of the network's grid) and its dense maps
    (:data:`DENSE_BYTES_PER_PIXEL` a pixel of the dense grid, as :func:`_dense` makes it)."""
    from app.engine.multiview_stereo import dense_factor
    from mum.io import network_size

    width, height = source.sizes[0]
    grid = network_size(width, height, options.network.long_side or model.cfg.image_size, model.patch_size)
    factor = dense_factor(grid, source.sizes[:1], options.dense.for_parts(max(width, height)).long_side)
    return len(source) * grid[0] * grid[1] * (NETWORK_BYTES_PER_PIXEL + DENSE_BYTES_PER_PIXEL * factor ** 2)


MAX_KEYFRAME_FRACTION = 0.5  # more keyframes than this share of the frames: photos far apart, not a video


def choose_keyframes(source: ViewSource, seq: SequenceOptions, say: Callable[[str], None]) -> KeyframeSelection:
    """Stage 1: the keyframes of ``source`` (every frame decoded once, in order)."""
    S = len(source)
    progress = StageProgress(say, 1, STAGES, "keyframes", S, "frame")
    selection = select_keyframes((source.load([f])[0] for f in range(S)), seq.keyframes,
                                 lambda i: progress.update(i + 1))
    say(f"stage 1/{STAGES} keyframes: {len(selection.keyframes)} of {S} frames "
        f"({selection.reasons.count('parallax')} for parallax, {selection.reasons.count('overlap')} for overlap)")
    return selection


def is_continuous(selection: KeyframeSelection) -> bool:
    """Whether the frames move little from one to the next, as a video's do: at most
    :data:`MAX_KEYFRAME_FRACTION` of them are keyframes."""
    return len(selection.keyframes) <= MAX_KEYFRAME_FRACTION * len(selection.parallax)


def plan_keyframe_chunks(count: int, size: int, shared: int) -> list[range]:
    """Consecutive chunks of keyframe positions, as even as possible, of at most ``size`` (one chunk up to
    1.25 × ``size``), consecutive chunks sharing ``shared``."""
    if count <= size * 5 // 4:
        return [range(count)]
    n = -(-(count - shared) // (size - shared))
    starts = [round(i * (count - shared) / n) for i in range(n)] + [count - shared]
    return [range(starts[i], starts[i + 1] + shared) for i in range(n)]


def reconstruct_sequence(
    model: Any,
    source: ViewSource,
    options: PipelineOptions,
    on_stage: Optional[Callable[[str], None]] = None,
    warn: Optional[Callable[[str], None]] = None,
    seq: SequenceOptions = SequenceOptions(),
    known: Optional[KnownCameras] = None,
    selection: Optional[KeyframeSelection] = None,
    continuous_only: bool = False,
) -> Optional[Reconstruction]:
    """Every frame of ``source`` (in order) reconstructed as a sequence; see the module docstring. ``known``:
    given or EXIF intrinsics (poses are not kept on this path); ``selection``: the keyframes when already
    chosen (:func:`choose_keyframes`). ``None`` when SfM registers fewer than two keyframes (one warning line),
    or with ``continuous_only`` when the frames do not follow each other closely, as a video's do
    (:func:`is_continuous`; one line): the caller reconstructs the frames as unordered views. ``options.network``:
    how the network runs (:class:`~app.engine.options.NetworkOptions`)."""
    from app.engine.cameras import joined_part, joined_parts

    network = options.network
    keyframe_sfm = replace(options.cameras.sfm, sift_first_octave=seq.sift_first_octave,
                           init_min_tri_angle=seq.init_min_tri_angle, pinhole_when_implausible=True)
    options = replace(options, cameras=replace(options.cameras, sfm=keyframe_sfm))
    say = on_stage or (lambda _msg: None)
    warn = warn or say
    S = len(source)
    if len(set(source.sizes)) != 1:
        raise ValueError("a sequence has frames of one size")
    size = source.sizes[0]
    t_start = time.perf_counter()
    clock = StageClock()

    # 1. keyframes
    if selection is None:
        selection = choose_keyframes(source, seq, say)
    keyframes = selection.keyframes
    if continuous_only and not is_continuous(selection):
        say(f"{len(keyframes)} of {S} frames are keyframes: frames this far apart are photos, not a "
            "video; they are reconstructed as unordered views (--sequence on to keep them a sequence)")
        return None
    maps_bytes = disk_needed(model, source, options)
    check_room(maps_bytes, f"the maps of {S} frames")  # before the long work, not when the dense stage starts
    clock.lap("keyframes")

    # 2. network
    windows = [range(s, min(S, s + seq.window)) for s in range(0, S, seq.window)]
    if len(windows) > 1 and len(windows[-1]) < seq.window // 2:  # no tiny last window: fold it into the one before
        windows[-2:] = [range(windows[-2].start, S)]
    maps = _network(model, source, windows, network, source.aspect(),
                    StageProgress(say, 2, STAGES, "network", len(windows), "window"))
    focal = np.asarray(maps.focal, np.float64)
    if known is not None:
        focal = np.where(known.known_intrinsics, known.K[:, 0, 0], focal)
    clock.lap("network")

    # 3. keyframe SfM in chunks
    plan = plan_keyframe_chunks(len(keyframes), seq.chunk_keyframes, seq.shared_keyframes)
    progress = StageProgress(say, 3, STAGES, "keyframe SfM", len(plan), "chunk", every=0.0)
    kmap: KeyframeMap | None = None
    chunk_info = []
    parts: list[dict] = []  # the mapper's other models, joined or not (:func:`_join_parts`)
    pairs_matched = 0
    for c, positions in enumerate(plan):
        frames = [keyframes[i] for i in positions]
        sfm = _map_chunk(kmap, frames, source, focal[frames], options, seq, known,
                         say=lambda m, c=c: say(f"stage 3/{STAGES} keyframe SfM, chunk {c + 1}/{len(plan)}: "
                                                f"{m.removeprefix('sfm: ')}"))
        pairs_matched += sfm.pairs_matched
        sfm, joins = _join_parts(sfm, frames, maps)
        for record in joins:
            say(f"stage 3/{STAGES} keyframe SfM, chunk {c + 1}/{len(plan)}: another part of the scene "
                f"{joined_part(record, 'keyframes')}")
        parts += joins
        if kmap is None:
            registered = np.nonzero(sfm.registered)[0]
            kmap = KeyframeMap(K=(sfm.intrinsics[registered[0]] if len(registered) else sfm.intrinsics[0]).copy())
        added = kmap.add(frames, sfm)
        chunk_info.append({"keyframes": [frames[0], frames[-1]], "registered": sfm.num_registered,
                           "of": len(frames), "parts_joined": sum(r["joined"] for r in joins),
                           "corner_distortion": round(sfm.corner_distortion, 4),
                           "distortion_dropped": sfm.distortion_dropped, **added})
        progress.update(c + 1, f"frames {frames[0]}–{frames[-1]}: {sfm.num_registered}/{len(frames)} keyframes "
                               "registered", force=True)
    window_of = [w for w, window in enumerate(windows) for _ in window]
    scale_breaks = repair_scale_breaks(kmap, keyframe_ratios(kmap, maps.depth, maps.transforms, seq.scale_breaks),
                                       [window_of[f] for f in kmap.frames], seq.scale_breaks,
                                       window_ties(model, source, maps, network, source.aspect()))
    for record in scale_breaks:
        say(f"stage 3/{STAGES} keyframe SfM: the map's scale jumps {record['factor']:.3g}× against the network's "
            f"depth between keyframes {record['after_keyframe']} and {record['first_keyframe']} (a turn on the spot?): "
            "the map from there on rescaled")
    clock.lap("keyframe_sfm")

    # 4. loop closures
    loops_info = []
    pose_graph: Optional[dict] = None
    if seq.loop_closure:
        candidates = _loop_candidates(keyframes, np.stack([maps.descriptors[f] for f in keyframes]), seq)
        progress = StageProgress(say, 4, STAGES, "loop closures", len(candidates), "candidate", every=0.0)
        drifting: list[Loop] = []
        for n, (a, b, similarity) in enumerate(candidates):
            loop, frames, info = _verify_loop(kmap, keyframes, a, b, source, focal, options, seq, say)
            info["similarity"] = round(similarity, 4)
            if loop is not None and info["closed"]:  # the loop's tracks join the map's: the bundle adjustment closes it
                info.update(kmap.add(loop.frames, loop.model, keep_poses=True))
            elif loop is not None:
                drifting.append(loop)
            loops_info.append(info)
            progress.update(n + 1, f"frames {keyframes[a]}↔{keyframes[b]} "
                                   + ("accepted" if info["accepted"] else "rejected"), force=True)
        if not candidates:
            say(f"stage 4/{STAGES} loop closures: no candidates")
        if drifting:  # too far apart for the bundle adjustment: the pose graph spreads their drift first
            used, pose_graph = close_drifting_loops(kmap, drifting, seq.pose_graph)
            for loop in used:
                before = {k: loop.info[k] for k in ("drift_rotation_deg", "drift_translation", "drift_scale")}
                _align_loop(kmap, loop, seq)
                loop.info["drift_before_pose_graph"] = before
                if loop.info["closed"]:
                    loop.info.update(kmap.add(loop.frames, loop.model, keep_poses=True))
            say(f"stage 4/{STAGES} loop closures: pose graph over {pose_graph['keyframes']} keyframes, "
                f"{len(used)} of {len(drifting)} drifting loop(s) closed"
                + (f" (cost {pose_graph['cost_before']:.4g} → {pose_graph['cost_after']:.4g})" if used else ""))
    clock.lap("loops")

    # 5. the other frames, by PnP against the map
    anchors = kmap.frames
    segments = list(zip(anchors[:-1], anchors[1:]))
    if anchors and anchors[0] > 0:
        segments.insert(0, (None, anchors[0]))
    if anchors and anchors[-1] < S - 1:
        segments.append((anchors[-1], None))
    progress = StageProgress(say, 5, STAGES, "registering frames", len(segments), "gap")
    pnp = 0
    keyframes_registered = len(anchors)
    for n, (a, b) in enumerate(segments):
        lo, hi = (0 if a is None else a), (S - 1 if b is None else b)
        if hi - lo >= 2 or (hi - lo == 1 and (a is None or b is None)):
            found = register_between(_FramesOf(source, range(lo, hi + 1)), lo,
                                     None if a is None else kmap.observations[a],
                                     None if b is None else kmap.observations[b], kmap.points, kmap.K,
                                     seq.registration)
            for f, r in found.items():
                kmap.poses[f] = r.cam_from_world
                kmap.observations[f] = (r.point_ids, r.pixels)
            pnp += len(found)
        progress.update(n + 1)
    clock.lap("registration")
    say(f"stage 5/{STAGES} registering frames: {keyframes_registered} keyframes by SfM, {pnp} other frames by PnP, "
        f"{S - pnp - keyframes_registered} left to the network")
    if len(kmap.poses) < 2:
        warn(f"warning: SfM registered {len(kmap.poses)} of the {len(keyframes)} keyframes: the frames are "
             "reconstructed as unordered views instead")
        return None

    # 6. bundle adjustment of every registered frame
    say(f"stage 6/{STAGES} bundle adjustment of {len(kmap.poses)} frames, {len(kmap.points):,} points")
    given = known is not None and "given" in known.intrinsics_source
    ba = adjust(kmap, size, refine_focal=not given,
                refine_principal_point=not given and len(kmap.poses) >= PRINCIPAL_POINT_MIN_FRAMES) \
        if len(kmap.poses) >= 2 else {}
    clock.lap("bundle_adjustment")
    if ba:
        say(f"stage 6/{STAGES} bundle adjustment: reprojection error {ba['reprojection_px_before']:.2f} → "
            f"{ba['reprojection_px_after']:.2f} px, {ba['points']:,} points")

    # 7. dense maps, window by window (and the network's cameras for frames nothing registered)
    cams = np.full((S, 4, 4), np.nan)
    for f, T in kmap.poses.items():
        cams[f] = T
    sources = ["sfm" if f in kmap.poses else "network" for f in range(S)]
    K_all = np.repeat(kmap.K[None], S, 0)
    if known is not None:
        K_all = np.where((np.array(known.intrinsics_source) == "given")[:, None, None], known.K, K_all)
    dense = _dense(kmap, maps, windows, cams, sources, K_all, source, options,
                   StageProgress(say, 7, STAGES, "dense", len(windows), "window"))
    clock.lap("dense")

    # the result: world = the first frame's camera
    first = cams[0].copy()
    cams = cams @ np.linalg.inv(first)
    to_first = Similarity(1.0, first[:3, :3], first[:3, 3])
    depth, conf, valid, colors, transforms, disagreement, stereo = dense
    recon = Reconstruction(
        names=list(source.names), image_sizes=list(source.sizes), cam_from_world=cams, intrinsics=K_all,
        depth=depth, depth_conf=conf, world_points=np.broadcast_to(np.float32(np.nan), depth.shape + (3,)),
        world_points_conf=conf, colors=colors, transforms=transforms, camera_sources=sources,
        intrinsics_sources=[("given" if known is not None and known.intrinsics_source[f] == "given" else "sfm")
                            for f in range(S)],
        valid=valid, sfm_points=_map_cloud(kmap, to_first))
    from app.engine.sfm import reprojection_errors

    obs = [kmap.observations.get(f, (np.zeros(0, np.int64), np.zeros((0, 2)))) for f in range(S)]
    errors = reprojection_errors(recon.cam_from_world, recon.intrinsics, apply(to_first, kmap.points), obs)
    registered_count = sources.count("sfm")
    recon.meta.update(
        inference_s=maps.inference_s, device=network.device, network_size=maps.network_size, dropped=[],
        sfm={"registered_views": registered_count, "views": S, "points3D": len(kmap.points),
             "observations": int(errors.size),
             "reprojection_px_mean": float(errors.mean()) if errors.size else float("nan"),
             "reprojection_px_median": float(np.median(errors)) if errors.size else float("nan"),
             "pairs_matched": pairs_matched, "matching": "sequential keyframes", "seconds": clock.wall},
        sequence={"keyframes": len(keyframes), "keyframe_frames": keyframes,
                  "keyframes_registered": keyframes_registered, "registered_by_pnp": pnp,
                  "network_placed": S - registered_count, "windows": len(windows), "chunks": chunk_info,
                  "maps_on_disk_mb": round(maps_bytes / 2**20, 1),
                  "scale_breaks": scale_breaks, "loops": loops_info, "pose_graph": pose_graph, "other_models": parts, "bundle_adjustment": ba, "seconds": clock.wall,
                  "cpu_seconds": clock.cpu,
                  "peak_rss_mib": clock.peak_rss,
                  "seconds_total": round(time.perf_counter() - t_start, 3)},
        stage_seconds=clock.summary({"network": ("network",), "dense": ("dense",),
                                     "cameras": ("keyframes", "keyframe_sfm", "loops", "registration",
                                                 "bundle_adjustment")}),
        consistency={"median_depth_disagreement": disagreement},
    )
    if stereo is not None:
        recon.meta["stereo"] = stereo
    if any(record["joined"] for record in parts):
        warn(f"warning: the keyframes fall into {joined_parts(parts)}")
    if S - registered_count:
        warn(f"warning: {S - registered_count} of {S} frames could not be registered to the map; their cameras are "
             "the network's, placed by a similarity on their window's registered frames")
    return recon


class _FramesOf(Sequence):
    """Frames ``frames`` of ``source`` as a sequence that decodes a frame when it is indexed: the frames between
    two keyframes can be hundreds (the map lost for a while), and :func:`register_between` holds two at a time."""

    def __init__(self, source: ViewSource, frames: range) -> None:
        self.source, self.frames = source, frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, k):  # one frame, uint8 RGB [H, W, 3]
        return self.source.load([self.frames[k]])[0]


def _dense(kmap: KeyframeMap, maps: FrameMaps, windows: Sequence[range], cams: np.ndarray, sources: list[str],
           K_all: np.ndarray, source: ViewSource, options: PipelineOptions, progress: StageProgress):
    """Each window's dense stage (:func:`app.engine.dense_geometry.add_dense_geometry`, ``options.dense`` at the
    grid every window shares: :meth:`~app.engine.dense_options.DenseOptions.for_parts`): the network depth fitted
    to its frames' observations (keyframes: SfM's; the others: their PnP inliers) and cross-checked between the
    window's frames; then (``--dense stereo``, the default) multi-view stereo among the window's registered
    frames, each matched with those that share the most map points at a useful angle
    (:mod:`app.engine.view_selection`); a frame without a registered camera keeps the fitted depth
    (``match_network_cameras`` off). Frames without a registered camera get the network's, placed by a similarity
    fitted on the window's registered frames (``cams`` is filled in place). Returns depth, confidence, validity,
    colours ``[S, H, W(, 3)]`` (on disk), the frames' view transforms to that grid, the median disagreement and
    the windows' stereo figures combined (:func:`app.engine.multiview_stereo.combine_stereo_meta`; ``None``
    without stereo)."""
    from app.engine.dense_geometry import add_dense_geometry
    from app.engine.multiview_stereo import combine_stereo_meta, dense_factor

    dense_options = replace(options.dense.for_parts(max(source.sizes[0])), match_network_cameras=False)
    S = len(sources)
    factor = dense_factor(maps.transforms[0].grid_size, source.sizes[:1], dense_options.long_side)
    w, h = maps.transforms[0].scaled(factor).grid_size
    depth_all = frames_on_disk((S, h, w), np.float32)  # on disk, filled window by window: memory holds one window
    conf_all = frames_on_disk((S, h, w), np.float32)
    valid_all = frames_on_disk((S, h, w), bool)
    colors_all = frames_on_disk((S, h, w, 3), np.uint8)
    transforms: list = [None] * S
    disagreements, stereo = [], []
    for w_index, frames in enumerate(windows):
        idx = list(frames)
        registered = np.array([sources[f] == "sfm" for f in idx])
        net = np.stack([maps.network_cams[f] for f in idx])
        if registered.sum() >= 2:
            window_cams, _, similarity = fill_unregistered(net, np.nan_to_num(cams[idx]), registered)
            depth_scale = similarity.scale
        else:
            window_cams, depth_scale = _nearest_cameras(cams, idx), 1.0
        cams[idx] = window_cams
        recon = Reconstruction(
            names=[source.names[f] for f in idx], image_sizes=[source.sizes[f] for f in idx],
            cam_from_world=window_cams, intrinsics=K_all[idx].copy(),
            depth=maps.depth[idx], depth_conf=maps.conf[idx],  # copies (a list index)
            world_points=np.zeros((len(idx), 1, 1, 3), np.float32), world_points_conf=np.zeros((len(idx), 1, 1)),
            colors=maps.colors[idx], transforms=[maps.transforms[f] for f in idx],
            camera_sources=["sfm" if ok else "network" for ok in registered])
        window_sfm, window_points = _window_observations(kmap, idx, registered, K_all[idx])
        arrays = source.load(idx) if factor > 1 or dense_options.mode == "stereo" else None
        add_dense_geometry(recon, arrays, recon.transforms, window_sfm, window_points, depth_scale, dense_options,
                           lambda _m: None)
        del arrays
        depth_all[idx], conf_all[idx], valid_all[idx], colors_all[idx] = (recon.depth, recon.depth_conf, recon.valid,
                                                                          recon.colors)
        for k, f in enumerate(idx):
            transforms[f] = recon.transforms[k]
        if "consistency" in recon.meta:  # not with --dense none: the depth is not cross-checked
            disagreements.append(recon.meta["consistency"]["median_depth_disagreement"])
        stereo.append(recon.meta.get("stereo"))
        release_pages(maps.depth, maps.conf, maps.colors, depth_all, conf_all, valid_all, colors_all)
        progress.update(w_index + 1)
    matched = sum(m["views_matched"] for m in stereo if m)  # each frame is in one window
    return (depth_all, conf_all, valid_all, colors_all, transforms,
            float(np.nanmedian(disagreements)) if disagreements else float("nan"), combine_stereo_meta(stereo, matched))


def _nearest_cameras(cams: np.ndarray, idx: list[int]) -> np.ndarray:
    """Cameras for a window without two registered frames: each frame's own if it has one, else the nearest
    registered frame's (identity if there is none at all)."""
    have = np.nonzero(np.isfinite(cams).all(axis=(1, 2)))[0]
    out = []
    for f in idx:
        if np.isfinite(cams[f]).all():
            out.append(cams[f])
        elif len(have):
            out.append(cams[have[np.argmin(np.abs(have - f))]])
        else:
            out.append(np.eye(4))
    return np.stack(out)


def _window_observations(kmap: KeyframeMap, idx: Sequence[int], registered: np.ndarray,
                         K: np.ndarray) -> tuple[SfmResult, np.ndarray]:
    """The map's observations of a window's registered frames ``idx`` as an :class:`SfmResult` (what the dense
    stage reads: the fit, the stereo's view selection and depth ranges) over the map points they see, which
    keep their identity across frames (shared points make the covisibility), and those points."""
    empty = (np.zeros(0, np.int64), np.zeros((0, 2)))
    observed = [kmap.observations.get(f, empty) if ok else empty for f, ok in zip(idx, registered)]
    ids = np.unique(np.concatenate([np.asarray(i, np.int64) for i, _ in observed]))
    obs = [(np.searchsorted(ids, np.asarray(i, np.int64)), np.asarray(uv, np.float64).reshape(-1, 2))
           for i, uv in observed]
    points = kmap.points[ids] if len(ids) else np.zeros((0, 3))
    n = len(idx)
    sfm = SfmResult(registered=np.asarray(registered), cam_from_world=np.full((n, 4, 4), np.nan), intrinsics=K,
                    points=points, point_colors=np.zeros((len(points), 3), np.uint8), observations=obs,
                    pairs_matched=0, pairs_verified=0)
    return sfm, points


def _map_cloud(kmap: KeyframeMap, to_first: Similarity) -> PointCloud:
    """The keyframe map's points in the first frame's world, each credited to its first observing keyframe."""
    P = len(kmap.points)
    view = np.full(P, -1, np.int32)
    pixel = np.zeros((P, 2))
    for f in kmap.frames:
        idx, uv = kmap.observations[f]
        new = view[idx] < 0
        view[idx[new]] = f
        pixel[idx[new]] = uv[new]
    seen = view >= 0
    return PointCloud(apply(to_first, kmap.points[seen]).astype(np.float32), kmap.colors[seen],
                      np.ones(int(seen.sum()), np.float32), view[seen], pixel[seen])
