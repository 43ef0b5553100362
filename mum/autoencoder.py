"""The MuM multi-view masked autoencoder (MAE with a frame/global alternating-attention decoder).

For a scene of ``S`` views, each view is masked independently and uniformly at ``mask_ratio``; the
encoder sees only the visible patches of each view (plus its cls token); the decoder re-inserts mask
tokens, then alternates frame-wise attention (within each view) and global attention (across all views
of the scene) and predicts the pixels of every patch. The loss is the MSE of per-patch-normalised pixels
on the removed patches. State-dict keys are exactly those of ``MuM_ViTLarge_BaseDecoder.pth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import AutoEncoderConfig, autoencoder_config
from .encoder import MuMEncoder
from .layers import AxialRope, Block


@dataclass
class Masking:
    """Per-view random masking, MAE convention. ``ids_restore`` ``[N, L]`` un-shuffles; ``ids_keep``
    ``[N, L_keep]`` are the visible patch indices in shuffle order; ``mask`` ``[N, L]`` is 1 for removed."""

    ids_keep: Tensor
    ids_restore: Tensor
    mask: Tensor

    @classmethod
    def from_ids_restore(cls, ids_restore: Tensor, mask_ratio: float) -> "Masking":
        N, L = ids_restore.shape
        len_keep = int(L * (1 - mask_ratio))
        ids_shuffle = torch.argsort(ids_restore, dim=1)
        mask = torch.ones(N, L, device=ids_restore.device)
        mask[:, :len_keep] = 0
        return cls(ids_shuffle[:, :len_keep], ids_restore, torch.gather(mask, 1, ids_restore))

    @classmethod
    def random(
        cls, N: int, L: int, mask_ratio: float, device: torch.device, generator: Optional[torch.Generator] = None
    ) -> "Masking":
        noise = torch.rand(N, L, device=device, generator=generator)
        ids_restore = torch.argsort(torch.argsort(noise, dim=1), dim=1)
        return cls.from_ids_restore(ids_restore, mask_ratio)


@dataclass
class MAEOutput:
    """``loss`` (scalar), ``pred`` ``[B·S, L, p²·3]``, ``mask`` ``[B·S, L]``, ``latent`` ``[B·S, 1+L_keep, C]``."""

    loss: Tensor
    pred: Tensor
    mask: Tensor
    latent: Tensor


class MuMAutoEncoder(MuMEncoder):
    """Encoder (inherited, same keys) + multi-view decoder. ``forward(images [B, S, 3, H, W])``."""

    def __init__(self, cfg: AutoEncoderConfig) -> None:
        if cfg.decoder_depth % 2:
            raise ValueError("decoder_depth counts frame + global blocks and must be even")
        self.ae_cfg = cfg
        super().__init__(cfg.encoder)
        dim, heads = cfg.decoder_embed_dim, cfg.decoder_num_heads
        eps = cfg.encoder.norm_eps
        self.rope_embed_decoder = AxialRope(dim, heads, cfg.encoder.rope_base, dtype=cfg.encoder.torch_rope_dtype)
        self.decoder_embed = nn.Linear(cfg.encoder.embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        n = cfg.decoder_depth // 2
        self.decoder_frame_blocks = nn.ModuleList(Block(dim, heads, norm_eps=eps) for _ in range(n))
        self.decoder_global_blocks = nn.ModuleList(Block(dim, heads, norm_eps=eps) for _ in range(n))
        self.decoder_norm = nn.LayerNorm(dim, eps=eps)
        self.decoder_pred = nn.Linear(dim, self.patch_size**2 * 3)
        self.init_weights()

    def init_weights(self) -> None:
        super().init_weights()
        if hasattr(self, "mask_token") and not self.mask_token.is_meta:
            nn.init.normal_(self.mask_token, std=0.02)

    # ------------------------------------------------------------ patches
    def patchify(self, imgs: Tensor) -> Tensor:
        """``[N, 3, H, W]`` → ``[N, L, p²·3]`` (row-major patches, pixel order (py, px, c))."""
        p = self.patch_size
        N, C, H, W = imgs.shape
        x = imgs.reshape(N, C, H // p, p, W // p, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(N, (H // p) * (W // p), p * p * C)

    def unpatchify(self, x: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """``[N, L, p²·3]`` → ``[N, 3, H, W]`` for a patch grid ``(h, w)``."""
        p, (h, w) = self.patch_size, grid_hw
        x = x.reshape(x.shape[0], h, w, p, p, 3)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], 3, h * p, w * p)

    # ------------------------------------------------------------- stages
    def forward_encoder(self, x: Tensor, masking: Masking) -> Tensor:
        """``[N, 3, H, W]`` → latent ``[N, 1 + L_keep, C]`` (normed; cls first, visible patches in shuffle order)."""
        tokens, rope, _ = self.embed(x)
        C = tokens.shape[-1]
        visible = torch.gather(tokens, 1, masking.ids_keep.unsqueeze(-1).expand(-1, -1, C))
        out, _ = self.run_blocks(self.with_cls(visible), rope.gather(masking.ids_keep))
        return self.norm(out)

    def _block(self, blk: Block, x: Tensor, rope) -> Tensor:
        if self.grad_checkpointing and self.training:
            return checkpoint(blk, x, rope, use_reentrant=False)
        return blk(x, rope)

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor, B: int, S: int, grid_hw: tuple[int, int]) -> Tensor:
        """Latent ``[B·S, 1+L_keep, C]`` → pixel predictions ``[B·S, L, p²·3]`` for every patch."""
        x = self.decoder_embed(latent)
        rope_frame = self.rope_embed_decoder(*grid_hw)
        rope_global = rope_frame.tiled_with_special(num_special=1, num_frames=S)
        N, L, C = x.shape[0], ids_restore.shape[1], x.shape[2]
        mask_tokens = self.mask_token.expand(N, L + 1 - x.shape[1], C)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, C))
        x = torch.cat([x[:, :1], patches], dim=1)  # [B·S, P, C], P = 1 + L
        P = x.shape[1]
        for frame_blk, global_blk in zip(self.decoder_frame_blocks, self.decoder_global_blocks):
            x = self._block(frame_blk, x.reshape(B * S, P, C), rope_frame)
            x = self._block(global_blk, x.reshape(B, S * P, C), rope_global)
        x = self.decoder_pred(self.decoder_norm(x.reshape(B * S, P, C)))
        return x[:, 1:]

    def forward_loss(self, imgs: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        """Mean over removed patches of the per-patch MSE to (optionally normalised) target pixels."""
        target = self.patchify(imgs)
        if self.ae_cfg.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(
        self,
        imgs: Tensor,
        mask_ratio: Optional[float] = None,
        ids_restore: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> MAEOutput:
        """``imgs`` ``[B, S, 3, H, W]`` (normalised). The masking is drawn at random (``generator``) unless
        ``ids_restore`` ``[B·S, L]`` fixes it."""
        B, S, C, H, W = imgs.shape
        ratio = self.ae_cfg.mask_ratio if mask_ratio is None else mask_ratio
        flat = imgs.reshape(B * S, C, H, W)
        grid = (H // self.patch_size, W // self.patch_size)
        if ids_restore is None:
            masking = Masking.random(B * S, grid[0] * grid[1], ratio, imgs.device, generator)
        else:
            masking = Masking.from_ids_restore(ids_restore, ratio)
        latent = self.forward_encoder(flat, masking)
        pred = self.forward_decoder(latent, masking.ids_restore, B, S, grid)
        loss = self.forward_loss(flat, pred, masking.mask)
        return MAEOutput(loss=loss, pred=pred, mask=masking.mask, latent=latent)


def build_autoencoder(
    name_or_cfg: Union[str, AutoEncoderConfig], device: Optional[torch.device | str] = None
) -> MuMAutoEncoder:
    """Autoencoder from a preset name or config; ``device="meta"`` allocates nothing."""
    cfg = autoencoder_config(name_or_cfg) if isinstance(name_or_cfg, str) else name_or_cfg
    with torch.device(device or "cpu"):
        return MuMAutoEncoder(cfg)
