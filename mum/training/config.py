"""Training configs: nested dataclasses loaded from a YAML preset plus ``section.field=value`` overrides.

A preset names only what differs from the defaults; ``--set optim.lr=1e-3`` parses the value as YAML and
checks that the field exists, so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, TypeVar

import yaml

from mum.errors import UserError

T = TypeVar("T")


@dataclass
class RunConfig:
    """Where and how long to run. ``batch_size`` is the global batch in scenes per optimiser step; each rank
    runs ``micro_batch`` scenes per forward; the gradient accumulation is ``batch / (micro_batch · world)``."""

    out_dir: str = "runs/default"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 8
    micro_batch: int = 0  # 0: batch_size / world (no accumulation)
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "bf16"  # bf16 | fp16 | fp32 (autocast on CUDA only; CPU always fp32)
    grad_checkpointing: bool = False
    compile: bool = False  # torch.compile every transformer block (the first step includes the compilation)
    fsdp: bool = False  # FSDP2 (fully_shard) per block instead of DDP, for ViT-L sizes on GPUs
    log_every: int = 10
    ckpt_every: int = 100
    eval_every: int = 0  # 0: only at the end
    eval_batches: int = 4
    keep_checkpoints: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "ckpt_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise UserError(f"run.{name} must be at least 1 (got {getattr(self, name)})")
        if self.micro_batch < 0 or self.eval_every < 0 or self.eval_batches < 0:
            raise UserError("run.micro_batch, run.eval_every and run.eval_batches must not be negative")
        if self.precision not in ("bf16", "fp16", "fp32"):
            raise UserError(f"run.precision={self.precision}: use bf16, fp16 or fp32")


@dataclass
class OptimConfig:
    """AdamW. ``lr`` if set is absolute; otherwise ``base_lr × batch_size / 256`` (the MAE rule)."""

    lr: Optional[float] = None
    base_lr: float = 1.5e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    encoder_lr_mult: float = 0.1  # full finetuning: encoder lr = lr × this
    clip_grad: float = 1.0  # 0 disables
    clip_per_module: bool = False  # clip each top-level child module separately (distillation)

    def resolve_lr(self, batch_size: int) -> float:
        return self.lr if self.lr is not None else self.base_lr * batch_size / 256


@dataclass
class ScheduleConfig:
    """Linear warm-up (``warmup_steps`` or the fraction ``warmup_frac`` of all steps) then cosine to
    ``min_lr_ratio × lr``."""

    warmup_steps: int = 0
    warmup_frac: float = 0.05
    min_lr_ratio: float = 0.0


@dataclass
class DataConfig:
    """Training samples: ``source`` is ``synthetic`` (the scene engine), ``folder`` (image folders; pretraining
    only) or ``colmap`` (COLMAP/transforms.json scenes; distillation with the COLMAP teacher)."""

    source: str = "synthetic"
    paths: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (224, 224)  # (H, W), multiples of the patch size
    # per optimiser step one (H, W) drawn from this list (repeats weight it): every view of the step is centre-
    # cropped from image_size to it, intrinsics following (mixed aspect ratios); empty: image_size only
    crop_sizes: list[tuple[int, int]] = field(default_factory=list)
    views_min: int = 2
    views_max: int = 24
    scene_kinds: list[str] = field(default_factory=list)  # empty: every kind the engine has
    num_workers: int = 0
    scene_pool: int = 0  # synthetic train split: >0 reuses this many scenes (rendered once with views_max views)
    eval_scenes: int = 16  # held-out scenes (test seed range) for the in-loop evaluation
    eval_views: int = 4

    def __post_init__(self) -> None:
        sizes = [tuple(self.image_size), *map(tuple, self.crop_sizes)]
        if any(len(s) != 2 or min(s) < 16 or s[0] % 16 or s[1] % 16 for s in sizes):
            raise UserError(f"data.image_size / data.crop_sizes {sizes}: (H, W) pairs of positive multiples of 16")
        if not 1 <= self.views_min <= self.views_max:
            raise UserError(f"data.views_min={self.views_min}, views_max={self.views_max}: need 1 ≤ views_min ≤ views_max")
        if self.num_workers < 0 or self.scene_pool < 0 or self.eval_scenes < 0 or self.eval_views < 1:
            raise UserError("data.num_workers, scene_pool and eval_scenes must not be negative, eval_views ≥ 1")


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Coerce a YAML value to the annotated type ``tp`` (dataclasses, tuples, lists, Optional, scalars)."""
    origin = typing.get_origin(tp)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        out = [_convert(item, v, where) for v in value]
        return tuple(out) if origin is tuple else out
    if tp is float and isinstance(value, str):  # PyYAML reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise UserError(f"{where}: expected a number, got {value!r}") from None
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise UserError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (partial) dict; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain (YAML/JSON-ready) dict of a config dataclass; tuples become lists."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to a nested dict, in place; returns it."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected key=value, e.g. optim.lr=1e-3")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return data


def load_config(cls: type[T], path: Optional[str | Path] = None, overrides: Sequence[str] = ()) -> T:
    """Config ``cls`` from the YAML file ``path`` (optional) with ``overrides`` applied on top."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a mapping at the top level")
    apply_overrides(data, overrides)
    return from_dict(cls, data, where=str(path) if path else "config")
