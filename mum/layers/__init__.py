"""Building blocks shared by every transformer in the project (one small module each)."""

from .attention import Attention, attention, math_attention, resolve_backend, xformers_available
from .block import Block
from .chunked import gather_chunks, map_chunks
from .compile import compile_blocks
from .layer_scale import LayerScale
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .rope import AxialRope, RopeTable, rotate_half

__all__ = [
    "Attention",
    "AxialRope",
    "Block",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "RopeTable",
    "attention",
    "compile_blocks",
    "gather_chunks",
    "map_chunks",
    "math_attention",
    "resolve_backend",
    "rotate_half",
    "xformers_available",
]
