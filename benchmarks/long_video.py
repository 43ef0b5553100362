"""Long inputs: ``mum-reconstruct`` on real sequences with ground truth and on synthetic walks of 100 to 1000
frames, beside plain pycolmap with sequential matching on the same frames.

Run:

* real sequences: ``python benchmarks/long_video.py --real /path/to/kitti07_160 demo/tum_freiburg`` (a folder
  with ``images/`` and ``cameras_reference.json``; the path is an argument: data with a non-commercial licence
  stays where it is) → ``benchmarks/results/long_video_real_cpu.json`` and ``docs/long_video_real.png``;
* synthetic walks: ``python benchmarks/long_video.py --frames 100 1000 --width 640 --height 480`` →
  ``benchmarks/results/long_video_cpu.json`` and ``docs/long_video_trajectory.png``.

Methods (``--methods``), each the whole command in a fresh process:

* ``default``: ``python -m app.cli INPUT -o folder --json`` exactly as a user runs it (an ordered input of 31
  frames or more whose frames follow each other closely goes the sequence path: keyframes, PnP, one bundle
  adjustment; a shorter one, or frames far apart, the unordered default path);
* ``sequence``: the same with ``--sequence on`` (the sequence path whatever the length);
* ``previous``: the same with ``--sequence off`` (the path before it: one network pass, or overlapping chunks
  joined by similarities);
* ``fast``: ``--fast`` (the network alone);
* ``plain``: pycolmap with its defaults as a user of COLMAP's sequential pipeline runs it: SIFT on the image
  files (one camera), ``match_sequential`` with its default overlap (10, quadratic) and loop detection off (it
  needs a vocabulary-tree file, which nothing here ships), incremental mapping, seeded (RANSAC and mapper
  seed 0); the largest model; frames it does not register have no camera.

Synthetic sequences come from the data engine (:mod:`mum.data.synthetic`, non-periodic textures): a room walked
through (``walk``; it turns around at the room's bounds along an arc, as a filmed walk does, unless
``--walk-turns on_the_spot``: from one frame to the next, a cut) or swept around from inside (``orbit``), at
``--width`` × ``--height`` px, rendered once into a
cache folder as numbered PNG files (an ordered input); ``--video`` also encodes the longest as an MPEG-4 video
(``mp4v``: lossy, as a phone's).

Figures per run: wall seconds and CPU seconds (user + system, from GNU ``time``: on a shared machine the CPU
time says more than the wall time), the same to the cameras (``camera_seconds``, ``camera_cpu_seconds``: the
whole command's less its dense stage and its writing of the outputs, from the ``stage_seconds`` of its
``--json`` summary; start-up, decoding, the network and every camera stage stay in; plain pycolmap gives cameras
only, so its figures are its whole run's), peak RSS (GNU ``time``), cameras, and the absolute trajectory error: RMSE of
the camera centres after a Sim(3) alignment to the ground truth (over the frames with a camera), in metres or
scene units and as a percentage of the path's extent (the largest distance between two ground-truth centres)
and of its length (the sum of the steps); AUC@30 over all view pairs; the scale drift along the path (the
Sim(3) scale fitted on the last tenth of the path against the first tenth's: |s_last / s_first − 1|). The
machine's load average is in the results' ``run`` block; every row has its own (``load_average``) too.
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

from benchmarks.provenance import row_stamp, start_run, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PLOT = ROOT / "docs" / "long_video_trajectory.png"  # the README's pictures, made with the default --out
REAL_PLOT = ROOT / "docs" / "long_video_real.png"
SYNTHETIC_OUT = RESULTS / "long_video_cpu.json"
REAL_OUT = RESULTS / "long_video_real_cpu.json"
SEEDS = {"walk": 1_100_000_010, "orbit": 1_100_000_011}
METHODS = ("default", "sequence", "previous", "fast", "plain")


def plot_path(out_json: Path) -> Path:
    """Where the trajectory plot goes: the README's picture for a default results file, else beside ``out_json``
    (a trial run must not replace the published picture)."""
    for default, picture in ((SYNTHETIC_OUT, PLOT), (REAL_OUT, REAL_PLOT)):
        if out_json.resolve() == default.resolve():
            return picture
    return out_json.with_suffix(".png")


def render(kind: str, frames: int, width: int, height: int, cache: Path, walk_turns: str = "arc") -> Path:
    """The sequence's frames as PNG files plus ``cameras.npz`` (ground truth), rendered once; a walk turns
    around at the room's bounds as ``walk_turns`` says (:class:`mum.data.synthetic.SyntheticConfig`)."""
    import cv2

    from mum.data.render import render_views
    from mum.data.synthetic import SyntheticConfig, build_world, plan_cameras

    folder = cache / (f"{kind}_{frames}_{width}x{height}" + ("" if walk_turns == "on_the_spot" else f"_{walk_turns}"))
    if (folder / "cameras.npz").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SyntheticConfig(kinds=("room",), camera_paths=(kind,), overlap=(0.9, 0.95), fov_deg=(60.0, 70.0),
                          walk_turns=walk_turns)
    # generate_scene's steps, the views rendered 50 at a time (1000 views at once need tens of GB)
    world = build_world(SEEDS[kind], cfg)
    plan = plan_cameras(world, SEEDS[kind], frames, width, height, cfg)
    for start in range(0, frames, 50):
        block = slice(start, min(frames, start + 50))
        out = render_views(world, plan.extrinsics[block], plan.intrinsics[block], width, height, nthreads=cfg.nthreads)
        for i, image in enumerate(out["images"], start):
            cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    np.savez(folder / "cameras.npz", extrinsics=plan.extrinsics, intrinsics=plan.intrinsics)
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


