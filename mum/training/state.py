"""Training checkpoints for exact resume.

Layout of ``<out_dir>/checkpoints/step_00001000/``:

* ``model.safetensors`` — the model weights with their config (``mum/checkpoint.py``; loadable on its own);
* ``trainer.pt`` — optimizer, scheduler, step and config (plain tensors/containers: ``weights_only=True``);
* ``rng_rank{r}.pt`` — each rank's Python/NumPy/torch(/CUDA) RNG states;
* ``COMPLETE`` — written last; a directory without it (a kill during saving) is ignored.

The data position is the step number (see ``data.py``), so nothing else is needed to resume exactly.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from mum.checkpoint import load_into

from .distributed import DistInfo, barrier

CKPT_DIR = "checkpoints"


def rng_state() -> dict[str, Any]:
    """RNG states as tensors/containers only (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / CKPT_DIR / f"step_{step:08d}"


def latest_checkpoint(out_dir: str | Path) -> Optional[Path]:
    """The newest complete checkpoint directory, or None."""
    root = Path(out_dir) / CKPT_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step_*") if (p / "COMPLETE").exists())
    return done[-1] if done else None


def _full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool) -> tuple[dict, dict]:
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return model.state_dict(), optimizer.state_dict()


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    save_weights: Callable[[dict, Path], None],
    info: DistInfo,
    config: dict[str, Any],
    fsdp: bool = False,
    keep: int = 2,
) -> Path:
    """Write the checkpoint after ``step`` optimiser steps (collective: call on every rank)."""
    path = step_dir(out_dir, step)
    model_sd, optim_sd = _full_state_dicts(model, optimizer, fsdp)
    if info.is_main:
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        save_weights(model_sd, path / "model.safetensors")
        trainer = {"step": step, "optimizer": optim_sd, "scheduler": scheduler.state_dict(), "config": config}
        torch.save(trainer, path / "trainer.pt")
    barrier()
    torch.save(rng_state(), path / f"rng_rank{info.rank}.pt")
    barrier()
    if info.is_main:
        (path / "COMPLETE").write_text(f"{step}\n")
        old = sorted(p for p in (Path(out_dir) / CKPT_DIR).glob("step_*") if (p / "COMPLETE").exists())
        for p in old[: max(0, len(old) - keep)]:
            shutil.rmtree(p, ignore_errors=True)
    barrier()
    return path


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, info: DistInfo, fsdp: bool = False
) -> int:
    """Restore model (strict), optimizer, scheduler and this rank's RNG; returns the step to continue from.

    Call before wrapping with DDP (or after ``fully_shard`` for FSDP2)."""
    trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    if fsdp:
        from mum.checkpoint import load_state_dict
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(
            model,
            optimizer,
            model_state_dict=load_state_dict(path / "model.safetensors"),
            optim_state_dict=trainer["optimizer"],
            options=StateDictOptions(full_state_dict=True),
        )
    else:
        load_into(model, path / "model.safetensors", what="training checkpoint")
        optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    rng_file = path / f"rng_rank{info.rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=True))
    return int(trainer["step"])
