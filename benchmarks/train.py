"""Training throughput: views/s of pretraining and distillation steps (forward + backward + AdamW), and on
CUDA the model FLOPs utilisation (FLOPs counted with ``torch.utils.flop_counter`` over one step). Prints one
JSON line per stage and writes them to ``benchmarks/results/train_<device>.json``.

    python benchmarks/train.py                           # CPU defaults: tiny models, 64 px
    python benchmarks/train.py --size 224 --views 8 --batch 4 --pretrain-preset vitl16 --distill-preset mum-vitl16
"""

from __future__ import annotations

import argparse
import json
import time

import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import device_name, peak_bf16_tflops  # noqa: E402
from provenance import start_run, write_results  # noqa: E402


def bench(name: str, model: torch.nn.Module, step_loss, batch: dict, views: int, steps: int,
          device: torch.device) -> dict:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def one() -> None:
        with ctx:
            loss = step_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one()  # warm-up
    with FlopCounterMode(display=False) as fc:
        one()
    flops = fc.get_total_flops()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / steps
    out = {"stage": name, "views_per_step": views, "step_s": round(dt, 4), "views_per_s": round(views / dt, 2),
           "tflops_per_step": round(flops / 1e12, 4)}
    peak = peak_bf16_tflops(device)
    if peak:
        out["mfu_percent"] = round(100 * flops / dt / (peak * 1e12), 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--batch", type=int, default=2, help="scenes per step")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--pretrain-preset", default="tiny")
    p.add_argument("--distill-preset", default="mum-tiny")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    run = start_run()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    B, S, H = a.batch, a.views, a.size
    images = torch.rand(B, S, 3, H, H, device=dev)
    results = []

    from mum import build_autoencoder
    from mum.image import imagenet_normalize

    ae = build_autoencoder(a.pretrain_preset).to(dev).train()
    results.append(bench("pretrain", ae, lambda m, b: m(b["x"]).loss, {"x": imagenet_normalize(images)}, B * S,
                         a.steps, dev))
    del ae

    from mum.geometry import quat_to_mat
    from heads.losses import LossConfig, distillation_loss
    from heads.registry import load_model
    from heads.teachers import normalize_targets

    student = load_model(a.distill_preset, device=dev).train()
    R = quat_to_mat(torch.randn(B, S, 4, device=dev))
    E = torch.cat([R, torch.randn(B, S, 3, 1, device=dev)], -1)
    K = torch.tensor([[H, 0, H / 2], [0, H, H / 2], [0, 0, 1.0]], device=dev).expand(B, S, 3, 3)
    targets = normalize_targets(E, K, 1 + torch.rand(B, S, H, H, device=dev), torch.ones(B, S, H, H, dtype=torch.bool, device=dev))
    cfg = LossConfig()
    results.append(bench("distill", student, lambda m, b: distillation_loss(m(b["x"]), targets, cfg)["loss"],
                         {"x": images}, B * S, a.steps, dev))
    info = {"device": device_name(dev),
            "size": H, "views": S, "batch": B, "pretrain_preset": a.pretrain_preset, "distill_preset": a.distill_preset}
    rows = [{**info, **r} for r in results]
    for r in rows:
        print(json.dumps(r))
    out = write_results(Path(__file__).resolve().parent / "results" / f"train_{dev.type}.json", {"rows": rows}, run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
