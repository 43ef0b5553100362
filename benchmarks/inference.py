"""End-to-end inference benchmark: time of one ``predict`` and peak memory vs number of frames.

Run: ``python benchmarks/inference.py``. Defaults per device (each preset at its own resolution unless
``--size`` is given, except mum-vitl16 at 512 px beside vggt-1b at 518 px):

* CPU: mum-tiny at 1–100 frames, mum-small at 1–10, and mum-vitl16 beside vggt-1b at 1–2 frames (one timed
  run each);
* CUDA: every preset at 1, 10, 50, 100, 200, 500, 1000 frames (until out of memory), once per attention
  backend (``--attention xformers sdpa``: xformers ``memory_efficient_attention`` vs PyTorch SDPA).
Every configuration runs in a fresh subprocess, so peak memory is its own: CUDA ``max_memory_allocated``,
or on CPU the peak resident set of the process minus the resident set after the model is built.
Times are the median of ``--repeats`` synchronised runs after one warm-up. After the table it prints the
speed-up of each MuM preset over ``vggt-1b`` at equal frame counts and the memory per extra frame (slope of a
least-squares line through peak memory vs frames, with its worst relative residual: near 0 = linear). Writes
``benchmarks/results/inference_<device>.json`` and draws ``benchmarks/results/inference_<device>.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

import mum  # noqa: E402,F401  (sets the CPU threading policy before torch starts)
from hardware import device_name  # noqa: E402
from provenance import start_run, write_results  # noqa: E402


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        import os

        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_one(preset: str, frames: int, size: int | None, device: str, repeats: int, chunk: int, compile_: bool) -> dict:
    """Measure one configuration in this process."""
    import torch

    import heads

    torch.manual_seed(0)
    model = heads.load_model(preset, device=device)
    size = size or model.cfg.image_size
    p = model.patch_size
    H = W = (size // p) * p
    if compile_:
        model = torch.compile(model)
    images = torch.rand(frames, 3, H, W, device=device)
    base = _current_rss_mib()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    model.predict(images, chunk_size=chunk)  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.predict(images, chunk_size=chunk)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mib()
    return {
        "preset": preset,
        "frames": frames,
        "size": [H, W],
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_mem_mib": peak,
        "model_mem_mib": base,
        "activation_mem_mib": peak - base,
        "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
        "threads": torch.get_num_threads(),
        "attention": __import__("mum.layers.attention", fromlist=["resolve_backend"]).resolve_backend(images),
        "compiled": compile_,
    }


CPU_PLAN = {"mum-tiny": [1, 2, 10, 25, 50, 100], "mum-small": [1, 2, 10], "mum-vitl16": [1, 2], "vggt-1b": [1, 2]}
BENCH_SIZE = {"mum-vitl16": 512}  # the comparison with vggt-1b (518 px) is at 512 px; other presets: their own size
CPU_SINGLE_RUN = {"mum-vitl16", "vggt-1b"}  # tens of seconds per frame on a CPU: one timed run after the warm-up
CUDA_FRAMES = [1, 10, 50, 100, 200, 500, 1000]
CUDA_PRESETS = ["mum-tiny", "mum-small", "mum-vitl16", "vggt-1b"]


def speedups(rows: list[dict], baseline: str = "vggt-1b") -> list[dict]:
    """Time of ``baseline`` over each other preset's time, at equal frame count and attention backend."""
    ok = [r for r in rows if "error" not in r]
    base = {(r["frames"], r["attention"]): r for r in ok if r["preset"] == baseline}
    out = []
    for r in ok:
        b = base.get((r["frames"], r["attention"]))
        if r["preset"] != baseline and b is not None:
            out.append({"preset": r["preset"], "frames": r["frames"], "attention": r["attention"],
                        "speedup": b["median_s"] / r["median_s"], "memory_ratio": b["peak_mem_mib"] / r["peak_mem_mib"]})
    return out


