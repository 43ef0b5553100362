"""Long inputs: ``mum-reconstruct`` on synthetic walkthroughs and orbits of 100, 300 and 1000 frames with exact
cameras, chunked (``--window``) against one pass where one fits.

Run: ``python benchmarks/long_video.py`` (``--quick``: 100 and 300 frames only; ``--frames 100 1000`` picks the
lengths; ``--window 32 --overlap 8`` the chunking).

Sequences come from the data engine (:mod:`mum.data.synthetic`): a room, walked through (``walk``) or swept
around from inside (``orbit``: a full turn over the sequence, so its end sees its start: a loop closure), at
``--width`` × ``--height`` px, rendered once into a cache folder as PNG files; the 1000-frame walk is also
encoded as an MPEG-4 video (``video``, ``mp4v``: lossy, as a phone's). Every run is the command itself (``python -m app.cli ... -o folder
--json``) in a fresh process, with the bundled model at ``--size`` px:

* ``fast`` / ``default``: ``--fast`` or the default path (per-chunk SfM), chunked with ``--window``/``--overlap``;
* ``single``: the same with every view in one pass (``--window`` = the number of frames), at 100 frames.

Figures per run: seconds (wall, whole command: decoding, model loading, exports included), peak RSS (the
command's maximum resident set size, from GNU ``time``), cameras in ``cameras.json``, pose AUC@30 over all view pairs, the
absolute trajectory error (RMSE of camera centres after a Sim(3) alignment to the ground truth, as a percentage
of the ground-truth centres' RMS spread about their mean: 100 % is what a trajectory collapsed to one point
scores; the path length would flatter a walk that turns back on itself), and the scale drift along the path (the Sim(3) scale to the ground truth
fitted on the last tenth of the path against the one fitted on the first tenth: |s_last / s_first − 1|). Prints a table, writes ``benchmarks/results/long_video_cpu.json``
(after every run) and plots the 1000-frame trajectories against the ground truth into
``docs/long_video_trajectory.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.provenance import finish_run, row_stamp, start_run, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PLOT = ROOT / "docs" / "long_video_trajectory.png"  # the README's picture, made with the default --out


def plot_path(out_json: Path) -> Path:
    """Where the trajectory plot goes: the README's picture for the default results file, else beside ``out_json``
    (a trial run must not replace the published picture)."""
    return PLOT if out_json.resolve() == (RESULTS / "long_video_cpu.json").resolve() else out_json.with_suffix(".png")
SEEDS = {"walk": 1_100_000_010, "orbit": 1_100_000_011}


def render(kind: str, frames: int, width: int, height: int, cache: Path) -> Path:
    """The sequence's frames as PNG files plus ``cameras.npz`` (ground truth), rendered once."""
    import cv2

    from mum.data.synthetic import SyntheticConfig, generate_scene

    folder = cache / f"{kind}_{frames}_{width}x{height}"
    if (folder / "cameras.npz").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SyntheticConfig(kinds=("room",), camera_paths=(kind,), overlap=(0.9, 0.95), fov_deg=(60.0, 70.0))
    scene = generate_scene(SEEDS[kind], num_views=frames, width=width, height=height, config=cfg)
    for i, image in enumerate(scene.images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    np.savez(folder / "cameras.npz", extrinsics=scene.extrinsics, intrinsics=scene.intrinsics)
    return folder


def encode_video(folder: Path) -> Path:
    import cv2

    video = folder.with_suffix(".mp4")
    if video.is_file():
        return video
    paths = sorted(folder.glob("*.png"))
    first = cv2.imread(str(paths[0]))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (first.shape[1], first.shape[0]))
    for p in paths:
        writer.write(cv2.imread(str(p)))
    writer.release()
    return video


