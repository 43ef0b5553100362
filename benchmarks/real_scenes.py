"""Cameras and clouds on scenes with reference cameras: ``--fast``, the default path and plain pycolmap SfM,
side by side in one run.

Run: ``python benchmarks/real_scenes.py`` (``--quick``: the demo scenes only; ``--guided-views 50 100``:
the matching comparison sizes; ``--synthetic N``: held-out synthetic 10-view scenes).

For every scene:

* **fast**: ``reconstruct_arrays(..., PipelineOptions(fast=True))`` — the network alone;
* **default**: ``reconstruct_arrays(...)`` — SfM cameras (network focal prior, network-placed views where SfM
  has none), depth fitted, fused and cross-checked;
* **plain SfM**: what a user of pycolmap gets with its defaults — SIFT on the image files (at most 3200 px on
  the long side, COLMAP's default), exhaustive matching, incremental mapping (largest model), unregistered
  views counted as failures — run with ``--plain-seeds`` (default 0 1 2: the RANSAC and mapper seeds), so the
  baseline is reproducible and its spread over seeds is reported (mean, min, max).

Figures: pose AUC@30 and AUC@5 over all view pairs (pair error = max of rotation and translation-direction
error, degrees), registered views (SfM cameras; ``fast`` has none), seconds and where they go — fast and
default from the image files to the result (decoding, the network, SIFT at most 1600 px on the long side,
matching, mapping, dense fitting; model loading excluded), plain SfM from the image files to its model
(feature extraction with decoding, at most 3200 px; matching; mapping) — and for fast/default the median
relative depth difference between overlapping views ("views disagree"), over all pixels with a depth and over
the pixels the exported cloud keeps. It measures how well the views' depths agree with each other under the
exported cameras (self-consistency), not their accuracy: cameras that all sit at one point agree perfectly.

Matching comparison (``--guided-views``): a held-out synthetic scene of N views (the data engine's exact
cameras; the same world as the 50-view scene above, denser along its path at 100), reconstructed by the default
path with network-guided pairs and with all pairs: matching seconds, pairs and AUC@30.

``--parts scenes`` or ``--parts matching`` runs one half; the other half's figures are kept from the existing
results file (``--quick`` likewise keeps the synthetic scenes' rows).

Prints tables and writes ``benchmarks/results/real_scenes_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mum  # noqa: E402,F401  (CPU threading policy first)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.provenance import row_stamp, start_run, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEMO_SCENES = ("tum_freiburg", "sacre_coeur", "buddha")
PLAIN_SEEDS = (0, 1, 2)


def pose_aucs(cam_from_world: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """AUC@30 and AUC@5 in percent; NaN cameras (unregistered) count as failures."""
    from heads.metrics import pose_auc, relative_pose_errors

    rra, rta = relative_pose_errors(torch.from_numpy(cam_from_world[:, :3, :4]), torch.from_numpy(reference[:, :3, :4]))
    return 100 * float(pose_auc(rra, rta, 30)), 100 * float(pose_auc(rra, rta, 5))


def run_pipeline(model, scene, fast: bool, **matching) -> dict:
    """The default path (``fast``: the network alone) on ``scene``; ``matching``: fields of
    :class:`app.engine.options.MatchingOptions` to change."""
    from mum.io import load_views
    from app.engine.pipeline import reconstruct_arrays
    from app.engine.options import CameraOptions, MatchingOptions, PipelineOptions

    t0 = time.perf_counter()
    names, arrays = load_views([str(scene.root / "images" / n) for n in scene.names])
    t1 = time.perf_counter()
    recon = reconstruct_arrays(model, names, arrays, options=PipelineOptions(fast=fast, cameras=CameraOptions(
                                   matching=MatchingOptions(**matching), native_log="/dev/null")),
                               warn=lambda m: None)
    seconds = time.perf_counter() - t0
    sfm_s = sum(recon.meta.get("sfm", {}).get("seconds", {}).values())
    stages = {"decode": t1 - t0, "network": recon.meta["inference_s"], "sfm": sfm_s}
    stages["rest"] = seconds - sum(stages.values())  # fast: preprocessing, consistency; default: dense fitting too
    auc30, auc5 = pose_aucs(recon.cam_from_world, scene.extrinsics)
    consistency = recon.meta["consistency"]
    row = {"auc30": auc30, "auc5": auc5, "registered": recon.pose_origins().count("sfm"), "seconds": seconds,
           "stages_s": stages,
           "disagreement_all": consistency["median_depth_disagreement"],
           "disagreement_cloud": consistency["cloud_median_depth_disagreement"],
           "pixels_kept": consistency["pixels_kept"], "depth_size": list(recon.depth_size)}
    if "sfm" in recon.meta:
        row["sfm"] = recon.meta["sfm"]
    return row


def run_plain_sfm(scene, seed: int) -> dict:
    """pycolmap with its defaults on the image files, its random choices seeded with ``seed``."""
    import pycolmap

    from mum.native_stderr import native_stderr_to

    pycolmap.logging.minloglevel = 2
    pycolmap.set_random_seed(seed)
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = seed
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.random_seed = seed
    with tempfile.TemporaryDirectory() as tmp, native_stderr_to("/dev/null"):
        tmp = Path(tmp)
        t0 = time.perf_counter()
        pycolmap.extract_features(tmp / "db.db", scene.root / "images", image_names=scene.names, device=pycolmap.Device.cpu)
        t1 = time.perf_counter()
        pycolmap.match_exhaustive(tmp / "db.db", verification_options=verification, device=pycolmap.Device.cpu)
        t2 = time.perf_counter()
        (tmp / "sparse").mkdir()
        models = pycolmap.incremental_mapping(tmp / "db.db", scene.root / "images", tmp / "sparse", mapping)
        t3 = time.perf_counter()
        best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
        cams = np.full((len(scene.names), 4, 4), np.nan)
        if best is not None:
            for image in best.images.values():
                if image.has_pose:
                    i = scene.names.index(image.name)
                    cams[i] = np.eye(4)
                    cams[i, :3] = image.cam_from_world().matrix()
    auc30, auc5 = pose_aucs(cams, scene.extrinsics)
    return {"seed": seed, "auc30": auc30, "auc5": auc5, "registered": int(np.isfinite(cams[:, 0, 0]).sum()),
            "seconds": t3 - t0, "stages_s": {"features": t1 - t0, "matching": t2 - t1, "mapping": t3 - t2}}


def plain_sfm_repeats(scene, seeds: tuple[int, ...] = PLAIN_SEEDS) -> dict:
    """Plain SfM once per seed: every run, and the mean, min and max of each figure over the runs."""
    runs = [run_plain_sfm(scene, seed) for seed in seeds]
    flat = [{**{k: r[k] for k in ("auc30", "auc5", "registered", "seconds")},
             **{f"{k}_s": v for k, v in r["stages_s"].items()}} for r in runs]
    stats = {how: {k: float(fn([f[k] for f in flat])) for k in flat[0]}
             for how, fn in (("mean", np.mean), ("min", np.min), ("max", np.max))}
    return {"seeds": list(seeds), "runs": runs, **stats["mean"], "min": stats["min"], "max": stats["max"]}


def load_scene(path: Path):
    from mum.data.readers import read_scene

    scene = read_scene(path)
    scene.root = path
    return scene


def make_synthetic(folder: Path, scenes: int, views: int, kinds: str | None = None, paths: str | None = None,
                   start: int = 0) -> list[Path]:
    cmd = ["mum-make-testset", str(folder), "--format", "colmap", "--scenes", str(scenes), "--views", str(views),
           "--width", "640", "--height", "480", "--start", str(start)]
    if kinds:
        cmd += ["--kinds", kinds]
    if paths:
        cmd += ["--paths", paths]
    subprocess.run(cmd, check=True, capture_output=True)
    return sorted(p for p in folder.iterdir() if p.is_dir())


def compare_scene(model, path: Path, label: str, seeds: tuple[int, ...] = PLAIN_SEEDS) -> dict:
    scene = load_scene(path)
    row = {"views": len(scene.names)}
    for method, fn in (("fast", lambda: run_pipeline(model, scene, True)),
                       ("default", lambda: run_pipeline(model, scene, False)),
                       ("plain_sfm", lambda: plain_sfm_repeats(scene, seeds))):
        row[method] = fn()
        r = row[method]
        print(f"  {label:28s} {method:9s} AUC@30 {r['auc30']:5.1f}  AUC@5 {r['auc5']:5.1f}  "
              f"registered {r['registered']:5.1f}/{len(scene.names)}  {r['seconds']:6.1f} s"
              + (f"  (seeds {r['seeds']}: AUC@30 {r['min']['auc30']:.1f}–{r['max']['auc30']:.1f})" if "seeds" in r else "")
              + (f"  disagreement {100 * r['disagreement_cloud']:.1f} % cloud / {100 * r['disagreement_all']:.1f} % all"
                 if "disagreement_cloud" in r else ""), flush=True)
    return row


def guided_vs_exhaustive(model, path: Path) -> dict:
    scene = load_scene(path)
    n = len(scene.names)
    out = {"views": n}
    for label, options in (("guided", {}), ("exhaustive", {"exhaustive_up_to": 10**9})):
        r = run_pipeline(model, scene, False, **options)
        sfm = r.get("sfm", {})
        seconds = sfm.get("seconds", {})
        out[label] = {"auc30": r["auc30"], "auc5": r["auc5"], "registered": r["registered"], "seconds": r["seconds"],
                      "matching_seconds": seconds.get("matching", float("nan")) + seconds.get("guided_matching", 0.0),
                      "pairs": sfm.get("pairs_matched", 0)}
        o = out[label]
        print(f"  {n:4d} views {label:10s} pairs {o['pairs']:5d}  matching {o['matching_seconds']:6.1f} s  "
              f"AUC@30 {o['auc30']:5.1f}  registered {o['registered']}/{n}  total {o['seconds']:6.1f} s", flush=True)
    out["matching_speedup"] = out["exhaustive"]["matching_seconds"] / max(out["guided"]["matching_seconds"], 1e-9)
    return out


def _spread(p: dict, key: str, digits: int = 1) -> str:
    """``mean`` of plain SfM's runs, with ``[min–max]`` when the seeds disagree."""
    lo, hi = p["min"][key], p["max"][key]
    mean = f"{p[key]:.{digits}f}"
    return mean if f"{lo:.{digits}f}" == f"{hi:.{digits}f}" else f"{mean} [{lo:.{digits}f}–{hi:.{digits}f}]"


