"""The GPU speed options, checked on the CPU: chunked outputs gathered off the computing device one chunk at a
time, ``torch.compile`` of the transformer blocks (same numbers as eager), fused AdamW only on CUDA, the training
loop's compile switch."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch

import heads
from mum.layers import Block, compile_blocks, gather_chunks, map_chunks

REPO = Path(__file__).resolve().parents[1]


def test_gather_chunks_holds_one_chunk_at_a_time():
    """Each chunk's result is copied out and freed before the next is computed (bounded memory on the device
    that computes them), and the result is the concatenation."""
    made: list[weakref.ref] = []
    g = torch.Generator().manual_seed(0)
    expected = torch.randn(2, 10, 3, generator=g)

    def compute(start: int) -> tuple[torch.Tensor, torch.Tensor]:
        if made:
            gc.collect()
            assert made[-1]() is None, f"chunk {len(made) - 1} still alive when chunk {len(made)} is computed"
        values = expected[:, start:start + 3].clone()
        made.append(weakref.ref(values))
        return values, values.sum(-1)

    def chunks():  # as the DPT heads make them: nothing but the consumer holds a chunk once it is yielded
        for start in range(0, 10, 3):
            yield compute(start)

    values, conf = gather_chunks(chunks(), 10, dim=1, device="cpu")
    assert len(made) == 4
    torch.testing.assert_close(values, expected, rtol=0, atol=0)
    torch.testing.assert_close(conf, expected.sum(-1), rtol=0, atol=0)


def test_gather_chunks_structure_and_count():
    parts = [(torch.full((2, 4), float(i)), [torch.full((2,), float(i))]) for i in range(3)]
    joined = gather_chunks(iter(parts), 6)
    assert isinstance(joined, tuple) and isinstance(joined[1], list)
    assert joined[0][:, 0].tolist() == [0, 0, 1, 1, 2, 2] and joined[1][0].tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="held 6 items along dim 0, expected 7"):
        gather_chunks(iter(parts), 7)
    frames = torch.arange(24.0).reshape(2, 3, 4)
    torch.testing.assert_close(map_chunks(lambda x: x * 2, frames, 2, batch_dims=2), frames * 2)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return heads.load_model("mum-tiny", device="cpu")


def test_dpt_heads_gather_chunks_to_the_output_device(tiny, monkeypatch):
    """The dense heads' outputs, frame chunk by frame chunk into one buffer on ``output_device``: the same numbers as
    all frames at once, and each chunk's maps freed before the next chunk runs."""
    images = torch.rand(7, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    ref = tiny.predict(images, chunk_size=None)
    alive: list[weakref.ref] = []
    forward_frames = type(tiny.depth_head)._forward_frames

    def spy(self, *args):
        if self is tiny.depth_head:
            gc.collect()
            assert not alive or alive[-1]() is None, "the previous chunk's depth is still held"
        out = forward_frames(self, *args)
        if self is tiny.depth_head:
            alive.append(weakref.ref(out[0]))
        return out

    monkeypatch.setattr(type(tiny.depth_head), "_forward_frames", spy)
    out = tiny.predict(images, chunk_size=3, output_device="cpu")
    assert len(alive) == 3  # 3 + 3 + 1 frames
    for name in ("depth", "depth_conf", "world_points", "world_points_conf", "extrinsics", "images"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-5, rtol=1e-5)


def test_compile_blocks_covers_every_transformer_block(tiny):
    import copy

    model = copy.deepcopy(tiny)
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    cfg = model.cfg
    assert len(blocks) == cfg.encoder.depth + 2 * cfg.aggregator.depth + cfg.camera_head.trunk_depth
    assert compile_blocks(model) == len(blocks)  # wrapping only: the compilation happens at the first call
    assert all(b._compiled_call_impl is not None for b in blocks)
    assert model.depth_head._compiled_call_impl is None  # the heads stay eager


@pytest.mark.slow
def test_compiled_predict_matches_eager(tiny):
    """torch.compile of every block (≈ 15–45 s of compilation on the 2-core CPU): the same outputs as eager, and an
    input of another frame count and size reuses the graphs."""
    import copy

    from torch._dynamo.utils import counters

    model = copy.deepcopy(tiny)
    images = torch.rand(4, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    ref = model.predict(images)
    before = counters["stats"]["unique_graphs"]
    seconds = model.compile_for_inference()
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > before  # it did compile (one graph per block shape)
    out = model.predict(images)
    assert seconds > 0 and counters["stats"]["unique_graphs"] == graphs  # no new compilation for 4 frames at 64x96
    for name in ("depth", "depth_conf", "world_points", "pose_enc"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_cli_compile_reports_compile_time(tmp_path):
    images = sorted((REPO / "demo" / "tum_freiburg" / "images").glob("*.png"))[:3]
    result = subprocess.run([sys.executable, "-m", "app.cli", *map(str, images), "-o", str(tmp_path / "s.ply"), "--fast",
                             "--compile", "--json", "--device", "cpu"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["compile_s"] > 0 and summary["views"] == 3


def test_fused_adamw_only_when_every_parameter_is_on_cuda():
    from mum.training.config import OptimConfig
    from mum.training.optim import build_optimizer

    opt = build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(3))], "lr": 1e-3}], OptimConfig())
    assert not opt.defaults["fused"]  # fused=True on CPU parameters would run PyTorch's CPU fused kernel, or fail


def test_training_compile_switch_compiles_the_blocks(monkeypatch, tmp_path):
    """``run.compile: true`` puts every transformer block of the trained model under torch.compile before the
    first step (the compilation itself is not run here: the blocks are counted)."""
    import mum.training.loop as loop
    from mum.pretrain import PretrainConfig, PretrainTask
    from mum.training.config import load_config

    compiled = []

    def fake_compile(model):
        compiled.append(sum(isinstance(m, Block) for m in model.modules()))
        return compiled[-1]

    monkeypatch.setattr("mum.layers.compile_blocks", fake_compile)
    cfg = load_config(PretrainConfig, str(REPO / "configs" / "pretrain_tiny.yaml"),
                      [f"run.out_dir={tmp_path / 'run'}", "run.steps=1", "run.compile=true", "run.progress=false",
                       "run.eval_every=0", "run.batch_size=2", "data.scene_pool=4", "data.eval_scenes=2"])
    result = loop.train(PretrainTask(cfg), stop_at=1)
    assert compiled and compiled[0] > 0
    assert "train/compile_step_s" in result["train"]
