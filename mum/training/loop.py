"""The training loop, one page: set-up, resume, accumulate, clip, step, log, evaluate, checkpoint.

A :class:`Task` (pretraining or distillation) supplies the model, its parameter groups, the samples and the
loss; everything else (DDP/FSDP2, autocast, accumulation, schedule, checkpoints, logs) lives here.
"""

from __future__ import annotations

import contextlib
import math
import time
from abc import ABC, abstractmethod
from typing import Any, Iterable, Mapping, Optional

import torch
from torch import Tensor, nn

from . import distributed as D
from .config import DataConfig, OptimConfig, RunConfig, ScheduleConfig
from .data import SampleFn, StepBatchSampler, collate, eval_keys, make_loader, to_device, views_for_step
from .logs import MetricsLogger, Progress
from .optim import build_optimizer, clip_gradients
from .schedule import build_scheduler
from .state import latest_checkpoint, load_checkpoint, save_checkpoint
from ..errors import UserError
from ..files import check_output_path


class Task(ABC):
    """What a training stage must provide. Configs are attributes so the loop can read them."""

    name: str = "task"
    run: RunConfig
    optim: OptimConfig
    schedule: ScheduleConfig
    data: DataConfig

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The model to train, on the CPU, initialised (from weights if the config says so)."""

    @abstractmethod
    def param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        """Optimiser parameter groups (each with its peak ``lr``); frozen parameters are left out."""

    @abstractmethod
    def sample_fn(self, split: str) -> SampleFn:
        """A picklable ``SampleKey -> dict of tensors`` for ``split`` in ``{"train", "test"}``."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Scalar loss (mean over the micro-batch) and detached metrics to log."""

    @abstractmethod
    def evaluate(self, model: nn.Module, batches: Iterable[Mapping[str, Any]]) -> dict[str, float]:
        """Held-out metrics on fixed test batches (model in eval mode, no gradients)."""

    @abstractmethod
    def save_weights(self, state_dict: dict[str, Tensor], path: Any) -> None:
        """Write model weights as safetensors with the model config (``mum/checkpoint.py``)."""

    @abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """The full config, for the checkpoint and the log."""


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast on CUDA; CPU runs in fp32."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def run_eval(task: Task, model: nn.Module, info: D.DistInfo) -> dict[str, float]:
    """The task's held-out evaluation on the fixed test batches (same on every rank)."""
    d, fn = task.data, task.sample_fn("test")
    size = max(1, task.run.micro_batch or task.run.batch_size)
    batches = (to_device(collate([fn(k) for k in keys]), info.device) for keys in eval_keys(d.eval_scenes, d.eval_views, size))
    was = model.training
    model.eval()
    with torch.no_grad(), autocast(info.device, task.run.precision):
        out = task.evaluate(model, batches)
    model.train(was)
    return out


