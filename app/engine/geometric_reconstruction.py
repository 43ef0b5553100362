"""Steps 2–4 of the default path (see :mod:`app.engine.pipeline`): SfM cameras, placement of the views SfM missed,
dense depth fitted to the SfM points, upsampled and cross-checked between views.

Everything happens in place on a feedforward :class:`~app.engine.reconstruction.Reconstruction`; afterwards its
cameras are the exported ones and ``recon.meta["sfm"]`` / ``recon.meta["consistency"]`` describe exactly them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from app.engine.camera_fusion import apply, fill_unregistered, fit_similarity
from app.engine.dense_fit import (
    depth_agreement,
    fit_correction_field,
    fit_depth,
    fuse_depths,
    overlap_neighbours,
    upsample_depth,
)
from app.engine.known_cameras import KnownCameras
from app.engine.pair_selection import select_pairs
from app.engine.reconstruction import PointCloud, Reconstruction
from app.engine.sfm import SfmResult, reprojection_errors, run_sfm
from mum.io import ViewTransform, warp_view
from mum.native_stderr import native_stderr_to

if TYPE_CHECKING:
    from app.engine.options import PipelineOptions


def add_geometry(
    recon: Reconstruction,
    arrays: Sequence[np.ndarray],
    transforms: Sequence[ViewTransform],
    descriptors: np.ndarray,
    options: PipelineOptions,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    known: KnownCameras | None = None,
) -> None:
    """Replace ``recon``'s cameras by SfM's (network-placed where SfM has none) and its dense maps by the
    network depth fitted to them; see the module docstring of :mod:`app.engine.pipeline`. ``known``: given or EXIF
    intrinsics (already in ``recon.intrinsics``) and the poses to keep (:func:`_cameras_with_given_poses`)."""
    S = recon.num_views
    known = known if known is not None else KnownCameras.empty(S)
    pairs = None
    if S > options.exhaustive_up_to:
        overlap = overlap_neighbours(recon.depth.astype(np.float64), recon.network_intrinsics, recon.cam_from_world,
                                     options.overlap_neighbours)
        pairs = select_pairs(descriptors, overlap, options.retrieval_neighbours, options.sequential_window)
    if S >= 2:
        with native_stderr_to(options.native_log):
            sfm = run_sfm(arrays, recon.intrinsics[:, 0, 0], pairs, options.sfm, say, known=known)
    else:
        sfm = None
    network_cams = recon.cam_from_world.copy()
    depth_scale = 1.0  # network depth units → world units when no view can be fitted
    if known.posed.any():
        cams, sources, depth_scale, sfm, points = _cameras_with_given_poses(network_cams, sfm, known, say)
        K, intrinsics_sources = _intrinsics(sfm, recon, known)
    elif sfm is not None and sfm.num_registered >= 2:
        cams, sources, similarity = fill_unregistered(network_cams, sfm.cam_from_world, sfm.registered)
        depth_scale = similarity.scale
        K, intrinsics_sources = _intrinsics(sfm, recon, known)
        if sources.count("network"):
            missing = [recon.names[i] for i, s in enumerate(sources) if s == "network"]
            say(f"sfm: {len(missing)} view(s) not registered, placed from the network: {', '.join(missing[:5])}"
                + (" …" if len(missing) > 5 else ""))
    else:
        registered = 0 if sfm is None else sfm.num_registered
        reason = "one view" if S < 2 else f"SfM registered {registered} of {S} views (too few matches)"
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
            points = _transform_points(np.linalg.inv(to_first), sfm.points)  # old world → first camera's frame
    else:
        recon.meta["world"] = "given"  # the cameras file's frame and scale
    recon.cam_from_world, recon.intrinsics, recon.camera_sources = cams, K, sources
    recon.intrinsics_sources = intrinsics_sources
    _fit_dense(recon, arrays, transforms, sfm, points, depth_scale, options, say)
    if sfm is not None:
        errors = reprojection_errors(recon.cam_from_world, recon.intrinsics, points, sfm.observations)
        recon.sfm_points = _sfm_cloud(points, sfm)
        recon.meta["sfm"] = {
            "registered_views": sfm.num_registered,
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
            "seconds": {k: round(v, 3) for k, v in sfm.seconds.items()},
        }
        say(f"sfm: {sfm.num_registered}/{S} views registered, {len(points):,} points, reprojection error "
            f"{recon.meta['sfm']['reprojection_px_mean']:.2f} px (exported cameras)")


def _transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[N, 3]`` points through one ``[4, 4]`` transform (the project's :func:`mum.geometry.transform_points`)."""
    import torch

    from mum.geometry import transform_points

    return transform_points(torch.from_numpy(T), torch.from_numpy(points)).numpy()


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


