"""Known cameras (``--cameras``, ``--fix-poses``) against the default path, on scenes with reference cameras.

Run: ``python benchmarks/known_cameras.py`` (``--scenes demo/buddha ...`` to pick; ``--synthetic 0`` skips the
generated scene).

For every scene (the demo scenes with reference cameras, ``demo/synthetic_room`` and one held-out synthetic
10-view scene from ``mum-make-testset``; the synthetic ones have exact depth) the default path runs four times:

* **default**: nothing known (the demo photos carry no EXIF focal length);
* **intrinsics**: ``--cameras`` with the reference K of every view (held fixed in SfM), poses from SfM;
* **half poses**: also ``--fix-poses`` with the reference poses of every other view; the others are registered
  to them. AUC over all views counts the given pairs (exact); ``unposed AUC`` is over the pairs of views whose
  pose was *not* given (what registration achieved);
* **all poses**: every reference pose given and kept (AUC is 100 by construction: only depth is predicted).

The cameras file is written as a ``cameras.json`` and read through :func:`app.engine.known_cameras.known_cameras`,
the path the CLI takes. Figures: pose AUC@30 / AUC@5 over all view pairs (pair error = max of rotation and
translation-direction error, degrees), registered views (given or SfM), seconds from decoded images to the
result; on synthetic scenes depth AbsRel (per-image median scaling, :func:`heads.metrics.depth_metrics`),
AbsRel with one scale for the whole scene (multi-view consistent depth), and point-cloud accuracy (median
distance, after Sim(3) + ICP, :func:`heads.metrics.pointcloud_metrics`, in units of the scene's median depth)
and completeness, over the pixels the exported cloud keeps (``pixels kept``: the cross-check keeps different
pixels in each mode, so depth figures compare different pixel sets). ``--table`` prints the table of the
results file.

Prints a table and writes ``benchmarks/results/known_cameras_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mum  # noqa: E402,F401  (CPU threading policy first)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.provenance import start_run, write_results  # noqa: E402
from benchmarks.real_scenes import load_scene, make_synthetic, pose_aucs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SCENES = ("demo/tum_freiburg", "demo/sacre_coeur", "demo/buddha", "demo/synthetic_room")
MODES = ("default", "intrinsics", "half_poses", "all_poses")


def cameras_file(scene, folder: Path, poses: np.ndarray | None) -> Path:
    """A cameras.json with the scene's reference K for every view and the poses of the views in ``poses``."""
    E = scene.cam_from_world_4x4()
    images = []
    for i, name in enumerate(scene.names):
        entry = {"name": name, "width": int(scene.widths[i]), "height": int(scene.heights[i]),
                 "K": scene.intrinsics[i].tolist()}
        if poses is not None and poses[i]:
            entry["cam_from_world"] = E[i].tolist()
        images.append(entry)
    path = folder / f"cameras_{0 if poses is None else int(poses.sum())}.json"
    path.write_text(json.dumps({"images": images}))
    return path


def depth_figures(recon, scene) -> dict:
    """Depth AbsRel (per image, and with one scale for the scene) and point accuracy against exact depth."""
    import cv2

    from app.exports.project_formats import depth_to_original
    from mum.geometry import depth_to_world_points
    from heads.metrics import depth_metrics, pointcloud_metrics

    S = recon.num_views
    pred = np.stack([depth_to_original(recon, i, recon.depth[i], cv2.INTER_NEAREST) for i in range(S)])
    if recon.valid is not None:
        valid_pred = np.stack([depth_to_original(recon, i, recon.valid[i].astype(np.float32), cv2.INTER_NEAREST)
                               for i in range(S)]) > 0.5
        pred = np.where(valid_pred, pred, np.nan)
    gt = np.stack(scene.depths).astype(np.float64)
    valid = (gt > 0) & np.isfinite(pred) & (pred > 0)
    if scene.masks is not None:
        valid &= np.stack(scene.masks)
    per_image = depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(valid))
    ratio = float(np.median(gt[valid] / pred[valid]))
    abs_rel_scene = float(np.mean(np.abs(ratio * pred[valid] - gt[valid]) / gt[valid]))
    K = torch.from_numpy(np.stack(scene.intrinsics).astype(np.float64))
    gt_points = depth_to_world_points(torch.from_numpy(gt), torch.from_numpy(scene.cam_from_world_4x4()[:, :3]), K).numpy()
    pred_points = depth_to_world_points(torch.from_numpy(np.nan_to_num(pred)),
                                        torch.from_numpy(recon.cam_from_world[:, :3]),
                                        torch.from_numpy(recon.intrinsics)).numpy()
    clouds = pointcloud_metrics(pred_points[valid], gt_points[valid], max_points=100_000)
    unit = float(np.median(gt[valid]))
    return {"abs_rel": per_image["abs_rel"], "abs_rel_scene": abs_rel_scene,
            "accuracy_median": clouds["acc_median"] / unit, "completeness_median": clouds["comp_median"] / unit,
            "pixels_evaluated": round(float(valid.mean()), 4)}


