"""``mum-reconstruct`` wall time, command start to written PLY: 10 demo views with ``--fast``, and the README's
first command (the default path on all 17 views of ``demo/tum_freiburg``), on CPU.

Run: ``python benchmarks/cli.py`` (options: ``--views``, ``--repeats``, ``--model``, ``--device``,
``--readme-repeats``).

* readme command: ``mum-reconstruct demo/tum_freiburg/images -o scene.ply --overwrite`` (with ``--json`` for
  its figures) in a subprocess, timed as below; its points and registered views from the JSON summary;

* total: the real command, ``python -m app.cli demo/tum_freiburg/images -o scene.ply --max-frames 10 --fast``
  (start-up and the network; ``benchmarks/real_scenes.py`` times the default path), in a
  subprocess, timed from just before the process is started to its exit (median of ``--repeats``);
* breakdown: a fresh interpreter runs the command's own steps (``app.cli`` parser, ``load_views``,
  ``heads.load_model``, ``reconstruct_arrays``, ``write_exports``) with timestamps between them: interpreter
  start, imports (everything the PLY path imports), image loading, model load, inference (preprocess +
  ``predict`` + conversion), export (point cloud + PLY). Medians over ``--repeats`` such processes.

The default model (``heads.DEFAULT_MODEL``) is used; when its bundled weights are not installed the benchmark
falls back to ``mum-tiny`` (random weights, same cost as trained ones) and says so. Prints a table and writes
``benchmarks/results/cli_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import load_average, start_run, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEMO = ROOT / "demo" / "tum_freiburg" / "images"
STAGES = ("startup", "imports", "load_images", "model_load", "inference", "export")
BUDGET_S = 3.0  # start-up + model load should stay under this


def stages_child(spawned_at: float, argv: list[str]) -> dict:
    """In a fresh interpreter: the CLI's steps with a timestamp after each (``spawned_at``: parent's ``time.time()``)."""
    t = {"start": time.time()}
    import app.cli as cli  # noqa: F401  (mum first: CPU threading policy)
    import heads
    from app.exports import project_formats as export# noqa: F401
    from mum.io import load_views
    from app.engine.pipeline import reconstruct_arrays
    from app.engine.options import NetworkOptions, PipelineOptions
    import plyfile  # noqa: F401

    t["imports"] = time.time()
    args = cli.build_parser().parse_args(argv)
    device = cli.choose_device(args.device)
    names, arrays = load_views(args.inputs, stride=args.stride, max_frames=args.max_frames)
    t["load_images"] = time.time()
    model = heads.load_model(args.model, weights=args.weights, device=device)
    t["model_load"] = time.time()
    network = NetworkOptions(long_side=args.size, device=device, chunk_size=args.chunk_size)
    recon = reconstruct_arrays(model, names, arrays, options=PipelineOptions(fast=args.fast, network=network))
    t["inference"] = time.time()
    written, points = cli.write_exports(Path(args.output), recon, args, lambda _m: None)
    t["export"] = time.time()
    marks = [spawned_at, t["start"], t["imports"], t["load_images"], t["model_load"], t["inference"], t["export"]]
    row = {stage: b - a for stage, a, b in zip(STAGES, marks, marks[1:])}
    row.update(
        network_size=list(recon.meta["network_size"]), points=points, predict_s=recon.meta["inference_s"],
        ply_bytes=Path(written[0]).stat().st_size, threads=__import__("torch").get_num_threads(),
    )
    return row


def pick_model(requested: str | None) -> tuple[str, str]:
    """The model to time and a note: the default model, or ``mum-tiny`` when its bundled weights are absent."""
    import heads
    from mum.errors import UserError

    if requested:
        return requested, f"--model {requested}"
    try:
        heads.model_config(heads.DEFAULT_MODEL)
        return heads.DEFAULT_MODEL, f"default model {heads.DEFAULT_MODEL}"
    except (UserError, ValueError) as exc:
        reason = str(exc).replace(str(ROOT) + "/", "")
        return "mum-tiny", f"default model {heads.DEFAULT_MODEL} unavailable ({reason}); fell back to mum-tiny (random weights)"


def run_total(argv: list[str]) -> float:
    """Wall time of the real command in a subprocess, start of the process to its exit."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "app.cli", *argv], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mum-reconstruct failed: {proc.stderr.strip()}")
    return elapsed


