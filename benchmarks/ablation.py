"""Does the network earn its place in the default path? Each of its contributions switched off in turn.

Run: ``python benchmarks/ablation.py`` (``--scenes demo/buddha ...`` to pick; ``--synthetic N`` held-out
10-view scenes, ``--synthetic-50 N`` held-out 50-view scenes; ``--kitti FOLDER`` adds a KITTI sequence with
reference cameras, read in place: its licence keeps it out of this repository).

On every scene the default path (``reconstruct_arrays``, the bundled model) runs with everything on and with
one network contribution off:

* **focal prior** off: every camera starts from COLMAP's own guess ``1.2 × max(w, h)``
  (``SfmOptions(network_focal_prior=False)``);
* **guided pairs** off: every pair is matched (``MatchingOptions(exhaustive_up_to=10**9)``). Up to 30 views the
  default path matches every pair anyway, so there the run would be the one with everything on (the path is
  deterministic): it is run only on larger scenes;
* **placement** off: views SfM did not register get no camera (they count as failures, as in plain SfM) instead
  of the network's camera placed by a similarity. The cameras of the registered views do not depend on the
  placement, so this is measured on the run with everything on by dropping the placed cameras;
* **dense depth** off: the cloud holds the SfM points only (what SfM gives without a dense stage). The cameras
  come before the dense stage, so this too is measured on the run with everything on, from its SfM points.

And **plain SfM** (pycolmap with its defaults on the image files, seeds 0 1 2,
:func:`benchmarks.real_scenes.plain_sfm_repeats`), kept in the results file; the README's table of plain SfM is
``benchmarks/real_scenes.py``'s.
Figures: registered views, pose AUC@30 / AUC@5 over all view pairs against the reference cameras
(unregistered views count as failures), the mean reprojection error of the exported cameras (pixels), the
seconds of the run (from decoded images to the result, model loading excluded; machine load in the run block),
and the cloud: points; on synthetic scenes (exact depth) the depth error of the cloud's pixels (AbsRel with one
scale for the whole scene) and the share of all pixels that have a depth.

Writes ``benchmarks/results/ablation_cpu.json``; ``--table`` prints the README's table from it.
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

from benchmarks.provenance import row_stamp, start_run, write_results  # noqa: E402
from benchmarks.real_scenes import load_scene, make_synthetic, plain_sfm_repeats, pose_aucs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ablation_cpu.json"
DEMO_SCENES = ("demo/tum_freiburg", "demo/sacre_coeur", "demo/buddha", "demo/synthetic_room")


def sfm_depth_figures(recon, scene) -> dict:
    """The SfM points alone as the scene's depth: AbsRel against exact depth at each point's pixel (one scale for
    the scene) and the share of all pixels that have a depth."""
    cloud = recon.sfm_points
    gt_all = np.stack(scene.depths).astype(np.float64)
    pred, gt = [], []
    for i in range(recon.num_views):
        mine = cloud.view == i
        if not mine.any():
            continue
        x = cloud.xyz[mine].astype(np.float64) @ recon.cam_from_world[i, :3, :3].T + recon.cam_from_world[i, :3, 3]
        u, v = np.round(cloud.pixel[mine]).astype(int).T
        inside = (u >= 0) & (v >= 0) & (u < gt_all.shape[2]) & (v < gt_all.shape[1]) & (x[:, 2] > 0)
        d = gt_all[i, v[inside], u[inside]]
        ok = d > 0
        pred.append(x[inside, 2][ok])
        gt.append(d[ok])
    pred, gt = np.concatenate(pred), np.concatenate(gt)
    scale = float(np.median(gt / pred))
    return {"abs_rel_scene": float(np.mean(np.abs(scale * pred - gt) / gt)),
            "pixels_evaluated": round(len(gt) / float((gt_all > 0).sum()), 6)}


def run_default(model, scene, names, arrays, **cameras) -> tuple[dict, object]:
    """The default path on ``scene``'s views; ``cameras``: fields of :class:`app.engine.options.CameraOptions`
    to change (``sfm``, ``matching``)."""
    from app.engine.pipeline import reconstruct_arrays
    from app.engine.options import CameraOptions, PipelineOptions

    t0 = time.perf_counter()
    options = PipelineOptions(cameras=CameraOptions(native_log="/dev/null", **cameras))
    recon = reconstruct_arrays(model, names, arrays, options=options,
                               warn=lambda m: None)
    seconds = time.perf_counter() - t0
    auc30, auc5 = pose_aucs(recon.cam_from_world, scene.extrinsics)
    sfm = recon.meta.get("sfm", {})
    row = {"auc30": auc30, "auc5": auc5, "registered": recon.pose_origins().count("sfm"),
           "reprojection_px": sfm.get("reprojection_px_mean"), "seconds": round(seconds, 1),
           "sfm_seconds": sfm.get("seconds"), "initial_focal": sfm.get("initial_focal"),
           "relaxed_mapping": sfm.get("relaxed_mapping"), "pairs_matched": sfm.get("pairs_matched"),
           "cloud_points": len(recon.point_cloud())}
    return row, recon


def without_placement(recon, scene) -> dict:
    """The run's cameras with the network-placed views dropped (failures)."""
    cams = recon.cam_from_world.copy()
    placed = np.array([s == "network" for s in recon.pose_origins()])
    cams[placed] = np.nan
    auc30, auc5 = pose_aucs(cams, scene.extrinsics)
    return {"auc30": auc30, "auc5": auc5, "registered": int((~placed).sum()), "cameras": int((~placed).sum())}


