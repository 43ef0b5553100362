"""A generic, readable training loop shared by MuM pretraining and distillation finetuning.

``config``: dataclass configs from YAML presets with ``a.b=value`` overrides; ``distributed``: torchrun/DDP
set-up and per-rank seeding; ``data``: step-indexed deterministic batches (exact resume, rank-invariant);
``schedule``: warm-up + cosine; ``optim``: AdamW parameter groups and per-module clipping;
``state``: checkpoints; ``logs``: TensorBoard/JSONL metrics and a progress bar; ``loop``: the loop itself.
"""

from .config import DataConfig, OptimConfig, RunConfig, ScheduleConfig, apply_overrides, load_config
from .loop import Task, train

__all__ = [
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "ScheduleConfig",
    "Task",
    "apply_overrides",
    "load_config",
    "train",
]
