"""Encoder micro-benchmark: images/s and peak memory per preset and resolution.

Run: ``python benchmarks/encoder.py [--presets tiny vitl16] [--sizes 224 512] [--batch 8] [--device auto]``.
Prints a table and writes ``benchmarks/results/encoder_<device>.json``. On CPU, peak memory is the growth of
the process's peak resident set during the timed runs (``ru_maxrss``); on CUDA, ``max_memory_allocated``.

On CUDA the encoder runs under bf16 autocast, once per attention backend (``--attention``, default xformers
and sdpa), and each row reports model FLOPs utilisation: forward FLOPs counted by
``torch.utils.flop_counter`` (matmuls and attention) over the measured time, divided by the device's dense
bf16 peak (``benchmarks/hardware.py``).
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

from hardware import device_name, peak_bf16_tflops  # noqa: E402
from provenance import start_run, write_results  # noqa: E402
from mum.encoder import build_encoder  # noqa: E402
from mum.layers.attention import resolve_backend, xformers_available  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(preset: str, size: int, batch: int, device: str, repeats: int, backend: str = "auto") -> dict:
    torch.manual_seed(0)
    enc = build_encoder(preset).to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), autocast:
        # FLOPs of one forward pass, counted through SDPA (the counter has no formula for xformers' kernel;
        # both backends do the same arithmetic), then a warm-up with the backend under test
        os.environ["MUM_ATTENTION"] = "sdpa"
        with FlopCounterMode(display=False) as counter:
            enc(x)
        os.environ["MUM_ATTENTION"] = backend
        enc(x)
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
        "median_s": median,
        "images_per_s": batch / median,
        "peak_mem_mib": peak,
        "rss_growth_mib": None if device == "cuda" else _rss_mib() - rss0,
        "params_m": params / 1e6,
        "attention": resolve_backend(x),
        "gflops_per_image": flops / batch / 1e9,
        "tflops_per_s": flops / median / 1e12,
        "mfu_percent": None if peak_tflops is None else 100 * flops / median / (peak_tflops * 1e12),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "vitl16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 512])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--attention", nargs="+", default=None,
                        help="attention backends (default: xformers and sdpa on CUDA, auto on CPU)")
    args = parser.parse_args()
    run = start_run()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    backends = args.attention or (["xformers", "sdpa"] if device == "cuda" and xformers_available() else ["auto"])
    rows = [bench(p, s, args.batch, device, args.repeats, b) for b in backends for p in args.presets for s in args.sizes]
    name = device_name(device)
    print(f"device: {device} ({name}), torch {torch.__version__}, batch {args.batch}")
    print(f"{'preset':8} {'px':>5} {'attention':>9} {'params(M)':>9} {'img/s':>9} {'median(s)':>10} {'peak MiB':>9} "
          f"{'GFLOP/img':>9} {'TFLOP/s':>8} {'MFU %':>6}")
    for r in rows:
        mfu = "–" if r["mfu_percent"] is None else f"{r['mfu_percent']:.1f}"
        print(f"{r['preset']:8} {r['size']:5d} {r['attention']:>9} {r['params_m']:9.1f} {r['images_per_s']:9.2f} "
              f"{r['median_s']:10.3f} {r['peak_mem_mib']:9.0f} {r['gflops_per_image']:9.1f} {r['tflops_per_s']:8.3f} {mfu:>6}")
    out = write_results(RESULTS / f"encoder_{device}.json", {"device": name, "batch": args.batch, "rows": rows}, run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
