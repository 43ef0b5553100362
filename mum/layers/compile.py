"""``torch.compile`` for the project's transformers: every :class:`~mum.layers.Block` compiled in place.

Blocks of one shape share one compiled graph (their weights are graph inputs), so a ViT-L with 24 blocks costs
one compilation, not 24. ``dynamic=True`` traces with symbolic sizes, so another frame count or image size does
not compile again (a chunk of exactly one frame is specialised once). Attention inside a compiled block keeps
the backend verified when it was traced (:mod:`mum.layers.attention`).
"""

from __future__ import annotations

from typing import Optional

from torch import nn

from .attention import choice_constant_under_compile
from .block import Block


def compile_blocks(module: nn.Module, dynamic: Optional[bool] = True) -> int:
    """Compile every :class:`Block` inside ``module`` in place (``nn.Module.compile``); the rest stays eager.
    The compilation happens at each block's first call. Returns the number of blocks."""
    choice_constant_under_compile()
    blocks = [m for m in module.modules() if isinstance(m, Block)]
    for block in blocks:
        block.compile(dynamic=dynamic)
    return len(blocks)
