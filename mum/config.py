"""Size presets of the MuM encoder and multi-view autoencoder (dataclasses, no argument lists)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch


@dataclass(frozen=True)
class EncoderConfig:
    """ViT encoder: patch embedding, cls token, axial RoPE, ``depth`` pre-norm blocks, final LayerNorm."""

    patch_size: int = 16
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-5
    rope_base: float = 100.0
    rope_dtype: str = "bfloat16"  # the released encoder-only checkpoint stores RoPE periods in bf16

    @property
    def torch_rope_dtype(self) -> torch.dtype:
        return getattr(torch, self.rope_dtype)


@dataclass(frozen=True)
class AutoEncoderConfig:
    """Multi-view masked autoencoder: encoder + decoder alternating frame/global attention blocks."""

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(norm_eps=1e-6, rope_dtype="float32"))
    decoder_embed_dim: int = 768
    decoder_depth: int = 12  # frame + global blocks together; must be even
    decoder_num_heads: int = 16
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True


def _encoder(embed_dim: int, depth: int, num_heads: int, **kw: Any) -> EncoderConfig:
    return EncoderConfig(embed_dim=embed_dim, depth=depth, num_heads=num_heads, **kw)


# Encoder-only presets match the released MuM_ViTLarge.pth conventions (LayerNorm eps 1e-5, bf16 RoPE).
ENCODER_PRESETS: dict[str, EncoderConfig] = {
    "vitl16": _encoder(1024, 24, 16),
    "vitb16": _encoder(768, 12, 12),
    "vits16": _encoder(384, 12, 6),
    "tiny": _encoder(192, 6, 3),
}

# Autoencoder presets match MuM_ViTLarge_BaseDecoder.pth conventions (LayerNorm eps 1e-6, fp32 RoPE).
_AE = dict(norm_eps=1e-6, rope_dtype="float32")
AUTOENCODER_PRESETS: dict[str, AutoEncoderConfig] = {
    "vitl16": AutoEncoderConfig(_encoder(1024, 24, 16, **_AE), 768, 12, 16),
    "vitb16": AutoEncoderConfig(_encoder(768, 12, 12, **_AE), 512, 8, 16),
    "vits16": AutoEncoderConfig(_encoder(384, 12, 6, **_AE), 256, 4, 8),
    "tiny": AutoEncoderConfig(_encoder(192, 6, 3, **_AE), 128, 2, 4),
}


def encoder_config(name: str) -> EncoderConfig:
    """The encoder preset ``name`` (``vitl16``, ``vitb16``, ``vits16``, ``tiny``)."""
    try:
        return ENCODER_PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown encoder preset {name!r}; choose one of {', '.join(ENCODER_PRESETS)}") from None


def autoencoder_config(name: str) -> AutoEncoderConfig:
    """The autoencoder preset ``name`` (``vitl16``, ``vitb16``, ``vits16``, ``tiny``)."""
    try:
        return AUTOENCODER_PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown autoencoder preset {name!r}; choose one of {', '.join(AUTOENCODER_PRESETS)}") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a (nested) config dataclass."""
    return asdict(cfg)


def encoder_config_from_dict(d: dict[str, Any]) -> EncoderConfig:
    names = {f.name for f in fields(EncoderConfig)}
    return EncoderConfig(**{k: v for k, v in d.items() if k in names})


def autoencoder_config_from_dict(d: dict[str, Any]) -> AutoEncoderConfig:
    d = dict(d)
    enc = encoder_config_from_dict(d.pop("encoder"))
    names = {f.name for f in fields(AutoEncoderConfig)}
    return AutoEncoderConfig(encoder=enc, **{k: v for k, v in d.items() if k in names})
