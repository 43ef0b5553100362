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

import torch
from torch import Tensor

from mum.errors import UserError
from mum.io import ViewTransform

from .config import DataConfig
from .data import SampleKey

ViewSource = Callable[[SampleKey], Mapping[str, Tensor]]


def centre_crop(sample: Mapping[str, Tensor], height: int, width: int) -> dict[str, Tensor]:
    """Centre-crop every view of a source sample to ``height × width`` (even margins, so a centred principal
    point stays centred); ``intrinsics`` follow by the crop's :class:`mum.io.ViewTransform` (a shift of the
    principal point by the margins)."""
    H, W = sample["images"].shape[-2:]
    if height > H or width > W or (H - height) % 2 or (W - width) % 2:
        raise UserError(f"crop {height}x{width} does not fit {H}x{W} with even margins (data.crop_sizes)")
    y0, x0 = (H - height) // 2, (W - width) // 2
    tf = ViewTransform.crop((W, H), (width, height), x0, y0, width, height)
    out = dict(sample)
    for key in ("images", "depth", "valid"):
        if key in out:
            out[key] = out[key][..., y0 : y0 + height, x0 : x0 + width]
    if "intrinsics" in out:
        K = out["intrinsics"]
        out["intrinsics"] = torch.from_numpy(tf.intrinsics_to_network(K.double().numpy())).to(K.dtype)
    return out


class CroppingSource:
    """A source whose samples are centre-cropped to their key's ``crop`` size (when set)."""

    def __init__(self, inner: ViewSource) -> None:
        self.inner = inner

    def __call__(self, key: SampleKey) -> Mapping[str, Tensor]:
        sample = self.inner(key)
        return sample if key.crop is None else centre_crop(sample, *key.crop)


def build_source(cfg: DataConfig, split: str, seed: int) -> ViewSource:
    """The view source ``cfg.source`` (``synthetic``, ``folder`` or ``colmap``) for ``split``, applying the
    per-step crop sizes of ``cfg.crop_sizes``."""
    inner: ViewSource
    if cfg.source == "synthetic":
        from .scene_sources import SyntheticSource

        inner = SyntheticSource(cfg, split, seed)
    elif cfg.source in ("folder", "colmap"):
        from .scene_sources import SceneListSource

        inner = SceneListSource(cfg, split, seed, need_cameras=cfg.source == "colmap")
    else:
        raise UserError(f"data.source {cfg.source!r}: choose synthetic, folder or colmap")
    return CroppingSource(inner) if cfg.crop_sizes else inner
