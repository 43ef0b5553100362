"""Stage 1: MuM multi-view MAE pretraining as a :class:`mum.training.Task`.

Each sample is one scene of ``S`` views (``S`` drawn per step from ``[views_min, views_max]``); every view is
masked uniformly at ``mask_ratio`` with a masking drawn from the sample's own generator (so the same sample
gets the same masking on any rank and after a resume); the loss is the MSE of per-patch-normalised pixels on
the removed patches (``MuMAutoEncoder.forward_loss``). AdamW lr = ``base_lr × batch / 256``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch
from torch import Tensor, nn

from .autoencoder import Masking, MuMAutoEncoder, build_autoencoder
from .checkpoint import save_safetensors
from .config import AutoEncoderConfig, autoencoder_config, config_to_dict
from .image import imagenet_normalize
from .training.config import DataConfig, OptimConfig, RunConfig, ScheduleConfig, to_dict
from .training.data import SampleKey, sample_generator
from .training.loop import Task
from .training.optim import param_groups
from .training.sources import ViewSource, build_source


@dataclass
class PretrainModelConfig:
    """``preset``: autoencoder size (``tiny`` … ``vitl16``); ``init``: optional weights to start from
    (official ``MuM_ViTLarge_BaseDecoder.pth`` or a project autoencoder safetensors)."""

    preset: str = "tiny"
    init: Optional[str] = None
    mask_ratio: float = 0.75


@dataclass
class PretrainConfig:
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)


class PretrainSamples:
    """``SampleKey → {"images": [S, 3, H, W] ImageNet-normalised, "ids_restore": [S, L] long}`` (picklable)."""

    def __init__(self, source: ViewSource, seed: int, patch_size: int, mask_ratio: float) -> None:
        self.source, self.seed, self.patch, self.ratio = source, seed, patch_size, mask_ratio

    def __call__(self, key: SampleKey) -> dict[str, Tensor]:
        images = self.source(key)["images"]
        S, _, H, W = images.shape
        L = (H // self.patch) * (W // self.patch)
        g = sample_generator(self.seed + 1, key.index)
        masking = Masking.random(S, L, self.ratio, torch.device("cpu"), generator=g)
        return {"images": imagenet_normalize(images), "ids_restore": masking.ids_restore}


class PretrainTask(Task):
    name = "pretrain"

    def __init__(self, cfg: PretrainConfig, source: Optional[dict[str, ViewSource]] = None) -> None:
        self.cfg = cfg
        self.run, self.optim, self.schedule, self.data = cfg.run, cfg.optim, cfg.schedule, cfg.data
        self._sources = source  # tests inject stand-ins; otherwise built from ``cfg.data``

    def ae_config(self) -> AutoEncoderConfig:
        from dataclasses import replace

        return replace(autoencoder_config(self.cfg.model.preset), mask_ratio=self.cfg.model.mask_ratio)

    def build_model(self) -> nn.Module:
        if self.cfg.model.init:
            from .weights import load_autoencoder

            return load_autoencoder(self.cfg.model.init, self.cfg.model.preset)
        return build_autoencoder(self.ae_config())

    def param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        return param_groups(model.named_parameters(), lr, self.optim.weight_decay, "autoencoder")

    def sample_fn(self, split: str) -> PretrainSamples:
        source = self._sources[split] if self._sources else build_source(self.data, split, self.run.seed)
        cfg = self.ae_config()
        return PretrainSamples(source, self.run.seed if split == "train" else 10_000 + self.run.seed,
                               cfg.encoder.patch_size, cfg.mask_ratio)

    def loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        ids = batch["ids_restore"]
        out = model(batch["images"], ids_restore=ids.flatten(0, 1))
        return out.loss, {}

    def evaluate(self, model: nn.Module, batches: Iterable[Mapping[str, Any]]) -> dict[str, float]:
        """Held-out masked reconstruction loss (fixed scenes and masks), averaged over scenes."""
        total, n = 0.0, 0
        for batch in batches:
            loss, _ = self.loss(model, batch)
            b = batch["images"].shape[0]
            total, n = total + float(loss) * b, n + b
        return {"recon_loss": total / max(n, 1)}

    def save_weights(self, state_dict: dict[str, Tensor], path: Path) -> None:
        cfg = self.ae_config()
        save_safetensors(state_dict, path, "mum-autoencoder", config_to_dict(cfg))

    def config_dict(self) -> dict[str, Any]:
        return to_dict(self.cfg)


def heldout_loss(model: MuMAutoEncoder, task: PretrainTask) -> float:
    """The task's held-out reconstruction loss for any autoencoder (e.g. before training)."""
    from .training.distributed import DistInfo
    from .training.loop import run_eval

    info = DistInfo(0, 1, 0, next(model.parameters()).device)
    return run_eval(task, model, info)["recon_loss"]
