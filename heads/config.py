"""Configuration dataclasses of the :class:`~heads.model.Reconstructor` (one object per preset, JSON round trip).

A reconstructor is either a MuM encoder + linear projection feeding an aggregator without a patch embedding
(``encoder`` set, ``aggregator.patch_embed == "encoder"``), or a VGGT-style model whose aggregator owns its patch
embedding (``encoder`` None, ``patch_embed`` ``"conv"`` or ``"dinov2"`` with the ViT's kwargs in ``dinov2``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from mum.config import CONFIG_CHOICES as ENCODER_CHOICES
from mum.config import CONFIG_RANGES as ENCODER_RANGES
from mum.config import EncoderConfig, check_heads


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
        agg = self.aggregator
        depth = agg.depth
        if any(not -depth <= i < depth for i in self.dpt.intermediate_layer_idx):
            raise ValueError(f"DPT layers {self.dpt.intermediate_layer_idx} out of range for depth {depth}")
        if len(self.dpt.out_channels) != 4 or len(self.dpt.intermediate_layer_idx) != 4:
            raise ValueError("the DPT heads take exactly four out_channels and four intermediate_layer_idx")
        if any(c % 4 for c in self.dpt.out_channels) or self.dpt.features % 8:
            raise ValueError("DPT out_channels must be divisible by 4 and features by 8 (the UV position embedding "
                             "of their maps and of the half-width fused map)")
        check_heads(agg.embed_dim, agg.num_heads, "aggregator.embed_dim", "aggregator.num_heads")
        if depth % agg.aa_block_size:
            raise ValueError(f"aggregator.depth {depth} is not divisible by aa_block_size {agg.aa_block_size}")
        if self.token_dim % self.camera_head.num_heads:
            raise ValueError(f"the camera head's {self.token_dim} channels do not split into "
                             f"{self.camera_head.num_heads} heads")
        if self.image_size < self.patch_size:
            raise ValueError(f"image_size {self.image_size} is smaller than one patch ({self.patch_size})")

    @property
    def token_dim(self) -> int:
        """Channels of the aggregator output tokens (frame and global outputs concatenated)."""
        return 2 * self.aggregator.embed_dim

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (recorded in project safetensors)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> "ReconstructorConfig":
        """A config from its JSON form (:meth:`to_dict`, as recorded in a project safetensors file): every
        field's type and range checked (:data:`CONFIG_RANGES`; a DINOv2 patch embedding's arguments against
        :data:`DINOV2_FIELDS`) before anything is built; one :class:`~mum.errors.UserError` line otherwise."""
        from mum.schema import dataclass_from_dict

        config = dataclass_from_dict(cls, d, where, CONFIG_RANGES, CONFIG_CHOICES)
        if config.aggregator.dinov2 is not None:
            _check_dinov2(config.aggregator.dinov2, f"{where}.aggregator.dinov2")
        return config


# What a recorded reconstructor config may hold (with the encoder's, mum.config.CONFIG_RANGES): large enough for
# every preset and VGGT-1B; a model beyond them is refused before it is built
CONFIG_RANGES: dict[str, tuple[float, float]] = {
    **ENCODER_RANGES,
    "image_size": (16, 4096),
    "num_register_tokens": (0, 64),
    "rope_freq": (1e-3, 1e9),
    "init_values": (0.0, 1e3),
    "aa_block_size": (1, 96),
    "trunk_depth": (1, 96),
    "num_iterations": (1, 32),
    "features": (4, 8192),
    "out_channels": (4, 8192),
    "intermediate_layer_idx": (-96, 95),
    "img_size": (16, 4096),
    "interpolate_offset": (-1.0, 1.0),
    "block_chunks": (0, 0),
}
CONFIG_CHOICES: dict[str, tuple[str, ...]] = {**ENCODER_CHOICES, "patch_embed": ("encoder", "conv", "dinov2")}
# heads.dinov2.DinoVisionTransformer's arguments a recorded config may give, and their types
DINOV2_FIELDS: dict[str, type] = {
    "img_size": int, "patch_size": int, "embed_dim": int, "depth": int, "num_heads": int, "mlp_ratio": float,
    "qkv_bias": bool, "proj_bias": bool, "ffn_bias": bool, "init_values": Optional[float],
    "num_register_tokens": int, "interpolate_antialias": bool, "interpolate_offset": float, "block_chunks": int,
    "qk_norm": bool,
}


def _check_dinov2(kwargs: dict[str, Any], where: str) -> None:
    from mum.errors import UserError
    from mum.schema import check_field, shown

    for key, value in kwargs.items():
        if key not in DINOV2_FIELDS:
            raise UserError(f"{where}: unknown field {shown(key)}")
        check_field(DINOV2_FIELDS[key], value, where, key, CONFIG_RANGES, CONFIG_CHOICES, True)
    dim, heads = kwargs.get("embed_dim", 1024), kwargs.get("num_heads", 16)
    if dim % heads:
        raise UserError(f"{where}: embed_dim {dim} does not split into {heads} heads")
