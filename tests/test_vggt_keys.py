"""``vggt-1b`` has exactly the VGGT-1B checkpoint layout (minus the track head); the loader is strict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from heads.model import Reconstructor, build_reconstructor
from heads.registry import PRESETS, load_weights
from heads.vggt import config_from_official, is_vggt_state, load_vggt_weights
from mum.errors import CheckpointError

from conftest import REFERENCE


def _reference(name: str) -> Path:
    path = REFERENCE / name
    assert path.exists(), f"reference file missing: {path}"
    return path


def _layout(model: torch.nn.Module) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()]


def test_vggt_1b_layout_matches_official_checkpoint():
    ref = json.loads(_reference("vggt/vggt_1b_keys.json").read_text())
    expected = [(k, list(s), d) for k, s, d in ref["keys"] if not k.startswith("track_head.")]
    model = build_reconstructor(PRESETS["vggt-1b"], device="meta")
    assert _layout(model) == expected  # names, shapes, dtypes and state-dict order
    total = sum(n for p, n in ref["num_elements_by_prefix"].items() if p != "track_head")
    assert sum(v.numel() for v in model.state_dict().values()) == total == 1_190_596_120


def test_mum_vitl16_encoder_matches_official_mum_release():
    official = json.loads(_reference("mum/official_checkpoint_keys.json").read_text())["MuM_ViTLarge.pth"]
    model = build_reconstructor(PRESETS["mum-vitl16"], device="meta")
    assert model.encoder is not None
    assert {k: list(v.shape) for k, v in model.encoder.state_dict().items()} == {k: list(s) for k, (s, _) in official.items()}
    assert tuple(model.encoder_proj.weight.shape) == (768, 1024)
    assert model.camera_head.token_norm.normalized_shape == (1536,)


@pytest.fixture(scope="module")
def small_vggt() -> Reconstructor:
    spec = json.loads(_reference("vggt/vggt_small.json").read_text())
    torch.manual_seed(0)
    return build_reconstructor(config_from_official(spec["submodules"], name="vggt-small")).eval()


def test_loader_drops_exactly_the_track_head(small_vggt, tmp_path):
    state = {k: torch.randn_like(v) for k, v in small_vggt.state_dict().items()}
    released = dict(state, **{"track_head.feature_extractor.norm.weight": torch.ones(3), "track_head.x": torch.zeros(1)})
    path = tmp_path / "model.pt"
    torch.save(released, path)
    assert is_vggt_state(released)
    load_vggt_weights(small_vggt, path)
    assert all(torch.equal(small_vggt.state_dict()[k], v) for k, v in state.items())
    load_weights(small_vggt, path)  # format recognised by its keys


@pytest.mark.parametrize("damage", ["missing", "unexpected", "reshaped"])
def test_loader_is_strict_outside_the_track_head(small_vggt, tmp_path, damage):
    state = {k: v.clone() for k, v in small_vggt.state_dict().items()}
    if damage == "missing":
        state.pop("camera_head.trunk_norm.weight")
    elif damage == "unexpected":
        state["aggregator.extra_token"] = torch.zeros(1)
    else:
        state["point_head.norm.weight"] = torch.zeros(7)
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_vggt_weights(small_vggt, path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