def _seeds(results: dict) -> int:
    return max(len(row["plain_sfm"].get("seeds", [0])) for row in results["scenes"].values())


def scenes_table(results: dict) -> str:
    """The README's accuracy table of the scenes in ``results`` (a results file of this benchmark)."""
    lines = [f"| scene (views) | fast AUC@30 / @5 | default AUC@30 / @5 | plain SfM AUC@30 / @5 ({_seeds(results)} seeds) "
             "| registered default / plain | views disagree, all pixels: fast / default "
             "| over kept pixels: fast / default (kept) |",
             "|---|---|---|---|---|---|---|"]
    for name, row in results["scenes"].items():
        f, d, p = row["fast"], row["default"], row["plain_sfm"]
        registered = (f"{p['registered']:.0f}" if p["min"]["registered"] == p["max"]["registered"]
                      else f"{p['min']['registered']:.0f}–{p['max']['registered']:.0f}")
        lines.append(
            f"| {name} ({row['views']}) | {f['auc30']:.1f} / {f['auc5']:.1f} | **{d['auc30']:.1f} / {d['auc5']:.1f}** | "
            f"{_spread(p, 'auc30')} / {_spread(p, 'auc5')} | {d['registered']} / {registered} | "
            f"{100 * f['disagreement_all']:.1f} % / {100 * d['disagreement_all']:.1f} % | "
            f"{100 * f['disagreement_cloud']:.1f} % / {100 * d['disagreement_cloud']:.1f} % ({100 * d['pixels_kept']:.0f} %) |")
    return "\n".join(lines)


