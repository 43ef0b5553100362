"""Can structure-from-motion register the data engine's scenes? Plain pycolmap SfM on held-out synthetic scenes.

Run: ``python benchmarks/synthetic_sfm.py [--scenes 6] [--views 10] [--kinds room,object]``.

Renders ``--scenes`` held-out test scenes (``mum-make-testset``'s seeds, 640 × 480) twice — with the engine's
non-periodic textures (stochastic tiling, :mod:`mum.data.textures`) and with every texture tiled exactly (the
engine before, :meth:`~mum.data.textures.TextureAtlas.lookup`) — and runs plain pycolmap SfM on each (its
defaults: SIFT, exhaustive matching, incremental mapping; :func:`benchmarks.real_scenes.run_plain_sfm`), scoring
pose AUC@30 / AUC@5 over all view pairs against the exact cameras (unregistered views count as failures). It
measures the synthetic engine, not the pipeline: textures that repeat at a fixed period give every feature a twin
one period away, and SfM fails on such scenes. Plain SfM is not seeded: figures vary a little between runs.
Writes ``benchmarks/results/synthetic_sfm_cpu.json``.
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
from benchmarks.real_scenes import load_scene, run_plain_sfm  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "synthetic_sfm_cpu.json"


def measure(args: argparse.Namespace, folder: Path) -> dict:
    """Render the scenes into ``folder`` and run plain SfM on each: per scene AUCs, registered views; means."""
    from mum.data.cli import main as make_testset

    make_testset([str(folder), "--format", "colmap", "--scenes", str(args.scenes), "--views", str(args.views),
                  "--width", "640", "--height", "480", "--kinds", args.kinds])
    out = {"scenes": {}}
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        result = run_plain_sfm(load_scene(path))
        out["scenes"][path.name] = result
        print(f"  {path.name}: AUC@30 {result['auc30']:5.1f}  AUC@5 {result['auc5']:5.1f}  registered "
              f"{result['registered']}/{args.views}", flush=True)
    for key in ("auc30", "auc5"):
        out[f"mean_{key}"] = float(np.mean([r[key] for r in out["scenes"].values()]))
    out["registered"] = int(sum(r["registered"] for r in out["scenes"].values()))
    out["views"] = args.views * len(out["scenes"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--kinds", default="room,object")
    args = parser.parse_args()
    from mum.data.textures import TextureAtlas

    run = start_run()
    results = {"scenes": args.scenes, "views": args.views, "kinds": args.kinds, "width": 640, "height": 480}
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
            print(f"  mean AUC@30 {r['mean_auc30']:.1f}  AUC@5 {r['mean_auc5']:.1f}  registered "
                  f"{r['registered']}/{r['views']}", flush=True)
    write_results(RESULTS, results, run)


if __name__ == "__main__":
    main()