def _timed(cmd: list[str], out: Path) -> tuple[str, float, float, float, int]:
    """``cmd`` in a fresh process under GNU ``time`` (a small process forks it, so the figures are not inflated
    by a fork of this one): its stdout, wall seconds, peak RSS (MiB), CPU seconds (user + system), exit status.
    Its stderr goes to ``out.log``."""
    stats = out.with_suffix(".time")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(stats), *cmd], stdout=subprocess.PIPE,
                              stderr=log, env=env, cwd=str(ROOT), text=True)
    seconds = time.perf_counter() - t0
    rss = cpu = float("nan")
    if stats.is_file():
        fields = stats.read_text().split()[-3:]
        rss, cpu = float(fields[0]) / 1024, float(fields[1]) + float(fields[2])
    return proc.stdout, seconds, rss, cpu, proc.returncode


def run_cli(inputs: Path, out: Path, args: list[str]) -> tuple[dict, float, float, float, int]:
    """``mum-reconstruct INPUTS -o OUT/ --json ARGS``: its JSON summary, wall s, peak RSS MiB, CPU s, exit status."""
    stdout, seconds, rss, cpu, code = _timed([sys.executable, "-m", "app.cli", str(inputs), "-o", str(out) + "/",
                                              "--json", "--overwrite", *args], out)
    return (json.loads(stdout) if code == 0 else {}), seconds, rss, cpu, code


