"""Dense accuracy against exact depth: ``--fast``, the fitted depth (``--dense fitted``) and multi-view stereo
(``--dense stereo``, the default) with and without the network's prior, on the data engine's held-out scenes;
and the whole command's time on a demo scene.

Run: ``python benchmarks/dense.py`` (``--scenes 6 --views 12``: held-out 640 × 480 scenes of the test split;
``--methods``; ``--timing-scene demo/tum_freiburg --repeats 3``; ``--baseline DIR``: also time the command of
another checkout, e.g. the commit before stereo; ``--no-timing``; ``--scenes 0``: the timing alone; ``--paths
one,chunked,sequence --window 6 --overlap 3``: the same scenes also through the long-input paths, see below).
Writes ``benchmarks/results/dense_cpu.json`` (``--out``); ``--table`` prints the README's tables from it.

**Paths** (``--paths``): ``one``, the one-pass default path (every method); ``chunked``, the chunked path forced
by ``--window`` views per chunk sharing ``--overlap`` (``--sequence off``); ``sequence``, the sequence path
forced (``--sequence on``) in windows of ``--window`` frames. The long paths run ``fitted`` and ``stereo`` only
(rows ``chunked_fitted``, ``chunked_stereo``, ``sequence_fitted``, ``sequence_stereo``); their ``seconds`` are the
whole reconstruction, SfM included (each chunk's and the keyframes' SfM run anew: :class:`SfmOnce` reuses one
result per image list).

**Methods** (the same SfM cameras for every method of a scene: SfM runs once per scene, seeded):

* ``fast``: the network alone; its cloud keeps the pixels above the 50th confidence percentile;
* ``fitted``: the network's depth fitted to the SfM points, upsampled to 256 px, fused, kept where another view
  agrees (the default path before stereo);
* ``stereo``: the default: stereo at 640 px, a plane sweep over the SfM points' depths; the cloud holds what
  other views confirm, the exported depth maps are completed (``fill="maps"``): holes that the kept pixels around
  them place on one of the scene's dominant planes by that plane, the others by the fitted depth scaled to the
  stereo around it; ``stereo_no_plane_fill``: the same without the planes (the fitted depth fills every hole);
* ``stereo_fill_cloud``: the filled pixels also in the cloud, near matched pixels and confirmed by another
  view; ``stereo_prior_range``: also hypotheses around the fitted depth (±30 %) beside the plane sweep;
  ``stereo_prior_only``: hypotheses around the fitted depth only (the range narrowed, no plane sweep);
  ``stereo_no_prior``: neither the prior's hypotheses nor its fill-in (stereo alone: its depth maps have holes,
  so its ``maps`` figures are over the pixels it keeps).

**Figures** per scene and method (depth maps resampled to the original pixels, nearest):

* depth AbsRel and δ<1.25 (%) after **one scale for the whole scene** (the median ratio of exact to predicted
  depth over the pixels the cloud keeps), over the pixels the exported cloud keeps (``cloud``) and over every
  pixel of the exported depth maps (``maps``); ``coverage``: the share of pixels with exact depth that the cloud
  keeps; the same with **one scale per group of views that see a common surface** (``*_per_group``,
  :func:`view_groups` from the exact depth; ``view_groups``: how many): views of two groups share nothing that
  could tie their scales, so one scale over both measures a guess (scene_1100000004, a walk that turns on the
  spot between two views); for a scene of one group they are the same figures;
* cloud accuracy and completeness: the exported cloud (its dense points at the original pixels, SfM points left
  out) brought into the exact world by the similarity that fits its points to the exact points of the same
  pixels (Umeyama, refitted without the pairs far off), against the exact cloud (every view's exact depth
  unprojected): the share of predicted points within ``τ`` of an exact point (accuracy), of exact
  points within ``τ`` of a predicted one (completeness), their F-score, and the median distances; ``τ`` relative
  to the scene's size (its median exact depth): 1 %, 2 % and 5 %;
* seconds of the reconstruction without SfM (network, dense stage) and, for stereo, the matching time per view.

**Timing** of the whole command (``mum-reconstruct SCENE -o scene.ply``, from start to the written file, in a
fresh process, median of ``--repeats``) for ``--dense fitted`` and the default, with the load average; the 2-core
machine is shared, so seconds under load are inflated.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mum  # noqa: E402,F401  (CPU threading policy first)
import numpy as np  # noqa: E402

from benchmarks.provenance import load_average, start_run, write_results  # noqa: E402
from benchmarks.real_scenes import load_scene, make_synthetic, pose_aucs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dense_cpu.json"
THRESHOLDS = (0.01, 0.02, 0.05)
METHODS = ("fast", "fitted", "stereo", "stereo_no_plane_fill", "stereo_fill_cloud", "stereo_prior_range",
           "stereo_prior_only", "stereo_no_prior")
GOOD_CAMERAS_AUC5 = 90.0  # the second summary: scenes whose SfM cameras are right (default path's AUC@5 at least this)


def pipeline_options(method: str):
    from app.engine.dense_options import DenseOptions
    from app.engine.options import CameraOptions, PipelineOptions
    from app.engine.stereo import StereoOptions

    dense = {"fitted": DenseOptions(mode="fitted"), "stereo": DenseOptions(),
             "stereo_no_plane_fill": DenseOptions(plane_fill=False),
             "stereo_fill_cloud": DenseOptions(fill="cloud"),
             "stereo_prior_range": DenseOptions(prior_range=True),
             "stereo_prior_only": DenseOptions(prior_range=True, stereo=StereoOptions(sweep_planes=0)),
             "stereo_no_prior": DenseOptions(prior_range=False, fill="none")}
    if method == "fast":
        return PipelineOptions(fast=True, cameras=CameraOptions(native_log=os.devnull))
    return PipelineOptions(dense=dense[method], cameras=CameraOptions(native_log=os.devnull))


class SfmOnce:
    """Runs SfM once per scene: every method of a scene gets a copy of the same result (SfM is seeded, so a second
    run would give the same cameras; this only saves its time). ``seconds``: SfM time spent in the last call."""

    def __init__(self) -> None:
        import app.engine.cameras as cameras

        self.cameras, self.run_sfm = cameras, cameras.run_sfm
        self.key, self.result, self.seconds = None, None, 0.0
        cameras.run_sfm = self

    def __call__(self, arrays, *args, **kwargs):
        if self.key is not arrays:
            t0 = time.perf_counter()
            self.key, self.result = arrays, self.run_sfm(arrays, *args, **kwargs)
            self.seconds += time.perf_counter() - t0
        return copy.deepcopy(self.result)


class MatchOnce:
    """Matches each view once per scene for the stereo variants that match alike (without the prior's
    hypotheses: ``stereo``, ``stereo_no_plane_fill``, ``stereo_fill_cloud``, ``stereo_no_prior`` differ only after
    matching): the same cameras (:class:`SfmOnce`) and images give the same depth, so a later variant reuses it. ``hits``: views
    reused since the last :meth:`reset` (that variant's matching time is then not a measurement)."""

    def __init__(self) -> None:
        import app.engine.multiview_stereo as mvs

        self.mvs, self.match_view = mvs, mvs.match_view
        self.scene, self.cache, self.hits = None, {}, 0
        mvs.match_view = self

    def reset(self, scene) -> None:
        if scene is not self.scene:
            self.scene, self.cache = scene, {}
        self.hits = 0

    def __call__(self, ref, sources, guide, depth_range, options):
        if guide is not None:  # the prior's hypotheses: not shared
            return self.match_view(ref, sources, guide, depth_range, options)
        key = hash((ref.image.tobytes(), ref.K.tobytes(), ref.cam_from_world.tobytes(), tuple(depth_range), options,
                    tuple((s.image.tobytes(), s.K.tobytes(), s.cam_from_world.tobytes()) for s in sources)))
        if key in self.cache:
            self.hits += 1
            return self.cache[key]
        self.cache[key] = result = self.match_view(ref, sources, guide, depth_range, options)
        return result


def _kept_mask(recon, fast: bool) -> np.ndarray:
    """``[S, h, w]``: the dense pixels the exported cloud keeps (validity and the default confidence filter)."""
    from app.engine.reconstruction import default_conf_percentile

    keep = np.isfinite(recon.depth) & (recon.depth > 0)
    if recon.valid is not None:
        keep &= recon.valid
    percentile = default_conf_percentile(fast)
    if percentile > 0 and keep.any():
        keep &= recon.depth_conf >= np.percentile(recon.depth_conf[keep], percentile)
    return keep


def view_groups(scene, min_overlap: float = 0.01, step: int = 4) -> np.ndarray:
    """``[S]`` int: the groups of a scene's views that see a common surface, from its exact depth and cameras:
    two views are linked when at least ``min_overlap`` of one's pixels (every ``step``-th of each row and column)
    land in the other in front of it, within 2 % of its exact depth there; the groups are the connected components
    (numbered by their first view). A scene's views in two groups share nothing that images could tie their
    scales by (the data engine's walk that turns on the spot between two views: scene_1100000004)."""
    from scipy.sparse.csgraph import connected_components

    from app.engine.dense_fit import _project, _unproject

    depth = np.stack(scene.depths).astype(np.float64)
    cams, K = scene.cam_from_world_4x4(), np.stack(scene.intrinsics).astype(np.float64)
    S, H, W = depth.shape
    linked = np.eye(S, dtype=bool)
    for i in range(S):
        points = _unproject(depth[i], K[i], cams[i], step)[0][depth[i, ::step, ::step].reshape(-1) > 0]
        for j in range(S):
            if j == i or not len(points):
                continue
            z, u, v, inside = _project(points, K[j], cams[j], (H, W))
            there = depth[j][v[inside].astype(int), u[inside].astype(int)]
            linked[i, j] = (np.abs(there - z[inside]) < 0.02 * z[inside]).sum() >= min_overlap * len(points)
    return connected_components(linked | linked.T, directed=False)[1]


def depth_figures(pred: np.ndarray, kept: np.ndarray, gt: np.ndarray, gt_valid: np.ndarray) -> dict:
    """AbsRel / δ<1.25 with one scale (from the kept pixels) over the kept pixels and over every predicted pixel."""
    have = np.isfinite(pred) & (pred > 0) & gt_valid
    cloud = have & kept
    out = {"coverage": float(cloud.sum() / max(gt_valid.sum(), 1))}
    if not cloud.any():
        return {**out, "scale": float("nan")}
    scale = float(np.median(gt[cloud] / pred[cloud]))
    out["scale"] = scale
    for name, mask in (("cloud", cloud), ("maps", have)):
        p, g = scale * pred[mask], gt[mask]
        out[f"abs_rel_{name}"] = float(np.mean(np.abs(p - g) / g))
        out[f"delta_{name}"] = 100 * float(np.mean(np.maximum(p / g, g / p) < 1.25))
    out["maps_coverage"] = float(have.sum() / max(gt_valid.sum(), 1))
    return out


def cloud_figures(pred_points: np.ndarray, gt_points: np.ndarray, unit: float, seed: int = 0,
                  max_points: int = 300_000) -> dict:
    """Accuracy / completeness / F at ``THRESHOLDS`` × ``unit`` and the median distances (in ``unit``)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    if len(pred_points) > max_points:
        pred_points = pred_points[rng.choice(len(pred_points), max_points, replace=False)]
    if len(gt_points) > max_points:
        gt_points = gt_points[rng.choice(len(gt_points), max_points, replace=False)]
    if len(pred_points) == 0:
        return {"points": 0}
    to_gt = cKDTree(gt_points).query(pred_points, workers=2)[0] / unit
    to_pred = cKDTree(pred_points).query(gt_points, workers=2)[0] / unit
    out = {"points": int(len(pred_points)), "accuracy_median": float(np.median(to_gt)),
           "completeness_median": float(np.median(to_pred))}
    for t in THRESHOLDS:
        acc, comp = float(np.mean(to_gt < t)), float(np.mean(to_pred < t))
        out[f"accuracy_{t:g}"], out[f"completeness_{t:g}"] = acc, comp
        out[f"f_{t:g}"] = 2 * acc * comp / max(acc + comp, 1e-12)
    return out


def trimmed_similarity(source: np.ndarray, target: np.ndarray, rounds: int = 3) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity ``x ↦ s R x + t`` that fits ``source`` ``[N, 3]`` to ``target`` (Umeyama), refitted
    without the pairs more than 3× the median residual off."""
    import torch

    from heads.metrics import umeyama_alignment

    use = np.ones(len(source), bool)
    for _ in range(rounds):
        s, R, t = (x.numpy() for x in umeyama_alignment(torch.from_numpy(source[use]), torch.from_numpy(target[use])))
        residual = np.linalg.norm(s * source @ R.T + t - target, axis=1)
        keep = residual <= 3 * np.median(residual) + 1e-12
        if keep.sum() < 3:
            break
        use = keep
    return float(s), R, t


def evaluate(recon, scene, fast: bool) -> dict:
    """Depth and cloud figures of ``recon`` against ``scene``'s exact depth and cameras."""
    import cv2
    import torch

    from app.exports.project_formats import depth_to_original
    from mum.geometry import depth_to_world_points

    S = recon.num_views
    kept = _kept_mask(recon, fast)
    pred = np.stack([depth_to_original(recon, i, recon.depth[i], cv2.INTER_NEAREST) for i in range(S)])
    kept_o = np.stack([depth_to_original(recon, i, kept[i].astype(np.float32), cv2.INTER_NEAREST) for i in range(S)]) > 0.5
    gt = np.stack(scene.depths).astype(np.float64)
    gt_valid = gt > 0
    if scene.masks is not None:
        gt_valid &= np.stack(scene.masks)
    out = depth_figures(pred, kept_o, gt, gt_valid)
    groups = view_groups(scene)
    out["view_groups"] = int(groups.max()) + 1
    if out["view_groups"] > 1:  # views that see nothing in common: the maps and cloud again, one scale per group
        scaled = pred.copy()
        for k in range(out["view_groups"]):
            figures = depth_figures(pred[groups == k], kept_o[groups == k], gt[groups == k], gt_valid[groups == k])
            scaled[groups == k] *= figures["scale"] if np.isfinite(figures["scale"]) else out["scale"]
        per_group = depth_figures(scaled, kept_o, gt, gt_valid)
    else:  # one group: the same figures
        per_group = out
    for key in ("abs_rel_maps", "delta_maps", "abs_rel_cloud", "delta_cloud"):
        out[f"{key}_per_group"] = per_group.get(key)
    unproject = lambda d, cams, K: depth_to_world_points(  # noqa: E731
        torch.from_numpy(d), torch.from_numpy(cams[:, :3]), torch.from_numpy(np.asarray(K, np.float64))).numpy()
    gt_world = unproject(gt, scene.cam_from_world_4x4(), np.stack(scene.intrinsics))
    pred_world = unproject(np.nan_to_num(pred).astype(np.float64), recon.cam_from_world, recon.intrinsics)
    cloud = kept_o & np.isfinite(pred) & (pred > 0)
    both = np.flatnonzero((cloud & gt_valid).reshape(-1))
    if len(both) >= 3:
        both = np.random.default_rng(0).choice(both, min(len(both), 50_000), replace=False)
        s, R, t = trimmed_similarity(pred_world.reshape(-1, 3)[both], gt_world.reshape(-1, 3)[both])
        out.update(cloud_figures(s * pred_world[cloud] @ R.T + t, gt_world[gt_valid], float(np.median(gt[gt_valid]))))
    out["auc30"], out["auc5"] = pose_aucs(recon.cam_from_world, scene.extrinsics)
    return out


LONG_PATH_METHODS = ("fitted", "stereo")  # what the long-input paths run


def long_path_options(method: str, path: str, window: int, overlap: int):
    """``method``'s options on the chunked path (``window`` views a chunk, ``overlap`` shared) or the sequence
    path (windows of ``window`` frames)."""
    from dataclasses import replace

    from app.engine.options import LongInputOptions

    long_input = (LongInputOptions(window=window, overlap=overlap, sequence=False) if path == "chunked"
                  else LongInputOptions(window=window, sequence=True))
    return replace(pipeline_options(method), long_input=long_input)


def run_scene(model, scene, methods, sfm: SfmOnce, matches: MatchOnce, paths=("one",), window: int = 6,
              overlap: int = 3) -> dict:
    from app.engine.pipeline import reconstruct_arrays, reconstruct_views
    from app.engine.view_source import ArrayViews
    from mum.io import load_views

    names, arrays = load_views([str(scene.root / "images" / n) for n in scene.names])
    row = {"views": len(names), "size": list(arrays[0].shape[1::-1])}
    runs = [("one", m, m) for m in methods] if "one" in paths else []
    runs += [(p, m, f"{p}_{m}") for p in paths if p != "one" for m in methods if m in LONG_PATH_METHODS]
    for path, method, key in runs:
        matches.reset(scene)
        sfm.seconds = 0.0
        t0 = time.perf_counter()
        if path == "one":
            recon = reconstruct_arrays(model, names, arrays, options=pipeline_options(method), warn=lambda m: None)
            seconds = time.perf_counter() - t0 - (0.0 if method == "fast" else sfm.seconds)
        else:
            recon = reconstruct_views(model, ArrayViews(names, arrays), long_path_options(method, path, window, overlap),
                                      warn=lambda m: None)
            seconds = time.perf_counter() - t0
        figures = evaluate(recon, scene, method == "fast")
        figures.update(seconds=seconds, load_average=load_average()[0], depth_size=list(recon.depth_size))
        if path != "one":
            figures.update(registered=recon.pose_origins().count("sfm"),
                           parts=(recon.meta.get("chunks", {}).get("count") if path == "chunked"
                                  else recon.meta.get("sequence", {}).get("windows")))
        if "stereo" in recon.meta:
            figures["stereo"] = recon.meta["stereo"]
            if matches.hits:  # matched by an earlier variant: its times are not this variant's
                figures["stereo"].update(matching_reused_views=matches.hits, seconds_per_view=None)
                figures["seconds"] = None
        row[key] = figures
        print(f"  {key:16s} AbsRel cloud {100 * figures.get('abs_rel_cloud', np.nan):5.1f} %  δ<1.25 "
              f"{figures.get('delta_cloud', np.nan):5.1f} %  coverage {100 * figures['coverage']:5.1f} %  | maps "
              f"{100 * figures.get('abs_rel_maps', np.nan):5.1f} % / {figures.get('delta_maps', np.nan):5.1f} % "
              f"(per group {100 * figures.get('abs_rel_maps_per_group', np.nan):4.1f} %)  | "
              f"acc/comp@2% {100 * figures.get('accuracy_0.02', np.nan):5.1f} / "
              f"{100 * figures.get('completeness_0.02', np.nan):5.1f} %  AUC@5 {figures['auc5']:5.1f}  "
              + (f"{seconds:6.1f} s" if figures["seconds"] is not None else "matching reused"),
              flush=True)
    return row


def summarise(results: dict, methods, good_cameras: bool = False) -> dict:
    """Means over the synthetic scenes, per method (``good_cameras``: over the scenes where the default path's
    cameras reach AUC@5 ≥ ``GOOD_CAMERAS_AUC5``)."""
    scenes = list(results["synthetic"].values())
    if good_cameras:
        scenes = [s for s in scenes if s.get("stereo", s.get("fitted", {})).get("auc5", 0) >= GOOD_CAMERAS_AUC5]
    out = {"scenes": len(scenes)}
    for method in methods:
        rows = [s[method] for s in scenes if method in s]
        if not rows:
            continue
        keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float))})
        out[method] = {k: float(np.nanmean([np.nan if r.get(k) is None else r[k] for r in rows])) for k in keys}
        per_view = [r["stereo"]["seconds_per_view"] for r in rows
                    if "stereo" in r and r["stereo"]["seconds_per_view"] is not None]
        if per_view:
            out[method]["stereo_seconds_per_view"] = float(np.mean(per_view))
    return out


