"""Same photos, same cameras: the default path twice on each scene, once while busy processes load every CPU,
and the two ``cameras.json`` compared entry by entry.

Run: ``python benchmarks/determinism.py`` (``--scenes demo/tum_freiburg ...`` to pick; ``--synthetic N``
held-out synthetic 10-view scenes; ``--sequences FOLDER ...`` ordered frames for the sequence path, default the
TUM demo's 17 frames; ``--busy N`` busy processes, default one per CPU).

For every scene (the four demo scenes; held-out scenes from ``mum-make-testset``, 640 × 480, as the data engine
renders them and, harder, with every texture tiled periodically as the engine did before: SIFT finds a twin of
every feature one period away, so mapping struggles and the guided, relaxed and focal-fallback passes all run)
the command-line tool runs twice in fresh processes, ``python -m app.cli IMAGES -o OUT/cameras.json``: first as
the machine is, then while ``--busy`` processes (``python -c "while True: pass"``) compete for the cores. Per
scene: whether the two files are identical byte for byte; the largest difference of any entry of ``K``
(pixels, and relative to the focal length) and of ``cam_from_world`` (rotation entries; translation entries
divided by the scene's scale, the RMS distance of the camera centres from their mean); whether every view's
``pose_source`` and ``intrinsics_source`` agree; each run's seconds and the load average before it (the load is
the point of the second run). ``within_1e-5``: every entry within 1e-5 of its scale. Ordered frames
(``--sequences``) run the same way with ``--sequence on`` (keyframe SfM in chunks, PnP, the final bundle
adjustment of every frame: a video's path).

Writes ``benchmarks/results/determinism_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.provenance import load_average, start_run, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "determinism_cpu.json"
DEMO_SCENES = ("demo/tum_freiburg", "demo/sacre_coeur", "demo/buddha", "demo/synthetic_room")
DEMO_SEQUENCES = ("demo/tum_freiburg",)
TOLERANCE = 1e-5


@contextmanager
def busy_cpus(count: int):
    """``count`` processes spinning on the CPU while the block runs; always killed."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def compare_cameras(a: dict, b: dict) -> dict:
    """Two ``cameras.json`` documents, entry by entry (views matched by name)."""
    va = {v["name"]: v for v in a["images"]}
    vb = {v["name"]: v for v in b["images"]}
    if va.keys() != vb.keys():
        return {"same_views": False, "within_1e-5": False}
    names = sorted(va)
    Ka = np.array([va[n]["K"] for n in names], np.float64)
    Kb = np.array([vb[n]["K"] for n in names], np.float64)
    Ta = np.array([va[n]["cam_from_world"] for n in names], np.float64)
    Tb = np.array([vb[n]["cam_from_world"] for n in names], np.float64)
    centres = -np.einsum("nji,nj->ni", Ta[:, :3, :3], Ta[:, :3, 3])
    scale = float(np.sqrt(np.mean(np.sum((centres - centres.mean(0)) ** 2, axis=1))))
    scale = scale if scale > 0 else 1.0
    dK = np.abs(Ka - Kb)
    out = {
        "same_views": True,
        "views": len(names),
        "scene_scale": scale,
        "max_abs_diff_K_px": float(dK.max()),
        "max_rel_diff_K": float((dK / Ka[:, :1, :1]).max()),
        "max_abs_diff_rotation": float(np.abs(Ta[:, :3, :3] - Tb[:, :3, :3]).max()),
        "max_diff_translation_per_scale": float(np.abs(Ta[:, :3, 3] - Tb[:, :3, 3]).max() / scale),
        "same_sources": all(va[n].get(k) == vb[n].get(k) for n in names for k in ("pose_source", "intrinsics_source")),
    }
    out["within_1e-5"] = bool(out["same_sources"] and max(out["max_rel_diff_K"], out["max_abs_diff_rotation"],
                                                          out["max_diff_translation_per_scale"]) <= TOLERANCE)
    return out


