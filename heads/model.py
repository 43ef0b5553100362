"""The one model class: encoder (MuM or the aggregator's own patch embedding) + aggregator + camera and dense heads.

    images [B,S,3,H,W] in [0,1]
      ─► patch tokens [B,S,P,C]        MuM encoder + linear projection (chunks of frames), or the aggregator's
                                       patch embedding (``vggt-1b``: DINOv2 ViT-L/14)
      ─► aggregator token list         [B,S,1+R+P,2C] per layer (frame ⊕ global block outputs)
      ─► camera head  ─► pose encodings [B,S,9] (one per refinement iteration) ─► extrinsics, intrinsics
      ─► point head   ─► world points [B,S,H,W,3] + confidence       (DPT, frame chunks)
      ─► depth head   ─► depth [B,S,H,W,1] + confidence              (DPT, frame chunks)

Memory grows linearly in the frame count apart from global attention: frames are encoded ``chunk_size`` at a
time, the aggregator keeps only the layers the heads read (in the trunk's dtype: bf16 on CUDA), and the DPT heads
run over frame chunks, each chunk's float32 maps cast from those tokens on the fly and, with
``predict(output_device="cpu")``, copied off the GPU as soon as they are made (the input frames stay where they
are and go to the GPU a chunk at a time). On CUDA, :meth:`Reconstructor.predict` runs the encoder and aggregator
under bf16 (fp16 where bf16 is unsupported) autocast; the heads always run in float32, as the official VGGT does.
:meth:`Reconstructor.compile_for_inference` puts the encoder's and the aggregator's blocks under ``torch.compile``.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any, Optional

import torch
from torch import Tensor, nn

from mum.encoder import MuMEncoder
from mum.geometry import pose_encoding_to_extrinsics_intrinsics
from mum.image import imagenet_normalize
from mum.layers import compile_blocks, map_chunks

from .aggregator import Aggregator, TokenList
from .camera_head import CameraHead
from .config import ReconstructorConfig
from .dinov2 import DinoVisionTransformer
from .dpt import DPTHead
from .prediction import Prediction

DEFAULT_CHUNK_SIZE = 8
MIN_FOV = 1e-2  # radians; predicted FoVs (ReLU outputs) are clamped to this when building intrinsics


class Reconstructor(nn.Module):
    """Feedforward multi-view reconstruction model built from a :class:`ReconstructorConfig`.

    State-dict prefixes: ``encoder.*`` and ``encoder_proj.*`` (MuM presets only), ``aggregator.*``,
    ``camera_head.*``, ``point_head.*``, ``depth_head.*`` (for ``vggt-1b`` exactly the VGGT-1B layout minus
    ``track_head.*``).
    """

    def __init__(self, cfg: ReconstructorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.name = cfg.name
        self.patch_size = cfg.patch_size
        agg = cfg.aggregator
        patch_embed: Any
        if cfg.encoder is not None:
            self.encoder: Optional[MuMEncoder] = MuMEncoder(cfg.encoder)
            self.encoder_proj: Optional[nn.Linear] = nn.Linear(cfg.encoder.embed_dim, agg.embed_dim)
            patch_embed = None
        else:
            self.encoder = None
            self.encoder_proj = None
            patch_embed = DinoVisionTransformer(**(agg.dinov2 or {})) if agg.patch_embed == "dinov2" else agg.patch_embed
        self.aggregator = Aggregator(
            img_size=cfg.image_size,
            patch_size=cfg.patch_size,
            embed_dim=agg.embed_dim,
            depth=agg.depth,
            num_heads=agg.num_heads,
            mlp_ratio=agg.mlp_ratio,
            num_register_tokens=agg.num_register_tokens,
            patch_embed=patch_embed,
            aa_block_size=agg.aa_block_size,
            qk_norm=agg.qk_norm,
            rope_freq=agg.rope_freq,
            init_values=agg.init_values,
        )
        cam = cfg.camera_head
        self.camera_head = CameraHead(
            dim_in=cfg.token_dim,
            trunk_depth=cam.trunk_depth,
            num_heads=cam.num_heads,
            mlp_ratio=cam.mlp_ratio,
            init_values=cam.init_values,
        )
        self.point_head = self._dpt_head(output_dim=4, activation="inv_log")
        self.depth_head = self._dpt_head(output_dim=2, activation="exp")

    def _dpt_head(self, output_dim: int, activation: str) -> DPTHead:
        dpt = self.cfg.dpt
        return DPTHead(
            dim_in=self.cfg.token_dim,
            patch_size=self.cfg.patch_size,
            output_dim=output_dim,
            activation=activation,
            conf_activation="expp1",
            features=dpt.features,
            out_channels=list(dpt.out_channels),
            intermediate_layer_idx=list(dpt.intermediate_layer_idx),
            pos_embed=True,
        )

    # ------------------------------------------------------------------------------------------ utilities
    @property
    def head_layers(self) -> set[int]:
        """Aggregator layers the heads read (DPT layers and the last one for the camera head)."""
        depth = self.cfg.aggregator.depth
        return {i % depth for i in self.cfg.dpt.intermediate_layer_idx} | {depth - 1}

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute encoder and aggregator blocks in the backward pass (training memory)."""
        self.aggregator.grad_checkpointing = enabled
        for module in (self.encoder, self.aggregator.patch_embed):
            if module is not None and hasattr(module, "grad_checkpointing"):
                module.grad_checkpointing = enabled

    def _check_images(self, images: Tensor) -> Tensor:
        if images.ndim == 4:
            images = images.unsqueeze(0)
        if images.ndim != 5 or images.shape[2] != 3:
            raise ValueError(f"expected images [S,3,H,W] or [B,S,3,H,W], got {tuple(images.shape)}")
        H, W = images.shape[-2:]
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {self.patch_size}")
        return images

    # -------------------------------------------------------------------------------------------- forward
    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return next(self.parameters()).device

    def embed(self, images: Tensor, chunk_size: Optional[int] = DEFAULT_CHUNK_SIZE) -> Tensor:
        """``[B, S, 3, H, W]`` in [0, 1] (on any device) → patch tokens ``[B, S, P, C_agg]`` on the model's device,
        ``chunk_size`` frames at a time (each chunk moved to the model's device when its turn comes)."""
        device = self.device
        if self.encoder is None:
            return self.aggregator.embed_images(images, chunk_size, device=device)
        assert self.encoder_proj is not None
        return map_chunks(lambda frames: self.encoder_proj(self.encoder(imagenet_normalize(frames.to(device)))), images,
                          chunk_size, batch_dims=2)

    def compile_for_inference(self, frames: int = 2) -> float:
        """Put the transformer blocks (encoder or DINOv2 patch embedding, aggregator, camera-head trunk; the DPT
        heads stay eager) under ``torch.compile`` and compile them now, with one :meth:`predict` on ``frames``
        random frames of 3 × 5 patches, after one eager pass that verifies the attention backends (sizes are
        symbolic, so real inputs reuse the graphs; a one-frame input compiles once more). Returns the seconds the
        compiling pass took (compilation plus a tiny forward)."""
        images = torch.rand(frames, 3, 3 * self.patch_size, 5 * self.patch_size, generator=torch.Generator().manual_seed(0))
        self.predict(images, chunk_size=None)  # eager first: attention backends verified (and their errors raised) here
        compile_blocks(self)
        start = time.perf_counter()
        self.predict(images, chunk_size=None)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def aggregate(
        self, images: Tensor, chunk_size: Optional[int] = DEFAULT_CHUNK_SIZE, keep_layers: Optional[set[int]] = None
    ) -> tuple[TokenList, int]:
        """``[B, S, 3, H, W]`` → (aggregator token list, ``patch_start_idx``); layers outside ``keep_layers``
        (default: all) are ``None``."""
        images = self._check_images(images)
        return self._aggregate_tokens(self.embed(images, chunk_size), images, keep_layers)

    def _aggregate_tokens(self, patch_tokens: Tensor, images: Tensor, keep_layers: Optional[set[int]]) -> tuple[TokenList, int]:
        grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        return self.aggregator.aggregate(patch_tokens, grid, keep_layers)

    def forward(
        self,
        images: Tensor,
        chunk_size: Optional[int] = DEFAULT_CHUNK_SIZE,
        num_iterations: Optional[int] = None,
        output_device: Optional[torch.device | str] = None,
    ) -> dict[str, Any]:
        """Raw outputs for training. ``images`` ``[B, S, 3, H, W]`` (or ``[S, 3, H, W]``) in [0, 1].

        Returns ``pose_enc`` ``[B,S,9]`` (last iteration), ``pose_enc_list`` (every camera-head iteration),
        ``depth`` ``[B,S,H,W,1]``, ``depth_conf`` ``[B,S,H,W]``, ``world_points`` ``[B,S,H,W,3]``,
        ``world_points_conf`` ``[B,S,H,W]`` (float32), ``images`` (the ``[B,S,3,H,W]`` input) and
        ``descriptors`` ``[B,S,C]``: each view's patch tokens before the aggregator, mean-pooled and L2-normalised
        (a global image descriptor for retrieval: views whose descriptors have a high dot product likely overlap).
        ``chunk_size``: frames per encoder / DPT chunk (``None`` = all at once). ``output_device``: where the dense
        maps are gathered, chunk by chunk (default: the model's device).
        """
        images = self._check_images(images)
        patch_tokens = self.embed(images, chunk_size)
        descriptors = torch.nn.functional.normalize(patch_tokens.detach().float().mean(dim=2), dim=-1)
        tokens, patch_start_idx = self._aggregate_tokens(patch_tokens, images, keep_layers=self.head_layers)
        del patch_tokens
        iterations = num_iterations or self.cfg.camera_head.num_iterations
        # the heads run in float32; each casts the (bf16 under autocast) tokens it reads, a frame chunk at a time
        with torch.autocast(device_type=self.device.type, enabled=False):
            pose_enc_list = self.camera_head(tokens, num_iterations=iterations)
            points, points_conf = self.point_head(tokens, images, patch_start_idx, frames_chunk_size=chunk_size,
                                                  output_device=output_device)
            depth, depth_conf = self.depth_head(tokens, images, patch_start_idx, frames_chunk_size=chunk_size,
                                                output_device=output_device)
        return {
            "pose_enc": pose_enc_list[-1],
            "pose_enc_list": pose_enc_list,
            "depth": depth,
            "depth_conf": depth_conf,
            "world_points": points,
            "world_points_conf": points_conf,
            "images": images,
            "descriptors": descriptors,
        }

    @torch.inference_mode()
    def predict(
        self,
        images: Tensor,
        chunk_size: Optional[int] = DEFAULT_CHUNK_SIZE,
        output_device: Optional[torch.device | str] = None,
    ) -> Prediction:
        """Reconstruct ``[S, 3, H, W]`` or ``[B, S, 3, H, W]`` RGB in [0, 1] (H, W multiples of ``patch_size``).

        Runs on the model's device, the frames moved there ``chunk_size`` at a time from wherever they are;
        returns float32 tensors with a batch axis on ``output_device`` (default: the model's device; ``"cpu"``
        gathers the dense maps off the GPU chunk by chunk, so GPU memory does not hold every frame's maps). See
        :class:`Prediction`; use ``.squeeze_batch()`` for one scene, ``.numpy()`` for arrays. ``pose_enc`` is
        the raw last camera-head iteration; intrinsics are built from it with FoVs clamped to ``MIN_FOV`` so
        they stay finite."""
        device = self.device
        output_device = torch.device(output_device) if output_device is not None else device
        images = self._check_images(images.to(dtype=torch.float32))
        autocast = nullcontext()
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            autocast = torch.autocast("cuda", dtype=dtype)
        with autocast:
            raw = self.forward(images, chunk_size, output_device=output_device)
        pose_enc = raw["pose_enc"].float()
        decodable = torch.cat((pose_enc[..., :7], pose_enc[..., 7:].clamp(min=MIN_FOV)), dim=-1)
        extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(decodable, images.shape[-2:])
        return Prediction(
            extrinsics=extrinsics.to(output_device),
            intrinsics=intrinsics.to(output_device),
            depth=raw["depth"],
            depth_conf=raw["depth_conf"],
            world_points=raw["world_points"],
            world_points_conf=raw["world_points_conf"],
            pose_enc=pose_enc.to(output_device),
            images=images.permute(0, 1, 3, 4, 2).to(output_device),
            descriptors=raw["descriptors"].to(output_device),
        )


def build_reconstructor(cfg: ReconstructorConfig, device: Optional[torch.device | str] = None) -> Reconstructor:
    """A randomly initialised model; ``device="meta"`` builds it without allocating memory."""
    with torch.device(device or "cpu"):
        return Reconstructor(cfg)
