"""Non-overlapping patch embedding: ``[N, 3, H, W]`` → ``[N, H/p, W/p, C]`` (key ``proj``)."""

from __future__ import annotations

from torch import Tensor, nn


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {p}")
        return self.proj(x).permute(0, 2, 3, 1)