def measure_scene(model, path: Path, label: str, synthetic: bool, run: dict) -> dict:
    from app.engine.options import MatchingOptions
    from app.engine.sfm import SfmOptions
    from benchmarks.known_cameras import depth_figures
    from mum.io import load_views

    scene = load_scene(path)
    names, arrays = load_views([str(scene.root / "images" / n) for n in scene.names])
    row: dict = {"views": len(names), **row_stamp(run)}
    row["all_on"], recon = run_default(model, scene, names, arrays)
    row["no_placement"] = without_placement(recon, scene)
    row["no_dense_depth"] = {"cloud_points": len(recon.sfm_points)}
    if synthetic:
        row["all_on"]["depth"] = {k: v for k, v in depth_figures(recon, scene).items()
                                  if k in ("abs_rel_scene", "pixels_evaluated")}
        row["no_dense_depth"]["depth"] = sfm_depth_figures(recon, scene)
    del recon
    row["no_focal_prior"], _ = run_default(model, scene, names, arrays, sfm=SfmOptions(network_focal_prior=False))
    if len(names) > MatchingOptions().exhaustive_up_to:
        row["no_guided_pairs"], _ = run_default(model, scene, names, arrays,
                                                matching=MatchingOptions(exhaustive_up_to=10**9))
    else:
        row["no_guided_pairs"] = {"same_as": "all_on"}  # every pair is matched up to exhaustive_up_to views
    row["plain_sfm"] = plain_sfm_repeats(scene)  # seeds 0 1 2: mean, min, max
    for key in ("all_on", "no_focal_prior", "no_guided_pairs", "no_placement", "plain_sfm"):
        r = row[key]
        if "auc30" in r:
            print(f"  {label:28s} {key:16s} AUC@30 {r['auc30']:5.1f}  AUC@5 {r['auc5']:5.1f}  registered "
                  f"{r['registered']:3d}/{len(names)}" + (f"  {r['seconds']:6.1f} s" if "seconds" in r else ""),
                  flush=True)
    return row


def _cell(row: dict, key: str) -> str:
    r = row[key]
    if r.get("same_as"):
        return "= all on"
    return f"{r['auc30']:.1f} / {r['auc5']:.1f} ({r['registered']})"


def ablation_table(results: dict) -> str:
    """The README's table: AUC@30 / AUC@5 (registered views) per scene and configuration, the focal length SfM
    kept, reprojection error, seconds, the cloud."""
    lines = ["| scene (views) | all on: AUC@30 / @5 (registered) | focal prior off | guided pairs off | placement off "
             "| initial focal kept, all on | reprojection px all on / focal off | seconds all on / focal off "
             "| cloud points all on / dense off | depth AbsRel all on / dense off |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["scenes"].items():
        on, off, dense = row["all_on"], row["no_focal_prior"], row["no_dense_depth"]
        depth = (f"{on['depth']['abs_rel_scene']:.3f} / {dense['depth']['abs_rel_scene']:.3f}"
                 if "depth" in on else "–")
        lines.append(f"| {name} ({row['views']}) | **{_cell(row, 'all_on')}** | {_cell(row, 'no_focal_prior')} | "
                     f"{_cell(row, 'no_guided_pairs')} | {_cell(row, 'no_placement')} | "
                     f"{'network' if on['initial_focal'] == 'network' else 'COLMAP guess'} | "
                     f"{on['reprojection_px']:.2f} / {off['reprojection_px']:.2f} | "
                     f"{on['seconds']:.1f} / {off['seconds']:.1f} | "
                     f"{on['cloud_points']:,} / {dense['cloud_points']:,} | {depth} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="*", default=list(DEMO_SCENES))
    parser.add_argument("--synthetic", type=int, default=3, metavar="N", help="held-out 10-view scenes")
    parser.add_argument("--synthetic-50", type=int, default=1, metavar="N", help="held-out 50-view scenes")
    parser.add_argument("--kitti", type=Path, metavar="FOLDER",
                        help="also this KITTI sequence folder (images + reference cameras), read in place")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--table", action="store_true", help="print the table of the results file and stop")
    args = parser.parse_args()
    if args.table:
        print(ablation_table(json.loads(Path(args.out).read_text())))
        return
    import heads

    run = start_run()
    model = heads.load_model(heads.DEFAULT_MODEL, device="cpu")
    results: dict = {"model": heads.DEFAULT_MODEL, "scenes": {}}
    with tempfile.TemporaryDirectory(prefix="mum-ablation-") as tmp:
        tmp = Path(tmp)
        scenes = [(name, ROOT / name, name == "demo/synthetic_room") for name in args.scenes]
        if args.synthetic:
            scenes += [(f"synthetic/{p.name}", p, True) for p in make_synthetic(tmp / "syn10", args.synthetic, 10)]
        if args.synthetic_50:
            scenes += [(f"synthetic/{p.name}", p, True)
                       for p in make_synthetic(tmp / "syn50", args.synthetic_50, 50, start=100)]
        if args.kitti:
            scenes.append((args.kitti.name, args.kitti, False))
        for name, path, synthetic in scenes:
            results["scenes"][name] = measure_scene(model, path, name, synthetic, run)
            write_results(args.out, results, run)  # after every scene: a long run that stops keeps what it made
    print(ablation_table(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