def time_command(command: list[str], repeats: int, env: dict | None = None) -> dict:
    """Median wall seconds of ``command`` over ``repeats`` fresh runs, with the load average before each."""
    times, loads = [], []
    for _ in range(repeats):
        loads.append(load_average()[0])
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return {"seconds": float(np.median(times)), "runs": times, "load_average_1min": loads}


def timing(scene: str, repeats: int, baseline: str | None) -> dict:
    out = {"scene": scene}
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("fitted", ["--dense", "fitted"]), ("stereo", [])):
            cmd = [sys.executable, "-m", "app.cli", str(ROOT / scene / "images"), "-o", f"{tmp}/{label}.ply",
                   "--overwrite", "--quiet", *extra]
            out[label] = time_command(cmd, repeats, env={**os.environ, "PYTHONPATH": str(ROOT)})
            print(f"  {scene} {label}: {out[label]['seconds']:.1f} s (median of {repeats}; load "
                  f"{out[label]['load_average_1min']})", flush=True)
        if baseline:  # the command of another checkout (its own default path), on the same images
            commit = subprocess.run(["git", "-C", baseline, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
            cmd = [sys.executable, "-m", "app.cli", str(ROOT / scene / "images"), "-o", f"{tmp}/baseline.ply",
                   "--overwrite", "--quiet"]
            out["baseline"] = {"commit": commit, **time_command(cmd, repeats, env={**os.environ, "PYTHONPATH": baseline})}
            print(f"  {scene} baseline {commit[:8]}: {out['baseline']['seconds']:.1f} s", flush=True)
    return out


def table(results: dict, key: str = "summary") -> str:
    """The README's table: means over the held-out scenes (``key``: ``summary``, all of them, or
    ``summary_good_cameras``), per method."""
    names = {"fast": "`--fast`", "fitted": "`--dense fitted`",
             "stereo": "**stereo (default)**: sweep, maps filled by planes and the network",
             "stereo_no_plane_fill": "stereo, maps filled by the network only (no planes)",
             "stereo_fill_cloud": "stereo, filled points also in the cloud",
             "stereo_prior_range": "stereo, + hypotheses around the network's depth",
             "stereo_prior_only": "stereo, hypotheses around the network's depth only",
             "stereo_no_prior": "stereo alone (no network)"}
    for path in ("chunked", "sequence"):
        for method in LONG_PATH_METHODS:
            names[f"{path}_{method}"] = f"{path} path: " + ("`--dense fitted`" if method == "fitted" else "**stereo**")
    lines = ["| method | AbsRel % (cloud) | δ<1.25 % (cloud) | coverage % | AbsRel % (all maps) | accuracy % @2% | "
             "completeness % @2% | F @2% | s / view (stereo) |", "|---|---|---|---|---|---|---|---|---|"]
    for method, m in results[key].items():
        if method == "scenes":
            continue
        per_view = f"{m['stereo_seconds_per_view']:.2f}" if "stereo_seconds_per_view" in m else "–"
        lines.append(f"| {names.get(method, method)} | {100 * m['abs_rel_cloud']:.1f} | {m['delta_cloud']:.1f} | "
                     f"{100 * m['coverage']:.1f} | {100 * m['abs_rel_maps']:.1f} | {100 * m['accuracy_0.02']:.1f} | "
                     f"{100 * m['completeness_0.02']:.1f} | {100 * m['f_0.02']:.1f} | {per_view} |")
    return "\n".join(lines)


def paths_table(results: dict) -> str:
    """The README's table of the paths (``--paths``: one pass, chunked, sequence), ``--dense fitted`` and stereo
    (the default) on each: means over the scenes; ``benchmarks/claims.yaml`` renders it."""
    window, overlap = results.get("window"), results.get("overlap")
    paths = {"one": "one pass", "chunked": f"chunked (`--window {window} --overlap {overlap}`)",
             "sequence": f"sequence (`--sequence on --window {window}`)"}
    lines = ["| path | method | AbsRel % (cloud) | δ<1.25 % (cloud) | coverage % | AbsRel % (all maps) | accuracy % @2% | "
             "completeness % @2% | pose AUC@5 | s / view (stereo) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for path in results["paths"]:
        for method in LONG_PATH_METHODS:
            m = results["summary"].get(method if path == "one" else f"{path}_{method}")
            if m is None:
                continue
            per_view = f"{m['stereo_seconds_per_view']:.2f}" if "stereo_seconds_per_view" in m else "–"
            label = "`--dense fitted`" if method == "fitted" else "**stereo** (default)"
            lines.append(f"| {paths[path]} | {label} | {100 * m['abs_rel_cloud']:.1f} | {m['delta_cloud']:.1f} | "
                         f"{100 * m['coverage']:.1f} | {100 * m['abs_rel_maps']:.1f} | {100 * m['accuracy_0.02']:.1f} | "
                         f"{100 * m['completeness_0.02']:.1f} | {m['auc5']:.1f} | {per_view} |")
    return "\n".join(lines)


def summary_table(results: dict) -> str:
    """The README's first table (every held-out scene); ``benchmarks/claims.yaml`` renders it."""
    return table(results, "summary")


def scenes_table(results: dict) -> str:
    """The README's per-scene table of the default path's depth maps: pose AUC@5, the groups of views that see a
    common surface, stereo's coverage, and all-maps AbsRel / δ<1.25 with one scale for the scene, with one scale
    per group, and per group without the planes' fill-in and for ``--dense fitted``; ``benchmarks/claims.yaml``
    renders it."""
    lines = ["| scene | pose AUC@5 | view groups | stereo coverage % | all maps AbsRel % / δ % (one scale) | "
             "per group | per group, no planes | `--dense fitted`, per group |", "|---|---|---|---|---|---|---|---|"]
    pair = lambda m, suffix: (f"{100 * m[f'abs_rel_maps{suffix}']:.1f} / {m[f'delta_maps{suffix}']:.1f}"  # noqa: E731
                              if m.get(f"abs_rel_maps{suffix}") is not None else "–")
    for name, row in results["synthetic"].items():
        st, no, fi = row.get("stereo", {}), row.get("stereo_no_plane_fill", {}), row.get("fitted", {})
        if not st:
            continue
        lines.append(f"| {name} | {st['auc5']:.1f} | {st.get('view_groups', 1)} | {100 * st['coverage']:.1f} | "
                     f"{pair(st, '')} | {pair(st, '_per_group')} | {pair(no, '_per_group') if no else '–'} | "
                     f"{pair(fi, '_per_group') if fi else '–'} |")
    return "\n".join(lines)


def good_cameras_table(results: dict) -> str:
    """The README's second table (scenes whose cameras are right); ``benchmarks/claims.yaml`` renders it."""
    return table(results, "summary_good_cameras")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=6, help="held-out synthetic scenes (default 6)")
    parser.add_argument("--views", type=int, default=12, help="views per synthetic scene (default 12)")
    parser.add_argument("--start", type=int, default=0, help="first test-split index")
    parser.add_argument("--kinds", default="room,object")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--timing-scene", default="demo/tum_freiburg")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default=None, metavar="DIR", help="a checkout whose command to time as well")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--paths", default="one", help="one,chunked,sequence: the paths the scenes run through")
    parser.add_argument("--window", type=int, default=6, help="the long paths' views a chunk / frames a window")
    parser.add_argument("--overlap", type=int, default=3, help="views shared by consecutive chunks")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the README table of the results file and exit")
    args = parser.parse_args()
    if args.table:
        data = json.loads(args.out.read_text())
        if set(data.get("paths", ["one"])) - {"one"}:
            print(paths_table(data))
            print()
        print(table(data))
        print()
        print(table(data, "summary_good_cameras"))
        return
    import heads

    run = start_run()
    methods = [m for m in args.methods.split(",") if m]
    paths = [p for p in args.paths.split(",") if p]
    if not set(paths) <= {"one", "chunked", "sequence"}:
        parser.error("--paths takes one, chunked, sequence")
    model = heads.load_model(heads.DEFAULT_MODEL, device="cpu")
    sfm, matches = SfmOnce(), MatchOnce()
    results = {"methods": methods, "thresholds": list(THRESHOLDS), "synthetic": {}, "paths": paths}
    if set(paths) - {"one"}:
        results.update(window=args.window, overlap=args.overlap)
    methods_run = [m for m in methods if "one" in paths] + [f"{p}_{m}" for p in paths if p != "one"
                                                            for m in methods if m in LONG_PATH_METHODS]
    with tempfile.TemporaryDirectory() as tmp:
        for path in make_synthetic(Path(tmp), args.scenes, args.views, kinds=args.kinds, start=args.start) if args.scenes else []:
            scene = load_scene(path)
            print(f"{path.name} ({len(scene.names)} views)", flush=True)
            results["synthetic"][path.name] = run_scene(model, scene, methods, sfm, matches, paths, args.window,
                                                        args.overlap)
    if results["synthetic"]:
        results["summary"] = summarise(results, methods_run)
        results["summary_good_cameras"] = summarise(results, methods_run, good_cameras=True)
        results["good_cameras_auc5"] = GOOD_CAMERAS_AUC5
    if not args.no_timing:
        results["timing"] = timing(args.timing_scene, args.repeats, args.baseline)
    write_results(args.out, results, run)
    if results["synthetic"]:
        print(table(results))
        print(table(results, "summary_good_cameras"))


if __name__ == "__main__":
    main()
