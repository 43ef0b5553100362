"""Configuration dataclasses of the :class:`~heads.model.Reconstructor` (one object per preset, JSON round trip).

A reconstructor is either a MuM encoder + linear projection feeding an aggregator without a patch embedding
(``encoder`` set, ``aggregator.patch_embed == "encoder"``), or a VGGT-style model whose aggregator owns its patch
embedding (``encoder`` None, ``patch_embed`` ``"conv"`` or ``"dinov2"`` with the ViT's kwargs in ``dinov2``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from mum.config import EncoderConfig, encoder_config_from_dict


@dataclass(frozen=True)
class AggregatorConfig:
    """Alternating-attention aggregator; see :class:`heads.aggregator.Aggregator`."""

    embed_dim: int = 1024
    depth: int = 24  # frame blocks (and as many global blocks)
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qk_norm: bool = True
    rope_freq: float = 100.0
    init_values: Optional[float] = 0.01
    aa_block_size: int = 1
    patch_embed: str = "encoder"  # "encoder" (MuM encoder outside), "conv", or "dinov2"
    dinov2: Optional[dict[str, Any]] = None  # DinoVisionTransformer kwargs when patch_embed == "dinov2"


@dataclass(frozen=True)
class CameraHeadConfig:
    """Camera head on ``2 · aggregator.embed_dim`` channels; see :class:`heads.camera_head.CameraHead`."""

    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: Optional[float] = 0.01
    num_iterations: int = 4


@dataclass(frozen=True)
class DPTConfig:
    """Both dense heads (points and depth); see :class:`heads.dpt.DPTHead`."""

    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, int, int, int] = (4, 11, 17, 23)


@dataclass(frozen=True)
class ReconstructorConfig:
    """A whole model. ``image_size``: default long side in pixels; ``patch_size``: pixels per token side."""

    name: str
    image_size: int
    patch_size: int
    aggregator: AggregatorConfig
    camera_head: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    dpt: DPTConfig = field(default_factory=DPTConfig)
    encoder: Optional[EncoderConfig] = None

    def __post_init__(self) -> None:
        uses_encoder = self.aggregator.patch_embed == "encoder"
        if uses_encoder != (self.encoder is not None):
            raise ValueError("set encoder exactly when aggregator.patch_embed == 'encoder'")
        if self.encoder is not None and self.encoder.patch_size != self.patch_size:
            raise ValueError(f"encoder patch size {self.encoder.patch_size} != model patch size {self.patch_size}")
        depth = self.aggregator.depth
        if any(not -depth <= i < depth for i in self.dpt.intermediate_layer_idx):
            raise ValueError(f"DPT layers {self.dpt.intermediate_layer_idx} out of range for depth {depth}")

    @property
    def token_dim(self) -> int:
        """Channels of the aggregator output tokens (frame and global outputs concatenated)."""
        return 2 * self.aggregator.embed_dim

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (recorded in project safetensors)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReconstructorConfig":
        d = dict(d)
        dpt = dict(d.pop("dpt", {}))
        for key in ("out_channels", "intermediate_layer_idx"):
            if key in dpt:
                dpt[key] = tuple(dpt[key])
        encoder = d.pop("encoder", None)
        return cls(
            aggregator=AggregatorConfig(**d.pop("aggregator")),
            camera_head=CameraHeadConfig(**d.pop("camera_head", {})),
            dpt=DPTConfig(**dpt),
            encoder=encoder_config_from_dict(encoder) if encoder is not None else None,
            **d,
        )