def _fit_dense(recon: Reconstruction, arrays, transforms, sfm: SfmResult | None, points: np.ndarray,
               depth_scale: float, options: PipelineOptions, say: Callable[[str], None]) -> None:
    """The dense stage (in place): fit the network's depth to the SfM points; then ``none``: keep it on the
    network's grid, out of the cloud; ``fitted``: upsample and cross-check it; ``stereo``: cross-check it on the
    network's grid and make it the prior of multi-view stereo (:mod:`app.engine.multiview_stereo`)."""
    dense = options.dense
    depth = _fitted_depth(recon, transforms, sfm, points, depth_scale, options, say)
    if dense.mode == "none":
        recon.depth = depth.astype(np.float32)
        recon.valid = np.zeros(depth.shape, bool)
        recon.world_points = recon.depth_points()
        say("dense: none (--dense none): the cloud holds the SfM points only")
        return
    placed = sum(source != "network" for source in recon.pose_origins())
    if dense.mode == "stereo" and placed >= 2:
        from app.engine.multiview_stereo import add_stereo

        _cross_check(recon, depth, options, lambda _line: None)  # the prior's figures are not the result's
        add_stereo(recon, arrays, transforms, sfm, points, dense, say)
        return
    if dense.mode == "stereo":
        say("dense: no stereo without cameras from SfM or a cameras file: the fitted depth")
        dense = replace(dense, mode="fitted")  # and its size, unless one was given
    from app.engine.multiview_stereo import dense_factor

    factor = dense_factor(transforms, recon.image_sizes, dense.long_side)
    if factor > 1:
        depth = _upsample(recon, depth, arrays, transforms, factor, say)
    _cross_check(recon, depth, options, say)


def _fitted_depth(recon: Reconstruction, transforms, sfm: SfmResult | None, points: np.ndarray, depth_scale: float,
                  options: PipelineOptions, say: Callable[[str], None]) -> np.ndarray:
    """``[S, h, w]`` network depth fitted to the SfM points each view observes (scale, shift, smooth
    correction); views without enough points take the fitted views' median scale (or ``depth_scale``)."""
    S = recon.num_views
    depth = recon.depth.astype(np.float64)
    observed = [None] * S  # per view: (depth-grid pixels, SfM depths)
    fits = [None] * S
    if sfm is not None:
        for i, (idx, uv) in enumerate(sfm.observations):
            if len(idx):
                observed[i] = (transforms[i].points_to_network(uv), _transform_points(recon.cam_from_world[i], points[idx])[:, 2])
                fits[i] = fit_depth(depth[i], *observed[i])
    fitted = [f for f in fits if f is not None]
    default_scale = float(np.median([f.scale for f in fitted])) if fitted else depth_scale
    for i, f in enumerate(fits):
        depth[i] = depth[i] * (f.scale if f else default_scale) + (f.shift if f else 0.0)
        if f is not None and options.depth_correction_field:
            field = fit_correction_field(depth[i], *observed[i])
            if field is not None:
                depth[i] *= field
    if fitted:
        say(f"dense: depth fitted to SfM points in {len(fitted)}/{S} views (median residual of the scale/shift fit "
            f"{100 * float(np.median([f.residual for f in fitted])):.1f} %, then a smooth correction)")
    depth[~(depth > 0)] = np.nan
    return depth


def _upsample(recon: Reconstruction, depth: np.ndarray, arrays, transforms, factor: int,
              say: Callable[[str], None]) -> np.ndarray:
    """Dense maps on a ``factor``× finer grid of the same crop: colours resampled from the original images,
    depth upsampled guided by them, confidence bilinear; ``recon``'s view transforms follow."""
    import cv2

    S, h, w = depth.shape
    fine = [tf.scaled(factor) for tf in transforms]
    colors = np.stack([warp_view(a, tf) for a, tf in zip(arrays, fine)])
    depth = np.stack([upsample_depth(d, c, factor) for d, c in zip(depth, colors)])
    conf = np.stack([cv2.resize(c.astype(np.float32), (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
                     for c in recon.depth_conf])
    recon.colors, recon.depth_conf = colors, conf
    recon.transforms = fine
    say(f"dense: depth upsampled ×{factor} to {w * factor} × {h * factor} px, guided by the images")
    return depth


def _cross_check(recon: Reconstruction, depth: np.ndarray, options: PipelineOptions, say: Callable[[str], None]) -> None:
    """Fuse each view's depth with its most-overlapping views', keep the pixels another view confirms, and
    record the multi-view disagreement (all pixels, and the exported cloud's)."""
    K, cams = recon.network_intrinsics, recon.cam_from_world
    neighbours = overlap_neighbours(depth, K, cams, options.consistency_neighbours)
    for _ in range(options.fusion_rounds):
        depth = fuse_depths(depth, K, cams, neighbours)
    recon.depth = depth.astype(np.float32)
    agreement = depth_agreement(depth, K, cams, neighbours, options.consistency_tolerance)
    checked = np.array([len(n) > 0 for n in neighbours])  # a view that overlaps no other keeps every pixel
    recon.valid = ((agreement.agreeing >= 1) | ~checked[:, None, None]) & np.isfinite(depth)
    cloud = depth_agreement(depth, K, cams, neighbours, options.consistency_tolerance, mask=recon.valid, step=2)
    recon.world_points = recon.depth_points()
    recon.world_points_conf = recon.depth_conf.copy()
    kept = float(recon.valid.mean())
    recon.meta["consistency"] = {"median_depth_disagreement": agreement.median_disagreement,
                                 "cloud_median_depth_disagreement": cloud.median_disagreement,
                                 "view_pairs": agreement.pairs, "pixels_kept": round(kept, 4),
                                 "tolerance": options.consistency_tolerance}
    say(f"dense: views agree to {100 * agreement.median_disagreement:.1f} % (median relative depth difference; "
        f"{100 * cloud.median_disagreement:.1f} % in the cloud, which keeps the {100 * kept:.0f} % of pixels that "
        "another view confirms)")
