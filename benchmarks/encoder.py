"""Encoder micro-benchmark: images/s and peak memory per preset and resolution.

Run: ``python benchmarks/encoder.py [--presets tiny vitl16] [--sizes 224 512] [--batch 8] [--device auto]
[--compile] [--out FILE]``. Prints a table and writes ``benchmarks/results/encoder_<device>.json`` (or ``--out``)
with the run's commit, command line, machine and software stack. On CPU, peak memory is the growth of the
process's peak resident set during the timed runs (``ru_maxrss``); on CUDA, ``max_memory_allocated``.

On CUDA the encoder runs under bf16 autocast, once per attention backend that runs here (``--attention``,
default every one of xformers, cudnn and sdpa that passes its verification), and each row reports model FLOPs
utilisation: forward FLOPs counted by ``torch.utils.flop_counter`` (matmuls and attention, counted eagerly
through SDPA) over the measured time, divided by the device's dense bf16 peak (``benchmarks/hardware.py``).
``--compile`` adds a row per configuration with the blocks under ``torch.compile`` (``compile_s``: the first,
compiling pass).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mum  # noqa: E402,F401  (sets the CPU threading policy before torch starts)
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from hardware import accelerator, peak_bf16_tflops  # noqa: E402
from provenance import start_run, write_results  # noqa: E402
from mum.encoder import build_encoder  # noqa: E402
from mum.layers import compile_blocks  # noqa: E402
from mum.layers.attention import backend_works, resolve_backend  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(preset: str, size: int, batch: int, device: str, repeats: int, backend: str = "auto",
          compiled: bool = False) -> dict:
    torch.manual_seed(0)
    with torch.device(device):  # random weights, initialised where they run
        enc = build_encoder(preset).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    compile_s = None
    with torch.inference_mode(), autocast:
        # FLOPs of one forward pass, counted eagerly through SDPA (the counter has no formula for xformers' kernel;
        # every backend does the same arithmetic), then a warm-up with the backend under test
        os.environ["MUM_ATTENTION"] = "sdpa"
        with FlopCounterMode(display=False) as counter:
            enc(x)
        os.environ["MUM_ATTENTION"] = backend
        enc(x)  # eager: verifies the backend (a compiled block keeps the one it was traced with)
        if compiled:
            compile_blocks(enc)
            t0 = time.perf_counter()
            enc(x)
            if device == "cuda":
                torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        rss0 = _rss_mib()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            enc(x)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_mib()
    params = sum(p.numel() for p in enc.parameters())
    flops = counter.get_total_flops()
    peak_tflops = peak_bf16_tflops(device)
    return {
        "preset": preset,
        "size": size,
        "batch": batch,
        "compiled": compiled,
        "compile_s": compile_s,
        "median_s": median,
        "images_per_s": batch / median,
        "peak_mem_mib": peak,
        "rss_growth_mib": None if device == "cuda" else _rss_mib() - rss0,
        "params_m": params / 1e6,
        "attention": resolve_backend(x.to(torch.bfloat16) if device == "cuda" else x, backend),
        "gflops_per_image": flops / batch / 1e9,
        "tflops_per_s": flops / median / 1e12,
        "mfu_percent": None if peak_tflops is None else 100 * flops / median / (peak_tflops * 1e12),
    }


def working_backends(device: str) -> list[str]:
    """Every attention backend that runs here (CUDA: of xformers, cudnn and sdpa), or ``auto`` on the CPU."""
    if device != "cuda":
        return ["auto"]
    return [b for b in ("xformers", "cudnn", "sdpa") if backend_works(b, "cuda", torch.bfloat16)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "vitl16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 512])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--attention", nargs="+", default=None,
                        help="attention backends (default: every one that runs on CUDA, auto on CPU)")
    parser.add_argument("--compile", action="store_true", help="also measure each configuration with torch.compile")
    parser.add_argument("--out", type=Path, default=None, help="results file (default: results/encoder_<device>.json)")
    args = parser.parse_args()
    run = start_run()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    backends = args.attention or working_backends(device)
    modes = [False, True] if args.compile else [False]
    rows = [bench(p, s, args.batch, device, args.repeats, b, c)
            for b in backends for p in args.presets for s in args.sizes for c in modes]
    stack = accelerator(device)
    print(f"device: {device} ({stack['device']}), torch {torch.__version__}, batch {args.batch}")
    print(f"{'preset':8} {'px':>5} {'attention':>9} {'compiled':>8} {'params(M)':>9} {'img/s':>9} {'median(s)':>10} "
          f"{'peak MiB':>9} {'GFLOP/img':>9} {'TFLOP/s':>8} {'MFU %':>6}")
    for r in rows:
        mfu = "–" if r["mfu_percent"] is None else f"{r['mfu_percent']:.1f}"
        comp = f"{r['compile_s']:.0f} s" if r["compiled"] else "no"
        print(f"{r['preset']:8} {r['size']:5d} {r['attention']:>9} {comp:>8} {r['params_m']:9.1f} {r['images_per_s']:9.2f} "
              f"{r['median_s']:10.3f} {r['peak_mem_mib']:9.0f} {r['gflops_per_image']:9.1f} {r['tflops_per_s']:8.3f} {mfu:>6}")
    out = write_results(args.out or RESULTS / f"encoder_{device}.json", {**stack, "batch": args.batch, "rows": rows}, run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
