"""Is COLMAP's SIFT matching the same every run? SIFT features of a folder of images are extracted once (as SfM
extracts them); then the pairs (every pair, or a sequence's) are matched and verified, each time in a fresh
process on a copy of that database, ``--runs`` times with COLMAP's matching on every core and as many times on one thread (what
:func:`app.engine.sfm._matching` sets). Per setting: how many runs gave which matches (a hash of the raw
matches table), and the seconds of the matching call.

COLMAP's CPU matcher searches a faiss index of each image's descriptors; the question is whether pairs matched
on several threads at once change the result from process to process.

Run: ``python benchmarks/matching_determinism.py`` (``--images FOLDER``, default the TUM demo's 17 frames, every
pair; ``--stride N --overlap K``: every N-th frame of a video, each matched with the next K, as the sequence
path matches keyframes; ``--sift-first-octave 0``: SIFT at the images' own size, as on the sequence path, -1
(default) upsampled once, as on the default path; ``--runs N``, default 20). Writes
``benchmarks/results/matching_determinism_cpu.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.engine.sfm import SfmOptions, _verification  # noqa: E402
from benchmarks.provenance import load_average, start_run, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "matching_determinism_cpu.json"


def image_names(images: Path, stride: int) -> list[str]:
    """Every ``stride``-th image file of ``images``, in name order."""
    return sorted(p.name for p in images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[::stride]


def extract(images: Path, names: list[str], database: Path, first_octave: int) -> None:
    """SIFT features of the ``names`` in ``images`` into a new ``database`` as the default path extracts them
    (``first_octave``: -1 upsamples the images once, the default path; 0, the sequence path's keyframes)."""
    from mum.pycolmap_import import import_pycolmap

    pycolmap = import_pycolmap()
    pycolmap.logging.minloglevel = 2
    options = SfmOptions()
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = options.max_image_size
    extraction.sift.first_octave = first_octave
    pycolmap.Database.open(str(database)).close()
    pycolmap.import_images(database, images, pycolmap.CameraMode.AUTO, image_names=names)
    pycolmap.extract_features(database, images, image_names=names, extraction_options=extraction,
                              device=pycolmap.Device.cpu)


def match_once(database: Path, threads: int, pair_file: Path | None) -> dict:
    """The pairs listed in ``pair_file`` (``None``: every pair) of ``database`` matched and verified (COLMAP's
    matching on ``threads`` threads)."""
    from mum.pycolmap_import import import_pycolmap

    pycolmap = import_pycolmap()
    pycolmap.logging.minloglevel = 2
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = threads
    verification = _verification(SfmOptions())  # as SfM verifies: seeded
    t0 = time.perf_counter()
    if pair_file is None:
        pycolmap.match_exhaustive(database, matching, verification_options=verification, device=pycolmap.Device.cpu)
    else:
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = pair_file
        pycolmap.match_image_pairs(database, matching, pairing, verification, device=pycolmap.Device.cpu)
    seconds = time.perf_counter() - t0
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT pair_id, rows, cols, data FROM matches ORDER BY pair_id").fetchall()
    digest = hashlib.sha1(repr(rows).encode()).hexdigest()[:12]
    return {"matches": digest, "pairs": len(rows), "seconds": round(seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT / "demo" / "tum_freiburg" / "images"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sift-first-octave", type=int, default=SfmOptions().sift_first_octave, choices=(-1, 0),
                        help="-1: SIFT on images upsampled once (the default path); 0: at their own size (the "
                             "sequence path's keyframes)")
    parser.add_argument("--stride", type=int, default=1, help="every N-th image (a video's frames: keyframes)")
    parser.add_argument("--overlap", type=int, default=0,
                        help="match each image with the next N (a sequence's pairs); 0: every pair")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--worker", nargs=3, metavar=("DATABASE", "THREADS", "PAIRS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        pairs = None if args.worker[2] == "-" else Path(args.worker[2])
        print(json.dumps(match_once(Path(args.worker[0]), int(args.worker[1]), pairs)))
        return
    run = start_run()
    images = Path(args.images)
    results: dict = {"images": images.name if images.name != "images" else images.parent.name,
                     "runs_per_setting": args.runs, "stride": args.stride, "overlap": args.overlap,
                     "sift_first_octave": args.sift_first_octave,
                     "load_average_before": load_average(), "settings": {}}
    names = image_names(images, args.stride)
    with tempfile.TemporaryDirectory(prefix="mum-matching-") as tmp:
        features = Path(tmp) / "features.db"
        extract(images, names, features, args.sift_first_octave)
        results["views"] = len(names)
        pair_file = "-"
        if args.overlap:
            pair_file = str(Path(tmp) / "pairs.txt")
            Path(pair_file).write_text("".join(f"{a} {b}\n" for i, a in enumerate(names)
                                               for b in names[i + 1:i + 1 + args.overlap]))
        for threads, label in ((-1, "every core"), (1, "one thread")):
            outcomes = []
            for k in range(args.runs):
                database = Path(tmp) / f"run{k}.db"
                shutil.copyfile(features, database)
                proc = subprocess.run([sys.executable, __file__, "--worker", str(database), str(threads), pair_file],
                                      capture_output=True, text=True, check=True,
                                      env={**os.environ, "PYTHONPATH": str(ROOT)})
                outcomes.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                database.unlink()
            counts = Counter(o["matches"] for o in outcomes)
            row = {"threads": threads, "pairs": outcomes[0]["pairs"], "distinct_outcomes": len(counts),
                   "runs_like_the_most_common": counts.most_common(1)[0][1],
                   "runs_differing_from_the_most_common": args.runs - counts.most_common(1)[0][1],
                   "mean_matching_seconds": round(sum(o["seconds"] for o in outcomes) / len(outcomes), 3),
                   "outcomes": dict(counts)}
            results["settings"][label] = row
            print(f"{label:10s}: {row['distinct_outcomes']} distinct outcome(s) in {args.runs} runs "
                  f"({row['runs_differing_from_the_most_common']} differ from the most common), "
                  f"{row['mean_matching_seconds']} s a run", flush=True)
    write_results(args.out, results, run)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
