"""MuM encoder/autoencoder reproduce the official implementation's outputs and checkpoint layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mum import build_autoencoder, build_encoder
from mum.parity import TOLERANCE, check_parity_file, main


@pytest.mark.parametrize("name", ["encoder_small", "autoencoder_small"])
def test_reference_outputs_reproduced(mum_reference, name):
    diffs = check_parity_file(mum_reference / f"{name}.npz")
    expected = {k[len("output.") :] for k in np.load(mum_reference / f"{name}.npz").files if k.startswith("output.")}
    assert expected <= diffs.keys()
    for out, diff in diffs.items():
        assert diff < TOLERANCE, f"{name}.{out}: max abs diff {diff:.2e}"


def test_parity_command_exit_codes(mum_reference, tmp_path, capsys):
    assert main([str(mum_reference / "encoder_small.npz")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["x_norm_patchtokens", "x_norm_cls_token", "x_prenorm"]
    # a corrupted copy must fail: perturb one weight
    data = dict(np.load(mum_reference / "encoder_small.npz"))
    data["state.blocks.1.mlp.fc2.bias"] = data["state.blocks.1.mlp.fc2.bias"] + 1e-3
    np.savez(tmp_path / "bad.npz", **data)
    (tmp_path / "bad.json").write_text((mum_reference / "encoder_small.json").read_text())
    assert main([str(tmp_path / "bad.npz")]) == 1


def _layout(model: torch.nn.Module) -> dict[str, list]:
    return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()}


def test_vitl16_layout_matches_official_checkpoints(mum_reference):
    official = json.loads((mum_reference / "official_checkpoint_keys.json").read_text())
    encoder = build_encoder("vitl16", device="meta")
    autoencoder = build_autoencoder("vitl16", device="meta")
    assert _layout(encoder) == {k: [list(s), d] for k, (s, d) in official["MuM_ViTLarge.pth"].items()}
    assert _layout(autoencoder) == {k: [list(s), d] for k, (s, d) in official["MuM_ViTLarge_BaseDecoder.pth"].items()}
