"""Synthetic data engine throughput: generated views per second, single process and through a DataLoader.

Run: ``python benchmarks/data.py [--sizes 224 512] [--views 8] [--scenes 32] [--workers 0 2]``.
Prints a table and writes ``benchmarks/results/data_cpu.json``. "workers 0" times the steps of a sample in
this process with one thread for ray casting, BLAS/OpenMP and torch (what a DataLoader worker gets), and also
reports views per CPU-second (robust to other load) and the CPU time of each step; "workers N" times a
``DataLoader`` over ``SyntheticMultiViewDataset`` with N worker processes, after the workers have produced a
first batch, so process start-up and photo loading are not counted. Views are full training samples (RGB, depth, mask, points).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mum.data.dataset import SyntheticMultiViewDataset, collate, single_threaded, views_to_sample  # noqa: E402
from mum.data.render import render_views  # noqa: E402
from mum.data.synthetic import SyntheticConfig, build_world, plan_cameras  # noqa: E402
from mum.data.textures import PhotoBank  # noqa: E402
from provenance import start_run, write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


STAGES = ("build_world", "plan_cameras", "render_views", "views_to_sample")


def bench_inline(size: int, views: int, scenes: int) -> tuple[float, float, dict[str, float]]:
    """(views/s by wall clock, views per CPU-second, CPU ms per scene of each stage) for one single-threaded
    process making full training samples: the steps of ``generate_scene`` (world, cameras, rendering) and
    the sample assembly of the dataset. Views per CPU-second is what one otherwise idle core delivers,
    whatever else the machine is running."""
    single_threaded()
    PhotoBank()
    config = SyntheticConfig(nthreads=1)
    cpu = dict.fromkeys(STAGES, 0.0)

    def timed(stage, fn, *args, **kwargs):
        c = time.process_time()
        out = fn(*args, **kwargs)
        cpu[stage] += time.process_time() - c
        return out

    def sample(seed: int) -> None:
        world = timed("build_world", build_world, seed, config)
        plan = timed("plan_cameras", plan_cameras, world, seed, views, size, size, config)
        out = timed("render_views", render_views, world, plan.extrinsics, plan.intrinsics, size, size, nthreads=1)
        timed("views_to_sample", views_to_sample, list(out["images"]), plan.intrinsics, plan.extrinsics,
              list(out["depths"]), list(out["masks"]), True)

    sample(10_000)  # warm-up
    cpu = dict.fromkeys(STAGES, 0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(scenes):
        sample(k)
    wall, total = time.perf_counter() - t0, time.process_time() - c0
    return scenes * views / wall, scenes * views / total, {k: round(v / scenes * 1000, 1) for k, v in cpu.items()}


def bench_loader(size: int, views: int, scenes: int, workers: int) -> float:
    ds = SyntheticMultiViewDataset("train", length=scenes + 2 * workers, num_views=views, height=size, width=size)
    loader = DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate, prefetch_factor=2)
    it = iter(loader)
    for _ in range(workers):  # every worker has started and loaded its photos
        next(it)
    t0 = time.perf_counter()
    n = 0
    for batch in it:
        n += batch["images"].shape[0] * batch["images"].shape[1]
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--scenes", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = p.parse_args()
    run = start_run()
    torch.set_num_threads(1)
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for size in args.sizes:
        for w in args.workers:
            row = {"size": size, "views": args.views, "workers": w}
            if w == 0:
                vps, per_cpu, stages = bench_inline(size, args.views, args.scenes)
                row.update(views_per_cpu_s=round(per_cpu, 1), cpu_ms_per_scene=stages)
                extra = f"  ({per_cpu:.1f} views per CPU-second; CPU ms per scene: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()) + ")"
            else:
                vps, extra = bench_loader(size, args.views, args.scenes, w), ""
            row.update(views_per_s=round(vps, 1), scenes_per_s=round(vps / args.views, 2))
            rows.append(row)
            print(f"{size}x{size}  {args.views} views/scene  workers={w}:  {vps:7.1f} views/s  ({vps / args.views:.2f} scenes/s){extra}", flush=True)
    print(f"wrote {write_results(RESULTS / 'data_cpu.json', {'results': rows}, run)}")


if __name__ == "__main__":
    main()
