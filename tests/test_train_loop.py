"""The generic loop: configs and overrides, schedule, exact resume after a kill, 2-process DDP parity."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from mum.checkpoint import load_state_dict
from mum.errors import UserError
from mum.pretrain import PretrainConfig, PretrainTask
from mum.training.config import load_config
from mum.training.data import SampleKey, StepBatchSampler
from mum.training.logs import read_metrics
from mum.training.loop import train
from mum.training.schedule import lr_factor
from mum.training.state import latest_checkpoint


class StandInViews:
    """Deterministic smooth images per sample index (a stand-in for the scene engine), 32×32."""

    def __call__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(key.index)
        base = torch.rand(1, 3, 4, 4, generator=g)
        shift = 0.1 * torch.rand(key.num_views, 3, 1, 1, generator=g)
        return {"images": F.interpolate(base + shift, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)}


def tiny_task(out: Path, *overrides: str) -> PretrainTask:
    base = [f"run.out_dir={out}", "run.steps=6", "run.batch_size=4", "run.log_every=1", "run.ckpt_every=3",
            "run.progress=false", "run.device=cpu", "optim.lr=1e-3", "schedule.warmup_steps=2",
            "data.views_min=2", "data.views_max=3", "data.eval_scenes=2", "data.eval_views=2", "data.image_size=[32,32]"]
    cfg = load_config(PretrainConfig, None, base + list(overrides))
    return PretrainTask(cfg, source={"train": StandInViews(), "test": StandInViews()})


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    preset = tmp_path / "p.yaml"
    preset.write_text("run:\n  steps: 7\noptim:\n  base_lr: 1.5e-4\n")
    cfg = load_config(PretrainConfig, preset, ["optim.lr=1e-3", "data.image_size=[64, 96]"])
    assert cfg.run.steps == 7 and cfg.optim.lr == 1e-3 and cfg.data.image_size == (64, 96)
    assert cfg.optim.resolve_lr(512) == 1e-3
    assert load_config(PretrainConfig, preset).optim.resolve_lr(512) == pytest.approx(3e-4)
    with pytest.raises(UserError, match="unknown key"):
        load_config(PretrainConfig, preset, ["optim.lrr=1"])
    with pytest.raises(UserError, match="expected int"):
        load_config(PretrainConfig, preset, ["run.steps=abc"])


def test_schedule_warmup_then_cosine() -> None:
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, min_ratio=0.1) == pytest.approx(0.1)


def test_sampler_partitions_global_batch() -> None:
    one = list(StepBatchSampler(0, 8, 8, 0, 1, (2, 5), steps=3))
    two = [list(StepBatchSampler(0, 8, 2, r, 2, (2, 5), steps=3)) for r in range(2)]
    for step in range(3):
        merged = sorted(k.index for r in range(2) for mb in two[r][2 * step : 2 * step + 2] for k in mb)
        assert merged == [k.index for k in one[step]]
        assert {k.num_views for r in range(2) for mb in two[r][2 * step : 2 * step + 2] for k in mb} == {one[step][0].num_views}


def test_sampler_crop_sizes_are_per_step_and_resume_safe() -> None:
    sizes = [(32, 32), (24, 32), (32, 24)]
    keys = list(StepBatchSampler(0, 4, 4, 0, 1, (2, 3), steps=12, crops=sizes))
    crops = [mb[0].crop for mb in keys]
    assert all(len({k.crop for k in mb}) == 1 for mb in keys) and set(crops) == set(sizes)
    resumed = list(StepBatchSampler(0, 4, 4, 0, 1, (2, 3), steps=12, start_step=5, crops=sizes))
    assert [mb[0].crop for mb in resumed] == crops[5:]
    assert all(k.crop is None for mb in StepBatchSampler(0, 4, 4, 0, 1, (2, 3), steps=2) for k in mb)


def test_centre_crop_keeps_depth_and_intrinsics_consistent() -> None:
    """Unprojecting a cropped view with its shifted intrinsics gives the same 3D points as the full view."""
    from mum.geometry import intrinsics_from_fov
    from mum.training.sources import centre_crop

    K = torch.from_numpy(intrinsics_from_fov(1.0, 40, 32)).float()
    depth = 1 + torch.rand(2, 32, 40)
    sample = {"images": torch.rand(2, 3, 32, 40), "depth": depth, "valid": depth > 1.5, "intrinsics": K.expand(2, 3, 3)}
    out = centre_crop(sample, 24, 32)
    assert out["images"].shape == (2, 3, 24, 32) and out["depth"].shape == out["valid"].shape == (2, 24, 32)

    def unproject(d: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        v, u = torch.meshgrid(torch.arange(d.shape[-2]).float(), torch.arange(d.shape[-1]).float(), indexing="ij")
        return torch.stack([(u - K[0, 2]) / K[0, 0] * d, (v - K[1, 2]) / K[1, 1] * d, d], -1)

    torch.testing.assert_close(unproject(out["depth"][0], out["intrinsics"][0]), unproject(depth[0], K)[4:28, 4:36])
    # a centred principal point stays centred
    assert out["intrinsics"][0, 0, 2] == pytest.approx(K[0, 2] - 4) and out["intrinsics"][0, 1, 2] == pytest.approx(K[1, 2] - 4)
    with pytest.raises(UserError, match="even margins"):
        centre_crop(sample, 23, 32)


def test_kill_and_resume_gives_identical_losses(tmp_path: Path) -> None:
    full = tmp_path / "full"
    train(tiny_task(full))
    cut = tmp_path / "cut"
    train(tiny_task(cut), stop_at=5)  # "killed" after step 5; last checkpoint at step 3
    assert latest_checkpoint(cut).name == "step_00000003"  # (step 6 is the end)
    train(tiny_task(cut))  # resumes from step 3
    a = read_metrics(full / "metrics.jsonl", "train/loss")
    b = read_metrics(cut / "metrics.jsonl", "train/loss")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    assert [a[k] for k in sorted(a)] == [b[k] for k in sorted(b)]
    wa = load_state_dict(latest_checkpoint(full) / "model.safetensors")
    wb = load_state_dict(latest_checkpoint(cut) / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, out: str, port: int, fsdp: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from mum.training import distributed

    try:
        train(tiny_task(Path(out), "run.steps=3", "run.ckpt_every=3", f"run.fsdp={str(fsdp).lower()}"))
    finally:
        distributed.teardown()


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp2"])
def test_two_process_gloo_equals_one_process(tmp_path: Path, fsdp: bool) -> None:
    """DDP, or FSDP2 sharding per block (its checkpoint gathered to a full state dict), on 2 gloo processes."""
    single = tmp_path / "single"
    train(tiny_task(single, "run.steps=3", "run.ckpt_every=3"))
    ddp = tmp_path / "ddp"
    mp.start_processes(_ddp_worker, args=(str(ddp), _free_port(), fsdp), nprocs=2, start_method="spawn")
    wa = load_state_dict(latest_checkpoint(single) / "model.safetensors")
    wb = load_state_dict(latest_checkpoint(ddp) / "model.safetensors")
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    # one batch vs two half-batches averaged over ranks: the same gradients up to float summation order, which
    # after 3 Adam steps moves weights by ~1e-5 (measured 1.04e-5 on this CPU); a rank that skips the gradient
    # all-reduce or sees the wrong half of the batch is off by the order of an Adam step (lr = 1e-3)
    assert worst < 5e-5, worst
    la = read_metrics(single / "metrics.jsonl", "train/loss")
    lb = read_metrics(ddp / "metrics.jsonl", "train/loss")
    assert [la[k] for k in sorted(la)] == pytest.approx([lb[k] for k in sorted(lb)], rel=1e-5)


@pytest.mark.parametrize("override", ["run.batch_size=0", "run.steps=0", "run.precision=fp8", "data.image_size=[50,50]",
                                      "data.views_min=5", "data.views_max=1"])
def test_bad_config_values_are_user_errors(override):
    """Caught when the config is built (one line from mum-train), not as a ZeroDivisionError mid-run."""
    from mum.errors import UserError
    from mum.pretrain import PretrainConfig
    from mum.training.config import load_config

    with pytest.raises(UserError):
        load_config(PretrainConfig, None, [override, "data.views_max=4"] if "views_max" not in override else [override])


@pytest.mark.parametrize("device", ["foo", "mps"])
def test_unsupported_training_device_is_a_user_error(device):
    from mum.errors import UserError
    from mum.training.distributed import pick_device

    with pytest.raises(UserError, match="not supported"):
        pick_device(device)


def test_out_dir_that_is_a_file_is_a_user_error(tmp_path):
    from mum.pretrain import PretrainConfig, PretrainTask
    from mum.training.config import load_config
    from mum.training.loop import train

    (tmp_path / "taken").write_text("not a folder")
    for out in ("taken", "taken/run"):
        task = PretrainTask(load_config(PretrainConfig, None, [f"run.out_dir={tmp_path / out}", "run.steps=1",
                                                               "run.device=cpu", "data.image_size=[32,32]", "data.views_max=2"]))
        with pytest.raises(UserError, match="not a folder"):
            train(task)
    assert (tmp_path / "taken").read_text() == "not a folder"
