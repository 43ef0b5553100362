"""The default path's dense stage with ``--dense stereo``: multi-view stereo on the SfM cameras, completed by the
network (:func:`add_stereo`).

1. **Grid.** The dense maps are the network's grid refined by a whole factor, so that their long side is at
   least ``DenseOptions.long_side`` pixels (640 by default), but no finer than the original images; the views
   are resampled from the originals by the same crop (:meth:`mum.io.ViewTransform.scaled`).
2. **Prior.** The network's depth fitted to the SfM points, fused and cross-checked on the network's grid
   (:mod:`app.engine.dense_fit`; the caller did this), upsampled guided by the image.
3. **Neighbours.** For each view, the ``DenseOptions.neighbours`` views that share the most SfM points at a
   useful triangulation angle (:mod:`app.engine.view_selection`); views without such points take those their prior
   overlaps most.
4. **Matching.** Per view, NCC over the neighbours, coarse to fine, from a plane sweep over the depths of the
   SfM points the view sees (with ``prior_range``, also hypotheses around the prior: measured, they add nothing
   to the sweep's accuracy, and alone they miss where the prior is far off; ``benchmarks/dense.py``)
   (:mod:`app.engine.stereo`).
5. **Consistency and fusion.** A pixel's depth is kept when at least ``min_confirmed`` neighbours confirm it
   by a geometric round trip and its NCC is at least ``min_score``; its depth becomes the mean of the confirming
   views' (:mod:`app.engine.depth_fusion`).
   A view that no other view overlaps keeps the prior where its cross-check kept it.
6. **Fill-in.** Where stereo keeps nothing (textureless walls, sky, occlusions, parts no neighbour sees): a hole
   whose surrounding kept pixels lie mostly on one of the scene's dominant planes (RANSAC on the kept points)
   takes that plane's depth unless the neighbours' stereo sees through it there (``plane_fill``;
   :mod:`app.engine.plane_fill`); elsewhere the
   prior refitted to the view's own kept stereo depth (affine in inverse depth, then a smooth correction:
   :func:`refit_prior`) and scaled locally to the kept stereo depth around it (:func:`fill_from_prior`;
   measured on held-out synthetic scenes, the refit lowers the filled pixels' AbsRel): the exported depth maps
   are complete, the filled pixels with confidence 0 (``fill="maps"``, the default). With ``fill="cloud"`` a
   filled pixel also joins the cloud when it lies within ``fill_radius`` (a share of the long side) of a kept
   stereo pixel — a hole between matched pixels, not a whole region without any (a sky, a backdrop: there the
   scaled prior is a guess that the views would confirm alike) — and another view's completed depth confirms it
   (round trip within ``fill_tolerance``); measured on held-out synthetic scenes, such points cost the cloud
   more accuracy than they add completeness.
7. **Confidence** per pixel in [0, 1]: the NCC (clipped at 0) times the fraction of neighbours that confirm
   the depth; for filled pixels in the cloud ``FILL_CONFIDENCE`` times that fraction (below matched pixels); 0
   outside the cloud (pixels a plane filled too). It is what ``--conf-percentile`` ranks and ``depth/NAME.conf.npy`` holds.

Depth is camera z; dense maps ``[S, H, W]``; cameras camera-from-world (OpenCV).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from app.engine.dense_fit import fit_correction_field, fit_depth, overlap_neighbours, upsample_depth
from app.engine.depth_fusion import geometric_consistency
from app.engine.plane_fill import OtherView, PlaneFillOptions, dominant_planes, fill_planes, kept_points
from app.engine.reconstruction import Reconstruction
from app.engine.stereo import Match, StereoOptions, View, match_view
from app.engine.view_threads import ordered_map
from app.engine.view_selection import covisibility_scores, select_neighbours
from mum.errors import UserError
from mum.io import ViewTransform, warp_view

if TYPE_CHECKING:
    from app.engine.dense_options import DenseOptions
    from app.engine.sfm import SfmResult

# bytes per dense pixel and view held during the stage (colours, depth, confidence, prior, score, texture,
# validity, world points, the fused maps) — what the memory check multiplies; the stage's peak above its start on
# demo/tum_freiburg (17 views at 640 × 480, 2 threads, VmHWM) was 71 bytes a pixel of every view beyond the threads'
BYTES_PER_DENSE_PIXEL = 80
# bytes per dense pixel of one view being worked on (its pyramid, cost volumes, warps; tracemalloc: 153 at 640 and
# 1280 px for 4 neighbours) and of one finished view waiting for its turn (its depth, score and texture: 12)
BYTES_PER_WORKING_PIXEL = 160 + 12
MEMORY_FRACTION = 0.5
FILL_CONFIDENCE = 0.05  # a filled pixel's confidence per confirming neighbour share: below any matched pixel's
REFIT_SAMPLES = 20_000  # kept stereo pixels per view that the prior is refitted to before it fills (seeded sample)
REFIT_MIN_PIXELS = 50  # fewer kept pixels in a view: its prior fills as it is, scaled locally
REFIT_POINTS_PER_NODE = 50  # kept pixels per node of the refit's smooth correction (at most 16 nodes a side)


def dense_factor(grid: tuple[int, int], original_sizes: Sequence[tuple[int, int]], long_side: int) -> int:
    """The whole factor from the network's grid ``(W, H)`` to a dense grid whose long side is at least
    ``long_side`` px, capped so that it is no finer than the largest original image (``(width, height)`` each);
    1 for 0."""
    if long_side <= 0:
        return 1
    largest = max(max(size) for size in original_sizes)
    return max(1, min(math.ceil(long_side / max(grid)), math.ceil(largest / max(grid))))


def check_memory_before_the_network(grid: tuple[int, int], original_sizes: Sequence[tuple[int, int]],
                                    options: DenseOptions) -> None:
    """The dense stage's memory check (:func:`check_memory`) for ``original_sizes`` views on the network's grid
    ``(W, H)``, made when the run is planned: a refusal comes before the network and SfM, not after them."""
    factor = dense_factor(grid, original_sizes, options.long_side)
    check_memory(len(original_sizes), grid[0] * factor, grid[1] * factor, options.stereo_workers)


def check_memory(views: int, width: int, height: int, workers: int = 1, available: int | None = None) -> int:
    """How many views the dense stage may work on at once (at most ``workers``) within half the available memory:
    the stage's maps of every view plus, per view worked on, its working memory; refuses (a :class:`UserError`)
    when even one does not fit."""
    from app.engine.runtime import available_memory

    available = available_memory("cpu") if available is None else available
    maps, working = views * width * height * BYTES_PER_DENSE_PIXEL, width * height * BYTES_PER_WORKING_PIXEL
    if maps + working > MEMORY_FRACTION * available:
        raise UserError(f"dense maps of {views} views at {width} x {height} px need about "
                        f"{(maps + working) / 2**30:.1f} GiB (available: {available / 2**30:.1f} GiB): use a smaller "
                        "--dense-size or --dense fitted")
    return int(max(1, min(workers, (MEMORY_FRACTION * available - maps) // working)))


def _grey(colors: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(colors, cv2.COLOR_RGB2GRAY).astype(np.float32) / np.float32(255)


def _depth_ranges(depth_prior: np.ndarray, cams: np.ndarray, points: np.ndarray,
                  observed: Sequence[np.ndarray] | None) -> list[tuple[float, float]]:
    """Per view ``(near, far)`` for a plane sweep: the 2nd–98th percentiles of the depths of the SfM points it
    sees, widened by 1.5× both ways (its prior's 2nd–98th percentiles when it sees fewer than 12)."""
    out = []
    for i, cam in enumerate(cams):
        z = np.zeros(0)
        if observed is not None and len(observed[i]) and len(points):
            z = (points[observed[i]] @ cam[:3, :3].T + cam[:3, 3])[:, 2]
            z = z[z > 0]
        if len(z) < 12:
            z = depth_prior[i][np.isfinite(depth_prior[i]) & (depth_prior[i] > 0)]
        if len(z) == 0:
            out.append((0.1, 100.0))
            continue
        near, far = np.percentile(z, [2, 98])
        out.append((float(near) / 1.5, float(far) * 1.5))
    return out


def refit_prior(prior: np.ndarray, stereo: np.ndarray, kept: np.ndarray, samples: int = REFIT_SAMPLES) -> np.ndarray:
    """``prior`` ``[H, W]`` refitted to the view's own ``kept`` ``stereo`` depth: a robust affine map of its
    inverse depth (:func:`~app.engine.dense_fit.fit_depth` on ``1 / prior``; the network's depth is closest to
    right up to scale and shift in inverse depth), then a smooth multiplicative correction
    (:func:`~app.engine.dense_fit.fit_correction_field`), both fitted on up to ``samples`` kept pixels (seeded).
    Unchanged where there are too few of them or a fit fails."""
    ok = kept & np.isfinite(prior) & (prior > 0) & np.isfinite(stereo) & (stereo > 0)
    flat = np.flatnonzero(ok)
    if len(flat) < REFIT_MIN_PIXELS:
        return prior.astype(np.float32)
    if len(flat) > samples:
        flat = np.sort(np.random.default_rng(0).choice(flat, samples, replace=False))
    W = prior.shape[1]
    uv = np.stack([flat % W, flat // W], 1).astype(np.float64)
    z = stereo.reshape(-1)[flat].astype(np.float64)
    inverse = np.where(np.isfinite(prior) & (prior > 0), 1 / prior.astype(np.float64), np.nan)
    fit = fit_depth(inverse, uv, 1 / z)
    refit = prior.astype(np.float64)
    if fit is not None:
        refit_inverse = fit.scale * inverse + fit.shift
        if np.nanmin(refit_inverse) > 0:
            refit = 1 / refit_inverse
    correction = fit_correction_field(refit, uv, z, points_per_node=REFIT_POINTS_PER_NODE)
    if correction is not None:
        refit = refit * correction
    return refit.astype(np.float32)


def fill_from_prior(prior: np.ndarray, stereo: np.ndarray, kept: np.ndarray, smoothing: float = 0.25) -> np.ndarray:
    """``prior`` ``[H, W]`` refitted to the kept ``stereo`` depth of the view (:func:`refit_prior`), then scaled
    locally to it: the log ratio stereo / refitted prior on the ``kept`` pixels, spread over the whole image by
    push-pull interpolation (area-averaged pyramid of the ratio and its weight, then coarse to fine, each level's
    own data blended with the upsampled coarser estimate by ``smoothing``), times the refitted prior. Where the
    network's depth has the right shape but the wrong scale and shift (its usual error), the filled depth follows
    stereo, near the kept pixels and far from them; NaN where the prior is unknown."""
    prior = refit_prior(prior, stereo, kept)
    ok = kept & np.isfinite(prior) & (prior > 0) & np.isfinite(stereo) & (stereo > 0)
    if not ok.any():
        return prior.astype(np.float32)
    weight = ok.astype(np.float32)
    ratio = np.zeros(prior.shape, np.float32)
    ratio[ok] = np.log(stereo[ok] / prior[ok])
    levels = [(ratio * weight, weight)]
    while min(levels[-1][1].shape) > 4:
        rw, w = levels[-1]
        size = ((w.shape[1] + 1) // 2, (w.shape[0] + 1) // 2)
        levels.append((cv2.resize(rw, size, interpolation=cv2.INTER_AREA), cv2.resize(w, size, interpolation=cv2.INTER_AREA)))
    rw, w = levels[-1]
    value = np.where(w > 0, rw / np.maximum(w, 1e-12), float(ratio[ok].mean())).astype(np.float32)
    for rw, w in reversed(levels[:-1]):
        up = cv2.resize(value, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        value = (rw + smoothing * up) / (w + smoothing)
    return (prior * np.exp(value)).astype(np.float32)


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """``[H, W]`` float32: each pixel's distance in pixels to the nearest pixel of ``mask`` (inf without any)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)


def choose_neighbours(recon: Reconstruction, sfm: SfmResult | None, points: np.ndarray, count: int,
                      matched: np.ndarray | None = None) -> list[list[int]]:
    """Each view's source views: by SfM covisibility, else by the overlap of its (fitted) depth. ``matched``
    ``[S]`` bool: the views to match (default every view); the others get none and are no view's source."""
    K_grid = recon.network_intrinsics
    left_out = 0 if matched is None else int((~matched).sum())
    overlap = overlap_neighbours(recon.depth.astype(np.float64), K_grid, recon.cam_from_world, count + left_out)
    if matched is not None:
        overlap = [[j for j in n if matched[j]][:count] if matched[i] else [] for i, n in enumerate(overlap)]
    if sfm is None or len(points) == 0:
        return overlap
    observed = [idx for idx, _ in sfm.observations]
    scores = covisibility_scores(recon.cam_from_world, points, observed)
    if matched is not None:
        scores = scores * np.outer(matched, matched)
    return select_neighbours(scores, count, fallback=overlap)


def match_views(views: Sequence[View], neighbours: Sequence[Sequence[int]], prior: np.ndarray | None,
                ranges: Sequence[tuple[float, float]], options: StereoOptions, workers: int
                ) -> Iterator[tuple[int, Match]]:
    """:func:`~app.engine.stereo.match_view` for every view with neighbours, ``workers`` views at once
    (:func:`~app.engine.view_threads.ordered_map`); yields ``(view index, match)`` in view order. ``prior``
    ``[S, H, W]`` or ``None``."""
    todo = [i for i in range(len(views)) if neighbours[i]]

    def match(i: int) -> tuple[int, Match]:
        return i, match_view(views[i], [views[j] for j in neighbours[i]], None if prior is None else prior[i],
                             ranges[i], options)

    return ordered_map(match, todo, workers)


def add_stereo(recon: Reconstruction, arrays: Sequence[np.ndarray], transforms: Sequence[ViewTransform],
               sfm: SfmResult | None, points: np.ndarray, options: DenseOptions,
               say: Callable[[str], None]) -> None:
    """Replace ``recon``'s dense maps (the fitted, cross-checked depth on the network's grid) by multi-view
    stereo at the dense size (see the module docstring); ``points``: the SfM points in ``recon``'s world."""
    t0 = time.perf_counter()
    S = recon.num_views
    factor = dense_factor(transforms[0].grid_size, recon.image_sizes, options.long_side)
    fine = [tf.scaled(factor) for tf in transforms]
    W, H = fine[0].grid_size
    workers = check_memory(S, W, H, options.stereo_workers)
    matched = None if options.match_network_cameras else np.array([o != "network" for o in recon.pose_origins()])
    neighbours = choose_neighbours(recon, sfm, points, options.neighbours, matched)
    to_match = sum(bool(n) for n in neighbours)
    ranges = _depth_ranges(recon.depth, recon.cam_from_world, points,
                           None if sfm is None else [idx for idx, _ in sfm.observations])
    colors = np.stack([warp_view(a, tf) for a, tf in zip(arrays, fine)])
    prior = np.stack([upsample_depth(d, c, factor) for d, c in zip(recon.depth.astype(np.float32), colors)])
    checked_prior = recon.valid if recon.valid is not None else np.isfinite(recon.depth)  # the fitted cross-check
    checked_prior = np.repeat(np.repeat(checked_prior, factor, 1), factor, 2) & np.isfinite(prior)
    K = np.stack([tf.intrinsics_to_network(k) for tf, k in zip(fine, recon.intrinsics)])
    views = [View(_grey(c), K[i], recon.cam_from_world[i]) for i, c in enumerate(colors)]
    views_line = S if to_match == S else f"{to_match} of {S}"
    say(f"dense: stereo on {views_line} views at {W} × {H} px, {options.neighbours} neighbours each"
        + (", hypotheses around the fitted depth" if options.prior_range else ""))
    depth = np.full((S, H, W), np.nan, np.float32)
    score = np.zeros((S, H, W), np.float32)
    t_match = time.perf_counter()
    for i, match in match_views(views, neighbours, prior if options.prior_range else None, ranges, options.stereo,
                                workers):
        depth[i], score[i] = match.depth, match.score
        say(f"dense: stereo view {i + 1}/{S}")
    match_s = time.perf_counter() - t_match
    consistency = geometric_consistency(depth, K, recon.cam_from_world, neighbours, options.pixel_tolerance,
                                        options.depth_tolerance, options.min_angle, workers=workers)
    checked = np.maximum(consistency.checked, 1)[:, None, None]
    kept = (consistency.confirmed >= options.min_confirmed) & (score >= options.min_score) & np.isfinite(depth)
    confidence = np.where(kept, np.clip(score, 0, 1) * consistency.confirmed / checked, 0).astype(np.float32)
    stereo_kept = float(kept.mean())
    with threadpool_limits(1, user_api="blas"):  # the refits' small solves: see dense_fit.fit_correction_field
        filled = np.stack(list(ordered_map(lambda i: fill_from_prior(prior[i], consistency.depth[i], kept[i]),
                                           range(S), workers)))
    planes, plane_filled = [], np.zeros_like(kept)
    if options.plane_fill and options.fill != "none":
        plane_options = PlaneFillOptions()
        planes = dominant_planes(kept_points(consistency.depth, kept, K, recon.cam_from_world, plane_options.samples),
                                 plane_options)
        seen = [OtherView(np.where(kept[j], consistency.depth[j], np.nan), K[j], recon.cam_from_world[j]) for j in range(S)]
        fill = lambda i: fill_planes(filled[i], prior[i], consistency.depth[i], kept[i], planes, K[i],  # noqa: E731
                                     recon.cam_from_world[i], plane_options, [seen[j] for j in neighbours[i]])
        for i, (filled_i, plane_filled_i) in enumerate(ordered_map(fill, range(S), workers)):
            filled[i], plane_filled[i] = filled_i, plane_filled_i
    out = np.where(kept, consistency.depth, filled if options.fill != "none" else np.nan).astype(np.float32)
    valid = kept.copy()
    if options.fill == "cloud":  # filled pixels near stereo join the cloud where another view's completed depth confirms them
        reach = options.fill_radius * max(W, H)
        candidates = ~kept & np.isfinite(out) & np.stack([_distance_to(k) <= reach for k in kept])
        loose = geometric_consistency(out, K, recon.cam_from_world, neighbours, 2 * options.pixel_tolerance,
                                      options.fill_tolerance, options.min_angle, mask=candidates, workers=workers)
        fill = candidates & (loose.confirmed >= 1)
        valid |= fill
        confidence = np.where(fill, FILL_CONFIDENCE * loose.confirmed / checked, confidence).astype(np.float32)
    lonely = np.array([not n for n in neighbours])  # no view to match with: the fitted depth, as that path keeps it
    if lonely.any():
        out[lonely] = prior[lonely]
        valid[lonely] = checked_prior[lonely]
        confidence[lonely] = np.where(checked_prior[lonely], FILL_CONFIDENCE, 0)
    recon.depth, recon.depth_conf, recon.valid = out, confidence, valid
    recon.colors, recon.transforms = colors, fine
    recon.world_points = recon.depth_points()
    recon.world_points_conf = confidence.copy()
    # the multi-view disagreement of the exported depth maps (every pixel, and the cloud's), on every other
    # pixel of every other row: a sample is enough for a median, at a quarter of the cost
    sampled = np.zeros(out.shape, bool)
    sampled[:, ::2, ::2] = True
    exported = geometric_consistency(out, K, recon.cam_from_world, neighbours, options.pixel_tolerance,
                                     options.depth_tolerance, options.min_angle, mask=sampled, workers=workers)
    seconds = time.perf_counter() - t0
    recon.meta["consistency"] = {"median_depth_disagreement": exported.median_disagreement(),
                                 "cloud_median_depth_disagreement": exported.median_disagreement(valid),
                                 "view_pairs": int(sum(len(n) for n in neighbours)),
                                 "pixels_kept": round(float(valid.mean()), 4), "tolerance": options.depth_tolerance}
    recon.meta["stereo"] = {"size": [W, H], "neighbours": options.neighbours, "prior_range": options.prior_range,
                            "fill": options.fill, "pixels_matched": round(stereo_kept, 4),
                            "pixels_filled": round(float((valid & ~kept).mean()), 4), "planes": len(planes),
                            "pixels_plane_filled": round(float(plane_filled.mean()), 4),
                            "seconds": round(seconds, 3), "matching_seconds": round(match_s, 3),
                            "seconds_per_view": round(match_s / max(to_match, 1), 3), "views_matched": to_match}
    say(f"dense: stereo kept {100 * stereo_kept:.0f} % of pixels (confirmed by another view)"
        + (f", {100 * float((valid & ~kept).mean()):.0f} % filled from the fitted depth" if options.fill == "cloud" else "")
        + (f"; {100 * float(plane_filled.mean()):.0f} % of the maps filled by {len(planes)} plane"
           + ("s" if len(planes) != 1 else "") if planes else "")
        + f"; {match_s / max(to_match, 1):.2f} s a view")


def combine_stereo_meta(parts: Sequence[dict | None], views: int) -> dict | None:
    """The ``meta["stereo"]`` of the parts of a long input (chunks, windows; ``None`` for a part without stereo)
    in one: the grid, how many parts ran stereo, the views matched, the seconds; ``views``: the result's views
    whose maps come from stereo. ``None`` when no part ran it."""
    runs = [m for m in parts if m]
    if not runs:
        return None
    matched = sum(m["views_matched"] for m in runs)
    match_s = sum(m["matching_seconds"] for m in runs)
    return {"size": runs[0]["size"], "parts": len(runs), "of_parts": len(parts), "views": int(views),
            "views_matched": int(matched), "seconds": round(sum(m["seconds"] for m in runs), 3),
            "matching_seconds": round(match_s, 3), "seconds_per_view": round(match_s / max(matched, 1), 3),
            **{k: runs[0][k] for k in ("neighbours", "prior_range", "fill")}}
