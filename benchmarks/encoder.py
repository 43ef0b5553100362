"""Encoder micro-benchmark: images/s and peak memory per preset and resolution.

Run: ``python benchmarks/encoder.py [--presets tiny vitl16] [--sizes 224 512] [--batch 8] [--device auto]``.
Prints a table and writes ``benchmarks/results/encoder_<device>.json``. On CPU, peak memory is the growth of
the process's peak resident set during the timed runs (``ru_maxrss``); on CUDA, ``max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mum  # noqa: E402,F401  (sets the CPU threading policy before torch starts)
import torch  # noqa: E402

from mum.encoder import build_encoder  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(preset: str, size: int, batch: int, device: str, repeats: int) -> dict:
    torch.manual_seed(0)
    enc = build_encoder(preset).to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), autocast:
        enc(x)  # warm-up
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
    return {
        "preset": preset,
        "size": size,
        "batch": batch,
        "median_s": median,
        "images_per_s": batch / median,
        "peak_mem_mib": peak,
        "rss_growth_mib": None if device == "cuda" else _rss_mib() - rss0,
        "params_m": params / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "vitl16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 512])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    rows = [bench(p, s, args.batch, device, args.repeats) for p in args.presets for s in args.sizes]
    name = torch.cuda.get_device_name() if device == "cuda" else f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
    print(f"device: {device} ({name}), torch {torch.__version__}, batch {args.batch}")
    print(f"{'preset':8} {'px':>5} {'params(M)':>9} {'img/s':>9} {'median(s)':>10} {'peak MiB':>9}")
    for r in rows:
        print(f"{r['preset']:8} {r['size']:5d} {r['params_m']:9.1f} {r['images_per_s']:9.2f} {r['median_s']:10.3f} {r['peak_mem_mib']:9.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"encoder_{device}.json"
    out.write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
