"""Can structure-from-motion register the data engine's scenes? Plain pycolmap SfM on held-out synthetic scenes.

Run: ``python benchmarks/synthetic_sfm.py [--scenes 6] [--views 10] [--kinds room,object] [--label NAME]``.

Renders ``--scenes`` held-out test scenes (``mum-make-testset``'s seeds, 640 × 480) and runs plain pycolmap SfM
on each (its defaults: SIFT, exhaustive matching, incremental mapping; :func:`benchmarks.real_scenes.run_plain_sfm`),
scoring pose AUC@30 / AUC@5 over all view pairs against the exact cameras (unregistered views count as
failures). It measures the synthetic engine, not the pipeline: textures that repeat at a fixed period give every
feature a twin one period away, and SfM fails on such scenes. Each run is appended to
``benchmarks/results/synthetic_sfm_cpu.json`` with its commit, ``--label`` and command line.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.real_scenes import load_scene, run_plain_sfm  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "synthetic_sfm_cpu.json"


def git_commit() -> str:
    """The current commit, with ``-dirty`` when tracked files differ from it."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--kinds", default="room,object")
    parser.add_argument("--label", default="", help="what this run measures (stored with it)")
    args = parser.parse_args()
    from mum.data.cli import main as make_testset

    run = {"commit": git_commit(), "label": args.label, "command": " ".join(["python"] + sys.argv),
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()} CPU", "scenes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scenes"
        make_testset([str(folder), "--format", "colmap", "--scenes", str(args.scenes), "--views", str(args.views),
                      "--width", "640", "--height", "480", "--kinds", args.kinds])
        for path in sorted(p for p in folder.iterdir() if p.is_dir()):
            result = run_plain_sfm(load_scene(path))
            run["scenes"][path.name] = result
            print(f"{path.name}: AUC@30 {result['auc30']:5.1f}  AUC@5 {result['auc5']:5.1f}  registered "
                  f"{result['registered']}/{args.views}", flush=True)
    for key in ("auc30", "auc5"):
        run[f"mean_{key}"] = float(np.mean([r[key] for r in run["scenes"].values()]))
    print(f"mean AUC@30 {run['mean_auc30']:.1f}  AUC@5 {run['mean_auc5']:.1f}")
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": runs + [run]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