def run_cli(inputs: Path, out: Path, args: list[str]) -> tuple[dict, float, float, int]:
    """The command in a fresh process: its JSON summary, wall seconds, peak RSS (MiB), exit status. The peak RSS
    is GNU time's (``/usr/bin/time -f %M``): a small process forks the command, so the figure is not inflated by
    a fork of this (torch-loaded) process, as ``os.wait4``'s would be."""
    rss_file = out.with_suffix(".rss")
    cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), sys.executable, "-m", "app.cli", str(inputs), "-o",
           str(out) + "/", "--json", "--overwrite", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, env=env, cwd=str(ROOT))
    seconds = time.perf_counter() - t0
    summary = json.loads(proc.stdout) if proc.returncode == 0 else {}
    rss = float(rss_file.read_text().split()[-1]) / 1024 if rss_file.is_file() else float("nan")
    return summary, seconds, rss, proc.returncode


def trajectory_metrics(cams: np.ndarray, gt: np.ndarray) -> dict:
    """AUC@30, ATE after Sim(3) alignment (percent of the ground truth's spread) and scale drift (percent)."""
    import torch

    from mum.geometry import camera_centers
    from heads.metrics import pose_auc, relative_pose_errors, umeyama_alignment

    rra, rta = relative_pose_errors(torch.from_numpy(cams[:, :3, :4]), torch.from_numpy(gt[:, :3, :4]))
    auc30 = 100 * float(pose_auc(rra, rta, 30))
    pc, gc = camera_centers(cams), camera_centers(gt)
    s, R, t = umeyama_alignment(torch.from_numpy(pc), torch.from_numpy(gc))
    aligned = (s * torch.from_numpy(pc) @ R.T + t).numpy()
    length = float(np.linalg.norm(np.diff(gc, axis=0), axis=1).sum())
    ate = float(np.sqrt(np.mean(np.sum((aligned - gc) ** 2, axis=1))))
    tenth = max(3, len(cams) // 10)
    first, last = (float(umeyama_alignment(torch.from_numpy(pc[part]), torch.from_numpy(gc[part]))[0])
                   for part in (slice(0, tenth), slice(len(cams) - tenth, len(cams))))
    drift = 100 * abs(last / first - 1) if first > 0 else float("nan")
    spread = float(np.sqrt(np.mean(np.sum((gc - gc.mean(0)) ** 2, axis=1))))  # what all-cameras-at-the-mean scores
    return {"auc30": round(auc30, 2), "ate_pct": round(100 * ate / spread, 2), "ate_m": round(ate, 4),
            "path_m": round(length, 2), "scale_drift_pct": round(drift, 1), "aligned_centres": aligned,
            "gt_centres": gc}


def load_cameras(out: Path, names: list[str]) -> np.ndarray:
    cams = {c["name"]: np.array(c["cam_from_world"], dtype=np.float64) for c in
            json.loads((out / "cameras.json").read_text())["images"]}
    return np.stack([cams[n] for n in names])


def plot(tracks: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({k[0] for k in tracks})
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 5.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        gt = None
        for (k, label), (aligned, gc, metrics) in sorted(tracks.items()):
            if k != kind:
                continue
            gt = gc
            ax.plot(aligned[:, 0], aligned[:, 1], lw=1.0, label=f"{label}: ATE {metrics['ate_pct']:.1f} %, "
                                                               f"AUC@30 {metrics['auc30']:.1f}")
        if gt is not None:
            ax.plot(gt[:, 0], gt[:, 1], "k--", lw=1.2, label="ground truth")
            ax.plot(gt[:1, 0], gt[:1, 1], "ko", ms=5)
        ax.set_title(f"{kind}, {len(gt) if gt is not None else 0} frames (top view, Sim(3)-aligned)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rescore(out_json: Path, cache: Path) -> None:
    """Metrics of the runs listed in ``out_json`` from their outputs under ``cache/runs``; plot the longest."""
    rescored_by = start_run()
    results = json.loads(out_json.read_text())
    tracks = {}
    longest = max(r["frames"] for r in results["runs"])
    w, h = results["settings"]["width"], results["settings"]["height"]
    for row in results["runs"]:
        if row["exit"] != 0:
            continue
        kind, n = row["sequence"].split("-")[0], row["frames"]
        folder = cache / f"{kind}_{n}_{w}x{h}"
        gt = np.load(folder / "cameras.npz")["extrinsics"]
        names = ([f"frame_{i:06d}.png" for i in range(n)] if row["input"] == "video"
                 else [p.name for p in sorted(folder.glob("*.png"))])
        cams = load_cameras(cache / "runs" / f"{kind}_{n}_{row['input']}_{row['mode']}_{row['how']}", names)
        metrics = trajectory_metrics(cams, gt)
        aligned, gc = metrics.pop("aligned_centres"), metrics.pop("gt_centres")
        row.update(metrics)
        if n == longest and row["input"] == "images":
            tracks[(kind, f"{row['mode']} {row['how']}")] = (aligned, gc, metrics)
    results["rescored_by"] = finish_run(rescored_by)  # the runs' own "run" block stays: they made the outputs
    out_json.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results["runs"]))
    if tracks:
        plot(tracks, plot_path(out_json))
        print(f"wrote {plot_path(out_json)}")


def table(rows: list[dict]) -> str:
    head = f"{'sequence':14s} {'input':6s} {'mode':8s} {'chunks':>6s} {'s':>7s} {'RSS MiB':>8s} {'cams':>9s} " \
           f"{'AUC@30':>7s} {'ATE %':>6s} {'drift %':>8s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['sequence']:14s} {r['input']:6s} {r['mode']:8s} {r['chunks']:>6} {r['seconds']:7.1f} "
                     f"{r['peak_rss_mib']:8.0f} {r['cameras']:>4d}/{r['frames']:<4d} {r.get('auc30', float('nan')):7.1f} "
                     f"{r.get('ate_pct', float('nan')):6.1f} {r.get('scale_drift_pct', float('nan')):8.1f}")
    return "\n".join(lines)