def run(model, scene, mode: str, folder: Path) -> dict:
    from mum.io import load_views
    from app.engine.known_cameras import known_cameras
    from app.engine.pipeline import reconstruct_arrays
    from app.engine.options import CameraOptions, PipelineOptions

    paths = [str(scene.root / "images" / n) for n in scene.names]
    names, arrays = load_views(paths)
    S = len(names)
    posed = None
    if mode == "half_poses":
        posed = np.arange(S) % 2 == 0
    elif mode == "all_poses":
        posed = np.ones(S, bool)
    t0 = time.perf_counter()
    known = None
    if mode != "default":
        known = known_cameras(names, [(a.shape[1], a.shape[0]) for a in arrays], paths,
                              cameras_file(scene, folder, posed), fix_poses=posed is not None)
    options = PipelineOptions(cameras=CameraOptions(native_log="/dev/null"))
    recon = reconstruct_arrays(model, names, arrays, options=options, warn=lambda m: None, known=known)
    seconds = time.perf_counter() - t0
    ref = scene.cam_from_world_4x4()
    auc30, auc5 = pose_aucs(recon.cam_from_world, ref)
    row = {"auc30": auc30, "auc5": auc5, "seconds": seconds,
           "registered": sum(s in ("sfm", "given") for s in recon.pose_origins()),
           "pose_sources": {s: recon.pose_origins().count(s) for s in ("given", "sfm", "network")}}
    if posed is not None and not posed.all():
        free = ~posed
        row["unposed_auc30"], row["unposed_auc5"] = pose_aucs(recon.cam_from_world[free], ref[free])
    if "sfm" in recon.meta:
        row["reprojection_px"] = recon.meta["sfm"]["reprojection_px_mean"]
    if scene.depths is not None:
        row.update(depth_figures(recon, scene))
    return row


def table(results: dict) -> str:
    lines = ["| scene (views) | mode | AUC@30 | AUC@5 | registered | seconds | depth AbsRel (image / scene) "
             "| accuracy / completeness | pixels kept |", "|---|---|---|---|---|---|---|---|---|"]
    labels = {"default": "default", "intrinsics": "given K", "half_poses": "given K + every other pose",
              "all_poses": "given K + all poses"}
    for name, row in results["scenes"].items():
        for mode in MODES:
            r = row[mode]
            auc30, auc5 = f"{r['auc30']:.1f}", f"{r['auc5']:.1f}"
            if "unposed_auc30" in r:
                auc30 += f" ({r['unposed_auc30']:.1f})"
                auc5 += f" ({r['unposed_auc5']:.1f})"
            depth = (f"{r['abs_rel']:.3f} / {r['abs_rel_scene']:.3f}" if "abs_rel" in r else "–")
            acc = (f"{r['accuracy_median']:.3f} / {r['completeness_median']:.3f}" if "accuracy_median" in r else "–")
            kept = f"{100 * r['pixels_evaluated']:.0f} %" if "pixels_evaluated" in r else "–"
            lines.append(f"| {name} ({row['views']}) | {labels[mode]} | {auc30} | {auc5} | {r['registered']}/"
                         f"{row['views']} | {r['seconds']:.1f} | {depth} | {acc} | {kept} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="*", default=list(SCENES))
    parser.add_argument("--synthetic", type=int, default=1, metavar="N", help="held-out synthetic 10-view scenes")
    parser.add_argument("--out", default=str(RESULTS / "known_cameras_cpu.json"))
    parser.add_argument("--table", action="store_true", help="print the table of the results file and stop")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return

    import heads

    run_record = start_run()
    model = heads.load_model(heads.DEFAULT_MODEL, device="cpu")
    results: dict = {"model": heads.DEFAULT_MODEL, "scenes": {}}
    with tempfile.TemporaryDirectory(prefix="mum-known-") as tmp:
        tmp = Path(tmp)
        paths = [(name, ROOT / name) for name in args.scenes]
        if args.synthetic:
            paths += [(f"synthetic/{p.name}", p) for p in make_synthetic(tmp / "syn10", args.synthetic, 10, start=1)]
        for name, path in paths:
            scene = load_scene(path)
            results["scenes"][name] = row = {"views": len(scene.names)}
            for mode in MODES:
                row[mode] = r = run(model, scene, mode, tmp)
                print(f"  {name:28s} {mode:11s} AUC@30 {r['auc30']:5.1f}  AUC@5 {r['auc5']:5.1f}  registered "
                      f"{r['registered']:3d}/{len(scene.names)}  {r['seconds']:6.1f} s"
                      + (f"  AbsRel {r['abs_rel']:.3f}/{r['abs_rel_scene']:.3f}  acc {r['accuracy_median']:.3f}"
                         if "abs_rel" in r else ""), flush=True)
            write_results(args.out, results, run_record)  # after every scene: a long run that stops keeps what it made
    out = write_results(args.out, results, run_record)
    print(table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
