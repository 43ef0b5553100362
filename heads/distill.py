"""Stage 2: distillation finetuning of the :class:`~heads.model.Reconstructor` as a training task.

Student = MuM encoder + projection + aggregator + heads (a ``heads`` preset), initialised at random, from
official MuM encoder weights or a MuM pretraining checkpoint (``student.encoder_init``), or from a whole
reconstructor checkpoint (``student.weights``). Protocols: ``frozen`` (encoder fixed; the paper's probe of
the features) and ``full`` (encoder trained at ``optim.encoder_lr_mult × lr``). Targets come from a teacher
(:mod:`heads.teachers`): ``ground_truth`` (synthetic engine), ``colmap`` (real photos), or ``model`` (a
``vggt-1b`` checkpoint or any project checkpoint), optionally cached on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch
from torch import Tensor, nn

from mum.checkpoint import save_safetensors
from mum.errors import UserError
from mum.geometry import pose_encoding_to_extrinsics_intrinsics
from mum.training.config import DataConfig, OptimConfig, RunConfig, ScheduleConfig, to_dict
from mum.training.loop import Task
from mum.training.optim import param_groups
from mum.training.sources import ViewSource, build_source

from .losses import LossConfig, distillation_loss
from .metrics import depth_metrics, pose_auc30
from .teachers import CachedTeacher, ColmapTeacher, GroundTruthTeacher, ModelTeacher, Teacher, normalize_targets


@dataclass
class StudentConfig:
    """``preset``: a ``heads`` model name; ``encoder_init``: MuM encoder weights (official ``.pth`` or a
    pretraining checkpoint); ``weights``: a whole reconstructor checkpoint; ``protocol``: frozen | full."""

    preset: str = "mum-tiny"
    encoder_init: Optional[str] = None
    weights: Optional[str] = None
    protocol: str = "full"


@dataclass
class TeacherConfig:
    """``kind``: ground_truth | colmap | model; ``model``/``weights``: for ``model`` (a preset with weights, or
    a checkpoint path); ``cache_dir``: store/reuse targets; ``conf_percentile``: drop the teacher's least
    confident pixels (per view)."""

    kind: str = "ground_truth"
    model: Optional[str] = None
    weights: Optional[str] = None
    cache_dir: Optional[str] = None
    conf_percentile: float = 0.0


@dataclass
class DistillConfig:
    student: StudentConfig = field(default_factory=StudentConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)


def build_student(cfg: StudentConfig) -> nn.Module:
    """The student model on the CPU, initialised as the config says, with the protocol's frozen parts."""
    from .registry import load_model, load_weights

    if cfg.protocol not in ("frozen", "full"):
        raise UserError(f"student.protocol {cfg.protocol!r}: choose frozen or full")
    model = load_model(cfg.preset, weights=cfg.weights, device="cpu")
    if cfg.encoder_init:
        if model.encoder is None:
            raise UserError(f"student.encoder_init: {cfg.preset} has no MuM encoder")
        load_weights(model, cfg.encoder_init)
    if cfg.protocol == "frozen" and model.encoder is not None:
        model.encoder.requires_grad_(False)
    return model.train()


def build_teacher(cfg: TeacherConfig, device: torch.device, precision: str = "bf16") -> Teacher:
    """The teacher ``cfg.kind`` on ``device`` (wrapped in a cache when ``cache_dir`` is set)."""
    inner: Optional[Teacher]
    if cfg.kind == "ground_truth":
        inner = GroundTruthTeacher()
    elif cfg.kind == "colmap":
        inner = ColmapTeacher()
    elif cfg.kind == "model":
        if not cfg.model:
            raise UserError("teacher.kind model needs teacher.model (a preset name or checkpoint path)")
        from .registry import load_model

        inner = ModelTeacher(load_model(cfg.model, weights=cfg.weights, device=device), cfg.conf_percentile, precision)
    else:
        raise UserError(f"teacher.kind {cfg.kind!r}: choose ground_truth, colmap or model")
    return CachedTeacher(inner, cfg.cache_dir) if cfg.cache_dir else inner


class DistillTask(Task):
    name = "distill"

    def __init__(self, cfg: DistillConfig, source: Optional[dict[str, ViewSource]] = None) -> None:
        self.cfg = cfg
        self.run, self.optim, self.schedule, self.data = cfg.run, cfg.optim, cfg.schedule, cfg.data
        self._sources = source
        self._teacher: Optional[Teacher] = None
        self._model_cfg: Optional[dict[str, Any]] = None

    def build_model(self) -> nn.Module:
        model = build_student(self.cfg.student)
        self._model_cfg = model.cfg.to_dict()
        return model

    def param_groups(self, model: nn.Module, lr: float) -> list[dict]:
        enc = [(n, p) for n, p in model.named_parameters() if n.startswith("encoder.")]
        rest = [(n, p) for n, p in model.named_parameters() if not n.startswith("encoder.")]
        wd = self.optim.weight_decay
        return param_groups(rest, lr, wd, "heads") + param_groups(enc, lr * self.optim.encoder_lr_mult, wd, "encoder")

    def sample_fn(self, split: str) -> ViewSource:
        return self._sources[split] if self._sources else build_source(self.data, split, self.run.seed)

    def teacher(self, device: torch.device) -> Teacher:
        if self._teacher is None:
            self._teacher = build_teacher(self.cfg.teacher, device, self.run.precision)
        return self._teacher

    def loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            targets = self.teacher(batch["images"].device)(batch)
        pred = model(batch["images"])
        losses = distillation_loss(pred, targets, self.cfg.loss)
        keep = ("camera", "depth", "points", "depth_conf", "points_conf")
        return losses["loss"], {k: losses[k].detach() for k in keep if k in losses}

    def evaluate(self, model: nn.Module, batches: Iterable[Mapping[str, Any]]) -> dict[str, float]:
        """Held-out pose AUC@30 against the source's cameras (all view pairs) and depth AbsRel / δ<1.25."""
        aucs, absrel, delta = [], [], []
        for batch in batches:
            out = model(batch["images"])
            H, W = batch["images"].shape[-2:]
            extr, _ = pose_encoding_to_extrinsics_intrinsics(out["pose_enc"].float(), (H, W))
            for b in range(extr.shape[0]):
                aucs.append(pose_auc30(extr[b], batch["extrinsics"][b])["auc30"])
                if "depth" in batch:
                    d = depth_metrics(out["depth"][b, ..., 0], batch["depth"][b], batch["valid"][b])
                    absrel.append(d["abs_rel"])
                    delta.append(d["delta_1.25"])
        res = {"auc30": sum(aucs) / max(1, len(aucs))}
        if absrel:
            res.update({"abs_rel": sum(absrel) / len(absrel), "delta_1.25": sum(delta) / len(delta)})
        return res

    def save_weights(self, state_dict: dict[str, Tensor], path: Path) -> None:
        from .registry import CHECKPOINT_KIND

        save_safetensors(state_dict, path, CHECKPOINT_KIND, self._model_cfg)

    def config_dict(self) -> dict[str, Any]:
        return to_dict(self.cfg)


__all__ = ["DistillConfig", "DistillTask", "StudentConfig", "TeacherConfig", "build_student", "build_teacher",
           "normalize_targets"]
