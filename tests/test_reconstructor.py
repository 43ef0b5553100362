"""Reconstructor: predict shapes and finiteness, chunking invariance, frame conventions, registry round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import heads
from heads.config import ReconstructorConfig
from heads.model import Reconstructor
from mum import build_autoencoder, build_encoder
from mum.checkpoint import save_safetensors
from mum.errors import CheckpointError, UserError

H, W = 48, 80  # non-square, odd patch grid (3 x 5), multiples of the patch size 16


@pytest.fixture(scope="module")
def tiny() -> Reconstructor:
    torch.manual_seed(0)
    return heads.load_model("mum-tiny", device="cpu")


def _images(*lead: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*lead, 3, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("frames", [1, 2, 16])
def test_predict_shapes_and_finite(tiny, frames):
    pred = tiny.predict(_images(frames))
    B, S = 1, frames
    expected = {
        "extrinsics": (B, S, 3, 4),
        "intrinsics": (B, S, 3, 3),
        "depth": (B, S, H, W, 1),
        "depth_conf": (B, S, H, W),
        "world_points": (B, S, H, W, 3),
        "world_points_conf": (B, S, H, W),
        "pose_enc": (B, S, 9),
        "images": (B, S, H, W, 3),
    }
    for name, shape in expected.items():
        value = getattr(pred, name)
        assert tuple(value.shape) == shape, name
        assert value.dtype == torch.float32 and torch.isfinite(value).all(), name
    assert (pred.depth > 0).all() and (pred.depth_conf > 1).all() and (pred.world_points_conf > 1).all()
    # intrinsics in network pixels with the principal point at the image centre
    assert torch.allclose(pred.intrinsics[..., 0, 2], torch.full((B, S), W / 2))
    assert torch.allclose(pred.intrinsics[..., 1, 2], torch.full((B, S), H / 2))
    single = pred.squeeze_batch().numpy()
    assert isinstance(single.depth, np.ndarray) and single.depth.shape == (S, H, W, 1)


def test_chunked_and_unchunked_agree(tiny):
    images = _images(5)
    full = tiny.predict(images, chunk_size=None)
    for chunk in (1, 2):
        part = tiny.predict(images, chunk_size=chunk)
        for name in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
            diff = (getattr(full, name) - getattr(part, name)).abs().max().item()
            assert diff < 1e-5, f"{name} chunk {chunk}: {diff:.2e}"


def test_batched_equals_per_scene(tiny):
    a, b = _images(3, seed=1), _images(3, seed=2)
    both = tiny.predict(torch.stack([a, b]))
    assert both.pose_enc.shape == (2, 3, 9)
    for i, scene in enumerate((a, b)):
        alone = tiny.predict(scene)
        assert torch.allclose(both.scene(i).depth, alone.squeeze_batch().depth, atol=1e-5)
        assert torch.allclose(both.scene(i).pose_enc, alone.squeeze_batch().pose_enc, atol=1e-5)


def test_non_reference_frames_are_permutation_equivariant(tiny):
    """Frame 0 is the world frame; frames 1..S-1 share tokens, so reordering them reorders the outputs."""
    images = _images(4)
    order = torch.tensor([0, 2, 3, 1])
    ref, perm = tiny.predict(images), tiny.predict(images[order])
    assert torch.allclose(ref.pose_enc[:, order], perm.pose_enc, atol=1e-5)
    assert torch.allclose(ref.depth[:, order], perm.depth, atol=1e-5)


def test_forward_returns_training_outputs(tiny):
    tiny.train()
    try:
        out = tiny(_images(2, 2), chunk_size=None)
    finally:
        tiny.eval()
    assert set(out) == {"pose_enc", "pose_enc_list", "depth", "depth_conf", "world_points", "world_points_conf", "images",
                        "descriptors"}
    assert out["descriptors"].shape == (2, 2, tiny.cfg.aggregator.embed_dim)
    assert torch.allclose(out["descriptors"].norm(dim=-1), torch.ones(2, 2), atol=1e-5)
    assert len(out["pose_enc_list"]) == tiny.cfg.camera_head.num_iterations
    assert out["pose_enc"] is out["pose_enc_list"][-1]
    loss = out["depth"].mean() + out["world_points"].mean() + sum(p.mean() for p in out["pose_enc_list"])
    loss.backward()
    assert tiny.encoder.blocks[0].attn.qkv.weight.grad is not None
    assert tiny.aggregator.global_blocks[0].attn.qkv.weight.grad is not None
    tiny.zero_grad(set_to_none=True)


def test_bad_image_sizes_are_rejected(tiny):
    with pytest.raises(ValueError, match="multiple of the patch size"):
        tiny.predict(torch.rand(2, 3, 60, 96))
    with pytest.raises(ValueError, match="expected images"):
        tiny.predict(torch.rand(3, 60, 96))


def test_registry_names_and_configs():
    assert set(heads.list_models()) >= {"mum-vitl16", "mum-small", "mum-tiny", "vggt-1b"}
    assert heads.DEFAULT_MODEL in heads.list_models()
    for name in heads.list_models():
        cfg = heads.model_config(name)
        assert ReconstructorConfig.from_dict(cfg.to_dict()) == cfg
    vitl = heads.model_config("mum-vitl16")
    assert (vitl.image_size, vitl.aggregator.embed_dim, vitl.aggregator.depth, vitl.token_dim) == (480, 768, 6, 1536)
    assert vitl.dpt.intermediate_layer_idx == (2, 3, 4, 5)
    with pytest.raises(UserError, match="not a model name"):
        heads.load_model("no-such-model-or-file")


def test_project_checkpoint_round_trip(tiny, tmp_path):
    path = heads.save_model(tiny, tmp_path / "tiny.safetensors")
    loaded = heads.load_model(str(path), device="cpu")
    assert loaded.cfg == tiny.cfg and loaded.name == "mum-tiny"
    images = _images(2)
    assert torch.equal(loaded.predict(images).depth, tiny.predict(images).depth)
    heads.load_model("mum-tiny", weights=path, device="cpu")  # a preset with project weights


def test_official_mum_weights_load_into_the_encoder(tmp_path):
    torch.manual_seed(1)
    encoder = build_encoder("tiny")
    torch.save(encoder.state_dict(), tmp_path / "MuM_tiny.pth")
    model = heads.load_model("mum-tiny", weights=tmp_path / "MuM_tiny.pth", device="cpu")
    assert all(torch.equal(model.encoder.state_dict()[k], v) for k, v in encoder.state_dict().items())

    autoencoder = build_autoencoder("tiny")
    torch.save(autoencoder.state_dict(), tmp_path / "MuM_tiny_decoder.pth")
    model = heads.load_model("mum-tiny", weights=tmp_path / "MuM_tiny_decoder.pth", device="cpu")
    assert torch.equal(model.encoder.blocks[0].attn.qkv.weight, autoencoder.blocks[0].attn.qkv.weight)


def test_wrong_weights_give_one_line_errors(tiny, tmp_path):
    small_encoder = build_encoder("vits16", device="meta")
    state = {k: torch.zeros(v.shape) for k, v in small_encoder.state_dict().items()}
    torch.save(state, tmp_path / "vits.pth")
    (tmp_path / "truncated.safetensors").write_bytes(b"\x00" * 10)
    save_safetensors(build_encoder("tiny"), tmp_path / "encoder.safetensors", kind="mum-encoder", config={})
    cases = [
        ("mum-tiny", tmp_path / "vits.pth"),  # another encoder size
        ("mum-tiny", tmp_path / "truncated.safetensors"),
        ("mum-tiny", tmp_path / "missing.pth"),
        (str(tmp_path / "encoder.safetensors"), None),  # a project file of another kind
        (str(tmp_path / "vits.pth"), None),  # no recorded config
    ]
    for name, weights in cases:
        with pytest.raises(CheckpointError) as err:
            heads.load_model(name, weights=weights, device="cpu")
        assert "\n" not in str(err.value)


def test_every_block_uses_the_project_attention_function(tiny, monkeypatch):
    import importlib

    attention_module = importlib.import_module("mum.layers.attention")  # the module, not the function
    calls = []
    original = attention_module.attention

    def counting(q, k, v, backend=None):
        calls.append(q.shape)
        return original(q, k, v, backend)

    monkeypatch.setattr(attention_module, "attention", counting)
    tiny.predict(_images(3), chunk_size=None)
    cfg = tiny.cfg
    expected = cfg.encoder.depth + 2 * cfg.aggregator.depth + cfg.camera_head.trunk_depth * cfg.camera_head.num_iterations
    assert len(calls) == expected
