"""Training throughput: views/s of pretraining and distillation steps (forward + backward + AdamW, the fused
kernel on CUDA as ``mum-train`` uses it, bf16 autocast on CUDA), and on CUDA the model FLOPs utilisation (FLOPs
counted eagerly with ``torch.utils.flop_counter`` over one step). Prints one JSON line per stage and writes them,
with the run's commit, command line and machine, to ``benchmarks/results/train_<device>.json`` (or ``--out``).

    python benchmarks/train.py                           # CPU defaults: tiny models, 64 px
    python benchmarks/train.py --size 224 --views 8 --batch 4 --pretrain-preset vitl16 --distill-preset mum-vitl16
    python benchmarks/train.py --size 224 --views 8 --batch auto --compile ...   # the batch that fills the GPU

``--batch auto`` doubles the scenes per step from 1 while a step fits: it stops at an out-of-memory error, at
``--max-batch``, or when the next doubling is predicted (from the peak memory of the last two) to exceed
``--fill`` of the device's memory (CUDA: total memory; CPU: the memory available at the start); the largest
batch that ran is measured. ``--compile`` puts every transformer block under ``torch.compile`` (``first_step_s``:
the compiling step).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import accelerator, peak_bf16_tflops  # noqa: E402
from provenance import start_run, write_results  # noqa: E402


def memory_now(device: torch.device) -> float:
    """Peak bytes so far: CUDA ``max_memory_allocated``, CPU the process's peak resident set."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def memory_budget(device: torch.device) -> float:
    """Bytes a step may use: the GPU's total memory, or the memory available now on the CPU."""
    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    with open("/proc/meminfo") as fh:
        info = dict(line.split(":", 1) for line in fh)
    return float(info["MemAvailable"].split()[0]) * 1024 + memory_now(device)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


class Stage:
    """One training stage: a model, its loss on a batch of ``B`` scenes, an optimiser, one step at a time."""

    def __init__(self, name: str, model: torch.nn.Module, make_batch, loss, device: torch.device) -> None:
        from mum.training.config import OptimConfig
        from mum.training.optim import build_optimizer, param_groups

        self.name, self.model, self.make_batch, self.loss, self.device = name, model, make_batch, loss, device
        self.opt = build_optimizer(param_groups(model.named_parameters(), 1e-4, 0.05, name), OptimConfig())
        self.ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else \
            (lambda: torch.autocast("cpu", enabled=False))

    def step(self, batch) -> None:
        with self.ctx():
            loss = self.loss(self.model, batch)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def pick_batch(stage: Stage, max_batch: int, fill: float) -> tuple[int, list[dict]]:
    """The largest batch (1, 2, 4, … ≤ ``max_batch``) whose step fits (see the module docstring)."""
    budget, tried, best = memory_budget(stage.device), [], 0
    b = 1
    while b <= max_batch:
        if stage.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(stage.device)
        try:
            stage.step(stage.make_batch(b))
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_oom(exc):
                raise
            stage.opt.zero_grad(set_to_none=True)
            tried.append({"batch": b, "fits": False})
            break
        peak = memory_now(stage.device)
        tried.append({"batch": b, "fits": True, "peak_gib": round(peak / 2**30, 2)})
        best = b
        if len(tried) >= 2 and tried[-2].get("fits"):
            predicted = peak + 2 * (peak - tried[-2]["peak_gib"] * 2**30)  # the doubling adds twice the last increase
        else:
            predicted = 2 * peak
        if predicted > fill * budget:
            break
        b *= 2
    if best == 0:
        raise SystemExit(f"{stage.name}: not even one scene per step fits")
    if stage.device.type == "cuda":
        torch.cuda.empty_cache()
    return best, tried


