"""Distillation: teachers (ground truth, model, cache), frozen vs full protocol, checkpoints that load."""

from __future__ import annotations

from pathlib import Path

import torch

from heads.distill import DistillConfig, DistillTask
from heads.registry import load_model
from heads.teachers import CachedTeacher, GroundTruthTeacher, ModelTeacher
from mum.geometry import sparse_depth
from mum.checkpoint import load_state_dict
from mum.training.config import load_config
from mum.training.data import SampleKey, collate
from mum.training.distributed import seed_everything
from mum.training.loop import train
from mum.training.state import latest_checkpoint


def _cfg(out: Path, *overrides: str) -> DistillConfig:
    base = [f"run.out_dir={out}", "run.steps=2", "run.batch_size=1", "run.log_every=1", "run.ckpt_every=2",
            "run.progress=false", "run.device=cpu", "optim.lr=1e-3", "data.image_size=[32,32]",
            "data.views_min=2", "data.views_max=2", "data.eval_scenes=1", "data.eval_views=2"]
    return load_config(DistillConfig, None, base + list(overrides))


def _batch(task: DistillTask, n: int = 2, views: int = 2) -> dict:
    fn = task.sample_fn("train")
    return collate([fn(SampleKey(i, views)) for i in range(n)])


def test_frozen_protocol_trains_heads_only_and_checkpoint_loads(tmp_path: Path) -> None:
    task = DistillTask(_cfg(tmp_path / "run", "student.protocol=frozen"))
    seed_everything(task.run.seed)  # as train() does before building the model
    init = task.build_model().state_dict()
    result = train(task)
    assert "auc30" in result["eval"] and "abs_rel" in result["eval"]
    ckpt = latest_checkpoint(tmp_path / "run") / "model.safetensors"
    after = load_state_dict(ckpt)
    enc = [k for k in after if k.startswith("encoder.")]
    assert enc and all(torch.equal(after[k], init[k]) for k in enc)
    assert any(not torch.equal(after[k], init[k]) for k in after if k.startswith("camera_head."))
    model = load_model(str(ckpt), device="cpu")  # the project's loader reads the config back
    assert model.name == "mum-tiny"


def test_ground_truth_targets_are_normalised_and_cache_round_trips(tmp_path: Path) -> None:
    task = DistillTask(_cfg(tmp_path / "run"))
    batch = _batch(task)
    t = GroundTruthTeacher()(batch)
    dist = (t["world_points"].norm(dim=-1) * t["valid"]).flatten(1).sum(1) / t["valid"].flatten(1).sum(1)
    assert torch.allclose(dist, torch.ones(2), atol=1e-4)
    assert torch.allclose(t["extrinsics"][:, 0], torch.eye(4)[:3].expand(2, 3, 4), atol=1e-5)
    cached = CachedTeacher(GroundTruthTeacher(), tmp_path / "cache")
    first = cached(batch)
    assert len(list((tmp_path / "cache" / "train").glob("*.npz"))) == 2
    again = CachedTeacher(None, tmp_path / "cache")(batch)  # no teacher needed on a hit
    for k in ("pose_enc", "depth", "world_points"):
        assert torch.allclose(first[k], again[k], rtol=2e-3, atol=2e-3), k
    assert torch.equal(first["valid"], again["valid"])


def test_model_teacher_gives_targets_with_confidence(tmp_path: Path) -> None:
    task = DistillTask(_cfg(tmp_path / "run"))
    batch = _batch(task, n=1)
    teacher = ModelTeacher(load_model("mum-tiny", device="cpu"), conf_percentile=20)
    t = teacher(batch)
    assert t["depth"].shape == (1, 2, 32, 32) and t["world_points_conf"].shape == (1, 2, 32, 32)
    assert 0.7 < float(t["valid"].float().mean()) < 0.9
    assert torch.isfinite(t["pose_enc"]).all()


def test_sparse_depth_projects_points() -> None:
    import numpy as np

    K = np.array([[10.0, 0, 4], [0, 10, 4], [0, 0, 1]])
    E = np.eye(4)[None, :3]
    pts = np.array([[0.0, 0, 2], [0, 0, 1], [0.4, 0, 2]])  # two on the centre ray: the nearer wins
    d, v = sparse_depth(pts, E, K[None], 8, 8)
    assert v.sum() == 2 and d[0, 4, 4] == 1.0 and d[0, 4, 6] == 2.0
