"""Official .pth and project safetensors load strictly; every bad file gives a one-line CheckpointError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mum import build_autoencoder, build_encoder
from mum.checkpoint import read_config
from mum.config import EncoderConfig
from mum.errors import CheckpointError
from mum.weights import load_autoencoder, load_encoder, save_model

SMALL = EncoderConfig(embed_dim=64, depth=2, num_heads=2)


def _one_line(exc: CheckpointError, path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg


def test_official_style_pth_roundtrip(tmp_path):
    enc = build_encoder(SMALL)
    path = tmp_path / "MuM_small.pth"
    torch.save(enc.state_dict(), path)
    loaded = load_encoder(path, preset=SMALL)
    x = torch.randn(1, 3, 32, 48)
    torch.testing.assert_close(loaded(x), enc(x))
    assert loaded.rope_embed.periods.dtype == torch.bfloat16


def test_official_pth_wrapped_in_model_key(tmp_path):
    enc = build_encoder(SMALL)
    path = tmp_path / "wrapped.pth"
    torch.save({"model": enc.state_dict(), "epoch": 3}, path)
    loaded = load_encoder(path, preset=SMALL)
    torch.testing.assert_close(loaded.cls_token, enc.cls_token)


def test_safetensors_roundtrip_records_config(tmp_path):
    ae = build_autoencoder("tiny")
    path = tmp_path / "ae.safetensors"
    save_model(ae, path)
    kind, cfg = read_config(path)
    assert kind == "mum-autoencoder" and cfg["decoder_embed_dim"] == ae.ae_cfg.decoder_embed_dim
    loaded = load_autoencoder(path)  # no preset given: the file says what it is
    for (k, a), (k2, b) in zip(ae.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="file not found") as info:
        load_encoder(tmp_path / "nope.pth", preset=SMALL)
    _one_line(info.value, tmp_path / "nope.pth")


def test_truncated_file(tmp_path):
    path = tmp_path / "trunc.pth"
    torch.save(build_encoder(SMALL).state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_encoder(path, preset=SMALL)
    _one_line(info.value, path)


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "t.safetensors"
    save_model(build_encoder(SMALL), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError) as info:
        load_encoder(path)
    _one_line(info.value, path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "image.pth"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    with pytest.raises(CheckpointError) as info:
        load_encoder(path, preset=SMALL)
    _one_line(info.value, path)
    empty = tmp_path / "empty.pth"
    empty.touch()
    with pytest.raises(CheckpointError, match="empty"):
        load_encoder(empty, preset=SMALL)


def test_pickled_object_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weights": torch.nn.Linear(2, 2)}, path)  # a module, not tensors: weights_only refuses it
    with pytest.raises(CheckpointError, match="pickled Python objects") as info:
        load_encoder(path, preset=SMALL)
    _one_line(info.value, path)
    assert "weights_only" not in str(info.value)  # no hint towards the unsafe way round


def test_random_bytes_are_called_corrupt_not_unsafe(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_encoder(path, preset=SMALL)
    _one_line(info.value, path)


def test_wrong_architecture_names_missing_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(build_encoder(EncoderConfig(embed_dim=64, depth=3, num_heads=2)).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(blocks\.2\.") as info:
        load_encoder(path, preset=SMALL)
    _one_line(info.value, path)
    path2 = tmp_path / "wide.pth"
    torch.save(build_encoder(EncoderConfig(embed_dim=128, depth=2, num_heads=2)).state_dict(), path2)
    with pytest.raises(CheckpointError, match="another shape"):
        load_encoder(path2, preset=SMALL)
