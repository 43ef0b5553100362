"""heads.dpt.DPTHead: parity with the official VGGT DPT head, VGGT-1B key layout, chunking and shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from heads.dpt import DPTHead, uv_grid, uv_position_embedding

from conftest import REFERENCE as REFERENCES

REFERENCE = REFERENCES / "vggt"
TOL = 1e-5


def _reference(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    path = REFERENCE / f"{name}.npz"
    assert path.is_file(), f"VGGT reference vectors missing: {path}"
    spec = json.loads(path.with_suffix(".json").read_text())
    with np.load(path) as data:
        return spec, {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", ["dpt_point_head", "dpt_depth_head"])
def test_reference_outputs_reproduced(name):
    spec, data = _reference(name)
    head = DPTHead(**spec["kwargs"]).eval()
    state = {k[len("state.") :]: torch.from_numpy(v) for k, v in data.items() if k.startswith("state.")}
    head.load_state_dict(state, strict=True)
    tokens = [torch.from_numpy(data[f"input.tokens_{i}"]) for i in range(int(data["input.num_token_layers"]))]
    images = torch.from_numpy(data["input.images"])
    patch_start_idx = int(data["input.patch_start_idx"])
    with torch.no_grad():
        for suffix, chunk in (("", 8), ("_chunk2", 2)):
            preds, conf = head(tokens, images=images, patch_start_idx=patch_start_idx, frames_chunk_size=chunk)
            for out, ours in (("preds", preds), ("conf", conf)):
                expected = data[f"output.{out}{suffix}"]
                assert ours.shape == expected.shape
                diff = float(np.abs(ours.numpy() - expected).max())
                assert diff < TOL, f"{name}.{out}{suffix}: max abs diff {diff:.2e}"


@pytest.mark.parametrize(
    "prefix, kwargs",
    [
        ("point_head.", dict(dim_in=2048, output_dim=4, activation="inv_log", conf_activation="expp1")),
        ("depth_head.", dict(dim_in=2048, output_dim=2, activation="exp", conf_activation="expp1")),
        (
            "track_head.feature_extractor.",
            dict(dim_in=2048, features=128, feature_only=True, down_ratio=2, pos_embed=False),
        ),
    ],
)
def test_vggt_1b_key_layout(prefix, kwargs):
    path = REFERENCE / "vggt_1b_keys.json"
    if not path.is_file():
        pytest.skip(f"VGGT-1B key list not found at {path}")
    keys = json.loads(path.read_text())["keys"]
    official = [(k[len(prefix) :], shape) for k, shape, _ in keys if k.startswith(prefix)]
    with torch.device("meta"):
        head = DPTHead(**kwargs)
    ours = [(k, list(v.shape)) for k, v in head.state_dict().items()]
    assert ours == official  # same names, shapes and state-dict order


def _tokens(batch, frames, grid_h, grid_w, dim, layers=4, special=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, frames, special + grid_h * grid_w, dim, generator=gen) for _ in range(layers)]


def _small_head(**overrides) -> DPTHead:
    kwargs = dict(dim_in=32, patch_size=16, features=16, out_channels=[8, 16, 16, 16])
    kwargs.update(intermediate_layer_idx=[0, 1, 2, 3])
    kwargs.update(overrides)
    torch.manual_seed(0)
    return DPTHead(**kwargs).eval()


@pytest.mark.parametrize("grid_hw", [(3, 5), (4, 6), (1, 1)])
def test_chunked_equals_unchunked_and_shapes(grid_hw):
    grid_h, grid_w = grid_hw
    head = _small_head()
    tokens = _tokens(2, 5, grid_h, grid_w, 32)
    images = torch.zeros(2, 5, 3, grid_h * 16, grid_w * 16)
    with torch.no_grad():
        points, conf = head(tokens, images, patch_start_idx=5, frames_chunk_size=None)
        points2, conf2 = head(tokens, images, patch_start_idx=5, frames_chunk_size=2)
    assert points.shape == (2, 5, grid_h * 16, grid_w * 16, 3) and conf.shape == (2, 5, grid_h * 16, grid_w * 16)
    torch.testing.assert_close(points2, points, atol=TOL, rtol=TOL)
    torch.testing.assert_close(conf2, conf, atol=TOL, rtol=TOL)
    assert torch.isfinite(points).all() and (conf > 1).all()


def test_depth_head_positive_and_feature_only():
    tokens = _tokens(1, 3, 3, 4, 32)
    images = torch.zeros(1, 3, 3, 48, 64)
    with torch.no_grad():
        depth, conf = _small_head(output_dim=2, activation="exp")(tokens, images, 5)
        features = _small_head(feature_only=True, down_ratio=2)(tokens, images, 5, frames_chunk_size=1)
    assert depth.shape == (1, 3, 48, 64, 1) and (depth > 0).all()
    assert features.shape == (1, 3, 16, 24, 32)


def test_gradients_flow_and_bad_chunk_size():
    head = _small_head().train()
    tokens = [t.requires_grad_() for t in _tokens(1, 2, 2, 3, 32)]
    points, conf = head(tokens, torch.zeros(1, 2, 3, 32, 48), 5, frames_chunk_size=1)
    (points.square().mean() + conf.mean()).backward()
    assert all(p.grad is not None for p in head.parameters())
    assert tokens[0].grad is not None and tokens[0].grad[:, :, :5].abs().max() == 0  # special tokens unused
    with pytest.raises(ValueError):
        head(tokens, torch.zeros(1, 2, 3, 32, 48), 5, frames_chunk_size=0)


def test_uv_embedding_layout():
    grid = uv_grid(width=5, height=3, aspect_ratio=5 / 3)
    assert grid.shape == (3, 5, 2)
    # cell centres symmetric about 0, u along columns, v along rows; the corners of the image lie on the unit circle
    torch.testing.assert_close(grid[1, 2], torch.zeros(2))
    assert grid[0, 0, 0] < grid[0, 4, 0] and grid[0, 0, 1] < grid[2, 0, 1]
    corner = grid[-1, -1] * torch.tensor([5 / 4, 3 / 2])  # undo the (n - 1) / n inset
    torch.testing.assert_close(corner.norm(), torch.tensor(1.0))
    emb = uv_position_embedding(3, 5, 8, aspect_ratio=5 / 3)
    assert emb.shape == (8, 3, 5)
    # channel 0 is sin(u · ω_0) with ω_0 = 1; channel 2 is cos(u · ω_0); channel 4 is sin(v)
    torch.testing.assert_close(emb[0], torch.sin(grid[..., 0]))
    torch.testing.assert_close(emb[2], torch.cos(grid[..., 0]))
    torch.testing.assert_close(emb[4], torch.sin(grid[..., 1]))