def run_cli(images: Path, out: Path, flags: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """The default path on ``images`` (with ``flags``) in a fresh process: (cameras.json, a few facts about the
    run)."""
    command = [sys.executable, "-m", "app.cli", str(images), "-o", str(out / "cameras.json"), "--json", *flags]
    load = load_average()
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    sfm = summary.get("sfm", {})
    sequence = summary.get("sequence")
    facts = {"seconds": round(seconds, 1), "load_average_before": load,
             "registered": sfm.get("registered_views"), "initial_focal": sfm.get("initial_focal"),
             "relaxed_mapping": sfm.get("relaxed_mapping")}
    if sequence:  # the sequence path: keyframes by SfM, the other frames by PnP
        facts["registered"] = sequence["keyframes_registered"] + sequence["registered_by_pnp"]
        facts["keyframes"] = sequence["keyframes"]
    return json.loads((out / "cameras.json").read_text()), facts


def measure_scene(images: Path, folder: Path, busy: int, flags: tuple[str, ...] = ()) -> dict:
    first, facts_first = run_cli(images, folder / "first", flags)
    with busy_cpus(busy):
        second, facts_second = run_cli(images, folder / "busy", flags)
    row = {"images": len(first["images"]), "identical_bytes":
           (folder / "first" / "cameras.json").read_bytes() == (folder / "busy" / "cameras.json").read_bytes(),
           **compare_cameras(first, second), "flags": list(flags), "first": facts_first, "busy": facts_second}
    print(f"  {images.parent.name + ' ' + ' '.join(flags):28s} identical {row['identical_bytes']!s:5s} within 1e-5 {row['within_1e-5']!s:5s} "
          f"K {row.get('max_abs_diff_K_px', float('nan')):.2e} px  R {row.get('max_abs_diff_rotation', float('nan')):.2e}  "
          f"t/scale {row.get('max_diff_translation_per_scale', float('nan')):.2e}  registered "
          f"{facts_first['registered']}/{facts_second['registered']}  {facts_first['seconds']} s / "
          f"{facts_second['seconds']} s busy", flush=True)
    return row


def render_synthetic(folder: Path, count: int, periodic: bool) -> list[Path]:
    """Held-out 10-view test scenes (``mum-make-testset``'s seeds); ``periodic``: textures tiled exactly."""
    from mum.data.cli import main as make_testset
    from mum.data.textures import TextureAtlas

    stochastic = TextureAtlas.sample
    TextureAtlas.sample = TextureAtlas.lookup if periodic else stochastic
    try:
        make_testset([str(folder), "--format", "colmap", "--scenes", str(count), "--views", "10",
                      "--width", "640", "--height", "480"])
    finally:
        TextureAtlas.sample = stochastic
    return sorted(p for p in folder.iterdir() if p.is_dir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="*", default=list(DEMO_SCENES))
    parser.add_argument("--sequences", nargs="*", default=list(DEMO_SEQUENCES), metavar="FOLDER",
                        help="ordered frames (a folder of numbered images, or one holding images/), run with "
                             "--sequence on: keyframe SfM, PnP, the final bundle adjustment")
    parser.add_argument("--synthetic", type=int, default=2, metavar="N",
                        help="held-out synthetic scenes, each rendered as the engine does and with periodic textures")
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy processes during the second run")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    run = start_run()
    results: dict = {"busy_processes": args.busy, "tolerance": TOLERANCE, "scenes": {}}
    with tempfile.TemporaryDirectory(prefix="mum-determinism-") as tmp:
        tmp = Path(tmp)
        scenes = [(name, ROOT / name / "images", ()) for name in args.scenes]
        for name in args.sequences:
            folder = ROOT / name
            scenes.append((f"{name} --sequence on", folder / "images" if (folder / "images").is_dir() else folder,
                           ("--sequence", "on")))
        for periodic in (False, True) if args.synthetic else ():
            label = "periodic" if periodic else "synthetic"
            for path in render_synthetic(tmp / label, args.synthetic, periodic):
                scenes.append((f"{label}/{path.name}", path / "images", ()))
        for k, (name, images, flags) in enumerate(scenes):
            results["scenes"][name] = measure_scene(images, tmp / f"runs{k}", args.busy, flags)
    rows = results["scenes"].values()
    results["all_identical_bytes"] = all(r["identical_bytes"] for r in rows)
    results["all_within_1e-5"] = all(r["within_1e-5"] for r in rows)
    write_results(args.out, results, run)
    print(f"identical: {results['all_identical_bytes']}, within 1e-5: {results['all_within_1e-5']}; wrote {args.out}")


if __name__ == "__main__":
    main()
