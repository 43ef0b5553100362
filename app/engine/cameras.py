"""The cameras stage: each view's camera and intrinsics, in place on the network's
:class:`~app.engine.reconstruction.Reconstruction`.

Given and EXIF intrinsics replace the network's (:mod:`app.engine.known_cameras`); SfM from scratch
(:mod:`app.engine.sfm`: SIFT, all pairs up to ``matching.exhaustive_up_to`` views and network-guided pairs beyond,
:mod:`app.engine.pair_selection`; the network's focal length as the initial one); views SfM did not register get
the network's camera placed by a similarity fitted on the registered ones (:mod:`app.engine.camera_fusion`);
with fewer than two registered views, or a model of fewer than :data:`MIN_MODEL_POINTS` points (views turned on
the spot: no baseline, so nothing to triangulate and SfM's camera positions are arbitrary), the network's cameras
are used alone (one warning line). Given poses
(``--fix-poses``) are kept exactly. World frame: the first camera (the cameras file's with given poses).
``--fast`` keeps the network's cameras (:func:`keep_network_cameras`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from app.engine.camera_fusion import Similarity, apply, fill_unregistered, fit_similarity
from app.engine.dense_fit import overlap_neighbours, sample_bilinear
from app.engine.known_cameras import KnownCameras
from app.engine.options import CameraOptions
from app.engine.pair_selection import select_pairs
from app.engine.reconstruction import PointCloud, Reconstruction
from app.engine.sfm import SfmResult, reprojection_errors, run_sfm
from mum.geometry import camera_centers, rotation_angle_deg, transform_points
from mum.native_stderr import native_stderr_to

MIN_MODEL_POINTS = 15  # an SfM model with fewer points has no baseline to speak of (as sfm._two_view_model refuses)


@dataclass
class CameraFit:
    """What the dense stage takes from the cameras stage: the SfM result (``None`` where the cameras are the
    network's alone), its points ``[N, 3]`` in the exported world frame, and the factor from network depth to
    world units for views no SfM point fits."""

    sfm: SfmResult | None
    points: np.ndarray
    depth_scale: float


def keep_network_cameras(recon: Reconstruction, known: KnownCameras | None, say: Callable[[str], None]) -> None:
    """``--fast``: the network's cameras, with given and EXIF intrinsics and (``--fix-poses``) given poses."""
    if known is None:
        return
    apply_known_intrinsics(recon, known)
    if known.posed.any():
        place_on_given_poses(recon, known, say)


def add_cameras(
    recon: Reconstruction,
    arrays: Sequence[np.ndarray],
    descriptors: np.ndarray,
    options: CameraOptions,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    known: KnownCameras | None = None,
) -> CameraFit:
    """Replace ``recon``'s cameras (network's, in place) by SfM's, network-placed where SfM has none; record
    ``recon.meta["sfm"]`` and the SfM points (``recon.sfm_points``). ``arrays``: the views (``uint8`` RGB, original
    size); ``descriptors``: the network's retrieval descriptors ``[S, C]``; ``known``: given or EXIF intrinsics
    and the poses to keep (:func:`_cameras_with_given_poses`)."""
    S = recon.num_views
    if known is not None:
        apply_known_intrinsics(recon, known)
    known = known if known is not None else KnownCameras.empty(S)
    pairs = None
    matching = options.matching
    if S > matching.exhaustive_up_to:
        overlap = overlap_neighbours(recon.depth.astype(np.float64), recon.network_intrinsics, recon.cam_from_world,
                                     matching.overlap_neighbours)
        pairs = select_pairs(descriptors, overlap, matching.retrieval_neighbours, matching.sequential_window)
    if S >= 2:
        with native_stderr_to(options.native_log):
            sfm = run_sfm(arrays, recon.intrinsics[:, 0, 0], pairs, options.sfm, say, known=known)
    else:
        sfm = None
    network_cams = recon.cam_from_world.copy()
    depth_scale = 1.0  # network depth units → world units when no view can be fitted
    main_model_views, joins = (0 if sfm is None else sfm.num_registered), []
    if known.posed.any():
        cams, sources, depth_scale, sfm, points = _cameras_with_given_poses(network_cams, sfm, known, say)
        K, intrinsics_sources = _intrinsics(sfm, recon, known)
    elif sfm is not None and sfm.num_registered >= 2 and len(sfm.points) >= MIN_MODEL_POINTS:
        cams, sources, similarity = fill_unregistered(network_cams, sfm.cam_from_world, sfm.registered)
        depth_scale = similarity.scale
        if sfm.other_models:
            kept = np.nonzero(sfm.registered)[0]
            kept_units = units_per_network_depth(recon.depth, recon.transforms, kept, sfm.cam_from_world[kept],
                                                 sfm.points, [sfm.observations[i] for i in kept])
            ratios = [kept_units / units_per_network_depth(recon.depth, recon.transforms, m.views, m.cam_from_world,
                                                           m.points, m.observations)
                      for m in sfm.other_models]
            sfm, joins = join_other_models(network_cams, sfm, similarity, ratios)
            cams = np.where(sfm.registered[:, None, None], sfm.cam_from_world, cams)
            sources = ["sfm" if r else "network" for r in sfm.registered]
            for record in joins:
                say(f"sfm: another part of the scene {joined_part(record)}")
            if any(record["joined"] for record in joins):
                warn(f"warning: the views fall into {joined_parts(joins)}")
        K, intrinsics_sources = _intrinsics(sfm, recon, known)
        if sources.count("network"):
            missing = [recon.names[i] for i, s in enumerate(sources) if s == "network"]
            say(f"sfm: {len(missing)} view(s) not registered, placed from the network: {', '.join(missing[:5])}"
                + (" …" if len(missing) > 5 else ""))
    else:
        registered = 0 if sfm is None else sfm.num_registered
        reason = "one view" if S < 2 else f"SfM registered {registered} of {S} views (too few matches)"
        if registered >= 2:  # and too few points: a stereo on its arbitrary baseline would invent depth
            reason = (f"SfM registered {registered} of {S} views but triangulated only {len(sfm.points)} points "
                      "(no baseline: views turned on the spot?)")
        elif S >= 2 and sfm is not None and sfm.pairs_verified:  # views that match but give no map to start from
            reason = (f"SfM matched {sfm.pairs_verified} pair(s) of views but could not start a map from them "
                      "(too little baseline: the same photo twice, or views turned on the spot?)")
        warn(f"warning: {reason}: cameras and depth come from the network alone")
        cams, sources, K = network_cams, ["network"] * S, recon.intrinsics.copy()
        intrinsics_sources = recon.intrinsics_origins()
        sfm = None
    if not known.posed.any():
        # world = first camera (scale: SfM's)
        to_first = np.linalg.inv(cams[0])
        cams = cams @ to_first
        points = np.zeros((0, 3))
        if sfm is not None and len(sfm.points):
            old_world_to_first = torch.from_numpy(np.linalg.inv(to_first))
            points = transform_points(old_world_to_first, torch.from_numpy(sfm.points)).numpy()
    else:
        recon.meta["world"] = "given"  # the cameras file's frame and scale
    recon.cam_from_world, recon.intrinsics, recon.camera_sources = cams, K, sources
    recon.intrinsics_sources = intrinsics_sources
    if sfm is not None:
        errors = reprojection_errors(recon.cam_from_world, recon.intrinsics, points, sfm.observations)
        recon.sfm_points = _sfm_cloud(points, sfm)
        recon.meta["sfm"] = {
            "registered_views": main_model_views,  # by the kept model
            "joined_views": sfm.num_registered - main_model_views,  # by other models, joined through the network
            "other_models": joins,
            "views": S,
            "points3D": len(points),
            "observations": int(errors.size),
            "reprojection_px_mean": float(errors.mean()) if errors.size else float("nan"),
            "reprojection_px_median": float(np.median(errors)) if errors.size else float("nan"),
            "pairs_matched": sfm.pairs_matched,
            "pairs_verified": sfm.pairs_verified,
            "matching": "exhaustive" if pairs is None else "network-guided",
            "relaxed_mapping": sfm.relaxed,
            "initial_focal": sfm.initial_focal,
            "corner_distortion": round(sfm.corner_distortion, 4),
            "distortion_dropped": sfm.distortion_dropped,
            "seconds": {k: round(v, 3) for k, v in sfm.seconds.items()},
        }
        say(f"sfm: {sfm.num_registered}/{S} views registered, {len(points):,} points, reprojection error "
            f"{recon.meta['sfm']['reprojection_px_mean']:.2f} px (exported cameras)")
    return CameraFit(sfm, points, depth_scale)


def join_other_models(network: np.ndarray, sfm: SfmResult, to_sfm: Similarity, scale_ratios: list[float]
                      ) -> tuple[SfmResult, list[dict]]:
    """SfM's other models (``sfm.other_models``: parts of the scene that share no verified match with the kept
    model) joined to the kept model through the network: each part keeps SfM's cameras and points relative to
    each other, and only the link between the parts is the network's. Model ``k``'s link ``x → s·R·x + t``:
    ``R`` from the network's rotations (``to_sfm`` and the model's own similarity from the network frame,
    fitted alike), ``s = scale_ratios[k]`` (kept-model units per model-``k`` unit, measured by the caller from the
    network's depth, which holds one scale across views better than its camera positions do), ``t`` placing the
    centroid of the model's camera centres where the network's cameras put it. Views whose network camera is
    unknown (NaN rows of ``network``: the sequence path places the network's cameras window by window) do not
    enter the link; the link's similarity moves all of the model's views. Within a part SfM's cameras
    are kept even where the network's rotations disagree with them (``rotation_disagreement_deg``, the median
    over its linked views, is recorded: it says how far the link can be trusted); a model without a scale or
    without a view with a network camera is left out and its views stay the network's. Returns the result with
    the joined views registered and their points and observations appended (``other_models`` emptied), and one
    record per model."""
    registered, cams, K = sfm.registered.copy(), sfm.cam_from_world.copy(), sfm.intrinsics.copy()
    points, colors, observations = [sfm.points], [sfm.point_colors], list(sfm.observations)
    offset, records = len(sfm.points), []
    for model, ratio in zip(sfm.other_models, scale_ratios):
        linked = np.isfinite(network[model.views]).all(axis=(1, 2))
        if not (np.isfinite(ratio) and ratio > 0) or not linked.any():
            records.append({"views": len(model.views), "view_indices": model.views.tolist(), "joined": False})
            continue
        own = model.cam_from_world[linked]
        rotation = to_sfm.rotation @ fit_similarity(network[model.views[linked]], own).rotation.T
        placed = to_sfm.apply_to_cameras(network[model.views[linked]])
        centre = camera_centers(own).mean(0)
        join = Similarity(ratio, rotation, camera_centers(placed).mean(0) - ratio * rotation @ centre)
        joined = join.apply_to_cameras(model.cam_from_world)
        angles = rotation_angle_deg(torch.from_numpy(joined[linked, :3, :3]),
                                    torch.from_numpy(placed[:, :3, :3])).numpy()
        records.append({"views": len(model.views), "view_indices": model.views.tolist(),
                        "rotation_disagreement_deg": round(float(np.median(angles)), 2), "scale": round(float(ratio), 6),
                        "joined": True})
        registered[model.views] = True
        cams[model.views] = joined
        K[model.views] = model.intrinsics
        points.append(apply(join, model.points))
        colors.append(model.point_colors)
        for i, (idx, uv) in zip(model.views, model.observations):
            observations[i] = (idx + offset, uv)
        offset += len(model.points)
    merged = replace(sfm, registered=registered, cam_from_world=cams, intrinsics=K, points=np.concatenate(points),
                     point_colors=np.concatenate(colors), observations=observations, other_models=[])
    return merged, records


def joined_part(record: dict, unit: str = "views") -> str:
    """What a progress line says of one record of :func:`join_other_models` after "another part of the scene"
    (``unit``: what its views are, e.g. ``"keyframes"``, whose frame numbers it then names)."""
    frames = (f", frames {record['view_indices'][0]}–{record['view_indices'][-1]}"
              if unit != "views" and record["view_indices"] else "")
    return (f"({record['views']} {unit}{frames}, no match with the rest) "
            + ("joined through the network's depth and cameras" if record["joined"] else "left out")
            + (f" (rotations within {record['rotation_disagreement_deg']:.1f}° of the network's)"
               if "rotation_disagreement_deg" in record else ""))


def joined_parts(records: Sequence[dict]) -> str:
    """What the one warning line says, after "the views fall into", when :func:`join_other_models` joined
    parts (its ``records``)."""
    return (f"{1 + sum(r['joined'] for r in records)} parts that share no match: each part's cameras are SfM's, "
            "their placement relative to each other is the network's guess")


def units_per_network_depth(depth, transforms, views: Sequence[int], cam_from_world: np.ndarray, points: np.ndarray,
                            observations: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """A model's length units per unit of the network's depth: the median over ``views`` of each view's median
    ratio of its observed points' depth (``cam_from_world`` ``[n, 4, 4]``, ``points`` ``[P, 3]``) to the network's
    depth at their pixels (``depth[i]`` ``[h, w]`` and ``transforms[i]``, the view's
    :class:`~mum.io.ViewTransform`, for each ``i`` of ``views``: arrays, lists or dicts); NaN when no view has a
    valid ratio."""
    ratios = [view_units_per_network_depth(depth[i], transforms[i], cam, points, obs)
              for i, cam, obs in zip(views, cam_from_world, observations)]
    ratios = [r for r in ratios if np.isfinite(r)]
    return float(np.median(ratios)) if ratios else float("nan")


def view_units_per_network_depth(depth: np.ndarray, transform, cam_from_world: np.ndarray, points: np.ndarray,
                                 observations: tuple[np.ndarray, np.ndarray]) -> float:
    """One view's model units per unit of the network's depth: the median ratio of its observed points' depth
    (``cam_from_world`` ``[4, 4]``, ``points`` ``[P, 3]``, ``observations``: point indices and pixels) to the
    network's depth at their pixels (``depth`` ``[h, w]``, ``transform`` the view's
    :class:`~mum.io.ViewTransform`); NaN when no point has both."""
    idx, uv = observations
    z = (points[idx] @ cam_from_world[:3, :3].T + cam_from_world[:3, 3])[:, 2]
    d = sample_bilinear(np.asarray(depth, np.float64), transform.points_to_network(uv))
    ok = np.isfinite(d) & (d > 0) & (z > 0)
    return float(np.median(z[ok] / d[ok])) if ok.any() else float("nan")


def apply_known_intrinsics(recon: Reconstruction, known: KnownCameras) -> None:
    """Given and EXIF intrinsics replace the network's (depth is then unprojected with them)."""
    sources = recon.intrinsics_origins()
    for i, source in enumerate(known.intrinsics_source):
        if source:
            recon.intrinsics[i] = known.K[i]
            sources[i] = source
    recon.intrinsics_sources = sources


def place_on_given_poses(recon: Reconstruction, known: KnownCameras, say: Callable[[str], None]) -> None:
    """``fast`` with poses kept: the given poses exactly; the network's cameras of the other views, its depth
    and its point map brought into the given frame and scale by the similarity that maps the network's cameras
    of the posed views onto the given ones."""
    posed = known.posed
    cams, _, sim = fill_unregistered(recon.cam_from_world, np.nan_to_num(known.cam_from_world), posed)
    recon.cam_from_world = cams
    recon.camera_sources = ["given" if p else "network" for p in posed]
    recon.depth = (recon.depth * sim.scale).astype(np.float32)
    recon.world_points = apply(sim, recon.world_points.astype(np.float64)).astype(np.float32)
    recon.meta["world"] = "given"
    say(f"cameras: {int(posed.sum())} given pose(s) kept; network depth scaled by {sim.scale:.4g} to them")


def _intrinsics(sfm: SfmResult | None, recon: Reconstruction, known: KnownCameras) -> tuple[np.ndarray, list[str]]:
    """Each view's intrinsics and their source: given ones exactly; SfM's for registered views; for the others
    the EXIF focal length, else the median SfM focal length of views of the same size, else the network's
    (``recon.intrinsics``, which already holds the given and EXIF ones)."""
    S = recon.num_views
    K, sources = recon.intrinsics.copy(), recon.intrinsics_origins()
    if sfm is None:
        return K, sources
    for i in range(S):
        if known.intrinsics_source[i] == "given":
            continue
        if sfm.registered[i]:
            K[i], sources[i] = sfm.intrinsics[i], "sfm"
        elif known.intrinsics_source[i] != "exif":
            same = [j for j in np.nonzero(sfm.registered)[0] if recon.image_sizes[j] == recon.image_sizes[i]]
            if same:
                K[i] = sfm.intrinsics[i]  # the prior's principal point (the image centre)
                K[i, 0, 0] = K[i, 1, 1] = float(np.median(sfm.intrinsics[same, 0, 0]))
                sources[i] = "sfm"
    return K, sources


def _cameras_with_given_poses(network: np.ndarray, sfm: SfmResult | None, known: KnownCameras,
                              say: Callable[[str], None]) -> tuple[np.ndarray, list[str], float, SfmResult | None, np.ndarray]:
    """``--fix-poses``: the given poses exactly, in the given world frame and scale; SfM's poses for the other
    views it registered (with two or more given poses SfM ran from them and is already in that frame; with one,
    it is aligned to it by a rigid motion, its scale kept); the network's for the rest, placed by a similarity
    fitted on all of those. Returns the cameras, their sources, the network-to-world depth scale, the SfM
    result (``None`` when unusable) and its points in the given frame."""
    S = len(network)
    posed = known.posed
    cams = np.full((S, 4, 4), np.nan)
    cams[posed] = known.cam_from_world[posed]
    sources = ["given" if p else "network" for p in posed]
    points = np.zeros((0, 3))
    if sfm is not None and sfm.num_registered >= 1 and (sfm.registered & posed).any():
        sfm_cams, points = sfm.cam_from_world, sfm.points
        if posed.sum() < 2:  # SfM mapped freely: into the given frame (one pose: scale 1)
            both = sfm.registered & posed
            similarity = fit_similarity(sfm.cam_from_world[both], known.cam_from_world[both])
            sfm_cams = np.where(sfm.registered[:, None, None], similarity.apply_to_cameras(np.nan_to_num(sfm_cams)),
                                np.nan)
            points = apply(similarity, points)
        for i in np.nonzero(sfm.registered & ~posed)[0]:
            cams[i], sources[i] = sfm_cams[i], "sfm"
    else:
        if sfm is not None:
            say("sfm: nothing registered to the given poses; the other views are placed from the network")
        sfm = None
    have = np.array([s != "network" for s in sources])
    cams, _, similarity = fill_unregistered(network, np.nan_to_num(cams), have)
    placed = [n for n, s in zip(range(S), sources) if s == "network"]
    if placed:
        say(f"cameras: {len(placed)} view(s) placed from the network on the given/SfM poses")
    return cams, sources, similarity.scale, sfm, points


def _sfm_cloud(points: np.ndarray, sfm: SfmResult) -> PointCloud:
    """The SfM points with their colours, each credited to its first observing view."""
    P = len(points)
    view = np.full(P, -1, np.int32)
    pixel = np.zeros((P, 2))
    for i, (idx, uv) in enumerate(sfm.observations):
        first = view[idx] < 0
        view[idx[first]] = i
        pixel[idx[first]] = uv[first]
    seen = view >= 0
    return PointCloud(points[seen].astype(np.float32), sfm.point_colors[seen], np.ones(int(seen.sum()), np.float32),
                      view[seen], pixel[seen])
