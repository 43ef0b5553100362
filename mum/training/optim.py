"""AdamW with the usual weight-decay exemptions, per-group learning rates, and (per-module) clipping."""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import nn

from .config import OptimConfig


def param_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float, tag: str) -> list[dict]:
    """Two groups: decayed (matrices) and not decayed (biases, norms, tokens, 1-d tensors)."""
    decay, no_decay = [], []
    for name, p in named:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith("token") or "pos_embed" in name else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "lr": lr, "weight_decay": weight_decay, "name": f"{tag}"})
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{tag}.no_decay"})
    return groups


def build_optimizer(groups: list[dict], cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over pre-built groups (each with its own peak ``lr``); the fused CUDA kernel when every parameter
    is on a CUDA device (one kernel launch per step instead of several per tensor), PyTorch's default otherwise."""
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.AdamW(groups, betas=tuple(cfg.betas), fused=True if fused else None)


def clip_gradients(model: nn.Module, max_norm: float, per_module: bool) -> Mapping[str, float]:
    """Clip gradient norms to ``max_norm`` over the whole model, or separately per top-level child (as VGGT
    clips aggregator, camera head and DPT heads separately). Returns the pre-clip norms."""
    if max_norm <= 0:
        return {}
    if not per_module:
        params = [p for p in model.parameters() if p.grad is not None]
        return {"grad_norm": float(torch.nn.utils.clip_grad_norm_(params, max_norm))} if params else {}
    norms = {}
    for name, child in model.named_children():
        params = [p for p in child.parameters() if p.grad is not None]
        if params:
            norms[f"grad_norm/{name}"] = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return norms
