"""End-to-end inference benchmark: time of one ``predict`` and peak memory vs number of frames.

Run: ``python benchmarks/inference.py`` (CPU defaults: mum-tiny and mum-small at 224 px, 1–100 frames)
or e.g. ``python benchmarks/inference.py --presets mum-vitl16 vggt-1b --frames 1 10 50 100 200 500 1000``
on a GPU (each preset at its own resolution unless ``--size`` is given; vggt-1b at 518 px).
Every configuration runs in a fresh subprocess, so peak memory is its own: CUDA ``max_memory_allocated``,
or on CPU the peak resident set of the process minus the resident set after the model is built.
Times are the median of ``--repeats`` synchronised runs after one warm-up. Prints a table, writes
``benchmarks/results/inference_<device>.json`` and draws ``benchmarks/results/inference_<device>.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

import mum  # noqa: E402,F401  (sets the CPU threading policy before torch starts)


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
    }


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for preset in dict.fromkeys(r["preset"] for r in rows):
        rs = sorted((r for r in rows if r["preset"] == preset and "error" not in r), key=lambda r: r["frames"])
        if not rs:
            continue
        label = f"{preset} ({rs[0]['size'][0]} px)"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=None)
    parser.add_argument("--frames", nargs="+", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="square input side (default: each preset's own)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=8, help="frames per encoder/DPT chunk")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.one:  # child process: one configuration, JSON on stdout
        row = run_one(args.presets[0], args.frames[0], args.size, device, args.repeats, args.chunk, args.compile)
        print(json.dumps(row))
        return
    presets = args.presets or (["mum-tiny", "mum-small"] if device == "cpu" else ["mum-tiny", "mum-small", "mum-vitl16", "vggt-1b"])
    frames = args.frames or ([1, 2, 10, 25, 50, 100] if device == "cpu" else [1, 10, 50, 100, 200, 500, 1000])
    rows = []
    for preset in presets:
        for n in frames:
            cmd = [sys.executable, __file__, "--one", "--presets", preset, "--frames", str(n), "--repeats", str(args.repeats),
                   "--chunk", str(args.chunk), "--device", device]
            if args.size:
                cmd += ["--size", str(args.size)]
            if args.compile:
                cmd.append("--compile")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                err = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                rows.append({"preset": preset, "frames": n, "error": err[:200]})
                print(f"{preset:10} {n:5d} frames: {err[:100]}")
                if "out of memory" in err.lower():
                    break  # larger frame counts will not fit either
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{preset:10} {n:5d} frames {row['size'][0]:4d} px  {row['median_s']:8.3f} s  "
                f"{row['frames'] / row['median_s']:7.1f} frames/s  peak {row['peak_mem_mib']:8.0f} MiB  "
                f"(+{row['activation_mem_mib']:.0f} above weights)"
            )
    name = torch.cuda.get_device_name() if device == "cuda" else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"inference_{device}.json"
    out.write_text(json.dumps({"device": name, "torch": torch.__version__, "chunk": args.chunk, "rows": rows}, indent=1))
    plot(rows, RESULTS / f"inference_{device}.png", f"predict() on {name}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
