"""Image tensor conventions shared by the encoder, heads and applications."""

from __future__ import annotations

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(images: Tensor) -> Tensor:
    """RGB in [0, 1] ``[..., 3, H, W]`` → ImageNet-normalised, same shape and dtype."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(3, 1, 1)
    return (images - mean) / std


def as_batched_views(images: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """Flatten ``[N, 3, H, W]`` or ``[B, S, 3, H, W]`` to ``[N', 3, H, W]``; also return the leading shape."""
    if images.ndim == 4:
        return images, images.shape[:1]
    if images.ndim == 5:
        return images.flatten(0, 1), images.shape[:2]
    raise ValueError(f"expected images [N,3,H,W] or [B,S,3,H,W], got shape {tuple(images.shape)}")