def memory_slopes(rows: list[dict]) -> list[dict]:
    """Per preset/backend with ≥ 3 frame counts: MiB per extra frame from a least-squares line through the
    activation memory, and the largest residual relative to the largest measurement (linearity check)."""
    import numpy as np

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault((r["preset"], r["attention"]), []).append(r)
    out = []
    for (preset, attn), rs in groups.items():
        if len(rs) < 3:
            continue
        x = np.array([r["frames"] for r in rs], float)
        y = np.array([r["activation_mem_mib"] for r in rs], float)
        slope, icpt = np.polyfit(x, y, 1)
        resid = np.abs(y - (slope * x + icpt)).max() / max(np.abs(y).max(), 1e-9)
        out.append({"preset": preset, "attention": attn, "mib_per_frame": float(slope), "max_rel_residual": float(resid),
                    "frames": [int(v) for v in x]})
    return out


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    backends = {r.get("attention") for r in rows if "error" not in r}
    for preset, attn in dict.fromkeys((r["preset"], r.get("attention")) for r in rows if "error" not in r):
        rs = sorted((r for r in rows if r["preset"] == preset and r.get("attention") == attn and "error" not in r),
                    key=lambda r: r["frames"])
        label = f"{preset} ({rs[0]['size'][0]} px)" + (f" [{attn}]" if len(backends) > 1 else "")
        ax_t.plot([r["frames"] for r in rs], [r["median_s"] for r in rs], "o-", label=label)
        ax_m.plot([r["frames"] for r in rs], [r["activation_mem_mib"] / 1024 for r in rs], "o-", label=label)
    ax_t.set(xlabel="frames", ylabel="time per forward pass (s)", xscale="log", yscale="log", title="time")
    ax_m.set(xlabel="frames", ylabel="peak memory above the weights (GiB)", title="memory")
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def measure(preset: str, n: int, backend: str, device: str, args: argparse.Namespace) -> dict:
    """One configuration in a fresh subprocess (its own peak memory); prints its line."""
    import os

    repeats = 1 if device == "cpu" and preset in CPU_SINGLE_RUN else args.repeats
    cmd = [sys.executable, __file__, "--one", "--presets", preset, "--frames", str(n), "--repeats", str(repeats),
           "--chunk", str(args.chunk), "--device", device]
    size = args.size or BENCH_SIZE.get(preset)
    if size:
        cmd += ["--size", str(size)]
    if args.compile:
        cmd.append("--compile")
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MUM_ATTENTION": backend})
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"{preset:10} {n:5d} frames [{backend}]: {err[:100]}")
        return {"preset": preset, "frames": n, "attention": backend, "error": err[:200]}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{preset:10} {n:5d} frames {row['size'][0]:4d} px [{row['attention']:8}] {row['median_s']:8.3f} s  "
        f"{row['frames'] / row['median_s']:7.1f} frames/s  peak {row['peak_mem_mib']:8.0f} MiB  "
        f"(+{row['activation_mem_mib']:.0f} above weights)", flush=True
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=None)
    parser.add_argument("--frames", nargs="+", type=int, default=None)
    parser.add_argument("--size", type=int, default=None,
                        help="square input side (default: each preset's own; mum-vitl16 at 512 beside vggt-1b at 518)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=8, help="frames per encoder/DPT chunk")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument("--attention", nargs="+", default=None,
                        help="attention backends to compare (default: xformers and sdpa on CUDA, auto on CPU)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.one:  # child process: one configuration, JSON on stdout
        row = run_one(args.presets[0], args.frames[0], args.size, device, args.repeats, args.chunk, args.compile)
        print(json.dumps(row))
        return
    run = start_run()
    if args.presets:
        plan = {p: args.frames or (CUDA_FRAMES if device == "cuda" else CPU_PLAN.get(p, [1, 2, 10])) for p in args.presets}
    elif device == "cuda":
        plan = {p: args.frames or CUDA_FRAMES for p in CUDA_PRESETS}
    else:
        plan = {p: args.frames or f for p, f in CPU_PLAN.items()}
    from mum.layers.attention import xformers_available

    backends = args.attention or (["xformers", "sdpa"] if device == "cuda" and xformers_available() else ["auto"])
    rows = []
    for backend in backends:
        for preset, frames in plan.items():
            for n in frames:
                row = measure(preset, n, backend, device, args)
                rows.append(row)
                if "error" in row and "out of memory" in row["error"].lower():
                    break  # larger frame counts will not fit either
    ups, slopes = speedups(rows), memory_slopes(rows)
    if ups:
        print("\nspeed-up over vggt-1b (same frames, same attention backend):")
        for u in ups:
            print(f"  {u['preset']:10} {u['frames']:5d} frames [{u['attention']}]  {u['speedup']:6.2f}x faster, "
                  f"{u['memory_ratio']:5.2f}x less peak memory")
    if slopes:
        print("\nmemory growth (least-squares line through activation memory vs frames):")
        for m in slopes:
            print(f"  {m['preset']:10} [{m['attention']}]  {m['mib_per_frame']:8.2f} MiB per frame, "
                  f"max residual {100 * m['max_rel_residual']:.1f} % of the largest (frames {m['frames']})")
    name = device_name(device)
    out = write_results(RESULTS / f"inference_{device}.json", {"device": name, "chunk": args.chunk, "rows": rows,
                                                                "speedup_over_vggt_1b": ups, "memory_slopes": slopes}, run)
    plot(rows, RESULTS / f"inference_{device}.png", f"predict() on {name}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
