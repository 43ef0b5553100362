"""Load MuM encoders and autoencoders from official ``.pth`` releases or project safetensors."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Optional, Union

import torch

from .autoencoder import MuMAutoEncoder, build_autoencoder
from .checkpoint import check_model_fits_file, load_into, load_state_dict, read_config, save_safetensors
from .config import AutoEncoderConfig, EncoderConfig, autoencoder_config_from_dict, encoder_config_from_dict
from .encoder import MuMEncoder, build_encoder
from .errors import CheckpointError, UserError


def load_encoder(
    path: str | os.PathLike, preset: Union[str, EncoderConfig] = "vitl16", device: Optional[str] = None
) -> MuMEncoder:
    """Encoder weights from ``MuM_ViTLarge.pth`` (strict, into ``preset``), from the encoder part of an
    autoencoder checkpoint, or from a project safetensors file that records its own config."""
    kind, cfg = read_config(path)
    if cfg is not None:
        if kind == "mum-autoencoder":
            return load_autoencoder(path).to(device or "cpu")
        if kind != "mum-encoder":
            raise CheckpointError(path, f"holds a {kind!r} model, not a MuM encoder")
        preset = _recorded(path, encoder_config_from_dict, cfg)
        check_model_fits_file(lambda device: build_encoder(preset, device), path, "MuM encoder")
    state = load_state_dict(path)
    if cfg is None and "decoder_embed.weight" in state:
        return load_autoencoder(path, preset if isinstance(preset, str) else "vitl16").to(device or "cpu")
    model = build_encoder(preset)
    load_into(model, path, state, what="MuM encoder")
    return model.to(device or "cpu")


def load_autoencoder(
    path: str | os.PathLike, preset: Union[str, AutoEncoderConfig] = "vitl16", device: Optional[str] = None
) -> MuMAutoEncoder:
    """Autoencoder from ``MuM_ViTLarge_BaseDecoder.pth`` (strict) or project safetensors with its config."""
    kind, cfg = read_config(path)
    if cfg is not None:
        if kind != "mum-autoencoder":
            raise CheckpointError(path, f"holds a {kind!r} model, not a MuM autoencoder")
        preset = _recorded(path, autoencoder_config_from_dict, cfg)
        check_model_fits_file(lambda device: build_autoencoder(preset, device), path, "MuM autoencoder")
    model = build_autoencoder(preset)
    load_into(model, path, what="MuM autoencoder")
    return model.to(device or "cpu")


def _recorded(path, parse, cfg: dict):
    """The config a safetensors file records, every field checked by ``parse`` (one line naming the file)."""
    try:
        return parse(cfg, "mum.config")
    except UserError as exc:
        raise CheckpointError(path, f"has an unusable config ({exc})") from None


def save_model(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Save a MuM encoder or autoencoder as safetensors with its config."""
    if isinstance(model, MuMAutoEncoder):
        save_safetensors(model, path, "mum-autoencoder", asdict(model.ae_cfg))
    elif isinstance(model, MuMEncoder):
        save_safetensors(model, path, "mum-encoder", asdict(model.cfg))
    else:
        raise TypeError(f"cannot save {type(model).__name__} as a MuM model")