def run_readme_command(model: str, device: str, repeats: int) -> dict:
    """The README's first command (default path, every TUM view) in a subprocess, ``repeats`` times."""
    runs, summary = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        argv = [str(DEMO), "-o", str(Path(tmp) / "scene.ply"), "--overwrite", "--model", model, "--device", device, "--json"]
        for _ in range(repeats):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "app.cli", *argv], cwd=ROOT, capture_output=True, text=True)
            runs.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"mum-reconstruct failed: {proc.stderr.strip()[-2000:]}")
            summary = json.loads(proc.stdout)
    return {"command": "mum-reconstruct demo/tum_freiburg/images -o scene.ply --overwrite", "views": summary["views"],
            "seconds": {"median": round(statistics.median(runs), 3), "runs": [round(x, 3) for x in runs]},
            "points": summary["points"], "registered_views": summary["sfm"]["registered_views"]}


def run_stages(argv: list[str]) -> dict:
    """One breakdown in a fresh interpreter."""
    spawned = time.time()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", repr(spawned), "--", *argv], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"breakdown child failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def busy_note(load: list[float]) -> str:
    """Whether other work shared the CPU while timing (the 1-minute load average against the core count)."""
    cores = os.cpu_count() or 1
    if load and load[0] > 0.5 * cores:
        return f"machine busy (load average {load[0]} on {cores} cores, e.g. a training job): timings are noisy"
    return f"machine mostly idle (load average {load[0] if load else '?'} on {cores} cores)"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(stages_child(float(sys.argv[2]), sys.argv[4:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None, help="default: heads.DEFAULT_MODEL (mum-tiny if its weights are absent)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--inputs", default=str(DEMO))
    parser.add_argument("--readme-repeats", type=int, default=3, help="runs of the README's first command (0: skip)")
    args = parser.parse_args()

    run = start_run()
    sys.path.insert(0, str(ROOT))
    model, note = pick_model(args.model)
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        ply = Path(tmp) / "scene.ply"
        argv = [args.inputs, "-o", str(ply), "--max-frames", str(args.views), "--model", model,
                "--device", args.device, "--quiet", "--overwrite", "--fast"]
        totals, breakdowns = [], []
        for _ in range(args.repeats):
            totals.append(run_total(argv))
            breakdowns.append(run_stages(argv))
    for b in breakdowns:
        b["startup_plus_model_load"] = b["startup"] + b["imports"] + b["model_load"]
        b["sum_of_stages"] = sum(b[s] for s in STAGES)
    median = {key: statistics.median(b[key] for b in breakdowns) for key in (*STAGES, "startup_plus_model_load", "sum_of_stages")}
    total = statistics.median(totals)
    command = "mum-reconstruct " + " ".join(a if a != str(ply) else "scene.ply" for a in argv).replace(str(ROOT) + "/", "")

    names = {
        "startup": "interpreter start-up", "imports": "imports (torch, app, heads, cv2, plyfile)",
        "load_images": "read images", "model_load": "model load", "inference": "inference (preprocess + predict)",
        "export": "export (point cloud + PLY)", "sum_of_stages": "sum of stages (in-process)",
    }
    busy = busy_note(load_before)
    print(f"{command}\n{note}\n{busy}\n")
    print(f"{'stage':45} {'median s':>9} {'min s':>8} {'max s':>8}")
    for key in (*STAGES, "sum_of_stages"):
        values = [b[key] for b in breakdowns]
        print(f"{names[key]:45} {median[key]:9.2f} {min(values):8.2f} {max(values):8.2f}")
    print(f"{'total, real command in a subprocess':45} {total:9.2f} {min(totals):8.2f} {max(totals):8.2f}")
    readme = run_readme_command(model, args.device, args.readme_repeats) if args.readme_repeats else None
    if readme:
        print(f"{readme['command']}: {readme['seconds']['median']:.2f} s (median of {args.readme_repeats}), "
              f"{readme['points']:,} points, {readme['registered_views']}/{readme['views']} views registered")
    verdict = "within" if median["startup_plus_model_load"] < BUDGET_S else "OVER"
    print(f"\nstart-up + imports + model load: {median['startup_plus_model_load']:.2f} s ({verdict} the {BUDGET_S:.0f} s budget)")

    result = {
        "command": command,
        "model": model,
        "note": note,
        "views": args.views,
        "device": args.device,
        "conditions": busy,
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "total_subprocess_s": {"median": round(total, 4), "runs": [round(x, 4) for x in totals]},
        "breakdown_runs": breakdowns,
        "budget_s": BUDGET_S,
        "startup_plus_model_load_within_budget": median["startup_plus_model_load"] < BUDGET_S,
        "readme_command": readme,
    }
    out = write_results(RESULTS / f"cli_{args.device}.json", result, run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
