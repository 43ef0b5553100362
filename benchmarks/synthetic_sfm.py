"""Can structure-from-motion register the data engine's scenes? Plain pycolmap SfM on held-out synthetic scenes.

Run: ``python benchmarks/synthetic_sfm.py [--scenes 6] [--views 10] [--kinds room,object] [--seeds 0 1 2]``.

Renders ``--scenes`` held-out test scenes (``mum-make-testset``'s seeds, 640 × 480) twice — with the engine's
non-periodic textures (stochastic tiling, :mod:`mum.data.textures`) and with every texture tiled exactly (the
engine before, :meth:`~mum.data.textures.TextureAtlas.lookup`) — and runs plain pycolmap SfM on each (its
defaults: SIFT, exhaustive matching, incremental mapping; :func:`benchmarks.real_scenes.run_plain_sfm`), scoring
pose AUC@30 / AUC@5 over all view pairs against the exact cameras (unregistered views count as failures). It
measures the synthetic engine, not the pipeline: textures that repeat at a fixed period give every feature a twin
one period away, and SfM fails on such scenes. pycolmap's defaults map and adjust on every thread, so even with
its random choices seeded a run is one sample: each scene runs once per seed (``--seeds``, as
:func:`benchmarks.real_scenes.plain_sfm_repeats`), and the means over the scenes are given for every seed (their
mean, min and max). Writes ``benchmarks/results/synthetic_sfm_cpu.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.provenance import start_run, write_results  # noqa: E402
from benchmarks.real_scenes import PLAIN_SEEDS, load_scene, plain_sfm_repeats  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "synthetic_sfm_cpu.json"


def measure(args: argparse.Namespace, folder: Path) -> dict:
    """Render the scenes into ``folder`` and run plain SfM on each once per seed: per scene the runs and their
    mean/min/max; over the scenes, per seed, the mean AUCs and the views registered, and their mean/min/max."""
    from mum.data.cli import main as make_testset

    make_testset([str(folder), "--format", "colmap", "--scenes", str(args.scenes), "--views", str(args.views),
                  "--width", "640", "--height", "480", "--kinds", args.kinds])
    out = {"scenes": {}}
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        result = plain_sfm_repeats(load_scene(path), tuple(args.seeds))
        out["scenes"][path.name] = result
        print(f"  {path.name}: AUC@30 {result['auc30']:5.1f} ({result['min']['auc30']:.1f}-{result['max']['auc30']:.1f})"
              f"  AUC@5 {result['auc5']:5.1f}  registered {result['registered']:.1f}/{args.views}", flush=True)
    runs = [r["runs"] for r in out["scenes"].values()]
    per_seed = {key: [float(np.mean([scene[i][key] for scene in runs])) for i in range(len(args.seeds))]
                for key in ("auc30", "auc5")}
    per_seed["registered"] = [int(sum(scene[i]["registered"] for scene in runs)) for i in range(len(args.seeds))]
    out["per_seed"] = {"seeds": list(args.seeds), **per_seed}
    for key, values in per_seed.items():
        name = key if key == "registered" else f"mean_{key}"
        out[name] = float(np.mean(values))
        out[f"{name}_min"], out[f"{name}_max"] = float(min(values)), float(max(values))
    out["views"] = args.views * len(out["scenes"])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--kinds", default="room,object")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(PLAIN_SEEDS),
                        help="plain SfM runs once per seed on every scene (default 0 1 2)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="results JSON (default: benchmarks/results/synthetic_sfm_cpu.json)")
    args = parser.parse_args(argv)
    from mum.data.textures import TextureAtlas

    run = start_run(argv)
    results = {"scenes": args.scenes, "views": args.views, "kinds": args.kinds, "width": 640, "height": 480,
               "seeds": args.seeds}
    stochastic = TextureAtlas.sample
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("stochastic", "periodic"):
            print(f"textures: {label}", flush=True)
            TextureAtlas.sample = stochastic if label == "stochastic" else TextureAtlas.lookup
            try:
                results[label] = measure(args, Path(tmp) / label)
            finally:
                TextureAtlas.sample = stochastic
            r = results[label]
            print(f"  mean AUC@30 {r['mean_auc30']:.1f} ({r['mean_auc30_min']:.1f}-{r['mean_auc30_max']:.1f})  AUC@5 "
                  f"{r['mean_auc5']:.1f}  registered {r['registered']:.1f}/{r['views']}", flush=True)
    write_results(args.out, results, run)


if __name__ == "__main__":
    main()