def run_plain(images: Path, names: list[str], out: Path) -> tuple[dict, float, float, float, int]:
    """Plain pycolmap, sequential (see the module docstring), in a fresh process: summary, wall s, RSS, CPU s."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "names.json").write_text(json.dumps(names))
    stdout, seconds, rss, cpu, code = _timed([sys.executable, str(Path(__file__).resolve()), "--plain-worker",
                                              str(images), str(out)], out)
    return (json.loads(stdout) if code == 0 else {}), seconds, rss, cpu, code


def plain_worker(images: Path, out: Path) -> None:
    """What ``run_plain`` runs: pycolmap's sequential pipeline on ``images`` (the names in ``out/names.json``);
    writes ``out/cameras.json`` (registered frames) and prints a summary."""
    import tempfile

    import pycolmap

    names = json.loads((out / "names.json").read_text())
    pycolmap.logging.minloglevel = 2
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="plain-colmap-") as tmp:
        tmp = Path(tmp)
        database = tmp / "database.db"
        t0 = time.perf_counter()
        pycolmap.extract_features(database, images, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                                  device=pycolmap.Device.cpu)
        seconds["features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        verification = pycolmap.TwoViewGeometryOptions()
        verification.ransac.random_seed = 0
        pairing = pycolmap.SequentialPairingOptions()  # overlap 10, quadratic; loop detection needs a vocab tree
        pycolmap.match_sequential(database, pairing_options=pairing, verification_options=verification,
                                  device=pycolmap.Device.cpu)
        seconds["matching"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        (tmp / "sparse").mkdir()
        mapping = pycolmap.IncrementalPipelineOptions()
        mapping.random_seed = 0
        models = pycolmap.incremental_mapping(database, images, tmp / "sparse", mapping)
        seconds["mapping"] = time.perf_counter() - t0
        best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
        cams = []
        if best is not None:
            for image in best.images.values():
                if image.has_pose:
                    cams.append({"name": image.name,
                                 "cam_from_world": np.vstack([image.cam_from_world().matrix(), [0, 0, 0, 1]]).tolist()})
    (out / "cameras.json").write_text(json.dumps({"images": cams}))
    print(json.dumps({"registered": len(cams), "models": len(models), "loop_detection": False,
                      "overlap": pairing.overlap, "quadratic_overlap": pairing.quadratic_overlap,
                      "seconds": {k: round(v, 2) for k, v in seconds.items()}}))


def trajectory_metrics(cams: np.ndarray, gt: np.ndarray) -> dict:
    """ATE after a Sim(3) alignment (over the frames with a camera: metres / scene units, % of the path's extent,
    length and RMS spread), AUC@30 over all pairs (frames without a camera count as failures) and the scale drift
    (percent)."""
    import torch

    from heads.metrics import pose_auc, relative_pose_errors, umeyama_alignment
    from mum.geometry import camera_centers

    have = np.isfinite(cams).all(axis=(1, 2))
    rra, rta = relative_pose_errors(torch.from_numpy(np.nan_to_num(cams[:, :3, :4], nan=0.0)),
                                    torch.from_numpy(gt[:, :3, :4]))
    pair_ok = torch.from_numpy(have[:, None] & have[None, :])
    iu = torch.triu_indices(len(cams), len(cams), 1)
    bad = ~pair_ok[iu[0], iu[1]]
    rra, rta = rra.clone(), rta.clone()
    rra[bad], rta[bad] = 180.0, 180.0
    auc30 = 100 * float(pose_auc(rra, rta, 30))
    gc_all = camera_centers(gt)
    pc, gc = camera_centers(cams[have]), gc_all[have]
    s, R, t = umeyama_alignment(torch.from_numpy(pc), torch.from_numpy(gc))
    aligned = (s * torch.from_numpy(pc) @ R.T + t).numpy()
    ate = float(np.sqrt(np.mean(np.sum((aligned - gc) ** 2, axis=1))))
    length = float(np.linalg.norm(np.diff(gc_all, axis=0), axis=1).sum())
    extent = float(max(np.linalg.norm(gc_all - c, axis=1).max() for c in gc_all))
    spread = float(np.sqrt(np.mean(np.sum((gc_all - gc_all.mean(0)) ** 2, axis=1))))
    tenth = max(3, int(have.sum()) // 10)
    first, last = (float(umeyama_alignment(torch.from_numpy(pc[part]), torch.from_numpy(gc[part]))[0])
                   for part in (slice(0, tenth), slice(len(pc) - tenth, len(pc))))
    drift = 100 * abs(last / first - 1) if first > 0 else float("nan")
    return {"auc30": round(auc30, 2), "ate": round(ate, 4), "ate_pct_extent": round(100 * ate / extent, 3),
            "ate_pct_length": round(100 * ate / length, 3), "ate_pct_spread": round(100 * ate / spread, 2),
            "extent": round(extent, 3), "length": round(length, 3), "scale_drift_pct": round(drift, 1),
            "aligned_centres": aligned, "gt_centres": gc_all, "have": have}


def load_cameras(out: Path, names: list[str]) -> np.ndarray:
    """``[S, 4, 4]`` cameras of ``names`` from ``out/cameras.json`` (NaN for frames it has none for)."""
    cams = {c["name"]: np.array(c["cam_from_world"], dtype=np.float64) for c in
            json.loads((out / "cameras.json").read_text())["images"]}
    return np.stack([cams.get(n, np.full((4, 4), np.nan)) for n in names])


def _top_view(gt: np.ndarray) -> tuple[int, int]:
    """The two axes along which the ground-truth centres spread most (a top view of a drive or a walk)."""
    order = np.argsort(-np.ptp(gt, axis=0))
    return int(min(order[:2])), int(max(order[:2]))


def plot_tracks(panels: dict, path: Path) -> None:
    """One column per sequence: the ground truth and each method's Sim(3)-aligned camera centres (top view),
    and below it each frame's camera-centre error after that alignment (what the top view is too coarse to show)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(panels), figsize=(6.0 * len(panels), 8.0), squeeze=False,
                             gridspec_kw={"height_ratios": [5.2, 2.4]})
    styles = {"plain pycolmap": dict(color="tab:orange", lw=1.2), "default": dict(color="tab:blue", lw=1.2),
              "--sequence off": dict(color="tab:green", lw=1.0), "--fast": dict(color="tab:gray", lw=0.8),
              "--sequence on": dict(color="tab:purple", lw=1.0)}
    for ax, err_ax, (title, (gt, tracks)) in zip(axes[0], axes[1], panels.items()):
        for label, (aligned, metrics) in tracks.items():
            frames = np.flatnonzero(metrics["have"])
            err_ax.plot(frames, np.linalg.norm(aligned - gt[frames], axis=1), label=label,
                        **styles.get(label.split(" (")[0], {}))
        err_ax.set_xlabel("frame")
        err_ax.set_ylabel("centre error after Sim(3) (m or scene units)")
        err_ax.set_xlim(0, len(gt) - 1)
        err_ax.set_ylim(bottom=0)
        err_ax.legend(fontsize=7, loc="best")
        x, y = _top_view(gt)
        ax.plot(gt[:, x], gt[:, y], "k--", lw=1.4, label="ground truth")
        ax.plot(gt[:1, x], gt[:1, y], "ko", ms=5)
        for label, (aligned, metrics) in tracks.items():
            ax.plot(aligned[:, x], aligned[:, y], label=f"{label}: ATE {metrics['ate_pct_extent']:.2f} % of extent, "
                    f"{metrics['cameras']}/{len(gt)} cameras", **styles.get(label.split(" (")[0], {}))
        ax.set_title(f"{title} (top view, Sim(3)-aligned)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("xyz"[x])
        ax.set_ylabel("xyz"[y])
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(method: str, source: str = "images") -> str:
    return {"default": "default", "sequence": "--sequence on", "previous": "--sequence off", "fast": "--fast",
            "plain": "plain pycolmap"}[method] \
        + ("" if source == "images" else f" ({source})")


def table(rows: list[dict]) -> str:
    head = (f"{'sequence':16s} {'input':6s} {'method':16s} {'wall s':>7s} {'CPU s':>7s} {'cam s':>6s} {'cam CPU':>7s} "
            f"{'RSS MiB':>8s} {'cams':>9s} "
            f"{'ATE':>8s} {'% ext':>6s} {'% len':>6s} {'AUC@30':>7s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['sequence']:16s} {r['input']:6s} {r['method']:16s} {r['seconds']:7.1f} {r['cpu_seconds']:7.1f} "
                     f"{r.get('camera_seconds', float('nan')):6.1f} {r.get('camera_cpu_seconds', float('nan')):7.1f} "
                     f"{r['peak_rss_mib']:8.0f} {r['cameras']:>4d}/{r['frames']:<4d} {r.get('ate', float('nan')):8.3f} "
                     f"{r.get('ate_pct_extent', float('nan')):6.2f} {r.get('ate_pct_length', float('nan')):6.2f} "
                     f"{r.get('auc30', float('nan')):7.1f}")
    return "\n".join(lines)


def synthetic_table(results: dict) -> str:
    """The README's table of the synthetic sequences (``long_video_cpu.json``): :func:`markdown_table` with its
    own first column's name (the claims check finds each table by its header)."""
    return markdown_table(results, first_column="synthetic sequence")


def short_table(results: dict) -> str:
    """The README's table of the short real sequence (``long_video_tum_cpu.json``): :func:`markdown_table` with its
    own first column's name."""
    return markdown_table(results, first_column="short sequence")


def markdown_table(results: dict, first_column: str = "sequence") -> str:
    """The README's long-video table of ``results`` (a results file of this benchmark)."""
    method_order = {m: k for k, m in enumerate(("plain", "default", "sequence", "previous", "fast"))}
    order = lambda r: (r["frames"], r["sequence"], r["input"] == "video", method_order[r["method"]])  # noqa: E731
    timed = any("camera_seconds" in r for r in results["runs"])  # the time to the cameras: results since 2026-12-06
    lines = [f"| {first_column} | frames | input | method | wall s | CPU s | "
             + ("wall s to cameras | CPU s to cameras | " if timed else "")
             + "peak RSS MiB | cameras | ATE % of extent | ATE % of length | AUC@30 |",
             "|---" * (13 if timed else 11) + "|"]
    def placed(r: dict) -> str:  # cameras that neither SfM nor PnP gave (the network's, placed by its window)
        n = (r.get("sequence_summary") or {}).get("network_placed", 0)
        return f" ({n} by the network)" if n else ""

    for r in sorted(results["runs"], key=order):
        method = {"plain": "plain pycolmap, sequential", "default": "**default**", "sequence": "`--sequence on`",
                  "previous": "`--sequence off`",
                  "fast": "`--fast`"}[r["method"]]
        ok = r["exit"] == 0
        to_cameras = "".join(f"{r[k]:.1f} | " if k in r else "— | " for k in ("camera_seconds", "camera_cpu_seconds")
                             if timed)
        lines.append(f"| {r['sequence']} | {r['frames']} | {r['input']} | {method} | {r['seconds']:.0f} | "
                     f"{r['cpu_seconds']:.0f} | {to_cameras}{r['peak_rss_mib']:.0f} | {r['cameras']}/{r['frames']}{placed(r)} | "
                     + (f"{r['ate_pct_extent']:.2f} | {r['ate_pct_length']:.2f} | {r['auc30']:.1f} |" if ok and r['cameras'] >= 3
                        else "— | — | — |"))
    return "\n".join(lines)


def real_sequence(path: Path) -> tuple[Path, list[str], np.ndarray]:
    """A real sequence folder: its ``images/`` folder, the frame names in order (sorted, as the command line
    orders files) and their reference camera-from-world ``[S, 4, 4]`` (``cameras_reference.json``, either
    layout the cameras reader takes)."""
    from mum.data.readers.common import load_cameras_file

    reference = load_cameras_file(path / "cameras_reference.json")
    names = sorted(reference)
    gt = np.stack([reference[n]["cam_from_world"] for n in names]).astype(np.float64)
    return path / "images", names, gt


def measure(method: str, inputs: Path, names: list[str], gt: np.ndarray, out: Path, flags: list[str], run: dict,
            **row) -> tuple[dict, tuple | None]:
    """One run of ``method`` and its row (figures as in the module docstring) and track (for the plot)."""
    from benchmarks.provenance import load_average

    print(f"{row['sequence']} ({row['input']}): {_label(method)} ...", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    load = load_average()
    if method == "plain":
        summary, seconds, rss, cpu, code = run_plain(inputs, names, out)
    else:
        extra = {"default": [], "sequence": ["--sequence", "on"], "previous": ["--sequence", "off"],
                 "fast": ["--fast"]}[method]
        summary, seconds, rss, cpu, code = run_cli(inputs, out, [*flags, *extra])
    row = {**row, "frames": len(names), "method": method, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
           "peak_rss_mib": round(rss, 1), "exit": code, "cameras": 0, "load_average": load, **row_stamp(run)}
    track = None
    if code == 0:
        cams = load_cameras(out, names)
        metrics = trajectory_metrics(cams, gt)
        aligned, have = metrics.pop("aligned_centres"), metrics.pop("have")
        metrics.pop("gt_centres")
        row.update(metrics, cameras=int(have.sum()))
        if method == "plain":
            row.update(plain=summary, camera_seconds=row["seconds"], camera_cpu_seconds=row["cpu_seconds"])
        else:
            row.update(points=summary.get("points"), sfm=summary.get("sfm"), sequence_summary=summary.get("sequence"),
                       chunks=summary.get("chunks", {}).get("count", 1), stage_seconds=summary.get("stage_seconds"),
                       **camera_seconds(row["seconds"], row["cpu_seconds"], summary.get("stage_seconds")))
        track = (aligned, {**metrics, "cameras": int(have.sum()), "have": have})
    print(table([row]).splitlines()[-1], flush=True)
    return row, track


def camera_seconds(wall: float, cpu: float, stages: dict | None) -> dict:
    """The command's wall and CPU seconds to its cameras: ``wall`` and ``cpu`` (the whole process's) less the
    dense stage and the export of ``stages`` (the ``stage_seconds`` of its ``--json`` summary); ``{}`` without
    them (a results file made before the summary had them)."""
    if not stages:
        return {}
    after = {kind: stages[kind].get("dense", 0.0) + stages[kind].get("export", 0.0) for kind in ("wall", "cpu")}
    return {"camera_seconds": round(wall - after["wall"], 1), "camera_cpu_seconds": round(cpu - after["cpu"], 1)}


def _real_run_folder(cache: Path, label: str, method: str) -> Path:
    return cache / "runs" / f"real_{label}_{method}"


def real_panels(folders: list[str], results: dict, cache: Path) -> dict:
    """The plot's panels of the real sequences: each successful run of ``results`` read back from its output
    folder under ``cache`` (its ``cameras.json``), Sim(3)-aligned to the reference."""
    panels = {}
    for folder in map(Path, folders):
        _, names, gt = real_sequence(folder)
        tracks = {}
        for row in results["runs"]:
            if row["sequence"] == folder.name and row["exit"] == 0:
                cams = load_cameras(_real_run_folder(cache, folder.name, row["method"]), names)
                metrics = trajectory_metrics(cams, gt)
                tracks[_label(row["method"])] = (metrics["aligned_centres"],
                                                 {**metrics, "cameras": int(metrics["have"].sum())})
        panels[f"{folder.name}, {len(names)} frames"] = (trajectory_metrics(gt, gt)["gt_centres"], tracks)
    return panels


def main_real(args, run: dict) -> None:
    out_json = Path(args.out or REAL_OUT)
    cache = Path(args.cache)
    if args.plot_only:  # the picture again from the results file and the runs' outputs still in the cache
        plot_tracks(real_panels(args.real, json.loads(out_json.read_text()), cache), plot_path(out_json))
        print(f"wrote {plot_path(out_json)}")
        return
    results = {"settings": {"methods": args.methods, "model": "mum-default (bundled)"}, "runs": []}
    for folder in map(Path, args.real):
        images, names, gt = real_sequence(folder)
        for method in args.methods:
            row, _ = measure(method, images, names, gt, _real_run_folder(cache, folder.name, method), [], run,
                             sequence=folder.name, input="images")
            results["runs"].append(row)
            write_results(out_json, results, run)
    print(table(results["runs"]))
    plot_tracks(real_panels(args.real, results, cache), plot_path(out_json))
    print(f"wrote {out_json} and {plot_path(out_json)}")


def main_synthetic(args, run: dict) -> None:
    out_json = Path(args.out or SYNTHETIC_OUT)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    flags = (["--max-points", "500000"] + (["--size", str(args.size)] if args.size else [])
             + (["--window", str(args.window)] if args.window else []))
    results = {"settings": {"width": args.width, "height": args.height, "size": args.size, "window": args.window,
                            "methods": args.methods, "walk_turns": args.walk_turns,
                            "plain_up_to": args.plain_up_to, "model": "mum-default (bundled)"}, "runs": []}
    panels = {}
    for n in args.frames:
        for kind in args.kinds:
            folder = render(kind, n, args.width, args.height, cache, args.walk_turns)
            gt = np.load(folder / "cameras.npz")["extrinsics"]
            names = [p.name for p in sorted(folder.glob("*.png"))]
            tracks = {}
            for method in args.methods:
                if method == "plain" and n > args.plain_up_to:
                    continue
                out = cache / "runs" / f"{folder.name}_images_{method}"
                row, track = measure(method, folder, names, gt, out, flags, run, sequence=f"{kind}-{n}", input="images")
                results["runs"].append(row)
                if track is not None:
                    tracks[_label(method)] = track
                write_results(out_json, results, run)
            if args.video and n == max(args.frames):
                video = encode_video(folder)
                video_names = [f"frame_{i:06d}.png" for i in range(n)]
                out = cache / "runs" / f"{folder.name}_video_default"
                row, track = measure("default", video, video_names, gt, out, flags, run, sequence=f"{kind}-{n}",
                                     input="video")
                results["runs"].append(row)
                write_results(out_json, results, run)
            if n == max(args.frames):
                panels[f"{kind}, {n} frames"] = (trajectory_metrics(gt, gt)["gt_centres"], tracks)
    print(table(results["runs"]))
    plot_tracks(panels, plot_path(out_json))
    print(f"wrote {out_json} and {plot_path(out_json)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", nargs="+", metavar="FOLDER",
                        help="real sequences (a folder with images/ and cameras_reference.json) instead of synthetic ones")
    parser.add_argument("--methods", nargs="+", default=["plain", "default"], choices=METHODS)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000], help="synthetic sequence lengths")
    parser.add_argument("--kinds", nargs="+", default=["walk"], choices=sorted(SEEDS))
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--size", type=int, default=None, help="network input size (px, longer side; default the model's)")
    parser.add_argument("--window", type=int, default=None,
                        help="synthetic sequences: views per network pass (the command's --window; default its own)")
    parser.add_argument("--walk-turns", default="arc", choices=("arc", "on_the_spot"),
                        help="how the walk turns around at the room's bounds: along an arc, as a filmed walk does "
                             "(default), or on the spot between two frames (a cut; the walks measured before "
                             "2026-12-06's results)")
    parser.add_argument("--plain-up-to", type=int, default=300, help="run plain pycolmap up to this many frames")
    parser.add_argument("--video", action="store_true", help="also the longest synthetic sequence as an MPEG-4 video")
    parser.add_argument("--cache", default="/tmp/mum-long-video-cache")
    parser.add_argument("--out", default=None, help="results file (default: long_video_real_cpu.json / long_video_cpu.json)")
    parser.add_argument("--plot-only", action="store_true",
                        help="with --real: redraw the plot from the results file and the runs' outputs in --cache")
    parser.add_argument("--plain-worker", nargs=2, metavar=("IMAGES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        plain_worker(Path(args.plain_worker[0]), Path(args.plain_worker[1]))
        return
    run = start_run()
    if args.real:
        main_real(args, run)
    else:
        main_synthetic(args, run)


if __name__ == "__main__":
    main()
