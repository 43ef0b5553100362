"""VGGT-format models: the ``vggt-1b`` configuration, configs from official constructor arguments, and the
loader for official checkpoints (``model.pt`` / ``model.safetensors`` of VGGT-1B).

The project does not implement VGGT's point-tracking head: the loader drops exactly the ``track_head.*`` keys
and is strict about everything else (missing, unexpected or reshaped keys raise
:class:`mum.errors.CheckpointError`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional

from torch import Tensor, nn

from mum.checkpoint import load_into, load_state_dict

from .config import AggregatorConfig, CameraHeadConfig, DPTConfig, ReconstructorConfig
from .dinov2 import DINOV2_SIZES

DROPPED_PREFIX = "track_head."

VGGT_1B_DINOV2: dict[str, Any] = dict(
    img_size=518,
    patch_size=14,
    embed_dim=1024,
    depth=24,
    num_heads=16,
    mlp_ratio=4,
    num_register_tokens=4,
    interpolate_antialias=True,
    interpolate_offset=0.0,
    init_values=1.0,
)


def vggt_1b_config() -> ReconstructorConfig:
    """VGGT-1B: DINOv2 ViT-L/14 patch embed, 24 × (frame + global) blocks of 1024 dim, camera head on 2048-dim
    tokens (trunk 4), DPT heads (features 256, out_channels [256, 512, 1024, 1024], layers [4, 11, 17, 23]), 518 px."""
    return ReconstructorConfig(
        name="vggt-1b",
        image_size=518,
        patch_size=14,
        aggregator=AggregatorConfig(
            embed_dim=1024, depth=24, num_heads=16, patch_embed="dinov2", dinov2=dict(VGGT_1B_DINOV2)
        ),
        camera_head=CameraHeadConfig(trunk_depth=4, num_heads=16),
        dpt=DPTConfig(features=256, out_channels=(256, 512, 1024, 1024), intermediate_layer_idx=(4, 11, 17, 23)),
    )


def _require(kwargs: Mapping[str, Any], expected: Mapping[str, Any], what: str) -> None:
    for key, value in expected.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"{what}: {key}={kwargs[key]!r} is not supported (only {value!r})")


def config_from_official(submodules: Mapping[str, Any], name: str = "vggt") -> ReconstructorConfig:
    """A :class:`ReconstructorConfig` from official constructor arguments: ``submodules`` maps ``aggregator``,
    ``camera_head``, ``point_head``, ``depth_head`` to ``{"kwargs": ..., "patch_embed_override": ...}`` as in
    the parity vectors' JSON. Raises ``ValueError`` for options the project does not implement."""
    agg = dict(submodules["aggregator"]["kwargs"])
    _require(agg, {"qkv_bias": True, "proj_bias": True, "ffn_bias": True, "aa_order": ["frame", "global"]}, "aggregator")
    override = submodules["aggregator"].get("patch_embed_override")
    patch_embed, dinov2 = agg.get("patch_embed", "dinov2_vitl14_reg"), None
    if override is not None:
        patch_embed, dinov2 = "dinov2", dict(override["kwargs"])
    elif patch_embed in DINOV2_SIZES:
        dim, depth, heads = DINOV2_SIZES[patch_embed]
        dinov2 = dict(VGGT_1B_DINOV2, embed_dim=dim, depth=depth, num_heads=heads, img_size=agg.get("img_size", 518),
                      patch_size=agg.get("patch_size", 14), num_register_tokens=agg.get("num_register_tokens", 4))
        patch_embed = "dinov2"
    aggregator = AggregatorConfig(
        embed_dim=agg.get("embed_dim", 1024),
        depth=agg.get("depth", 24),
        num_heads=agg.get("num_heads", 16),
        mlp_ratio=agg.get("mlp_ratio", 4.0),
        num_register_tokens=agg.get("num_register_tokens", 4),
        qk_norm=agg.get("qk_norm", True),
        rope_freq=agg.get("rope_freq", 100),
        init_values=agg.get("init_values", 0.01),
        aa_block_size=agg.get("aa_block_size", 1),
        patch_embed=patch_embed,
        dinov2=dinov2,
    )
    cam = dict(submodules["camera_head"]["kwargs"])
    _require(cam, {"dim_in": 2 * aggregator.embed_dim, "pose_encoding_type": "absT_quaR_FoV", "trans_act": "linear",
                   "quat_act": "linear", "fl_act": "relu"}, "camera_head")
    heads = [dict(submodules[h]["kwargs"]) for h in ("point_head", "depth_head")]
    dpt_keys = ("features", "out_channels", "intermediate_layer_idx")
    if any(heads[0].get(k) != heads[1].get(k) for k in dpt_keys):
        raise ValueError("point_head and depth_head must share features, out_channels and intermediate_layer_idx")
    for h, (dim, act) in zip(heads, ((4, "inv_log"), (2, "exp"))):
        _require(h, {"dim_in": 2 * aggregator.embed_dim, "output_dim": dim, "activation": act, "conf_activation": "expp1",
                     "pos_embed": True, "feature_only": False, "down_ratio": 1}, "dpt head")
    return ReconstructorConfig(
        name=name,
        image_size=agg.get("img_size", 518),
        patch_size=agg.get("patch_size", 14),
        aggregator=aggregator,
        camera_head=CameraHeadConfig(
            trunk_depth=cam.get("trunk_depth", 4),
            num_heads=cam.get("num_heads", 16),
            mlp_ratio=cam.get("mlp_ratio", 4),
            init_values=cam.get("init_values", 0.01),
        ),
        dpt=DPTConfig(
            features=heads[0].get("features", 256),
            out_channels=tuple(heads[0].get("out_channels", (256, 512, 1024, 1024))),
            intermediate_layer_idx=tuple(heads[0].get("intermediate_layer_idx", (4, 11, 17, 23))),
        ),
    )


def is_vggt_state(state: Mapping[str, Tensor]) -> bool:
    """True for a VGGT-format state dict (official release or the project's ``vggt-1b``)."""
    return any(k.startswith("aggregator.patch_embed.") for k in state) and any(k.startswith("camera_head.") for k in state)


def without_track_head(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` minus exactly the ``track_head.*`` keys."""
    return {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIX)}


def load_vggt_weights(
    model: nn.Module, path: str | os.PathLike, state: Optional[Mapping[str, Tensor]] = None
) -> nn.Module:
    """Strictly load an official VGGT checkpoint (``track_head.*`` dropped) into a VGGT-format ``model``."""
    state = load_state_dict(path) if state is None else state
    return load_into(model, path, without_track_head(state), what=f"VGGT model {getattr(model, 'name', '')}".strip())