def timing_table(results: dict) -> str:
    """The README's table of where the seconds go, per scene: the default path's stages beside plain SfM's."""
    lines = ["| scene (views) | fast s | default s: decode / network / SIFT ≤ 1600 px + matching + mapping / dense / total "
             f"| plain SfM s (mean of {_seeds(results)}): decode + SIFT ≤ 3200 px / matching / mapping / total |",
             "|---|---|---|---|"]
    for name, row in results["scenes"].items():
        f, d, p = row["fast"], row["default"], row["plain_sfm"]
        st = d["stages_s"]
        lines.append(f"| {name} ({row['views']}) | {f['seconds']:.1f} | {st['decode']:.1f} / {st['network']:.1f} / "
                     f"{st['sfm']:.1f} / {st['rest']:.1f} / {d['seconds']:.1f} | {p['features_s']:.1f} / "
                     f"{p['matching_s']:.1f} / {p['mapping_s']:.1f} / {p['seconds']:.1f} |")
    return "\n".join(lines)


def matching_table(results: dict) -> str:
    """The README's table of the matching comparison in ``results``."""
    lines = ["| views | pairs guided / all | matching s guided / all | speed-up | AUC@30 guided / all |",
             "|---|---|---|---|---|"]
    for row in results["matching"]:
        g, e = row["guided"], row["exhaustive"]
        lines.append(f"| {row['views']} | {g['pairs']} / {e['pairs']} | {g['matching_seconds']:.1f} / "
                     f"{e['matching_seconds']:.1f} | {row['matching_speedup']:.1f}× | {g['auc30']:.1f} / {e['auc30']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the demo scenes only")
    parser.add_argument("--synthetic", type=int, default=3, metavar="N", help="held-out synthetic 10-view scenes (default 3)")
    parser.add_argument("--synthetic-50", type=int, default=1, metavar="N", help="held-out synthetic 50-view scenes (default 1)")
    parser.add_argument("--guided-views", type=int, nargs="*", default=[50, 100], help="matching comparison sizes")
    parser.add_argument("--plain-seeds", type=int, nargs="+", default=list(PLAIN_SEEDS),
                        help="plain SfM runs once per seed (default 0 1 2)")
    parser.add_argument("--parts", nargs="+", choices=("scenes", "matching"), default=["scenes", "matching"])
    parser.add_argument("--out", default=str(RESULTS / "real_scenes_cpu.json"))
    args = parser.parse_args()
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}

    import heads

    run = start_run()
    seeds = tuple(args.plain_seeds)
    stamp = row_stamp(run)  # rows kept from an earlier results file keep theirs (--quick, --parts)
    model = heads.load_model(heads.DEFAULT_MODEL, device="cpu")
    remeasure_matching = "matching" in args.parts and not args.quick
    results: dict = {"model": heads.DEFAULT_MODEL, "scenes": previous.get("scenes", {}),
                     "matching": [] if remeasure_matching else previous.get("matching", [])}
    with tempfile.TemporaryDirectory(prefix="mum-bench-") as tmp:
        tmp = Path(tmp)
        if "scenes" in args.parts:
            results["scenes"] = dict(previous.get("scenes", {}))  # --quick re-measures the demo scenes only
            print("scenes:", flush=True)
            for name in DEMO_SCENES:
                results["scenes"][f"demo/{name}"] = {**compare_scene(model, ROOT / "demo" / name, f"demo/{name}", seeds), **stamp}
                write_results(out, results, run)  # after every scene: a long run that stops keeps what it made
            if not args.quick:
                for path in make_synthetic(tmp / "syn10", args.synthetic, 10) if args.synthetic else []:
                    results["scenes"][f"synthetic/{path.name}"] = {**compare_scene(model, path, f"synthetic/{path.name}", seeds), **stamp}
                    write_results(out, results, run)
                for path in make_synthetic(tmp / "syn50", args.synthetic_50, 50, start=100) if args.synthetic_50 else []:
                    results["scenes"][f"synthetic/{path.name}"] = {**compare_scene(model, path, f"synthetic/{path.name}", seeds), **stamp}
                    write_results(out, results, run)
        if remeasure_matching:
            print("matching (network-guided pairs vs all pairs):", flush=True)
            for n in args.guided_views:
                path = make_synthetic(tmp / f"scene{n}", 1, n, start=100)[0]  # the 50-view scene's world
                results["matching"].append({**guided_vs_exhaustive(model, path), **stamp})
                write_results(out, results, run)
    write_results(out, results, run)
    print(scenes_table(results))
    print("\n" + timing_table(results))
    if results["matching"]:
        print("\n" + matching_table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
