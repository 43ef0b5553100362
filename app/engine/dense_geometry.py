"""The dense geometry stage (``options.dense``, :mod:`app.engine.dense_options`), in place on a
:class:`~app.engine.reconstruction.Reconstruction` whose cameras the cameras stage (:mod:`app.engine.cameras`)
has set: each view's network depth fitted to the SfM points it sees (:mod:`app.engine.dense_fit`); then by
default the prior of multi-view stereo on those cameras (:mod:`app.engine.multiview_stereo`), or (``fitted``)
upsampled and kept where another view's depth agrees; ``none`` keeps it on the network's grid, out of the
cloud. Afterwards ``recon.meta["consistency"]`` describes the exported depth. ``--fast`` only measures how
well the network's own depths agree (:func:`network_consistency`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from threadpoolctl import threadpool_limits

from app.engine.dense_fit import (
    depth_agreement,
    fit_correction_field,
    fit_depth,
    fuse_depths,
    overlap_neighbours,
    upsample_depth,
)
from app.engine.dense_options import DenseOptions
from app.engine.reconstruction import FAST_CONF_PERCENTILE, Reconstruction
from app.engine.sfm import SfmResult
from mum.io import warp_view


def _transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[N, 3]`` points through one ``[4, 4]`` transform (the project's :func:`mum.geometry.transform_points`)."""
    import torch

    from mum.geometry import transform_points

    return transform_points(torch.from_numpy(T), torch.from_numpy(points)).numpy()


def add_dense_geometry(recon: Reconstruction, arrays, transforms, sfm: SfmResult | None, points: np.ndarray,
                       depth_scale: float, dense: DenseOptions, say: Callable[[str], None]) -> None:
    """The dense stage (in place): fit the network's depth to the SfM points; then ``none``: keep it on the
    network's grid, out of the cloud; ``fitted``: upsample and cross-check it; ``stereo``: cross-check it on the
    network's grid and make it the prior of multi-view stereo (:mod:`app.engine.multiview_stereo`)."""
    depth = _fitted_depth(recon, transforms, sfm, points, depth_scale, dense, say)
    if dense.mode == "none":
        recon.depth = depth.astype(np.float32)
        recon.valid = np.zeros(depth.shape, bool)
        recon.world_points = recon.depth_points()
        say("dense: none (--dense none): the cloud holds the SfM points only")
        return
    placed = sum(source != "network" for source in recon.pose_origins())
    if dense.mode == "stereo" and placed >= 2:
        from app.engine.multiview_stereo import add_stereo

        _cross_check(recon, depth, dense, lambda _line: None)  # the prior's figures are not the result's
        add_stereo(recon, arrays, transforms, sfm, points, dense, say)
        return
    if dense.mode == "stereo":
        say("dense: no stereo without cameras from SfM or a cameras file: the fitted depth")
        dense = replace(dense, mode="fitted")  # and its size, unless one was given
    from app.engine.multiview_stereo import dense_factor

    factor = dense_factor(transforms[0].grid_size, recon.image_sizes, dense.long_side)
    if factor > 1:
        depth = _upsample(recon, depth, arrays, transforms, factor, say)
    _cross_check(recon, depth, dense, say)


def _fitted_depth(recon: Reconstruction, transforms, sfm: SfmResult | None, points: np.ndarray, depth_scale: float,
                  dense: DenseOptions, say: Callable[[str], None]) -> np.ndarray:
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
    with threadpool_limits(1, user_api="blas"):  # the correction fields' small solves (see fit_correction_field)
        for i, f in enumerate(fits):
            depth[i] = depth[i] * (f.scale if f else default_scale) + (f.shift if f else 0.0)
            if f is not None and dense.depth_correction_field:
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


def _cross_check(recon: Reconstruction, depth: np.ndarray, dense: DenseOptions, say: Callable[[str], None]) -> None:
    """Fuse each view's depth with its most-overlapping views', keep the pixels another view confirms, and
    record the multi-view disagreement (all pixels, and the exported cloud's)."""
    K, cams = recon.network_intrinsics, recon.cam_from_world
    neighbours = overlap_neighbours(depth, K, cams, dense.consistency_neighbours)
    for _ in range(dense.fusion_rounds):
        depth = fuse_depths(depth, K, cams, neighbours)
    recon.depth = depth.astype(np.float32)
    agreement = depth_agreement(depth, K, cams, neighbours, dense.consistency_tolerance)
    checked = np.array([len(n) > 0 for n in neighbours])  # a view that overlaps no other keeps every pixel
    recon.valid = ((agreement.agreeing >= 1) | ~checked[:, None, None]) & np.isfinite(depth)
    cloud = depth_agreement(depth, K, cams, neighbours, dense.consistency_tolerance, mask=recon.valid, step=2)
    recon.world_points = recon.depth_points()
    recon.world_points_conf = recon.depth_conf.copy()
    kept = float(recon.valid.mean())
    recon.meta["consistency"] = {"median_depth_disagreement": agreement.median_disagreement,
                                 "cloud_median_depth_disagreement": cloud.median_disagreement,
                                 "view_pairs": agreement.pairs, "pixels_kept": round(kept, 4),
                                 "tolerance": dense.consistency_tolerance}
    say(f"dense: views agree to {100 * agreement.median_disagreement:.1f} % (median relative depth difference; "
        f"{100 * cloud.median_disagreement:.1f} % in the cloud, which keeps the {100 * kept:.0f} % of pixels that "
        "another view confirms)")


def network_consistency(recon: Reconstruction, dense: DenseOptions) -> dict:
    """The multi-view disagreement of the network's own depth and cameras: over all pixels, and over the
    pixels that ``--fast``'s cloud keeps (confidence at or above its ``FAST_CONF_PERCENTILE`` percentile)."""
    depth = recon.depth.astype(np.float64)
    K, cams = recon.network_intrinsics, recon.cam_from_world
    neighbours = overlap_neighbours(depth, K, cams, dense.consistency_neighbours)
    every = depth_agreement(depth, K, cams, neighbours, dense.consistency_tolerance, step=2)
    kept = recon.depth_conf >= np.percentile(recon.depth_conf, FAST_CONF_PERCENTILE)
    cloud = depth_agreement(depth, K, cams, neighbours, dense.consistency_tolerance, mask=kept, step=2)
    return {"median_depth_disagreement": every.median_disagreement,
            "cloud_median_depth_disagreement": cloud.median_disagreement, "view_pairs": every.pairs,
            "pixels_kept": round(float(kept.mean()), 4)}