def bench(stage: Stage, batch_size: int, views: int, steps: int, compile_: bool) -> dict:
    batch = stage.make_batch(batch_size)
    stage.step(batch)  # warm-up (eager)
    with FlopCounterMode(display=False) as fc:
        stage.step(batch)
    flops = fc.get_total_flops()
    first_step_s = None
    if compile_:
        from mum.layers import compile_blocks

        compile_blocks(stage.model)
        t = time.perf_counter()
        stage.step(batch)
        first_step_s = round(time.perf_counter() - t, 3)
    if stage.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(stage.device)
    t = time.perf_counter()
    for _ in range(steps):
        stage.step(batch)
    dt = (time.perf_counter() - t) / steps
    out = {"stage": stage.name, "batch": batch_size, "views_per_step": batch_size * views, "step_s": round(dt, 4),
           "views_per_s": round(batch_size * views / dt, 2), "tflops_per_step": round(flops / 1e12, 4),
           "compiled": compile_, "first_step_s": first_step_s,
           "peak_mem_gib": round(memory_now(stage.device) / 2**30, 2)}
    peak = peak_bf16_tflops(stage.device)
    if peak:
        out["mfu_percent"] = round(100 * flops / dt / (peak * 1e12), 2)
    return out


def pretrain_stage(preset: str, size: int, views: int, device: torch.device) -> Stage:
    from mum import build_autoencoder
    from mum.image import imagenet_normalize

    torch.manual_seed(0)
    with torch.device(device):
        model = build_autoencoder(preset).train()
    g = torch.Generator().manual_seed(0)

    def make(b: int) -> dict:
        return {"x": imagenet_normalize(torch.rand(b, views, 3, size, size, generator=g).to(device))}

    return Stage("pretrain", model, make, lambda m, b: m(b["x"]).loss, device)


def distill_stage(preset: str, size: int, views: int, device: torch.device) -> Stage:
    from heads.losses import LossConfig, distillation_loss
    from heads.model import build_reconstructor
    from heads.registry import PRESETS
    from heads.teachers import normalize_targets
    from mum.geometry import quat_to_mat

    torch.manual_seed(0)
    student = build_reconstructor(PRESETS[preset], device=device).train()
    cfg = LossConfig()
    g = torch.Generator().manual_seed(0)

    def make(b: int) -> dict:
        R = quat_to_mat(torch.randn(b, views, 4, generator=g))
        E = torch.cat([R, torch.randn(b, views, 3, 1, generator=g)], -1)
        K = torch.tensor([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1.0]]).expand(b, views, 3, 3)
        depth = 1 + torch.rand(b, views, size, size, generator=g)
        targets = normalize_targets(E.to(device), K.to(device), depth.to(device),
                                    torch.ones(b, views, size, size, dtype=torch.bool, device=device))
        return {"x": torch.rand(b, views, 3, size, size, generator=g).to(device), "targets": targets}

    return Stage("distill", student, make, lambda m, b: distillation_loss(m(b["x"]), b["targets"], cfg)["loss"], device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--batch", default="2", help="scenes per step, or auto (the largest that fits; see above)")
    p.add_argument("--max-batch", type=int, default=64, help="--batch auto tries at most this many scenes")
    p.add_argument("--fill", type=float, default=0.85, help="--batch auto: share of the device's memory to fill")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--pretrain-preset", default="tiny")
    p.add_argument("--distill-preset", default="mum-tiny")
    p.add_argument("--stages", nargs="+", default=["pretrain", "distill"], choices=["pretrain", "distill"])
    p.add_argument("--compile", action="store_true", help="torch.compile every transformer block")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=None, help="results file (default: results/train_<device>.json)")
    a = p.parse_args()
    run = start_run()
    if a.batch != "auto" and not a.batch.isdigit():
        p.error("--batch takes a number or auto")
    dev = torch.device(a.device)
    builders = {"pretrain": lambda: pretrain_stage(a.pretrain_preset, a.size, a.views, dev),
                "distill": lambda: distill_stage(a.distill_preset, a.size, a.views, dev)}
    rows = []
    for name in a.stages:
        stage = builders[name]()
        tried = None
        batch = int(a.batch) if a.batch != "auto" else None
        if batch is None:
            batch, tried = pick_batch(stage, a.max_batch, a.fill)
        row = {"size": a.size, "views": a.views, "preset": a.pretrain_preset if name == "pretrain" else a.distill_preset,
               **bench(stage, batch, a.views, a.steps, a.compile)}
        if tried is not None:
            row["batch_search"] = tried
        print(json.dumps(row), flush=True)
        rows.append(row)
        del stage
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    out = write_results(a.out or Path(__file__).resolve().parent / "results" / f"train_{dev.type}.json",
                        {**accelerator(dev), "rows": rows}, run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
