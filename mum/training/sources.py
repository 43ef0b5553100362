"""View sources: ``SampleKey → dict of tensors`` for one scene, adapting ``mum.data`` to the loop.

Fields (``S`` views at ``DataConfig.image_size`` ``(H, W)``; first view defines nothing here — the
distillation targets re-express cameras in the first camera's frame):

* ``images`` ``[S, 3, H, W]`` float32 RGB in [0, 1] (always);
* ``extrinsics`` ``[S, 3, 4]`` camera-from-world, ``intrinsics`` ``[S, 3, 3]`` pixels (posed sources);
* ``depth`` ``[S, H, W]`` z-depth, ``valid`` ``[S, H, W]`` bool (dense for synthetic, sparse for COLMAP).

Scene seeds of the ``train`` and ``test`` splits come from the scene engine's disjoint seed ranges.
"""

from __future__ import annotations

from typing import Callable, Mapping

from torch import Tensor

from mum.errors import UserError

from .config import DataConfig
from .data import SampleKey

ViewSource = Callable[[SampleKey], Mapping[str, Tensor]]


def build_source(cfg: DataConfig, split: str, seed: int) -> ViewSource:
    """The view source ``cfg.source`` (``synthetic``, ``folder`` or ``colmap``) for ``split``."""
    if cfg.source == "synthetic":
        from .sources_impl import SyntheticSource

        return SyntheticSource(cfg, split, seed)
    if cfg.source in ("folder", "colmap"):
        from .sources_impl import SceneListSource

        return SceneListSource(cfg, split, seed, need_cameras=cfg.source == "colmap")
    raise UserError(f"data.source {cfg.source!r}: choose synthetic, folder or colmap")