def train(task: Task, stop_at: Optional[int] = None) -> dict[str, Any]:
    """Run (or resume) ``task`` to ``task.run.steps`` optimiser steps; ``stop_at`` ends early as a kill would
    (used by the resume test). Returns the last logged metrics and the final evaluation."""
    run = task.run
    out = check_output_path(run.out_dir, overwrite=True)  # resuming reuses it; a file or unwritable place is an error
    if out.exists() and not out.is_dir():
        raise UserError(f"run.out_dir={run.out_dir}: is a file, not a folder")
    info = D.setup(run.device)
    D.seed_everything(run.seed, info.rank)
    micro = run.micro_batch or run.batch_size // info.world
    if micro < 1 or run.batch_size % (micro * info.world):
        raise UserError(f"run.batch_size={run.batch_size} must be a multiple of micro_batch × world size "
                        f"({run.micro_batch or 'batch/world'} × {info.world})")
    accum = run.batch_size // (micro * info.world)
    lr = task.optim.resolve_lr(run.batch_size)

    model = task.build_model().to(info.device)
    if run.grad_checkpointing:
        for m in model.modules():
            if hasattr(m, "grad_checkpointing"):
                m.grad_checkpointing = True
    model.train()
    if run.compile:
        from ..layers import compile_blocks

        compiled = compile_blocks(model)
        if info.is_main:
            print(f"[{task.name}] torch.compile: {compiled} transformer blocks (the first step compiles them)", flush=True)
    if run.fsdp:
        model = D.wrap(model, info, fsdp=True)
    optimizer = build_optimizer(task.param_groups(model, lr), task.optim)
    scheduler = build_scheduler(optimizer, task.schedule, run.steps)
    start, ckpt = 0, latest_checkpoint(run.out_dir)
    if ckpt is not None:
        start = load_checkpoint(ckpt, model, optimizer, scheduler, info, fsdp=run.fsdp)
    ddp = model if run.fsdp else D.wrap(model, info)
    core = D.unwrap(ddp)

    sampler = StepBatchSampler(run.seed, run.batch_size, micro, info.rank, info.world,
                               (task.data.views_min, task.data.views_max), run.steps, start, task.data.crop_sizes)
    batches = iter(make_loader(task.sample_fn("train"), sampler, task.data.num_workers))
    logger = MetricsLogger(run.out_dir, info.is_main)
    bar = Progress(run.steps, start, run.progress and info.is_main, task.name)
    if info.is_main:
        where = f"resuming from {ckpt} at step {start}" if ckpt else "starting from scratch"
        print(f"[{task.name}] {where}; world {info.world}, micro-batch {micro} × accum {accum}, lr {lr:.3g}, "
              f"device {info.device}", flush=True)

    if start == 0 and run.eval_every:  # the untrained model's held-out figures, for comparison
        logger.log(0, {f"eval/{k}": v for k, v in run_eval(task, core, info).items()})
    last: dict[str, Any] = {}
    end = run.steps if stop_at is None else min(run.steps, stop_at)
    for step in range(start, end):
        t0 = time.perf_counter()
        S = views_for_step(run.seed, step, task.data.views_min, task.data.views_max)
        sums: dict[str, Tensor] = {}
        for m in range(accum):
            batch = to_device(next(batches), info.device)
            sync = m == accum - 1
            no_sync = ddp.no_sync() if (info.distributed and not sync and hasattr(ddp, "no_sync")) else contextlib.nullcontext()
            with no_sync, autocast(info.device, run.precision):
                loss, metrics = task.loss(ddp, batch)
            with no_sync:
                (loss / accum).backward()
            for k, v in {"loss": loss.detach(), **metrics}.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() / accum
        norms = clip_gradients(core, task.optim.clip_grad, task.optim.clip_per_module)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        done = step + 1
        if done % run.log_every == 0 or done == run.steps or step == start:
            vals = {f"train/{k}": float(D.all_reduce_mean(v.reshape(1).to(info.device))) for k, v in sums.items()}
            dt = time.perf_counter() - t0
            if step == start and run.compile:
                vals["train/compile_step_s"] = dt  # the first step: compilation + one step
            vals.update({"train/lr": optimizer.param_groups[0]["lr"], "train/views_per_s": run.batch_size * S / dt,
                         **{f"train/{k}": v for k, v in norms.items()}})
            if not math.isfinite(vals["train/loss"]):
                raise FloatingPointError(f"loss is {vals['train/loss']} at step {done}")
            logger.log(done, vals)
            last = vals
        bar.update({"loss": f"{float(sums['loss']):.4f}", "views/s": f"{run.batch_size * S / (time.perf_counter() - t0):.1f}"})
        if run.eval_every and done % run.eval_every == 0 and done != run.steps:
            logger.log(done, {f"eval/{k}": v for k, v in run_eval(task, core, info).items()})
        if done % run.ckpt_every == 0 or done == run.steps:
            save_checkpoint(run.out_dir, done, core, optimizer, scheduler,
                            task.save_weights, info, task.config_dict(), fsdp=run.fsdp, keep=run.keep_checkpoints)
    bar.close()
    result: dict[str, Any] = {"train": last}
    if end == run.steps:
        result["eval"] = run_eval(task, core, info)
        logger.log(run.steps, {f"eval/{k}": v for k, v in result["eval"].items()})
        if info.is_main:
            print(f"[{task.name}] held-out: " + ", ".join(f"{k} {v:.4f}" for k, v in result["eval"].items()), flush=True)
    logger.close()
    return result
