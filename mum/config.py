"""Size presets of the MuM encoder and multi-view autoencoder (dataclasses, no argument lists)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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

    def __post_init__(self) -> None:
        check_heads(self.embed_dim, self.num_heads, "embed_dim", "num_heads")

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

    def __post_init__(self) -> None:
        check_heads(self.decoder_embed_dim, self.decoder_num_heads, "decoder_embed_dim", "decoder_num_heads")
        if self.decoder_depth % 2:
            raise ValueError("decoder_depth counts frame + global blocks and must be even")


def check_heads(dim: int, heads: int, dim_name: str, heads_name: str) -> None:
    """Attention splits ``dim`` into ``heads`` heads, and axial RoPE needs a head dimension divisible by 4."""
    if dim % heads or (dim // heads) % 4:
        raise ValueError(f"{dim_name} {dim} must be {heads_name} ({heads}) heads of a size divisible by 4")


# What a model config recorded in a file (``mum.config``) may hold: every number's range, checked before
# anything is built (:func:`mum.schema.dataclass_from_dict`); large enough for every preset and VGGT-1B
CONFIG_RANGES: dict[str, tuple[float, float]] = {
    "patch_size": (1, 64),
    "embed_dim": (4, 8192),
    "depth": (1, 96),
    "num_heads": (1, 256),
    "mlp_ratio": (0.125, 16.0),
    "norm_eps": (1e-12, 1.0),
    "rope_base": (1e-3, 1e9),
    "decoder_embed_dim": (4, 8192),
    "decoder_depth": (2, 96),
    "decoder_num_heads": (1, 256),
    "mask_ratio": (0.0, 0.99),
}
CONFIG_CHOICES: dict[str, tuple[str, ...]] = {"rope_dtype": ("float32", "bfloat16", "float16", "float64")}


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


def encoder_config_from_dict(d: Any, where: str = "encoder") -> EncoderConfig:
    """An :class:`EncoderConfig` from a JSON object, every field's type and range checked
    (:data:`CONFIG_RANGES`); unknown fields are ignored. One :class:`~mum.errors.UserError` line otherwise."""
    from mum.schema import dataclass_from_dict

    return dataclass_from_dict(EncoderConfig, d, where, CONFIG_RANGES, CONFIG_CHOICES, strict=False)


def autoencoder_config_from_dict(d: Any, where: str = "config") -> AutoEncoderConfig:
    """An :class:`AutoEncoderConfig` from a JSON object, checked like :func:`encoder_config_from_dict`."""
    from mum.schema import dataclass_from_dict

    return dataclass_from_dict(AutoEncoderConfig, d, where, CONFIG_RANGES, CONFIG_CHOICES, strict=False)