def markdown_table(results: dict) -> str:
    """The README's table of ``results`` (a results file of this benchmark): one pass before chunked, images
    before video, the default path before ``--fast``."""
    order = lambda r: (r["frames"], r["sequence"], r["input"] == "video", r["mode"] != "default", r["how"] != "single")  # noqa: E731
    lines = ["| sequence | input | mode | pass | chunks | s | peak RSS MiB | cameras | AUC@30 | ATE % | scale drift % |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results["runs"], key=order):
        drift = r.get("scale_drift_pct", float("nan"))
        lines.append(f"| {r['sequence']} | {r['input']} | {'default' if r['mode'] == 'default' else '`--fast`'} | "
                     f"{'one pass' if r['how'] == 'single' else 'chunked'} | {r['chunks']} | {r['seconds']:.0f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['cameras']}/{r['frames']} | {r.get('auc30', float('nan')):.1f} | "
                     f"{r.get('ate_pct', float('nan')):.0f} | {'> 10⁴' if drift > 1e4 else f'{drift:.0f}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 300 frames only")
    parser.add_argument("--frames", type=int, nargs="+", default=None, help="sequence lengths (default 100 300 1000)")
    parser.add_argument("--kinds", nargs="+", default=["walk", "orbit"], choices=sorted(SEEDS))
    parser.add_argument("--modes", nargs="+", default=["fast", "default"], choices=("fast", "default"))
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--size", type=int, default=112, help="network input size (px, longer side)")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--overlap", type=int, default=8)
    parser.add_argument("--single-up-to", type=int, default=100, help="also run one pass up to this many frames")
    parser.add_argument("--no-video", action="store_true")
    parser.add_argument("--video-modes", nargs="+", default=["fast"], choices=("fast", "default"),
                        help="modes run on the encoded video (default: fast)")
    parser.add_argument("--cache", default="/tmp/mum-long-video-cache")
    parser.add_argument("--out", default=str(RESULTS / "long_video_cpu.json"))
    parser.add_argument("--rescore", action="store_true",
                        help="no runs: score again the outputs of the runs in --out (kept under --cache/runs) and plot")
    parser.add_argument("--update", action="store_true",
                        help="replace only these runs' rows in --out (same sequence, input, mode, one pass or chunked), "
                             "keep the others; no plot")
    args = parser.parse_args()
    run = start_run()
    frames = args.frames or ([100, 300] if args.quick else [100, 300, 1000])
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    common = ["--size", str(args.size), "--max-points", "500000"]
    plan = []
    for n in frames:
        for kind in args.kinds:
            for mode in args.modes:
                plan.append((kind, n, "images", mode, "chunked"))
                if n <= args.single_up_to:
                    plan.append((kind, n, "images", mode, "single"))
    if not args.no_video:
        longest = max(frames)
        plan += [("walk", longest, "video", mode, "chunked") for mode in args.video_modes]
    results = {"settings": {"width": args.width, "height": args.height, "size": args.size, "window": args.window,
                            "overlap": args.overlap, "model": "mum-default (bundled)"},
               "runs": []}
    tracks = {}
    out_json = Path(args.out)
    if args.rescore:
        rescore(out_json, cache)
        return
    kept = []
    if args.update and out_json.is_file():
        kept = json.loads(out_json.read_text())["runs"]
    key = lambda r: (r["sequence"], r["input"], r["mode"], r["how"])  # noqa: E731
    for kind, n, source, mode, how in plan:
        folder = render(kind, n, args.width, args.height, cache)
        gt = np.load(folder / "cameras.npz")["extrinsics"]
        inputs = encode_video(folder) if source == "video" else folder
        names = ([f"frame_{i:06d}.png" for i in range(n)] if source == "video"
                 else [p.name for p in sorted(folder.glob("*.png"))])
        window = n if how == "single" else args.window
        flags = [*common, "--window", str(window), "--overlap", str(args.overlap)] + (["--fast"] if mode == "fast" else [])
        out = cache / "runs" / f"{kind}_{n}_{source}_{mode}_{how}"
        out.parent.mkdir(exist_ok=True)
        print(f"{kind} {n} frames ({source}), {mode}, {how} ...", flush=True)
        summary, seconds, rss, code = run_cli(inputs, out, flags)
        row = {"sequence": f"{kind}-{n}", "frames": n, "input": source, "mode": mode, "how": how,
               "chunks": summary.get("chunks", {}).get("count", 1) if summary else 0,
               "seconds": round(seconds, 1), "peak_rss_mib": round(rss, 1), "exit": code, "cameras": 0,
               **row_stamp(run)}
        if code == 0:
            cams = load_cameras(out, names)
            metrics = trajectory_metrics(cams, gt)
            aligned, gc = metrics.pop("aligned_centres"), metrics.pop("gt_centres")
            row.update(metrics, cameras=int(np.isfinite(cams).all((1, 2)).sum()), points=summary.get("points"),
                       loops=[lp for lp in summary.get("chunks", {}).get("loops", [])],
                       sfm_registered=summary.get("sfm", {}).get("registered_views"))
            if n == max(frames) and source == "images":
                tracks[(kind, f"{mode} {how}")] = (aligned, gc, metrics)
        results["runs"].append(row)
        print(table([row]).splitlines()[-1], flush=True)
        if args.update:
            done = {key(r) for r in results["runs"]}
            merged = dict(results, runs=[r for r in kept if key(r) not in done] + results["runs"])
            merged["runs"].sort(key=lambda r: (r["frames"], r["sequence"], r["input"], r["mode"], r["how"]))
            write_results(out_json, merged, run)  # "run" is this run's; each row's commit says which run made it
        else:
            write_results(out_json, results, run)
    print(table(results["runs"]))
    if tracks and not args.update:
        plot(tracks, plot_path(out_json))
        print(f"wrote {plot_path(out_json)}")
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
