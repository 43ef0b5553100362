"""End-to-end inference benchmark: time of one ``predict`` and peak memory vs number of frames.

Run: ``python benchmarks/inference.py``. Defaults per device (each preset at its own resolution unless
``--size`` is given, except mum-vitl16 at 512 px beside vggt-1b at 518 px):

* CPU: mum-tiny at 1–100 frames, mum-small at 1–10, and mum-vitl16 beside vggt-1b at 1–2 frames (one timed
  run each), every configuration in a fresh subprocess (peak resident set minus the set after the model is
  built);
* CUDA: every preset at 1, 10, 50, 100, 200, 500, 1000 frames (until out of memory), once per attention
  backend that runs (``--attention``; default every one of xformers, cudnn, sdpa that passes its verification);
  one subprocess per preset and backend, peak memory ``max_memory_allocated`` reset before each frame count.

``predict`` runs as the pipeline runs it: frames on the CPU, moved to the GPU a chunk at a time, dense maps
gathered back on the CPU (``--output-device``). Random weights, initialised on the device. A process warms up
with 2 frames; frame counts up to 50 get one more warm-up at their own size and ``--repeats`` timed runs, 100
and 200 frames two timed runs, 500 and more one (the median is reported, and the minimum). ``--compile`` puts
the blocks under ``torch.compile`` first (``compile_s`` in each row). After the table it prints the speed-up
of each MuM preset over ``vggt-1b`` at equal frame counts and the memory per extra frame (slope of a
least-squares line through peak memory vs frames, with its worst relative residual: near 0 = linear). Writes
``benchmarks/results/inference_<device>.json`` (or ``--out``, with the run's commit, command and machine) and
draws the plot beside it.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

import mum  # noqa: E402,F401  (sets the CPU threading policy before torch starts)


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        import os

        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed_runs(frames: int, repeats: int) -> int:
    """Timed runs at ``frames``: ``repeats`` up to 50 frames, at most 2 up to 200, then 1 (a 1000-frame pass
    takes about a minute on an H100)."""
    return repeats if frames <= 50 else min(repeats, 2) if frames <= 200 else 1


def run_one(preset: str, frame_counts: list[int], size: int | None, device: str, repeats: int, chunk: int,
            compile_: bool, output_device: str) -> list[dict]:
    """Measure ``preset`` at each frame count in this process; one JSON line per count on stdout as it goes."""
    import torch

    from heads.model import build_reconstructor
    from heads.registry import PRESETS, load_model
    from mum.layers.attention import chosen_backends

    torch.manual_seed(0)
    model = (build_reconstructor(PRESETS[preset], device=device) if preset in PRESETS else load_model(preset, device=device)).eval()
    size = size or model.cfg.image_size
    p = model.patch_size
    H = W = (size // p) * p
    compile_s = model.compile_for_inference() if compile_ else None
    params = sum(q.numel() for q in model.parameters()) / 1e6
    g = torch.Generator().manual_seed(0)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":  # kernels, cuBLAS and cuDNN set up once (on the CPU this would raise the peak resident set)
        model.predict(torch.rand(2, 3, H, W, generator=g), chunk_size=chunk, output_device=output_device)
    rows = []
    for frames in frame_counts:
        images = torch.rand(frames, 3, H, W, generator=g)
        if device == "cuda":
            torch.cuda.empty_cache()
            sync()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated() / 2**20
        else:
            base = _current_rss_mib()
        try:
            if frames <= 50:
                model.predict(images, chunk_size=chunk, output_device=output_device)  # warm-up at this size
            times = []
            for _ in range(timed_runs(frames, repeats)):
                sync()
                t0 = time.perf_counter()
                pred = model.predict(images, chunk_size=chunk, output_device=output_device)
                sync()
                times.append(time.perf_counter() - t0)
                del pred
        except torch.OutOfMemoryError as exc:
            row = {"preset": preset, "frames": frames, "size": [H, W], "error": f"out of memory: {str(exc)[:150]}"}
            print(json.dumps(row), flush=True)
            rows.append(row)
            break
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _peak_rss_mib()
        row = {
            "preset": preset,
            "frames": frames,
            "size": [H, W],
            "median_s": statistics.median(times),
            "min_s": min(times),
            "timed_runs": len(times),
            "peak_mem_mib": peak,
            "model_mem_mib": base,
            "activation_mem_mib": peak - base,
            "params_m": params,
            "threads": torch.get_num_threads(),
            "attention": "+".join(sorted(set(chosen_backends().values()))),
            "compiled": compile_,
            "compile_s": compile_s,
            "output_device": output_device,
            "chunk": chunk,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


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


def measure(preset: str, frame_counts: list[int], backend: str, device: str, args: argparse.Namespace) -> list[dict]:
    """``preset`` at ``frame_counts`` in a fresh subprocess (its own memory); prints a line per count."""
    import os

    repeats = 1 if device == "cpu" and preset in CPU_SINGLE_RUN else args.repeats
    cmd = [sys.executable, __file__, "--one", "--presets", preset, "--frames", *map(str, frame_counts),
           "--repeats", str(repeats), "--chunk", str(args.chunk), "--device", device, "--output-device", args.output_device]
    size = args.size or BENCH_SIZE.get(preset)
    if size:
        cmd += ["--size", str(size)]
    if args.compile:
        cmd.append("--compile")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MUM_ATTENTION": backend})
    rows = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        row["attention_used"] = row.get("attention")  # the backends verified and run (e.g. cudnn+sdpa)
        row["attention"] = backend  # the request: rows are compared per request
        rows.append(row)
        if "error" in row:
            print(f"{preset:10} {row['frames']:5d} frames [{backend}]: {row['error'][:100]}", flush=True)
            continue
        comp = f" (compiled in {row['compile_s']:.0f} s)" if row.get("compile_s") else ""
        print(f"{preset:10} {row['frames']:5d} frames {row['size'][0]:4d} px [{row['attention_used']:8}] {row['median_s']:8.3f} s  "
              f"{row['frames'] / row['median_s']:7.1f} frames/s  peak {row['peak_mem_mib']:8.0f} MiB  "
              f"(+{row['activation_mem_mib']:.0f} above weights){comp}", flush=True)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.wait() != 0:
        last = (err.strip().splitlines() or ["failed"])[-1]
        done = {r["frames"] for r in rows}
        missing = [n for n in frame_counts if n not in done]
        print(f"{preset:10} [{backend}]: {last[:200]}", flush=True)
        rows += [{"preset": preset, "frames": n, "attention": backend, "error": last[:200]} for n in missing[:1]]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=None)
    parser.add_argument("--frames", nargs="+", type=int, default=None)
    parser.add_argument("--size", type=int, default=None,
                        help="square input side (default: each preset's own; mum-vitl16 at 512 beside vggt-1b at 518)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=8, help="frames per encoder/DPT chunk")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output-device", default="cpu", help="where predict gathers the dense maps (default: cpu)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's blocks first")
    parser.add_argument("--attention", nargs="+", default=None,
                        help="attention backends to compare (default: every one that runs on CUDA, auto on CPU)")
    parser.add_argument("--max-frames", default=None, nargs="*", metavar="PRESET=N",
                        help="stop PRESET above N frames (e.g. vggt-1b=200)")
    parser.add_argument("--out", type=Path, default=None, help="results file (default: results/inference_<device>.json)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.one:  # child process: one preset, JSON lines on stdout
        run_one(args.presets[0], args.frames, args.size, device, args.repeats, args.chunk, args.compile, args.output_device)
        return
    if args.presets:
        plan = {p: args.frames or (CUDA_FRAMES if device == "cuda" else CPU_PLAN.get(p, [1, 2, 10])) for p in args.presets}
    elif device == "cuda":
        plan = {p: args.frames or CUDA_FRAMES for p in CUDA_PRESETS}
    else:
        plan = {p: args.frames or f for p, f in CPU_PLAN.items()}
    limits = dict(item.split("=") for item in (args.max_frames or []))
    plan = {p: [n for n in frames if p not in limits or n <= int(limits[p])] for p, frames in plan.items()}
    from encoder import working_backends
    from hardware import accelerator
    from provenance import start_run, write_results

    run = start_run()

    backends = args.attention or working_backends(device)
    rows = []
    for backend in backends:
        for preset, frames in plan.items():
            if device == "cuda":
                rows += measure(preset, frames, backend, device, args)
            else:  # the CPU's peak resident set cannot be reset: one process per configuration
                for n in frames:
                    rows += measure(preset, [n], backend, device, args)
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
    stack = accelerator(device)
    out = write_results(args.out or RESULTS / f"inference_{device}.json",
                        {**stack, "chunk": args.chunk, "output_device": args.output_device, "rows": rows,
                         "speedup_over_vggt_1b": ups, "memory_slopes": slopes}, run)
    plot(rows, out.with_suffix(".png"), f"predict() on {stack['device']}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
